// The real counter store: one item per key in the toolkit table, advanced by a single conditional UpdateItem.
import {
  type AttributeValue,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { assertNoProblems } from '../errors.js';
import { requireOptionsObject } from '../options.js';
import { createDynamoDbClient } from '../store/client.js';
import { checkTableName, isExpired } from '../store/tables.js';
import type { CounterStore, StoredTat, TatWrite, TatWriteOutcome } from './counter-store.js';

export interface DynamoDbCounterStoreOptions {
  /** Create it once at module scope, with bounded timeouts (`createDynamoDbClient`). */
  readonly client: DynamoDBClient;
  /** The toolkit table (pk/sk strings, TTL on `expiresAt`); it must already exist. */
  readonly tableName: string;
}

/** Rate-limit items have one item per partition; the sort key only satisfies the table's schema. */
const sortKey = 'RL';
// Short placeholders: DynamoDB-compatible servers parse every expression on every request.
const names = { '#t': 'tat', '#w': 'windowSec', '#e': 'expiresAt' };
const batchSize = 25;
const maxBatchRetries = 5;

// Every write sets expiresAt at or after the TAT it can produce, so an item whose expiresAt has
// passed (TTL deletion lags up to 48 h) has a TAT at or before now: `fresh` and `busy` below read it as
// idle, never as a live counter, without a clause of their own. Reads check expiresAt explicitly, and a
// `rebase` applies only to the exact TAT such a read (or a failed write's old item) found live.

// Condition `fresh`: admits the first unit of an idle key. Prevents two racing writers from both
// restarting the key from `now`: only one sees it idle; the other fails and takes the `busy` path.
// An idle key has used nothing, whatever window counted it, so it restarts in the writer's window.
// `fresh` and `rebase` both write a TAT known beforehand (`:v`), counted in the writer's window.
const setUpdate = 'SET #t = :v, #w = :w, #e = :e';
const freshCondition = 'attribute_not_exists(#t) OR #t <= :n';

// Condition `busy`: admits a unit only while now < TAT <= threshold. DynamoDB serialises writes to
// one item, so N concurrent writers can never push the TAT past now + capacity together: each checks
// the value the previous one left, which is what keeps admission exact across instances. A TAT counted
// in another window fails it: such a TAT means something else in this window, and is rebased first.
const busyUpdate = 'SET #t = #t + :i, #e = :e';
const busyCondition = '#t > :n AND #t <= :b AND #w = :w';

// A refund (`refundId`) is a `busy` write that also records its id, and applies only while the item holds
// another: a client that sends it again after a late answer finds its own id and moves the TAT back no
// further. One id is kept, not all of them: if another refund of the key lands between a refund's two
// attempts (within one client timeout), the repeat applies too. A lost refund, by contrast, only leaves
// units spent, the safe direction for a budget.
const refundNames = { ...names, '#r': 'lastRefundId' };
const refundUpdate = `${busyUpdate}, #r = :r`;
const refundCondition = `${busyCondition} AND (attribute_not_exists(#r) OR #r <> :r)`;

// Condition `rebase`: the item is still the one the writer converted; the TAT becomes its conversion.
const rebaseCondition = '#t = :f AND #w = :fw';
const rebaseUnwindowedCondition = '#t = :f AND attribute_not_exists(#w)';

const numberOf = (value: AttributeValue | undefined): number | undefined =>
  value?.N === undefined ? undefined : Number(value.N);

/** The live state of an item, or `undefined` for a missing, malformed or expired one. */
function liveState(item: Record<string, AttributeValue> | undefined, nowUs: number): StoredTat | undefined {
  const tatUs = numberOf(item?.['tat']);
  if (tatUs === undefined || !Number.isFinite(tatUs)) return undefined;
  if (isExpired({ expiresAt: numberOf(item?.['expiresAt']) }, nowUs / 1000)) return undefined;
  return { tatUs, windowSec: numberOf(item?.['windowSec']) };
}

/**
 * Keeps each key's GCRA state (`tat`, epoch µs, the `windowSec` of the policy that counted it, and
 * `expiresAt` for TTL), and the id of its last refund (`lastRefundId`), in one toolkit-table item.
 * A write is one UpdateItem; a failed condition asks DynamoDB for the old item in the same
 * request (`ReturnValuesOnConditionCheckFailure`), so a rejection costs no extra read.
 *
 * @example
 * const store = new DynamoDbCounterStore({ client: createDynamoDbClient(), tableName: 'bulwark-toolkit' });
 */
export class DynamoDbCounterStore implements CounterStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: DynamoDbCounterStoreOptions) {
    requireOptionsObject('DynamoDbCounterStore', options);
    const problems: string[] = [];
    checkTableName(problems, options.tableName);
    if (typeof options.client?.send !== 'function') problems.push('client must be a DynamoDBClient');
    assertNoProblems('DynamoDbCounterStore', problems);
    this.#client = options.client;
    this.#tableName = options.tableName;
  }

  #key(storageKey: string): Record<string, AttributeValue> {
    return { pk: { S: storageKey }, sk: { S: sortKey } };
  }

  async write(storageKey: string, write: TatWrite): Promise<TatWriteOutcome> {
    // A cost equal to the limit fits only an idle key: `busy` cannot apply, so there is nothing to ask.
    if (write.mode === 'busy' && write.thresholdUs <= write.nowUs) return { applied: false, known: false };
    try {
      const output = await this.#client.send(new UpdateItemCommand(this.#update(storageKey, write)));
      const tatUs =
        write.mode === 'rebase'
          ? write.tatUs
          : write.mode === 'fresh'
            ? write.nowUs + write.incrementUs
            : Number(output.Attributes?.['tat']?.N);
      return { applied: true, tatUs };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // DynamoDB omits the item when there is none; some emulators never send it. Either way the
      // caller learns nothing certain, and a read settles it if it needs to know.
      if (!error.Item) return { applied: false, known: false };
      if (
        write.mode !== 'rebase' &&
        write.refundId !== undefined &&
        error.Item['lastRefundId']?.S === write.refundId
      ) {
        // This refund's earlier attempt landed: the TAT it left, or what later writes made of it, is current.
        return { applied: true, tatUs: Number(error.Item['tat']?.N) };
      }
      return { applied: false, known: true, stored: liveState(error.Item, write.nowUs) };
    }
  }

  #update(storageKey: string, write: TatWrite): UpdateItemCommandInput {
    const item = {
      TableName: this.#tableName,
      Key: this.#key(storageKey),
      ExpressionAttributeNames: names,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    } as const;
    const written = { ':w': { N: String(write.windowSec) }, ':e': { N: String(write.expiresAtSec) } };
    if (write.mode === 'rebase') {
      const fromWindow = write.from.windowSec;
      return {
        ...item,
        UpdateExpression: setUpdate,
        ConditionExpression: fromWindow === undefined ? rebaseUnwindowedCondition : rebaseCondition,
        ExpressionAttributeValues: {
          ':v': { N: String(write.tatUs) },
          ...written,
          ':f': { N: String(write.from.tatUs) },
          ...(fromWindow === undefined ? {} : { ':fw': { N: String(fromWindow) } }),
        },
      };
    }
    if (write.mode === 'fresh') {
      return {
        ...item,
        UpdateExpression: setUpdate,
        ConditionExpression: freshCondition,
        ExpressionAttributeValues: {
          ':v': { N: String(write.nowUs + write.incrementUs) },
          ...written,
          ':n': { N: String(write.nowUs) },
        },
      };
    }
    const busy = {
      ...item,
      UpdateExpression: busyUpdate,
      ConditionExpression: busyCondition,
      ExpressionAttributeValues: {
        ':i': { N: String(write.incrementUs) },
        ':n': { N: String(write.nowUs) },
        ':b': { N: String(write.thresholdUs) },
        ...written,
      },
      ReturnValues: 'UPDATED_NEW',
    } as const;
    if (write.refundId === undefined) return busy;
    return {
      ...busy,
      // DynamoDB refuses a name no expression uses, so only a refund names its id.
      ExpressionAttributeNames: refundNames,
      UpdateExpression: refundUpdate,
      ConditionExpression: refundCondition,
      ExpressionAttributeValues: { ...busy.ExpressionAttributeValues, ':r': { S: write.refundId } },
    };
  }

  async read(storageKey: string, nowUs: number): Promise<StoredTat | undefined> {
    const { Item } = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: this.#key(storageKey),
        ConsistentRead: true,
        ProjectionExpression: '#t, #w, #e',
        ExpressionAttributeNames: names,
      }),
    );
    return liveState(Item, nowUs);
  }

  async delete(storageKey: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({ TableName: this.#tableName, Key: this.#key(storageKey) }),
    );
  }

  /**
   * Scans for the prefix and batch-deletes what it finds. An administrative operation: it reads the
   * whole table, because indexing every counter would double the write cost of every request.
   */
  async deleteAll(prefix: string): Promise<number> {
    let deleted = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.#client.send(
        new ScanCommand({
          TableName: this.#tableName,
          ConsistentRead: true,
          ProjectionExpression: 'pk, sk',
          FilterExpression: 'begins_with(pk, :prefix) AND sk = :sk',
          ExpressionAttributeValues: { ':prefix': { S: prefix }, ':sk': { S: sortKey } },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      const keys = page.Items ?? [];
      for (let index = 0; index < keys.length; index += batchSize) {
        const requests = keys
          .slice(index, index + batchSize)
          .map((Key): WriteRequest => ({ DeleteRequest: { Key } }));
        await this.#batchDelete(requests);
        deleted += requests.length;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return deleted;
  }

  async #batchDelete(requests: WriteRequest[]): Promise<void> {
    let pending = requests;
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      if (attempt > maxBatchRetries) throw new Error(`${pending.length} rate-limit items were not deleted`);
      // Unprocessed items mean the table is throttling: back off before asking again.
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
      const { UnprocessedItems } = await this.#client.send(
        new BatchWriteItemCommand({ RequestItems: { [this.#tableName]: pending } }),
      );
      pending = UnprocessedItems?.[this.#tableName] ?? [];
    }
  }
}

/**
 * The store a limiter uses when given a table rather than a store: the toolkit table, through a client
 * whose short timeouts keep a store outage from holding requests (the fail mode then decides).
 */
export function defaultCounterStore(options: {
  tableName?: string | undefined;
  client?: DynamoDBClient | undefined;
}): CounterStore {
  return new DynamoDbCounterStore({
    tableName: options.tableName as string,
    client:
      options.client ??
      createDynamoDbClient({ requestTimeoutMs: 1000, connectionTimeoutMs: 500, maxAttempts: 2 }),
  });
}
