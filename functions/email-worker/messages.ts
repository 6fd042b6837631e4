// The email queue's message schema: one zod schema per message type (emails and SMS), validated by the worker before anything is sent.
import { hasCharacterViewersActOn } from '../../middleware/text.js';
import { phoneSchema } from '../shared/phone.js';
import { type ParsedMessage, parseMessageBody, parseMessageBodyAsync } from '../shared/queue-messages.js';
import { emailAddressSchema } from '../shared/schemas.js';
import * as z from '../shared/zod.js';

/**
 * Text a template puts into an email, the subject included: no control character (a CR or LF in a
 * security alert's `event` reached SES's subject untouched), no line or paragraph separator and no bidi
 * control (any of Unicode's Bidi_Control, the marks LRM, RLM and ALM too: they reorder what the reader sees). The users function's stricter name rules are not
 * repeated here: users registered under earlier, looser ones must still get their emails.
 */
const withoutControls = () =>
  z.refine<string>(
    (text) => !hasCharacterViewersActOn(text),
    'Must not contain control, line separator or bidi characters',
  );

/**
 * A lone surrogate (JSON's `"\ud800"`) is no character: what a provider makes of it (U+FFFD, or a refusal
 * that sends the message to the DLQ) is not the sample's to guess.
 */
const wellFormed = () =>
  z.refine<string>((text) => text.isWellFormed(), 'Must not contain a lone surrogate (ill-formed UTF-16)');

const name = z.string().check(z.trim(), z.minLength(1), z.maxLength(100), withoutControls(), wellFormed());

/**
 * Hosts a link may reach over plain http: the local runtime's links are http://127.0.0.1:<port>, and a
 * loopback address never leaves the machine. (`URL` writes an IPv6 host in brackets.)
 */
const loopbackHostnames: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

const linkUrlError = 'Must be an absolute https URL, or http to localhost, 127.0.0.1 or ::1';

function isHttpsOrLoopback(link: string): boolean {
  const { protocol, hostname } = new URL(link);
  return protocol === 'https:' || loopbackHostnames.has(hostname);
}

/**
 * A link the email carries: https, so a signed link never crosses the network in clear text when
 * APP_BASE_URL is mis-set to http; plain http only to a loopback host; never another scheme, so a queued
 * `javascript:` URL never becomes a link. A URL that does not parse stops at the first check.
 */
const linkUrl = () =>
  z
    .url({ protocol: /^https?$/, error: linkUrlError, abort: true })
    .check(z.refine(isHttpsOrLoopback, linkUrlError));

/**
 * The user a message is about (the users function's id), for the worker to check that they still exist
 * before sending: a user deleted since the message was queued gets nothing. Optional, so a message
 * queued before producers set it, or one about no user, is sent as before.
 */
const aboutUser = { userId: z.optional(z.uuid()) };

/** Fields every email message carries. `id` is the producer's idempotency key: one id, at most one email. */
const envelope = {
  id: z.uuid(),
  to: emailAddressSchema,
  ...aboutUser,
};

/** One schema per email type, shared by the email-only and the whole-queue unions. */
const emailMessageVariants = [
  z.strictObject({ ...envelope, type: z.literal('welcome'), data: z.strictObject({ name }) }),
  z.strictObject({
    ...envelope,
    type: z.literal('verification'),
    data: z.strictObject({
      name,
      verificationUrl: linkUrl(),
      expiresAt: z.iso.datetime(),
      /**
       * When the registration lapses unless the address is confirmed first (the user's `expiresAt`).
       * Optional: messages queued before it existed, and users registered before registrations lapsed,
       * have none.
       */
      registrationLapsesAt: z.optional(z.iso.datetime()),
    }),
  }),
  z.strictObject({
    ...envelope,
    type: z.literal('password-reset'),
    data: z.strictObject({
      name,
      resetUrl: linkUrl(),
      expiresInMinutes: z.number().check(z.int(), z.minimum(1), z.maximum(24 * 60)),
    }),
  }),
  z.strictObject({
    ...envelope,
    type: z.literal('security-alert'),
    data: z.strictObject({
      name,
      event: z.string().check(z.minLength(1), z.maxLength(200), withoutControls(), wellFormed()),
      occurredAt: z.iso.datetime(),
      details: z.string().check(z.maxLength(2000), withoutControls(), wellFormed()),
    }),
  }),
] as const;

export const emailMessageSchema = z.discriminatedUnion('type', emailMessageVariants);

export type EmailMessage = z.infer<typeof emailMessageSchema>;
export type EmailMessageType = EmailMessage['type'];

export const emailMessageTypes = ['welcome', 'verification', 'password-reset', 'security-alert'] as const;

/** How far ahead an SMS code's `expiresAt` may be: the hour `expiresInMinutes` was always held to. */
const maxSmsCodeLifetimeMs = 60 * 60_000;

function isWithinSmsCodeLifetime(iso: string): boolean {
  return Date.parse(iso) - Date.now() <= maxSmsCodeLifetimeMs;
}

/**
 * An SMS (seed 003), sent through the same queue, retries, breaker and idempotency as the emails. Its
 * text is the `template` rendered with `data` (text-only handlebars, templates/<template>.txt.hbs).
 * `to` must be a number in E.164 form of a length its country allows: the users function checked it
 * against the full number plan at registration, so the smaller metadata set is enough here.
 */
export const smsMessageSchema = z.strictObject({
  id: z.uuid(),
  type: z.literal('sms'),
  to: phoneSchema('possible'),
  ...aboutUser,
  template: z.literal('sms-verification'),
  data: z
    .strictObject({
      code: z.string().check(z.regex(/^\d{6}$/, 'Must be 6 digits')),
      /**
       * When the code expires (ISO, at most an hour ahead): the worker counts the minutes left when it
       * sends, so a message sent late says how long the code still works, and drops one whose code expired.
       */
      expiresAt: z.optional(
        z.iso.datetime().check(z.refine(isWithinSmsCodeLifetime, 'Must be at most 60 minutes ahead')),
      ),
      /**
       * The minutes left when the message was queued, by producers from before `expiresAt`: such a
       * message is still sent with this number, however late.
       */
      expiresInMinutes: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(60))),
    })
    .check(
      z.refine(
        (data) => (data.expiresAt === undefined) !== (data.expiresInMinutes === undefined),
        'Must have expiresAt, or expiresInMinutes in a message queued before expiresAt existed, not both',
      ),
    ),
});

export type SmsMessage = z.infer<typeof smsMessageSchema>;

/**
 * Whether an SMS code's message comes too late: its code has expired, so it must not go out. A message
 * queued before `expiresAt` existed carries no instant, and never is.
 */
export function smsCodeExpired(message: SmsMessage, nowMs: number): boolean {
  return message.data.expiresAt !== undefined && Date.parse(message.data.expiresAt) <= nowMs;
}

/**
 * The minutes an SMS code has left at `nowMs`, rounded, at least 1 (what its text says); for a message
 * queued before `expiresAt` existed, the minutes it was queued with.
 */
export function smsCodeMinutesLeft(message: SmsMessage, nowMs: number): number {
  const { expiresAt, expiresInMinutes } = message.data;
  // The schema lets a message carry exactly one of the two.
  if (expiresAt === undefined) return expiresInMinutes as number;
  return Math.max(1, Math.round((Date.parse(expiresAt) - nowMs) / 60_000));
}
export type SmsTemplateName = SmsMessage['template'];
export const smsTemplateNames = ['sms-verification'] as const satisfies readonly SmsTemplateName[];

/** Everything the email queue carries: the four email types and `sms`. */
export const queueMessageSchema = z.discriminatedUnion('type', [...emailMessageVariants, smsMessageSchema]);

export type QueueMessage = z.infer<typeof queueMessageSchema>;

/** An email message, or a short reason (for the log and the DLQ) why the body is not one. */
export function parseEmailMessage(body: string): ParsedMessage<EmailMessage> {
  return parseMessageBody(emailMessageSchema, body);
}

/** Any message of the email queue (email or SMS), or a short reason why the body is not one. */
export function parseQueueMessage(body: string): Promise<ParsedMessage<QueueMessage>> {
  return parseMessageBodyAsync(queueMessageSchema, body);
}
