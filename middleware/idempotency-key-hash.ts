// A short one-way name for an idempotency key in its scope, for log lines, which never carry the key itself.
import { createHash } from 'node:crypto';
import type { ScopedIdempotencyKey } from './idempotency.js';

/**
 * The first 16 hex characters of the SHA-256 of `["audit", ...scopedKey]` as JSON (`scopedKey` is
 * `[tenant, authMethod, kind, caller id, route, path, key]`, nulls for an anonymous caller). Audit lines
 * carry it where a key matters to the one reading them (a replay, a 409 or 422 about the key), so a
 * client's key can be searched for, given its caller, without the key being logged. Its own prefix
 * (`"audit"`) keeps it apart from ids derived from the same scoped key (a booking's: `"booking"`).
 *
 * @example
 * idempotencyKeyHash(['default', 'jwt', 'machine', 'client-1', 'POST /bookings', '/bookings', 'order-42']);
 */
export function idempotencyKeyHash(scopedKey: ScopedIdempotencyKey): string {
  return createHash('sha256')
    .update(JSON.stringify(['audit', ...scopedKey]))
    .digest('hex')
    .slice(0, 16);
}
