// Which requests a rate limit ran on, kept apart from the limiter so audit() can check it without bundling it.
import { createRequestMark, type MarkedRequest } from '../request-marks.js';

/** Not read from `context.rateLimit`, which a context object handed in again still holds from the last request. */
const rateLimited = createRequestMark();

/** Records that a rate limit ran on this Middy request. */
export function markRateLimitRan(request: MarkedRequest): void {
  rateLimited.mark(request);
}

/** Whether a rate limit ran on this Middy request, or on the unanswered request of a pipeline around it. */
export function rateLimitRan(request: MarkedRequest): boolean {
  return rateLimited.ranBefore(request);
}
