// Where the sample functions keep their Powertools idempotency records: the toolkit table, under `IDEM#<function>`.
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { toolkitTable } from '../../middleware/store/tables.js';

/**
 * The toolkit table under `IDEM#<functionName>` (DESIGN.md's prefix; the sort key is Powertools'
 * `<function>#<hash>`), expiring through the table's TTL attribute. One per function and idempotency
 * config: Powertools configures a persistence layer once and ignores a later, different config.
 *
 * @example
 * const persistenceStore = toolkitIdempotencyStore('email-worker', environment.toolkitTableName, dynamoDb);
 */
export function toolkitIdempotencyStore(
  functionName: string,
  tableName: string,
  client: DynamoDBClient,
): DynamoDBPersistenceLayer {
  return new DynamoDBPersistenceLayer({
    tableName,
    awsSdkV3Client: client,
    keyAttr: toolkitTable.partitionKey.name,
    sortKeyAttr: toolkitTable.sortKey.name,
    staticPkValue: `IDEM#${functionName}`,
    expiryAttr: toolkitTable.timeToLiveAttribute,
  });
}
