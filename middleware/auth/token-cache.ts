// A bounded cache of verification results keyed by SHA-256 of the credential: a repeated token costs no signature check.
import { hash } from 'node:crypto';
import { InvalidOptionsError } from '../errors.js';
import { shownValue } from '../options.js';

interface Entry<V> {
  readonly value: V;
  readonly validUntilMs: number;
  /** Used since it was inserted or last given a second chance (CLOCK's reference bit). */
  recent: boolean;
}

/**
 * Bounded cache of verified credentials with second-chance (CLOCK) eviction, the usual LRU
 * approximation: a hit only sets a flag, so the hot path costs one Map lookup and never reorders
 * the Map; when full, the oldest entry not used since its last chance goes. `JwtVerifier` keys it
 * by SHA-256 digests ({@link TokenCache.keyOf}), so the cache never holds a usable bearer token and a
 * forged token can only hit an entry by colliding SHA-256; `ApiKeyStore` by key ids, which are not
 * secret. Entries carry their own expiry (the token's `exp`, capped by the cache's max age).
 *
 * @example
 * const cache = new TokenCache<VerifiedJwt>(10_000);
 * const key = TokenCache.keyOf(token);
 * cache.get(key, Date.now()) ?? cache.set(key, await verify(token), expiresAtMs);
 */
export class TokenCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(private readonly maxEntries: number) {
    // Below 1, set() would evict the entry it just inserted, which evictOne passes over forever; NaN would never evict.
    if (!(Number.isSafeInteger(maxEntries) && maxEntries >= 1)) {
      throw new InvalidOptionsError('TokenCache', [
        `maxEntries must be a whole number >= 1 (got ${shownValue(maxEntries)})`,
      ]);
    }
  }

  /** The cache key of a credential: its SHA-256 as a 32-character binary (latin1) string, the cheapest Map key. */
  static keyOf(credential: string): string {
    return hash('sha256', credential, 'binary');
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, nowMs: number): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.validUntilMs <= nowMs) {
      this.entries.delete(key);
      return undefined;
    }
    entry.recent = true;
    return entry.value;
  }

  set(key: string, value: V, validUntilMs: number): V {
    this.entries.delete(key);
    this.entries.set(key, { value, validUntilMs, recent: false });
    if (this.entries.size > this.maxEntries) this.evictOne(key);
    return value;
  }

  /**
   * Drops the oldest entry not used since its last chance; used ones move to the back with their
   * flag cleared. The entry just inserted is passed over, so it is never its own victim.
   */
  private evictOne(inserted: string): void {
    // Terminates: one sweep clears every other flag, so the next sweep finds a victim at the latest.
    for (const [key, entry] of this.entries) {
      this.entries.delete(key);
      if (key !== inserted && !entry.recent) return;
      entry.recent = false;
      this.entries.set(key, entry);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
