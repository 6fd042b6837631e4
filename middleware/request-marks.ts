// Marks a middleware leaves on the Middy request it ran on, for the order checks of the middlewares after it.

/** The part of a Middy request a mark reads: Middy makes a new request object per invocation. */
export interface MarkedRequest {
  readonly context: object;
  readonly response?: unknown;
  readonly error?: unknown;
}

/** One kind of mark: whether a middleware ran earlier in this invocation. */
export interface RequestMark {
  mark(request: MarkedRequest): void;
  ranBefore(request: MarkedRequest): boolean;
}

/**
 * A mark kept on the request, not read from what the middleware leaves on the context: a context object
 * handed in again (a test's, a host of your own) still holds the last request's fields. A nested Middy
 * pipeline, which a route table's handler runs with the same context, sees the mark of the pipeline around
 * it while that request is still unanswered (Middy sets `response` or `error` once it is).
 */
export function createRequestMark(): RequestMark {
  const requests = new WeakSet<MarkedRequest>();
  const lastByContext = new WeakMap<object, MarkedRequest>();
  return {
    mark(request) {
      requests.add(request);
      lastByContext.set(request.context, request);
    },
    ranBefore(request) {
      if (requests.has(request)) return true;
      const outer = lastByContext.get(request.context);
      return outer !== undefined && outer.response === undefined && outer.error === undefined;
    },
  };
}
