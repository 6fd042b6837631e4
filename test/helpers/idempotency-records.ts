// The idempotency records a ToolkitIdempotencyStore keeps in the suite's toolkit table.
import { type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { testTableNames } from './tables.js';

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
