// Middy's `internal` option hands one `request.internal` to every invocation: nothing a request owns may
// live there, or it grows with each request and one caller's answer carries another's headers.
// Powertools' injectLambdaContext and logMetrics (inside captureMetrics) give the request a shallow copy of
// it, so these pipelines start with middlewares that do not: the shared object reaches Bulwark's.

import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { Logger } from '@aws-lambda-powertools/logger';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate } from '../../middleware/auth/middy.js';
import { registerResponseCleanup, runCleanup, runResponseCleanupOnError } from '../../middleware/cleanup.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { createMetrics } from '../../middleware/metrics/record.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';

enableMetricsOutput();
const output = captureStdout();
const dynamoDb = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });
const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
const verifier = devIssuerVerifier(issuer);

type Middleware = MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>;

/** A response edit that logs, each time it runs, the correlation id of the request that registered it. */
function editLog(): { middleware: Middleware; ranFor: string[] } {
  const ranFor: string[] = [];
  const middleware: Middleware = {
    before: (request) => {
      const registeredFor = request.event.headers['x-correlation-id'] as string;
      registerResponseCleanup(request, 'test.editLog', (response) => {
        ranFor.push(registeredFor);
        return response;
      });
    },
    after: (request) => runCleanup(request, 'test.editLog'),
    onError: (request) => runResponseCleanupOnError(request, 'test.editLog'),
  };
  return { middleware, ranFor };
}

function sent(correlationId: string, { sub, key }: { sub?: string; key?: string } = {}) {
  return {
    correlationId,
    sub,
    event: async () => {
      const token = sub === undefined ? 'not-a-jwt' : await issuer.mint({ sub });
      return httpEvent({
        method: 'POST',
        path: '/bookings',
        headers: {
          'x-correlation-id': correlationId,
          authorization: `Bearer ${token}`,
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        body: '{}',
      });
    },
  };
}

describe('one request.internal shared by every invocation (middy({ internal }))', () => {
  it('gives each caller its own audit line, correlation id, rate-limit headers and metrics flush, and keeps no earlier request', async () => {
    const logger = new Logger({ serviceName: 'bookings', logLevel: 'INFO' });
    const auditLogger = new AuditLogger({ logger });
    const metrics = createMetrics({ serviceName: 'bookings' });
    const onEvent = createSecurityEventListener({ auditLogger, metrics, unaudited: ['auth.success'] });
    const internal: Record<string, unknown> = {};
    const edits = editLog();
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>({ internal })
        .use(correlationIds({ loggers: [logger] }))
        .use(captureMetrics(metrics, { captureColdStartMetric: false }))
        .use(audit({ auditLogger }))
        .use(edits.middleware)
        .use(httpErrorHandler({ logger }))
        .use(authenticate({ jwt: verifier, onEvent }))
        .use(
          rateLimit({
            policy: { name: 'shared-internal', limit: 2, windowSec: 60 },
            keyBy: 'user',
            store: new MemoryCounterStore(),
            onEvent,
          }),
        )
        .use(
          idempotency({
            persistenceStore: idempotencyStore({ client: dynamoDb }),
            config: new IdempotencyConfig({ throwOnNoIdempotencyKey: true }),
          }),
        )
        .handler(async () => json(201, { booked: true })),
    );
    const [aliceKey, bobKey, carolKey] = [randomUUID(), randomUUID(), randomUUID()];
    // A fresh answer, its replay, a refusal by the limit, an answer given before the limit ran, and
    // callers whose budget no earlier caller spent.
    const requests = [
      sent('corr-1', { sub: 'alice', key: aliceKey }),
      sent('corr-2', { sub: 'alice', key: aliceKey }),
      sent('corr-3', { sub: 'alice', key: randomUUID() }),
      sent('corr-4', { sub: 'bob', key: bobKey }),
      sent('corr-5'),
      sent('corr-6', { sub: 'carol', key: carolKey }),
    ];
    const answers = [];
    for (const request of requests) {
      const response = await handler(await request.event(), lambdaContext());
      answers.push({
        status: response.statusCode,
        correlationId: response.headers?.['x-correlation-id'],
        remaining: response.headers?.['X-RateLimit-Remaining'],
        replayed: response.headers?.['Idempotent-Replayed'],
        // Each request flushed its own metrics: none wait for a later one.
        metricsLeft: metrics.hasStoredMetrics(),
      });
    }

    expect(answers).toEqual([
      { status: 201, correlationId: 'corr-1', remaining: '1', replayed: undefined, metricsLeft: false },
      { status: 201, correlationId: 'corr-2', remaining: '0', replayed: 'true', metricsLeft: false },
      { status: 429, correlationId: 'corr-3', remaining: '0', replayed: undefined, metricsLeft: false },
      { status: 201, correlationId: 'corr-4', remaining: '1', replayed: undefined, metricsLeft: false },
      { status: 401, correlationId: 'corr-5', remaining: undefined, replayed: undefined, metricsLeft: false },
      { status: 201, correlationId: 'corr-6', remaining: '1', replayed: undefined, metricsLeft: false },
    ]);
    const requestLines = output
      .audit()
      .filter((event) => event.eventType === 'http.request')
      .map(({ correlationId, statusCode, userId }) => ({ correlationId, statusCode, userId }));
    expect(requestLines).toEqual([
      { correlationId: 'corr-1', statusCode: 201, userId: 'alice' },
      { correlationId: 'corr-2', statusCode: 201, userId: 'alice' },
      { correlationId: 'corr-3', statusCode: 429, userId: 'alice' },
      { correlationId: 'corr-4', statusCode: 201, userId: 'bob' },
      { correlationId: 'corr-5', statusCode: 401, userId: undefined },
      { correlationId: 'corr-6', statusCode: 201, userId: 'carol' },
    ]);
    // Every request's edit ran once, on its own answer: no earlier request's is kept and run again.
    expect(edits.ranFor).toEqual(requests.map((request) => request.correlationId));
    expect(Object.keys(internal).filter((key) => key.startsWith('bulwark'))).toEqual([]);
  });

  it("audits every replay Powertools' makeHandlerIdempotent answers through its cleanup hook", async () => {
    const logger = new Logger({ serviceName: 'bookings', logLevel: 'INFO' });
    const auditLogger = new AuditLogger({ logger });
    const internal: Record<string, unknown> = {};
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>({ internal })
        .use(correlationIds({ loggers: [logger] }))
        .use(audit({ auditLogger }))
        .use(httpErrorHandler({ logger }))
        .use(
          makeHandlerIdempotent({
            persistenceStore: idempotencyStore({ client: dynamoDb }),
            config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
          }) as Middleware,
        )
        .handler(async () => json(201, { booked: true })),
    );
    const key = randomUUID();
    for (const correlationId of ['corr-1', 'corr-2', 'corr-3']) {
      const event = httpEvent({
        method: 'POST',
        path: '/bookings',
        headers: { 'x-correlation-id': correlationId, 'idempotency-key': key },
      });
      expect((await handler(event, lambdaContext())).statusCode).toBe(201);
    }
    // Powertools runs the hook before it hands Middy the stored answer: a replay's line has no status.
    const requestLines = output
      .audit()
      .filter((event) => event.eventType === 'http.request')
      .map(({ correlationId, outcome }) => ({ correlationId, outcome }));
    expect(requestLines).toEqual([
      { correlationId: 'corr-1', outcome: 'success' },
      { correlationId: 'corr-2', outcome: 'unknown' },
      { correlationId: 'corr-3', outcome: 'unknown' },
    ]);
  });

  it("answers a new caller with its own rate limit, not the strictest earlier caller's", async () => {
    const internal: Record<string, unknown> = {};
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>({ internal })
        .use(correlationIds())
        .use(httpErrorHandler({ logger: { error: () => {} } }))
        .use(
          rateLimit({
            policy: { name: 'shared-internal-ip', limit: 2, windowSec: 60 },
            keyBy: 'ip',
            store: new MemoryCounterStore(),
          }),
        )
        .handler(async (_event, context) => json(200, { remaining: context.rateLimit.remaining })),
    );
    const from = async (sourceIp: string) => {
      const event = httpEvent();
      event.requestContext.http.sourceIp = sourceIp;
      const response = await handler(event, lambdaContext());
      return {
        status: response.statusCode,
        remaining: response.headers?.['X-RateLimit-Remaining'],
        handlerSaw: response.statusCode === 200 ? JSON.parse(response.body as string).remaining : undefined,
      };
    };
    const answers = [];
    for (const sourceIp of ['203.0.113.1', '203.0.113.1', '203.0.113.1', '203.0.113.2']) {
      answers.push(await from(sourceIp));
    }
    expect(answers).toEqual([
      { status: 200, remaining: '1', handlerSaw: 1 },
      { status: 200, remaining: '0', handlerSaw: 0 },
      { status: 429, remaining: '0', handlerSaw: undefined },
      { status: 200, remaining: '1', handlerSaw: 1 },
    ]);
  });
});
