// The webhook queue's message schema: one message per (event, endpoint), validated by the worker before anything is sent.
import { idSchema } from '../shared/schemas.js';
import * as z from '../shared/zod.js';

/** The closed list of events an endpoint can subscribe to. */
export const webhookEventTypes = ['booking.created', 'booking.cancelled', 'user.registered'] as const;

export type WebhookEventType = (typeof webhookEventTypes)[number];

export const webhookEventTypeSchema = z.enum(webhookEventTypes);

/**
 * A webhook id (`msg_` + 24 base64url characters): the Standard Webhooks `webhook-id` header, the
 * delivery's key and the worker's idempotency key, so one id is at most one successful POST.
 */
export const webhookIdSchema = z
  .string()
  .check(z.regex(/^msg_[A-Za-z0-9_-]{24}$/, 'Must be a webhook id (msg_…)'));

/**
 * How many levels of objects and arrays a payload's `data` may nest, itself the first: DynamoDB's own
 * limit, so nothing the sample's producers read back from a table is refused. JSON.parse takes any depth,
 * but JSON.stringify recurses and overflows the stack at some thousands of levels, which would fail every
 * attempt to serialise the payload for its POST.
 */
export const maxPayloadDepth = 32;

/** Whether `value` nests objects and arrays more than `maxDepth` levels; a loop, so any depth is measured. */
function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.value === null || typeof next.value !== 'object') continue;
    if (next.depth > maxDepth) return true;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

/** What the receiver gets, as Standard Webhooks recommends: `{ type, timestamp, data }`. */
const payloadSchema = z.strictObject({
  type: webhookEventTypeSchema,
  timestamp: z.iso.datetime(),
  data: z.record(z.string(), z.unknown()).check(
    z.refine((data) => !nestsDeeperThan(data, maxPayloadDepth), {
      message: `Must nest at most ${maxPayloadDepth} levels of objects and arrays`,
    }),
  ),
});

/**
 * How far ahead of the worker's clock a message's `createdAt` may be: the producers' clocks may run a
 * little ahead (5 minutes, the window signed service requests get by default). A date far in the future
 * would sort its delivery first in the endpoint's history for good and keep it past every retention.
 */
export const maxCreatedAheadMs = 5 * 60_000;

export const webhookMessageSchema = z
  .strictObject({
    id: webhookIdSchema,
    endpointId: idSchema,
    tenantId: idSchema,
    eventType: webhookEventTypeSchema,
    /** When the message was made; orders the endpoint's delivery history. */
    createdAt: z.iso.datetime().check(
      z.refine((createdAt) => Date.parse(createdAt) <= Date.now() + maxCreatedAheadMs, {
        message: `Must be at most ${maxCreatedAheadMs / 60_000} minutes in the future`,
      }),
    ),
    payload: payloadSchema,
  })
  .check(
    z.refine((message) => message.payload.type === message.eventType, {
      path: ['payload', 'type'],
      message: 'Must equal eventType',
    }),
  );

export type WebhookMessage = z.infer<typeof webhookMessageSchema>;
export type WebhookPayload = WebhookMessage['payload'];

/**
 * What an event is about, under the name the bookings and users functions' lines give it: `bookingId` for a
 * booking's events, `userId` for a user's. A `Record`, so a new event type must name its own.
 */
const subjectKeyOfEvent: Readonly<Record<WebhookEventType, 'bookingId' | 'userId'>> = {
  'booking.created': 'bookingId',
  'booking.cancelled': 'bookingId',
  'user.registered': 'userId',
};

/** The id of what a message's event is about (its payload's `data.id`), named as {@link subjectKeyOfEvent} says. */
export type EventSubject = { readonly bookingId: string } | { readonly userId: string };

/**
 * The message's {@link EventSubject}, or undefined when its payload's `data.id` is not a string (the fan-out
 * always writes one; a message made by hand may not). The webhook id is a hash and the endpoint id is the
 * receiver's: this is the id an engineer is given ("booking X's webhook never arrived").
 */
export function eventSubjectOf(message: WebhookMessage): EventSubject | undefined {
  const { id } = message.payload.data;
  if (typeof id !== 'string') return undefined;
  return subjectKeyOfEvent[message.eventType] === 'bookingId' ? { bookingId: id } : { userId: id };
}
