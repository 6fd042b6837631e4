// fetch through a circuit breaker: network errors, timeouts and failing statuses count; the answer is read in time.
import { DependencyError } from '../errors.js';
import type { CircuitBreaker } from './circuit-breaker.js';

/** Which answers count as a failure of the dependency. */
export type ResponseFailurePredicate = (response: Response) => boolean;

/** Server errors count; client errors (4xx) are the caller's problem, not the dependency's. */
export const isServerError: ResponseFailurePredicate = (response) => response.status >= 500;

/** A request as guardedFetch sends it: the body, if any, is a string (what service calls carry). */
export type GuardedRequestInit = Omit<RequestInit, 'signal' | 'body'> & {
  readonly body?: string | undefined;
};

export interface GuardedFetchOptions {
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** @default {@link isServerError}: 5xx counts, 4xx does not */
  readonly isFailure?: ResponseFailurePredicate;
  /** A shorter timeout for this request; it counts when it runs out. @default the breaker's timeoutMs */
  readonly timeoutMs?: number | undefined;
  /**
   * Epoch ms by which the caller needs its answer, e.g. the Lambda's deadline less a margin; running
   * out of it is a `DeadlineExceededError` (504) that does not count. @default none
   */
  readonly deadline?: number | undefined;
}

/**
 * `fetch` guarded by a breaker. A network error or an answer `isFailure` rejects becomes a
 * {@link DependencyError} (502) and counts as a failure; past the breaker's timeout the request is
 * aborted with a `DependencyTimeoutError` (504); an open circuit rejects at once with a
 * `CircuitOpenError` (503). The body is read before the timeout ends, so the returned Response is
 * complete: a dependency that sends headers and then stalls is caught too.
 *
 * @example
 * const users = new CircuitBreaker<Response>({ name: 'users', tableName, timeoutMs: 2000 });
 * const response = await guardedFetch(users, `${usersApi}/users/${id}`);
 */
export function guardedFetch(
  breaker: CircuitBreaker<Response>,
  url: string | URL,
  init: GuardedRequestInit = {},
  options: GuardedFetchOptions = {},
): Promise<Response> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const isFailure = options.isFailure ?? isServerError;
  return breaker.execute(
    async ({ signal }) => {
      let response: Response;
      let body: ArrayBuffer;
      try {
        response = await fetchImpl(url, { ...init, signal });
        body = await response.arrayBuffer();
      } catch (error) {
        // After a timeout the breaker has already answered; this rejection goes nowhere.
        throw new DependencyError(breaker.name, `${breaker.name} is unreachable`, { cause: error });
      }
      if (isFailure(response)) {
        throw new DependencyError(breaker.name, `${breaker.name} answered ${response.status}`, {
          upstreamStatus: response.status,
        });
      }
      const bodyless = response.status === 204 || response.status === 304 || body.byteLength === 0;
      return new Response(bodyless ? null : body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    },
    options.timeoutMs === undefined && options.deadline === undefined
      ? undefined
      : { timeoutMs: options.timeoutMs, deadline: options.deadline },
  );
}
