// Starts one in-memory embedded DynamoDB for the whole suite and creates the shared tables in it.
import type { TestProject } from 'vitest/node';
import { startDynamoDbProcess } from '../bin/runtime/dynamodb-process.js';
import { generateEncryptionKey } from '../middleware/encryption/local-key-provider.js';
import { createDynamoDbClient } from '../middleware/store/client.js';
import { ensureTables } from '../middleware/store/create-tables.js';
import { appTable, toolkitTable } from '../middleware/store/tables.js';
import { testTableNames } from './helpers/tables.js';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoDbEndpoint: string;
    /** The functions' ENCRYPTION_KEY: fresh per run, shared by every file, like the tables it encrypts. */
    encryptionKey: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dynamoDb = await startDynamoDbProcess();
  const client = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
  await ensureTables(client, [
    { definition: appTable, tableName: testTableNames.app },
    { definition: toolkitTable, tableName: testTableNames.toolkit },
  ]);
  client.destroy();
  project.provide('dynamoDbEndpoint', dynamoDb.endpoint);
  project.provide('encryptionKey', generateEncryptionKey());
  return () => dynamoDb.stop();
}
