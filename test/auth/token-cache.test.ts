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
