// createHttpFunction for a function whose routes are all public and unlimited (health): no auth or rate-limit code in its bundle.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddyfiedHandler } from '@middy/core';
import type { HttpFunctionName } from '../routes.js';
import {
  createRouteDispatcher,
  type HttpEvent,
  type HttpResponse,
  noPolicy,
  ownRoutes,
  type RouteBuilder,
} from './route-dispatch.js';

/**
 * Like `createHttpFunction` (functions/shared/http-function.ts), minus its policy middlewares, which
 * import the authenticator (jose) and the limiter into the bundle. Refuses at cold start a function
 * the route table gives any route that needs auth or a rate limit, so no policy is skipped silently.
 *
 * @example
 * export const handler = createPublicHttpFunction('health', {
 *   'GET /health': (route) => route.handler(async () => json(200, { status: 'ok' })),
 * }, logger);
 */
export function createPublicHttpFunction(
  functionName: HttpFunctionName,
  builders: Readonly<Record<string, RouteBuilder>>,
  logger: Logger,
): MiddyfiedHandler<HttpEvent, HttpResponse> {
  const own = ownRoutes(functionName, builders);
  const guarded = own.filter((route) => route.auth.kind !== 'public' || route.rateLimit !== undefined);
  if (guarded.length > 0) {
    throw new Error(
      `Function ${functionName} has routes that need auth or a rate limit: ${guarded.map((route) => `${route.method} ${route.path}`).join(', ')}; use createHttpFunction`,
    );
  }
  return createRouteDispatcher(functionName, own, builders, logger, noPolicy);
}
