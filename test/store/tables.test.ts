import { randomUUID } from 'node:crypto';
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ListTablesCommand,
  PutItemCommand,
  ResourceInUseException,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, inject, it } from 'vitest';
import { InvalidArgumentError, InvalidOptionsError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables, toCreateTableInput } from '../../middleware/store/create-tables.js';
import { appTable, isExpired, toEpochSeconds, toolkitTable } from '../../middleware/store/tables.js';

describe('shared table definitions', () => {
  it('turn into a CreateTable request with each key attribute defined once', () => {
    const input = toCreateTableInput(appTable, 't');
    expect(input.BillingMode).toBe('PAY_PER_REQUEST');
    expect(input.AttributeDefinitions?.map((attribute) => attribute.AttributeName).sort()).toEqual([
      'gsi1pk',
      'gsi1sk',
      'gsi2pk',
      'gsi2sk',
      'gsi3pk',
      'gsi3sk',
      'pk',
      'sk',
    ]);
    expect(input.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(
      input.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.Projection?.ProjectionType]),
    ).toEqual([
      ['gsi1', 'ALL'],
      ['gsi2', 'ALL'],
      // Read only to find bookings with an event pending, each then read by key.
      ['gsi3', 'KEYS_ONLY'],
    ]);
  });

  it('treat an item whose expiresAt has passed as expired, even before TTL deletes it', () => {
    const now = Date.UTC(2030, 0, 1);
    expect(isExpired({ expiresAt: toEpochSeconds(now) }, now)).toBe(true);
    expect(isExpired({ expiresAt: toEpochSeconds(now) + 1 }, now)).toBe(false);
    expect(isExpired({}, now)).toBe(false);
    expect(isExpired(undefined, now)).toBe(false);
    expect(toEpochSeconds(1999)).toBe(1);
  });
});

describe('DynamoDB clients and table creation on the embedded server', () => {
  const endpoint = inject('dynamoDbEndpoint');

  it('creates tables idempotently with TTL enabled and serves reads and writes', async () => {
    const client = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
    const tableName = `toolkit-${randomUUID()}`;
    const tables = [{ definition: toolkitTable, tableName }];
    await ensureTables(client, tables);
    await ensureTables(client, tables);

    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
    expect(described.Table?.GlobalSecondaryIndexes?.[0]?.IndexName).toBe('gsi1');
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    expect(ttl.TimeToLiveDescription).toMatchObject({
      AttributeName: 'expiresAt',
      TimeToLiveStatus: 'ENABLED',
    });

    const documents = createDocumentClient(client);
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { pk: 'a', sk: 'b', dropped: undefined } }),
    );
    const { Item } = await documents.send(
      new GetCommand({ TableName: tableName, Key: { pk: 'a', sk: 'b' } }),
    );
    expect(Item).toEqual({ pk: 'a', sk: 'b' });
    client.destroy();
  });

  it('rebuilds a table made before its definition gained an index, keeping every item and indexing it', async () => {
    const client = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
    const tableName = `app-${randomUUID()}`;
    const earlier = { ...appTable, globalSecondaryIndexes: appTable.globalSecondaryIndexes.slice(0, 2) };
    await ensureTables(client, [{ definition: earlier, tableName }]);
    const documents = createDocumentClient(client);
    // More items than one BatchWriteItem takes, binary and set attributes among them.
    const items = Array.from({ length: 30 }, (_, index) => ({
      pk: `ITEM#${index}`,
      sk: 'ITEM',
      blob: new Uint8Array([index, 255]),
      tags: new Set([`t${index}`]),
      ...(index % 10 === 0
        ? { gsi3pk: 'PENDING#0', gsi3sk: `2031-01-01T00:00:0${index / 10}.000Z#${index}` }
        : {}),
    }));
    for (const Item of items) await documents.send(new PutCommand({ TableName: tableName, Item }));

    await ensureTables(client, [{ definition: appTable, tableName }]);

    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
    expect(described.Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName).sort()).toEqual([
      'gsi1',
      'gsi2',
      'gsi3',
    ]);
    for (const item of items) {
      const { Item } = await documents.send(
        new GetCommand({ TableName: tableName, Key: { pk: item.pk, sk: item.sk } }),
      );
      expect(Item).toEqual(item);
    }
    const indexed = await documents.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: 'gsi3',
        KeyConditionExpression: 'gsi3pk = :partition',
        ExpressionAttributeValues: { ':partition': 'PENDING#0' },
      }),
    );
    expect(indexed.Items?.map((item) => item.pk)).toEqual(['ITEM#0', 'ITEM#10', 'ITEM#20']);
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    expect(ttl.TimeToLiveDescription?.TimeToLiveStatus).toBe('ENABLED');
    client.destroy();
  });

  it('finishes a rebuild stopped while copying or while writing back: the next start has every item, no copy left', async () => {
    const client = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
    const earlier = { ...appTable, globalSecondaryIndexes: appTable.globalSecondaryIndexes.slice(0, 2) };
    const documents = createDocumentClient(client);
    const items = Array.from({ length: 10 }, (_, index) => ({ pk: `ITEM#${index}`, sk: 'ITEM', index }));
    // The rebuild's PutItems: 10 into the copy, then 10 back. It stops at the 4th of either.
    for (const stopAtPut of [4, 14]) {
      const tableName = `app-${randomUUID()}`;
      await ensureTables(client, [{ definition: earlier, tableName }]);
      for (const Item of items) await documents.send(new PutCommand({ TableName: tableName, Item }));
      const stopping = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
      let puts = 0;
      stopping.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'PutItemCommand' && ++puts === stopAtPut) throw new Error('stopped');
          return next(args);
        },
        { step: 'initialize' },
      );
      await expect(ensureTables(stopping, [{ definition: appTable, tableName }])).rejects.toThrow('stopped');
      stopping.destroy();

      await ensureTables(client, [{ definition: appTable, tableName }]);
      for (const item of items) {
        const { Item } = await documents.send(
          new GetCommand({ TableName: tableName, Key: { pk: item.pk, sk: item.sk } }),
        );
        expect(Item, `stopped at put ${stopAtPut}`).toEqual(item);
      }
      const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
      expect(described.Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName).sort()).toEqual([
        'gsi1',
        'gsi2',
        'gsi3',
      ]);
      const { TableNames } = await client.send(new ListTablesCommand({}));
      expect(TableNames).not.toContain(`${tableName}.rebuild`);
    }
    client.destroy();
  });

  it("keeps the items past the first page of the rebuild's Scan", async () => {
    const client = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
    const earlier = { ...appTable, globalSecondaryIndexes: appTable.globalSecondaryIndexes.slice(0, 2) };
    const tableName = `app-${randomUUID()}`;
    await ensureTables(client, [{ definition: earlier, tableName }]);
    const documents = createDocumentClient(client);
    const items = ['a', 'b', 'c'].map((name) => ({ pk: `ITEM#${name}`, sk: 'ITEM' }));
    for (const Item of items) await documents.send(new PutCommand({ TableName: tableName, Item }));
    // Pages of one item, as a table past 1 MB has pages (the embedded server reads a small one whole).
    const paging = createDynamoDbClient({ endpoint, region: 'eu-west-1' });
    paging.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'ScanCommand') (args.input as { Limit?: number }).Limit = 1;
        return next(args);
      },
      { step: 'initialize' },
    );

    await ensureTables(paging, [{ definition: appTable, tableName }]);

    for (const item of items) {
      const { Item } = await documents.send(
        new GetCommand({ TableName: tableName, Key: { pk: item.pk, sk: item.sk } }),
      );
      expect(Item, item.pk).toEqual(item);
    }
    paging.destroy();
    client.destroy();
  });

  it('never rebuilds a table in AWS: a table there without an index is an InvalidArgumentError, nothing deleted', async () => {
    const client = new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const aws = mockClient(client);
    aws
      .on(CreateTableCommand)
      .rejects(new ResourceInUseException({ message: 'Table already exists', $metadata: {} }));
    aws.on(DescribeTableCommand).resolves({
      Table: {
        TableStatus: 'ACTIVE',
        GlobalSecondaryIndexes: [{ IndexName: 'gsi1' }, { IndexName: 'gsi2' }],
      },
    });
    const refused = ensureTables(client, [{ definition: appTable, tableName: 'bulwark-app' }]);
    await expect(refused).rejects.toThrow(InvalidArgumentError);
    await expect(refused).rejects.toThrow(
      'Table bulwark-app lacks an index its definition lists (gsi3): ensureTables rebuilds a table only on a DynamoDB on this machine; add the index with the CDK stack',
    );
    expect(aws.commandCalls(DeleteTableCommand)).toEqual([]);
    expect(aws.commandCalls(ScanCommand)).toEqual([]);
    expect(aws.commandCalls(PutItemCommand)).toEqual([]);
    client.destroy();
  });

  it('fails fast instead of hanging when the endpoint is down', async () => {
    const client = createDynamoDbClient({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      maxAttempts: 1,
      connectionTimeoutMs: 200,
      requestTimeoutMs: 200,
    });
    await expect(client.send(new DescribeTableCommand({ TableName: 'anything' }))).rejects.toThrow();
    client.destroy();
  });

  it('refuses timeouts that would leave a call unbounded or time every call out at once', () => {
    expect(() =>
      createDynamoDbClient({ endpoint, requestTimeoutMs: 2 ** 31, connectionTimeoutMs: 0 }),
    ).toThrow(
      new InvalidOptionsError('createDynamoDbClient', [
        'requestTimeoutMs must be an integer of milliseconds 1..2147483647 (got 2147483648)',
        'connectionTimeoutMs must be an integer of milliseconds 1..2147483647 (got 0)',
      ]),
    );
  });

  it('refuses conflict retries that would back off until the Lambda times out, and attempts the SDK would turn into 1', () => {
    for (const transactionConflictRetries of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1.5, 11]) {
      expect(() => createDynamoDbClient({ endpoint, transactionConflictRetries })).toThrow(
        InvalidOptionsError,
      );
    }
    for (const maxAttempts of [0, -1, Number.NaN, 1.5]) {
      expect(() => createDynamoDbClient({ endpoint, maxAttempts })).toThrow(InvalidOptionsError);
    }
    expect(() =>
      createDynamoDbClient({ endpoint, transactionConflictRetries: Number.NaN, maxAttempts: 0 }),
    ).toThrow(
      new InvalidOptionsError('createDynamoDbClient', [
        'transactionConflictRetries must be an integer 0..10 (got NaN)',
        'maxAttempts must be an integer >= 1 (got 0)',
      ]),
    );
    createDynamoDbClient({ endpoint, transactionConflictRetries: 0, maxAttempts: 1 }).destroy();
    createDynamoDbClient({ endpoint, transactionConflictRetries: 10 }).destroy();
  });

  it('serves requests with the longest timeouts it accepts', async () => {
    const client = createDynamoDbClient({
      endpoint,
      requestTimeoutMs: 2_147_483_647,
      connectionTimeoutMs: 2_147_483_647,
      maxAttempts: 1,
    });
    expect((await client.send(new ListTablesCommand({}))).TableNames).toBeDefined();
    client.destroy();
  });

  it('uses the regional AWS endpoint when none is given', async () => {
    const client = createDynamoDbClient({ region: 'eu-central-1' });
    const resolved = await client.config.endpointProvider({ Region: 'eu-central-1' });
    expect(resolved.url.hostname).toBe('dynamodb.eu-central-1.amazonaws.com');
    client.destroy();
  });
});
