// What an API Gateway event says about its request, read alike from an HTTP API (v2) and a REST API (v1) event.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

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

/** What a REST API (v1) event names its route by; HTTP API (v2) events give `routeKey`. */
interface RestApiRoute {
  readonly httpMethod?: unknown;
  readonly resource?: unknown;
}

/** The route, as v2 writes it (`POST /users/{id}`); a REST API event's is built alike from method and resource. */
export function routeOf(event: APIGatewayProxyEventV2): string | undefined {
  if (typeof event.routeKey === 'string') return event.routeKey;
  const { httpMethod, resource } = event as unknown as RestApiRoute;
  return typeof httpMethod === 'string' && typeof resource === 'string'
    ? `${httpMethod} ${resource}`
    : undefined;
}
