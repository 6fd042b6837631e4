// What authentication puts on the Middy context, and the one check that it ran before a middleware reading it.
// Kept apart from the auth middlewares so the limiter, idempotency() and audit() can use it without bundling the verifiers.
import { InvalidOptionsError } from '../errors.js';
import { createRequestMark, type MarkedRequest } from '../request-marks.js';
import type { Principal } from './principal.js';

/** What `authenticate` adds to the handler's context: `context.principal`. */
export interface AuthContext {
  principal: Principal;
}

/** What `authenticate({ optional: true })` adds: a principal when the request had a credential. */
export interface OptionalAuthContext {
  principal: Principal | undefined;
}

export type { MarkedRequest } from '../request-marks.js';

/**
 * Requests an authentication middleware ran on (see {@link createRequestMark}): not read from
 * `context.principal`, which a context object handed in again still holds from the last request.
 */
const authentication = createRequestMark();

/**
 * Records that authentication ran on this request; `authenticate` calls it on every request it lets
 * through. An authentication middleware of your own must call it too, as it sets `context.principal`.
 */
export function markAuthenticationRan(request: MarkedRequest): void {
  authentication.mark(request);
}

/**
 * Whether an authentication middleware ran on this request before the middleware asking, or on the
 * unanswered request of a Middy pipeline around it (a route's own pipeline, nested in the function's).
 */
export function authenticationRan(request: MarkedRequest): boolean {
  return authentication.ranBefore(request);
}

/**
 * Refuses a request that reached `middleware` before any authentication middleware: what it decides
 * (`need`) depends on the caller, and without one it would silently treat every caller as anonymous.
 * A developer's setup fault, not the client's: an {@link InvalidOptionsError}, which `httpErrorHandler`
 * answers with a generic 500 and logs with this message, naming the order to fix.
 *
 * @example
 * assertAuthenticationRan(request, 'requireRoles', 'it checks the caller on context.principal');
 */
export function assertAuthenticationRan(
  request: MarkedRequest,
  middleware: string,
  need: string,
  alternative?: string,
): void {
  if (authenticationRan(request)) return;
  const fix = `put ${middleware}() after authenticate()${alternative === undefined ? '' : `, or ${alternative}`}`;
  throw new InvalidOptionsError(middleware, [
    `${need}, but no authentication middleware ran before ${middleware}(): ${fix}`,
  ]);
}
