// Ids of what a create sent with an Idempotency-Key makes, derived from the key in its scope, so a retry finds what the first request made.
import { createHash } from 'node:crypto';
import type { ScopedIdempotencyKey } from '../../middleware/idempotency.js';

/**
 * `length` bytes (at most 32) that only this scoped key (the caller, route, path and client's key) and
 * `purpose` give: the id a create names its item with. The idempotency record does not outlive a 5xx, and
 * a transaction can land after its answers all timed out (a 504): the retry then runs the create again,
 * and meets the item the first request made instead of making a second. Not a secret: the scope holds the
 * caller, so no other caller's request derives the same id, whatever key it sends.
 */
export function keyDerivedBytes(scopedKey: ScopedIdempotencyKey, purpose: string, length: number): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([purpose, ...scopedKey]))
    .digest()
    .subarray(0, length);
}
