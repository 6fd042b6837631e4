// The breaker's one-timer deadline queue against a model: every entry still queued expires exactly at its deadline.
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Deadline, DeadlineQueue } from '../../middleware/circuit-breaker/deadlines.js';

/** What an entry's expire() does to the queue, as a timed-out call's abort listener might. */
type OnExpire = 'nothing' | 'addLater' | 'addAndRemove';

class Entry extends Deadline {
  readonly expiredAt: number[] = [];

  constructor(
    deadline: number,
    private readonly onExpire: (self: Entry) => void,
  ) {
    super(deadline);
  }

  expire(): void {
    this.expiredAt.push(Date.now());
    this.onExpire(this);
  }
}

// Timeouts of at least 1 ms: Node runs a shorter timer 1 ms out, and a breaker refuses a call with no time left.
const plan = fc.array(
  fc.record({
    startsAt: fc.integer({ min: 0, max: 50 }),
    timeoutMs: fc.integer({ min: 1, max: 100 }),
    removedAfterMs: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
    onExpire: fc.constantFrom<OnExpire>('nothing', 'addLater', 'addAndRemove'),
    addedTimeoutMs: fc.integer({ min: 1, max: 20 }),
  }),
  { minLength: 1, maxLength: 10 },
);

describe('DeadlineQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires each entry once, exactly at its deadline, unless it was removed first, whatever expire() adds', () => {
    fc.assert(
      fc.property(plan, (steps) => {
        vi.useFakeTimers({ now: 0, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
        const queue = new DeadlineQueue();
        const entries: Entry[] = [];
        const removed = new Set<Entry>();
        const enqueue = (deadline: number, onExpire: OnExpire, addedTimeoutMs: number): Entry => {
          const entry = new Entry(deadline, () => {
            if (onExpire === 'nothing') return;
            const added = enqueue(Date.now() + addedTimeoutMs, 'nothing', 0);
            // A call whose action throws at once leaves the queue before the scan ends.
            if (onExpire === 'addAndRemove') {
              removed.add(added);
              queue.remove(added);
            }
          });
          entries.push(entry);
          queue.add(entry);
          return entry;
        };
        for (const step of [...steps].sort((a, b) => a.startsAt - b.startsAt)) {
          vi.advanceTimersByTime(step.startsAt - Date.now());
          const entry = enqueue(Date.now() + step.timeoutMs, step.onExpire, step.addedTimeoutMs);
          if (step.removedAfterMs !== undefined) {
            setTimeout(() => {
              if (entry.expiredAt.length > 0) return;
              removed.add(entry);
              queue.remove(entry);
            }, step.removedAfterMs);
          }
        }
        vi.advanceTimersByTime(1000);
        for (const entry of entries) {
          expect(entry.expiredAt).toEqual(removed.has(entry) ? [] : [entry.deadline]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
