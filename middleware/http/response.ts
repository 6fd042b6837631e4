// Small builders for API Gateway HTTP API (v2) results.
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { normalizeResponse } from '../audit/request-summary.js';

/** A header field name as RFC 9110 §5.1 allows it (a token); `Headers` throws a TypeError for any other. */
const headerNamePattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether `value` can name a header; check a configured header name with it once, at construction. */
export function isHeaderName(value: unknown): value is string {
  return typeof value === 'string' && headerNamePattern.test(value);
}

export type HttpResult = APIGatewayProxyStructuredResultV2 & { statusCode: number };

/**
 * What {@link json} returns: its body and headers are always there, so a REST API (v1) handler can return it as
 * the `APIGatewayProxyResult` it declares (whose `body` is required), and an HTTP API one as before.
 */
export type JsonResult = HttpResult & { body: string; headers: Record<string, string> };

/** A result a REST API (v1) reads too: it takes repeated headers, such as Set-Cookie, from `multiValueHeaders`. */
type RestApiCompatibleResult = APIGatewayProxyStructuredResultV2 & {
  multiValueHeaders?: Record<string, (string | number | boolean)[]> | undefined;
};

/** `headers` with `replacements` set: a replaced name goes in any spelling, as HTTP compares names (RFC 9110 §5.1). */
export function replaceHeaders<Value>(
  headers: Readonly<Record<string, Value>>,
  replacements: Readonly<Record<string, string>>,
): Record<string, Value | string> {
  const names = new Set(Object.keys(replacements).map((name) => name.toLowerCase()));
  return { ...withoutNames(headers, names), ...replacements };
}

/** A JSON response; `body` is serialised once here, and a `Content-Type` among `headers`, in any case, gives way. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): JsonResult {
  return {
    statusCode,
    headers: replaceHeaders(headers, { 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  };
}

/** A response with no body (204, or 202 without payload). */
export function noContent(statusCode = 204, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers };
}

/** What a middleware adds to an answer on its way out. */
export interface ResponseAdditions {
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly cookies?: readonly string[] | undefined;
  /**
   * Where the cookies go: v2's `cookies`, or one `Set-Cookie` each in `multiValueHeaders`, which is where a
   * REST API (v1) reads them (it ignores `cookies`). @default 'cookies'
   */
  readonly cookiesAs?: 'cookies' | 'set-cookie-headers' | undefined;
}

/**
 * A copy of a handler's result with headers and cookies added. The handler's object may be shared
 * (module scope), so it is never changed; a plain result becomes the structured answer API Gateway
 * infers from it (200, JSON); no result stays none. Header names are compared whatever their case (RFC
 * 9110 §5.1): an added header replaces the result's of that name in any spelling, in `headers` and
 * `multiValueHeaders` alike, and is sent as the addition spells it; cookies sent as `Set-Cookie` headers
 * join the result's under one `Set-Cookie` in `multiValueHeaders`, a Set-Cookie in `headers` moving there too.
 */
export function withHeadersAndCookies(response: unknown, additions: ResponseAdditions): unknown {
  const normalized = normalizeResponse(response);
  if (!normalized) return response;
  const structured =
    typeof response === 'object' && response !== null && 'statusCode' in response
      ? (response as RestApiCompatibleResult)
      : ({
          statusCode: normalized.statusCode,
          headers: { ...normalized.headers },
          body: normalized.body,
        } as RestApiCompatibleResult);
  const withHeaders = additions.headers ? withHeadersReplaced(structured, additions.headers) : structured;
  return {
    ...withHeaders,
    ...(additions.cookies ? cookieFields(withHeaders, additions.cookies, additions.cookiesAs) : {}),
  };
}

/** `fields` without the names of `names`, in any case. */
function withoutNames<T>(fields: Record<string, T>, names: ReadonlySet<string>): Record<string, T> {
  return Object.fromEntries(Object.entries(fields).filter(([name]) => !names.has(name.toLowerCase())));
}

/**
 * API Gateway sends a name spelt two ways twice, and a REST API (v1) sends `multiValueHeaders` beside
 * `headers`: a result's `X-Correlation-Id` would go out beside the toolkit's `x-correlation-id`.
 */
function withHeadersReplaced(
  structured: RestApiCompatibleResult,
  headers: Readonly<Record<string, string>>,
): RestApiCompatibleResult {
  const names = new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  const { multiValueHeaders } = structured;
  return {
    ...structured,
    headers: replaceHeaders(structured.headers ?? {}, headers),
    ...(multiValueHeaders ? { multiValueHeaders: withoutNames(multiValueHeaders, names) } : {}),
  };
}

/**
 * A REST API (v1) merges `headers` into `multiValueHeaders` and, for a name in both, sends only the
 * `multiValueHeaders` values: a Set-Cookie the handler put in `headers` would be lost beside the ones added
 * here, so it moves into the one list, ahead of them.
 */
function cookieFields(
  structured: RestApiCompatibleResult,
  cookies: readonly string[],
  cookiesAs: ResponseAdditions['cookiesAs'],
): Partial<RestApiCompatibleResult> {
  if (cookiesAs !== 'set-cookie-headers') return { cookies: [...(structured.cookies ?? []), ...cookies] };
  const setCookie = new Set(['set-cookie']);
  const headers = structured.headers ?? {};
  const multiValueHeaders = structured.multiValueHeaders ?? {};
  const inHeaders = Object.entries(headers).filter(([name]) => name.toLowerCase() === 'set-cookie');
  const fromMultiValueHeaders = Object.entries(multiValueHeaders).flatMap(([name, values]) =>
    name.toLowerCase() === 'set-cookie' ? values : [],
  );
  // A result that mirrors its headers in both maps would otherwise send that cookie twice.
  const fromHeaders = inHeaders
    .map(([, value]) => value)
    .filter((value) => !fromMultiValueHeaders.includes(value));
  return {
    ...(inHeaders.length > 0 ? { headers: withoutNames(headers, setCookie) } : {}),
    multiValueHeaders: {
      ...withoutNames(multiValueHeaders, setCookie),
      'Set-Cookie': [...fromHeaders, ...fromMultiValueHeaders, ...cookies],
    },
  };
}
