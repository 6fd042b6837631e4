// The cold-start floor's DynamoDB part, bundled only for functions whose own bundle imports the DynamoDB client.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
// Names only (the index and its shard keys), so the floor reads the very index the sweeper reads.
import {
  pendingEventsIndex,
  pendingPartition,
  pendingShardCount,
} from '../../functions/shared/pending-events-index.js';
import type { FloorProbes } from './cold-start-baseline.js';

const documentClient = DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 1 }));

export const floorProbes: FloorProbes = {
  /** The same probe as functions/health: one GetItem per table. */
  async health() {
    await Promise.all(
      [process.env.APP_TABLE_NAME, process.env.TOOLKIT_TABLE_NAME].map((tableName) =>
        documentClient.send(new GetCommand({ TableName: tableName, Key: { pk: 'HEALTH', sk: 'HEALTH' } })),
      ),
    );
  },
  /** The same reads as a sweep that finds nothing pending: one Query per shard of the index, in turn. */
  async schedule(event) {
    for (let shard = 0; shard < pendingShardCount; shard += 1) {
      await documentClient.send(
        new QueryCommand({
          TableName: process.env.APP_TABLE_NAME,
          IndexName: pendingEventsIndex,
          KeyConditionExpression: 'gsi3pk = :partition AND gsi3sk < :before',
          ExpressionAttributeValues: { ':partition': pendingPartition(shard), ':before': event.time },
        }),
      );
    }
  },
};
