// Builds one Lambda handler per function that dispatches on the API Gateway route key.
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddyfiedHandler } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { NotFoundError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { type HttpFunctionName, type RouteDefinition, routeKeyOf, routes } from '../routes.js';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResponse = APIGatewayProxyStructuredResultV2;

/** A route's own Middy pipeline, before `.handler()`: its policy middlewares are already applied. */
export type RoutePipeline = MiddyfiedHandler<HttpEvent, HttpResponse, Error, Context>;

/** A finished per-route pipeline; its context may carry what its middlewares add (input, principal...). */
// biome-ignore lint/suspicious/noExplicitAny: each route's context type differs; dispatch only forwards it.
export type RouteHandler = MiddyfiedHandler<HttpEvent, HttpResponse, Error, any, any>;

/** Receives the route's pre-configured pipeline; adds the route's own middlewares and handler. */
export type RouteBuilder = (pipeline: RoutePipeline, route: RouteDefinition) => RouteHandler;

/**
 * The pipeline every route starts from. Policy that the route table declares (what auth a route
 * needs, its rate limit) is applied here, in one place, so no handler can forget it.
 */
function routePipeline(_route: RouteDefinition): RoutePipeline {
  return middy<HttpEvent, HttpResponse, Error, Context>();
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
  const handlers = new Map<string, RouteHandler>(
    own.map((route) => {
      const build = builders[routeKeyOf(route)] as RouteBuilder;
      return [routeKeyOf(route), build(routePipeline(route), route)];
    }),
  );
  const dispatch = async (event: HttpEvent, context: Context): Promise<HttpResponse> => {
    const routeHandler = handlers.get(event.routeKey);
    if (!routeHandler) throw new NotFoundError(`No route for ${event.routeKey}`);
    return routeHandler(event, context);
  };
  return middy<HttpEvent, HttpResponse>(dispatch)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(httpErrorHandler({ logger }));
}
