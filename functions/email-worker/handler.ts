// The email worker function: SQS batches of email and SMS messages, sent through SES v2 or SMTP, and SNS or the outbox (see email-worker.ts).
import { SESv2Client } from '@aws-sdk/client-sesv2';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { functionObservability } from '../shared/observability.js';
import { withWorkerMiddlewares } from '../shared/queue-worker.js';
import { functionSqsClient } from '../shared/sqs-client.js';
import { userItemState } from '../shared/user-item.js';
import { workers } from '../workers.js';
import { EmailWorker, providerCircuitBreaker, providerTimeoutMs } from './email-worker.js';
import { OutboxSmsTransport, type SmsTransport, SnsSmsTransport } from './sms-transports.js';
import { smtpCredentialsReader } from './smtp-credentials.js';
import { EmailTemplates } from './templates.js';
import { type EmailTransport, SesEmailTransport, SmtpEmailTransport } from './transports.js';

const definition = workers['email-worker'];
const observability = functionObservability('email-worker');
const environment = readEnvironment();
const queues = readQueueEnvironment(process.env, { transports: true });
if (!queues.emailQueueUrl || !queues.emailDlqUrl) {
  throw new Error(
    'Invalid function environment: EMAIL_QUEUE_URL, EMAIL_DLQ_URL (required by the email worker)',
  );
}
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const documentClient = createDocumentClient(dynamoDb);

function createEmailTransport(): EmailTransport {
  if (queues.emailTransport === 'ses') {
    const { configurationSetName } = queues.ses;
    return new SesEmailTransport(
      new SESv2Client({}),
      configurationSetName === undefined ? {} : { configurationSetName },
    );
  }
  // Deployed bundles carry only SES (lib/bulwark-function.ts): fail the cold start, not the first email.
  if (process.env.BULWARK_BUNDLED_EMAIL_TRANSPORT === 'ses') {
    throw new Error('Invalid function environment: EMAIL_TRANSPORT (this bundle carries only ses)');
  }
  const { host, port, credentialsSecretArn } = queues.smtp;
  return new SmtpEmailTransport({
    host,
    port,
    ...(credentialsSecretArn
      ? { credentials: smtpCredentialsReader(credentialsSecretArn, observability.onEvent) }
      : {}),
  });
}

const transport = createEmailTransport();

const smsTransport: SmsTransport =
  queues.sms.transport === 'sns'
    ? new SnsSmsTransport(
        new SNSClient({}),
        queues.sms.senderId === undefined ? {} : { senderId: queues.sms.senderId },
      )
    : new OutboxSmsTransport(queues.sms.outboxDir);

/**
 * One breaker per provider, on the toolkit table; its timeout leaves room in the function's for the work
 * around a send (providerTimeoutMs), so a hung provider fails the attempt and a send started ends in time
 * for its result to be saved; counting failures over a window fitted to the retry base, the pace of an
 * outage's failed sends.
 */
function providerBreaker(name: string): CircuitBreaker<string> {
  return providerCircuitBreaker({
    name,
    retryBaseDelaySec: queues.retryBaseDelaySec,
    tableName: environment.toolkitTableName,
    client: dynamoDb,
    timeoutMs: providerTimeoutMs(definition.timeoutSec),
    onEvent: observability.onEvent,
    logger: observability.logger,
  });
}

const worker = new EmailWorker({
  transport,
  templates: new EmailTemplates(),
  breaker: providerBreaker(`email-${transport.name}`),
  sms: { transport: smsTransport, breaker: providerBreaker(`sms-${smsTransport.name}`) },
  sqs: functionSqsClient(queues.sqsEndpoint),
  queueUrl: queues.emailQueueUrl,
  dlqUrl: queues.emailDlqUrl,
  from: queues.emailFrom,
  maxAttempts: definition.maxReceiveCount,
  retryBaseDelaySec: queues.retryBaseDelaySec,
  persistenceStore: new ToolkitIdempotencyStore({
    name: 'email-worker',
    tableName: environment.toolkitTableName,
    client: dynamoDb,
  }),
  // The users' items live on the app table; the worker may only GetItem there (functions/workers.ts).
  userState: (userId) => userItemState(documentClient, environment.appTableName, userId),
  observability,
});

export const handler = withWorkerMiddlewares(
  (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => worker.handle(event, context),
  observability,
);
