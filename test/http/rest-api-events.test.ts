// The HTTP middlewares on a REST API (v1) handler: its event stays typed as declared, the finished handler is an
// APIGatewayProxyHandler, callbacks see the event of either version, and what is read of the route is v1's.
// Typechecked by `tsc --noEmit` (tsconfig.json includes test/): the type assertions fail the typecheck.

import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyHandler,
  APIGatewayProxyHandlerV2,
  APIGatewayProxyResult,
  Context,
  LambdaFunctionURLEvent,
  LambdaFunctionURLHandler,
  LambdaFunctionURLResult,
} from 'aws-lambda';
import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import * as z from 'zod';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate, csrfProtection, requireUser } from '../../middleware/auth/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { serviceCalls } from '../../middleware/circuit-breaker/middy.js';
import { createServiceClient } from '../../middleware/circuit-breaker/service-client.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler, validateInput } from '../../middleware/http/middy.js';
import type { ApiGatewayEvent } from '../../middleware/http/request-event.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { dynamoStore } from '../circuit-breaker/helpers.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';

const output = captureStdout();
const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
const bearer = `Bearer ${await issuer.mint({ sub: 'alice' })}`;
const context = {
  awsRequestId: 'req-1',
  functionName: 'fn',
  getRemainingTimeInMillis: () => 10_000,
} as Context;

function restApiEvent(): APIGatewayProxyEvent {
  return {
    resource: '/orders/{id}',
    path: '/orders/42',
    httpMethod: 'GET',
    headers: { Authorization: bearer },
    multiValueHeaders: { Authorization: [bearer] },
    queryStringParameters: { q: 'x' },
    multiValueQueryStringParameters: { q: ['x'] },
    pathParameters: { id: '42' },
    stageVariables: null,
    requestContext: {
      requestId: 'rest-req-1',
      httpMethod: 'GET',
      path: '/prod/orders/42',
      resourcePath: '/orders/{id}',
      identity: { sourceIp: '198.51.100.7' },
    } as APIGatewayProxyEvent['requestContext'],
    body: null,
    isBase64Encoded: false,
  };
}

/** The route a key is read from: v2 names it, a REST API event has its resource. */
function routeOfEither(event: ApiGatewayEvent): string {
  // @ts-expect-error a REST API (v1) event has no rawPath: the callback must narrow the event first
  event.rawPath;
  return 'routeKey' in event ? event.routeKey : `${event.httpMethod} ${event.resource}`;
}

function restApiHandler(onEvent: (event: SecurityEvent) => void) {
  const auditLogger = new AuditLogger({ logger: new Logger({ serviceName: 'orders', logLevel: 'INFO' }) });
  const persistenceStore = idempotencyStore({ name: 'rest-api-events' });
  const services = createServiceClient({
    store: dynamoStore(),
    services: { users: { baseUrl: 'http://127.0.0.1:1' } },
  });
  return lambdaHandler(
    middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
      .use(correlationIds())
      .use(audit({ auditLogger }))
      .use(httpErrorHandler())
      .use(
        rateLimit({
          policy: { name: 'rest-api-route', limit: 1, windowSec: 60 },
          store: new MemoryCounterStore(),
          identify: ({ event }) => {
            expectTypeOf(event).toEqualTypeOf<ApiGatewayEvent>();
            return routeOfEither(event);
          },
          onEvent,
        }),
      )
      .use(authenticate({ jwt: devIssuerVerifier(issuer) }))
      .use(validateInput({ query: z.object({ q: z.string() }) }))
      .use(idempotency({ persistenceStore, config: new IdempotencyConfig({}) }))
      .use(serviceCalls(services))
      .handler(async (event, { principal, input, callService }) => {
        expectTypeOf(event).toEqualTypeOf<APIGatewayProxyEvent>();
        expectTypeOf(principal).toEqualTypeOf<Principal>();
        expectTypeOf(input.query).toEqualTypeOf<{ q: string }>();
        expectTypeOf(callService).parameter(0).toEqualTypeOf<'users'>();
        // json()'s body is always set, as the APIGatewayProxyResult this handler declares requires.
        return json(200, { path: event.path, id: principal.id, q: input.query.q });
      }),
  );
}

describe('a REST API (v1) handler', () => {
  it('keeps its event typed as declared and fits APIGatewayProxyHandler, through every HTTP middleware', async () => {
    const handler: APIGatewayProxyHandler = restApiHandler(() => {});
    const answer = await handler(restApiEvent(), context, () => {});
    expect(answer).toMatchObject({ statusCode: 200 });
    expect(JSON.parse((answer as APIGatewayProxyResult).body)).toEqual({
      path: '/orders/42',
      id: 'alice',
      q: 'x',
    });
  });

  it('gives a test its answer typed as the handler declared it', async () => {
    const answer = await restApiHandler(() => {})(restApiEvent(), context);
    expectTypeOf(answer).toEqualTypeOf<APIGatewayProxyResult>();
    expect(answer.statusCode).toBe(200);
  });

  it("names a refused request's route as method and resource, in the rateLimit.hit event and the audit line", async () => {
    const onEvent = vi.fn<(event: SecurityEvent) => void>();
    const handler = restApiHandler(onEvent);
    expect((await handler(restApiEvent(), context)).statusCode).toBe(200);
    expect((await handler(restApiEvent(), context)).statusCode).toBe(429);
    const hits = onEvent.mock.calls.map(([event]) => event).filter((event) => event.type === 'rateLimit.hit');
    expect(hits.map((hit) => hit.metadata?.routeKey)).toEqual(['GET /orders/{id}']);
    expect(output.audit().map((line) => [line.statusCode, line.metadata?.routeKey])).toEqual([
      [200, 'GET /orders/{id}'],
      [429, 'GET /orders/{id}'],
    ]);
  });
});

describe('HTTP API (v2) and Function URL handlers', () => {
  it('keep their event and typed context as before', () => {
    const httpApi: APIGatewayProxyHandlerV2 = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler())
        .use(authenticate({ jwt: devIssuerVerifier(issuer), optional: true }))
        .use(requireUser())
        .use(csrfProtection({ secret: 'c'.repeat(32) }))
        .handler(async (event, { principal, csrfToken }) => {
          expectTypeOf(event).toEqualTypeOf<APIGatewayProxyEventV2>();
          expectTypeOf(principal).toEqualTypeOf<Principal>();
          return json(200, { path: event.rawPath, id: principal.id, csrfToken });
        }),
    );
    const functionUrl: LambdaFunctionURLHandler = lambdaHandler(
      middy<LambdaFunctionURLEvent, LambdaFunctionURLResult>()
        .use(httpErrorHandler())
        .use(authenticate({ jwt: devIssuerVerifier(issuer) }))
        .handler(async (event, { principal }) => {
          expectTypeOf(event).toEqualTypeOf<LambdaFunctionURLEvent>();
          return json(200, { path: event.rawPath, id: principal.id });
        }),
    );
    expect([typeof httpApi, typeof functionUrl]).toEqual(['function', 'function']);
  });
});
