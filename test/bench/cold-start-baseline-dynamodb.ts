// The cold-start floor's DynamoDB part, bundled only for functions whose own bundle imports the DynamoDB client.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { HealthProbe } from './cold-start-baseline.js';

const documentClient = DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 1 }));

/** The same probe as functions/health: one GetItem per table. */
export const healthProbe: HealthProbe = async () => {
  await Promise.all(
    [process.env.APP_TABLE_NAME, process.env.TOOLKIT_TABLE_NAME].map((tableName) =>
      documentClient.send(new GetCommand({ TableName: tableName, Key: { pk: 'HEALTH', sk: 'HEALTH' } })),
    ),
  );
};
