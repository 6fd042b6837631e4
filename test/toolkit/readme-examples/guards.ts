// README, "Guards and RBAC": a guard called as a function, for a decision the pipeline cannot make up front.
import { emitEvent, type Principal, rolesGuard } from '../../../middleware/index.js';
import { onEvent } from './scaffolding.js';

// onEvent: createSecurityEventListener (see Audit logs)

const mayReadAnyBooking = rolesGuard(['admin', 'support']); // a bad list throws InvalidOptionsError here, at cold start

export function assertMayRead(principal: Principal, booking: { readonly userId: string }): void {
  if (booking.userId === principal.id) return;
  const denial = mayReadAnyBooking(principal); // undefined when it passes
  if (denial === undefined) return;
  emitEvent(onEvent, { type: 'access.denied', reason: denial.reason, principal }); // as requireRoles reports it
  throw denial.error; // ForbiddenError: 403 FORBIDDEN, "Requires role admin or support"
}
