import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gcraParameters, mostAdmittedWithin } from '../../middleware/rate-limit/policy.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { type Admission, countingClient, expectWithinBound, tableName, uniquePolicyName } from './helpers.js';

/** The textbook GCRA, one decision at a time: what every limiter instance together must reproduce. */
function referenceGcra(limit: number, intervalUs: number) {
  let tatUs = 0;
  return (nowUs: number, cost: number): boolean => {
    const next = Math.max(tatUs, nowUs) + cost * intervalUs;
    if (next - nowUs > limit * intervalUs) return false;
    tatUs = next;
    return true;
  };
}

const step = fc.record({
  // Gaps from "at once" to longer than a refill, in milliseconds.
  gapMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4000 })),
  instance: fc.integer({ min: 0, max: 2 }),
  cost: fc.integer({ min: 1, max: 3 }),
});

describe('the documented bound, on the embedded DynamoDB', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('makes exactly the decisions of a single GCRA, whichever of three instances answers', async () => {
    const client = countingClient();
    const policy = { name: uniquePolicyName('gcra'), limit: 5, windowSec: 10 };
    const { intervalUs, limit } = gcraParameters(policy);
    const instances = Array.from(
      { length: 3 },
      () => new RateLimiter({ policy, tableName, client: client.client }),
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), async (steps) => {
        run += 1;
        const key = `user:run-${run}`;
        const reference = referenceGcra(limit, intervalUs);
        let nowMs = Date.now() + 3600_000;
        const admittedAt: Admission[] = [];
        for (const { gapMs, instance, cost } of steps) {
          nowMs += gapMs;
          vi.setSystemTime(nowMs);
          const result = await instances[instance]?.consume(key, cost);
          expect(result?.allowed).toBe(reference(nowMs * 1000, cost));
          if (result?.allowed) admittedAt.push({ atUs: nowMs * 1000, cost });
        }
        // The bound itself: any interval of length t admits at most limit + ⌊t / T⌋ units.
        expectWithinBound(admittedAt, limit, intervalUs);
      }),
      { numRuns: 25 },
    );
    client.client.destroy();
  });

  it('admits mostAdmittedWithin in an hour from a full burst, and the next unit only once the hour is over', async () => {
    const client = countingClient();
    const policy = { name: uniquePolicyName('hour'), limit: 10, windowSec: 3600 };
    const limiter = new RateLimiter({ policy, tableName, client: client.client, failMode: 'closed' });
    vi.useFakeTimers({ toFake: ['Date'] });
    const startMs = Date.now() + 3600_000;
    let admitted = 0;
    // A caller asking for 20 at the start of every minute of the hour [start, start + 3600 s), and at its last millisecond.
    const asks = [...Array.from({ length: 60 }, (_, minute) => minute * 60_000), 3600_000 - 1];
    for (const atMs of asks) {
      vi.setSystemTime(startMs + atMs);
      for (let attempt = 0; attempt < 20; attempt += 1) {
        if (!(await limiter.consume('deployment')).allowed) break;
        admitted += 1;
      }
    }
    expect(admitted).toBe(mostAdmittedWithin(policy, 3600));
    expect(admitted).toBe(19);
    vi.setSystemTime(startMs + 3600_000);
    expect((await limiter.consume('deployment')).allowed).toBe(true);
    client.client.destroy();
  });
});
