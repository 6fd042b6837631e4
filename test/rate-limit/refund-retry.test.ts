// A refund sent twice, by the client's own retry of a write that landed but was answered late, gives back once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type CounterStore,
  MemoryCounterStore,
  type TatAdvance,
} from '../../middleware/rate-limit/counter-store.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { type LateAnswerDynamoDb, startLateAnswerDynamoDb } from '../helpers/late-answer-dynamodb.js';
import { countingClient, tableName, uniquePolicyName } from './helpers.js';

const unitUs = 1_000_000;

describe.each([
  ['DynamoDbCounterStore', () => new DynamoDbCounterStore({ tableName, client: countingClient().client })],
  ['MemoryCounterStore', () => new MemoryCounterStore()],
])('%s refunds by id', (_name, createStore: () => CounterStore) => {
  const nowUs = Date.now() * 1000;
  const common = { nowUs, windowSec: 60, expiresAtSec: Math.ceil(nowUs / unitUs) + 60 };
  const consume: TatAdvance = { ...common, mode: 'fresh', thresholdUs: nowUs, incrementUs: 5 * unitUs };
  const refund = (refundId: string): TatAdvance => ({
    ...common,
    mode: 'busy',
    thresholdUs: nowUs + 60 * unitUs,
    incrementUs: -unitUs,
    refundId,
  });

  it('applies a refund once however often it is sent, answering a repeat with the TAT it holds', async () => {
    const store = createStore();
    const key = `RL#refund-id#${randomUUID()}`;
    expect(await store.write(key, consume)).toEqual({ applied: true, tatUs: nowUs + 5 * unitUs });
    const first = refund(randomUUID());
    expect(await store.write(key, first)).toEqual({ applied: true, tatUs: nowUs + 4 * unitUs });
    expect(await store.write(key, first)).toEqual({ applied: true, tatUs: nowUs + 4 * unitUs });
    // A consume in between leaves the id in place: a late repeat still gives nothing back.
    const busyConsume: TatAdvance = {
      ...consume,
      mode: 'busy',
      thresholdUs: nowUs + 59 * unitUs,
      incrementUs: unitUs,
    };
    expect(await store.write(key, busyConsume)).toEqual({ applied: true, tatUs: nowUs + 5 * unitUs });
    expect(await store.write(key, first)).toEqual({ applied: true, tatUs: nowUs + 5 * unitUs });
    // Another refund has another id, and applies.
    expect(await store.write(key, refund(randomUUID()))).toEqual({
      applied: true,
      tatUs: nowUs + 4 * unitUs,
    });
    expect(await store.read(key, nowUs)).toEqual({ tatUs: nowUs + 4 * unitUs, windowSec: 60 });
  });

  it('keeps a refund id through a rebase: a repeat after it gives nothing back and answers the TAT held', async () => {
    const store = createStore();
    const key = `RL#refund-id#${randomUUID()}`;
    await store.write(key, consume);
    const first = refund(randomUUID());
    expect(await store.write(key, first)).toEqual({ applied: true, tatUs: nowUs + 4 * unitUs });
    // Another window's policy converts the TAT into its own terms.
    const rebased = nowUs + 8 * unitUs;
    expect(
      await store.write(key, {
        ...common,
        windowSec: 120,
        mode: 'rebase',
        from: { tatUs: nowUs + 4 * unitUs, windowSec: 60 },
        tatUs: rebased,
      }),
    ).toEqual({ applied: true, tatUs: rebased });
    expect(await store.write(key, first)).toEqual({ applied: true, tatUs: rebased });
    expect(await store.read(key, nowUs)).toEqual({ tatUs: rebased, windowSec: 120 });
  });
});

describe('RateLimiter.refund when DynamoDB answers the refund too late', () => {
  let lateDynamoDb: LateAnswerDynamoDb;
  beforeAll(async () => {
    lateDynamoDb = await startLateAnswerDynamoDb(inject('dynamoDbEndpoint'));
  });
  afterAll(() => lateDynamoDb.close());

  it('gives one unit back, not two, to a per-number SMS budget of 5 a day', async () => {
    // The client of functions/shared/route-rate-limit.ts: 1 s per attempt, 2 attempts.
    const client = createDynamoDbClient({
      endpoint: lateDynamoDb.endpoint,
      requestTimeoutMs: 1000,
      connectionTimeoutMs: 500,
      maxAttempts: 2,
    });
    const limiter = new RateLimiter({
      policy: { name: uniquePolicyName('sms-number'), limit: 5, windowSec: 86_400 },
      store: new DynamoDbCounterStore({ tableName, client }),
    });
    const key = `phone:+1555${randomUUID().slice(0, 7)}`;
    const storageKey = limiter.storageKeyOf(key);
    const admitted = [];
    for (let sent = 0; sent < 4; sent += 1) admitted.push((await limiter.consume(key)).allowed);
    const fifth = await limiter.consume(key);
    expect([...admitted, fifth.allowed]).toEqual([true, true, true, true, true]);
    // The fifth SMS was not sent: its unit goes back, in a write that lands but is answered after 1.5 s.
    lateDynamoDb.answerLate(
      (operation, body) =>
        operation === 'UpdateItem' && body.includes(storageKey) && body.includes('{"N":"-'),
      1500,
    );
    await limiter.refund(key, fifth);
    expect(lateDynamoDb.picked()).toBe(2);
    expect(await limiter.getRemaining(key)).toBe(1);
    const after = [];
    for (let attempt = 0; attempt < 3; attempt += 1) after.push((await limiter.consume(key)).allowed);
    // Six admitted in all, one of them refunded: five SMS sent, the day's budget.
    expect(after).toEqual([true, false, false]);
    client.destroy();
  });
});
