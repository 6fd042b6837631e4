// Parsing a queue message body against its schema: a typed message, or a short reason fit for logs and the DLQ.
import type * as z from './zod.js';

export type ParsedMessage<T> = { ok: true; message: T } | { ok: false; reason: string };

type Parsed<T> =
  | { success: true; data: T }
  | { success: false; error: { issues: readonly z.core.$ZodIssue[] } };

function readJson(body: string): { ok: true; json: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, json: JSON.parse(body) };
  } catch {
    return { ok: false, reason: 'Body is not JSON' };
  }
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code !== 'unrecognized_keys') return issue.message;
  const count = issue.keys.length;
  return `${count} unknown ${count === 1 ? 'field' : 'fields'}`;
}

function toMessage<T>(result: Parsed<T>): ParsedMessage<T> {
  if (result.success) return { ok: true, message: result.data };
  // Paths and messages only: values may be personal data, and so may keys a producer made up (a map
  // keyed by address), which zod's own message for unknown keys quotes: those are only counted.
  const reason = result.error.issues
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issueMessage(issue)}`)
    .join('; ');
  return { ok: false, reason: `Invalid message: ${reason}` };
}

/** Parses a JSON body against a schema, or gives a short reason for the log and the DLQ. */
export function parseMessageBody<S extends z.ZodMiniType>(
  schema: S,
  body: string,
): ParsedMessage<z.output<S>> {
  const read = readJson(body);
  return read.ok ? toMessage(schema.safeParse(read.json)) : read;
}

/** {@link parseMessageBody} for a schema with asynchronous checks (a phone number's plan, loaded on first use). */
export async function parseMessageBodyAsync<S extends z.ZodMiniType>(
  schema: S,
  body: string,
): Promise<ParsedMessage<z.output<S>>> {
  const read = readJson(body);
  return read.ok ? toMessage(await schema.safeParseAsync(read.json)) : read;
}
