// One Lambda handler per function that dispatches on the API Gateway route key, with the outer middlewares every HTTP function shares.
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddlewareObj, type MiddyfiedHandler, type Request } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { headerValue } from '../../middleware/audit/correlation.js';
import {
  audit,
  type CorrelationContext,
  correlationIds,
  passErrorToOuterAudit,
} from '../../middleware/audit/middy.js';
import { normalizeResponse } from '../../middleware/audit/request-summary.js';
import type { OptionalAuthContext } from '../../middleware/auth/middy.js';
import { NotFoundError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { methodOf } from '../../middleware/http/request-event.js';
import { withHeadersAndCookies } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { type HttpFunctionName, headRouteOf, type RouteDefinition, routeKeyOf, routes } from '../routes.js';
import { type FunctionObservability, functionObservability } from './observability.js';
import { routeTimeoutEarlyMs } from './post-commit.js';
import { entityTagPreconditions } from './preconditions.js';

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

/** Adds to the pipeline a route starts from the policy the route table declares for it. */
export type PolicyPipeline = (
  pipeline: RoutePipeline,
  route: RouteDefinition,
  observability: FunctionObservability,
) => RoutePipeline;

/** For functions whose route table entries ask for no policy middleware. */
export const noPolicy: PolicyPipeline = (pipeline) => pipeline;

/**
 * The pipeline every route starts from. A route's pipeline is a Middy request of its own, so the answer
 * edits its middlewares leave pending for a 5xx (rate-limit headers) are on that request: its own
 * httpErrorHandler renders the route's errors and makes them, which the dispatcher's cannot. The
 * dispatcher's audit line then sees only the rendered answer, so the error is passed up to it.
 */
function routeBasePipeline(logger: Logger): RoutePipeline {
  const pipeline = middy<HttpEvent, HttpResponse, Error, Context & OptionalAuthContext & CorrelationContext>({
    timeoutEarlyInMillis: routeTimeoutEarlyMs,
  });
  pipeline.use(httpErrorHandler({ logger })).use(passErrorToOuterAudit());
  return pipeline;
}

/** The routes the table gives `functionName`, checked against the builders so none lacks code and none is extra. */
export function ownRoutes(
  functionName: HttpFunctionName,
  builders: Readonly<Record<string, RouteBuilder>>,
): readonly RouteDefinition[] {
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
  return own;
}

/**
 * The function's Lambda handler over `own` routes (from {@link ownRoutes}), each built on the pipeline
 * `policyPipeline` gives it and then {@link entityTagPreconditions}, inside the middlewares every request
 * passes through. The HEAD route of a
 * GET route runs that GET route's pipeline, so auth, rate limit, handler and audit are the same.
 */
export function createRouteDispatcher(
  functionName: HttpFunctionName,
  own: readonly RouteDefinition[],
  builders: Readonly<Record<string, RouteBuilder>>,
  logger: Logger,
  policyPipeline: PolicyPipeline,
): MiddyfiedHandler<HttpEvent, HttpResponse> {
  // Audit lines, metrics and the capabilities' security events of this function (functions/shared/observability.ts).
  const observability = functionObservability(functionName);
  const handlers = new Map<string, RouteHandler>();
  for (const route of own) {
    const build = builders[routeKeyOf(route)] as RouteBuilder;
    const policed = policyPipeline(routeBasePipeline(logger), route, observability);
    const handler = build(policed.use(entityTagPreconditions), route);
    handlers.set(routeKeyOf(route), handler);
    const head = headRouteOf(route);
    if (head) handlers.set(routeKeyOf(head), handler);
  }
  const dispatch = async (event: HttpEvent, context: Context): Promise<HttpResponse> => {
    const routeHandler = handlers.get(event.routeKey);
    if (!routeHandler) throw new NotFoundError(`No route for ${event.routeKey}`);
    return routeHandler(event, context);
  };
  return withRequestMiddlewares(dispatch, logger, observability);
}

/**
 * Headers every answer carries unless it sets its own (by any case of the name). `Cache-Control: no-store`:
 * answers hold personal data and secrets (a webhook's signing secret, decrypted emails), which no cache,
 * shared or private, may keep. The rest is OWASP's set for a JSON API, which no browser should sniff as
 * another type, frame, or reach over plain HTTP once it has seen the API over HTTPS.
 */
const defaultAnswerHeaders: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  'Content-Security-Policy': "frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
};

function addMissingDefaultHeaders(request: { response?: HttpResponse | null }): void {
  const normalized = normalizeResponse(request.response);
  if (!normalized) return;
  const own = normalized.headers as Readonly<Record<string, string>>;
  const missing = Object.entries(defaultAnswerHeaders).filter(
    ([name]) => headerValue(own, name.toLowerCase()) === undefined,
  );
  if (missing.length === 0) return;
  request.response = withHeadersAndCookies(request.response, {
    headers: Object.fromEntries(missing),
  }) as HttpResponse;
}

/**
 * {@link defaultAnswerHeaders} on every answer: in `after` for what the dispatch returns (successes, and
 * the route pipelines' problems and early answers, rendered there), in `onError` for the problems the
 * httpErrorHandler `.use()`d after it renders first (no route for the key, the catch-all's 404/405).
 */
const defaultAnswerHeadersMiddleware: MiddlewareObj<HttpEvent, HttpResponse> = {
  after: addMissingDefaultHeaders,
  onError: addMissingDefaultHeaders,
};

/** The answer to a HEAD request: the status and headers a GET gets, without its body (RFC 9110 §9.3.2). */
function dropBodyOfHead(request: Request<HttpEvent, HttpResponse>): void {
  if (methodOf(request.event) !== 'HEAD') return;
  // Structured first: a plain result is the 200 JSON answer API Gateway would infer from it.
  const answer = withHeadersAndCookies(request.response, {}) as HttpResponse | null | undefined;
  if (!answer) return;
  const { statusCode, headers, cookies } = answer;
  request.response = {
    statusCode,
    ...(headers === undefined ? {} : { headers }),
    ...(cookies === undefined ? {} : { cookies }),
  };
}

/**
 * A HEAD request's answer leaves without a body. Used first, so it runs after every other middleware,
 * on problems rendered on the way out too; the audit line still describes the answer a GET gets.
 */
const headWithoutBody: MiddlewareObj<HttpEvent, HttpResponse> = {
  after: dropBodyOfHead,
  onError: dropBodyOfHead,
};

/**
 * `respond` inside the middlewares every request to an HTTP function passes through: Lambda context
 * and correlation id on every log line, metrics flushed, one audit line, errors as problem+json,
 * no caching, sniffing or framing, and no body in an answer to HEAD.
 */
export function withRequestMiddlewares(
  respond: (event: HttpEvent, context: Context) => Promise<HttpResponse>,
  logger: Logger,
  observability: FunctionObservability,
): MiddyfiedHandler<HttpEvent, HttpResponse> {
  const loggers = [...new Set([logger, observability.logger])];
  // Outermost, so they also see answers the route pipelines give early (401/403, 429, 503, CSRF)
  // and errors httpErrorHandler renders: correlation id, metrics flush and audit on every request.
  // Route errors arrive here already rendered by the route's own httpErrorHandler (and named to audit
  // by passErrorToOuterAudit); this one renders the rest (no route for the key, a failure of these
  // middlewares).
  return lambdaHandler(
    middy<HttpEvent, HttpResponse>(respond)
      .use(headWithoutBody)
      // Never the whole event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: bodies carry personal data
      // under keys the redactor does not list (`name`, a verification `code`).
      .use(injectLambdaContext(loggers, { resetKeys: true, logEvent: false }))
      .use(correlationIds({ loggers }))
      .use(captureMetrics(observability.metrics))
      .use(audit({ auditLogger: observability.auditLogger, excludePaths: ['/health'] }))
      .use(defaultAnswerHeadersMiddleware)
      .use(httpErrorHandler({ logger })),
  );
}
