// The circuit state machine on the embedded DynamoDB, transition by transition, with a fake clock.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { usersCircuit } from '../../functions/bookings/users-service.js';
import { CircuitBreaker, type GuardedCall } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import type { CircuitBreakerSettings } from '../../middleware/circuit-breaker/options.js';
import {
  type CircuitRecord,
  CircuitState,
  type CircuitStateStore,
  initialRecord,
} from '../../middleware/circuit-breaker/state.js';
import {
  CircuitOpenError,
  DeadlineExceededError,
  DependencyTimeoutError,
  InvalidArgumentError,
} from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import {
  countedClient,
  DependencyDown,
  deferred,
  failing,
  instance,
  outcome,
  storedItem,
  succeeding,
  uniqueName,
} from './helpers.js';

/**
 * A start time on a whole minute, so failure windows of a minute or less start with the test. Not
 * further ahead: with the clock more than 5 minutes off, the DynamoDB client corrects for skew and
 * retries after a delay, a setTimeout the tests that fake it never run.
 */
const base = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000;

function advance(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

async function failTimes(breaker: { execute: (action: typeof failing) => Promise<unknown> }, times: number) {
  for (let index = 0; index < times; index += 1) await outcome(breaker.execute(failing));
}

/**
 * A breaker on the in-process store, for runs of many calls on the fake clock: with setTimeout faked,
 * the DynamoDB client's own timers would stall its requests between clock advances and send the
 * breaker to local state mid-run.
 */
function breakerInMemory(settings: Omit<CircuitBreakerSettings<unknown>, 'name'>) {
  return new CircuitBreaker({
    name: uniqueName(),
    store: new MemoryCircuitStateStore(),
    logger: { warn: vi.fn(), info: vi.fn() },
    ...settings,
  });
}

/** A store that answers through `shared`, except for the operations given. */
function delegatingTo(shared: MemoryCircuitStateStore, own: Partial<CircuitStateStore>): CircuitStateStore {
  return {
    read: (name, now) => shared.read(name, now),
    addFailure: (name, failure, now) => shared.addFailure(name, failure, now),
    replace: (name, generation, next, expiresAt, now) =>
      shared.replace(name, generation, next, expiresAt, now),
    ...own,
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(base);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a closed circuit', () => {
  it('passes calls through and writes nothing to DynamoDB on success', async () => {
    const name = uniqueName();
    const counted = countedClient();
    const breaker = instance(name, {}, counted);
    for (let index = 0; index < 50; index += 1) expect(await breaker.execute(succeeding)).toBe('ok');
    expect(counted.byCommand()).toEqual({ GetItemCommand: 1 });
    expect(await storedItem(name)).toBeUndefined();
    expect(breaker.state).toBe('CLOSED');
  });

  it('re-reads the shared state once per stateTtlMs, not once per call', async () => {
    const counted = countedClient();
    const breaker = instance(uniqueName(), { stateTtlMs: 1000 }, counted);
    for (let second = 0; second < 3; second += 1) {
      for (let index = 0; index < 10; index += 1) await breaker.execute(succeeding);
      advance(1000);
    }
    expect(counted.requests()).toBe(3);
  });

  it('reads the store before every call when stateTtlMs is 0', async () => {
    const counted = countedClient();
    const breaker = instance(uniqueName(), { stateTtlMs: 0 }, counted);
    for (let index = 0; index < 4; index += 1) await breaker.execute(succeeding);
    expect(counted.requests()).toBe(4);
  });

  it('keeps the state it wrote over an older one a slower read brings back', async () => {
    const shared = new MemoryCircuitStateStore();
    const readServed = deferred<void>();
    const releaseRead = deferred<void>();
    let holdReads = false;
    const store = delegatingTo(shared, {
      read: async (name, now) => {
        const record = await shared.read(name, now);
        if (holdReads) {
          readServed.resolve();
          await releaseRead.promise;
        }
        return record;
      },
    });
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      failureThreshold: 1,
      stateTtlMs: 5,
      logger: { warn: vi.fn(), info: vi.fn() },
    });
    const dependency = deferred<string>();
    const firstStarted = deferred<void>();
    const first = outcome(
      breaker.execute(() => {
        firstStarted.resolve();
        return dependency.promise;
      }),
    );
    await firstStarted.promise;
    advance(10);
    holdReads = true;
    const dependencyCalls = vi.fn(succeeding);
    // The second call's refresh reads CLOSED, then waits while the first call's failure opens the circuit.
    const second = outcome(breaker.execute(dependencyCalls));
    await readServed.promise;
    dependency.reject(new DependencyDown());
    await first;
    expect(breaker.state).toBe('OPEN');
    releaseRead.resolve();
    expect((await second).error).toBeInstanceOf(CircuitOpenError);
    expect(dependencyCalls).not.toHaveBeenCalled();
    expect(breaker.state).toBe('OPEN');
  });

  it('keeps the open state over a failure count that was written before it but answered after', async () => {
    const shared = new MemoryCircuitStateStore();
    const holdAnswer = deferred<void>();
    const heldWritten = deferred<void>();
    let holdNextAnswer = true;
    const store = delegatingTo(shared, {
      addFailure: async (name, failure, now) => {
        const held = holdNextAnswer;
        holdNextAnswer = false;
        const record = await shared.addFailure(name, failure, now);
        if (held) {
          heldWritten.resolve();
          await holdAnswer.promise;
        }
        return record;
      },
    });
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      failureThreshold: 2,
      stateTtlMs: 60_000,
      logger: { warn: vi.fn(), info: vi.fn() },
    });
    // The first failure is counted at once, but its answer (one failure, closed) comes back last.
    const first = outcome(breaker.execute(failing));
    await heldWritten.promise;
    await outcome(breaker.execute(failing));
    expect(breaker.state).toBe('OPEN');
    holdAnswer.resolve();
    await first;
    expect(breaker.state).toBe('OPEN');
    const dependencyCalls = vi.fn(succeeding);
    expect((await outcome(breaker.execute(dependencyCalls))).error).toBeInstanceOf(CircuitOpenError);
    expect(dependencyCalls).not.toHaveBeenCalled();
  });

  it('counts each failure fleet-wide atomically and rethrows it', async () => {
    const name = uniqueName();
    const counted = countedClient();
    const breaker = instance(name, {}, counted);
    for (let index = 0; index < 4; index += 1) {
      expect((await outcome(breaker.execute(failing))).error).toBeInstanceOf(DependencyDown);
    }
    expect(breaker.state).toBe('CLOSED');
    expect(await storedItem(name)).toMatchObject({
      state: 'CLOSED',
      generation: 0,
      failures: 4,
      windowStart: base,
    });
    // One read at start; the first failure starts the window (a failed ADD, then the SET), the rest ADD.
    expect(counted.byCommand()).toEqual({ GetItemCommand: 1, UpdateItemCommand: 5 });
  });

  it('opens when the failure count reaches failureThreshold, reporting it once', async () => {
    const name = uniqueName();
    const events: SecurityEvent[] = [];
    const breaker = instance(name, { onEvent: (event) => events.push(event) });
    const opened = vi.fn();
    breaker.on('open', opened);
    await failTimes(breaker, 4);
    expect(opened).not.toHaveBeenCalled();
    const fifth = await outcome(breaker.execute(failing));
    expect(fifth.error).toBeInstanceOf(DependencyDown);
    expect(breaker.state).toBe('OPEN');
    expect(opened).toHaveBeenCalledTimes(1);
    expect(events).toEqual([
      {
        type: 'circuit.opened',
        reason: 'failure_threshold',
        metadata: { circuit: name, local: false, generation: 1, failures: 5, retryAfterSec: 60 },
      },
    ]);
    const item = await storedItem(name);
    expect(item).toMatchObject({
      pk: `CB#${name}`,
      sk: 'STATE',
      state: 'OPEN',
      generation: 1,
      openedAt: base,
    });
    // Stale circuits go away: the item expires a day after the reset timeout and window.
    expect(item?.expiresAt).toBe(Math.floor((base + 60_000 + 10_000 + 86_400_000) / 1000));
  });

  it('does not add up failures from different rolling windows', async () => {
    const name = uniqueName();
    const breaker = instance(name, { rollingWindowMs: 10_000 });
    await failTimes(breaker, 4);
    advance(10_000);
    await failTimes(breaker, 4);
    expect(breaker.state).toBe('CLOSED');
    expect(await storedItem(name)).toMatchObject({ failures: 4, windowStart: base + 10_000 });
  });

  /**
   * Ten minutes of a busy service, 100 calls a second (one every 10 ms on the clock), of which one a
   * minute fails: what the circuit let through and what it turned away.
   */
  async function busyServiceWithRareFailures(breaker: CircuitBreaker) {
    const start = Date.now();
    let ok = 0;
    let rejected = 0;
    for (let elapsed = 0; elapsed < 600_000; elapsed += 10) {
      vi.setSystemTime(start + elapsed);
      const action = elapsed % 60_000 === 0 ? failing : succeeding;
      const { error } = await outcome(breaker.execute(action));
      if (error === undefined) ok += 1;
      else if (error instanceof CircuitOpenError) rejected += 1;
    }
    return { ok, rejected, state: breaker.state };
  }

  it('stays closed under the default 10 s window for a busy service whose failures are rare', async () => {
    const breaker = breakerInMemory({ stateTtlMs: 0 });
    // Each window holds at most one failure, however many successes surround it: 10 of 60 000 fail.
    expect(await busyServiceWithRareFailures(breaker)).toEqual({ ok: 59_990, rejected: 0, state: 'CLOSED' });
  });

  it('lets the same rare failures add up over a long window, the cost of sizing it for timeouts', async () => {
    // 2 × 5 × 30 s, the window one caller's 30 s timeouts need: five failures a minute apart fill it.
    const windowMs = 300_000;
    const breaker = breakerInMemory({ stateTtlMs: 0, rollingWindowMs: windowMs });
    // From a window's start (how much is turned away depends on where the windows fall: 20 to 60 %).
    vi.setSystemTime(base - (base % windowMs) + windowMs);
    // Open at the fifth failure, and again in the next window after the probes closed it.
    expect(await busyServiceWithRareFailures(breaker)).toEqual({
      ok: 23_996,
      rejected: 35_994,
      state: 'OPEN',
    });
  });

  it('honours a custom failureThreshold', async () => {
    const breaker = instance(uniqueName(), { failureThreshold: 2 });
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('CLOSED');
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('OPEN');
  });
});

describe('an open circuit', () => {
  it('fails fast with a 503 CircuitOpenError carrying Retry-After, without calling the dependency', async () => {
    const name = uniqueName();
    const events: SecurityEvent[] = [];
    const breaker = instance(name, { onEvent: (event) => events.push(event) });
    await failTimes(breaker, 5);
    advance(20_000);
    const action = vi.fn(succeeding);
    const rejected = vi.fn();
    breaker.on('reject', rejected);

    const { error } = await outcome(breaker.execute(action));

    expect(action).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({
      statusCode: 503,
      code: 'CIRCUIT_OPEN',
      circuitName: name,
      retryAfterSec: 40,
      headers: { 'Retry-After': '40' },
    });
    expect(rejected).toHaveBeenCalledWith(error);
    expect(events.at(-1)).toEqual({
      type: 'circuit.rejected',
      reason: 'open',
      metadata: { circuit: name, local: false, retryAfterSec: 40 },
    });
  });

  it('keeps failing fast until resetTimeoutMs has passed', async () => {
    const breaker = instance(uniqueName(), { resetTimeoutMs: 30_000 });
    await failTimes(breaker, 5);
    advance(29_999);
    const action = vi.fn(succeeding);
    expect((await outcome(breaker.execute(action))).error).toMatchObject({ retryAfterSec: 1 });
    expect(action).not.toHaveBeenCalled();
  });
});

describe('half-open', () => {
  it('lets one probe through after resetTimeoutMs and closes after successThreshold successes', async () => {
    const name = uniqueName();
    const events: SecurityEvent[] = [];
    const breaker = instance(name, { onEvent: (event) => events.push(event) });
    const halfOpen = vi.fn();
    const closed = vi.fn();
    breaker.on('halfOpen', halfOpen).on('close', closed);
    await failTimes(breaker, 5);
    advance(60_000);

    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(halfOpen).toHaveBeenCalledWith(60_000);
    expect(breaker.state).toBe('HALF_OPEN');
    expect(await storedItem(name)).toMatchObject({ state: 'HALF_OPEN', successes: 1 });
    expect((await storedItem(name))?.probeOwner).toBeUndefined();
    expect(closed).not.toHaveBeenCalled();

    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(closed).toHaveBeenCalledTimes(1);
    expect(breaker.state).toBe('CLOSED');
    expect(await storedItem(name)).toMatchObject({ state: 'CLOSED', failures: 0 });
    expect(events.map((event) => [event.type, event.reason])).toEqual([
      ['circuit.opened', 'failure_threshold'],
      ['circuit.halfOpen', 'reset_timeout_elapsed'],
      ['circuit.closed', 'probes_succeeded'],
    ]);
  });

  it('holds a lease while its probe is in flight, so other calls are rejected meanwhile', async () => {
    const name = uniqueName();
    const breaker = instance(name);
    await failTimes(breaker, 5);
    advance(60_000);
    const probe = deferred<string>();
    const probing = breaker.execute(() => probe.promise);
    await vi.waitFor(async () => expect((await storedItem(name))?.probeOwner).toEqual(expect.any(String)));

    const other = vi.fn(succeeding);
    const { error } = await outcome(breaker.execute(other));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({ retryAfterSec: 1 });
    expect(other).not.toHaveBeenCalled();

    probe.resolve('probed');
    expect(await probing).toBe('probed');
  });

  it('reopens with a fresh reset timeout when a probe fails', async () => {
    const name = uniqueName();
    const breaker = instance(name);
    const opened = vi.fn();
    breaker.on('open', opened);
    await failTimes(breaker, 5);
    advance(60_000);

    expect((await outcome(breaker.execute(failing))).error).toBeInstanceOf(DependencyDown);
    expect(breaker.state).toBe('OPEN');
    expect(opened).toHaveBeenCalledTimes(2);
    expect(await storedItem(name)).toMatchObject({ state: 'OPEN', openedAt: base + 60_000 });

    advance(59_000);
    expect((await outcome(breaker.execute(succeeding))).error).toMatchObject({ retryAfterSec: 1 });
    advance(1000);
    expect(await breaker.execute(succeeding)).toBe('ok');
  });

  it('needs successThreshold consecutive successes: a failed probe starts the count again', async () => {
    const breaker = instance(uniqueName(), { successThreshold: 2 });
    await failTimes(breaker, 5);
    advance(60_000);
    await breaker.execute(succeeding);
    await outcome(breaker.execute(failing));
    advance(60_000);
    await breaker.execute(succeeding);
    expect(breaker.state).toBe('HALF_OPEN');
    await breaker.execute(succeeding);
    expect(breaker.state).toBe('CLOSED');
  });

  it('closes after one success when successThreshold is 1', async () => {
    const breaker = instance(uniqueName(), { successThreshold: 1 });
    await failTimes(breaker, 5);
    advance(60_000);
    await breaker.execute(succeeding);
    expect(breaker.state).toBe('CLOSED');
  });
});

describe("a call's own listener (execute's onEvent)", () => {
  /** A listener that tags each event it receives with `label`, into `into`. */
  const tagging =
    (into: [string, SecurityEvent['type']][], label: string) =>
    (event: SecurityEvent): void => {
      into.push([label, event.type]);
    };

  it('gets the events its call causes: the opening, a rejection, the half-open probe and the close', async () => {
    const events: [string, SecurityEvent['type']][] = [];
    const breaker = instance(uniqueName(), {
      failureThreshold: 2,
      successThreshold: 1,
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(breaker.execute(failing, { onEvent: tagging(events, 'first') }));
    await outcome(breaker.execute(failing, { onEvent: tagging(events, 'second') }));
    await outcome(breaker.execute(succeeding, { onEvent: tagging(events, 'third') }));
    // A call without its own listener still reports to the breaker's.
    await outcome(breaker.execute(succeeding));
    advance(60_000);
    expect(await breaker.execute(succeeding, { onEvent: tagging(events, 'probe') })).toBe('ok');
    expect(events).toEqual([
      ['second', 'circuit.opened'],
      ['third', 'circuit.rejected'],
      ['breaker', 'circuit.rejected'],
      ['probe', 'circuit.halfOpen'],
      ['probe', 'circuit.closed'],
    ]);
  });

  it('gets the store failure its call meets, and the breaker keeps those of its shared reads', async () => {
    const shared = new MemoryCircuitStateStore();
    const down = () => Promise.reject(new Error('store down'));
    const store = delegatingTo(shared, { addFailure: down });
    const events: [string, SecurityEvent['type']][] = [];
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      logger: { warn: vi.fn(), info: vi.fn() },
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(breaker.execute(failing, { onEvent: tagging(events, 'call') }));
    expect(events).toEqual([['call', 'circuit.storeError']]);

    const readsDown = new CircuitBreaker<string>({
      name: uniqueName(),
      store: delegatingTo(shared, { read: down }),
      logger: { warn: vi.fn(), info: vi.fn() },
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(readsDown.execute(succeeding, { onEvent: tagging(events, 'call') }));
    expect(events.slice(1)).toEqual([['breaker', 'circuit.storeError']]);
  });

  /**
   * The events of a breaker opened by one failure (to its own listener), then of the probe a minute
   * later, which runs `probe` with a listener of its own.
   */
  async function probeEvents(
    probe: () => Promise<unknown>,
    settings: Omit<CircuitBreakerSettings<unknown>, 'name'> = {},
  ): Promise<[string, SecurityEvent['type']][]> {
    const events: [string, SecurityEvent['type']][] = [];
    const breaker = instance(uniqueName(), {
      failureThreshold: 1,
      ...settings,
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(breaker.execute(failing));
    advance(60_000);
    await outcome(breaker.execute(probe, { onEvent: tagging(events, 'probe') }));
    return events;
  }

  it("gets the re-opening its failed probe causes, not the breaker's listener", async () => {
    expect(await probeEvents(failing)).toEqual([
      ['breaker', 'circuit.opened'],
      ['probe', 'circuit.halfOpen'],
      ['probe', 'circuit.opened'],
    ]);
  });

  it('gets the close its probe causes when errorFilter excuses the probe error', async () => {
    const notFound = () => Promise.reject(new RangeError('not found'));
    const events = await probeEvents(notFound, {
      successThreshold: 1,
      errorFilter: (error) => error instanceof RangeError,
    });
    expect(events).toEqual([
      ['breaker', 'circuit.opened'],
      ['probe', 'circuit.halfOpen'],
      ['probe', 'circuit.closed'],
    ]);
  });

  it('gets the store failure its call meets while opening the circuit', async () => {
    const store = delegatingTo(new MemoryCircuitStateStore(), {
      replace: () => Promise.reject(new Error('store down')),
    });
    const events: [string, SecurityEvent['type']][] = [];
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      failureThreshold: 1,
      logger: { warn: vi.fn(), info: vi.fn() },
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(breaker.execute(failing, { onEvent: tagging(events, 'call') }));
    expect(events).toEqual([
      ['call', 'circuit.storeError'],
      ['call', 'circuit.opened'],
    ]);
  });

  it('gets the rejection when its call loses every race for the probe lease', async () => {
    const shared = new MemoryCircuitStateStore();
    let racing = false;
    const store = delegatingTo(shared, {
      replace: async (name, generation, next, expiresAt, now) => {
        if (!racing) return shared.replace(name, generation, next, expiresAt, now);
        // Another instance took the lease first and its probe failed at once: open again, due again now.
        const reopened: CircuitRecord = {
          ...initialRecord,
          state: CircuitState.open,
          generation: generation + 1,
          openedAt: now - 60_000,
        };
        await shared.replace(name, generation, reopened, expiresAt, now);
        return { applied: false, record: reopened };
      },
    });
    const events: [string, SecurityEvent['type']][] = [];
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      failureThreshold: 1,
      logger: { warn: vi.fn(), info: vi.fn() },
      onEvent: tagging(events, 'breaker'),
    });
    await outcome(breaker.execute(failing));
    advance(60_000);
    racing = true;
    const { error } = await outcome(breaker.execute(succeeding, { onEvent: tagging(events, 'call') }));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(events).toEqual([
      ['breaker', 'circuit.opened'],
      ['call', 'circuit.rejected'],
    ]);
  });

  it("must be a function, and a null one is none: the breaker's listener gets the events", async () => {
    const breaker = instance(uniqueName());
    await expect(
      breaker.execute(succeeding, { onEvent: 'audit' as unknown as (event: SecurityEvent) => void }),
    ).rejects.toThrow(new InvalidArgumentError('onEvent must be a function'));
    const events: [string, SecurityEvent['type']][] = [];
    const reporting = instance(uniqueName(), { failureThreshold: 1, onEvent: tagging(events, 'breaker') });
    await outcome(reporting.execute(failing, { onEvent: null as never }));
    expect(events).toEqual([['breaker', 'circuit.opened']]);
  });
});

describe('errorFilter', () => {
  it('does not count errors it excuses, rethrows them and reports a success', async () => {
    const name = uniqueName();
    const fallback = vi.fn(() => 'fallback');
    const breaker = instance<string>(name, {
      failureThreshold: 2,
      errorFilter: (error) => error instanceof RangeError,
      fallback,
    });
    const successes = vi.fn();
    breaker.on('success', successes);
    const excused = new RangeError('not found');
    for (let index = 0; index < 5; index += 1) {
      expect((await outcome(breaker.execute(() => Promise.reject(excused)))).error).toBe(excused);
    }
    expect(breaker.state).toBe('CLOSED');
    expect(successes).toHaveBeenCalledTimes(5);
    expect(successes).toHaveBeenCalledWith(excused, expect.any(Number));
    expect(fallback).not.toHaveBeenCalled();
    expect(await storedItem(name)).toBeUndefined();
    // Errors it does not excuse still count.
    await outcome(breaker.execute(failing));
    await outcome(breaker.execute(failing));
    expect(breaker.state).toBe('OPEN');
  });

  it('treats an excused error from a probe as a sign of life', async () => {
    const breaker = instance(uniqueName(), {
      successThreshold: 1,
      errorFilter: (error) => error instanceof RangeError,
    });
    await failTimes(breaker, 5);
    advance(60_000);
    const excused = new RangeError('not found');
    expect((await outcome(breaker.execute(() => Promise.reject(excused)))).error).toBe(excused);
    expect(breaker.state).toBe('CLOSED');
  });
});

describe('fallback', () => {
  it('answers for a rejected call with the CircuitOpenError it replaces', async () => {
    const fallback = vi.fn((error: unknown) => (error instanceof CircuitOpenError ? 'cached' : 'other'));
    const breaker = instance<string>(uniqueName(), { fallback });
    const fallbacks = vi.fn();
    breaker.on('fallback', fallbacks);
    await failTimes(breaker, 5);
    fallback.mockClear();
    expect(await breaker.execute(succeeding)).toBe('cached');
    expect(fallback).toHaveBeenCalledWith(expect.any(CircuitOpenError));
    expect(fallbacks).toHaveBeenLastCalledWith('cached', expect.any(CircuitOpenError));
  });

  it('answers for a failed call with its error, and the failure still counts', async () => {
    const fallback = vi.fn(async () => 'degraded');
    const breaker = instance<string>(uniqueName(), { fallback, failureThreshold: 2 });
    expect(await breaker.execute(failing)).toBe('degraded');
    expect(fallback).toHaveBeenCalledWith(expect.any(DependencyDown));
    expect(await breaker.execute(failing)).toBe('degraded');
    expect(breaker.state).toBe('OPEN');
  });

  it('rejects with the fallback’s own error when the fallback throws', async () => {
    const broken = new Error('fallback broke');
    const breaker = instance<string>(uniqueName(), {
      fallback: () => {
        throw broken;
      },
    });
    expect((await outcome(breaker.execute(failing))).error).toBe(broken);
  });
});

describe('actions', () => {
  it('accepts an action that returns a plain value or throws synchronously', async () => {
    const breaker = instance<string>(uniqueName(), { failureThreshold: 1 });
    expect(await breaker.execute(() => 'plain')).toBe('plain');
    const thrown = new DependencyDown('sync');
    expect(
      (
        await outcome(
          breaker.execute(() => {
            throw thrown;
          }),
        )
      ).error,
    ).toBe(thrown);
    expect(breaker.state).toBe('OPEN');
  });

  it('emits success with the result and latency when someone listens', async () => {
    const breaker = instance<string>(uniqueName());
    const successes = vi.fn();
    breaker.on('success', successes);
    await breaker.execute(succeeding);
    expect(successes).toHaveBeenCalledWith('ok', 0);
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5'])(
    'refuses a per-call timeout of %s without calling the dependency or counting a failure',
    async (timeoutMs) => {
      const name = uniqueName();
      const breaker = instance(name, { failureThreshold: 1 });
      const action = vi.fn(succeeding);
      const { error } = await outcome(breaker.execute(action, { timeoutMs: timeoutMs as number }));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(action).not.toHaveBeenCalled();
      expect(breaker.state).toBe('CLOSED');
      expect(await storedItem(name)).toBeUndefined();
      expect(await breaker.execute(succeeding, {})).toBe('ok');
    },
  );
});

describe('timeouts', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    vi.setSystemTime(base);
  });

  /** An action that never settles, and a promise that resolves (with its signal) once it has started. */
  function hanging() {
    const started = deferred<AbortSignal>();
    const action = (call: GuardedCall) => {
      started.resolve(call.signal);
      return new Promise<never>(() => {});
    };
    return { action, started: started.promise };
  }

  it('releases a dependency that hangs forever at timeoutMs, aborts its signal and counts a failure', async () => {
    const name = uniqueName();
    const breaker = instance(name, { timeoutMs: 2000 });
    const timeouts = vi.fn();
    const failures = vi.fn();
    breaker.on('timeout', timeouts).on('failure', failures);
    const { action, started } = hanging();
    const call = outcome(breaker.execute(action));
    const signal = await started;
    await vi.advanceTimersByTimeAsync(1999);
    expect(signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);

    const { error } = await call;
    expect(error).toBeInstanceOf(DependencyTimeoutError);
    expect(error).toMatchObject({ statusCode: 504, code: 'DEPENDENCY_TIMEOUT', timeoutMs: 2000 });
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(error);
    expect(timeouts).toHaveBeenCalledWith(error, 2000);
    expect(failures).toHaveBeenCalledWith(error, 2000);
    expect(await storedItem(name)).toMatchObject({ failures: 1 });
  });

  it('hands an action that first reads its signal after the timeout an aborted one', async () => {
    const breaker = instance<string>(uniqueName(), { timeoutMs: 100 });
    await breaker.execute(succeeding);
    const signing = deferred<void>();
    const signalRead = deferred<AbortSignal>();
    const call = outcome(
      breaker.execute(async (guarded) => {
        await signing.promise;
        signalRead.resolve(guarded.signal);
        return 'too late';
      }),
    );
    await vi.advanceTimersByTimeAsync(100);
    const { error } = await call;
    expect(error).toBeInstanceOf(DependencyTimeoutError);

    signing.resolve();
    const signal = await signalRead.promise;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(error);
  });

  it('ignores what a timed-out action does later', async () => {
    const breaker = instance<string>(uniqueName(), { timeoutMs: 100 });
    await breaker.execute(succeeding);
    const late = deferred<string>();
    const call = outcome(breaker.execute(() => late.promise));
    await vi.advanceTimersByTimeAsync(100);
    late.resolve('too late');
    expect((await call).error).toBeInstanceOf(DependencyTimeoutError);
  });

  it('times out each of several concurrent calls at its own deadline', async () => {
    const breaker = instance<string>(uniqueName(), {
      timeoutMs: 1000,
      failureThreshold: 10,
      stateTtlMs: 60_000,
    });
    await breaker.execute(succeeding);
    const first = outcome(breaker.execute(() => new Promise<string>(() => {})));
    await vi.advanceTimersByTimeAsync(400);
    const second = outcome(breaker.execute(() => new Promise<string>(() => {})));
    expect(await breaker.execute(succeeding)).toBe('ok');
    await vi.advanceTimersByTimeAsync(600);
    expect((await first).error).toBeInstanceOf(DependencyTimeoutError);
    let secondSettled = false;
    void second.then(() => {
      secondSettled = true;
    });
    await vi.advanceTimersByTimeAsync(399);
    expect(secondSettled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((await second).error).toBeInstanceOf(DependencyTimeoutError);
  });

  it('applies a shorter per-call timeout, never a longer one', async () => {
    const breaker = instance(uniqueName(), { timeoutMs: 1000, stateTtlMs: 60_000 });
    await breaker.execute(succeeding);
    const long = outcome(breaker.execute(() => new Promise(() => {}), { timeoutMs: 5000 }));
    const short = outcome(breaker.execute(() => new Promise(() => {}), { timeoutMs: 50 }));
    await vi.advanceTimersByTimeAsync(50);
    expect((await short).error).toMatchObject({ timeoutMs: 50 });
    await vi.advanceTimersByTimeAsync(950);
    expect((await long).error).toMatchObject({ timeoutMs: 1000 });
  });

  it('times out a call started from another call’s abort listener at its own deadline, not a later call’s', async () => {
    const breaker = breakerInMemory({ timeoutMs: 1000, failureThreshold: 100, stateTtlMs: 60_000 });
    await breaker.execute(succeeding);
    const slow = outcome(breaker.execute(() => new Promise(() => {})));
    await vi.advanceTimersByTimeAsync(20);
    // Asking the dependency to cancel a job that timed out: the cancel call starts while the
    // breaker's one timer is still handling the job's timeout.
    let cancel: Promise<{ error?: unknown }> | undefined;
    const job = outcome(
      breaker.execute(
        ({ signal }) => {
          signal.addEventListener('abort', () => {
            cancel = outcome(breaker.execute(() => new Promise(() => {}), { timeoutMs: 50 }));
          });
          return new Promise(() => {});
        },
        { timeoutMs: 100 },
      ),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect((await job).error).toMatchObject({ timeoutMs: 100 });
    expect(cancel).toBeDefined();
    const settled: string[] = [];
    void cancel?.then(() => settled.push('cancel'));
    void slow.then(() => settled.push('slow'));
    await vi.advanceTimersByTimeAsync(50);
    expect(settled).toEqual(['cancel']);
    expect((await cancel)?.error).toMatchObject({ timeoutMs: 50 });
    await vi.advanceTimersByTimeAsync(830);
    expect(settled).toEqual(['cancel', 'slow']);
  });

  it('cuts a call short at the caller’s deadline with a 504 that does not count', async () => {
    const name = uniqueName();
    const breaker = instance(name, { timeoutMs: 2000, failureThreshold: 1 });
    const reported = vi.fn();
    breaker.on('timeout', reported).on('failure', reported).on('success', reported);
    const { action, started } = hanging();
    const call = outcome(breaker.execute(action, { deadline: Date.now() + 300 }));
    const signal = await started;
    await vi.advanceTimersByTimeAsync(300);

    const { error } = await call;
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).toMatchObject({ statusCode: 504, code: 'DEPENDENCY_TIMEOUT', timeoutMs: 300 });
    expect(signal.reason).toBe(error);
    expect(reported).not.toHaveBeenCalled();
    expect(breaker.state).toBe('CLOSED');
    expect(await storedItem(name)).toBeUndefined();
  });

  it('refuses a call whose deadline has passed without calling the dependency', async () => {
    const name = uniqueName();
    const breaker = instance(name, { failureThreshold: 1, fallback: () => 'fallback' });
    const action = vi.fn(succeeding);
    const { error } = await outcome(breaker.execute(action, { deadline: Date.now() }));
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).toMatchObject({ timeoutMs: 0 });
    expect(action).not.toHaveBeenCalled();
    expect(await storedItem(name)).toBeUndefined();
    await expect(breaker.execute(succeeding, { deadline: Number.NaN })).rejects.toThrow(InvalidArgumentError);
  });

  it('counts its own timeout when it ends before the caller’s deadline', async () => {
    const name = uniqueName();
    const breaker = instance(name, { timeoutMs: 100 });
    const { action, started } = hanging();
    const call = outcome(breaker.execute(action, { deadline: Date.now() + 1000 }));
    await started;
    await vi.advanceTimersByTimeAsync(100);
    const { error } = await call;
    expect(error).toBeInstanceOf(DependencyTimeoutError);
    expect(error).not.toBeInstanceOf(DeadlineExceededError);
    expect(await storedItem(name)).toMatchObject({ failures: 1 });
  });

  it('gives back the lease of a probe the caller’s deadline cut short, so the next call probes', async () => {
    const name = uniqueName();
    // Another instance opens the circuit: this one's timer then waits for nothing but the probe.
    await failTimes(instance(name), 5);
    advance(60_000);
    const breaker = instance(name, { timeoutMs: 500 });
    const { action, started } = hanging();
    const probe = outcome(breaker.execute(action, { deadline: Date.now() + 100 }));
    await started;
    await vi.advanceTimersByTimeAsync(100);
    expect((await probe).error).toBeInstanceOf(DeadlineExceededError);
    // The caller, out of time, does not wait for the lease to be given back.
    await vi.waitFor(async () =>
      expect(await storedItem(name)).toMatchObject({ state: 'HALF_OPEN', successes: 0, probeLeaseUntil: 0 }),
    );
    expect((await storedItem(name))?.probeOwner).toBeUndefined();

    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(await storedItem(name)).toMatchObject({ state: 'HALF_OPEN', successes: 1 });
  });

  /**
   * Calls `breaker` one call at a time against a dependency that never answers: each call times out,
   * and the next starts after the next of `gapsMs` (in turn). Returns how many calls timed out before
   * the circuit turned one away.
   */
  async function timeoutsUntilRejected(
    breaker: CircuitBreaker,
    timeoutMs: number,
    gapsMs: readonly number[],
  ): Promise<number> {
    for (let timeouts = 0; timeouts < 50; timeouts += 1) {
      const { action, started } = hanging();
      const call = outcome(breaker.execute(action));
      // The call starts once the breaker has its state, or is turned away without starting.
      const first = await Promise.race([started, call]);
      if (!(first instanceof AbortSignal)) {
        expect(first.error).toBeInstanceOf(CircuitOpenError);
        return timeouts;
      }
      await vi.advanceTimersByTimeAsync(timeoutMs);
      expect((await call).error).toBeInstanceOf(DependencyTimeoutError);
      await vi.advanceTimersByTimeAsync(gapsMs[timeouts % gapsMs.length] ?? 0);
    }
    throw new Error('The circuit never opened');
  }

  it("opens the sample's users circuit for a users service that hangs, bookings sent one at a time", async () => {
    const events: SecurityEvent[] = [];
    const { failureThreshold, timeoutMs, rollingWindowMs } = usersCircuit;
    const breaker = breakerInMemory({
      failureThreshold,
      timeoutMs,
      rollingWindowMs,
      onEvent: (event) => events.push(event),
    });
    // Its window, 2 × 5 × 3 s = 30 s. Starting mid-window, the first boundary cuts the run.
    vi.setSystemTime(base + 15_000);
    // Each booking tries users twice, 50 ms apart (the retry's longest first backoff), and the client
    // sends the next 30 ms after the answer: 6080 ms a booking, as in the reproduction.
    const timeouts = await timeoutsUntilRejected(breaker, timeoutMs, [usersCircuit.retry.baseDelayMs, 30]);
    // Open at the 5th timeout of the first whole window at the latest: at most 4 fall in the cut one.
    expect(timeouts).toBeGreaterThanOrEqual(failureThreshold);
    expect(timeouts).toBeLessThanOrEqual(2 * failureThreshold - 1);
    expect(events.map((event) => event.type)).toEqual(['circuit.opened', 'circuit.rejected']);
    expect(events[0]?.metadata).toMatchObject({ failures: failureThreshold });
  });

  it('never opens for those bookings under the default 10 s window, which cannot hold five 3 s timeouts', async () => {
    const { failureThreshold, timeoutMs } = usersCircuit;
    const breaker = breakerInMemory({ failureThreshold, timeoutMs });
    vi.setSystemTime(base + 15_000);
    const gapsMs = [usersCircuit.retry.baseDelayMs, 30];
    await expect(timeoutsUntilRejected(breaker, timeoutMs, gapsMs)).rejects.toThrow(
      'The circuit never opened',
    );
    expect(breaker.state).toBe('CLOSED');
  });

  it('opens for one caller whose calls, a timeout apart, all time out, in a window of 2 × threshold × timeout', async () => {
    // The README's rule for one caller at a time: 2 × 5 × 30 s (the default threshold and timeout).
    const windowMs = 300_000;
    const breaker = breakerInMemory({ rollingWindowMs: windowMs });
    // The window holds 5 such calls (one a minute) however it falls. Starting mid-window, the first
    // boundary cuts the run.
    vi.setSystemTime(base - (base % windowMs) + windowMs / 2);
    const timeouts = await timeoutsUntilRejected(breaker, 30_000, [30_000]);
    expect(timeouts).toBeGreaterThanOrEqual(5);
    expect(timeouts).toBeLessThanOrEqual(9);
    expect(breaker.state).toBe('OPEN');
  });

  it('bounds a half-open probe by the timeout and reopens when it hangs', async () => {
    const breaker = instance(uniqueName(), { timeoutMs: 500 });
    await failTimes(breaker, 5);
    advance(60_000);
    const { action, started } = hanging();
    const probe = outcome(breaker.execute(action));
    await started;
    await vi.advanceTimersByTimeAsync(500);
    expect((await probe).error).toBeInstanceOf(DependencyTimeoutError);
    expect(breaker.state).toBe('OPEN');
  });
});
