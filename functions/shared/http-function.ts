// Builds one Lambda handler per function that dispatches on the API Gateway route key, with each route's auth and rate limit.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddyfiedHandler } from '@middy/core';
import type { HttpFunctionName, RouteDefinition } from '../routes.js';
import type { FunctionObservability } from './observability.js';
import { routeAuth } from './route-auth.js';
import {
  createRouteDispatcher,
  type HttpEvent,
  type HttpResponse,
  ownRoutes,
  type RouteBuilder,
  type RoutePipeline,
} from './route-dispatch.js';
import { routeRateLimit } from './route-rate-limit.js';

export type { HttpEvent, HttpResponse, RouteBuilder, RouteHandler, RoutePipeline } from './route-dispatch.js';

/**
 * Policy that the route table declares (what auth a route needs, its rate limit), applied to every
 * route's pipeline here, in one place, so no handler can forget it.
 */
function routePipeline(
  pipeline: RoutePipeline,
  route: RouteDefinition,
  observability: FunctionObservability,
): RoutePipeline {
  const limit = routeRateLimit(route, observability);
  // Per-IP limits first: a flood is refused before any token check or body parsing.
  if (limit?.stage === 'beforeAuth') pipeline.use(limit.middleware);
  // Authentication and the guards the route's auth requirement names; sets context.principal.
  pipeline.use(routeAuth(route.auth, observability.onEvent));
  // Per-principal limits after authentication, which sets context.principal.
  if (limit?.stage === 'afterAuth') pipeline.use(limit.middleware);
  return pipeline;
}

/**
 * The function's Lambda handler. Its routes must be exactly those the route table gives the
 * function, checked at cold start so a route can never be deployed without code behind it.
 *
 * @example
 * export const handler = createHttpFunction('users', {
 *   'GET /users/{id}': (route) => route.use(validateInput({ path })).handler(async (_e, { input }) => ...),
 * }, logger);
 */
export function createHttpFunction(
  functionName: HttpFunctionName,
  builders: Readonly<Record<string, RouteBuilder>>,
  logger: Logger,
): MiddyfiedHandler<HttpEvent, HttpResponse> {
  return createRouteDispatcher(
    functionName,
    ownRoutes(functionName, builders),
    builders,
    logger,
    routePipeline,
  );
}
