// Ids of what a create sent with an Idempotency-Key makes, derived from the key in its scope, so a retry finds what the first request made; and the UUID form derived ids take.
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
  return derivedBytes([purpose, ...scopedKey], length);
}

/** `length` bytes (at most 32) that only these `parts`, in this order, give: SHA-256 of them as a JSON list. */
export function derivedBytes(parts: readonly (string | null)[], length: number): Buffer {
  return createHash('sha256').update(JSON.stringify(parts)).digest().subarray(0, length);
}

/**
 * A UUID made of 16 derived bytes, version 8 (RFC 9562's for ids of one's own making): it reads, and
 * validates, like a random one.
 */
export function derivedUuid(bytes: Buffer): string {
  const uuid = Buffer.from(bytes.subarray(0, 16));
  uuid.writeUInt8((uuid.readUInt8(6) & 0x0f) | 0x80, 6);
  uuid.writeUInt8((uuid.readUInt8(8) & 0x3f) | 0x80, 8);
  const hex = uuid.toString('hex');
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join('-');
}
