import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenCache } from '../../middleware/auth/token-cache.js';
import { InvalidOptionsError } from '../../middleware/errors.js';

describe('TokenCache', () => {
  it('refuses a maxEntries that is not a whole number >= 1: 0 would evict forever, NaN never', () => {
    for (const [maxEntries, shown] of [
      [0, '0'],
      [-1, '-1'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
    ] as const) {
      let thrown: unknown;
      try {
        new TokenCache<string>(maxEntries);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as Error).message).toBe(
        `Invalid TokenCache options: maxEntries must be a whole number >= 1 (got ${shown})`,
      );
    }
  });

  it('keeps one entry, the newest, at maxEntries 1', () => {
    const cache = new TokenCache<string>(1);
    cache.set('a', 'A', 1000);
    cache.set('b', 'B', 1000);
    expect(cache.size).toBe(1);
    expect(cache.get('b', 0)).toBe('B');
  });

  it('keys credentials by their SHA-256, never by the credential itself', () => {
    const key = TokenCache.keyOf('header.payload.signature');
    expect(key).toHaveLength(32);
    expect(key).not.toContain('signature');
    expect(TokenCache.keyOf('header.payload.signaturf')).not.toBe(key);
  });

  it('forgets an entry at its own expiry', () => {
    const cache = new TokenCache<string>(10);
    cache.set('a', 'A', 1000);
    expect(cache.get('a', 999)).toBe('A');
    expect(cache.get('a', 1000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the oldest entry not used since, giving used ones a second chance', () => {
    const cache = new TokenCache<string>(2);
    cache.set('a', 'A', Number.POSITIVE_INFINITY);
    cache.set('b', 'B', Number.POSITIVE_INFINITY);
    expect(cache.get('a', 0)).toBe('A');
    cache.set('c', 'C', Number.POSITIVE_INFINITY);
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)).toBe('A');
    expect(cache.get('c', 0)).toBe('C');
    expect(cache.size).toBe(2);
  });

  it('stays bounded when every entry was used', () => {
    const cache = new TokenCache<number>(3);
    for (let index = 0; index < 3; index += 1) cache.set(String(index), index, Number.POSITIVE_INFINITY);
    for (let index = 0; index < 3; index += 1) cache.get(String(index), 0);
    cache.set('new', 9, Number.POSITIVE_INFINITY);
    expect(cache.size).toBe(3);
    expect(cache.get('new', 0)).toBe(9);
  });

  it('deletes and clears on request', () => {
    const cache = new TokenCache<string>(5);
    cache.set('a', 'A', Number.POSITIVE_INFINITY);
    cache.set('b', 'B', Number.POSITIVE_INFINITY);
    cache.delete('a');
    expect(cache.get('a', 0)).toBeUndefined();
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('b', 0)).toBeUndefined();
  });
});

describe('TokenCache against a map of what was set', () => {
  const step = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key: fc.nat(8), ttlMs: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ kind: fc.constant('get' as const), key: fc.nat(8), waitMs: fc.nat(5) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.nat(8) }),
  );

  it('holds at most maxEntries, and a hit is always the unexpired value last set for that key', () => {
    fc.assert(
      // Up to 12 entries: from 9, the number of keys, it never evicts, and each get must match the map exactly.
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(step, { maxLength: 60 }), (maxEntries, steps) => {
        const cache = new TokenCache<string>(maxEntries);
        const lastSet = new Map<string, { value: string; validUntilMs: number }>();
        let now = 0;
        steps.forEach((current, index) => {
          const key = String(current.key);
          if (current.kind === 'set') {
            const entry = { value: `value-${index}`, validUntilMs: now + current.ttlMs };
            cache.set(key, entry.value, entry.validUntilMs);
            lastSet.set(key, entry);
          } else if (current.kind === 'delete') {
            cache.delete(key);
            lastSet.delete(key);
          } else {
            now += current.waitMs;
            const hit = cache.get(key, now);
            const expected = lastSet.get(key);
            const live = expected !== undefined && now < expected.validUntilMs ? expected.value : undefined;
            // When it may have evicted the key, a miss is allowed; a hit must still be the live value.
            if (hit !== undefined || maxEntries >= 9) expect(hit).toBe(live);
          }
          expect(cache.size).toBeLessThanOrEqual(maxEntries);
        });
      }),
      { numRuns: 1000 },
    );
  });
});
