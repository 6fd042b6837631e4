// Ten breaker instances (separate objects and caches) sharing one circuit through DynamoDB.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import type { CircuitBreakerSettings } from '../../middleware/circuit-breaker/options.js';
import { CircuitOpenError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import {
  DependencyDown,
  deferred,
  instance,
  outcome,
  storedItem,
  succeeding,
  uniqueName,
} from './helpers.js';

const base = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000;
const instances = 10;
const failureThreshold = 5;
const stateTtlMs = 1000;

function advance(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

/** Ten Lambda instances of one breaker: separate objects, separate clients, separate caches. */
function fleet(name: string, settings: Omit<CircuitBreakerSettings<string>, 'name'> = {}) {
  const events: SecurityEvent[] = [];
  const breakers: CircuitBreaker<string>[] = Array.from({ length: instances }, () =>
    instance<string>(name, {
      failureThreshold,
      stateTtlMs,
      onEvent: (event) => events.push(event),
      ...settings,
    }),
  );
  return { breakers, events };
}

function member<T>(list: readonly T[], index: number): T {
  const item = list[index];
  if (item === undefined) throw new Error(`No instance ${index}`);
  return item;
}

/** A dependency that fails every call, counting the calls that reached it. */
function deadDependency() {
  let calls = 0;
  return {
    calls: () => calls,
    action: () => {
      calls += 1;
      return Promise.reject(new DependencyDown());
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(base);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a fleet of 10 instances against one failing dependency', () => {
  it('opens after at most failureThreshold + (instances - 1) failed calls in total, all instances calling at once', async () => {
    const name = uniqueName('fleet');
    const { breakers, events } = fleet(name);
    const dependency = deadDependency();
    // Each instance handles one request at a time, as a Lambda instance does; they all call together.
    for (let round = 0; round < 5; round += 1) {
      await Promise.all(breakers.map((breaker) => outcome(breaker.execute(dependency.action))));
    }
    expect(dependency.calls()).toBeLessThanOrEqual(failureThreshold + instances - 1);
    expect(events.filter((event) => event.type === 'circuit.opened')).toHaveLength(1);
    expect(await storedItem(name)).toMatchObject({ state: 'OPEN', generation: 1 });
  });

  it('opens after at most failureThreshold + (instances - 1) failed calls when the instances take turns', async () => {
    const name = uniqueName('fleet');
    const { breakers, events } = fleet(name);
    const dependency = deadDependency();
    for (let round = 0; round < 3; round += 1) {
      for (const breaker of breakers) await outcome(breaker.execute(dependency.action));
    }
    expect(dependency.calls()).toBeLessThanOrEqual(failureThreshold + instances - 1);
    expect(events.filter((event) => event.type === 'circuit.opened')).toHaveLength(1);
  });

  it('makes every instance fail fast within stateTtlMs of opening, even those that never saw a failure', async () => {
    const name = uniqueName('fleet');
    const { breakers } = fleet(name);
    // All instances have read the (closed) state; then only the first two see the failures.
    await Promise.all(breakers.map((breaker) => breaker.execute(succeeding)));
    const dependency = deadDependency();
    for (let index = 0; index < failureThreshold; index += 1) {
      await outcome(member(breakers, index % 2).execute(dependency.action));
    }
    expect(breakers[0]?.state).toBe('OPEN');

    advance(stateTtlMs);
    const action = vi.fn(succeeding);
    const results = await Promise.all(breakers.map((breaker) => outcome(breaker.execute(action))));
    expect(action).not.toHaveBeenCalled();
    for (const result of results) expect(result.error).toBeInstanceOf(CircuitOpenError);
  });

  it('lets exactly one half-open probe through across the fleet', async () => {
    const name = uniqueName('fleet');
    const { breakers, events } = fleet(name);
    const dependency = deadDependency();
    for (let round = 0; round < 3; round += 1) {
      await Promise.all(breakers.map((breaker) => outcome(breaker.execute(dependency.action))));
    }
    advance(60_000);

    const probe = deferred<string>();
    const action = vi.fn(() => probe.promise);
    let settled = 0;
    const calls = breakers.map((breaker) =>
      outcome(breaker.execute(action)).then((result) => {
        settled += 1;
        return result;
      }),
    );
    // Nine instances are turned away while the one probe is still in flight.
    await vi.waitFor(() => expect(settled).toBe(instances - 1));
    expect((await storedItem(name))?.probeOwner).toEqual(expect.any(String));
    const halfOpenEvents = events.filter((event) => event.type === 'circuit.halfOpen');
    expect(halfOpenEvents).toHaveLength(1);
    probe.resolve('recovered');
    const results = await Promise.all(calls);

    expect(action).toHaveBeenCalledTimes(1);
    expect(results.filter((result) => result.value === 'recovered')).toHaveLength(1);
    expect(results.filter((result) => result.error instanceof CircuitOpenError)).toHaveLength(instances - 1);
  });

  it('recovers on its own: successThreshold probes close it, and every instance passes calls again', async () => {
    const name = uniqueName('fleet');
    const { breakers, events } = fleet(name);
    const dependency = deadDependency();
    for (let round = 0; round < 3; round += 1) {
      await Promise.all(breakers.map((breaker) => outcome(breaker.execute(dependency.action))));
    }
    advance(60_000);
    // The dependency is back. Instances take turns: the probes go one at a time.
    for (const breaker of breakers.slice(0, 2)) expect(await breaker.execute(succeeding)).toBe('ok');
    expect(events.filter((event) => event.type === 'circuit.closed')).toHaveLength(1);

    advance(stateTtlMs);
    const results = await Promise.all(breakers.map((breaker) => breaker.execute(succeeding)));
    expect(results).toEqual(Array(instances).fill('ok'));
    // open (1), first lease (2), its release (3), second lease (4), close (5).
    expect(await storedItem(name)).toMatchObject({ state: 'CLOSED', generation: 5 });
  });

  it('hands the probe to another instance when the probing one never reports back', async () => {
    const name = uniqueName('fleet');
    const { breakers } = fleet(name, { timeoutMs: 2000 });
    const dependency = deadDependency();
    for (let round = 0; round < 3; round += 1) {
      await Promise.all(breakers.map((breaker) => outcome(breaker.execute(dependency.action))));
    }
    advance(60_000);
    const first = member(breakers, 0);
    const second = member(breakers, 1);
    // The first instance takes the lease and is frozen mid-probe (its call never settles here).
    void first.execute(() => new Promise<string>(() => {}));
    await vi.waitFor(async () => expect((await storedItem(name))?.probeOwner).toEqual(expect.any(String)));
    expect((await outcome(second.execute(succeeding))).error).toBeInstanceOf(CircuitOpenError);

    // Past the lease (timeout + margin) the next instance may probe.
    advance(3000);
    expect(await second.execute(succeeding)).toBe('ok');
    expect(await storedItem(name)).toMatchObject({ state: 'HALF_OPEN', successes: 1 });
  });

  it('counts a failure toward the current generation when another instance closed the circuit meanwhile', async () => {
    const name = uniqueName('fleet');
    const { breakers } = fleet(name, { successThreshold: 1, stateTtlMs: 600_000 });
    const stale = member(breakers, 0);
    const active = member(breakers, 1);
    await stale.execute(succeeding);
    const dependency = deadDependency();
    for (let index = 0; index < failureThreshold; index += 1)
      await outcome(active.execute(dependency.action));
    advance(60_000);
    await active.execute(succeeding);
    expect(active.state).toBe('CLOSED');

    // `stale` still believes generation 0; its failure lands on the current generation anyway.
    await outcome(stale.execute(dependency.action));
    expect(await storedItem(name)).toMatchObject({ state: 'CLOSED', generation: 3, failures: 1 });
  });
});
