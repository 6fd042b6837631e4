// The principal of a route whose auth requirement guarantees one, with the type narrowed.
import type { Principal } from '../../middleware/auth/principal.js';
import { UnauthorizedError } from '../../middleware/errors.js';

/**
 * The route table guarantees a principal on every non-public route; this only narrows the type
 * (a 401, never reached, if a route were wired without its auth).
 */
export function callerOf(principal: Principal | undefined): Principal {
  if (!principal) throw new UnauthorizedError();
  return principal;
}
