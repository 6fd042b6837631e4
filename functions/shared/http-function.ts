// Builds one Lambda handler per function that dispatches on the API Gateway route key.
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddyfiedHandler } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { NotFoundError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { type HttpFunctionName, routeKeysOf } from '../routes.js';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResponse = APIGatewayProxyStructuredResultV2;

/** A per-route Middy pipeline; its context may carry what its middlewares add (input, principal...). */
// biome-ignore lint/suspicious/noExplicitAny: each route's context type differs; dispatch only forwards it.
export type RouteHandler = MiddyfiedHandler<HttpEvent, HttpResponse, Error, any, any>;

/**
 * Starts a route's own pipeline; `.use()` the route's middlewares, then `.handler()`.
 *
 * @example
 * defineRoute().use(validateInput({ body })).handler(async (event, context) => json(201, ...));
 */
export function defineRoute(): MiddyfiedHandler<HttpEvent, HttpResponse, Error, Context> {
  return middy<HttpEvent, HttpResponse, Error, Context>();
}

/**
 * The function's Lambda handler. Its routes must be exactly those the route table gives the
 * function, checked at cold start so a route can never be deployed without code behind it.
 */
export function createHttpFunction(
  functionName: HttpFunctionName,
  handlers: Readonly<Record<string, RouteHandler>>,
  logger: Logger,
): MiddyfiedHandler<HttpEvent, HttpResponse> {
  const expected = new Set(routeKeysOf(functionName));
  const given = new Set(Object.keys(handlers));
  const missing = [...expected].filter((key) => !given.has(key));
  const unknown = [...given].filter((key) => !expected.has(key));
  if (missing.length > 0 || unknown.length > 0) {
    throw new Error(
      `Function ${functionName} does not match the route table: missing [${missing.join(', ')}], unknown [${unknown.join(', ')}]`,
    );
  }
  const dispatch = async (event: HttpEvent, context: Context): Promise<HttpResponse> => {
    const routeHandler = handlers[event.routeKey];
    if (!routeHandler) throw new NotFoundError(`No route for ${event.routeKey}`);
    return routeHandler(event, context);
  };
  return middy<HttpEvent, HttpResponse>(dispatch)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(httpErrorHandler({ logger }));
}
