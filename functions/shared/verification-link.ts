// Signed, expiring email verification links: HMAC-SHA256 over the user id and the expiry, checked in constant time.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RotatingSecretReader } from './rotating-secret.js';

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
 * `<baseUrl>/users/<id>/verify?expires=<epoch s>&signature=<base64url HMAC>`, under the base's path too
 * (`https://example.com/api` gives `https://example.com/api/users/<id>/verify…`): an API behind a custom
 * domain's base path mapping is only reached through that path. The purpose prefix (`verify-email.`)
 * keeps a signature from being replayed as any other kind of link made with the same secret.
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
  const base = new URL(options.baseUrl);
  // Without a trailing slash its last segment would be replaced by the relative path, not kept.
  if (!base.pathname.endsWith('/')) base.pathname = `${base.pathname}/`;
  const url = new URL(`users/${encodeURIComponent(options.userId)}/verify`, base);
  url.searchParams.set('expires', String(expiresAtSec));
  url.searchParams.set('signature', signatureOf(options.secret, options.userId, expiresAtSec));
  return { url: url.toString(), expiresAt: new Date(expiresAtSec * 1000) };
}

/** Why a link's parameters do not verify: unreadable, forged (or for another user), or authentic but expired. */
export type VerificationLinkProblem = 'malformed' | 'bad_signature' | 'expired';

/**
 * What is wrong with a link's parameters, or undefined when they are authentic and not expired. The
 * signature is checked (in constant time) before the expiry, so only a link this service really
 * issued is ever reported as `expired`.
 */
export function verificationLinkProblem(options: {
  readonly userId: string;
  readonly expires: string;
  readonly signature: string;
  readonly secret: string;
  /** The secret before the last rotation: links it signed stay valid until they expire. */
  readonly previousSecret?: string | undefined;
  readonly now?: number;
}): VerificationLinkProblem | undefined {
  if (!/^\d{1,12}$/.test(options.expires)) return 'malformed';
  const expiresAtSec = Number(options.expires);
  const given = Buffer.from(options.signature);
  const signedWith = (secret: string) => {
    const expected = Buffer.from(signatureOf(secret, options.userId, expiresAtSec));
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const authentic =
    signedWith(options.secret) ||
    (options.previousSecret !== undefined && signedWith(options.previousSecret));
  if (!authentic) return 'bad_signature';
  if (expiresAtSec * 1000 <= (options.now ?? Date.now())) return 'expired';
  return undefined;
}

/**
 * {@link verificationLinkProblem} against a rotating secret. A link that matches neither version makes
 * the reader fetch the secret once more (it rate-limits that), in case it rotated since it was cached.
 * Without a reader this deployment never issued a link, so no link is valid.
 *
 * @example
 * const problem = await rotatingVerificationLinkProblem(readLinkSecret, { userId, expires, signature });
 */
export async function rotatingVerificationLinkProblem(
  readSecret: RotatingSecretReader | undefined,
  link: { readonly userId: string; readonly expires: string; readonly signature: string },
): Promise<VerificationLinkProblem | undefined> {
  if (!readSecret) return 'bad_signature';
  const problemWith = async (refresh: boolean) => {
    const secret = await readSecret(refresh);
    return verificationLinkProblem({ ...link, secret: secret.current, previousSecret: secret.previous });
  };
  const problem = await problemWith(false);
  return problem === 'bad_signature' ? problemWith(true) : problem;
}

/** Whether a link's parameters are authentic and not expired. */
export function isValidVerification(options: {
  readonly userId: string;
  readonly expires: string;
  readonly signature: string;
  readonly secret: string;
  readonly now?: number;
}): boolean {
  return verificationLinkProblem(options) === undefined;
}
