// The email queue's message schema: one zod schema per message type, validated by the worker before anything is sent.
import { z } from 'zod';

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

/** Why a body is not a valid email message: a short reason for the log and the DLQ, or undefined when valid. */
export function parseEmailMessage(
  body: string,
): { ok: true; message: EmailMessage } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'Body is not JSON' };
  }
  const result = emailMessageSchema.safeParse(json);
  if (result.success) return { ok: true, message: result.data };
  // Paths and messages only: values may be personal data.
  const reason = result.error.issues
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, reason: `Invalid message: ${reason}` };
}
