// Parsing a queue message body against its schema: a typed message, or a short reason fit for logs and the DLQ.
import type * as z from './zod.js';

export type ParsedMessage<T> = { ok: true; message: T } | { ok: false; reason: string };

/** Parses a JSON body against a schema, or gives a short reason for the log and the DLQ. */
export function parseMessageBody<S extends z.ZodMiniType>(
  schema: S,
  body: string,
): ParsedMessage<z.output<S>> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'Body is not JSON' };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, message: result.data };
  // Paths and messages only: values may be personal data.
  const reason = result.error.issues
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, reason: `Invalid message: ${reason}` };
}
