// Cost of audit + metrics: per-request overhead against a bare middy handler, audit events against a bare Powertools logger.info.
import { closeSync, openSync, writeSync } from 'node:fs';
import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { createRedactor } from '../../middleware/audit/redact.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { createMetrics, recordMetric } from '../../middleware/metrics/record.js';
import type { BenchSuite, Measurement } from './harness.js';

const requestIterations = Number(process.env.BENCH_AUDIT_REQUESTS ?? 20_000);
const eventIterations = Number(process.env.BENCH_AUDIT_EVENTS ?? 50_000);
const rounds = Number(process.env.BENCH_AUDIT_ROUNDS ?? 10);

const principal: Principal = {
  id: 'user-alice',
  isM2M: false,
  clientId: 'web-client',
  email: 'alice@example.com',
  scopes: ['bookings/write'],
  roles: ['member'],
  tenantId: 'tenant-1',
  authMethod: 'jwt',
  claims: { sub: 'user-alice' },
};

const event = {
  version: '2.0',
  routeKey: 'POST /bookings',
  rawPath: '/bookings',
  rawQueryString: '',
  headers: {
    'content-type': 'application/json',
    'user-agent': 'bench/1',
    'x-correlation-id': 'bench-corr-1',
  },
  requestContext: {
    accountId: '000000000000',
    apiId: 'bench',
    domainName: 'localhost',
    domainPrefix: 'localhost',
    http: {
      method: 'POST',
      path: '/bookings',
      protocol: 'HTTP/1.1',
      sourceIp: '203.0.113.9',
      userAgent: 'bench/1',
    },
    requestId: 'bench-request',
    routeKey: 'POST /bookings',
    stage: '$default',
    time: '02/Jan/2030:03:04:05 +0000',
    timeEpoch: 1_893_553_445_000,
  },
  body: JSON.stringify({
    roomId: 'atlas',
    userId: 'user-alice',
    start: '2030-05-06T09:00:00Z',
    end: '2030-05-06T10:00:00Z',
  }),
  isBase64Encoded: false,
} as APIGatewayProxyEventV2;

const context = {
  functionName: 'bulwark-bookings',
  awsRequestId: 'bench',
  getRemainingTimeInMillis: () => 10_000,
} as unknown as Context;

/**
 * Every side writes its lines to /dev/null through `process.stdout.write`, synchronously: the same
 * sink for all, real serialisation and a real write, and a readable benchmark table afterwards.
 */
function withDevNullStdout<T>(run: () => Promise<T>): Promise<T> {
  const fd = openSync('/dev/null', 'w');
  const original = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    if (typeof chunk === 'string') writeSync(fd, chunk);
    else writeSync(fd, chunk);
    return true;
  }) as typeof process.stdout.write;
  return run().finally(() => {
    process.stdout.write = original;
    closeSync(fd);
  });
}

/**
 * Best mean (µs per call) of each side over interleaved rounds (A, B, C, A, B, C…): on a shared
 * machine the load drifts, and interleaving gives every side the same chances of a quiet round.
 */
async function timeInterleaved(
  iterations: number,
  sides: Readonly<Record<string, () => unknown>>,
): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (const [name, call] of Object.entries(sides)) {
    for (let index = 0; index < Math.min(5_000, iterations); index += 1) await call();
    best[name] = Number.POSITIVE_INFINITY;
  }
  for (let round = 0; round < rounds; round += 1) {
    for (const [name, call] of Object.entries(sides)) {
      const started = performance.now();
      for (let index = 0; index < iterations; index += 1) {
        const result = call();
        // Await only real promises: an await per synchronous log call would dwarf the call itself.
        if (result instanceof Promise) await result;
      }
      best[name] = Math.min(
        best[name] ?? Number.POSITIVE_INFINITY,
        ((performance.now() - started) * 1000) / iterations,
      );
    }
  }
  return best;
}

async function requestOverhead(): Promise<Measurement[]> {
  const handler = async () => json(201, { id: 'booking-1', roomId: 'atlas' });
  const bare = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(handler);
  const logger = new Logger({
    serviceName: 'bookings',
    logLevel: 'INFO',
    jsonReplacerFn: createRedactor().replacer,
  });
  const auditLogger = new AuditLogger({ logger });
  const metrics = createMetrics({ serviceName: 'bookings' });
  const observed = lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(correlationIds({ loggers: [logger] }))
      .use(captureMetrics(metrics))
      .use(audit({ auditLogger }))
      .handler(handler),
  );
  const withMetric = lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(correlationIds({ loggers: [logger] }))
      .use(captureMetrics(metrics))
      .use(audit({ auditLogger }))
      .handler(async () => {
        recordMetric(metrics, 'AuthSuccess');
        return handler();
      }),
  );
  const times = await timeInterleaved(requestIterations, {
    bare: () => bare(event, context),
    observed: () => observed(event, context),
    withMetric: () => withMetric(event, context),
  });
  const baseline = { name: 'bare middy handler', value: times.bare ?? Number.NaN };
  return [
    {
      id: 'audit.request',
      what: 'per request: correlationIds + captureMetrics + audit (1 audit line)',
      value: times.observed ?? Number.NaN,
      unit: 'µs',
      baseline,
    },
    {
      id: 'audit.request.metric',
      what: 'per request, same + 1 metric flushed as EMF',
      value: times.withMetric ?? Number.NaN,
      unit: 'µs',
      baseline,
    },
  ];
}

async function eventThroughput(): Promise<Measurement[]> {
  const plainLogger = new Logger({ serviceName: 'bookings', logLevel: 'INFO' });
  const redactingLogger = new Logger({
    serviceName: 'bookings',
    logLevel: 'INFO',
    jsonReplacerFn: createRedactor().replacer,
  });
  const auditPlain = new AuditLogger({ logger: plainLogger });
  const auditRedacting = new AuditLogger({ logger: redactingLogger });
  const securityEvent = {
    type: 'auth.failure' as const,
    reason: 'expired',
    principal,
    metadata: { method: 'jwt', path: '/bookings', httpMethod: 'POST' },
  };
  // The bare side logs the very object an audit line carries, already built.
  const similar = auditPlain.logSecurityEvent(securityEvent);
  const line = { level: 'INFO', message: 'AUDIT auth.failure', service: 'bookings', audit: similar };
  const times = await timeInterleaved(eventIterations, {
    raw: () => process.stdout.write(`${JSON.stringify({ ...line, timestamp: new Date().toISOString() })}\n`),
    bare: () => plainLogger.info('AUDIT auth.failure', { audit: similar }),
    audit: () => auditPlain.logSecurityEvent(securityEvent),
    auditRedacting: () => auditRedacting.logSecurityEvent(securityEvent),
  });
  const bareUs = times.bare ?? Number.NaN;
  const bare = { name: 'bare logger.info', value: bareUs };
  const target = { ratio: 1.5, better: 'lower' as const };
  return [
    {
      id: 'audit.event',
      what: 'audit event (build + redact + write), function logger without replacer',
      value: times.audit ?? Number.NaN,
      unit: 'µs',
      baseline: bare,
      target,
    },
    {
      id: 'audit.event.redacting',
      what: 'audit event through a logger whose replacer redacts every line',
      value: times.auditRedacting ?? Number.NaN,
      unit: 'µs',
      baseline: bare,
      target,
    },
    {
      id: 'audit.logger',
      what: 'bare Powertools logger.info of the same object',
      value: bareUs,
      unit: 'µs',
      baseline: { name: 'raw stdout.write(JSON)', value: times.raw ?? Number.NaN },
    },
  ];
}

const suite: BenchSuite = {
  name: 'audit + metrics',
  async run() {
    // Time per call: the lower, the better; ratios are ours over the baseline's.
    return withDevNullStdout(async () => [...(await requestOverhead()), ...(await eventThroughput())]);
  },
};

export default suite;
