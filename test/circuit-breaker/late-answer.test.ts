// A transition whose write lands but is answered late, so the SDK sends it again: the repeat finds the
// record it wrote itself, and the instance still makes the transition its own.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { freezeAtFailureWindowStart } from '../helpers/failure-window.js';
import { type LateAnswerDynamoDb, startLateAnswerDynamoDb } from '../helpers/late-answer-dynamodb.js';
import { failing, outcome, storedItem, tableName, uniqueName } from './helpers.js';

/** How late the picked write is answered: past the client's 300 ms per attempt, within the store's bound. */
const lateMs = 600;
const resetTimeoutMs = 200;

let lateDynamoDb: LateAnswerDynamoDb;
beforeAll(async () => {
  lateDynamoDb = await startLateAnswerDynamoDb(inject('dynamoDbEndpoint'));
});
afterAll(() => lateDynamoDb.close());
afterEach(() => {
  vi.useRealTimers();
});

/**
 * One breaker instance over the late-answering DynamoDB, with the events it reports. The client gives
 * each attempt 300 ms and the store the whole operation 3 s, so a late answer is repeated by the SDK
 * rather than given up.
 */
function lateBreaker(name: string) {
  const events: SecurityEvent[] = [];
  const client = createDynamoDbClient({ endpoint: lateDynamoDb.endpoint, requestTimeoutMs: 300 });
  const breaker = new CircuitBreaker<string>({
    name,
    store: new DynamoDbCircuitStateStore({ tableName, client, requestTimeoutMs: 3000 }),
    failureThreshold: 2,
    successThreshold: 1,
    resetTimeoutMs,
    stateTtlMs: 0,
    onEvent: (event) => events.push(event),
    logger: { warn: vi.fn(), info: vi.fn() },
  });
  return { breaker, events, client };
}

/** Picks the put of the circuit's record in `state`. */
const putOf =
  (name: string, state: 'OPEN' | 'HALF_OPEN') =>
  (operation: string, body: string): boolean =>
    operation === 'PutItem' && body.includes(`"CB#${name}"`) && body.includes(`"state":{"S":"${state}"}`);

describe('a circuit transition DynamoDB applies but answers too late', () => {
  it('is the opening of the instance that wrote it, reported once', async () => {
    const name = uniqueName('late-open');
    const { breaker, events, client } = lateBreaker(name);
    freezeAtFailureWindowStart();
    lateDynamoDb.answerLate(putOf(name, 'OPEN'), lateMs);
    for (let failure = 0; failure < 2; failure += 1) await outcome(breaker.execute(failing));
    // The SDK did send the put again, and that repeat met the record its first attempt wrote.
    expect(lateDynamoDb.picked()).toBe(2);
    expect(events.map((event) => event.type)).toEqual(['circuit.opened']);
    expect(await storedItem(name)).toMatchObject({ state: 'OPEN', generation: 1 });
    client.destroy();
  });

  it('is a probe lease the instance that took it uses at once, and the probe closes the circuit', async () => {
    const name = uniqueName('late-lease');
    const { breaker, events, client } = lateBreaker(name);
    freezeAtFailureWindowStart();
    for (let failure = 0; failure < 2; failure += 1) await outcome(breaker.execute(failing));
    // The breaker reads when the probe is due from Date, which stands still here.
    vi.setSystemTime(Date.now() + resetTimeoutMs + 50);
    lateDynamoDb.answerLate(putOf(name, 'HALF_OPEN'), lateMs);
    let probes = 0;
    const answer = await outcome(
      breaker.execute(async () => {
        probes += 1;
        return 'ok';
      }),
    );
    expect(lateDynamoDb.picked()).toBe(2);
    expect(answer).toEqual({ value: 'ok' });
    expect(probes).toBe(1);
    expect(events.map((event) => event.type)).toEqual([
      'circuit.opened',
      'circuit.halfOpen',
      'circuit.closed',
    ]);
    expect(await storedItem(name)).toMatchObject({ state: 'CLOSED', generation: 3 });
    client.destroy();
  });
});
