// CSRF protection by double submit: a random token in a cookie that unsafe requests must echo in a header.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { assertNoProblems } from '../errors.js';
import { isUsableSecretValue } from './hmac-secret.js';

export interface CsrfOptions {
  /**
   * Cookie holding the token. The `__Host-` prefix makes browsers refuse it unless it is Secure,
   * host-only and for Path=/, so a sibling subdomain cannot plant one. @default '__Host-csrf'
   */
  readonly cookieName?: string | undefined;
  /** Header unsafe requests must echo the token in (lower case). @default 'x-csrf-token' */
  readonly headerName?: string | undefined;
  /**
   * When given, tokens are `<random>.<HMAC(secret, random)>` and cookies without a valid MAC are
   * refused, so only tokens this server issued pass. The MAC binds a token to no session: a token
   * fetched from this server and planted as a cookie passes too. Given as `undefined` it is refused (an
   * unset environment variable), so leave it out for unsigned tokens; the one option whose type refuses
   * `undefined` too, where `exactOptionalPropertyTypes` is on. @default none (random tokens)
   */
  readonly secret?: string;
  /** Cookie lifetime; a session cookie when undefined. @default undefined */
  readonly maxAgeSec?: number | undefined;
}

/** Why a request failed the check. */
export type CsrfFailure = 'missing_cookie' | 'missing_header' | 'mismatch' | 'bad_token';

export type CsrfCheck =
  | { readonly ok: true; readonly token: string | undefined }
  | { readonly ok: false; readonly failure: CsrfFailure };

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
const tokenPattern = /^[\w-]{43}(?:\.[\w-]{43})?$/;

/**
 * The double-submit check and the cookie that carries its token.
 *
 * @example
 * const secret = process.env.CSRF_SECRET;
 * if (secret === undefined) throw new Error('CSRF_SECRET is not set');
 * const csrf = new CsrfProtection({ secret });
 * const check = csrf.check('POST', event.cookies, event.headers['x-csrf-token']);
 */
export class CsrfProtection {
  readonly cookieName: string;
  readonly headerName: string;
  private readonly secret: string | undefined;
  private readonly maxAgeSec: number | undefined;

  constructor(options: CsrfOptions = {}) {
    this.cookieName = options.cookieName ?? '__Host-csrf';
    const headerName: unknown = options.headerName ?? 'x-csrf-token';
    this.headerName = typeof headerName === 'string' ? headerName.toLowerCase() : '';
    this.secret = options.secret;
    this.maxAgeSec = options.maxAgeSec;
    const problems: string[] = [];
    if (typeof this.cookieName !== 'string' || !/^[\w-]{1,64}$/.test(this.cookieName))
      problems.push('cookieName must be a token of letters, digits, _ and -');
    if (!/^[\w-]{1,64}$/.test(this.headerName)) problems.push('headerName must be a header name');
    if (this.secret !== undefined && typeof this.secret !== 'string')
      problems.push('secret must be a string');
    else if (this.secret !== undefined && !isUsableSecretValue(this.secret))
      problems.push('secret must be at least 32 characters besides whitespace');
    // `secret: process.env.CSRF_SECRET` with the variable unset would silently fall back to unsigned tokens.
    if (Object.hasOwn(options, 'secret') && options.secret === undefined)
      problems.push('secret is undefined (an unset environment variable?); leave it out for unsigned tokens');
    if (this.maxAgeSec !== undefined && !(Number.isInteger(this.maxAgeSec) && this.maxAgeSec > 0)) {
      problems.push('maxAgeSec must be a positive integer');
    }
    assertNoProblems('csrf', problems);
  }

  /** A fresh token (signed when a secret is configured). */
  issueToken(): string {
    const random = randomBytes(32).toString('base64url');
    return this.secret === undefined ? random : `${random}.${this.mac(random)}`;
  }

  /** The `Set-Cookie` value carrying a token: Secure, SameSite=Lax, Path=/ (readable by the page's script). */
  cookie(token: string): string {
    const maxAge = this.maxAgeSec === undefined ? '' : `; Max-Age=${this.maxAgeSec}`;
    return `${this.cookieName}=${token}; Path=/; Secure; SameSite=Lax${maxAge}`;
  }

  /** The token of the request's cookie, if it has a well-formed (and, with a secret, authentic) one. */
  tokenFrom(cookies: readonly string[] | undefined): string | undefined {
    const prefix = `${this.cookieName}=`;
    for (const header of cookies ?? []) {
      for (const part of header.split(';')) {
        const cookie = part.trim();
        if (cookie.startsWith(prefix)) {
          const token = cookie.slice(prefix.length);
          return this.isAuthentic(token) ? token : undefined;
        }
      }
    }
    return undefined;
  }

  /**
   * Safe methods always pass; unsafe ones need the cookie's token echoed in the header.
   * `cookies` are API Gateway v2's `event.cookies` (or Cookie header values).
   */
  check(method: string, cookies: readonly string[] | undefined, header: string | undefined): CsrfCheck {
    const hasCookie = (cookies ?? []).some((value) => value.includes(`${this.cookieName}=`));
    const token = this.tokenFrom(cookies);
    if (safeMethods.has(method.toUpperCase())) return { ok: true, token };
    if (!hasCookie) return { ok: false, failure: 'missing_cookie' };
    if (token === undefined) return { ok: false, failure: 'bad_token' };
    if (header === undefined || header.length === 0) return { ok: false, failure: 'missing_header' };
    const expected = Buffer.from(token);
    const actual = Buffer.from(header);
    // Constant-time compare of equal lengths; a different length is a mismatch without comparing.
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      return { ok: false, failure: 'mismatch' };
    }
    return { ok: true, token };
  }

  private mac(random: string): string {
    return createHmac('sha256', this.secret as string)
      .update(random)
      .digest('base64url');
  }

  private isAuthentic(token: string): boolean {
    if (!tokenPattern.test(token)) return false;
    const dot = token.indexOf('.');
    if (this.secret === undefined) return dot < 0;
    if (dot < 0) return false;
    const expected = Buffer.from(this.mac(token.slice(0, dot)));
    const actual = Buffer.from(token.slice(dot + 1));
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}
