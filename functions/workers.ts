// The one queue-worker table: read by the CDK stack (each worker's queue, DLQ, function, event source mapping and table grants) and by the local runtime (queues and pollers).
import type { TableAccess } from './routes.js';

/** Settings of one Lambda function fed by an SQS queue through an event source mapping. */
export interface WorkerDefinition extends TableAccess {
  /** Handler module, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  /** The queue's name; its dead-letter queue is `<queueName>-dlq`. */
  readonly queueName: string;
  /** Receives after which SQS moves a message to the DLQ: the worker's number of attempts. */
  readonly maxReceiveCount: number;
  /** The queue's default visibility timeout: at least 6 x the function timeout (AWS guidance; cdk-nag checks it). */
  readonly visibilityTimeoutSec: number;
  /** Records per invocation. */
  readonly batchSize: number;
  /** The event source mapping's maximum concurrency (batches in flight at once). */
  readonly maxConcurrency: number;
  /** Lambda memory in MB. */
  readonly memoryMb: number;
  /** Lambda timeout; the local runtime enforces it too. */
  readonly timeoutSec: number;
}

export const workers = {
  'email-worker': {
    entry: 'functions/email-worker/handler.ts',
    queueName: 'bulwark-email',
    // Seed 003: an email is tried 3 times, then kept in the DLQ.
    maxReceiveCount: 3,
    visibilityTimeoutSec: 180,
    batchSize: 10,
    // Seed 003's email concurrency; it also keeps SMTP/SES connection counts modest.
    maxConcurrency: 5,
    memoryMb: 256,
    timeoutSec: 30,
    tableActions: {
      // Whether the user a message is about still exists, read by key (the key alone) before each send.
      app: ['dynamodb:GetItem'],
      toolkit: [
        // The providers' circuits; an idempotency record its conflicting put did not return.
        'dynamodb:GetItem',
        // Idempotency records; the circuits' state changes.
        'dynamodb:PutItem',
        // The circuits' failures; idempotency records completed.
        'dynamodb:UpdateItem',
        // The idempotency record of a send that failed, so that the message's retry sends it.
        'dynamodb:DeleteItem',
      ],
    },
  },
  'webhook-worker': {
    entry: 'functions/webhook-worker/handler.ts',
    queueName: 'bulwark-webhook',
    // Issue 8: a webhook is tried 5 times (exponential backoff with jitter), then kept in the DLQ.
    maxReceiveCount: 5,
    // At least 6 x the function timeout, as AWS advises for SQS event sources.
    visibilityTimeoutSec: 180,
    batchSize: 10,
    // Seed 003's webhook concurrency.
    maxConcurrency: 10,
    memoryMb: 256,
    // Each POST times out after 10 s; a batch's records are delivered in parallel.
    timeoutSec: 30,
    tableActions: {
      // An endpoint owner's email, read by id for the security alert when the endpoint is disabled.
      app: ['dynamodb:GetItem'],
      toolkit: [
        // Endpoints and their failure streaks; the endpoints' circuits; an idempotency record its
        // conflicting put did not return.
        'dynamodb:GetItem',
        // Idempotency records; the circuits' state changes.
        'dynamodb:PutItem',
        // Delivery attempts; failure streaks; an endpoint and its subscriptions disabled; the circuits'
        // failures; idempotency records completed.
        'dynamodb:UpdateItem',
        // The idempotency record of a delivery that failed, so that the message's retry delivers it.
        'dynamodb:DeleteItem',
      ],
    },
  },
} as const satisfies Record<string, WorkerDefinition>;

export type WorkerName = keyof typeof workers;

/**
 * The one `circuit` metric dimension of every webhook endpoint's breaker. Those breakers guard customers'
 * receivers, not Bulwark's dependencies, so the stack's CircuitOpened alarm leaves them out.
 */
export const webhookEndpointCircuit = 'webhook-endpoint';

/**
 * The audit line a worker writes for each message it handled as it should: an email or an SMS sent, a
 * webhook delivered. One per message, like the per-request lines: the dashboard's audit query leaves them out.
 */
export const workerSuccessEventTypes = {
  emailSent: 'email.sent',
  smsSent: 'sms.sent',
  webhookDelivered: 'webhook.delivered',
} as const;

/** The worker names, typed (Object.keys would widen them to string). */
export const workerNames = Object.keys(workers) as WorkerName[];
