// Publishing user.registered: the one code path of the users function and the pending-event sweep. It reads
// and writes only the user item's plain attributes, so the sweep needs no encryption key.
import type { Logger } from '@aws-lambda-powertools/logger';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isExpired } from '../../middleware/store/tables.js';
import { userKey } from '../shared/keys.js';
import { requiredString } from '../shared/stored-attributes.js';
import { defaultTenantId } from '../shared/tenant.js';
import { type PendingPublishResult, publishPending, type WebhookFanOut } from '../shared/webhook-fanout.js';

/** The event a registration leaves pending on its user item (`pendingEvents`) until it is published. */
export const registeredEvent = 'user.registered';

/**
 * The event's id for good: with it every publishing of one registration's event makes the same webhook
 * ids, so a receiver that got it from the request and from the sweep sees one `webhook-id`.
 */
export const registeredEventId = (userId: string) => `${registeredEvent}/${userId}`;

/** A registered user as its event needs it: the payload is these two fields, nothing personal. */
export interface RegisteredUser {
  readonly id: string;
  readonly createdAt: string;
}

/** A user item as the sweep reads it (no encrypted field). */
export interface SweptUser extends RegisteredUser {
  /** Whether user.registered is still pending. */
  readonly pending: boolean;
  /**
   * The registering request's correlation id (the item's `pendingCorrelationId`), which the sweep publishes
   * with; undefined on users registered before it was kept.
   */
  readonly pendingCorrelationId: string | undefined;
  readonly onPendingIndex: boolean;
  /** The registration lapsed unverified: the user is gone for every route, TTL just has not deleted it yet. */
  readonly lapsed: boolean;
}

/** user.registered's mark on the user item (the pending event and the pending-events index's keys). */
export class RegistrationEventStore {
  constructor(
    private readonly documentClient: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly tenantId: string = defaultTenantId,
  ) {}

  /** The user's plain attributes, or undefined when there is none (or it is another tenant's). */
  async findForSweep(id: string, now: Date, signal?: AbortSignal): Promise<SweptUser | undefined> {
    const { Item } = await this.documentClient.send(
      new GetCommand({
        TableName: this.tableName,
        Key: userKey(id),
        ConsistentRead: true,
        // The key too: a record this version cannot read is named by it.
        ProjectionExpression:
          'pk, sk, id, tenantId, createdAt, expiresAt, pendingEvents, pendingCorrelationId, gsi3pk',
      }),
      { abortSignal: signal },
    );
    if (!Item || Item.tenantId !== this.tenantId) return undefined;
    const { pendingEvents } = Item;
    return {
      id,
      // Read when the event is built: a user only taken off the index (lapsed, nothing pending) needs none.
      get createdAt() {
        return requiredString(Item, 'createdAt');
      },
      pending: pendingEvents instanceof Set && pendingEvents.has(registeredEvent),
      pendingCorrelationId:
        typeof Item.pendingCorrelationId === 'string' ? Item.pendingCorrelationId : undefined,
      onPendingIndex: typeof Item.gsi3pk === 'string',
      lapsed: isExpired(Item, now.getTime()),
    };
  }

  /**
   * Records user.registered published (or not to be published: its user lapsed) and takes the user off
   * the pending-events index, with the correlation id kept for it; a registration makes no other event, so nothing else keeps it there.
   * Throws ConditionalCheckFailedException when the user does not exist.
   */
  async markPublished(id: string, signal?: AbortSignal): Promise<void> {
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: userKey(id),
        UpdateExpression: 'DELETE pendingEvents :event REMOVE gsi3pk, gsi3sk, pendingCorrelationId',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':event': new Set([registeredEvent]) },
      }),
      { abortSignal: signal },
    );
  }
}

export interface RegistrationEventsOptions {
  readonly store: RegistrationEventStore;
  readonly webhooks: WebhookFanOut;
  readonly logger: Logger;
}

/**
 * Publishes user.registered to the user's own endpoints and the tenant's admin and integration endpoints,
 * then marks it published. One that did not go out in full, or whose mark could not be cleared, stays
 * pending for the sweep, which publishes it again with the same webhook ids ({@link registeredEventId}).
 *
 * @example
 * const events = new RegistrationEvents({ store, webhooks, logger });
 * await afterCommitDeadline(context, (deadline) => events.publish(user, correlationId, deadline));
 */
export class RegistrationEvents {
  constructor(private readonly options: RegistrationEventsOptions) {}

  async publish(
    user: RegisteredUser,
    correlationId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<PendingPublishResult> {
    const { store, webhooks, logger } = this.options;
    // Receivers are outside Bulwark: no personal data (name, email, phone); one that needs them reads the
    // user with `users/read`.
    return publishPending(
      webhooks,
      {
        id: registeredEventId(user.id),
        type: registeredEvent,
        tenantId: defaultTenantId,
        subjectUserId: user.id,
        data: { id: user.id, createdAt: user.createdAt },
        subject: { userId: user.id },
        occurredAt: new Date(user.createdAt),
      },
      async (markSignal) => {
        try {
          await store.markPublished(user.id, markSignal);
        } catch (error) {
          // Deleted since it was published: its item, and so its index entry, is gone; nothing is pending.
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        }
      },
      { correlationId, signal, logger },
    );
  }
}
