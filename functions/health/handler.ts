// The health function: answers 200 when both tables answer a read, 503 otherwise.
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ServiceUnavailableError } from '../../middleware/errors.js';
import { json } from '../../middleware/http/response.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { functionObservability } from '../shared/observability.js';
import { createPublicHttpFunction } from '../shared/public-http-function.js';
import { readTableEnvironment } from '../shared/table-environment.js';

const { logger } = functionObservability('health');
const environment = readTableEnvironment();
const documentClient = createDocumentClient(
  createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint, maxAttempts: 1, requestTimeoutMs: 1000 }),
);

/** A GetItem needs only read access and costs half a read unit, unlike DescribeTable. */
async function probe(tableName: string): Promise<void> {
  await documentClient.send(new GetCommand({ TableName: tableName, Key: { pk: 'HEALTH', sk: 'HEALTH' } }));
}

export const handler = createPublicHttpFunction(
  'health',
  {
    'GET /health': (route) =>
      route.handler(async () => {
        const results = await Promise.allSettled([
          probe(environment.appTableName),
          probe(environment.toolkitTableName),
        ]);
        const failures = results.filter((result) => result.status === 'rejected');
        if (failures.length > 0) {
          logger.error('Health probe failed', { errors: failures.map((failure) => failure.reason) });
          throw new ServiceUnavailableError('A table is not reachable', 5);
        }
        return json(200, { status: 'ok', tables: { app: 'ok', toolkit: 'ok' } });
      }),
  },
  logger,
);
