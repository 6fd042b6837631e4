import { readFileSync } from 'node:fs';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  AuditLogger,
  audit,
  authenticate,
  captureMetrics,
  correlationHeaders,
  correlationIds,
  createMetrics,
  createRedactor,
  createSecurityEventListener,
  DevIssuer,
  httpErrorHandler,
  JwtVerifier,
  json,
  lambdaHandler,
  recordMetric,
} from '../../middleware/index.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { httpEvent, lambdaContext } from './fixtures.js';

enableMetricsOutput();
const output = captureStdout();

// Test scaffolding: an issuer whose tokens the example's verifier accepts.
const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/readme' });

// ---- The README example (module scope = cold start; `export const handler` there). ----
const logger = new Logger({
  serviceName: 'orders',
  logLevel: 'INFO',
  jsonReplacerFn: createRedactor().replacer,
});
const auditLogger = new AuditLogger({ logger });
const metrics = createMetrics({ serviceName: 'orders' });
const onEvent = createSecurityEventListener({ auditLogger, metrics });
const verifier = new JwtVerifier({
  issuers: [
    {
      issuer: issuer.issuer,
      tokenUse: 'access',
      clientId: issuer.clientId,
      jwks: issuer.jwks(),
      jwksUri: null,
    },
  ],
});

const handler = lambdaHandler(
  middy<APIGatewayProxyEventV2>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(correlationIds({ loggers: [logger] }))
    .use(captureMetrics(metrics))
    .use(audit({ auditLogger, excludePaths: ['/health'] }))
    .use(httpErrorHandler({ logger }))
    .use(authenticate({ jwt: verifier, onEvent }))
    .handler(async (event, { principal, correlationId }) => {
      const orderId = event.pathParameters?.id ?? 'unknown';
      auditLogger.logAdminAction('order.refunded', { orderId }, principal);
      recordMetric(metrics, 'WebhookDelivered');
      return json(200, { orderId, refundedBy: principal.id, forwarded: correlationHeaders(correlationId) });
    }),
);
// ---- end of the example ----

describe('the README example', () => {
  it('authenticates, audits, counts and returns the correlation id', async () => {
    const token = await issuer.mint({ sub: 'admin-1', roles: ['admin'] });
    const event = httpEvent({
      method: 'POST',
      path: '/orders/o-1/refund',
      headers: { authorization: `Bearer ${token}`, 'x-correlation-id': 'readme-1' },
    });
    event.pathParameters = { id: 'o-1' };
    const response = await handler(event, lambdaContext());
    expect(response).toMatchObject({ statusCode: 200, headers: { 'x-correlation-id': 'readme-1' } });
    expect(JSON.parse(response.body ?? '{}')).toMatchObject({
      forwarded: { 'x-correlation-id': 'readme-1' },
    });
    expect(output.audit().map((event) => event.eventType)).toEqual([
      'auth.success',
      'admin.action',
      'http.request',
    ]);
    expect(output.emf()[0]).toMatchObject({ service: 'orders', AuthSuccess: 1, WebhookDelivered: 1 });
    expect(output.lines().join('\n')).not.toContain(token);
  });
});

describe('the public API, middleware/index.ts', () => {
  it('names every export, leaving out the helpers that only check the toolkit’s own options', async () => {
    const source = readFileSync(new URL('../../middleware/index.ts', import.meta.url), 'utf8');
    // A module's every export would be public again, its internals with it.
    expect(source).not.toMatch(/export \*/);
    const api = await import('../../middleware/index.js');
    for (const internal of [
      'warmOptionProblems',
      'checkTableName',
      'assertNoProblems',
      'routineRequestEventTypes',
      'policyProblems',
      'rateLimiterOptionProblems',
      'resolveCircuitOptions',
    ]) {
      expect(api, internal).not.toHaveProperty(internal);
    }
    expect(api).toHaveProperty('provideEncryptor');
    expect(api).toHaveProperty('Encryptor');
  });

  it("keeps JwtVerifier's token cache internal: README documents only its cache option", async () => {
    const api = await import('../../middleware/index.js');
    expect(api).not.toHaveProperty('TokenCache');
    expect(api).toHaveProperty('JwtVerifier');
  });
});
