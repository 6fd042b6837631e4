// The embedded DynamoDB's additions to dynalite: all-or-nothing transactions, snapshot reads, TTL, and the
// item of a failed single-item condition.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type ReturnValuesOnConditionCheckFailure,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactGetCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamoDb, startLocalDynamoDb } from '../../bin/runtime/local-dynamodb.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables, toCreateTableInput } from '../../middleware/store/create-tables.js';
import { appTable } from '../../middleware/store/tables.js';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

const tableName = 'local-dynamodb-test';
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

let dynamoDb: LocalDynamoDb;
let client: DynamoDBClient;
let documents: DynamoDBDocumentClient;

/** A partition key no other test uses, so tests never see each other's items. */
const uniqueKey = (label: string): string => `${label}#${randomUUID()}`;

const putItem = (pk: string, attributes: Record<string, unknown> = {}): TransactItem => ({
  Put: { TableName: tableName, Item: { pk, sk: 'ITEM', ...attributes } },
});

async function readItem(pk: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documents.send(new GetCommand({ TableName: tableName, Key: { pk, sk: 'ITEM' } }));
  return Item;
}

async function cancellationOf(promise: Promise<unknown>): Promise<TransactionCanceledException> {
  const error = await promise.then(
    () => undefined,
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(TransactionCanceledException);
  return error as TransactionCanceledException;
}

/** Deterministic, so a failure of the concurrency test can be replayed exactly. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

beforeAll(async () => {
  dynamoDb = await startLocalDynamoDb({ ttlSweepIntervalMs: 100 });
  client = createDynamoDbClient({
    endpoint: dynamoDb.endpoint,
    region: 'us-east-1',
    // Generous, like the request timeout: the concurrency tests open 220 connections at once, which a
    // loaded machine can take longer than the Lambda default of 1 s to accept.
    requestTimeoutMs: 15_000,
    connectionTimeoutMs: 15_000,
  });
  documents = createDocumentClient(client);
  await ensureTables(client, [{ definition: appTable, tableName }]);
});

afterAll(async () => {
  client?.destroy();
  await dynamoDb?.stop();
});

describe('TransactWriteItems', () => {
  it('commits every Put of a successful transaction', async () => {
    const keys = [uniqueKey('A'), uniqueKey('B'), uniqueKey('C')];

    const output = await documents.send(
      new TransactWriteCommand({ TransactItems: keys.map((pk, index) => putItem(pk, { index })) }),
    );

    expect(output.$metadata.httpStatusCode).toBe(200);
    expect(await Promise.all(keys.map(readItem))).toEqual(
      keys.map((pk, index) => ({ pk, sk: 'ITEM', index })),
    );
  });

  it('writes nothing when one condition fails and reports a reason per item', async () => {
    const [first, taken, last] = [uniqueKey('first'), uniqueKey('taken'), uniqueKey('last')];
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { pk: taken, sk: 'ITEM', owner: 'x' } }),
    );

    const error = await cancellationOf(
      documents.send(
        new TransactWriteCommand({
          TransactItems: [
            putItem(first),
            {
              Put: {
                TableName: tableName,
                Item: { pk: taken, sk: 'ITEM', owner: 'y' },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            putItem(last),
          ],
        }),
      ),
    );

    expect(error.name).toBe('TransactionCanceledException');
    expect(error.message).toBe(
      'Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed, None]',
    );
    expect(error.CancellationReasons).toEqual([
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' },
      { Code: 'None' },
    ]);
    expect(await readItem(first)).toBeUndefined();
    expect(await readItem(last)).toBeUndefined();
    expect(await readItem(taken)).toEqual({ pk: taken, sk: 'ITEM', owner: 'x' });
  });

  it('restores an item that an Update of a cancelled transaction had modified', async () => {
    const [account, guard] = [uniqueKey('account'), uniqueKey('guard')];
    const original = { pk: account, sk: 'ITEM', balance: 100, tags: new Set(['a', 'b']), note: 'keep' };
    await documents.send(new PutCommand({ TableName: tableName, Item: original }));

    const error = await cancellationOf(
      documents.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: tableName,
                Key: { pk: account, sk: 'ITEM' },
                UpdateExpression: 'SET balance = balance - :amount REMOVE note',
                ExpressionAttributeValues: { ':amount': 30 },
              },
            },
            {
              ConditionCheck: {
                TableName: tableName,
                Key: { pk: guard, sk: 'ITEM' },
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
          ],
        }),
      ),
    );

    expect(error.CancellationReasons?.map((reason) => reason.Code)).toEqual([
      'None',
      'ConditionalCheckFailed',
    ]);
    expect(await readItem(account)).toEqual(original);
    expect(await readItem(guard)).toBeUndefined();
  });

  it('returns the current item on a failed condition when ReturnValuesOnConditionCheckFailure asks for it', async () => {
    const pk = uniqueKey('current');
    await documents.send(new PutCommand({ TableName: tableName, Item: { pk, sk: 'ITEM', version: 3 } }));

    const error = await cancellationOf(
      documents.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: tableName,
                Key: { pk, sk: 'ITEM' },
                UpdateExpression: 'SET version = :next',
                ConditionExpression: 'version = :expected',
                ExpressionAttributeValues: { ':next': 2, ':expected': 1 },
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              },
            },
          ],
        }),
      ),
    );

    expect(error.CancellationReasons?.[0]?.Item).toEqual({
      pk: { S: pk },
      sk: { S: 'ITEM' },
      version: { N: '3' },
    });
  });

  it('leaves no trace of a ConditionCheck, whether its item exists or not', async () => {
    const [absent, present, written] = [uniqueKey('absent'), uniqueKey('present'), uniqueKey('written')];
    await documents.send(new PutCommand({ TableName: tableName, Item: { pk: present, sk: 'ITEM', n: 1 } }));

    await documents.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            ConditionCheck: {
              TableName: tableName,
              Key: { pk: absent, sk: 'ITEM' },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          {
            ConditionCheck: {
              TableName: tableName,
              Key: { pk: present, sk: 'ITEM' },
              ConditionExpression: 'n = :one',
              ExpressionAttributeValues: { ':one': 1 },
            },
          },
          putItem(written),
        ],
      }),
    );

    expect(await readItem(absent)).toBeUndefined();
    expect(await readItem(present)).toEqual({ pk: present, sk: 'ITEM', n: 1 });
    expect(await readItem(written)).toEqual({ pk: written, sk: 'ITEM' });
  });

  it('round-trips binary attributes through a commit and a rollback', async () => {
    const [committed, restored] = [uniqueKey('bytes'), uniqueKey('bytes-restored')];
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { pk: restored, sk: 'ITEM', data: bytes } }),
    );

    await documents.send(new TransactWriteCommand({ TransactItems: [putItem(committed, { data: bytes })] }));
    await cancellationOf(
      documents.send(
        new TransactWriteCommand({
          TransactItems: [
            putItem(restored, { data: new Uint8Array([9]) }),
            {
              ConditionCheck: {
                TableName: tableName,
                Key: { pk: committed, sk: 'ITEM' },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      ),
    );

    expect((await readItem(committed))?.data).toEqual(bytes);
    expect((await readItem(restored))?.data).toEqual(bytes);
  });

  it('rejects two operations on one item with a ValidationException', async () => {
    const pk = uniqueKey('twice');

    const attempt = documents.send(
      new TransactWriteCommand({
        TransactItems: [putItem(pk), { Delete: { TableName: tableName, Key: { pk, sk: 'ITEM' } } }],
      }),
    );

    await expect(attempt).rejects.toMatchObject({
      name: 'ValidationException',
      message: 'Transaction request cannot include multiple operations on one item',
    });
    expect(await readItem(pk)).toBeUndefined();
  });

  it('rejects an empty transaction and one naming an unknown table', async () => {
    await expect(documents.send(new TransactWriteCommand({ TransactItems: [] }))).rejects.toMatchObject({
      name: 'ValidationException',
    });
    await expect(
      documents.send(
        new TransactWriteCommand({
          TransactItems: [{ Put: { TableName: 'no-such-table', Item: { pk: 'x' } } }],
        }),
      ),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('rolls back and reports the ValidationException of an invalid sub-operation', async () => {
    const [valid, invalid] = [uniqueKey('valid'), uniqueKey('invalid')];

    const attempt = documents.send(
      new TransactWriteCommand({
        TransactItems: [
          putItem(valid),
          {
            Update: {
              TableName: tableName,
              Key: { pk: invalid, sk: 'ITEM' },
              UpdateExpression: 'SET #missing = :value',
              ExpressionAttributeValues: { ':value': 1 },
            },
          },
        ],
      }),
    );

    await expect(attempt).rejects.toMatchObject({ name: 'ValidationException' });
    expect(await readItem(valid)).toBeUndefined();
    expect(await readItem(invalid)).toBeUndefined();
  });

  it('treats a retry with the same ClientRequestToken as already committed', async () => {
    const pk = uniqueKey('idempotent');
    const input: TransactWriteCommandInput = {
      ClientRequestToken: randomUUID(),
      TransactItems: [
        {
          Put: {
            TableName: tableName,
            Item: { pk, sk: 'ITEM' },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
      ],
    };

    await documents.send(new TransactWriteCommand(input));
    const retry = await documents.send(new TransactWriteCommand(input));

    expect(retry.$metadata.httpStatusCode).toBe(200);
    expect(await readItem(pk)).toEqual({ pk, sk: 'ITEM' });
  });

  it('never lets a concurrent reader see a write of a transaction that is then cancelled', async () => {
    const [phantom, guard] = [uniqueKey('phantom'), uniqueKey('guard')];
    const cancelled = Array.from({ length: 20 }, () =>
      documents
        .send(
          new TransactWriteCommand({
            TransactItems: [
              putItem(phantom),
              {
                ConditionCheck: {
                  TableName: tableName,
                  Key: { pk: guard, sk: 'ITEM' },
                  ConditionExpression: 'attribute_exists(pk)',
                },
              },
            ],
          }),
        )
        .catch((error: unknown) => error),
    );
    const reads = Array.from({ length: 200 }, () => readItem(phantom));

    const [outcomes, seen] = await Promise.all([Promise.all(cancelled), Promise.all(reads)]);

    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(TransactionCanceledException);
    expect(seen.filter((item) => item !== undefined)).toEqual([]);
  });

  it('never leaves one of 50 concurrent transactions over overlapping keys partially applied', async () => {
    const run = randomUUID();
    const slotKey = (slot: number): string => `SLOT#${run}#${slot}`;
    const random = seededRandom(20_240_601);
    const claims = Array.from({ length: 50 }, () => {
      const slots = new Set<number>();
      while (slots.size < 4) slots.add(Math.floor(random() * 8));
      return [...slots];
    });

    const outcomes = await Promise.allSettled(
      claims.map((slots, index) =>
        documents.send(
          new TransactWriteCommand({
            TransactItems: slots.map((slot) => ({
              Put: {
                TableName: tableName,
                Item: { pk: slotKey(slot), sk: 'ITEM', owner: index },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            })),
          }),
        ),
      ),
    );
    const owners = await Promise.all(
      Array.from({ length: 8 }, async (_, slot) => (await readItem(slotKey(slot)))?.owner),
    );

    const winners = outcomes.flatMap((outcome, index) => (outcome.status === 'fulfilled' ? [index] : []));
    const losses = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    expect(winners.length).toBeGreaterThan(0);
    for (const reason of losses) expect(reason).toBeInstanceOf(TransactionCanceledException);
    for (const winner of winners) {
      for (const slot of claims[winner] ?? []) expect(owners[slot]).toBe(winner);
    }
    for (const owner of owners) {
      if (owner !== undefined) expect(winners).toContain(owner);
    }
    const winningSlots = winners.flatMap((winner) => claims[winner] ?? []);
    expect(new Set(winningSlots).size).toBe(winningSlots.length);
  });
});

describe('ReturnValuesOnConditionCheckFailure on single-item writes', () => {
  type WriteName = 'PutItem' | 'UpdateItem' | 'DeleteItem';
  type Item = Record<string, AttributeValue>;
  const writeNames: WriteName[] = ['PutItem', 'UpdateItem', 'DeleteItem'];
  const keyFor = (pk: string): Item => ({ pk: { S: pk }, sk: { S: 'ITEM' } });
  const storedItem = (pk: string): Item => ({
    ...keyFor(pk),
    version: { N: '3' },
    data: { B: new Uint8Array([0, 1, 250, 255]) },
  });

  /** The write, conditional on `version = 1` when `condition` is given (it fails on version 3 and on no item). */
  function write(name: WriteName, pk: string, returnValues?: string, condition = true) {
    const common = {
      TableName: tableName,
      ...(condition
        ? {
            ConditionExpression: 'version = :expected',
            ExpressionAttributeValues: { ':expected': { N: '1' } },
          }
        : {}),
      ReturnValuesOnConditionCheckFailure: returnValues as ReturnValuesOnConditionCheckFailure | undefined,
    };
    if (name === 'PutItem') {
      return client.send(new PutItemCommand({ ...common, Item: { ...keyFor(pk), version: { N: '9' } } }));
    }
    if (name === 'DeleteItem') return client.send(new DeleteItemCommand({ ...common, Key: keyFor(pk) }));
    return client.send(
      new UpdateItemCommand({
        ...common,
        Key: keyFor(pk),
        UpdateExpression: 'SET version = :next',
        ExpressionAttributeValues: { ...common.ExpressionAttributeValues, ':next': { N: '9' } },
      }),
    );
  }

  async function conditionFailureOf(promise: Promise<unknown>): Promise<ConditionalCheckFailedException> {
    const error = await promise.then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(ConditionalCheckFailedException);
    return error as ConditionalCheckFailedException;
  }

  async function storedAt(pk: string): Promise<Item | undefined> {
    const { Item } = await client.send(
      new GetItemCommand({ TableName: tableName, Key: keyFor(pk), ConsistentRead: true }),
    );
    return Item;
  }

  async function putStored(pk: string): Promise<void> {
    await client.send(new PutItemCommand({ TableName: tableName, Item: storedItem(pk) }));
  }

  it.each(writeNames)(
    '%s with ALL_OLD returns the item as it stood and leaves it unchanged',
    async (name) => {
      const pk = uniqueKey(name);
      await putStored(pk);

      const error = await conditionFailureOf(write(name, pk, 'ALL_OLD'));

      expect(error.$metadata.httpStatusCode).toBe(400);
      expect(error.message).toBe('The conditional request failed');
      expect(error.Item).toEqual(storedItem(pk));
      expect(await storedAt(pk)).toEqual(storedItem(pk));
    },
  );

  it.each(writeNames)('%s with ALL_OLD returns no Item when there was no item', async (name) => {
    const pk = uniqueKey(name);

    const error = await conditionFailureOf(write(name, pk, 'ALL_OLD'));

    expect(error.Item).toBeUndefined();
    expect(await storedAt(pk)).toBeUndefined();
  });

  it.each(writeNames)('%s returns no Item with NONE or without the parameter', async (name) => {
    const pk = uniqueKey(name);
    await putStored(pk);

    for (const returnValues of ['NONE', undefined]) {
      const error = await conditionFailureOf(write(name, pk, returnValues));
      expect(error.Item).toBeUndefined();
    }
    expect(await storedAt(pk)).toEqual(storedItem(pk));
  });

  it.each(writeNames)(
    '%s with any other value is a ValidationException, and writes nothing',
    async (name) => {
      const pk = uniqueKey(name);
      await putStored(pk);

      // Unconditional, so only the validation keeps it from writing.
      await expect(write(name, pk, 'ALL_NEW', false)).rejects.toMatchObject({
        name: 'ValidationException',
        message:
          "1 validation error detected: Value 'ALL_NEW' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]",
      });
      expect(await storedAt(pk)).toEqual(storedItem(pk));
    },
  );

  it.each(writeNames)(
    '%s unsigned is refused for its missing signature before its other values are checked, as dynalite refuses it',
    async (name) => {
      const pk = uniqueKey(`unsigned-${name}`);

      const response = await fetch(dynamoDb.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `DynamoDB_20120810.${name}`,
        },
        body: JSON.stringify({
          TableName: tableName,
          ...(name === 'PutItem' ? { Item: keyFor(pk) } : { Key: keyFor(pk) }),
          ReturnValuesOnConditionCheckFailure: 'ALL_NEW',
        }),
      });

      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        __type: 'com.amazon.coral.service#MissingAuthenticationTokenException',
        message: 'Request is missing Authentication Token',
      });
      expect(await storedAt(pk)).toBeUndefined();
    },
  );

  it('answers a write whose condition holds as before, ALL_OLD or not', async () => {
    const pk = uniqueKey('holds');
    await putStored(pk);

    const output = await client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: keyFor(pk),
        UpdateExpression: 'SET version = :next',
        ConditionExpression: 'version = :expected',
        ExpressionAttributeValues: { ':expected': { N: '3' }, ':next': { N: '4' } },
        ReturnValues: 'UPDATED_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );

    expect(output.Attributes).toEqual({ version: { N: '4' } });
    expect(await storedAt(pk)).toEqual({ ...storedItem(pk), version: { N: '4' } });
  });

  it('returns the item the condition failed on while concurrent writes keep changing it', async () => {
    const pk = uniqueKey('flip');
    await client.send(
      new PutItemCommand({ TableName: tableName, Item: { ...keyFor(pk), side: { S: 'a' } } }),
    );
    const random = seededRandom(20_250_301);
    const flips = Array.from({ length: 60 }, () => (random() < 0.5 ? 'a' : 'b'));
    const otherSide = (side: string): string => (side === 'a' ? 'b' : 'a');

    // Each flip turns the item from one side to the other; one that finds it on the other side fails.
    const outcomes = await Promise.all(
      flips.map((from) =>
        client
          .send(
            new UpdateItemCommand({
              TableName: tableName,
              Key: keyFor(pk),
              UpdateExpression: 'SET side = :to',
              ConditionExpression: 'side = :from',
              ExpressionAttributeValues: { ':from': { S: from }, ':to': { S: otherSide(from) } },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          )
          .then(
            () => undefined,
            (error: unknown) => error,
          ),
      ),
    );

    const failures = flips.flatMap((from, index) => {
      const outcome = outcomes[index];
      return outcome === undefined ? [] : [{ from, outcome }];
    });
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.length).toBeLessThan(flips.length);
    for (const { from, outcome } of failures) {
      expect(outcome).toBeInstanceOf(ConditionalCheckFailedException);
      // The item it failed on was on the other side; one read later could have been flipped back.
      expect((outcome as ConditionalCheckFailedException).Item?.side).toEqual({ S: otherSide(from) });
    }
    // Every flip answered as applied turned the item once, and no other did.
    const applied = flips.length - failures.length;
    expect((await storedAt(pk))?.side).toEqual({ S: applied % 2 === 0 ? 'a' : 'b' });
  });

  it('rejects any other value inside a transaction too, before writing', async () => {
    const pk = uniqueKey('transact-invalid');

    await expect(
      client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Put: {
                TableName: tableName,
                Item: keyFor(pk),
                ReturnValuesOnConditionCheckFailure: 'ALL_NEW' as ReturnValuesOnConditionCheckFailure,
              },
            },
          ],
        }),
      ),
    ).rejects.toMatchObject({
      name: 'ValidationException',
      message:
        "1 validation error detected: Value 'ALL_NEW' at 'transactItems.1.member.put.returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]",
    });
    expect(await storedAt(pk)).toBeUndefined();
  });
});

describe('TransactGetItems', () => {
  it('returns the items in request order, with an empty entry for a missing one', async () => {
    const [second, missing, first] = [uniqueKey('second'), uniqueKey('missing'), uniqueKey('first')];
    await documents.send(
      new TransactWriteCommand({ TransactItems: [putItem(first, { n: 1 }), putItem(second, { n: 2 })] }),
    );

    const { Responses } = await documents.send(
      new TransactGetCommand({
        TransactItems: [second, missing, first].map((pk) => ({
          Get: { TableName: tableName, Key: { pk, sk: 'ITEM' } },
        })),
      }),
    );

    expect(Responses?.map((response) => response.Item)).toEqual([
      { pk: second, sk: 'ITEM', n: 2 },
      undefined,
      { pk: first, sk: 'ITEM', n: 1 },
    ]);
  });
});

describe('time to live', () => {
  it('reports TTL as ENABLED after UpdateTimeToLive and DISABLED before', async () => {
    const name = `ttl-${randomUUID()}`;
    await client.send(new CreateTableCommand(toCreateTableInput(appTable, name)));
    const before = await client.send(new DescribeTimeToLiveCommand({ TableName: name }));

    const update = await client.send(
      new UpdateTimeToLiveCommand({
        TableName: name,
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      }),
    );
    const after = await client.send(new DescribeTimeToLiveCommand({ TableName: name }));

    expect(before.TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'DISABLED' });
    expect(update.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(after.TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });
  });

  it('deletes an expired item and keeps a live one', async () => {
    const [expired, live] = [uniqueKey('expired'), uniqueKey('live')];
    await documents.send(
      new TransactWriteCommand({
        TransactItems: [
          putItem(expired, { expiresAt: nowSeconds() - 60 }),
          putItem(live, { expiresAt: nowSeconds() + 3600 }),
        ],
      }),
    );

    const swept = await eventually(async () => (await readItem(expired)) === undefined, 5000);

    expect(swept).toBe(true);
    expect(await readItem(live)).toMatchObject({ pk: live });
  });

  it('keeps the TTL setting across a restart when a path is given', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'local-dynamodb-'));
    try {
      const first = await startLocalDynamoDb({ path: folder });
      const firstClient = createDynamoDbClient({ endpoint: first.endpoint, region: 'us-east-1' });
      await ensureTables(firstClient, [{ definition: appTable, tableName }]);
      firstClient.destroy();
      await first.stop();

      const second = await startLocalDynamoDb({ path: folder });
      const secondClient = createDynamoDbClient({ endpoint: second.endpoint, region: 'us-east-1' });
      const description = await secondClient.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
      secondClient.destroy();
      await second.stop();
      await second.stop();

      expect(description.TimeToLiveDescription).toEqual({
        TimeToLiveStatus: 'ENABLED',
        AttributeName: 'expiresAt',
      });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('a request over 16 MiB', () => {
  it('is answered 413, as dynalite answers it, for the writes the layer reads itself too', async () => {
    const body = Buffer.alloc(17 * 1024 * 1024, 'a');
    const statuses: Record<string, number> = {};
    for (const operation of ['PutItem', 'TransactWriteItems', 'GetItem']) {
      const response = await fetch(dynamoDb.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `DynamoDB_20120810.${operation}`,
          authorization: 'AWS4-HMAC-SHA256 Credential=local/20300101/us-east-1/dynamodb/aws4_request',
        },
        body,
      });
      await response.arrayBuffer();
      statuses[operation] = response.status;
    }
    expect(statuses).toEqual({ PutItem: 413, TransactWriteItems: 413, GetItem: 413 });
  });
});
