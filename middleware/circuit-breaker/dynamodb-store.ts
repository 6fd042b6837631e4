// Circuit state shared by every Lambda instance: one item per circuit (`CB#<name>`) in the toolkit table.
import { randomUUID } from 'node:crypto';
import type { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { assertNoProblems } from '../errors.js';
import { requireOptionsObject } from '../options.js';
import { createDocumentClient, createDynamoDbClient } from '../store/client.js';
import { checkTableName, isExpired } from '../store/tables.js';
import { checkTimeLimit } from '../time-limits.js';
import {
  type CircuitRecord,
  CircuitState,
  type CircuitStateName,
  type CircuitStateStore,
  initialRecord,
  type ReplaceResult,
} from './state.js';

export interface DynamoDbCircuitStateStoreOptions {
  /** The toolkit table (`pk`/`sk` string keys, TTL on `expiresAt`). */
  readonly tableName: string;
  /** @default one client from `createDynamoDbClient()`, shared by every store given none */
  readonly client?: DynamoDBClient | undefined;
  /**
   * Upper bound on one store operation, all SDK attempts included, so that an unreachable store
   * holds a call for at most this long before the breaker falls back to local state. An integer
   * 1..2147483647: `AbortSignal.timeout()` throws for a fraction, and fires after 1 ms past that.
   * @default 1000
   */
  readonly requestTimeoutMs?: number | undefined;
}

/** The item's sort key: one item per circuit. */
const stateSortKey = 'STATE';

const states: readonly CircuitStateName[] = Object.values(CircuitState);

let sharedClient: DynamoDBClient | undefined;

/** Created on first use, so importing the toolkit never builds a client nobody asked for. */
function defaultClient(): DynamoDBClient {
  sharedClient ??= createDynamoDbClient();
  return sharedClient;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

/**
 * Whether the item a failed condition sent back (`ReturnValuesOnConditionCheckFailure`) carries `token`.
 * The document client leaves that item in DynamoDB's attribute-value form.
 */
function carriesToken(error: unknown, token: string): boolean {
  return (error as Partial<ConditionalCheckFailedException>).Item?.['writeToken']?.S === token;
}

const numberOr = (value: unknown, fallback: number) => (typeof value === 'number' ? value : fallback);

/** A stored item as a record; a missing or expired item is a circuit nobody has written. */
function toRecord(item: Record<string, unknown> | undefined, nowMs: number): CircuitRecord {
  if (!item || isExpired(item, nowMs)) return initialRecord;
  const state = states.find((candidate) => candidate === item['state']) ?? CircuitState.closed;
  return {
    state,
    generation: numberOr(item['generation'], 0),
    openedAt: numberOr(item['openedAt'], 0),
    probeOwner: typeof item['probeOwner'] === 'string' ? item['probeOwner'] : undefined,
    probeLeaseUntil: numberOr(item['probeLeaseUntil'], 0),
    successes: numberOr(item['successes'], 0),
    windowStart: numberOr(item['windowStart'], 0),
    failures: numberOr(item['failures'], 0),
  };
}

/**
 * The real {@link CircuitStateStore}: every Lambda instance of a breaker reads and writes the same
 * item, `pk = CB#<name>`, `sk = STATE`, so the fleet opens, probes and closes as one. Transitions are
 * conditional writes on the record's generation, each with a random `writeToken` of its own; failures
 * are atomic ADDs; reads are strongly consistent, so an instance never acts on a transition older than
 * its own last write.
 *
 * @example
 * const store = new DynamoDbCircuitStateStore({ tableName: process.env.TOOLKIT_TABLE_NAME as string, client });
 * const breaker = new CircuitBreaker({ name: 'users', store });
 */
export class DynamoDbCircuitStateStore implements CircuitStateStore {
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly requestTimeoutMs: number;

  constructor(options: DynamoDbCircuitStateStoreOptions) {
    requireOptionsObject('DynamoDbCircuitStateStore', options);
    const problems: string[] = [];
    checkTableName(problems, options.tableName);
    const requestTimeoutMs = options.requestTimeoutMs ?? 1000;
    // A value AbortSignal.timeout() throws for or cuts to 1 ms would fail every store operation,
    // leaving the breaker on local state for good: refused here instead.
    checkTimeLimit(problems, 'requestTimeoutMs', requestTimeoutMs);
    assertNoProblems('DynamoDbCircuitStateStore', problems);
    this.tableName = options.tableName;
    this.requestTimeoutMs = requestTimeoutMs;
    this.documents = createDocumentClient(options.client ?? defaultClient());
  }

  async read(name: string, nowMs: number): Promise<CircuitRecord> {
    const { Item } = await this.bounded((options) =>
      this.documents.send(
        new GetCommand({ TableName: this.tableName, Key: this.key(name), ConsistentRead: true }),
        options,
      ),
    );
    return toRecord(Item, nowMs);
  }

  async addFailure(
    name: string,
    failure: { readonly generation: number; readonly windowStart: number; readonly expiresAt: number },
    nowMs: number,
  ): Promise<CircuitRecord> {
    const values = {
      ':closed': CircuitState.closed,
      ':generation': failure.generation,
      ':windowStart': failure.windowStart,
      ':one': 1,
      ':expiresAt': failure.expiresAt,
    };
    // Two rounds at most: a lost race to start the window means another instance just started it.
    for (let round = 0; round < 2; round += 1) {
      try {
        // Many instances fail at once against a dead dependency: ADD is atomic, so every failure
        // counts once; the condition keeps a failure from counting toward a circuit that has since
        // opened, or been reset to a new generation, after this instance last looked.
        const { Attributes } = await this.bounded((options) =>
          this.documents.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: this.key(name),
              UpdateExpression: 'ADD failures :one SET expiresAt = :expiresAt',
              ConditionExpression:
                '#state = :closed AND generation = :generation AND windowStart = :windowStart',
              ExpressionAttributeNames: { '#state': 'state' },
              ExpressionAttributeValues: values,
              ReturnValues: 'ALL_NEW',
            }),
            options,
          ),
        );
        return toRecord(Attributes, nowMs);
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      try {
        // The first failure of a new window (or of a circuit never written) restarts the count at 1.
        // Two instances starting the same window race here: the loser's condition fails, and its
        // next round ADDs into the window the winner started instead of resetting it.
        const neverWritten =
          failure.generation === 0 ? 'attribute_not_exists(pk) OR expiresAt <= :now OR ' : '';
        const { Attributes } = await this.bounded((options) =>
          this.documents.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: this.key(name),
              UpdateExpression:
                'SET #state = :closed, generation = :generation, windowStart = :windowStart, failures = :one, ' +
                'openedAt = if_not_exists(openedAt, :zero), probeLeaseUntil = :zero, successes = :zero, ' +
                'expiresAt = :expiresAt REMOVE probeOwner',
              ConditionExpression: `${neverWritten}(#state = :closed AND generation = :generation AND windowStart < :windowStart)`,
              ExpressionAttributeNames: { '#state': 'state' },
              ExpressionAttributeValues: {
                ...values,
                ':zero': 0,
                ...(failure.generation === 0 ? { ':now': Math.floor(nowMs / 1000) } : {}),
              },
              ReturnValues: 'ALL_NEW',
            }),
            options,
          ),
        );
        return toRecord(Attributes, nowMs);
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const current = await this.read(name, nowMs);
      const sameWindow =
        current.state === CircuitState.closed &&
        current.generation === failure.generation &&
        current.windowStart === failure.windowStart;
      if (!sameWindow) return current;
    }
    return this.read(name, nowMs);
  }

  async replace(
    name: string,
    expectedGeneration: number,
    next: CircuitRecord,
    expiresAt: number,
    nowMs: number,
  ): Promise<ReplaceResult> {
    // The SDK sends a write again when its answer is lost or late, and a repeat whose first attempt
    // landed fails its condition against the record it wrote: the token tells that from another
    // instance's transition, so the one that made it still reports it (and uses its probe lease).
    const writeToken = randomUUID();
    try {
      // Several instances attempt the same transition at once (open at the threshold, take the
      // half-open lease, close after the probes); all read generation N and only the first write
      // of N + 1 lands, so exactly one instance makes the transition and reports it.
      const neverWritten =
        expectedGeneration === 0 ? 'attribute_not_exists(pk) OR expiresAt <= :now OR ' : '';
      await this.bounded((options) =>
        this.documents.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...this.key(name), ...next, expiresAt, writeToken },
            ConditionExpression: `${neverWritten}generation = :generation`,
            ExpressionAttributeValues: {
              ':generation': expectedGeneration,
              ...(expectedGeneration === 0 ? { ':now': Math.floor(nowMs / 1000) } : {}),
            },
            // Costs nothing on success; on failure it says whose transition the stored record is.
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
          options,
        ),
      );
      return { applied: true, record: next };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      if (carriesToken(error, writeToken)) return { applied: true, record: next };
    }
    return { applied: false, record: await this.read(name, nowMs) };
  }

  private key(name: string) {
    return { pk: `CB#${name}`, sk: stateSortKey };
  }

  /**
   * Runs `send` under the store's time bound. A call the bound aborts throws the bound's own TimeoutError,
   * so the failure reads as the timeout it is (`store_timeout`): the SDK reports an abort between its
   * attempts with an AbortError of its own that does not say a timer caused it.
   */
  private async bounded<T>(send: (options: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    const abortSignal = AbortSignal.timeout(this.requestTimeoutMs);
    try {
      return await send({ abortSignal });
    } catch (error) {
      throw abortSignal.aborted && error instanceof Error && error.name === 'AbortError'
        ? abortSignal.reason
        : error;
    }
  }
}
