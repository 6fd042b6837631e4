// The breaker when its store hangs and the caller's deadline is near: no store request holds the answer past it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import type { CircuitBreakerSettings } from '../../middleware/circuit-breaker/options.js';
import type { CircuitStateStore } from '../../middleware/circuit-breaker/state.js';
import { DeadlineExceededError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { DependencyDown, failing, holdingStore, outcome, succeeding, uniqueName } from './helpers.js';

/** A start time on a whole minute, so the 10 s failure windows start with the test. */
const base = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000;

/** The caller's time left in each test: far shorter than the store's own 1 s request timeout. */
const timeLeftMs = 300;

function breakerOn(store: CircuitStateStore, settings: Omit<CircuitBreakerSettings<string>, 'name'> = {}) {
  return new CircuitBreaker<string>({
    name: uniqueName(),
    store,
    logger: { warn: vi.fn(), info: vi.fn() },
    ...settings,
  });
}

/** A call's outcome, and whether it has settled yet. */
function watch<T>(call: Promise<T>) {
  const watched = { settled: false, outcome: outcome(call) };
  void watched.outcome.then(() => {
    watched.settled = true;
  });
  return watched;
}

/** Runs the clock to the caller's deadline, checking that the call waited for it and no longer. */
async function untilDeadline(call: { settled: boolean }): Promise<void> {
  await vi.advanceTimersByTimeAsync(timeLeftMs - 1);
  expect(call.settled).toBe(false);
  await vi.advanceTimersByTimeAsync(1);
  expect(call.settled).toBe(true);
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  vi.setSystemTime(base);
});

afterEach(() => {
  vi.useRealTimers();
});

/**
 * A closed breaker (threshold 1) whose store holds the failure count, and a failing call answered at
 * its deadline with its own error meanwhile; `release` lets the count answer.
 */
async function failureAnsweredWhileItsCountHangs() {
  const { store, hold, release } = holdingStore();
  const events: SecurityEvent[] = [];
  const breaker = breakerOn(store, { failureThreshold: 1, onEvent: (event) => events.push(event) });
  await breaker.execute(succeeding);
  hold('addFailure');
  const call = watch(breaker.execute(failing, { deadline: Date.now() + timeLeftMs }));
  await untilDeadline(call);
  expect((await call.outcome).error).toBeInstanceOf(DependencyDown);
  return { breaker, events, release };
}

/** What a store request that DynamoDB gave up on rejects with. */
const storeTimeout = () => Object.assign(new Error('request timed out'), { name: 'TimeoutError' });

/**
 * A breaker (threshold 1) opened on `store` and past its reset timeout, so the next call probes; the
 * event types its own listener gets, and a listener for one call that records those it gets.
 */
async function openOn(store: CircuitStateStore) {
  const breakerEvents: SecurityEvent['type'][] = [];
  const breaker = breakerOn(store, {
    failureThreshold: 1,
    onEvent: (event) => breakerEvents.push(event.type),
  });
  await outcome(breaker.execute(failing));
  // The reset timeout passes on the clock and on the breaker's timers alike.
  await vi.advanceTimersByTimeAsync(60_000);
  const types: SecurityEvent['type'][] = [];
  return {
    breaker,
    breakerEvents,
    callEvents: { types, listener: (event: SecurityEvent) => types.push(event.type) },
  };
}

describe('a store that hangs while the caller has little time left', () => {
  it('answers 504 at the deadline while the state read hangs, and lets a caller with time wait for it', async () => {
    const { store, hold, held, release } = holdingStore();
    hold('read');
    const breaker = breakerOn(store);
    const action = vi.fn(succeeding);
    const hurried = watch(breaker.execute(action, { deadline: Date.now() + timeLeftMs }));
    const patient = watch(breaker.execute(succeeding));
    await untilDeadline(hurried);

    const { error } = await hurried.outcome;
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).toMatchObject({ statusCode: 504, timeoutMs: 0 });
    expect(action).not.toHaveBeenCalled();
    // Both calls share the one read, which the first caller's deadline does not cut for the other.
    expect(held()).toBe(1);
    expect(patient.settled).toBe(false);
    release();
    expect(await patient.outcome).toEqual({ value: 'ok' });
    expect(breaker.isUsingLocalState).toBe(false);
  });

  it('answers a failure at the deadline while its count hangs, and counts it once the store answers', async () => {
    const { breaker, events, release } = await failureAnsweredWhileItsCountHangs();
    expect(breaker.state).toBe('CLOSED');
    release();
    await vi.waitFor(() => expect(breaker.state).toBe('OPEN'));
    expect(events.map((event) => event.type)).toEqual(['circuit.opened']);
  });

  it('reports a count the store gives up on after the deadline, and keeps it on local state', async () => {
    const { breaker, events, release } = await failureAnsweredWhileItsCountHangs();
    release(Object.assign(new Error('request timed out'), { name: 'TimeoutError' }));
    await vi.waitFor(() => expect(breaker.isUsingLocalState).toBe(true));
    expect(events[0]).toMatchObject({ type: 'circuit.storeError', metadata: { error: 'TimeoutError' } });
    // The failure counted on local state, where it reached the threshold.
    expect(breaker.state).toBe('OPEN');
  });

  it('answers 504 at the deadline while the probe lease is being taken, and gives the lease back once it lands', async () => {
    const { store, shared, hold, release } = holdingStore();
    const breaker = breakerOn(store, { failureThreshold: 1 });
    await outcome(breaker.execute(failing));
    // The reset timeout passes on the clock and on the breaker's timers alike.
    await vi.advanceTimersByTimeAsync(60_000);
    hold('replace');
    const action = vi.fn(succeeding);
    const call = watch(breaker.execute(action, { deadline: Date.now() + timeLeftMs }));
    await untilDeadline(call);

    expect((await call.outcome).error).toBeInstanceOf(DeadlineExceededError);
    expect(action).not.toHaveBeenCalled();
    release();
    await vi.waitFor(async () =>
      expect(await shared.read(breaker.name, Date.now())).toMatchObject({
        state: 'HALF_OPEN',
        probeLeaseUntil: 0,
      }),
    );
    expect((await shared.read(breaker.name, Date.now())).probeOwner).toBeUndefined();
    // Nobody holds the lease: the next call probes at once.
    expect(await breaker.execute(succeeding)).toBe('ok');
  });

  it("reports to the call's listener a store failure while giving back a lease that landed after its deadline", async () => {
    const { store, hold, held, release } = holdingStore();
    const { breaker, breakerEvents, callEvents } = await openOn(store);
    hold('replace');
    const call = watch(
      breaker.execute(succeeding, { deadline: Date.now() + timeLeftMs, onEvent: callEvents.listener }),
    );
    await untilDeadline(call);
    expect((await call.outcome).error).toBeInstanceOf(DeadlineExceededError);
    // The lease lands; giving it back hangs, then fails.
    release();
    hold('replace');
    await vi.waitFor(() => expect(held()).toBe(1));
    release(storeTimeout());
    await vi.waitFor(() => expect(callEvents.types).toEqual(['circuit.halfOpen', 'circuit.storeError']));
    expect(breakerEvents).toEqual(['circuit.opened']);
  });

  it("reports to the call's listener a store failure while giving back the lease of a probe that outlived its deadline", async () => {
    const { store, hold, held, release } = holdingStore();
    const { breaker, breakerEvents, callEvents } = await openOn(store);
    // The probe holds the lease by the time it runs, and never answers: giving the lease back hangs, then fails.
    const probe = () => {
      hold('replace');
      return new Promise<string>(() => {});
    };
    const call = watch(
      breaker.execute(probe, { deadline: Date.now() + timeLeftMs, onEvent: callEvents.listener }),
    );
    await untilDeadline(call);
    expect((await call.outcome).error).toBeInstanceOf(DeadlineExceededError);
    await vi.waitFor(() => expect(held()).toBe(1));
    release(storeTimeout());
    await vi.waitFor(() => expect(callEvents.types).toEqual(['circuit.halfOpen', 'circuit.storeError']));
    expect(breakerEvents).toEqual(['circuit.opened']);
  });

  it.each([
    ['succeeds', succeeding, { value: 'ok' }, 'HALF_OPEN'],
    ['fails', failing, { error: expect.any(DependencyDown) }, 'OPEN'],
    ['hangs', () => new Promise<string>(() => {}), { error: expect.any(DeadlineExceededError) }, 'HALF_OPEN'],
  ])(
    'answers a probe that %s by the deadline while what it proved is being written',
    async (_, dependency, expected, stateAfter) => {
      const { store, hold, release } = holdingStore();
      const breaker = breakerOn(store, { failureThreshold: 1 });
      await outcome(breaker.execute(failing));
      // The reset timeout passes on the clock and on the breaker's timers alike.
      await vi.advanceTimersByTimeAsync(60_000);
      // The probe holds the lease by the time it runs: only the write of its outcome hangs.
      const probe = () => {
        hold('replace');
        return dependency();
      };
      const call = watch(breaker.execute(probe, { deadline: Date.now() + timeLeftMs }));
      await untilDeadline(call);

      expect(await call.outcome).toEqual(expected);
      release();
      await vi.waitFor(() => expect(breaker.state).toBe(stateAfter));
    },
  );
});
