// Summaries of an HTTP API request and its answer for the audit record: sizes, types and, when enabled, redacted bodies.
import type { ApiGatewayEvent } from '../http/request-event.js';
import { escapedForLog, truncated } from '../text.js';
import { headerValue } from './correlation.js';
import type { Redactor } from './redact.js';

export interface BodyCapture {
  /** Cut the captured body (after redaction) to this many characters. */
  readonly maxLength: number;
  /** Bodies up to this many bytes are parsed (JSON, form) so keys can be redacted; larger ones are left out. */
  readonly parseLimitBytes: number;
  readonly redactor: Redactor;
}

export interface MessageSummary {
  readonly bytes: number;
  readonly contentType?: string | undefined;
  /** Redacted and cut; present only when body capture is enabled. */
  readonly body?: string | undefined;
}

/** API Gateway passes these as text and base64-encodes everything else. */
const textContentType =
  /^(text\/|application\/(?:[\w.+-]+\+)?(?:json|xml|javascript|x-www-form-urlencoded))/i;
const jsonContentType = /^application\/(?:[\w.+-]+\+)?json/i;
const formContentType = /^application\/x-www-form-urlencoded/i;
const xmlContentType = /^(?:text|application)\/(?:[\w.+-]+\+)?xml/i;

/** Size in bytes of a body as API Gateway delivers it, without decoding base64. */
export function bodyBytes(body: unknown, isBase64Encoded: boolean | undefined): number {
  if (typeof body !== 'string' || body.length === 0) return 0;
  if (!isBase64Encoded) return Buffer.byteLength(body, 'utf8');
  const padding = body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0;
  return Math.max(0, Math.floor((body.length * 3) / 4) - padding);
}

/**
 * The body as it may appear in a log line: binary and markup (XML) bodies as their size only, JSON and
 * form bodies parsed and redacted by key (their size only when too large or malformed to parse), other
 * text redacted by pattern; always cut to `maxLength`.
 */
export function captureBody(
  body: unknown,
  isBase64Encoded: boolean | undefined,
  contentType: string | undefined,
  capture: BodyCapture,
): string | undefined {
  if (typeof body !== 'string' || body.length === 0) return undefined;
  const bytes = bodyBytes(body, isBase64Encoded);
  const type = contentType ?? '';
  if (isBase64Encoded && !textContentType.test(type)) return `[binary ${bytes} bytes]`;
  // Decoding a huge base64 body only to cut it would be wasted work: decode just the head.
  const headChars = Math.ceil((capture.parseLimitBytes * 4) / 3) + 4;
  const text = isBase64Encoded ? Buffer.from(body.slice(0, headChars), 'base64').toString('utf8') : body;
  const { redactor } = capture;
  const isForm = formContentType.test(type);
  const isJson = !isForm && (jsonContentType.test(type) || /^\s*[[{]/.test(text));
  // Markup (XML, SOAP, HTML) keeps secrets in elements and attributes (`<password>…</password>`) that
  // neither key redaction nor the free-text patterns see, so it is never shown.
  if (!isForm && !isJson && (xmlContentType.test(type) || /^\s*</.test(text))) {
    return `[body ${bytes} bytes, not captured: markup cannot be redacted by key]`;
  }
  if (bytes <= capture.parseLimitBytes) {
    if (isForm) {
      const fields = Object.fromEntries(new URLSearchParams(text));
      return truncated(JSON.stringify(redactor.redact(fields)), capture.maxLength);
    }
    if (isJson) {
      try {
        return truncated(JSON.stringify(redactor.redact(JSON.parse(text))), capture.maxLength);
      } catch {
        // Not JSON after all: not captured, below.
      }
    }
  }
  // A structured body is safe to show only redacted by key: the patterns cannot tell where a secret
  // object or list under a sensitive key ends, so one too large to parse (or malformed) is left out.
  if (isForm || isJson) return `[body ${bytes} bytes, not captured: too large or malformed to redact by key]`;
  // Cut first so the pattern pass is bounded; the patterns still catch a credential cut short.
  return truncated(redactor.redactString(truncated(text, capture.maxLength)), capture.maxLength + 40);
}

/** The request half of an audit record. */
export function summarizeRequest(event: ApiGatewayEvent, capture: BodyCapture | undefined): MessageSummary {
  const contentType = headerValue(event.headers, 'content-type');
  const body = capture ? captureBody(event.body, event.isBase64Encoded, contentType, capture) : undefined;
  return {
    bytes: bodyBytes(event.body, event.isBase64Encoded),
    // The client's header, free text like the User-Agent.
    ...(contentType === undefined ? {} : { contentType: truncated(escapedForLog(contentType), 200) }),
    ...(body === undefined ? {} : { body }),
  };
}

/** A handler's result as API Gateway reads it: structured, or inferred as a 200 JSON body. */
interface NormalizedResponse {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string | number | boolean>>;
  readonly body: unknown;
  readonly isBase64Encoded: boolean;
}

export function normalizeResponse(response: unknown): NormalizedResponse | undefined {
  if (response === undefined || response === null) return undefined;
  if (typeof response === 'object' && 'statusCode' in response) {
    const structured = response as {
      statusCode?: unknown;
      headers?: Record<string, string | number | boolean> | undefined;
      body?: unknown;
      isBase64Encoded?: boolean | undefined;
    };
    return {
      statusCode: typeof structured.statusCode === 'number' ? structured.statusCode : 200,
      headers: structured.headers ?? {},
      body: structured.body,
      isBase64Encoded: structured.isBase64Encoded === true,
    };
  }
  let body: string | undefined;
  try {
    body = typeof response === 'string' ? response : JSON.stringify(response);
  } catch {
    // A result JSON cannot serialise (circular) fails later in Lambda itself; the audit just omits it.
    body = undefined;
  }
  return { statusCode: 200, headers: { 'Content-Type': 'application/json' }, body, isBase64Encoded: false };
}

/** An answer as the audit record summarizes it. */
export interface ResponseSummary extends MessageSummary {
  /** The answer's `Location`: where a create's new resource is, so its id is found from the request's line. */
  readonly location?: string | undefined;
}

/** What the audit record makes of an answer: its summary, and whether it was a replay. */
export interface AnswerSummary {
  readonly response: ResponseSummary;
  /** It carries `Idempotent-Replayed: true`: a stored answer (or a create's first one) given again. */
  readonly replayed: boolean;
}

/** The answer's headers the audit record reads, in one pass over them whatever their case. */
function auditedHeadersOf(headers: NormalizedResponse['headers']) {
  let contentType: string | undefined;
  let location: string | undefined;
  let replayed = false;
  for (const name in headers) {
    const lowerCase = name.toLowerCase();
    if (lowerCase === 'content-type') contentType ??= String(headers[name]);
    else if (lowerCase === 'location') location ??= String(headers[name]);
    else if (lowerCase === 'idempotent-replayed') replayed ||= String(headers[name]) === 'true';
  }
  return { contentType, location, replayed };
}

/** The response half of an audit record. */
export function summarizeResponse(
  response: NormalizedResponse | undefined,
  capture: BodyCapture | undefined,
): AnswerSummary {
  if (!response) return { response: { bytes: 0 }, replayed: false };
  const { contentType, location, replayed } = auditedHeadersOf(response.headers);
  const body = capture
    ? captureBody(response.body, response.isBase64Encoded, contentType, capture)
    : undefined;
  return {
    response: {
      bytes: bodyBytes(response.body, response.isBase64Encoded),
      ...(contentType === undefined ? {} : { contentType: truncated(contentType, 200) }),
      ...(location === undefined ? {} : { location: truncated(location, 200) }),
      ...(body === undefined ? {} : { body }),
    },
    replayed,
  };
}

/** The status of an error that escaped every error handler: its own HTTP status, else 500. */
export function statusOfError(error: unknown): number {
  const status = (error as { statusCode?: unknown } | null | undefined)?.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599
    ? status
    : 500;
}
