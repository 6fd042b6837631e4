// Middy adapter: a per-request `callService` that carries the correlation id and never outlives the Lambda.
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { headerValue } from '../audit/correlation.js';
import { assertNoProblems } from '../errors.js';
import { type ApiGatewayEvent, assertApiGatewayEvent, forDeclaredEvent } from '../http/request-event.js';
import { isHeaderName } from '../http/response.js';
import { checkMethodsOption, shownValue } from '../options.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { ServiceCallInit, ServiceClient } from './service-client.js';

/** `callService` bound to the current request. */
export type BoundCallService<S extends string> = (
  serviceName: S,
  url: string | URL,
  init?: ServiceCallInit,
) => Promise<Response>;

/** What {@link serviceCalls} adds to the handler's context. */
export interface ServiceCallsContext<S extends string> {
  callService: BoundCallService<S>;
}

export interface ServiceCallsOptions {
  /**
   * Time kept back from the Lambda's remaining time: calls, retries included, end this long before
   * the function would be stopped, leaving time to answer 504 instead of timing out. A call cut
   * short by it does not count against the service: the Lambda ran out of time, not the service.
   * @default 500
   */
  readonly deadlineMarginMs?: number | undefined;
  /** The incoming header whose value is passed on as the correlation id. @default 'x-correlation-id' */
  readonly correlationIdHeader?: string | undefined;
}

type ServiceCallsRequest<S extends string> = Request<
  ApiGatewayEvent,
  APIGatewayProxyStructuredResultV2,
  Error,
  Context & ServiceCallsContext<S> & { correlationId?: string | undefined }
>;

/** The earlier of two deadlines, either of which may be absent. */
function earlier(first: number | undefined, second: number | undefined): number | undefined {
  if (first === undefined) return second;
  return second === undefined ? first : Math.min(first, second);
}

/**
 * Puts `context.callService` on the handler's context: the client's `callService`, with the
 * request's correlation id (`context.correlationId`, set by `correlationIds()` before or after this
 * middleware, else the incoming header, else the API Gateway request id, read when the call is made) and each call, retries included, bounded by
 * the time the Lambda has left. A `CircuitOpenError` thrown by it renders as 503 problem+json with Retry-After
 * through `httpErrorHandler`, like every toolkit error.
 *
 * @example
 * const services = createServiceClient({ tableName, services: { users: { baseUrl: usersApiUrl } } });
 * route.use(serviceCalls(services)).handler(async (event, { callService }) => {
 *   const response = await callService('users', `users/${id}`);
 *   return json(response.status, await response.json());
 * });
 */
export function serviceCalls<S extends string>(
  client: ServiceClient<S>,
  options: ServiceCallsOptions = {},
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, Context & ServiceCallsContext<S>> {
  const deadlineMarginMs = options.deadlineMarginMs ?? 500;
  const header = options.correlationIdHeader ?? 'x-correlation-id';
  const problems: string[] = [];
  // What this calls, so an adopter's double of the client fits: callService() per call, and each breaker's
  // checkTimeBudget() per request (a double without breakers gives `breakers: {}`).
  const fits = 'a ServiceClient from createServiceClient()';
  if (client === undefined || client === null) {
    problems.push(`client must be ${fits} (got ${shownValue(client)})`);
  } else {
    checkMethodsOption(problems, 'client', client, ['callService'], fits);
    const givenBreakers: unknown = client.breakers;
    const isBreakerTable =
      typeof givenBreakers === 'object' &&
      givenBreakers !== null &&
      Object.values(givenBreakers).every((breaker) => typeof breaker?.checkTimeBudget === 'function');
    if (!isBreakerTable) {
      problems.push(
        `client.breakers must be an object of circuit breakers by service name, each with checkTimeBudget() (got ${shownValue(givenBreakers)})`,
      );
    }
  }
  if (!Number.isFinite(deadlineMarginMs) || deadlineMarginMs < 0)
    problems.push('deadlineMarginMs must be >= 0');
  // A name no header can have would quietly pass the request id on instead of the caller's id.
  if (!isHeaderName(header)) problems.push('correlationIdHeader must be a header name');
  assertNoProblems('serviceCalls', problems);
  const incomingHeader = header.toLowerCase();
  const breakers: readonly CircuitBreaker<Response>[] = Object.values(client.breakers);

  const serviceCallsBefore = (request: ServiceCallsRequest<S>) => {
    assertApiGatewayEvent(request.event, 'serviceCalls');
    const { event, context } = request;
    const remainingMs =
      typeof context.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : 0;
    // Without a Lambda deadline (a direct test call) the service's own timeout applies.
    const deadline = remainingMs > 0 ? Date.now() + remainingMs - deadlineMarginMs : undefined;
    if (deadline !== undefined) {
      for (const breaker of breakers) breaker.checkTimeBudget(remainingMs - deadlineMarginMs);
    }
    // Read at each call, not here: correlationIds() used after this middleware sets the id later.
    context.callService = (serviceName, url, init = {}) =>
      client.callService(serviceName, url, {
        ...init,
        // A correlationId given as undefined takes the request's, as every option's default is taken.
        correlationId:
          init.correlationId ??
          context.correlationId ??
          headerValue(event.headers, incomingHeader) ??
          event.requestContext?.requestId ??
          undefined,
        deadline: earlier(deadline, init.deadline),
      });
  };
  return forDeclaredEvent({ before: serviceCallsBefore });
}
