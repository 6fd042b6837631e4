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

/** What the receiver gets, as Standard Webhooks recommends: `{ type, timestamp, data }`. */
const payloadSchema = z.strictObject({
  type: webhookEventTypeSchema,
  timestamp: z.iso.datetime(),
  data: z.record(z.string(), z.unknown()),
});

export const webhookMessageSchema = z
  .strictObject({
    id: webhookIdSchema,
    endpointId: idSchema,
    tenantId: idSchema,
    eventType: webhookEventTypeSchema,
    /** When the message was made; orders the endpoint's delivery history. */
    createdAt: z.iso.datetime(),
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
