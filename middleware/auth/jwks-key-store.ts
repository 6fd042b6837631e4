// An issuer's signing keys: fetched and imported by jose, held as node:crypto KeyObjects, refreshed at most once per cooldown.
import { KeyObject, type webcrypto } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  jwksCache,
} from 'jose';
import { retryBackoffMs } from '../dependency-failure.js';
import { assertNoProblems, BulwarkError } from '../errors.js';
import { requireOptionsObject, shownValue } from '../options.js';
import { checkTimeLimit } from '../time-limits.js';

/** The asymmetric algorithms a JWKS key may verify. */
export type AsymmetricAlgorithm = 'RS256' | 'ES256';

/** Why no key could be given for a token. */
export type KeyLookupFailure = 'unknown_kid' | 'key_mismatch' | 'unavailable';

/**
 * No key for a token, and `failure` says why. `JwtVerifier` answers it (a 401 or a 503), so it reaches a
 * caller only from a store used directly.
 */
export class KeyLookupError extends BulwarkError {
  declare readonly code: 'KEY_LOOKUP_FAILED';
  /** For `unavailable`: milliseconds until the store will fetch again; undefined when it never fetches. */
  readonly retryInMs: number | undefined;

  constructor(
    readonly failure: KeyLookupFailure,
    options: { cause?: unknown; retryInMs?: number | undefined } = {},
  ) {
    super('KEY_LOOKUP_FAILED', `Signing key lookup failed: ${failure}`, { cause: options.cause });
    // Written out, as errors.ts does for its own classes: a minifier renames the class.
    this.name = 'KeyLookupError';
    this.retryInMs = options.retryInMs;
  }
}

export interface JwksKeyStoreOptions {
  /** Where the JWKS is fetched from; without one only the preloaded set is used (no network at all). @default undefined */
  readonly uri?: string | undefined;
  /** A JWKS to start from, so a cold start needs no fetch. @default undefined */
  readonly preload?: JSONWebKeySet | undefined;
  /**
   * Least time between two fetches, whatever their cause (unknown kid, stale set, failure), except that
   * a store holding no keys yet retries a failed fetch sooner (1 s, doubling up to this). @default 30000
   */
  readonly cooldownMs?: number | undefined;
  /** Age after which the set is refreshed; its keys keep working while refreshes fail. @default 600000 */
  readonly maxAgeMs?: number | undefined;
  /** Bound on one fetch. @default 3000 */
  readonly timeoutMs?: number | undefined;
}

type KeySelector = (header: JWSHeaderParameters) => Promise<webcrypto.CryptoKey>;

/** Refuses keys that do not fit the algorithm (jose already matched kty; this also bounds key strength). */
function fitsAlgorithm(key: KeyObject, alg: AsymmetricAlgorithm): boolean {
  if (key.type !== 'public') return false;
  const details = key.asymmetricKeyDetails;
  if (alg === 'RS256') return key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048;
  return key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1';
}

/**
 * Where an imported key is kept: by algorithm and `kid`, since a set may hold an RSA and an EC key under
 * one kid (RFC 7517 §4.5). Keys are imported before any signature is checked, so a slot per kid alone
 * would let a forged token of the other algorithm displace the key genuine tokens use.
 */
const slotOf = (kid: string, alg: AsymmetricAlgorithm) => `${alg}:${kid}`;

/**
 * Keys by `kid` and algorithm, imported once and kept as node:crypto `KeyObject`s (verifying with
 * them costs an eighth of WebCrypto's `subtle.verify`). jose fetches the set (timeout, redirects
 * refused, JSON and JWKS shape validated), selects the key for a `kid`/`alg` pair and imports it.
 *
 * Rules: one fetch per cooldown at most, whatever asks for it, so a flood of unknown kids costs one
 * fetch; the set is refreshed once it is older than `maxAgeMs`, dropping keys the issuer removed; a
 * failed fetch keeps the last good keys working. A store that has no keys yet retries a failed fetch
 * after a backoff instead (1 s, doubling up to the cooldown). Create one store per issuer at module scope.
 *
 * @example
 * const store = new JwksKeyStore({ uri: `${issuer}/.well-known/jwks.json` });
 * const key = store.peek(kid, 'RS256') ?? (await store.resolve(kid, 'RS256'));
 */
type RemoteKeySet = ReturnType<typeof createRemoteJWKSet>;

export class JwksKeyStore {
  /** jose's fetching key set, built on first use: building it loads Node's fetch (undici), a cold-start cost no request without a token needs. */
  private readonly createRemote: (() => RemoteKeySet) | undefined;
  private remoteSet: RemoteKeySet | undefined;
  private readonly localSelector: KeySelector | undefined;
  private readonly cooldownMs: number;
  private readonly maxAgeMs: number;
  private readonly keys = new Map<string, KeyObject>();
  /** When the current set was fetched or preloaded; -Infinity until there is one. */
  private loadedAt = Number.NEGATIVE_INFINITY;
  /** No fetch starts before this: the end of the last fetch plus the cooldown, or plus the backoff. */
  private nextFetchAt = Number.NEGATIVE_INFINITY;
  /** Failed fetches since the last success; while there are no keys, the next backoff is 2^n seconds. */
  private consecutiveFailures = 0;
  private refreshing: Promise<boolean> | undefined;
  private fetches = 0;

  constructor(options: JwksKeyStoreOptions) {
    requireOptionsObject('JwksKeyStore', options);
    // jose hands it to AbortSignal.timeout(): a value that throws there or fires at once would fail
    // every fetch, and every token would be answered 503.
    const timeoutDuration = options.timeoutMs ?? 3000;
    const problems: string[] = [];
    checkTimeLimit(problems, 'timeoutMs', timeoutDuration);
    const cooldownMs = options.cooldownMs ?? 30_000;
    const maxAgeMs = options.maxAgeMs ?? 600_000;
    // Compared with elapsed time only: a negative or NaN cooldown would let every unknown kid fetch.
    for (const [field, value] of [
      ['cooldownMs', cooldownMs],
      ['maxAgeMs', maxAgeMs],
    ] as const) {
      if (!(Number.isFinite(value) && value >= 0))
        problems.push(`${field} must be a finite number of milliseconds >= 0 (got ${shownValue(value)})`);
    }
    // Checked now, as jose would on building the set, so a bad uri still fails at construction.
    if (options.uri !== undefined && !URL.canParse(options.uri))
      problems.push(`uri is not a URL (got ${shownValue(options.uri)})`);
    assertNoProblems('JwksKeyStore', problems);
    this.cooldownMs = cooldownMs;
    // A set that is never fetched (preload only) cannot go stale.
    this.maxAgeMs = options.uri === undefined ? Number.POSITIVE_INFINITY : maxAgeMs;
    const now = Date.now();
    if (options.uri !== undefined) {
      const url = new URL(options.uri);
      const preload = options.preload;
      // jose's own freshness and cooldown rules are switched off (Infinity): this class decides when
      // to fetch, so that failed fetches are paced too and stale keys outlive an outage.
      this.createRemote = () =>
        createRemoteJWKSet(url, {
          timeoutDuration,
          cooldownDuration: Number.POSITIVE_INFINITY,
          cacheMaxAge: Number.POSITIVE_INFINITY,
          ...(preload ? { [jwksCache]: { jwks: preload, uat: now } } : {}),
        });
    } else if (options.preload) {
      this.localSelector = createLocalJWKSet(options.preload);
    }
    if (options.preload) this.loadedAt = now;
  }

  private get selector(): KeySelector | undefined {
    if (this.createRemote === undefined) return this.localSelector;
    this.remoteSet ??= this.createRemote();
    return this.remoteSet;
  }

  private get reload(): (() => Promise<void>) | undefined {
    if (this.createRemote === undefined) return undefined;
    this.remoteSet ??= this.createRemote();
    return this.remoteSet.reload;
  }

  /** Fetches attempted so far, for tests and metrics. */
  get fetchCount(): number {
    return this.fetches;
  }

  /** The key for `kid` and `alg` if it is imported and the set is fresh: the synchronous hot path. */
  peek(kid: string, alg: AsymmetricAlgorithm): KeyObject | undefined {
    const imported = this.keys.get(slotOf(kid, alg));
    if (imported === undefined) return undefined;
    return Date.now() - this.loadedAt < this.maxAgeMs ? imported : undefined;
  }

  /**
   * The key for `kid` and `alg`: refreshes the set first when it is stale, and again (cooldown
   * permitting) when the set lacks such a key, since the issuer may have rotated its keys.
   */
  async resolve(kid: string, alg: AsymmetricAlgorithm): Promise<KeyObject> {
    if (Date.now() - this.loadedAt >= this.maxAgeMs) await this.refreshWithinCooldown();
    const imported = this.keys.get(slotOf(kid, alg));
    if (imported !== undefined) return imported;
    const selector = this.selector;
    if (selector === undefined || this.loadedAt === Number.NEGATIVE_INFINITY) {
      const retryInMs =
        this.createRemote === undefined ? undefined : Math.max(0, this.nextFetchAt - Date.now());
      throw new KeyLookupError('unavailable', { retryInMs });
    }
    try {
      return await this.importKey(selector, kid, alg);
    } catch (error) {
      if (!(error instanceof KeyLookupError && error.failure === 'unknown_kid')) throw error;
      if (!(await this.refreshWithinCooldown())) throw error;
      return this.importKey(selector, kid, alg);
    }
  }

  private async importKey(selector: KeySelector, kid: string, alg: AsymmetricAlgorithm): Promise<KeyObject> {
    let key: KeyObject;
    try {
      key = KeyObject.from(await selector({ alg, kid }));
    } catch (error) {
      // No key with that kid usable for that alg (or several, which is as untrustworthy).
      if (error instanceof errors.JWKSNoMatchingKey)
        throw new KeyLookupError('unknown_kid', { cause: error });
      throw new KeyLookupError('key_mismatch', { cause: error });
    }
    if (!fitsAlgorithm(key, alg)) throw new KeyLookupError('key_mismatch');
    this.keys.set(slotOf(kid, alg), key);
    return key;
  }

  /** Fetches the set unless the wait after the last fetch is still running; true when a (joined) fetch succeeded. */
  private async refreshWithinCooldown(): Promise<boolean> {
    const reload = this.reload;
    if (reload === undefined) return false;
    if (this.refreshing === undefined) {
      if (Date.now() < this.nextFetchAt) return false;
      this.fetches += 1;
      this.refreshing = reload()
        .then(
          () => {
            this.loadedAt = Date.now();
            this.nextFetchAt = this.loadedAt + this.cooldownMs;
            this.consecutiveFailures = 0;
            // Re-import from the new set on demand, so a key the issuer withdrew stops working.
            this.keys.clear();
            return true;
          },
          // Keep the last good keys: an unreachable JWKS endpoint must not log everyone out.
          () => {
            this.nextFetchAt = Date.now() + this.waitAfterFailure();
            this.consecutiveFailures += 1;
            return false;
          },
        )
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.refreshing;
  }

  /**
   * The cooldown bounds the fetches unknown kids can cause. With keys loaded a failed fetch costs
   * little (known keys keep working), so it counts as a whole cooldown. Without keys every token is
   * refused until a fetch succeeds, and one failed fetch on a cold instance (a blip, a timeout) must
   * not refuse them all for the whole cooldown: such a store backs off instead, 1 s, 2 s, 4 s... but
   * never longer than the cooldown, so a lasting outage still costs one fetch per cooldown.
   */
  private waitAfterFailure(): number {
    if (this.loadedAt !== Number.NEGATIVE_INFINITY) return this.cooldownMs;
    return retryBackoffMs(this.consecutiveFailures + 1, this.cooldownMs);
  }
}
