// The email and SMS provider circuits at the pace an outage's failed sends come: the worker's retries.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  providerCircuitBreaker,
  providerWindowMs,
  retryDelaySec,
} from '../../functions/email-worker/email-worker.js';
import { workers } from '../../functions/workers.js';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import { CircuitOpenError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';

/** EMAIL_RETRY_BASE_DELAY_SEC's default, as deployed and as `npm start` runs. */
const retryBaseDelaySec = 30;
const windowMs = providerWindowMs(retryBaseDelaySec);
const maxAttempts = workers['email-worker'].maxReceiveCount;

function smtpBreaker(events: SecurityEvent[]): CircuitBreaker<string> {
  return providerCircuitBreaker({
    name: 'email-smtp',
    store: new MemoryCircuitStateStore(),
    retryBaseDelaySec,
    onEvent: (event) => events.push(event),
  });
}

/** One send while SMTP is down: refused connections. What the breaker did with it: failed, or turned away. */
async function failedSend(breaker: CircuitBreaker<string>): Promise<'failed' | 'rejected'> {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:2525'), { code: 'ECONNREFUSED' });
  const error = await breaker.execute(() => Promise.reject(refused)).catch((caught: unknown) => caught);
  if (error instanceof CircuitOpenError) return 'rejected';
  expect(error).toBe(refused);
  return 'failed';
}

/** The offsets, from the first, at which one message's attempts fail: each after the delay the worker gives it. */
function attemptOffsetsMs(): number[] {
  const offsets = [0];
  for (let attempt = 1; attempt < maxAttempts; attempt += 1) {
    offsets.push((offsets.at(-1) ?? 0) + retryDelaySec(attempt, retryBaseDelaySec) * 1000);
  }
  return offsets;
}

describe('the provider circuit of the email worker', () => {
  let windowStart: number;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const now = Date.now();
    windowStart = now - (now % windowMs) + windowMs;
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts failures over 2 × 5 × the retry base: 5 minutes at the default 30 s, at most an hour', () => {
    expect(windowMs).toBe(300_000);
    expect(providerWindowMs(1)).toBe(10_000);
    expect(providerWindowMs(3600)).toBe(3_600_000);
    expect(attemptOffsetsMs()).toEqual([0, 30_000, 90_000]);
  });

  it("opens at the 5th failed send of a registration's two emails, failing as the worker retries them", async () => {
    const events: SecurityEvent[] = [];
    const breaker = smtpBreaker(events);
    const outcomes: string[] = [];
    // The welcome and the verification email, queued together, each tried at 0, 30 and 90 s.
    for (const offsetMs of attemptOffsetsMs()) {
      vi.setSystemTime(windowStart + offsetMs);
      outcomes.push(await failedSend(breaker), await failedSend(breaker));
    }
    expect(outcomes).toEqual(['failed', 'failed', 'failed', 'failed', 'failed', 'rejected']);
    expect(events.map((event) => event.type)).toEqual(['circuit.opened', 'circuit.rejected']);
    expect(events[0]?.metadata).toMatchObject({ circuit: 'email-smtp', failures: 5 });
  });

  it('opens after at most 9 sends failing a retry base apart, wherever the window boundaries fall', async () => {
    const failedUntilOpen: number[] = [];
    // The worst cut first: the first boundary comes just after the 4th failure.
    for (const firstOffsetMs of [windowMs - 4 * 30_000 + 1, windowMs / 2, 0]) {
      const events: SecurityEvent[] = [];
      const breaker = smtpBreaker(events);
      let failed = 0;
      for (let send = 0; send < 20 && breaker.state === 'CLOSED'; send += 1) {
        vi.setSystemTime(windowStart + firstOffsetMs + send * retryBaseDelaySec * 1000);
        if ((await failedSend(breaker)) === 'failed') failed += 1;
      }
      expect(events[0]?.metadata).toMatchObject({ failures: 5 });
      failedUntilOpen.push(failed);
    }
    expect(failedUntilOpen).toEqual([9, 5, 5]);
  });

  it('stays closed for a single failed send, and for failed sends a window or more apart', async () => {
    const events: SecurityEvent[] = [];
    const breaker = smtpBreaker(events);
    vi.setSystemTime(windowStart);
    expect(await failedSend(breaker)).toBe('failed');
    expect(breaker.state).toBe('CLOSED');
    for (let window = 1; window <= 10; window += 1) {
      vi.setSystemTime(windowStart + window * windowMs);
      expect(await failedSend(breaker)).toBe('failed');
    }
    expect(breaker.state).toBe('CLOSED');
    expect(await breaker.execute(() => Promise.resolve('250 OK'))).toBe('250 OK');
    expect(events).toEqual([]);
  });
});
