import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate, csrfProtection, requireRoles } from '../../middleware/auth/middy.js';
import { serviceCalls } from '../../middleware/circuit-breaker/middy.js';
import { ServiceClient } from '../../middleware/circuit-breaker/service-client.js';
import { registerCleanup, respondEarly, runCleanup } from '../../middleware/cleanup.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { metricCatalog, metricNamespace } from '../../middleware/metrics/catalog.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { createMetrics } from '../../middleware/metrics/record.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout, emfProblems, enableMetricsOutput } from '../helpers/log-capture.js';
import { testTableNames } from '../helpers/tables.js';
import { httpEvent, lambdaContext } from './fixtures.js';

enableMetricsOutput();
const output = captureStdout();
const dynamoDb = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });
const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
const verifier = devIssuerVerifier(issuer);

/**
 * Books once through `middleware` (Powertools' or Bulwark's idempotency), clears the output, then sends
 * the same request again: the replay, and how often the handler really ran.
 */
async function replayedBooking(
  parts: ReturnType<typeof observability>,
  middleware: (
    options: Parameters<typeof makeHandlerIdempotent>[0],
  ) => MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>,
) {
  let handlerRuns = 0;
  const handler = lambdaHandler(
    flat(parts)
      .use(
        middleware({
          persistenceStore: idempotencyStore({ client: dynamoDb }),
          config: new IdempotencyConfig({ eventKeyJmesPath: 'body' }),
        }),
      )
      .handler(async () => {
        handlerRuns += 1;
        return json(201, { id: 'booking-1' });
      }),
  );
  const booking = { ...request(), body: JSON.stringify({ room: randomUUID() }) };
  expect((await handler(booking, lambdaContext())).statusCode).toBe(201);
  output.clear();
  const replay = await handler(booking, lambdaContext());
  return { replay, handlerRuns };
}

/** The observability a function wires once: what must happen on every request, however it ends. */
function observability() {
  const logger = new Logger({ serviceName: 'bookings', logLevel: 'INFO' });
  const auditLogger = new AuditLogger({ logger });
  const metrics = createMetrics({ serviceName: 'bookings' });
  return { logger, auditLogger, metrics, onEvent: createSecurityEventListener({ auditLogger, metrics }) };
}

/**
 * A response header every answer must carry, added the way security headers are: registered as a
 * cleanup in `before`, run from its own `after`/`onError`, or by respondEarly() when another answers first.
 */
const securityHeaders: MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
  before: (request) =>
    registerCleanup(request, 'test.securityHeaders', (ended) => {
      const response = ended.response as APIGatewayProxyStructuredResultV2 | undefined;
      if (response) response.headers = { ...response.headers, 'X-Content-Type-Options': 'nosniff' };
    }),
  after: (request) => runCleanup(request, 'test.securityHeaders'),
  onError: (request) => runCleanup(request, 'test.securityHeaders'),
};

/**
 * A flat pipeline: what adds headers or observes the outcome goes before httpErrorHandler (its
 * onError then runs after the problem+json is rendered), policy middlewares after it.
 */
function flat(parts: ReturnType<typeof observability>) {
  const { logger, auditLogger, metrics } = parts;
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(correlationIds({ loggers: [logger] }))
    .use(captureMetrics(metrics))
    .use(securityHeaders)
    .use(audit({ auditLogger }))
    .use(httpErrorHandler({ logger }));
}

/** The audit event, the metrics flush, the headers and the correlation id all happened. */
function expectEverythingHappened(
  parts: ReturnType<typeof observability>,
  response: APIGatewayProxyStructuredResultV2,
  expected: { status: number; securityEvent?: string; metric?: string },
) {
  expect(response.statusCode).toBe(expected.status);
  expect(response.headers).toMatchObject({
    'x-correlation-id': 'corr-7',
    'X-Content-Type-Options': 'nosniff',
  });
  const events = output.audit();
  const request = events.find((event) => event.eventType === 'http.request');
  expect(request).toMatchObject({ statusCode: expected.status, correlationId: 'corr-7', path: '/bookings' });
  if (expected.securityEvent) {
    expect(events.find((event) => event.eventType === expected.securityEvent)).toMatchObject({
      correlationId: 'corr-7',
      path: '/bookings',
    });
  }
  const emf = output.emf();
  for (const line of emf) expect(emfProblems(line, metricCatalog, metricNamespace)).toEqual([]);
  if (expected.metric) expect(emf.some((line) => line[expected.metric as string] !== undefined)).toBe(true);
  expect(parts.metrics.hasStoredMetrics()).toBe(false);
  // Every line of the request carried the correlation id; the logger's keys were reset afterwards.
  for (const line of output.json().filter((candidate) => !candidate._aws))
    expect(line.correlation_id).toBe('corr-7');
  expect(parts.logger.getCorrelationId()).toBeUndefined();
}

const request = (headers: Record<string, string> = {}, method = 'POST') =>
  httpEvent({ method, path: '/bookings', headers: { 'x-correlation-id': 'corr-7', ...headers } });

describe('answers given early are still audited, counted and labelled', () => {
  it('401 from authenticate', async () => {
    const parts = observability();
    const handler = lambdaHandler(
      flat(parts)
        .use(authenticate({ jwt: verifier, onEvent: parts.onEvent }))
        .handler(async () => json(201, {})),
    );
    const response = await handler(request({ authorization: 'Bearer not-a-jwt' }), lambdaContext());
    expectEverythingHappened(parts, response, {
      status: 401,
      securityEvent: 'auth.failure',
      metric: 'AuthFailure',
    });
    expect(output.audit().find((event) => event.eventType === 'auth.failure')?.metadata.reason).toBeDefined();
    // The authenticator reports how long verification took: the AuthLatency metric.
    expect(output.emf().some((line) => typeof line.AuthLatency === 'number')).toBe(true);
  });

  it('403 from a guard after authenticate', async () => {
    const parts = observability();
    const token = await issuer.mint({ sub: 'bob', roles: ['member'] });
    const handler = lambdaHandler(
      flat(parts)
        .use(authenticate({ jwt: verifier, onEvent: parts.onEvent }))
        .use(requireRoles(['admin'], { onEvent: parts.onEvent }))
        .handler(async () => json(201, {})),
    );
    const response = await handler(request({ authorization: `Bearer ${token}` }), lambdaContext());
    expectEverythingHappened(parts, response, {
      status: 403,
      securityEvent: 'access.denied',
      metric: 'AccessDenied',
    });
    const denied = output.audit().find((event) => event.eventType === 'http.request');
    expect(denied).toMatchObject({ userId: 'bob', outcome: 'denied' });
    expect(output.lines().join('\n')).not.toContain(token);
  });

  it('429 from rateLimit, with its rate-limit headers', async () => {
    const parts = observability();
    const key = `audit-${randomUUID()}`;
    const handler = lambdaHandler(
      flat(parts)
        .use(
          rateLimit({
            policy: { name: 'audit-test', limit: 1, windowSec: 60 },
            identify: () => key,
            tableName: testTableNames.toolkit,
            client: dynamoDb,
            onEvent: parts.onEvent,
          }),
        )
        .handler(async () => json(201, {})),
    );
    expect((await handler(request(), lambdaContext())).statusCode).toBe(201);
    output.clear();
    const response = await handler(request(), lambdaContext());
    expectEverythingHappened(parts, response, {
      status: 429,
      securityEvent: 'rateLimit.hit',
      metric: 'RateLimited',
    });
    expect(Object.keys(response.headers ?? {})).toEqual(expect.arrayContaining(['Retry-After', 'RateLimit']));
  });

  it('503 from an open circuit breaker', async () => {
    const parts = observability();
    const circuit = `users-${randomUUID()}`;
    const services = new ServiceClient({
      services: { [circuit]: { baseUrl: 'http://127.0.0.1:9/', failureThreshold: 1 } },
      tableName: testTableNames.toolkit,
      client: dynamoDb,
      onEvent: parts.onEvent,
      fetch: async () => new Response('down', { status: 500 }),
    });
    const handler = lambdaHandler(
      flat(parts)
        .use(serviceCalls(services))
        .handler(async (_event, context) => {
          await context.callService(circuit, 'users/1');
          return json(201, {});
        }),
    );
    expect((await handler(request(), lambdaContext())).statusCode).toBe(502);
    output.clear();
    const response = await handler(request(), lambdaContext());
    expectEverythingHappened(parts, response, {
      status: 503,
      securityEvent: 'circuit.rejected',
      metric: 'CircuitRejected',
    });
    expect(response.headers?.['Retry-After']).toBeDefined();
  });

  it('403 from the CSRF check', async () => {
    const parts = observability();
    const handler = lambdaHandler(
      flat(parts)
        .use(csrfProtection({ onEvent: parts.onEvent }))
        .handler(async () => json(201, {})),
    );
    const response = await handler(request({ 'x-csrf-token': 'forged' }), lambdaContext());
    expectEverythingHappened(parts, response, {
      status: 403,
      securityEvent: 'csrf.rejected',
      metric: 'CsrfRejected',
    });
  });

  it('504 from Middy’s early timeout', async () => {
    const parts = observability();
    const handler = lambdaHandler(
      flat(parts).handler(
        (_event, _context, { signal }) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => resolve(json(201, {})), 2_000);
            signal.addEventListener('abort', () => clearTimeout(timer));
          }),
      ),
    );
    const response = await handler(request(), lambdaContext(60));
    expectEverythingHappened(parts, response, { status: 504 });
    expect(output.audit()[0]).toMatchObject({
      outcome: 'error',
      metadata: { error: { name: 'TimeoutError' } },
    });
  });

  it('an answer returned early through respondEarly()', async () => {
    const parts = observability();
    const gate: MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
      before: (request) => {
        parts.onEvent({ type: 'rateLimit.hit', reason: 'over_limit' });
        return respondEarly(request, json(429, { message: 'Slow down' }, { 'Retry-After': '3' }));
      },
    };
    let handlerRan = false;
    const handler = lambdaHandler(
      flat(parts)
        .use(gate)
        .handler(async () => {
          handlerRan = true;
          return json(201, {});
        }),
    );
    const response = await handler(request(), lambdaContext());
    expect(handlerRan).toBe(false);
    expectEverythingHappened(parts, response, {
      status: 429,
      securityEvent: 'rateLimit.hit',
      metric: 'RateLimited',
    });
    expect(response.headers?.['Retry-After']).toBe('3');
    // One audit event for the request: the early path and `after` never both write it.
    expect(output.audit().filter((event) => event.eventType === 'http.request')).toHaveLength(1);
  });

  it("a replay from Powertools' own makeHandlerIdempotent: audited without its status", async () => {
    const parts = observability();
    const { replay, handlerRuns } = await replayedBooking(parts, makeHandlerIdempotent);
    expect(handlerRuns).toBe(1);
    expect(replay.statusCode).toBe(201);
    const requestEvents = output.audit().filter((event) => event.eventType === 'http.request');
    expect(requestEvents).toHaveLength(1);
    expect(requestEvents[0]).toMatchObject({
      correlationId: 'corr-7',
      path: '/bookings',
      outcome: 'unknown',
    });
    // Powertools hands the stored 201 to Middy only after the audit ran, so no status is claimed.
    expect(requestEvents[0]).not.toHaveProperty('statusCode');
    expect(requestEvents[0]?.metadata).not.toHaveProperty('response');
    for (const line of output.json().filter((candidate) => !candidate._aws))
      expect(line.correlation_id).toBe('corr-7');
    expect(parts.logger.getCorrelationId()).toBeUndefined();
  });

  it("a replay through Bulwark's idempotency(): the stored answer, audited and labelled", async () => {
    const parts = observability();
    // A public route: nothing authenticates here, so every caller shares the anonymous scope.
    const { replay, handlerRuns } = await replayedBooking(parts, (options) =>
      idempotency({ ...options, anonymous: true }),
    );
    expect(handlerRuns).toBe(1);
    expectEverythingHappened(parts, replay, { status: 201 });
    expect(JSON.parse(replay.body as string)).toEqual({ id: 'booking-1' });
    const requestEvents = output.audit().filter((event) => event.eventType === 'http.request');
    expect(requestEvents).toHaveLength(1);
    expect(requestEvents[0]).toMatchObject({ outcome: 'success', statusCode: 201 });
  });
});
