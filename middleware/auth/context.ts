// What authentication puts on the Middy context, and the one check that it ran before a middleware reading it.
// Kept apart from the auth middlewares so the limiter, idempotency() and audit() can use it without bundling the verifiers.
import { InvalidOptionsError } from '../errors.js';
import type { Principal } from './principal.js';

/** What `authenticate` adds to the handler's context: `context.principal`. */
export interface AuthContext {
  principal: Principal;
}

/** What `authenticate({ optional: true })` adds: a principal when the request had a credential. */
export interface OptionalAuthContext {
  principal: Principal | undefined;
}

/** The part of a Middy request the marks are kept on: Middy makes a new request object per invocation. */
export interface MarkedRequest {
  readonly context: object;
}

/**
 * Requests an authentication middleware ran on. Kept per request, not read from `context.principal`:
 * a context object handed in again (a test's, a host of your own) still holds the last request's
 * principal, which says nothing about what ran on this one.
 */
const requestsAuthenticated = new WeakSet<MarkedRequest>();

/**
 * Records that authentication ran on this request; `authenticate` calls it on every request it lets
 * through. An authentication middleware of your own must call it too, as it sets `context.principal`.
 */
export function markAuthenticationRan(request: MarkedRequest): void {
  requestsAuthenticated.add(request);
}

/** Whether an authentication middleware ran on this request, before the middleware asking. */
export function authenticationRan(request: MarkedRequest): boolean {
  return requestsAuthenticated.has(request);
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
