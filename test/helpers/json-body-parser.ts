// What @middy/http-json-body-parser leaves on a JSON request's event, by major version, for the tests of
// Bulwark's middlewares .use()d after it (Middy's documented order). The versions differ, for Bulwark, only
// in `rawBody`: v3 and earlier keep the body as sent there, Middy removed it in 4.0.0.
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

const jsonMediaType = /^application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * `event` as `@middy/http-json-body-parser` at `version` (4: 4.0.0 and later) leaves it: for a JSON request,
 * `body` replaced by the parsed value, decoded from base64 first when `isBase64Encoded`; version 3 also
 * sets `rawBody` to the body as it came, still base64 then. Other media types it leaves alone.
 */
export function parsedBy(version: 3 | 4, event: APIGatewayProxyEventV2): APIGatewayProxyEventV2 {
  const contentType = event.headers?.['content-type'] ?? event.headers?.['Content-Type'] ?? '';
  if (typeof event.body !== 'string' || !jsonMediaType.test(contentType)) return event;
  const sent = event.body;
  const text = event.isBase64Encoded ? Buffer.from(sent, 'base64').toString('utf8') : sent;
  return {
    ...event,
    body: JSON.parse(text),
    ...(version === 3 ? { rawBody: sent } : {}),
  } as unknown as APIGatewayProxyEventV2;
}

/** {@link parsedBy} as the middleware, to `.use()` where the parser would be. */
export function jsonBodyParserOf(version: 3 | 4): MiddlewareObj<APIGatewayProxyEventV2> {
  return {
    before: (request) => {
      request.event = parsedBy(version, request.event);
    },
  };
}
