import { describe, expect, it } from 'vitest';
import { TokenCache } from '../../middleware/auth/token-cache.js';

describe('TokenCache', () => {
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
