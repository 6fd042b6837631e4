// Webhook subscriptions on the toolkit table (key layout in webhook-store.ts), and the fan-out's query of
// them. Apart from the store, so that a function that only publishes events (bookings, the booking event
// sweeper) loads none of the endpoint management code.
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { WebhookEventType } from '../webhook-worker/messages.js';
import type { EndpointOwnerKind } from './webhook-store.js';

/**
 * A principal's id or tenant as one key segment: `#` separates segments, and a subject `alice#x` would
 * otherwise read as `alice` followed by more key (her events, her endpoint list, her endpoint count).
 * Only `#` and the escape character `%` are escaped, so every other id (`auth0|…`, emails, UUIDs) keeps
 * the keys it was stored under before.
 */
export const keySegment = (value: string) => value.replaceAll('%', '%25').replaceAll('#', '%23');

/**
 * The partition of a tenant's subscriptions to one event type: a type this version knows, or, for an
 * endpoint being removed, one a newer version added.
 */
export const subscriptionPk = (tenantId: string, eventType: string) =>
  `WH#SUB#${keySegment(tenantId)}#${eventType}`;

const userSubscriptionPrefix = (userId: string) => `USER#${keySegment(userId)}#`;
const tenantWideSubscriptionPrefix = 'TENANT#';

/** A subscription's sort key: a person's endpoints sort under their id, the tenant-wide ones together. */
export const subscriptionSk = (endpoint: {
  readonly id: string;
  readonly ownerId: string;
  readonly ownerKind: EndpointOwnerKind;
}) =>
  endpoint.ownerKind === 'user'
    ? `${userSubscriptionPrefix(endpoint.ownerId)}${endpoint.id}`
    : `${tenantWideSubscriptionPrefix}${endpoint.id}`;

export interface WebhookSubscriptionsOptions {
  readonly documentClient: DynamoDBDocumentClient;
  /** The toolkit table. */
  readonly tableName: string;
}

/** Reads which endpoints an event goes to. */
export class WebhookSubscriptions {
  constructor(private readonly options: WebhookSubscriptionsOptions) {}

  /**
   * The enabled endpoints that receive `eventType` about a resource of `subjectUserId` in a tenant:
   * every tenant-wide subscription, plus the subject user's own. Two key-range queries, in parallel,
   * so the cost does not grow with other users' endpoints. `signal` aborts them (a handler's deadline
   * after its commit).
   */
  async findSubscribers(
    tenantId: string,
    eventType: WebhookEventType,
    subjectUserId: string | undefined,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const ranges = [
      tenantWideSubscriptionPrefix,
      ...(subjectUserId ? [userSubscriptionPrefix(subjectUserId)] : []),
    ];
    const found = await Promise.all(
      ranges.map((prefix) => this.querySubscriptions(subscriptionPk(tenantId, eventType), prefix, signal)),
    );
    return found.flat();
  }

  private async querySubscriptions(
    pk: string,
    prefix: string,
    signal: AbortSignal | undefined,
  ): Promise<string[]> {
    const endpointIds: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    // Bounded: 100 pages of subscriptions is far beyond what one event fans out to in this sample.
    for (let page = 0; page < 100; page += 1) {
      const result = await this.options.documentClient.send(
        new QueryCommand({
          TableName: this.options.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          FilterExpression: '#status = :enabled',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':pk': pk, ':prefix': prefix, ':enabled': 'enabled' },
          ExclusiveStartKey: startKey,
        }),
        { abortSignal: signal },
      );
      for (const item of result.Items ?? []) endpointIds.push(String(item.endpointId));
      startKey = result.LastEvaluatedKey;
      if (!startKey) break;
    }
    return endpointIds;
  }
}
