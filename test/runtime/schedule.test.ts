// The local schedule of a scheduled function: when it invokes, how it stops, and the intervals it refuses.
import type { ScheduledEvent } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IntervalSchedule } from '../../bin/runtime/schedule.js';
import { InvalidOptionsError } from '../../middleware/errors.js';

/** An invoke whose runs end only when the test ends them. */
function deferredInvoke() {
  const events: ScheduledEvent[] = [];
  const ends: (() => void)[] = [];
  const invoke = (event: ScheduledEvent) => {
    events.push(event);
    return new Promise<void>((resolve) => {
      ends.push(resolve);
    });
  };
  return { events, invoke, endRun: (index: number) => ends[index]?.() };
}

const intervalMs = 1_000;

describe('IntervalSchedule', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('invokes one interval after start, and the next run one interval after the last one ended', async () => {
    const { events, invoke, endRun } = deferredInvoke();
    const schedule = new IntervalSchedule({ name: 'sweeper', intervalMs, invoke, onError: () => {} });
    schedule.start();

    await vi.advanceTimersByTimeAsync(intervalMs - 1);
    expect(events).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ source: 'aws.events', 'detail-type': 'Scheduled Event' });
    // A run still going holds the next one back.
    await vi.advanceTimersByTimeAsync(5 * intervalMs);
    expect(events).toHaveLength(1);
    endRun(0);
    await vi.advanceTimersByTimeAsync(intervalMs);
    expect(events).toHaveLength(2);

    endRun(1);
    await schedule.stop();
  });

  it('stop() waits for the run in progress, and no run follows it', async () => {
    const { events, invoke, endRun } = deferredInvoke();
    const schedule = new IntervalSchedule({ name: 'sweeper', intervalMs, invoke, onError: () => {} });
    schedule.start();
    await vi.advanceTimersByTimeAsync(intervalMs);
    expect(events).toHaveLength(1);

    let stopped = false;
    const stopping = schedule.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(intervalMs);
    expect(stopped).toBe(false);
    endRun(0);
    await stopping;
    expect(stopped).toBe(true);

    await vi.advanceTimersByTimeAsync(10 * intervalMs);
    expect(events).toHaveLength(1);
  });

  it('refuses an interval of 0 and one that is not whole, naming the function', () => {
    const build = (ms: number) =>
      new IntervalSchedule({ name: 'sweeper', intervalMs: ms, invoke: async () => {}, onError: () => {} });
    const refusal = new InvalidOptionsError('sweeper schedule', [
      'intervalMs must be a whole number of milliseconds, 1 or more',
    ]);
    expect(() => build(0)).toThrow(refusal);
    expect(() => build(1.5)).toThrow(refusal);
    expect(() => build(0)).toThrow(InvalidOptionsError);
    expect(build(1).intervalMs).toBe(1);
  });
});
