// Starts one in-memory embedded DynamoDB for the whole suite and creates the shared tables in it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { TestProject } from 'vitest/node';
import { startDynamoDbProcess } from '../bin/runtime/dynamodb-process.js';
import { defaultTenantId } from '../functions/shared/tenant.js';
import { subscriptionPk } from '../functions/shared/webhook-subscriptions.js';
import { webhookEventTypes } from '../functions/webhook-worker/messages.js';
import { generateEncryptionKey } from '../middleware/encryption/local-key-provider.js';
import { createDocumentClient, createDynamoDbClient } from '../middleware/store/client.js';
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
  const runTempDir = useRunTempDir();
  const dynamoDb = await startDynamoDbProcess();
  const client = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
  await ensureTables(client, [
    { definition: appTable, tableName: testTableNames.app },
    { definition: toolkitTable, tableName: testTableNames.toolkit },
  ]);
  client.destroy();
  project.provide('dynamoDbEndpoint', dynamoDb.endpoint);
  project.provide('encryptionKey', generateEncryptionKey());
  return async () => {
    const leaked = await tenantWideSubscriptionsLeft(dynamoDb.endpoint);
    await dynamoDb.stop();
    rmSync(runTempDir, { recursive: true, force: true });
    if (leaked.length > 0) {
      // Vitest logs a teardown's error but still exits 0: the exit code is set here.
      console.error(
        `Test files left tenant-wide webhook endpoints on the shared toolkit table (${leaked.join(', ')}): ` +
          "they receive every event of the tenant, so other files' webhook queues wait on them. Delete them, " +
          'or register them in a tenant of their own.',
      );
      process.exitCode = 1;
    }
  };
}

/**
 * Points every temporary file of the run into one directory, removed when the run ends. The test files and
 * their workers (which inherit this process's environment) make thousands: each CDK synthesis without an
 * outdir leaves a `cdk.out*` directory, and key files, JWKS files and data directories of the local runtime
 * add their own, all left in the machine's temporary directory for good.
 */
function useRunTempDir(): string {
  const runTempDir = mkdtempSync(join(tmpdir(), 'bulwark-test-run-'));
  process.env.TMPDIR = runTempDir;
  return runTempDir;
}

/**
 * The subscriptions of admin and M2M endpoints in the default tenant still on the shared toolkit table. Every
 * runtime of the suite fans its bookings out to them, so one left at a closed receiver delays other
 * files' deliveries past their waits.
 */
async function tenantWideSubscriptionsLeft(endpoint: string): Promise<string[]> {
  const documents = createDocumentClient(createDynamoDbClient({ endpoint }));
  const left: string[] = [];
  for (const eventType of webhookEventTypes) {
    const { Items = [] } = await documents.send(
      new QueryCommand({
        TableName: testTableNames.toolkit,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :tenantWide)',
        ExpressionAttributeValues: {
          ':pk': subscriptionPk(defaultTenantId, eventType),
          ':tenantWide': 'TENANT#',
        },
      }),
    );
    left.push(...Items.map((item) => `${eventType} ${String(item.sk)}`));
  }
  documents.destroy();
  return left;
}
