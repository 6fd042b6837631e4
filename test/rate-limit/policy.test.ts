import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimitHeaders, strictestOutcome } from '../../middleware/rate-limit/headers.js';
import {
  gcraParameters,
  mostAdmittedWithin,
  policyProblems,
  rateLimitPresets,
  resolvePolicy,
  scalePolicy,
} from '../../middleware/rate-limit/policy.js';
import type { RateLimitResult } from '../../middleware/rate-limit/rate-limiter.js';

describe('rate-limit policies', () => {
  it('offers the seed presets', () => {
    expect(rateLimitPresets).toEqual({
      public: { limit: 100, windowSec: 3600 },
      authenticated: { limit: 500, windowSec: 3600 },
      admin: { limit: 1000, windowSec: 3600 },
      strict: { limit: 10, windowSec: 60 },
      login: { limit: 10, windowSec: 60 },
      register: { limit: 3, windowSec: 300 },
      passwordReset: { limit: 5, windowSec: 60 },
      mfaVerify: { limit: 1, windowSec: 10 },
    });
    expect(resolvePolicy('mfaVerify')).toEqual({ name: 'mfaVerify', limit: 1, windowSec: 10 });
  });

  it('names a custom policy after its numbers unless given a name', () => {
    expect(resolvePolicy({ limit: 20, windowSec: 60 })).toEqual({
      name: '20-per-60s',
      limit: 20,
      windowSec: 60,
    });
    expect(resolvePolicy({ name: 'search.v2', limit: 20, windowSec: 60 }).name).toBe('search.v2');
  });

  it.each([
    ['a name with a quote', { name: 'a"b', limit: 1, windowSec: 1 }],
    ['a name with a hash', { name: 'a#b', limit: 1, windowSec: 1 }],
    ['an empty name', { name: '', limit: 1, windowSec: 1 }],
    ['a name of 65 characters', { name: 'n'.repeat(65), limit: 1, windowSec: 1 }],
  ])('rejects %s, which would break storage keys or headers', (_label, policy) => {
    expect(() => resolvePolicy(policy)).toThrow(/policy\.name/);
  });

  it('rejects what is not a policy at all', () => {
    expect(policyProblems(null)).toEqual(['policy must be a preset name or { limit, windowSec }']);
    expect(policyProblems(42)).toHaveLength(1);
    expect(() => resolvePolicy({} as never)).toThrow(InvalidOptionsError);
  });

  it('shows a limit or window given as a string (an environment value) quoted, so it does not read as a number', () => {
    expect(policyProblems({ limit: '10', windowSec: '60' })).toEqual([
      'policy.limit must be a positive integer (got "10")',
      'policy.windowSec must be a whole number of seconds in 1..31622400 (got "60")',
    ]);
    expect(policyProblems({ limit: Number.NaN, windowSec: 60 })).toEqual([
      'policy.limit must be a positive integer (got NaN)',
    ]);
    expect(policyProblems('logn')).toEqual([
      'policy must be one of public, authenticated, admin, strict, login, register, passwordReset, mfaVerify (got "logn")',
    ]);
  });

  it('scales a limit by trust, rounding down but never below the minimum', () => {
    const policy = resolvePolicy('register');
    expect(scalePolicy(policy, 1)).toBe(policy);
    expect(scalePolicy(policy, 2).limit).toBe(6);
    expect(scalePolicy(policy, 1.5).limit).toBe(4);
    expect(scalePolicy(policy, 0.1).limit).toBe(1);
    expect(scalePolicy(policy, 0.1, 2).limit).toBe(2);
    expect(scalePolicy({ name: 'x', limit: 10, windowSec: 1 }, 1e9).limit).toBe(10_000);
  });

  it('derives GCRA constants in whole microseconds', () => {
    expect(gcraParameters(resolvePolicy('register'))).toEqual({
      limit: 3,
      intervalUs: 100_000_000,
      capacityUs: 300_000_000,
    });
    // 60 s / 7 is not whole: the interval rounds, the burst stays exactly the limit.
    expect(gcraParameters({ name: 'x', limit: 7, windowSec: 60 })).toEqual({
      limit: 7,
      intervalUs: 8_571_429,
      capacityUs: 60_000_003,
    });
  });

  it('bounds what a span admits: the burst, then one per interval before the span ends', () => {
    const hourly = (limit: number) => ({ name: 'x', limit, windowSec: 3600 });
    expect(mostAdmittedWithin(hourly(10), 3600)).toBe(19);
    expect(mostAdmittedWithin(hourly(1), 3600)).toBe(1);
    expect(mostAdmittedWithin(hourly(10), 360)).toBe(10);
    expect(mostAdmittedWithin(hourly(10), 361)).toBe(11);
    // 3600 s / 7 rounds up to 514,285,715 µs: the seventh refill falls after the hour.
    expect(mostAdmittedWithin(hourly(7), 3600)).toBe(13);
    // 999,999 per hour rounds its interval up from 3,600.0036 to 3,601 µs, which costs the refill 277 units.
    expect(mostAdmittedWithin(hourly(999_999), 3600)).toBe(999_999 + 999_722);
  });
});

describe('rate-limit headers', () => {
  const result = (remaining: number, resetAt: number, refillInSec = 10): RateLimitResult => ({
    allowed: true,
    limit: 10,
    remaining,
    resetAt,
    retryAfterSec: 0,
    refillInSec,
    source: 'store',
  });

  it('sends nothing when no limit applied', () => {
    expect(rateLimitHeaders([])).toEqual({});
    expect(strictestOutcome([])).toBeUndefined();
  });

  it('describes the policy with the fewest units left, the later reset breaking ties, in the legacy headers', () => {
    const policy = { name: 'a', limit: 10, windowSec: 60 };
    const outcomes = [
      { policy, result: result(5, 1_000_000) },
      { policy: { ...policy, name: 'b' }, result: result(2, 1_000_000) },
      { policy: { ...policy, name: 'c' }, result: result(2, 2_000_500) },
    ];
    expect(strictestOutcome(outcomes)?.policy.name).toBe('c');
    expect(rateLimitHeaders(outcomes)).toEqual({
      'RateLimit-Policy': '"a";q=10;w=60, "b";q=10;w=60, "c";q=10;w=60',
      RateLimit: '"a";r=5;t=10, "b";r=2;t=10, "c";r=2;t=10',
      'X-RateLimit-Limit': '10',
      'X-RateLimit-Remaining': '2',
      'X-RateLimit-Reset': '2001',
    });
  });
});

describe('MemoryCounterStore (the outage fallback)', () => {
  const write = (
    mode: 'fresh' | 'busy',
    nowUs: number,
    extra: Partial<{ thresholdUs: number; windowSec: number }> = {},
  ) => ({
    mode,
    nowUs,
    thresholdUs: nowUs + 10,
    incrementUs: 5,
    windowSec: 60,
    expiresAtSec: 100,
    ...extra,
  });

  it('applies the same conditions as the DynamoDB store', async () => {
    const store = new MemoryCounterStore();
    expect(await store.write('k', write('busy', 0))).toEqual({
      applied: false,
      known: true,
      stored: undefined,
    });
    expect(await store.write('k', write('fresh', 0))).toEqual({ applied: true, tatUs: 5 });
    const stored = { tatUs: 5, windowSec: 60 };
    expect(await store.write('k', write('fresh', 1))).toEqual({ applied: false, known: true, stored });
    // A busy key counted in another window is left for a rebase.
    expect(await store.write('k', write('busy', 1, { windowSec: 3600 }))).toEqual({
      applied: false,
      known: true,
      stored,
    });
    const rebase = { mode: 'rebase', nowUs: 1, windowSec: 3600, tatUs: 7, expiresAtSec: 100 } as const;
    expect(await store.write('k', { ...rebase, from: { tatUs: 4, windowSec: 60 } })).toMatchObject({
      applied: false,
      stored,
    });
    // The right TAT, counted in another window than the one the rebase converted from.
    expect(await store.write('k', { ...rebase, from: { tatUs: 5, windowSec: 3600 } })).toMatchObject({
      applied: false,
      stored,
    });
    expect(await store.write('k', { ...rebase, from: stored })).toEqual({ applied: true, tatUs: 7 });
    expect(await store.write('k', write('busy', 1, { windowSec: 3600 }))).toEqual({
      applied: true,
      tatUs: 12,
    });
    expect(await store.write('k', write('busy', 1, { thresholdUs: 9, windowSec: 3600 }))).toMatchObject({
      applied: false,
      stored: { tatUs: 12, windowSec: 3600 },
    });
    expect(await store.read('k', 1)).toEqual({ tatUs: 12, windowSec: 3600 });
    // Past expiresAt (100 s) the entry is gone, whatever its TAT said.
    expect(await store.read('k', 100_000_000)).toBeUndefined();
  });

  it('holds at most maxKeys keys, dropping the least recently written', async () => {
    const store = new MemoryCounterStore({ maxKeys: 2 });
    for (const key of ['a', 'b', 'c']) await store.write(key, write('fresh', 0));
    expect(await store.read('a', 0)).toBeUndefined();
    expect(await store.read('c', 0)).toEqual({ tatUs: 5, windowSec: 60 });
  });

  it('refuses a maxKeys below 1, with which every write would forget its own key and admit everything', () => {
    for (const maxKeys of [0, -1, Number.NaN, 1.5]) {
      expect(() => new MemoryCounterStore({ maxKeys })).toThrow(
        new InvalidOptionsError('MemoryCounterStore', [`maxKeys must be an integer >= 1 (got ${maxKeys})`]),
      );
    }
  });

  it('deletes one key, or every key with a prefix', async () => {
    const store = new MemoryCounterStore();
    for (const key of ['RL#a#1', 'RL#a#2', 'RL#ab#1']) await store.write(key, write('fresh', 0));
    await store.delete('RL#a#1');
    expect(await store.deleteAll('RL#a#')).toBe(1);
    expect(await store.read('RL#ab#1', 0)).toEqual({ tatUs: 5, windowSec: 60 });
  });
});
