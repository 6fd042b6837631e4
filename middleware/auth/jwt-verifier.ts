// Verifies JWTs: built once at cold start, signatures checked with node:crypto KeyObjects, results cached by token hash.
import {
  createHmac,
  createSecretKey,
  verify as cryptoVerify,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import {
  type AuthFailureReason,
  assertNoProblems,
  type RejectedCredential,
  ServiceUnavailableError,
} from '../errors.js';
import { arrayOption, definedOnly, requireOptionsObject, shownValue } from '../options.js';
import { checkTimeLimit } from '../time-limits.js';
import {
  type ClaimMapping,
  isUsableIdentifier,
  listClaim,
  maxIdentifierLength,
  principalFromClaims,
} from './claims-principal.js';
import { credentialError } from './failure.js';
import { isUsableSecretBytes, isUsableSecretValue } from './hmac-secret.js';
import {
  type AsymmetricAlgorithm,
  JwksKeyStore,
  type JwksKeyStoreOptions,
  KeyLookupError,
} from './jwks-key-store.js';
import { type Claims, getClientId } from './m2m.js';
import type { Principal } from './principal.js';
import { TokenCache } from './token-cache.js';

export type JwtAlgorithm = AsymmetricAlgorithm | 'HS256';
export type TokenUse = 'access' | 'id';

/** One trusted issuer and what its tokens must look like. */
export interface JwtIssuerOptions {
  /** The exact `iss` of its tokens, e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC`. */
  readonly issuer: string;
  /**
   * Accepted Cognito `token_use`. Required: pass `null` to skip the check (issuers other than Cognito),
   * so that accepting id tokens where access tokens are expected is never an accident.
   */
  readonly tokenUse: TokenUse | readonly TokenUse[] | null;
  /**
   * Accepted client ids: `client_id` of access tokens (`azp`/`cid` for other issuers), `aud` of id
   * tokens. Required: pass `null` to skip the check.
   */
  readonly clientId: string | readonly string[] | null;
  /**
   * Accepted `aud` values, one of which must be present, whatever the token_use. Required for an
   * issuer other than Cognito (`tokenUse: null`): its ID tokens, and its access tokens for other APIs,
   * name the same clients as the tokens meant for this one, and only `aud` tells them apart. Pass
   * `null` there to skip the check on purpose.
   * @default undefined (aud not checked) when `tokenUse` is set
   */
  readonly audience?: string | readonly string[] | null | undefined;
  /** Where the issuer's JWKS is fetched. `null`: never fetch. @default `${issuer}/.well-known/jwks.json` */
  readonly jwksUri?: string | null | undefined;
  /** A JWKS (object or JSON text) to start from, so a cold start needs no fetch. @default undefined */
  readonly jwks?: JSONWebKeySet | string | undefined;
  /** A JWKS file to start from, read once at construction. @default undefined */
  readonly jwksFile?: string | undefined;
  /** Accepted algorithms; `none` never is. @default ['RS256', 'ES256'] */
  readonly algorithms?: readonly JwtAlgorithm[] | undefined;
  /**
   * Secret of an HS256 issuer (a string of at least 32 characters besides whitespace, or at least 32
   * bytes as a Uint8Array); needs `'HS256'` in `algorithms`. HS256 tokens are checked against this
   * secret only, never against a JWKS key. @default undefined
   */
  readonly sharedSecret?: string | Uint8Array | undefined;
  /** Claims that must be present, besides `exp` which always must. @default [] */
  readonly requiredClaims?: readonly string[] | undefined;
  /**
   * The tenants this issuer may speak for. A token of it whose tenant claim (`tenantClaim`) names another
   * tenant is refused (401, reason `wrong_tenant`), and so is one without the claim (`missing_claim`).
   * Without it the issuer may name any tenant: with several issuers, any one of them can mint a token
   * of another's tenant. @default undefined (any tenant, or none)
   */
  readonly tenants?: readonly string[] | undefined;
}

export interface JwtVerifierOptions extends ClaimMapping {
  /** The trusted issuers; a token's `iss` picks one. */
  readonly issuers: readonly JwtIssuerOptions[];
  /** Leeway for `exp` and `nbf`, in seconds. @default 5 */
  readonly clockToleranceSec?: number | undefined;
  /** Longer tokens are rejected before any parsing. @default 8192 */
  readonly maxTokenBytes?: number | undefined;
  /**
   * Cache of verified tokens by SHA-256, valid until min(exp, maxAgeSec); `false` turns it off.
   * @default { maxEntries: 10000, maxAgeSec: 300 }
   */
  readonly cache?:
    | false
    | { readonly maxEntries?: number | undefined; readonly maxAgeSec?: number | undefined }
    | undefined;
  /**
   * Least time between two JWKS fetches of one issuer; until its keys were first obtained, a failed
   * fetch is retried sooner (1 s, doubling up to this). @default 30000
   */
  readonly jwksCooldownMs?: number | undefined;
  /** Age after which a JWKS is refreshed (its keys keep working while the endpoint is down). @default 600000 */
  readonly jwksMaxAgeMs?: number | undefined;
  /** Bound on one JWKS fetch. @default 3000 */
  readonly jwksTimeoutMs?: number | undefined;
}

/** A verified token: its claims and the principal it stands for, both frozen (they are shared via the cache). */
export interface VerifiedJwt {
  readonly claims: Claims;
  readonly principal: Principal;
}

interface Issuer {
  readonly issuer: string;
  readonly tokenUse: ReadonlySet<string> | null;
  readonly clientIds: ReadonlySet<string> | null;
  readonly audience: ReadonlySet<string> | undefined;
  readonly algorithms: ReadonlySet<JwtAlgorithm>;
  readonly secret: KeyObject | undefined;
  readonly keys: JwksKeyStore | undefined;
  readonly requiredClaims: readonly string[];
  readonly tenants: ReadonlySet<string> | undefined;
}

interface Header {
  readonly alg: string;
  readonly kid: string | undefined;
  readonly typ: string | undefined;
}

const supportedAlgorithms: readonly JwtAlgorithm[] = ['RS256', 'ES256', 'HS256'];
const defaultAlgorithms: readonly JwtAlgorithm[] = ['RS256', 'ES256'];
/** Three base64url segments; the charset check also rules out padding and whitespace. */
const compactJws = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const base64urlAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The 6-bit value of each base64url character, by char code. */
const base64urlValues = new Uint8Array(128);
for (let value = 0; value < 64; value += 1) base64urlValues[base64urlAlphabet.charCodeAt(value)] = value;
/** Distinct headers are few (one per alg and kid); more than this means someone is making them up. */
const maxCachedHeaders = 64;
/**
 * JWS `typ` values of tokens that may be access tokens: plain JWTs (Cognito sets none) and RFC 9068's
 * `at+jwt`. Any other (`logout+jwt`, `secevent+jwt`, ...) marks a token issued for something else.
 */
const accessTokenTypes: ReadonlySet<string> = new Set(['jwt', 'at+jwt']);

/** RFC 7515 §4.1.9: `typ` compares without case, and `application/` may be left out. */
function isAccessTokenType(typ: string | undefined): boolean {
  return typ === undefined || accessTokenTypes.has(typ.toLowerCase().replace(/^application\//, ''));
}

/**
 * Whether a segment of base64url characters is the one encoding of its bytes. Its length must not be
 * 4n+1 (no whole byte), and when it is 4n+2 or 4n+3 its last character carries 4 or 2 bits past the
 * last byte, which every encoder leaves 0 and Buffer ignores: set, they make other strings that decode
 * to the same bytes. Checking that one character is enough; a full re-encode would cost more.
 */
function isCanonicalBase64url(segment: string): boolean {
  const remainder = segment.length % 4;
  if (remainder === 0) return true;
  if (remainder === 1) return false;
  const spareBits = remainder === 2 ? 0b1111 : 0b11;
  return ((base64urlValues[segment.charCodeAt(segment.length - 1)] as number) & spareBits) === 0;
}

function asSet<T extends string>(value: T | readonly T[]): ReadonlySet<T> {
  return new Set(typeof value === 'string' ? [value] : value);
}

function freeze<T extends object>(value: T): T {
  return Object.freeze(value);
}

/** Parses one base64url JSON segment; anything but a JSON object is undefined. */
function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function parseHeader(segment: string): Header | undefined {
  const header = decodeSegment(segment);
  if (header === undefined || typeof header['alg'] !== 'string') return undefined;
  // No JWS extension is understood here, so any critical one must fail (RFC 7515 §4.1.11); b64:false
  // would change what the signature covers. jku/jwk/x5u are never read: keys come from configuration only.
  if (header['crit'] !== undefined || (header['b64'] !== undefined && header['b64'] !== true))
    return undefined;
  if (header['kid'] !== undefined && typeof header['kid'] !== 'string') return undefined;
  if (header['typ'] !== undefined && typeof header['typ'] !== 'string') return undefined;
  return { alg: header['alg'], kid: header['kid'], typ: header['typ'] };
}

function loadJwks(options: JwtIssuerOptions, problems: string[]): JSONWebKeySet | undefined {
  let source = options.jwks;
  if (options.jwksFile !== undefined) {
    try {
      source = readFileSync(options.jwksFile, 'utf8');
    } catch {
      problems.push(`${options.issuer}: jwksFile cannot be read`);
      return undefined;
    }
  }
  if (source === undefined) return undefined;
  let jwks: unknown = source;
  if (typeof source === 'string') {
    try {
      jwks = JSON.parse(source);
    } catch {
      problems.push(`${options.issuer}: the preloaded JWKS is not JSON`);
      return undefined;
    }
  }
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as JSONWebKeySet).keys)) {
    problems.push(`${options.issuer}: the preloaded JWKS has no keys array`);
    return undefined;
  }
  return jwks as JSONWebKeySet;
}

/**
 * Adds a problem unless `value` is a finite number of milliseconds, 0 or more (the key store's rule for
 * its cooldown and maximum age: a negative or NaN cooldown would let every unknown kid fetch).
 */
function checkDuration(problems: string[], field: string, value: unknown): boolean {
  if (Number.isFinite(value) && (value as number) >= 0) return true;
  problems.push(`${field} must be a finite number of milliseconds >= 0 (got ${shownValue(value)})`);
  return false;
}

/** The JWKS options every issuer's key store gets. */
type SharedKeyStoreOptions = Pick<JwksKeyStoreOptions, 'cooldownMs' | 'maxAgeMs' | 'timeoutMs'>;

function sharedKeyStoreOptions(options: JwtVerifierOptions, problems: string[]): SharedKeyStoreOptions {
  const { jwksCooldownMs, jwksMaxAgeMs, jwksTimeoutMs } = options;
  // Listed with the verifier's other problems under its own name; a key store is never built with it,
  // since it would throw before the rest are listed.
  const timeoutUsable =
    jwksTimeoutMs !== undefined && checkTimeLimit(problems, 'jwksTimeoutMs', jwksTimeoutMs);
  const cooldownUsable =
    jwksCooldownMs !== undefined && checkDuration(problems, 'jwksCooldownMs', jwksCooldownMs);
  const maxAgeUsable = jwksMaxAgeMs !== undefined && checkDuration(problems, 'jwksMaxAgeMs', jwksMaxAgeMs);
  return {
    ...(cooldownUsable ? { cooldownMs: jwksCooldownMs } : {}),
    ...(maxAgeUsable ? { maxAgeMs: jwksMaxAgeMs } : {}),
    ...(timeoutUsable ? { timeoutMs: jwksTimeoutMs } : {}),
  };
}

/**
 * The tenants an issuer is bound to, or undefined when it is bound to none. An empty list would refuse
 * every token of the issuer, and a tenant no claim can carry (see `principalFromClaims`) would never
 * match: both are problems, as is a null, which must not silently mean "any tenant".
 */
function tenantBinding(issuer: string, value: unknown, problems: string[]): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  const field = `${issuer}: tenants`;
  const tenants = arrayOption(problems, field, value, 'of tenant ids', { nullIsAbsent: false });
  if (Array.isArray(value) && tenants.length === 0) problems.push(`${field} must not be empty`);
  for (const tenant of tenants) {
    if (typeof tenant !== 'string' || !isUsableIdentifier(tenant)) {
      problems.push(
        `${field} entries must be tenant ids a claim can carry: non-empty, at most ${maxIdentifierLength} characters, well-formed text without control characters (got ${shownValue(tenant)})`,
      );
    }
  }
  return new Set(tenants as readonly string[]);
}

function defaultJwksUri(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/jwks.json`;
}

/** Numeric-date claims must be finite numbers when present. */
function numericClaim(claims: Claims, name: string): number | undefined | false {
  const value = claims[name];
  if (value === undefined) return undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : false;
}

function includesAny(value: unknown, accepted: ReadonlySet<string>): boolean {
  if (typeof value === 'string') return accepted.has(value);
  return Array.isArray(value) && value.some((item) => typeof item === 'string' && accepted.has(item));
}

/**
 * A numeric date as an authorizer writes it: decimal digits, with a fraction if the token's had one (RFC
 * 7519's NumericDate need not be whole, and `verify` takes a fractional JSON number). No other spelling
 * Number() would read (hex, exponent, surrounding spaces) is taken for one.
 */
const decimalNumericDate = /^\d+(\.\d+)?$/;

/**
 * API Gateway's JWT authorizer hands every claim over as a string; numeric dates come back as numbers,
 * and an `aud` array, flattened to "[api userinfo]", as a list (as one string it matches no audience).
 */
function normaliseAuthorizerClaims(claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const normalised: Record<string, unknown> = { ...claims };
  for (const name of ['exp', 'nbf', 'iat', 'auth_time']) {
    const value = normalised[name];
    if (typeof value === 'string' && decimalNumericDate.test(value)) normalised[name] = Number(value);
  }
  const { aud } = normalised;
  if (typeof aud === 'string' && aud.startsWith('[') && aud.endsWith(']')) normalised['aud'] = listClaim(aud);
  return normalised;
}

/**
 * Verifies JWTs from one or more issuers. Build it once, at module scope: options are validated
 * there (every problem listed at once), keys are fetched and imported once per `kid` and algorithm,
 * and verified tokens are cached by SHA-256 until they expire, so a token seen again costs a hash and
 * a lookup.
 *
 * Signatures are checked with node:crypto `KeyObject`s (RS256, ES256) or an HMAC (HS256, only for an
 * issuer configured with a shared secret); jose fetches JWKS and imports the keys.
 *
 * @example
 * export const verifier = new JwtVerifier({
 *   issuers: [{ issuer: process.env.AUTH_ISSUER as string, tokenUse: 'access', clientId: process.env.AUTH_CLIENT_ID as string }],
 * });
 * const { principal } = await verifier.verify(token); // throws InvalidTokenError (401)
 */
export class JwtVerifier {
  private readonly issuers: ReadonlyMap<string, Issuer>;
  private readonly mapping: ClaimMapping;
  private readonly toleranceSec: number;
  private readonly maxTokenBytes: number;
  private readonly cache: TokenCache<VerifiedJwt> | undefined;
  private readonly cacheMaxAgeMs: number;
  private readonly headers = new Map<string, Header>();

  constructor(options: JwtVerifierOptions) {
    requireOptionsObject('JwtVerifier', options);
    const problems: string[] = [];
    const toleranceSec = options.clockToleranceSec ?? 5;
    const maxTokenBytes = options.maxTokenBytes ?? 8192;
    const cache =
      options.cache === false
        ? undefined
        : { maxEntries: 10_000, maxAgeSec: 300, ...definedOnly(options.cache) };
    // A string would pass a comparison and then be concatenated: `nbf > now + '5'` is never true.
    if (!(typeof toleranceSec === 'number' && toleranceSec >= 0 && toleranceSec <= 300))
      problems.push(`clockToleranceSec must be a number 0..300 (got ${shownValue(toleranceSec)})`);
    if (!(Number.isInteger(maxTokenBytes) && maxTokenBytes > 0)) problems.push('maxTokenBytes must be > 0');
    if (cache && !(Number.isSafeInteger(cache.maxEntries) && cache.maxEntries > 0)) {
      problems.push('cache.maxEntries must be a positive integer');
    }
    if (cache && !(Number.isFinite(cache.maxAgeSec) && cache.maxAgeSec > 0))
      problems.push('cache.maxAgeSec must be a finite number > 0');
    const issuerList = arrayOption(problems, 'issuers', options.issuers, 'of issuer options');
    if (issuerList.length === 0 && (Array.isArray(options.issuers) || options.issuers == null))
      problems.push('issuers must not be empty');
    for (const field of ['rolesClaim', 'tenantClaim'] as const) {
      const claim = options[field];
      // '' or a non-string names a claim no token carries: every caller would silently lack roles or a tenant.
      if (claim !== undefined && !(typeof claim === 'string' && claim.length > 0))
        problems.push(`${field} must be a non-empty claim name (got ${shownValue(claim)})`);
    }
    const keyStoreOptions = sharedKeyStoreOptions(options, problems);
    const issuers = new Map<string, Issuer>();
    for (const issuerOptions of issuerList as readonly JwtIssuerOptions[]) {
      if (typeof issuerOptions !== 'object' || issuerOptions === null) {
        problems.push(`every issuer must be an object (got ${shownValue(issuerOptions)})`);
        continue;
      }
      const issuer = this.buildIssuer(issuerOptions, keyStoreOptions, problems);
      if (issuers.has(issuerOptions.issuer)) problems.push(`${issuerOptions.issuer}: listed twice`);
      if (issuer) issuers.set(issuer.issuer, issuer);
    }
    assertNoProblems('JwtVerifier', problems);
    this.issuers = issuers;
    this.mapping = { rolesClaim: options.rolesClaim, tenantClaim: options.tenantClaim };
    this.toleranceSec = toleranceSec;
    this.maxTokenBytes = maxTokenBytes;
    this.cache = cache ? new TokenCache(cache.maxEntries) : undefined;
    this.cacheMaxAgeMs = (cache?.maxAgeSec ?? 0) * 1000;
  }

  private buildIssuer(
    options: JwtIssuerOptions,
    keyStoreOptions: SharedKeyStoreOptions,
    problems: string[],
  ): Issuer | undefined {
    const name = typeof options.issuer === 'string' && options.issuer.length > 0 ? options.issuer : undefined;
    if (name === undefined) {
      problems.push('every issuer needs an issuer string');
      return undefined;
    }
    // No token's `iss` has edge whitespace: such an issuer (a padded environment value) matches nothing.
    if (name.trim() !== name) {
      problems.push(`${JSON.stringify(name)}: issuer has leading or trailing whitespace`);
      return undefined;
    }
    const before = problems.length;
    if (options.tokenUse === undefined)
      problems.push(`${name}: tokenUse is required (null to skip the check)`);
    if (options.clientId === undefined)
      problems.push(`${name}: clientId is required (null to skip the check)`);
    // Without token_use to tell them apart, an ID token or another API's access token for the same
    // client would pass: only `aud` can refuse them.
    if (options.tokenUse === null && options.audience === undefined)
      problems.push(`${name}: audience is required when tokenUse is null (null to skip the check)`);
    // An empty list, or a blank or misspelt entry, would refuse every token (or, for tokenUse, every use).
    const lists = { tokenUse: options.tokenUse, clientId: options.clientId, audience: options.audience };
    for (const [field, value] of Object.entries(lists)) {
      if (value === undefined || value === null) continue;
      const entries: unknown[] = Array.isArray(value) ? value : [value];
      const bad =
        entries.length === 0 || entries.some((entry) => typeof entry !== 'string' || entry.trim() === '');
      if (bad) problems.push(`${name}: ${field} must be a non-empty string or list of them`);
      else if (field === 'tokenUse' && entries.some((entry) => entry !== 'access' && entry !== 'id'))
        problems.push(`${name}: tokenUse must be 'access', 'id' or both (got ${shownValue(value)})`);
    }
    // A string would be walked letter by letter, requiring claims named e, m, a… that no token carries.
    for (const claim of arrayOption(
      problems,
      `${name}: requiredClaims`,
      options.requiredClaims,
      'of claim names',
    )) {
      if (typeof claim !== 'string' || claim.length === 0) {
        problems.push(
          `${name}: requiredClaims entries must be non-empty claim names (got ${shownValue(claim)})`,
        );
      }
    }
    const tenants = tenantBinding(name, options.tenants, problems);
    const algorithms = options.algorithms ?? defaultAlgorithms;
    if (!Array.isArray(algorithms)) {
      problems.push(`${name}: algorithms must be a list (got ${shownValue(algorithms)})`);
      return undefined;
    }
    for (const alg of algorithms) {
      if (!supportedAlgorithms.includes(alg))
        problems.push(`${name}: algorithm ${String(alg)} is not supported`);
    }
    if (algorithms.length === 0) problems.push(`${name}: algorithms must not be empty`);
    const hmac = algorithms.includes('HS256');
    const secretBytes =
      options.sharedSecret === undefined
        ? undefined
        : typeof options.sharedSecret === 'string'
          ? Buffer.from(options.sharedSecret, 'utf8')
          : Buffer.from(options.sharedSecret);
    if (hmac && secretBytes === undefined) problems.push(`${name}: HS256 needs a sharedSecret`);
    if (!hmac && secretBytes !== undefined)
      problems.push(`${name}: a sharedSecret needs HS256 in algorithms`);
    if (typeof options.sharedSecret === 'string' && !isUsableSecretValue(options.sharedSecret)) {
      problems.push(`${name}: sharedSecret must be at least 32 characters besides whitespace`);
    } else if (secretBytes !== undefined && secretBytes.length < 32) {
      problems.push(`${name}: sharedSecret must be at least 32 bytes`);
    } else if (secretBytes !== undefined && !isUsableSecretBytes(secretBytes)) {
      problems.push(`${name}: sharedSecret must be at least 32 characters besides whitespace`);
    }
    if (options.jwks !== undefined && options.jwksFile !== undefined) {
      problems.push(`${name}: give jwks or jwksFile, not both`);
    }
    const asymmetric = algorithms.some((alg) => alg !== 'HS256');
    const beforeJwks = problems.length;
    const jwks = asymmetric ? loadJwks(options, problems) : undefined;
    const jwksUnreadable = problems.length > beforeJwks;
    const jwksUri = options.jwksUri === undefined ? defaultJwksUri(name) : options.jwksUri;
    if (jwksUri !== null && !(URL.canParse(jwksUri) && /^https?:$/.test(new URL(jwksUri).protocol))) {
      problems.push(
        options.jwksUri === undefined
          ? `${name}: issuer is not an http(s) URL, so no default jwksUri can be made from it (give jwksUri)`
          : `${name}: jwksUri is not an http(s) URL`,
      );
    }
    // Nothing to fetch and nothing preloaded would refuse every token with a 503 that reads as an
    // outage, though it is a misconfiguration no retry can mend.
    if (asymmetric && jwksUri === null && !jwksUnreadable && (jwks?.keys.length ?? 0) === 0) {
      problems.push(
        `${name}: no signing keys: give jwks, jwksFile or jwksUri (jwksUri: null never fetches), or allow only HS256`,
      );
    }
    if (problems.length > before) return undefined;
    return {
      issuer: name,
      tokenUse: options.tokenUse === null || options.tokenUse === undefined ? null : asSet(options.tokenUse),
      clientIds: options.clientId === null || options.clientId === undefined ? null : asSet(options.clientId),
      audience:
        options.audience === undefined || options.audience === null ? undefined : asSet(options.audience),
      algorithms: new Set(algorithms),
      secret: secretBytes === undefined ? undefined : createSecretKey(secretBytes),
      keys: asymmetric
        ? new JwksKeyStore({ uri: jwksUri ?? undefined, preload: jwks, ...keyStoreOptions })
        : undefined,
      requiredClaims: options.requiredClaims ?? [],
      tenants,
    };
  }

  /** JWKS fetches attempted so far, summed over issuers (for tests and metrics). */
  get jwksFetchCount(): number {
    let count = 0;
    for (const issuer of this.issuers.values()) count += issuer.keys?.fetchCount ?? 0;
    return count;
  }

  /**
   * Verifies a compact JWS and returns its claims and principal.
   * @throws InvalidTokenError (401) naming the reason; ServiceUnavailableError (503) when the
   * issuer's keys were never obtainable.
   */
  verify(token: string): Promise<VerifiedJwt> {
    // Not an async function: a cache hit, and a miss whose key is already imported, settle without
    // one more promise and await; only a key fetch goes asynchronous.
    try {
      if (token.length > this.maxTokenBytes) throw credentialError('too_large');
      const cache = this.cache;
      const nowMs = Date.now();
      const key = cache === undefined ? '' : TokenCache.keyOf(token);
      const cached = cache?.get(key, nowMs);
      if (cached !== undefined) return Promise.resolve(cached);
      const remember = (verified: VerifiedJwt): VerifiedJwt => {
        if (cache === undefined) return verified;
        const expMs = ((verified.claims['exp'] as number) + this.toleranceSec) * 1000;
        return cache.set(key, verified, Math.min(expMs, nowMs + this.cacheMaxAgeMs));
      };
      const verified = this.verifyUncached(token);
      return verified instanceof Promise ? verified.then(remember) : Promise.resolve(remember(verified));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Accepts claims an API Gateway JWT authorizer already verified (signature, exp, aud or client_id),
   * applying this verifier's issuer, token_use, client id, audience and expiry rules to them.
   */
  verifyAuthorizerClaims(claims: Readonly<Record<string, unknown>>): VerifiedJwt {
    const normalised = normaliseAuthorizerClaims(claims);
    const issuer = typeof normalised['iss'] === 'string' ? this.issuers.get(normalised['iss']) : undefined;
    if (issuer === undefined) throw credentialError('wrong_issuer');
    return this.accept(issuer, normalised);
  }

  /** The verification itself: synchronous unless the signing key must be fetched first. */
  private verifyUncached(token: string): VerifiedJwt | Promise<VerifiedJwt> {
    const firstDot = token.indexOf('.');
    const lastDot = token.lastIndexOf('.');
    if (!compactJws.test(token)) {
      const threeParts =
        firstDot > 0 && lastDot > firstDot + 1 && token.indexOf('.', firstDot + 1) === lastDot;
      // An unsecured JWT (RFC 7519 §6) has an empty signature: name it for what it is.
      if (threeParts && lastDot === token.length - 1) {
        const header = parseHeader(token.slice(0, firstDot));
        throw credentialError(header?.alg.toLowerCase() === 'none' ? 'alg_none' : 'malformed');
      }
      throw credentialError(threeParts ? 'bad_base64' : 'malformed');
    }
    const headerSegment = token.slice(0, firstDot);
    const payloadSegment = token.slice(firstDot + 1, lastDot);
    const signatureSegment = token.slice(lastDot + 1);
    // Buffer decodes leniently (drops a stray last character, ignores spare bits), which would let
    // several strings pass for one token: in the verifier's cache, a deny list, a log search.
    if (
      !isCanonicalBase64url(payloadSegment) ||
      !isCanonicalBase64url(signatureSegment) ||
      !isCanonicalBase64url(headerSegment)
    ) {
      throw credentialError('bad_base64');
    }
    const header = this.header(headerSegment);
    if (header.alg.toLowerCase() === 'none') throw credentialError('alg_none');
    const claims = decodeSegment(payloadSegment);
    if (claims === undefined) throw credentialError('malformed');
    const issuer = typeof claims['iss'] === 'string' ? this.issuers.get(claims['iss']) : undefined;
    if (issuer === undefined) throw credentialError('wrong_issuer');
    if (!issuer.algorithms.has(header.alg as JwtAlgorithm)) throw credentialError('alg_not_allowed');
    const signature = Buffer.from(signatureSegment, 'base64url');
    const signingInput = token.slice(0, lastDot);
    const check = (valid: boolean): VerifiedJwt => {
      if (!valid) throw credentialError('bad_signature');
      if (!isAccessTokenType(header.typ)) {
        throw credentialError('wrong_token_type', { credential: this.signer(issuer, claims) });
      }
      return this.accept(issuer, claims);
    };
    if (header.alg === 'HS256')
      return check(this.verifyHmac(issuer.secret as KeyObject, signingInput, signature));
    const alg = header.alg as AsymmetricAlgorithm;
    if (header.kid === undefined) throw credentialError('missing_kid');
    const keys = issuer.keys as JwksKeyStore;
    const known = keys.peek(header.kid, alg);
    if (known !== undefined) return check(this.verifyAsymmetric(known, alg, signingInput, signature));
    return this.resolveKey(keys, header.kid, alg).then((key) =>
      check(this.verifyAsymmetric(key, alg, signingInput, signature)),
    );
  }

  private header(segment: string): Header {
    let header = this.headers.get(segment);
    if (header === undefined) {
      header = parseHeader(segment);
      if (header === undefined) throw credentialError('malformed');
      if (this.headers.size >= maxCachedHeaders) this.headers.clear();
      this.headers.set(segment, header);
    }
    return header;
  }

  private async resolveKey(keys: JwksKeyStore, kid: string, alg: AsymmetricAlgorithm): Promise<KeyObject> {
    try {
      return await keys.resolve(kid, alg);
    } catch (error) {
      if (!(error instanceof KeyLookupError)) throw error;
      if (error.failure === 'unavailable') {
        // Retry-After is when the store will try a fetch again: a client retrying sooner would only be
        // refused again. (An issuer whose store never fetches has preloaded keys: construction sees to it.)
        const retryAfterSec =
          error.retryInMs === undefined ? undefined : Math.max(1, Math.ceil(error.retryInMs / 1000));
        const message = 'The signing keys of the token issuer are unavailable';
        throw new ServiceUnavailableError(message, retryAfterSec, { cause: error });
      }
      throw credentialError(error.failure === 'unknown_kid' ? 'unknown_kid' : 'alg_not_allowed', {
        cause: error,
      });
    }
  }

  private verifyAsymmetric(
    key: KeyObject,
    alg: AsymmetricAlgorithm,
    input: string,
    signature: Buffer,
  ): boolean {
    if (alg === 'RS256') return cryptoVerify('sha256', Buffer.from(input, 'latin1'), key, signature);
    // JWS carries ECDSA signatures as r || s (IEEE P1363), 64 bytes for P-256.
    if (signature.length !== 64) return false;
    return cryptoVerify(
      'sha256',
      Buffer.from(input, 'latin1'),
      { key, dsaEncoding: 'ieee-p1363' },
      signature,
    );
  }

  private verifyHmac(secret: KeyObject, input: string, signature: Buffer): boolean {
    const expected = createHmac('sha256', secret).update(input, 'latin1').digest();
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }

  /** Applies the claim rules (jose's semantics for exp/nbf/iss/aud) and builds the principal. */
  private accept(issuer: Issuer, claims: Record<string, unknown>): VerifiedJwt {
    const reason = this.claimProblem(issuer, claims);
    if (reason !== undefined) throw credentialError(reason, { credential: this.signer(issuer, claims) });
    const principal = principalFromClaims(claims, this.mapping);
    if (principal === undefined)
      throw credentialError('missing_claim', { credential: this.signer(issuer, claims) });
    if (issuer.tenants !== undefined) {
      // A bound issuer vouches for its own tenants only; a token of it naming none would take whatever
      // tenant an unclaimedTenant (authenticate's or a guard's) assumes, which it does not vouch for.
      if (principal.tenantId === undefined)
        throw credentialError('missing_claim', { credential: this.signer(issuer, claims) });
      if (!issuer.tenants.has(principal.tenantId)) {
        throw credentialError('wrong_tenant', { credential: this.signer(issuer, claims) });
      }
    }
    freeze(principal.scopes);
    freeze(principal.roles);
    return freeze({ claims: freeze(claims), principal: freeze(principal) });
  }

  /**
   * Whose a token refused after its signature checked out is (or, from an API Gateway authorizer, after
   * API Gateway checked it): its issuer, and what of its principal ids is well-formed enough to log.
   */
  private signer(issuer: Issuer, claims: Claims): RejectedCredential {
    const principal = principalFromClaims(claims, this.mapping);
    const clientId = getClientId(claims);
    return {
      verified: true,
      issuer: issuer.issuer,
      subject: principal?.id,
      clientId: clientId !== undefined && isUsableIdentifier(clientId) ? clientId : undefined,
      tenantId: principal?.tenantId,
    };
  }

  private claimProblem(issuer: Issuer, claims: Claims): AuthFailureReason | undefined {
    const nowSec = Math.floor(Date.now() / 1000);
    const exp = numericClaim(claims, 'exp');
    const nbf = numericClaim(claims, 'nbf');
    if (exp === undefined) return 'missing_claim';
    if (exp === false || nbf === false || numericClaim(claims, 'iat') === false) return 'malformed';
    if (exp <= nowSec - this.toleranceSec) return 'expired';
    if (nbf !== undefined && nbf > nowSec + this.toleranceSec) return 'not_yet_valid';
    if (issuer.audience !== undefined && !includesAny(claims['aud'], issuer.audience))
      return 'wrong_audience';
    const tokenUse = claims['token_use'];
    if (issuer.tokenUse !== null && !(typeof tokenUse === 'string' && issuer.tokenUse.has(tokenUse))) {
      return 'wrong_token_use';
    }
    if (issuer.clientIds !== null) {
      // Cognito id tokens name their client in aud; access tokens (and other issuers') in client_id.
      const client = tokenUse === 'id' ? claims['aud'] : getClientId(claims);
      if (!includesAny(client, issuer.clientIds)) return 'wrong_client';
    }
    for (const name of issuer.requiredClaims) if (claims[name] === undefined) return 'missing_claim';
    return undefined;
  }
}
