import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gcraParameters } from '../../middleware/rate-limit/policy.js';
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
});
