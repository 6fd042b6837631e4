// What an API Gateway event says about its request, read alike from an HTTP API (v2) and a REST API (v1) event.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { headerValue } from '../audit/correlation.js';

/** The part of a REST API (v1) request context that names the peer; HTTP API (v2) events put it in `http`. */
interface RestApiRequestContext {
  readonly identity?: { readonly sourceIp?: unknown };
}

/**
 * API Gateway's TCP peer: `requestContext.http.sourceIp` in an HTTP API (v2) event,
 * `requestContext.identity.sourceIp` in a REST API (v1) one. Reading only the first put every REST API
 * client into one rate-limit bucket, and left the audit line without an address.
 */
export function sourceIpOf(event: APIGatewayProxyEventV2): string | undefined {
  const context = event.requestContext as
    | (APIGatewayProxyEventV2['requestContext'] & RestApiRequestContext)
    | undefined;
  const candidate = context?.http?.sourceIp ?? context?.identity?.sourceIp;
  return typeof candidate === 'string' ? candidate : undefined;
}

/** What a REST API (v1) event says of its request where an HTTP API (v2) event uses other fields. */
interface RestApiRequest {
  readonly httpMethod?: unknown;
  readonly resource?: unknown;
  readonly path?: unknown;
}

/** A REST API (v1) event: it names its method at the top level, where v2 puts it under `requestContext.http`. */
export function isRestApiEvent(event: APIGatewayProxyEventV2): boolean {
  return (
    event.requestContext?.http === undefined &&
    typeof (event as unknown as RestApiRequest).httpMethod === 'string'
  );
}

/** The request's method: v2's `requestContext.http.method`, a REST API event's `httpMethod`. */
export function methodOf(event: APIGatewayProxyEventV2): string | undefined {
  const method = event.requestContext?.http?.method ?? (event as unknown as RestApiRequest).httpMethod;
  return typeof method === 'string' ? method : undefined;
}

/** The path the client asked for: v2's `rawPath`, a REST API event's `path`. */
export function pathOf(event: APIGatewayProxyEventV2): string | undefined {
  const path = event.rawPath ?? (event as unknown as RestApiRequest).path;
  return typeof path === 'string' ? path : undefined;
}

/**
 * The request's cookies, one `name=value` each: v2 gathers them in `cookies`; a REST API event leaves them
 * in its Cookie header, whatever the case of its name.
 */
export function cookiesOf(event: APIGatewayProxyEventV2): readonly string[] | undefined {
  if (event.cookies !== undefined) return event.cookies;
  const header = headerValue(event.headers, 'cookie');
  if (header === undefined) return undefined;
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '');
}

/** The route, as v2 writes it (`POST /users/{id}`); a REST API event's is built alike from method and resource. */
export function routeOf(event: APIGatewayProxyEventV2): string | undefined {
  if (typeof event.routeKey === 'string') return event.routeKey;
  const { httpMethod, resource } = event as unknown as RestApiRequest;
  return typeof httpMethod === 'string' && typeof resource === 'string'
    ? `${httpMethod} ${resource}`
    : undefined;
}
