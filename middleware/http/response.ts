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

/** A result a REST API (v1) reads too: it takes repeated headers, such as Set-Cookie, from `multiValueHeaders`. */
type RestApiCompatibleResult = APIGatewayProxyStructuredResultV2 & {
  multiValueHeaders?: Record<string, (string | number | boolean)[]>;
};

/** A JSON response; `body` is serialised once here. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  };
}

/** A response with no body (204, or 202 without payload). */
export function noContent(statusCode = 204, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers };
}

/** What a middleware adds to an answer on its way out. */
export interface ResponseAdditions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly cookies?: readonly string[];
  /**
   * Where the cookies go: v2's `cookies`, or one `Set-Cookie` each in `multiValueHeaders`, which is where a
   * REST API (v1) reads them (it ignores `cookies`). @default 'cookies'
   */
  readonly cookiesAs?: 'cookies' | 'set-cookie-headers';
}

/**
 * A copy of a handler's result with headers and cookies added. The handler's object may be shared
 * (module scope), so it is never changed; a plain result becomes the structured answer API Gateway
 * infers from it (200, JSON); no result stays none.
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
  return {
    ...structured,
    ...(additions.headers ? { headers: { ...structured.headers, ...additions.headers } } : {}),
    ...(additions.cookies ? cookieFields(structured, additions.cookies, additions.cookiesAs) : {}),
  };
}

function cookieFields(
  structured: RestApiCompatibleResult,
  cookies: readonly string[],
  cookiesAs: ResponseAdditions['cookiesAs'],
): Partial<RestApiCompatibleResult> {
  if (cookiesAs !== 'set-cookie-headers') return { cookies: [...(structured.cookies ?? []), ...cookies] };
  const multiValueHeaders = structured.multiValueHeaders ?? {};
  const existing = multiValueHeaders['Set-Cookie'] ?? [];
  return { multiValueHeaders: { ...multiValueHeaders, 'Set-Cookie': [...existing, ...cookies] } };
}
