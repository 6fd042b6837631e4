// Publishing a booking's pending webhook event: the one code path of the bookings function and the booking event sweep.
import type { Logger } from '@aws-lambda-powertools/logger';
import { defaultTenantId } from '../shared/tenant.js';
import { type PendingPublishResult, publishPending, type WebhookFanOut } from '../shared/webhook-fanout.js';
import { type BookingsModel, eventOfStatus, type StoredBooking } from './bookings-model.js';

/**
 * What {@link BookingEvents.publishPending} did: `none` when the event the booking's status calls for was
 * not pending, otherwise what publishing it did ({@link PendingPublishResult}).
 */
export type PublishResult = 'none' | PendingPublishResult;

export interface BookingEventsOptions {
  readonly bookings: BookingsModel;
  readonly webhooks: WebhookFanOut;
  readonly logger: Logger;
}

/**
 * Publishes a booking's pending event to the booking's user and the tenant's admin and integration
 * endpoints, then marks it published (see {@link StoredBooking.pendingEvents}). An event that did not go
 * out in full, or whose mark could not be cleared, stays pending: a retry of the request or the sweep
 * publishes it again with the same webhook ids (the event's id is its type and the booking's).
 *
 * @example
 * const events = new BookingEvents({ bookings, webhooks, logger });
 * await afterCommitDeadline(context, (deadline) => events.publishPending(stored, correlationId, deadline));
 */
export class BookingEvents {
  constructor(private readonly options: BookingEventsOptions) {}

  /** Publishes the event the booking's status calls for if it is pending, all by `signal` (a deadline). */
  async publishPending(
    { booking, pendingEvents }: StoredBooking,
    correlationId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<PublishResult> {
    const { bookings, webhooks, logger } = this.options;
    const type = eventOfStatus[booking.status];
    if (!pendingEvents.includes(type)) return 'none';
    return publishPending(
      webhooks,
      {
        id: `${type}/${booking.id}`,
        type,
        tenantId: defaultTenantId,
        subjectUserId: booking.userId,
        data: { ...booking },
        subject: { bookingId: booking.id },
        occurredAt: new Date(
          type === 'booking.cancelled' ? (booking.cancelledAt ?? booking.createdAt) : booking.createdAt,
        ),
      },
      (markSignal) => bookings.markPublished(booking.id, type, markSignal),
      { correlationId, signal, logger },
    );
  }
}
