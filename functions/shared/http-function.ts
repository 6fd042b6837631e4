// Builds one Lambda handler per function that dispatches on the API Gateway route key.
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddyfiedHandler } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { audit, type CorrelationContext, correlationIds } from '../../middleware/audit/middy.js';
import type { OptionalAuthContext } from '../../middleware/auth/middy.js';
import { NotFoundError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { type HttpFunctionName, type RouteDefinition, routeKeyOf, routes } from '../routes.js';
import { type FunctionObservability, functionObservability } from './observability.js';
import { routeAuth } from './route-auth.js';
import { routeRateLimit } from './route-rate-limit.js';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResponse = APIGatewayProxyStructuredResultV2;

/**
 * A route's own Middy pipeline, before `.handler()`: its policy middlewares are already applied.
 * `context.principal` is the authenticated caller on every route whose auth is not public.
 */
export type RoutePipeline = MiddyfiedHandler<
  HttpEvent,
  HttpResponse,
  Error,
  Context & OptionalAuthContext & CorrelationContext
>;

/** A finished per-route pipeline; its context may carry what its middlewares add (input, principal...). */
// biome-ignore lint/suspicious/noExplicitAny: each route's context type differs; dispatch only forwards it.
export type RouteHandler = MiddyfiedHandler<HttpEvent, HttpResponse, Error, any, any>;

/** Receives the route's pre-configured pipeline; adds the route's own middlewares and handler. */
export type RouteBuilder = (pipeline: RoutePipeline, route: RouteDefinition) => RouteHandler;

/**
 * The pipeline every route starts from. Policy that the route table declares (what auth a route
 * needs, its rate limit) is applied here, in one place, so no handler can forget it.
 */
function routePipeline(route: RouteDefinition, observability: FunctionObservability): RoutePipeline {
  const pipeline = middy<
    HttpEvent,
    HttpResponse,
    Error,
    Context & OptionalAuthContext & CorrelationContext
  >();
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
  const own: readonly RouteDefinition[] = routes.filter((route) => route.function === functionName);
  const expected = new Set(own.map(routeKeyOf));
  const given = new Set(Object.keys(builders));
  const missing = [...expected].filter((key) => !given.has(key));
  const unknown = [...given].filter((key) => !expected.has(key));
  if (missing.length > 0 || unknown.length > 0) {
    throw new Error(
      `Function ${functionName} does not match the route table: missing [${missing.join(', ')}], unknown [${unknown.join(', ')}]`,
    );
  }
  // Audit lines, metrics and the capabilities' security events of this function (functions/shared/observability.ts).
  const observability = functionObservability(functionName);
  const handlers = new Map<string, RouteHandler>(
    own.map((route) => {
      const build = builders[routeKeyOf(route)] as RouteBuilder;
      return [routeKeyOf(route), build(routePipeline(route, observability), route)];
    }),
  );
  const dispatch = async (event: HttpEvent, context: Context): Promise<HttpResponse> => {
    const routeHandler = handlers.get(event.routeKey);
    if (!routeHandler) throw new NotFoundError(`No route for ${event.routeKey}`);
    return routeHandler(event, context);
  };
  const loggers = [...new Set([logger, observability.logger])];
  // Outermost, so they also see answers the route pipelines give early (401/403, 429, 503, CSRF)
  // and errors httpErrorHandler renders: correlation id, metrics flush and audit on every request.
  const handler = middy<HttpEvent, HttpResponse>(dispatch);
  // `use` adds in place, so `handler` keeps the type Lambda invokes it with (a plain Context), while
  // Middy would type the chain's result as needing what correlationIds() itself adds.
  handler
    .use(injectLambdaContext(loggers, { resetKeys: true }))
    .use(correlationIds({ loggers }))
    .use(captureMetrics(observability.metrics))
    .use(audit({ auditLogger: observability.auditLogger, excludePaths: ['/health'] }))
    .use(httpErrorHandler({ logger }));
  return handler;
}
