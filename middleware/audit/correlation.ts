// Correlation ids: accept a caller's `x-correlation-id` (or make one) and carry it into service calls and queue messages.
import { randomUUID } from 'node:crypto';

/** The header (and SQS message attribute) that carries the correlation id. */
export const correlationIdHeader = 'x-correlation-id';

/**
 * What a caller may send: 1–128 visible characters from a conservative set. Anything else (CR/LF,
 * spaces, quotes, control or non-ASCII characters) is replaced by a fresh id, so a correlation id
 * can never inject a header or break a log line. The first character is a letter, a digit or `_`, as
 * base64url and nanoid ids may start: not `-`, `+`, `=` or `@`, which would make the id a formula in a
 * spreadsheet a log export is opened in, or an option on a command line.
 */
const acceptedCorrelationId = /^[A-Za-z0-9_][A-Za-z0-9_.:/+=@-]{0,127}$/;

/**
 * Whether a value may be used as a correlation id as it is (the rule above): what `correlationIds()`
 * accepts from a caller, and what a service call, a queue message or a worker passes on.
 */
export function isValidCorrelationId(value: unknown): value is string {
  return typeof value === 'string' && acceptedCorrelationId.test(value);
}

/** Where the id came from: the caller's header, or generated because there was none or it was unusable. */
export type CorrelationIdSource = 'header' | 'generated' | 'replaced';

export interface ResolvedCorrelationId {
  readonly correlationId: string;
  readonly source: CorrelationIdSource;
}

/** Reads a header case-insensitively (API Gateway v2 lower-cases names; direct invocations may not). */
export function headerValue(
  headers: Readonly<Record<string, string | undefined>> | null | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined;
  const exact = headers[name];
  if (exact !== undefined) return exact;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

/**
 * The request's correlation id: the caller's `x-correlation-id` when it is acceptable, a new UUID otherwise.
 *
 * @example
 * resolveCorrelationId({ 'x-correlation-id': 'order-42' }); // { correlationId: 'order-42', source: 'header' }
 */
export function resolveCorrelationId(
  headers: Readonly<Record<string, string | undefined>> | null | undefined,
  generate: () => string = randomUUID,
): ResolvedCorrelationId {
  const given = headerValue(headers, correlationIdHeader);
  if (isValidCorrelationId(given)) return { correlationId: given, source: 'header' };
  return { correlationId: generate(), source: given === undefined ? 'generated' : 'replaced' };
}

/**
 * Headers that pass the correlation id on to another service (merge them into a service call).
 *
 * @example
 * await callService('users', url, { headers: { ...correlationHeaders(context.correlationId) } });
 */
export function correlationHeaders(correlationId: string | undefined): Record<string, string> {
  return isValidCorrelationId(correlationId) ? { [correlationIdHeader]: correlationId } : {};
}

/** An SQS `MessageAttributeValue` as SendMessage takes it. */
export interface StringMessageAttribute {
  readonly DataType: 'String';
  readonly StringValue: string;
}

/**
 * SQS message attributes that carry the correlation id into a queue message; the worker reads it
 * back with {@link correlationIdFromMessage}.
 *
 * @example
 * await sqs.send(new SendMessageCommand({
 *   QueueUrl, MessageBody,
 *   MessageAttributes: { ...correlationMessageAttributes(context.correlationId) },
 * }));
 */
export function correlationMessageAttributes(
  correlationId: string | undefined,
): Record<string, StringMessageAttribute> {
  return isValidCorrelationId(correlationId)
    ? { [correlationIdHeader]: { DataType: 'String', StringValue: correlationId } }
    : {};
}

/** The slice of an SQS event record (Lambda event source mapping) that carries message attributes. */
export interface MessageWithAttributes {
  readonly messageAttributes?:
    | Readonly<Record<string, { readonly stringValue?: string | undefined }>>
    | undefined;
}

/**
 * The correlation id of a queue message, when it carries an acceptable one. A batch's records may be
 * processed in parallel, so name it on each line about the record rather than on the shared logger.
 *
 * @example
 * const correlationId = correlationIdFromMessage(record) ?? record.messageId;
 * logger.info('Email sent', { correlation_id: correlationId, messageId });
 */
export function correlationIdFromMessage(record: MessageWithAttributes): string | undefined {
  const value = record.messageAttributes?.[correlationIdHeader]?.stringValue;
  return isValidCorrelationId(value) ? value : undefined;
}
