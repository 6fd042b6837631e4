// Webhook ids: random ones for endpoints and messages, and the message ids derived from an event's id.
import { createHash, randomBytes } from 'node:crypto';

/** How many bytes a webhook id's 24 base64url characters hold. */
export const webhookIdBytes = 18;

/** A random id with a prefix: `ep_…` for endpoints, `msg_…` for webhook messages (24 base64url characters). */
export function newWebhookId(prefix: 'ep' | 'msg'): string {
  return `${prefix}_${randomBytes(webhookIdBytes).toString('base64url')}`;
}

/**
 * The webhook id of an event's message to one endpoint, in the form of a random one, from a hash of the
 * event's id (a fan-out `WebhookEvent`'s `id`) and the endpoint's: the event published again gets the
 * same id at each endpoint. The endpoint is in the hash because the worker POSTs each webhook id once,
 * whichever endpoint it is for.
 */
export function webhookIdFor(eventId: string, endpointId: string): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(['webhook-message', eventId, endpointId]))
    .digest();
  return `msg_${digest.subarray(0, webhookIdBytes).toString('base64url')}`;
}
