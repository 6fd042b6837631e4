// Signed, expiring email verification links: HMAC-SHA256 over the user id and the expiry, checked in constant time.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface VerificationLink {
  readonly url: string;
  readonly expiresAt: Date;
}

/** @default 24 hours */
export const verificationLinkTtlMs = 24 * 3600 * 1000;

function signatureOf(secret: string, userId: string, expiresAtSec: number): string {
  return createHmac('sha256', secret).update(`verify-email.${userId}.${expiresAtSec}`).digest('base64url');
}

/**
 * `<baseUrl>/users/<id>/verify?expires=<epoch s>&signature=<base64url HMAC>`. The purpose prefix
 * (`verify-email.`) keeps a signature from being replayed as any other kind of link made with the
 * same secret.
 *
 * @example
 * const link = createVerificationLink({ baseUrl, userId: user.id, secret });
 */
export function createVerificationLink(options: {
  readonly baseUrl: string;
  readonly userId: string;
  readonly secret: string;
  readonly now?: number;
  readonly ttlMs?: number;
}): VerificationLink {
  const expiresAtSec = Math.floor(
    ((options.now ?? Date.now()) + (options.ttlMs ?? verificationLinkTtlMs)) / 1000,
  );
  const url = new URL(`/users/${encodeURIComponent(options.userId)}/verify`, options.baseUrl);
  url.searchParams.set('expires', String(expiresAtSec));
  url.searchParams.set('signature', signatureOf(options.secret, options.userId, expiresAtSec));
  return { url: url.toString(), expiresAt: new Date(expiresAtSec * 1000) };
}

/** Whether a link's parameters are authentic and not expired (for the verify route that will read them). */
export function isValidVerification(options: {
  readonly userId: string;
  readonly expires: string;
  readonly signature: string;
  readonly secret: string;
  readonly now?: number;
}): boolean {
  if (!/^\d{1,12}$/.test(options.expires)) return false;
  const expiresAtSec = Number(options.expires);
  if (expiresAtSec * 1000 <= (options.now ?? Date.now())) return false;
  const expected = Buffer.from(signatureOf(options.secret, options.userId, expiresAtSec));
  const given = Buffer.from(options.signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
