// What authentication puts on the Middy context, and the one check that it ran before a middleware reading it.
// Kept apart from the auth middlewares so the limiter and idempotency() can use it without bundling the verifiers.
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

/**
 * Whether an authentication middleware has run on this request. `authenticate` sets `context.principal`
 * on every request it lets through, to undefined for an anonymous caller of an optional-auth route, so
 * the property is there whenever it ran and missing when it did not (used after it, or not at all).
 * An authentication middleware of your own must set the property the same way.
 */
export function authenticationRan(context: object): boolean {
  return 'principal' in context;
}

/**
 * Refuses a request that reached `middleware` before any authentication middleware: what it decides
 * (`need`) depends on the caller, and without one it would silently treat every caller as anonymous.
 * A developer's setup fault, not the client's: an {@link InvalidOptionsError}, which `httpErrorHandler`
 * answers with a generic 500 and logs with this message, naming the order to fix.
 *
 * @example
 * assertAuthenticationRan(request.context, 'requireRoles', 'it checks the caller on context.principal');
 */
export function assertAuthenticationRan(
  context: object,
  middleware: string,
  need: string,
  alternative?: string,
): void {
  if (authenticationRan(context)) return;
  const fix = `put ${middleware}() after authenticate()${alternative === undefined ? '' : `, or ${alternative}`}`;
  throw new InvalidOptionsError(middleware, [
    `${need}, but no authentication middleware ran before ${middleware}(): ${fix}`,
  ]);
}
