// The circuit state stores: DynamoDB and in-memory give the same answers to the same operations.
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import {
  type CircuitRecord,
  type CircuitStateStore,
  initialRecord,
} from '../../middleware/circuit-breaker/state.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { createDocumentClient } from '../../middleware/store/client.js';
import { countedClient, dynamoStore, storedItem, tableName, uniqueName } from './helpers.js';

const now = Math.ceil(Date.now() / 60_000) * 60_000;
const expiresAt = Math.floor(now / 1000) + 3600;

const openRecord = (generation: number): CircuitRecord => ({
  ...initialRecord,
  state: 'OPEN',
  generation,
  openedAt: now,
});

const stores: [string, () => CircuitStateStore][] = [
  ['DynamoDB', () => dynamoStore()],
  ['in memory', () => new MemoryCircuitStateStore()],
];

describe.each(stores)('the %s circuit state store', (_label, createStore) => {
  it('reads a circuit nobody has written as closed, generation 0', async () => {
    expect(await createStore().read(uniqueName(), now)).toEqual(initialRecord);
  });

  it('counts failures in one window and restarts the count in the next', async () => {
    const store = createStore();
    const name = uniqueName();
    const failure = { generation: 0, windowStart: now, expiresAt };
    expect(await store.addFailure(name, failure, now)).toMatchObject({ failures: 1, windowStart: now });
    expect(await store.addFailure(name, failure, now)).toMatchObject({ failures: 2 });
    const next = { ...failure, windowStart: now + 10_000 };
    expect(await store.addFailure(name, next, now)).toMatchObject({ failures: 1, windowStart: now + 10_000 });
    // A late failure from the window that has rolled over is not counted.
    expect(await store.addFailure(name, failure, now)).toMatchObject({
      failures: 1,
      windowStart: now + 10_000,
    });
  });

  it('counts every one of many concurrent failures exactly once', async () => {
    const store = createStore();
    const name = uniqueName();
    const failure = { generation: 0, windowStart: now, expiresAt };
    await Promise.all(Array.from({ length: 20 }, () => store.addFailure(name, failure, now)));
    expect(await store.read(name, now)).toMatchObject({ failures: 20 });
  });

  it('does not count a failure against a circuit that has moved to another state or generation', async () => {
    const store = createStore();
    const name = uniqueName();
    await store.replace(name, 0, openRecord(1), expiresAt, now);
    const current = await store.addFailure(name, { generation: 0, windowStart: now, expiresAt }, now);
    expect(current).toMatchObject({ state: 'OPEN', generation: 1, failures: 0 });
  });

  it('applies exactly one of several concurrent transitions from the same generation', async () => {
    const store = createStore();
    const name = uniqueName();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        store.replace(name, 0, { ...openRecord(1), openedAt: now + index }, expiresAt, now),
      ),
    );
    const applied = results.filter((result) => result.applied);
    expect(applied).toHaveLength(1);
    const current = await store.read(name, now);
    expect(current).toEqual(applied[0]?.record);
    for (const result of results.filter((candidate) => !candidate.applied)) {
      expect(result.record).toEqual(current);
    }
  });

  it('treats an expired record as a circuit nobody has written, which generation 0 may replace', async () => {
    const store = createStore();
    const name = uniqueName();
    const soon = Math.floor(now / 1000) + 1;
    await store.replace(name, 0, openRecord(7), soon, now);
    const later = now + 2000;
    expect(await store.read(name, later)).toEqual(initialRecord);
    expect((await store.replace(name, 0, openRecord(1), expiresAt, later)).applied).toBe(true);
  });

  it('starts a fresh count on an expired record', async () => {
    const store = createStore();
    const name = uniqueName();
    const soon = Math.floor(now / 1000) + 1;
    await store.replace(name, 0, openRecord(7), soon, now);
    const later = now + 2000;
    const fresh = await store.addFailure(name, { generation: 0, windowStart: later, expiresAt }, later);
    expect(fresh).toMatchObject({ state: 'CLOSED', generation: 0, failures: 1, windowStart: later });
  });
});

describe('DynamoDbCircuitStateStore', () => {
  it('keeps one item per circuit under CB#<name> in the toolkit table, with expiresAt', async () => {
    const name = uniqueName();
    await dynamoStore().replace(name, 0, openRecord(1), expiresAt, now);
    expect(await storedItem(name)).toEqual({
      pk: `CB#${name}`,
      sk: 'STATE',
      state: 'OPEN',
      generation: 1,
      openedAt: now,
      probeLeaseUntil: 0,
      successes: 0,
      windowStart: 0,
      failures: 0,
      expiresAt,
      // Whose transition it is: a repeat of the put by the SDK finds its own token (late-answer.test.ts).
      writeToken: expect.stringMatching(/^[\da-f-]{36}$/),
    });
  });

  it('makes one request for a transition, and reads only when another instance made it first', async () => {
    const counted = countedClient();
    const store = dynamoStore(counted);
    const name = uniqueName();
    expect(await store.replace(name, 0, openRecord(1), expiresAt, now)).toMatchObject({ applied: true });
    expect(counted.byCommand()).toEqual({ PutItemCommand: 1 });
    expect(await store.replace(name, 0, openRecord(1), expiresAt, now)).toMatchObject({
      applied: false,
      record: openRecord(1),
    });
    expect(counted.byCommand()).toEqual({ PutItemCommand: 2, GetItemCommand: 1 });
  });

  it('reads an item with missing or unknown attributes as a closed circuit with zeroes', async () => {
    const name = uniqueName();
    const documents = createDocumentClient(countedClient().client);
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { pk: `CB#${name}`, sk: 'STATE', state: 'BROKEN' } }),
    );
    expect(await dynamoStore().read(name, now)).toEqual({ ...initialRecord, probeOwner: undefined });
  });

  it('makes a single request for a failure in the current window, two for the first of a window', async () => {
    const counted = countedClient();
    const store = dynamoStore(counted);
    const name = uniqueName();
    const failure = { generation: 0, windowStart: now, expiresAt };
    await store.addFailure(name, failure, now);
    expect(counted.byCommand()).toEqual({ UpdateItemCommand: 2 });
    await store.addFailure(name, failure, now);
    expect(counted.byCommand()).toEqual({ UpdateItemCommand: 3 });
    const nextWindow = { ...failure, windowStart: now + 10_000 };
    expect(await store.addFailure(name, nextWindow, now + 10_000)).toMatchObject({ failures: 1 });
    expect(counted.byCommand()).toEqual({ UpdateItemCommand: 5 });
  });

  it('passes on errors other than a failed condition', async () => {
    const store = new DynamoDbCircuitStateStore({
      tableName: 'no-such-table',
      client: countedClient().client,
    });
    const name = uniqueName();
    const notFound = { name: 'ResourceNotFoundException' };
    await expect(store.read(name, now)).rejects.toMatchObject(notFound);
    await expect(
      store.addFailure(name, { generation: 0, windowStart: now, expiresAt }, now),
    ).rejects.toMatchObject(notFound);
    await expect(store.replace(name, 0, openRecord(1), expiresAt, now)).rejects.toMatchObject(notFound);
  });

  it('rejects invalid options with one error listing every problem', () => {
    expect(() => new DynamoDbCircuitStateStore({ tableName: '   ', requestTimeoutMs: -1 })).toThrow(
      new InvalidOptionsError('DynamoDbCircuitStateStore', [
        'tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got "   ")',
        'requestTimeoutMs must be an integer of milliseconds 1..2147483647 (got -1)',
      ]),
    );
  });

  it.each([0, 1500.5, 2 ** 31, 2 ** 32, Number.NaN])(
    'rejects a requestTimeoutMs of %s, which would fail every store operation',
    (requestTimeoutMs) => {
      expect(() => new DynamoDbCircuitStateStore({ tableName, requestTimeoutMs })).toThrow(
        InvalidOptionsError,
      );
    },
  );

  it('works with the longest requestTimeoutMs it accepts', async () => {
    const store = new DynamoDbCircuitStateStore({
      tableName,
      client: countedClient().client,
      requestTimeoutMs: 2_147_483_647,
    });
    expect(await store.read(uniqueName(), Date.now())).toMatchObject({ state: 'CLOSED', generation: 0 });
  });
});
