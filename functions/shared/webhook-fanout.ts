// Webhook fan-out: after a committed change, one queue message per subscribed, enabled endpoint.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createDocumentClient } from '../../middleware/store/client.js';
import type { WebhookEventType, WebhookMessage } from '../webhook-worker/messages.js';
import { reportEnqueueFailure } from './enqueue-failure.js';
import type { FunctionObservability } from './observability.js';
import { afterCommitFailure } from './post-commit.js';
import { functionSqsClient, sendMessageBatch } from './sqs-client.js';
import type { TableEnvironment } from './table-environment.js';
import { newWebhookId, webhookIdFor } from './webhook-ids.js';
import type { WebhookQueueEnvironment } from './webhook-queue-environment.js';
import { WebhookSubscriptions } from './webhook-subscriptions.js';

interface WebhookEventFields {
  readonly type: WebhookEventType;
  readonly tenantId: string;
  /**
   * The user the event is about (the booking's user, the registered user): that user's own endpoints
   * receive it, besides every admin and integration endpoint of the tenant.
   */
  readonly subjectUserId: string | undefined;
  /** The payload's `data`: ids and non-personal fields only, since receivers are outside Bulwark. */
  readonly data: Readonly<Record<string, unknown>>;
  /**
   * The ids the lines about what the event is about name it by (`{ bookingId }`, `{ userId }`): a failure
   * to publish it names them, so it is found from the id an engineer is given.
   */
  readonly subject?: Readonly<Record<string, string>>;
}

/**
 * An event to publish. Without an `id`, each publish makes messages of their own: random webhook ids,
 * made now. With one (the event's name for good, say its type and the booking's id), publishing it
 * again makes the same messages: each endpoint's webhook id comes from the event's id and the
 * endpoint's ({@link webhookIdFor}), and the message is made at `occurredAt`, which must then be the
 * stored time of the event, so a copy has the delivery key of the first (`DELIVERY#<createdAt>#<id>`),
 * the worker delivers it once, and a receiver that got both sees one `webhook-id`.
 */
export type WebhookEvent = WebhookEventFields &
  (
    | {
        readonly id?: undefined;
        /** The payload's `timestamp`. @default now */
        readonly occurredAt?: Date;
      }
    | { readonly id: string; readonly occurredAt: Date }
  );

/** What {@link WebhookFanOut.publish} did. */
export interface PublishOutcome {
  /** Messages enqueued, one per subscribed, enabled endpoint; 0 when publishing failed. */
  readonly enqueued: number;
  /**
   * Whether the event is published: every subscriber's message is in the queue, also when there were
   * none to send (no subscriber, or no webhook queue configured). False after a failure, which was reported.
   */
  readonly published: boolean;
}

/**
 * What {@link WebhookFanOut.publishPending} did: `published` when the event went out and is marked
 * published; `not-published` when it did not go out in full (the fan-out reported why); `not-marked` when
 * it went out but its mark could not be cleared (logged), so it is published again later, with the same
 * webhook ids. The last two leave it pending.
 */
export type PendingPublishResult = 'published' | 'not-published' | 'not-marked';

/** An event kept pending on its item until published: it has an id for good, so a retry makes the same messages. */
export type PendingWebhookEvent = Extract<WebhookEvent, { readonly id: string }>;

export interface WebhookFanOutOptions {
  readonly subscriptions: WebhookSubscriptions;
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
 * (`WebhookEnqueueFailed`), but never fails the request, which already succeeded: its outcome tells the
 * caller whether the event went out, so that the caller can keep it for a retry. Give it the handler's
 * deadline (`afterCommitDeadline`): past it, publishing stops and is reported the same way, so the
 * request is answered before its invocation times out.
 *
 * @example
 * await webhooks.publish({ type: 'booking.created', tenantId, subjectUserId: booking.userId, data: booking }, correlationId);
 */
export class WebhookFanOut {
  constructor(private readonly options: WebhookFanOutOptions) {}

  async publish(
    event: WebhookEvent,
    correlationId: string | undefined,
    signal?: AbortSignal,
  ): Promise<PublishOutcome> {
    const { subscriptions, sqs, queueUrl, observability } = this.options;
    if (!sqs || !queueUrl) return { enqueued: 0, published: true };
    try {
      const endpointIds = await subscriptions.findSubscribers(
        event.tenantId,
        event.type,
        event.subjectUserId,
        signal,
      );
      const now = new Date().toISOString();
      const timestamp = (event.occurredAt ?? new Date()).toISOString();
      const messages: WebhookMessage[] = endpointIds.map((endpointId) => ({
        id: event.id === undefined ? newWebhookId('msg') : webhookIdFor(event.id, endpointId),
        endpointId,
        tenantId: event.tenantId,
        eventType: event.type,
        createdAt: event.id === undefined ? now : timestamp,
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
      return { enqueued: messages.length, published: true };
    } catch (error) {
      reportEnqueueFailure(observability, {
        metric: 'WebhookEnqueueFailed',
        message: `Webhooks for ${event.type} were not all enqueued; the change itself is committed`,
        eventType: 'webhook.enqueue_failed',
        error: afterCommitFailure(error, signal),
        ...(event.subjectUserId ? { userId: event.subjectUserId } : {}),
        correlationId,
        metadata: {
          eventType: event.type,
          ...(event.id === undefined ? {} : { eventId: event.id }),
          ...event.subject,
        },
      });
      return { enqueued: 0, published: false };
    }
  }
}

/**
 * Publishes `event`, kept pending on its item, and then marks it published with `markPublished` (given
 * `signal`). A mark that fails is logged with the event's `subject` (the item's ids): the event went out,
 * and is published again later with the same webhook ids, which receivers see as one. `markPublished`
 * decides what counts as marked; it returns normally for that.
 */
export async function publishPending(
  fanOut: WebhookFanOut,
  event: PendingWebhookEvent,
  markPublished: (signal: AbortSignal | undefined) => Promise<void>,
  run: {
    readonly correlationId: string | undefined;
    readonly signal: AbortSignal | undefined;
    readonly logger: Pick<Logger, 'warn'>;
  },
): Promise<PendingPublishResult> {
  const { published } = await fanOut.publish(event, run.correlationId, run.signal);
  if (!published) return 'not-published';
  try {
    await markPublished(run.signal);
    return 'published';
  } catch (error) {
    run.logger.warn(`${event.type} published but still marked pending: it is published again later`, {
      // The sweep's logger has none of its own: each event brings its request's.
      ...(run.correlationId === undefined ? {} : { correlation_id: run.correlationId }),
      ...event.subject,
      eventType: event.type,
      error: afterCommitFailure(error, run.signal),
    });
    return 'not-marked';
  }
}

/**
 * The fan-out of a function that publishes events (users, bookings, the booking event sweeper), built at
 * cold start from its environment; it reads subscriptions on the toolkit table and needs no encryption key.
 */
export function createWebhookFanOut(
  tables: Pick<TableEnvironment, 'toolkitTableName'>,
  queues: WebhookQueueEnvironment,
  dynamoDb: DynamoDBClient,
  observability: FunctionObservability,
): WebhookFanOut {
  const { queueUrl } = queues.webhook;
  return new WebhookFanOut({
    subscriptions: new WebhookSubscriptions({
      documentClient: createDocumentClient(dynamoDb),
      tableName: tables.toolkitTableName,
    }),
    sqs: queueUrl ? functionSqsClient(queues.sqsEndpoint) : undefined,
    queueUrl,
    observability,
  });
}
