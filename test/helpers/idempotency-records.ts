// Idempotency stores as the functions make theirs, and the records a ToolkitIdempotencyStore keeps in the suite's toolkit table.
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { testTableNames } from './tables.js';

export interface TestIdempotencyStoreOptions {
  /** Whose records these are: their partition keys start `IDEM#<name>#`. @default a name no other store has */
  readonly name?: string;
  /** @default the suite's toolkit table */
  readonly tableName?: string;
  /** @default a client of the suite's DynamoDB */
  readonly client?: DynamoDBClient;
}

let suiteDynamoDb: DynamoDBClient | undefined;

/**
 * Powertools' DynamoDB persistence layer as the functions build theirs: a {@link ToolkitIdempotencyStore}
 * (pk `IDEM#<name>#<key>`, sk the key, expiring through `expiresAt`) on the toolkit table. Read its records
 * with {@link idempotencyRecordsOf} and the same name.
 */
export function idempotencyStore({
  name = `test-${randomUUID()}`,
  tableName = testTableNames.toolkit,
  client,
}: TestIdempotencyStoreOptions = {}): ToolkitIdempotencyStore {
  suiteDynamoDb ??= createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });
  return new ToolkitIdempotencyStore({ name, tableName, client: client ?? suiteDynamoDb });
}

/**
 * Every record of the store named `name` (`IDEM#<name>#…`), read consistently. A scan: each record has a
 * partition key of its own, so no query finds them together.
 */
export async function idempotencyRecordsOf(
  documents: DynamoDBDocumentClient,
  name: string,
): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await documents.send(
      new ScanCommand({
        TableName: testTableNames.toolkit,
        FilterExpression: 'begins_with(pk, :prefix)',
        ExpressionAttributeValues: { ':prefix': `IDEM#${name}#` },
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    records.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  return records;
}
