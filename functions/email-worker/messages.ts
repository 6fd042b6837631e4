// The email queue's message schema: one zod schema per message type (emails and SMS), validated by the worker before anything is sent.
import * as z from 'zod';
import { phoneSchema } from '../shared/phone.js';
import { type ParsedMessage, parseMessageBody } from '../shared/queue-messages.js';

const name = z.string().trim().min(1).max(100);

/** Fields every email message carries. `id` is the producer's idempotency key: one id, at most one email. */
const envelope = {
  id: z.uuid(),
  to: z.email().max(254),
};

export const emailMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...envelope, type: z.literal('welcome'), data: z.strictObject({ name }) }),
  z.strictObject({
    ...envelope,
    type: z.literal('verification'),
    data: z.strictObject({ name, verificationUrl: z.url(), expiresAt: z.iso.datetime() }),
  }),
  z.strictObject({
    ...envelope,
    type: z.literal('password-reset'),
    data: z.strictObject({
      name,
      resetUrl: z.url(),
      expiresInMinutes: z
        .number()
        .int()
        .min(1)
        .max(24 * 60),
    }),
  }),
  z.strictObject({
    ...envelope,
    type: z.literal('security-alert'),
    data: z.strictObject({
      name,
      event: z.string().min(1).max(200),
      occurredAt: z.iso.datetime(),
      details: z.string().max(2000),
    }),
  }),
]);

export type EmailMessage = z.infer<typeof emailMessageSchema>;
export type EmailMessageType = EmailMessage['type'];

export const emailMessageTypes = ['welcome', 'verification', 'password-reset', 'security-alert'] as const;

/**
 * An SMS (seed 003), sent through the same queue, retries, breaker and idempotency as the emails. Its
 * text is the `template` rendered with `data` (text-only handlebars, templates/<template>.txt.hbs).
 * `to` must be a valid number in E.164 form.
 */
export const smsMessageSchema = z.strictObject({
  id: z.uuid(),
  type: z.literal('sms'),
  to: phoneSchema,
  template: z.literal('sms-verification'),
  data: z.strictObject({
    code: z.string().regex(/^\d{6}$/, 'Must be 6 digits'),
    expiresInMinutes: z.number().int().min(1).max(60),
  }),
});

export type SmsMessage = z.infer<typeof smsMessageSchema>;
export type SmsTemplateName = SmsMessage['template'];
export const smsTemplateNames = ['sms-verification'] as const satisfies readonly SmsTemplateName[];

/** Everything the email queue carries: the four email types and `sms`. */
export const queueMessageSchema = z.discriminatedUnion('type', [
  ...emailMessageSchema.options,
  smsMessageSchema,
]);

export type QueueMessage = z.infer<typeof queueMessageSchema>;

/** An email message, or a short reason (for the log and the DLQ) why the body is not one. */
export function parseEmailMessage(body: string): ParsedMessage<EmailMessage> {
  return parseMessageBody(emailMessageSchema, body);
}

/** Any message of the email queue (email or SMS), or a short reason why the body is not one. */
export function parseQueueMessage(body: string): ParsedMessage<QueueMessage> {
  return parseMessageBody(queueMessageSchema, body);
}
