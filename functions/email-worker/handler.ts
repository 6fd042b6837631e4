// The email worker function: SQS batches of email messages, sent through SES v2 or SMTP (see email-worker.ts).
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { SESv2Client } from '@aws-sdk/client-sesv2';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { functionObservability } from '../shared/observability.js';
import { createSqsClient } from '../shared/sqs-client.js';
import { workers } from '../workers.js';
import { EmailWorker } from './email-worker.js';
import { EmailTemplates } from './templates.js';
import { type EmailTransport, SesEmailTransport, SmtpEmailTransport } from './transports.js';

const definition = workers['email-worker'];
const observability = functionObservability('email-worker');
const environment = readEnvironment();
const queues = readQueueEnvironment();
if (!queues.emailQueueUrl || !queues.emailDlqUrl) {
  throw new Error(
    'Invalid function environment: EMAIL_QUEUE_URL, EMAIL_DLQ_URL (required by the email worker)',
  );
}
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });

const transport: EmailTransport =
  queues.emailTransport === 'ses'
    ? new SesEmailTransport(new SESv2Client({}))
    : new SmtpEmailTransport(queues.smtp);

const worker = new EmailWorker({
  transport,
  templates: new EmailTemplates(),
  breaker: new CircuitBreaker<string>({
    name: `email-${transport.name}`,
    tableName: environment.toolkitTableName,
    client: dynamoDb,
    // Below the function timeout, so a hung provider fails the attempt rather than the invocation.
    timeoutMs: (definition.timeoutSec - 5) * 1000,
    onEvent: observability.onEvent,
    logger: observability.logger,
  }),
  sqs: createSqsClient(queues.sqsEndpoint),
  queueUrl: queues.emailQueueUrl,
  dlqUrl: queues.emailDlqUrl,
  from: queues.emailFrom,
  maxAttempts: definition.maxReceiveCount,
  retryBaseDelaySec: queues.retryBaseDelaySec,
  persistenceStore: new DynamoDBPersistenceLayer({
    tableName: environment.toolkitTableName,
    awsSdkV3Client: dynamoDb,
    keyAttr: 'pk',
    sortKeyAttr: 'sk',
    // DESIGN.md's prefix for worker idempotency; the sort key is Powertools' `<function>#<hash>`.
    staticPkValue: 'IDEM#email-worker',
    // The toolkit table's TTL attribute, so remembered ids expire on their own.
    expiryAttr: 'expiresAt',
  }),
  observability,
});

export const handler = (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
  worker.handle(event, context);
