// Small builders for API Gateway HTTP API (v2) results.
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export type HttpResult = APIGatewayProxyStructuredResultV2 & { statusCode: number };

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
