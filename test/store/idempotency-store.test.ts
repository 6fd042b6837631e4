import { createHash, randomUUID } from 'node:crypto';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { lambdaContext } from '../audit/fixtures.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { testTableNames } from '../helpers/tables.js';

/** The key of each DynamoDB request the client sends, by operation, in order. */
function recordingClient() {
  const client = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });
  const requests: { operation: string; pk: string | undefined; sk: string | undefined }[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as {
        Key?: Record<string, AttributeValue>;
        Item?: Record<string, AttributeValue>;
      };
      const key = input.Key ?? input.Item;
      requests.push({
        operation: String(context.commandName).replace(/Command$/, ''),
        pk: key?.pk?.S,
        sk: key?.sk?.S,
      });
      return next(args);
    },
    { step: 'initialize', name: 'recordKeys' },
  );
  return { client, requests };
}

/** Powertools' idempotency key of an order id under the key prefix `orders`. */
function powertoolsKey(id: string): string {
  return `orders#${createHash('md5').update(JSON.stringify(id)).digest('base64')}`;
}

/** An order maker that makes each order id once through `store`, failing while `failing` says so. */
function orderMaker(store: ToolkitIdempotencyStore, config: { useLocalCache?: boolean } = {}) {
  const made: string[] = [];
  let failing = false;
  const idempotencyConfig = new IdempotencyConfig({ eventKeyJmesPath: 'id', ...config });
  idempotencyConfig.registerLambdaContext(lambdaContext());
  const once = makeIdempotent(
    async (order: { id: string }) => {
      if (failing) throw new Error('payment declined');
      made.push(order.id);
      return { made: order.id };
    },
    {
      persistenceStore: store,
      config: idempotencyConfig,
      keyPrefix: 'orders',
    },
  );
  return { once, made, fail: (value: boolean) => (failing = value) };
}

const documents = createDocumentClient(createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT }));

describe('ToolkitIdempotencyStore', () => {
  it('keeps two records of one store under two partition keys, IDEM#<name>#<Powertools key>', async () => {
    const name = `orders-${randomUUID()}`;
    const { client } = recordingClient();
    const { once } = orderMaker(
      new ToolkitIdempotencyStore({ name, tableName: testTableNames.toolkit, client }),
    );
    const before = Math.floor(Date.now() / 1000);
    await once({ id: 'order-a' });
    await once({ id: 'order-b' });

    const records = await idempotencyRecordsOf(documents, name);
    const byOrder = [...records].sort((one, other) => String(one.sk).localeCompare(String(other.sk)));
    const expected = ['order-a', 'order-b']
      .map((id) => ({ id, key: powertoolsKey(id) }))
      .sort((one, other) => one.key.localeCompare(other.key));
    expect(byOrder.map(({ pk, sk, status, data }) => ({ pk, sk, status, data }))).toEqual(
      expected.map(({ id, key }) => ({
        pk: `IDEM#${name}#${key}`,
        sk: key,
        status: 'COMPLETED',
        data: { made: id },
      })),
    );
    expect(new Set(records.map((record) => record.pk)).size).toBe(2);
    // Expiring through the table's TTL attribute, an hour (Powertools' default) after each call.
    for (const record of records) {
      expect(record.expiresAt).toBeGreaterThanOrEqual(before + 3600);
      expect(record.expiresAt).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
    }
  });

  it('puts, deletes, updates, replays and reads one record under one key', async () => {
    const name = `orders-${randomUUID()}`;
    const { client, requests } = recordingClient();
    const store = new ToolkitIdempotencyStore({ name, tableName: testTableNames.toolkit, client });
    const { once, made, fail } = orderMaker(store);
    fail(true);
    await expect(once({ id: 'order-a' })).rejects.toThrow('payment declined');
    fail(false);
    expect(await once({ id: 'order-a' })).toEqual({ made: 'order-a' });
    expect(await once({ id: 'order-a' })).toEqual({ made: 'order-a' });
    const stored = await store.getRecord({ id: 'order-a' });

    expect(made).toEqual(['order-a']);
    const key = { pk: `IDEM#${name}#${powertoolsKey('order-a')}`, sk: powertoolsKey('order-a') };
    expect(requests).toEqual(
      ['PutItem', 'DeleteItem', 'PutItem', 'UpdateItem', 'PutItem', 'GetItem'].map((operation) => ({
        operation,
        ...key,
      })),
    );
    // The record read back names the key Powertools made, not the partition key.
    expect(stored.idempotencyKey).toBe(powertoolsKey('order-a'));
    expect(stored.getResponse()).toEqual({ made: 'order-a' });
  });

  it('files a record read back under its own key in the local cache, so the next copy asks DynamoDB nothing', async () => {
    const name = `orders-${randomUUID()}`;
    const first = recordingClient();
    await orderMaker(
      new ToolkitIdempotencyStore({ name, tableName: testTableNames.toolkit, client: first.client }),
    ).once({ id: 'order-a' });
    // Another instance, whose cache starts empty: its first copy finds the record in DynamoDB.
    const second = recordingClient();
    const { once, made } = orderMaker(
      new ToolkitIdempotencyStore({ name, tableName: testTableNames.toolkit, client: second.client }),
      { useLocalCache: true },
    );
    expect(await once({ id: 'order-a' })).toEqual({ made: 'order-a' });
    expect(second.requests.map(({ operation }) => operation)).toEqual(['PutItem']);
    expect(await once({ id: 'order-a' })).toEqual({ made: 'order-a' });
    expect(second.requests.map(({ operation }) => operation)).toEqual(['PutItem']);
    expect(made).toEqual([]);
  });

  it('refuses a name that is not 1-64 safe characters, a table name DynamoDB would refuse, and no client', () => {
    const problems = (shownName: string, shownTable: string) => [
      `name must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit (got ${shownName})`,
      `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${shownTable})`,
      'client must be a DynamoDBClient',
    ];
    expect(
      () => new ToolkitIdempotencyStore({ name: 'orders#2026', tableName: 'a b', client: {} as never }),
    ).toThrow(new InvalidOptionsError('ToolkitIdempotencyStore', problems('"orders#2026"', '"a b"')));
    expect(() => new ToolkitIdempotencyStore(undefined as never)).toThrow(
      new InvalidOptionsError('ToolkitIdempotencyStore', problems('undefined', 'undefined')),
    );
    expect(
      () =>
        new ToolkitIdempotencyStore({
          name: 'x'.repeat(65),
          tableName: testTableNames.toolkit,
          client: createDynamoDbClient({}),
        }),
    ).toThrow(/name must be 1-64 characters/);
    for (const name of ['-orders', '.orders', '_orders', '']) {
      expect(
        () =>
          new ToolkitIdempotencyStore({
            name,
            tableName: testTableNames.toolkit,
            client: createDynamoDbClient({}),
          }),
        name,
      ).toThrow(/name must be 1-64 characters/);
    }
  });
});
