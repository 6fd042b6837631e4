// The breaker when its own store is unreachable: local state, logs, events, and the way back.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import type { CircuitStateStore } from '../../middleware/circuit-breaker/state.js';
import { CircuitOpenError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { silentServer } from '../helpers/silent-server.js';
import {
  DependencyDown,
  dynamoStore,
  failing,
  outcome,
  refusedPort,
  storedItem,
  succeeding,
  tableName,
  uniqueName,
} from './helpers.js';

const base = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000;

function advance(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

/** A DynamoDB store whose client points at a 127.0.0.1 port nothing listens on. */
async function unreachableStore(): Promise<DynamoDbCircuitStateStore> {
  const client = createDynamoDbClient({ endpoint: `http://127.0.0.1:${refusedPort}`, maxAttempts: 1 });
  return new DynamoDbCircuitStateStore({ tableName, client, requestTimeoutMs: 500 });
}

/** The real DynamoDB store, with a switch that makes every request fail as a network outage would. */
function switchableStore(): { store: CircuitStateStore; setDown: (down: boolean) => void } {
  const real = dynamoStore();
  let down = false;
  const guard = <R>(operation: () => Promise<R>) =>
    down
      ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { name: 'TimeoutError' }))
      : operation();
  return {
    setDown: (value) => {
      down = value;
    },
    store: {
      read: (name, now) => guard(() => real.read(name, now)),
      addFailure: (name, failure, now) => guard(() => real.addFailure(name, failure, now)),
      replace: (name, generation, next, expiresAt, now) =>
        guard(() => real.replace(name, generation, next, expiresAt, now)),
    },
  };
}

function logger() {
  return { warn: vi.fn(), info: vi.fn() };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(base);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('when DynamoDB is unreachable', () => {
  it('keeps passing calls, says so once in the log, and reports every failed attempt to reach it', async () => {
    const events: SecurityEvent[] = [];
    const log = logger();
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store: await unreachableStore(),
      logger: log,
      onEvent: (event) => events.push(event),
    });
    for (let index = 0; index < 20; index += 1) expect(await breaker.execute(succeeding)).toBe('ok');
    advance(1000);
    // A second later the store is tried again, in the background: the call does not wait for it.
    expect(await breaker.execute(succeeding)).toBe('ok');
    await vi.waitFor(() => expect(events).toHaveLength(2));

    expect(breaker.isUsingLocalState).toBe(true);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn).toHaveBeenCalledWith(
      'Circuit state store failed; deciding on local state',
      expect.objectContaining({ circuit: breaker.name, reason: 'store_unreachable' }),
    );
    // One attempt at start, one more after a second: the store is retried, not hammered.
    expect(events.map((event) => event.type)).toEqual(['circuit.storeError', 'circuit.storeError']);
    expect(events[0]).toMatchObject({ reason: 'store_unreachable', metadata: { circuit: breaker.name } });
  });

  it('names a store that answers but refuses (a missing table) store_error, not unreachable', async () => {
    const events: SecurityEvent[] = [];
    const log = logger();
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store: new DynamoDbCircuitStateStore({
        tableName: `missing-${uniqueName()}`,
        client: createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }),
      }),
      logger: log,
      onEvent: (event) => events.push(event),
    });
    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(events[0]).toMatchObject({ type: 'circuit.storeError', reason: 'store_error' });
    expect(log.warn).toHaveBeenCalledWith(
      'Circuit state store failed; deciding on local state',
      expect.objectContaining({ reason: 'store_error', error: 'ResourceNotFoundException' }),
    );
  });

  it('names a store that never answers store_timeout once its time bound cuts the call', async () => {
    const server = await silentServer();
    // The client as the sample shares it (2 s per attempt, 3 attempts): the store's own bound comes first.
    const client = createDynamoDbClient({ endpoint: server.endpoint });
    const events: SecurityEvent[] = [];
    const log = logger();
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store: new DynamoDbCircuitStateStore({ tableName, client, requestTimeoutMs: 100 }),
      logger: log,
      onEvent: (event) => events.push(event),
    });
    expect(await breaker.execute(succeeding)).toBe('ok');
    client.destroy();
    await server.close();
    expect(events[0]).toMatchObject({ type: 'circuit.storeError', reason: 'store_timeout' });
    expect(log.warn).toHaveBeenCalledWith(
      'Circuit state store failed; deciding on local state',
      expect.objectContaining({ reason: 'store_timeout', error: 'TimeoutError' }),
    );
  });

  it('switches to local state once when calls in flight all find the store gone', async () => {
    const { store, setDown } = switchableStore();
    const events: SecurityEvent[] = [];
    const log = logger();
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store,
      failureThreshold: 5,
      logger: log,
      onEvent: (event) => events.push(event),
    });
    expect(await breaker.execute(succeeding)).toBe('ok');
    setDown(true);
    await Promise.allSettled(Array.from({ length: 8 }, () => breaker.execute(failing)));
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(events.filter((event) => event.type === 'circuit.storeError')).toHaveLength(1);
    // The failures counted locally were not wiped by a second switch-over: the circuit opened.
    expect(breaker.state).toBe('OPEN');
  });

  it('does not make calls wait for a store that accepts connections and never answers', async () => {
    const blackHole = createServer(() => {});
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const { port } = blackHole.address() as AddressInfo;
    const events: SecurityEvent[] = [];
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store: new DynamoDbCircuitStateStore({
        tableName,
        client: createDynamoDbClient({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 }),
        requestTimeoutMs: 200,
      }),
      logger: logger(),
      onEvent: (event) => events.push(event),
    });
    // The call that finds the store hanging waits for the store's request timeout, once.
    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(events).toHaveLength(1);
    advance(1000);
    // The next retry of the store runs in the background: this call is answered while it still hangs.
    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(events).toHaveLength(1);
    await vi.waitFor(() => expect(events).toHaveLength(2));
    blackHole.closeAllConnections();
    await new Promise<void>((resolve) => blackHole.close(() => resolve()));
  });

  it('opens on local state after failureThreshold failures, fails fast, then probes and closes locally', async () => {
    const events: SecurityEvent[] = [];
    const breaker = new CircuitBreaker<string>({
      name: uniqueName(),
      store: await unreachableStore(),
      logger: logger(),
      onEvent: (event) => events.push(event),
    });
    for (let index = 0; index < 5; index += 1) {
      expect((await outcome(breaker.execute(failing))).error).toBeInstanceOf(DependencyDown);
    }
    expect(breaker.state).toBe('OPEN');
    const action = vi.fn(succeeding);
    expect((await outcome(breaker.execute(action))).error).toBeInstanceOf(CircuitOpenError);
    expect(action).not.toHaveBeenCalled();

    advance(60_000);
    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(await breaker.execute(succeeding)).toBe('ok');
    expect(breaker.state).toBe('CLOSED');
    expect(
      events.filter((event) => event.type !== 'circuit.storeError' && event.type !== 'circuit.rejected'),
    ).toEqual([
      expect.objectContaining({ type: 'circuit.opened', metadata: expect.objectContaining({ local: true }) }),
      expect.objectContaining({ type: 'circuit.halfOpen' }),
      expect.objectContaining({ type: 'circuit.closed' }),
    ]);
  });

  it('carries an open circuit into local state when the store goes down', async () => {
    const name = uniqueName();
    const { store, setDown } = switchableStore();
    const breaker = new CircuitBreaker<string>({ name, store, logger: logger() });
    for (let index = 0; index < 5; index += 1) await outcome(breaker.execute(failing));
    expect(await storedItem(name)).toMatchObject({ state: 'OPEN' });

    setDown(true);
    advance(30_000);
    const action = vi.fn(succeeding);
    expect((await outcome(breaker.execute(action))).error).toMatchObject({ retryAfterSec: 30 });
    expect(action).not.toHaveBeenCalled();
    expect(breaker.isUsingLocalState).toBe(true);
  });

  it('goes back to the shared state once the store answers again', async () => {
    const name = uniqueName();
    const { store, setDown } = switchableStore();
    const log = logger();
    const breaker = new CircuitBreaker<string>({ name, store, logger: log, failureThreshold: 2 });
    setDown(true);
    await outcome(breaker.execute(failing));
    expect(breaker.isUsingLocalState).toBe(true);
    expect(await storedItem(name)).toBeUndefined();

    setDown(false);
    // Within the second, the store is not tried again; after it, a background read finds it back.
    await breaker.execute(succeeding);
    expect(breaker.isUsingLocalState).toBe(true);
    advance(1000);
    await breaker.execute(succeeding);
    await vi.waitFor(() => expect(breaker.isUsingLocalState).toBe(false));
    await outcome(breaker.execute(failing));
    expect(log.info).toHaveBeenCalledWith('Circuit state store reachable again; using shared state', {
      circuit: name,
    });
    // Counting resumed on the shared record: the fleet's count, not the local one, decides.
    expect(await storedItem(name)).toMatchObject({ state: 'CLOSED', failures: 1 });
  });

  it('falls back to local state when a transition cannot be written', async () => {
    const name = uniqueName();
    const { store, setDown } = switchableStore();
    const breaker = new CircuitBreaker<string>({ name, store, logger: logger(), failureThreshold: 3 });
    for (let index = 0; index < 2; index += 1) await outcome(breaker.execute(failing));
    setDown(true);
    await outcome(breaker.execute(failing));
    expect(breaker.state).toBe('OPEN');
    expect(breaker.isUsingLocalState).toBe(true);
  });
});
