// The webhook worker function: SQS batches of webhook messages, signed and POSTed to their endpoints (see webhook-worker.ts).
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { createFunctionEncryptor } from '../shared/encryption.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { functionObservability } from '../shared/observability.js';
import { QueueActions, withWorkerMiddlewares } from '../shared/queue-worker.js';
import { functionSqsClient } from '../shared/sqs-client.js';
import { SsrfGuard, ssrfAllowlistFromEnvironment } from '../shared/ssrf-guard.js';
import { WebhookStore } from '../shared/webhook-store.js';
import { UsersModel } from '../users/users-model.js';
import { workers } from '../workers.js';
import { OwnerAlerts } from './owner-alerts.js';
import { WebhookWorker } from './webhook-worker.js';

const definition = workers['webhook-worker'];
const observability = functionObservability('webhook-worker');
const environment = readEnvironment();
const queues = readQueueEnvironment();
const { queueUrl, dlqUrl } = queues.webhook;
if (!queueUrl || !dlqUrl) {
  throw new Error(
    'Invalid function environment: WEBHOOK_QUEUE_URL, WEBHOOK_DLQ_URL (required by the webhook worker)',
  );
}
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const documentClient = createDocumentClient(dynamoDb);
const encryptor = createFunctionEncryptor(environment, observability.onEvent);
const sqs = functionSqsClient(queues.sqsEndpoint);

const worker = new WebhookWorker({
  store: new WebhookStore({ documentClient, tableName: environment.toolkitTableName, encryptor }),
  // Loopback only where SSRF_ALLOWLIST opens it (the local runtime and tests); never set in the stack.
  guard: new SsrfGuard({ allowlist: ssrfAllowlistFromEnvironment(queues.ssrfAllowlist) }),
  sqs: new QueueActions({ sqs, queueUrl, dlqUrl, logger: observability.logger }),
  maxAttempts: definition.maxReceiveCount,
  retryBaseDelaySec: queues.webhook.retryBaseDelaySec,
  maxRetryDelaySec: queues.webhook.maxRetryDelaySec,
  circuitStore: new DynamoDbCircuitStateStore({ tableName: environment.toolkitTableName, client: dynamoDb }),
  disableRule: {
    afterFailedDeliveries: queues.webhook.disableAfterFailedDeliveries,
    afterFailingHours: queues.webhook.disableAfterFailingHours,
  },
  alerts: new OwnerAlerts({
    sqs: queues.emailQueueUrl ? sqs : undefined,
    emailQueueUrl: queues.emailQueueUrl,
    // The owner's address lives with the users (app table, encrypted): read it only to alert them.
    users: new UsersModel(documentClient, environment.appTableName, encryptor),
    logger: observability.logger,
    auditLogger: observability.auditLogger,
    metrics: observability.metrics,
  }),
  persistenceStore: new ToolkitIdempotencyStore({
    name: 'webhook-worker',
    tableName: environment.toolkitTableName,
    client: dynamoDb,
  }),
  observability,
});

export const handler = withWorkerMiddlewares(
  (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => worker.handle(event, context),
  observability,
);
