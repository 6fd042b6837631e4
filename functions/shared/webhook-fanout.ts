// Webhook fan-out: after a committed change, one queue message per subscribed, enabled endpoint.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createDocumentClient } from '../../middleware/store/client.js';
import type { WebhookEventType, WebhookMessage } from '../webhook-worker/messages.js';
import { reportEnqueueFailure } from './enqueue-failure.js';
import type { FunctionEnvironment, QueueEnvironment } from './environment.js';
import type { FunctionObservability } from './observability.js';
import { afterCommitFailure } from './post-commit.js';
import { functionSqsClient, sendMessageBatch } from './sqs-client.js';
import { newWebhookId, WebhookStore } from './webhook-store.js';

export interface WebhookEvent {
  readonly type: WebhookEventType;
  readonly tenantId: string;
  /**
   * The user the event is about (the booking's user, the registered user): that user's own endpoints
   * receive it, besides every admin and integration endpoint of the tenant.
   */
  readonly subjectUserId: string | undefined;
  /** The payload's `data`: ids and non-personal fields only, since receivers are outside Bulwark. */
  readonly data: Readonly<Record<string, unknown>>;
  /** @default now */
  readonly occurredAt?: Date;
}

export interface WebhookFanOutOptions {
  readonly store: WebhookStore;
  /** Undefined: no webhook queue configured, so nothing fans out. */
  readonly sqs: SQSClient | undefined;
  readonly queueUrl: string | undefined;
  readonly observability: FunctionObservability;
}

/** SendMessageBatch's largest batch. */
const batchSize = 10;

/**
 * Publishes events to the endpoints subscribed to them. Call it after the change is committed: a
 * failure to find subscribers or to enqueue is logged, audited (`webhook.enqueue_failed`) and counted
 * (`WebhookEnqueueFailed`), but never fails the request, which already succeeded. Give it the handler's
 * deadline (`afterCommitDeadline`): past it, publishing stops and is reported the same way, so the
 * request is answered before its invocation times out.
 *
 * @example
 * await webhooks.publish({ type: 'booking.created', tenantId, subjectUserId: booking.userId, data: booking }, correlationId);
 */
export class WebhookFanOut {
  constructor(private readonly options: WebhookFanOutOptions) {}

  /** Resolves with the number of messages enqueued. */
  async publish(
    event: WebhookEvent,
    correlationId: string | undefined,
    signal?: AbortSignal,
  ): Promise<number> {
    const { store, sqs, queueUrl, observability } = this.options;
    if (!sqs || !queueUrl) return 0;
    try {
      const endpointIds = await store.findSubscribers(
        event.tenantId,
        event.type,
        event.subjectUserId,
        signal,
      );
      const now = new Date().toISOString();
      const timestamp = (event.occurredAt ?? new Date()).toISOString();
      const messages: WebhookMessage[] = endpointIds.map((endpointId) => ({
        id: newWebhookId('msg'),
        endpointId,
        tenantId: event.tenantId,
        eventType: event.type,
        createdAt: now,
        payload: { type: event.type, timestamp, data: { ...event.data } },
      }));
      const batches: WebhookMessage[][] = [];
      for (let offset = 0; offset < messages.length; offset += batchSize) {
        batches.push(messages.slice(offset, offset + batchSize));
      }
      const refused = await Promise.all(
        batches.map((batch) => sendMessageBatch(sqs, queueUrl, batch, correlationId, signal)),
      );
      const failedCount = refused.reduce((sum, indexes) => sum + indexes.length, 0);
      if (failedCount > 0)
        throw new Error(`SQS did not accept ${failedCount} of ${messages.length} messages`);
      return messages.length;
    } catch (error) {
      reportEnqueueFailure(observability, {
        metric: 'WebhookEnqueueFailed',
        message: `Webhooks for ${event.type} were not all enqueued; the change itself is committed`,
        eventType: 'webhook.enqueue_failed',
        error: afterCommitFailure(error, signal),
        ...(event.subjectUserId ? { userId: event.subjectUserId } : {}),
        correlationId,
        metadata: { eventType: event.type },
      });
      return 0;
    }
  }
}

/**
 * The fan-out of a function that publishes events (users, bookings), built at cold start from its
 * environment; it reads subscriptions on the toolkit table and needs no encryption key.
 */
export function createWebhookFanOut(
  environment: FunctionEnvironment,
  queues: QueueEnvironment,
  dynamoDb: DynamoDBClient,
  observability: FunctionObservability,
): WebhookFanOut {
  const { queueUrl } = queues.webhook;
  return new WebhookFanOut({
    store: new WebhookStore({
      documentClient: createDocumentClient(dynamoDb),
      tableName: environment.toolkitTableName,
    }),
    sqs: queueUrl ? functionSqsClient(queues.sqsEndpoint) : undefined,
    queueUrl,
    observability,
  });
}
