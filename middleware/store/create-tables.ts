// Creates tables from the shared definitions; for the embedded server only (in AWS the CDK stack owns them).
import {
  type AttributeValue,
  CreateTableCommand,
  type CreateTableCommandInput,
  DeleteTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  PutItemCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  ScanCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  waitUntilTableNotExists,
} from '@aws-sdk/client-dynamodb';
import { InvalidArgumentError } from '../errors.js';
import type { KeyAttribute, TableDefinition } from './tables.js';

/** Builds the CreateTable request for a definition: on-demand billing, each GSI with its projection. */
export function toCreateTableInput(definition: TableDefinition, tableName: string): CreateTableCommandInput {
  const attributes = new Map<string, KeyAttribute>();
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalSecondaryIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
  ];
  for (const key of keys) attributes.set(key.name, key);
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes.values()].map(({ name, type }) => ({
      AttributeName: name,
      AttributeType: type,
    })),
    KeySchema: [
      { AttributeName: definition.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: definition.sortKey.name, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: definition.globalSecondaryIndexes.map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
        { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: index.projection ?? 'ALL' },
    })),
  };
}

/** Every item of a table, read whole (a local table: small enough to hold in memory). */
async function scanAll(client: DynamoDBClient, tableName: string): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey }));
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/** Copies every item of `from` into `to`, one PutItem each (the embedded server leaves none unprocessed). */
async function copyItems(client: DynamoDBClient, from: string, to: string): Promise<void> {
  for (const item of await scanAll(client, from)) {
    await client.send(new PutItemCommand({ TableName: to, Item: item }));
  }
}

async function tableIndexes(client: DynamoDBClient, tableName: string): Promise<Set<string> | undefined> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return new Set((Table?.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName ?? ''));
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

async function createFromDefinition(client: DynamoDBClient, definition: TableDefinition, tableName: string) {
  await client.send(new CreateTableCommand(toCreateTableInput(definition, tableName)));
  await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1 }, { TableName: tableName });
}

async function deleteTable(client: DynamoDBClient, tableName: string) {
  await client.send(new DeleteTableCommand({ TableName: tableName }));
  await waitUntilTableNotExists({ client, maxWaitTime: 30, minDelay: 1 }, { TableName: tableName });
}

/** Whether the client talks to a server on this machine (the embedded one), never to AWS. */
async function isLoopbackClient(client: DynamoDBClient): Promise<boolean> {
  const endpoint = await client.config.endpoint?.();
  return ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(endpoint?.hostname ?? '');
}

/**
 * Gives an existing table the indexes its definition has gained since it was created (a data folder of an
 * earlier version): the embedded server cannot add an index to a table (its UpdateTable changes only
 * throughput), so the table is rebuilt from the definition, which indexes every item that carries the new
 * index's keys. Its items go first into `<table>.rebuild`, a table of their own, and the table is deleted
 * only once they are all there; the copy is deleted once they are all back. A rebuild stopped at any point
 * (Ctrl-C, a crash) is finished by the next call: a copy beside a table that still lacks the index may be
 * incomplete and is made again; beside a table that has it (or none), it is complete and is written back.
 * Only on the embedded server: against AWS, where the stack adds an index to a live table, it throws.
 */
async function addMissingIndexes(
  client: DynamoDBClient,
  definition: TableDefinition,
  tableName: string,
): Promise<void> {
  const copyName = `${tableName}.rebuild`;
  const wanted = definition.globalSecondaryIndexes.map((index) => index.indexName);
  const hasAll = (indexes: Set<string> | undefined) =>
    indexes !== undefined && wanted.every((name) => indexes.has(name));
  const copy = await tableIndexes(client, copyName);
  let present = await tableIndexes(client, tableName);
  if (copy === undefined && hasAll(present)) return;
  if (!(await isLoopbackClient(client))) {
    throw new InvalidArgumentError(
      `Table ${tableName} lacks an index its definition lists (${wanted.filter((name) => !present?.has(name)).join(', ')}): ` +
        'ensureTables rebuilds a table only on a DynamoDB on this machine; add the index with the CDK stack',
    );
  }
  if (copy !== undefined && !hasAll(present)) {
    if (present !== undefined) {
      // Stopped while copying: the table is whole, the copy may not be.
      await deleteTable(client, copyName);
    } else {
      // Stopped after the table was deleted: the copy is whole.
      await createFromDefinition(client, definition, tableName);
      present = await tableIndexes(client, tableName);
    }
  }
  if (!hasAll(present)) {
    await createFromDefinition(client, definition, copyName);
    await copyItems(client, tableName, copyName);
    await deleteTable(client, tableName);
    await createFromDefinition(client, definition, tableName);
  }
  await copyItems(client, copyName, tableName);
  await deleteTable(client, copyName);
}

/**
 * Creates each table unless it exists, waits until it is active and turns on TTL. Idempotent. On the
 * embedded server, a table that exists without an index its definition lists is rebuilt with it, its items
 * kept, even when a rebuild was stopped before (see {@link addMissingIndexes}); against AWS that is an
 * InvalidArgumentError.
 */
export async function ensureTables(
  client: DynamoDBClient,
  tables: ReadonlyArray<{ definition: TableDefinition; tableName: string }>,
): Promise<void> {
  await Promise.all(
    tables.map(async ({ definition, tableName }) => {
      try {
        await client.send(new CreateTableCommand(toCreateTableInput(definition, tableName)));
      } catch (error) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
      await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1 }, { TableName: tableName });
      await addMissingIndexes(client, definition, tableName);
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: definition.timeToLiveAttribute, Enabled: true },
        }),
      );
    }),
  );
}
