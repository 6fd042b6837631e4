import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gcraParameters } from '../../middleware/rate-limit/policy.js';
import { RateLimiter, type RateLimitResult } from '../../middleware/rate-limit/rate-limiter.js';
import {
  type Admission,
  countingClient,
  expectWithinBound,
  freezeClock,
  tableName,
  uniquePolicyName,
} from './helpers.js';

// 6,000 per minute: one unit refills every T = 10 ms, so a 100 ms lease holds at most 10 units.
const hotPolicy = () => ({ name: uniquePolicyName('hot'), limit: 6000, windowSec: 60 });
const leaseMs = 100;

const admitted = (results: readonly RateLimitResult[]) => results.filter((result) => result.allowed).length;

describe('leases: units a busy key reserves ahead of demand', () => {
  const counting = countingClient();

  afterEach(() => {
    vi.useRealTimers();
  });

  it('admits a hot key from one instance with far fewer store requests than admissions', async () => {
    const own = countingClient();
    const limiter = new RateLimiter({ policy: hotPolicy(), leaseMs, tableName, client: own.client });
    const results: RateLimitResult[] = [];
    for (let index = 0; index < 300; index += 1) results.push(await limiter.consume('tenant:hot'));
    expect(admitted(results)).toBe(300);
    expect(results.some((result) => result.source === 'lease')).toBe(true);
    // Every store request is one write that admits its own request and reserves up to 10 more.
    expect(own.requests.get('UpdateItem')).toBe(own.total());
    expect(own.total()).toBeLessThan(300 / 3);
    own.client.destroy();
  });

  it('never leases for a key that refills slower than the lease, so each admission stays one write', async () => {
    freezeClock();
    const own = countingClient();
    // 1,000 per hour: T = 3.6 s, far beyond 100 ms.
    const limiter = new RateLimiter({ policy: 'admin', leaseMs, tableName, client: own.client });
    const key = `user:${uniquePolicyName()}`;
    for (let index = 0; index < 40; index += 1) {
      expect(await limiter.consume(key)).toMatchObject({ allowed: true, source: 'store' });
    }
    expect(own.total()).toBe(40);
    own.client.destroy();
  });

  it('never leases for an instance that sees a key once per lease lifetime, as a Lambda instance may', async () => {
    const start = freezeClock();
    const own = countingClient();
    const limiter = new RateLimiter({ policy: hotPolicy(), leaseMs, tableName, client: own.client });
    for (let index = 0; index < 20; index += 1) {
      // Arrivals this far apart would let most leased units lapse unused: each is a write of its own.
      vi.setSystemTime(start + index * leaseMs);
      expect(await limiter.consume('tenant:sparse')).toMatchObject({ allowed: true, source: 'store' });
    }
    expect(own.total()).toBe(20);
    // Nothing is held back either: the shared item counts exactly the one admitted unit.
    expect(await limiter.getRemaining('tenant:sparse')).toBe(5999);
    own.client.destroy();
  });

  it('grows a lease with the demand it sees and reports held units as remaining', async () => {
    freezeClock();
    const own = countingClient();
    const limiter = new RateLimiter({ policy: hotPolicy(), leaseMs, tableName, client: own.client });
    const results: RateLimitResult[] = [];
    for (let index = 0; index < 30; index += 1) results.push(await limiter.consume('tenant:grow'));
    // First write: no demand seen yet. Then each write reserves as many units as it served since the
    // previous write (1, 2, 3, …) up to what the key refills in 100 ms (10 units).
    expect(results.slice(0, 7).map((result) => result.source)).toEqual([
      'store',
      'store',
      'lease',
      'store',
      'lease',
      'lease',
      'store',
    ]);
    expect(own.total()).toBeLessThan(10);
    // On a frozen clock the key's remaining units go down by exactly one per admission, whoever answered.
    expect(results.map((result) => result.remaining)).toEqual(
      Array.from({ length: 30 }, (_, index) => 6000 - index - 1),
    );
    own.client.destroy();
  });

  it('lets leased units lapse after leaseMs: the next request goes to the store', async () => {
    const start = freezeClock();
    const own = countingClient();
    const limiter = new RateLimiter({ policy: hotPolicy(), leaseMs, tableName, client: own.client });
    let last: RateLimitResult | undefined;
    for (let index = 0; index < 4; index += 1) last = await limiter.consume('tenant:lapse');
    // The 4th request is the third write; it reserved 2 units beyond its own.
    expect(last).toMatchObject({ allowed: true, source: 'store' });
    expect(await limiter.consume('tenant:lapse')).toMatchObject({ source: 'lease' });
    const before = own.total();
    vi.setSystemTime(start + leaseMs);
    expect(await limiter.consume('tenant:lapse')).toMatchObject({ allowed: true, source: 'store' });
    expect(own.total()).toBe(before + 1);
    own.client.destroy();
  });

  it('never admits from a lapsed lease, which is what keeps a burst after a pause within the bound', async () => {
    const start = freezeClock();
    // T = 50 ms: the bound allows limit + ⌊100 ms / T⌋ = 22 units in one instant.
    const policy = { name: uniquePolicyName('stale'), limit: 20, windowSec: 1 };
    const [first, ...others] = Array.from(
      { length: 3 },
      () => new RateLimiter({ policy, leaseMs, tableName, client: counting.client }),
    ) as [RateLimiter, RateLimiter, RateLimiter];
    // Four requests each (store, store + lease 1, lease, store + lease 2): every instance now holds 2 units.
    for (const limiter of [first, ...others]) {
      for (let index = 0; index < 4; index += 1) await limiter.consume('user:stale');
    }
    // Two seconds on, the key has refilled completely and every lease has lapsed.
    vi.setSystemTime(start + 2000);
    const burst: RateLimitResult[] = [];
    for (let index = 0; index < 25; index += 1) burst.push(await first.consume('user:stale'));
    for (const limiter of others) {
      for (let index = 0; index < 3; index += 1) burst.push(await limiter.consume('user:stale'));
    }
    expect(admitted(burst)).toBeLessThanOrEqual(22);
  });

  it('never reserves past the limit: 8 instances, 400 concurrent consumes, limit 100 at T = 10 ms', async () => {
    freezeClock();
    const policy = { name: uniquePolicyName('fleet'), limit: 100, windowSec: 1 };
    const { intervalUs } = gcraParameters(policy);
    const maxLease = Math.floor((leaseMs * 1000) / intervalUs);
    const instances = Array.from({ length: 8 }, () => {
      const own = countingClient({ requestTimeoutMs: 30_000, connectionTimeoutMs: 30_000 });
      return {
        own,
        limiter: new RateLimiter({ policy, leaseMs, tableName, client: own.client, failMode: 'closed' }),
      };
    });
    // Each instance first serves a few requests one by one, so every one of them has demand to lease for.
    for (const { limiter } of instances) {
      for (let index = 0; index < 3; index += 1) await limiter.consume('user:fleet');
    }
    const results = await Promise.all(
      Array.from(
        { length: 400 },
        (_, index) => instances[index % 8]?.limiter.consume('user:fleet') as Promise<RateLimitResult>,
      ),
    );
    const total = 24 + admitted(results);
    // The clock is frozen: reservations can never exceed the limit, and leases only ever hold units
    // that were reserved. Units still held by an instance are the only ones not admitted.
    expect(total).toBeLessThanOrEqual(100);
    expect(total).toBeGreaterThanOrEqual(100 - 8 * maxLease);
    expect(await instances[0]?.limiter.getRemaining('user:fleet')).toBe(0);
    for (const { own } of instances) own.client.destroy();
  });

  it('never leases more than half of what the key has left, even when its view of the key is stale', async () => {
    freezeClock();
    // T = 10 ms: a 100 ms lease holds at most 10 units, and nothing refills on the frozen clock.
    const policy = { name: uniquePolicyName('half'), limit: 100, windowSec: 1 };
    const leasing = new RateLimiter({ policy, leaseMs, tableName, client: counting.client });
    const other = new RateLimiter({ policy, leaseMs: 0, tableName, client: counting.client });
    const key = 'tenant:half';
    /** Consumes on `leasing` until an answer comes from a store write, after the units it held. */
    const untilWrite = async () => {
      let result: RateLimitResult;
      do result = await leasing.consume(key);
      while (result.source === 'lease');
      return result;
    };
    // Its demand grows the leasing instance's leases to 10 units; the last write took a fresh one.
    for (let index = 0; index < 40; index += 1) await leasing.consume(key);
    await untilWrite();
    // Meanwhile the other instance spends the key down to 11 units, which the leasing one has not seen.
    while ((await other.getRemaining(key)) > 11) await other.consume(key);
    expect(await untilWrite()).toMatchObject({ allowed: true, source: 'store' });
    // Its write took its own unit and half of the 10 left beyond it, not all of them.
    expect(await other.getRemaining(key)).toBe(5);
    expect(await other.consume(key)).toMatchObject({ allowed: true, source: 'store' });
  });

  it('keeps any interval within limit + ⌊(t + leaseMs) / T⌋, whichever of three instances answers', async () => {
    const client = countingClient();
    // T = 50 ms: a 100 ms lease holds at most 2 units.
    const policy = { name: uniquePolicyName('lease-bound'), limit: 20, windowSec: 1 };
    const { intervalUs, limit } = gcraParameters(policy);
    const instances = Array.from(
      { length: 3 },
      () => new RateLimiter({ policy, leaseMs, tableName, client: client.client }),
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    const step = fc.record({
      // Bursts, steady traffic, and pauses long enough for the key to refill completely.
      gapMs: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1000, max: 3000 }),
      ),
      instance: fc.integer({ min: 0, max: 2 }),
      cost: fc.integer({ min: 1, max: 2 }),
    });
    let run = 0;
    let leased = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), async (steps) => {
        run += 1;
        const key = `user:run-${run}`;
        let nowMs = Date.now() + 3600_000;
        const admittedAt: Admission[] = [];
        for (const { gapMs, instance, cost } of steps) {
          nowMs += gapMs;
          vi.setSystemTime(nowMs);
          const result = await instances[instance]?.consume(key, cost);
          if (result?.source === 'lease') leased += 1;
          if (result?.allowed) admittedAt.push({ atUs: nowMs * 1000, cost });
        }
        expectWithinBound(admittedAt, limit, intervalUs, leaseMs * 1000);
      }),
      { numRuns: 30 },
    );
    // The property must have exercised leases, or it proved nothing about them.
    expect(leased).toBeGreaterThan(0);
    client.client.destroy();
  });

  it('rejects a lease outside 0..10000 ms at construction', () => {
    for (const bad of [-1, 10_001, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new RateLimiter({ policy: 'public', tableName, leaseMs: bad })).toThrow(
        /leaseMs must be a number of milliseconds in 0\.\.10000/,
      );
    }
  });
});
