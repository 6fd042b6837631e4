// Which requests a rate limit ran on, kept apart from the limiter so audit() can check it without bundling it.

/**
 * Middy makes a new request object per invocation; the context object may be handed in again (a test's,
 * a host of your own) still holding the last request's `rateLimit`, which says nothing about this one.
 */
const requestsLimited = new WeakSet<object>();

/** Records that a rate limit ran on this Middy request. */
export function markRateLimitRan(request: object): void {
  requestsLimited.add(request);
}

/** Whether a rate limit ran on this Middy request. */
export function rateLimitRan(request: object): boolean {
  return requestsLimited.has(request);
}
