import { cleanupMiddlewares } from '@aws-lambda-powertools/commons';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { correlationIds } from '../../middleware/audit/middy.js';
import { respondEarly } from '../../middleware/cleanup.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import {
  isCatalogMetric,
  metricCatalog,
  metricDefinitions,
  metricNamespace,
} from '../../middleware/metrics/catalog.js';
import { captureMetrics, lateMetricsMetadataKey } from '../../middleware/metrics/middy.js';
import { createMetrics, dimensionValue, recordMetric } from '../../middleware/metrics/record.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { captureStdout, emfProblems, enableMetricsOutput } from '../helpers/log-capture.js';

enableMetricsOutput();
const output = captureStdout();

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('the metric catalog', () => {
  it('lists each metric once, keyed by its name, in namespace Bulwark with service first', () => {
    expect(metricNamespace).toBe('Bulwark');
    for (const [key, definition] of Object.entries(metricCatalog)) {
      expect(definition.name).toBe(key);
      expect(definition.dimensions[0]).toBe('service');
      expect(new Set(definition.dimensions).size).toBe(definition.dimensions.length);
      expect(definition.meaning.length).toBeGreaterThan(20);
      expect(['Count', 'Milliseconds']).toContain(definition.unit);
    }
    expect(metricDefinitions.map((definition) => definition.name)).toEqual(
      expect.arrayContaining([
        'AuthSuccess',
        'AuthFailure',
        'AccessDenied',
        'RateLimited',
        'RateLimitStoreError',
        'CircuitOpened',
        'CircuitRejected',
        'DataKeyCacheHit',
        'KmsRequest',
        'EmailSent',
        'EmailFailed',
        'EmailRejected',
        'WebhookDelivered',
        'WebhookFailed',
        'AuthLatency',
        'ColdStart',
      ]),
    );
    expect(isCatalogMetric('AuthFailure')).toBe(true);
    expect(isCatalogMetric('toString')).toBe(false);
  });

  it('emits every catalog metric as EMF that matches the catalog', () => {
    const metrics = createMetrics({ serviceName: 'users' });
    for (const definition of metricDefinitions) {
      if (definition.name === 'ColdStart') continue;
      const extra = definition.dimensions.filter((dimension) => dimension !== 'service');
      const dimensions = Object.fromEntries(extra.map((dimension) => [dimension, `${dimension}-value`]));
      (recordMetric as (m: unknown, n: string, o: unknown) => void)(metrics, definition.name, {
        ...(extra.length > 0 ? { dimensions } : {}),
        value: 3,
      });
    }
    metrics.publishStoredMetrics();
    const lines = output.emf();
    // One line for the metrics with only `service`, one per metric with its own dimensions.
    const withExtra = metricDefinitions.filter((d) => d.name !== 'ColdStart' && d.dimensions.length > 1);
    expect(lines).toHaveLength(1 + withExtra.length);
    for (const line of lines) expect(emfProblems(line, metricCatalog, metricNamespace)).toEqual([]);
    const emitted = lines.flatMap((line) =>
      line._aws.CloudWatchMetrics[0]?.Metrics.map((metric) => metric.Name),
    );
    expect(new Set(emitted)).toEqual(
      new Set(metricDefinitions.map((d) => d.name).filter((n) => n !== 'ColdStart')),
    );
    const failure = lines.find((line) => line.AuthFailure !== undefined);
    expect(failure).toMatchObject({ service: 'users', reason: 'reason-value', AuthFailure: 3 });
  });

  it('keeps dimension values short and safe, and skips values that are not numbers', () => {
    expect(dimensionValue('bad signature\r\n')).toBe('bad_signature');
    expect(dimensionValue('')).toBe('unknown');
    expect(dimensionValue(undefined)).toBe('unknown');
    expect(dimensionValue('x'.repeat(100))).toHaveLength(64);
    const metrics = createMetrics({ serviceName: 'users' });
    recordMetric(metrics, 'AuthLatency', { value: Number.NaN });
    expect(metrics.hasStoredMetrics()).toBe(false);
  });

  it('rejects a missing service name', () => {
    expect(() => createMetrics({ serviceName: ' ' })).toThrow(InvalidOptionsError);
  });
});

describe('createMetrics namespace', () => {
  /** The namespace of the one EMF line a metric recorded through `metrics` is written as. */
  function emittedNamespace(metrics: ReturnType<typeof createMetrics>): string | undefined {
    recordMetric(metrics, 'RateLimited');
    metrics.publishStoredMetrics();
    const lines = output.emf();
    expect(lines).toHaveLength(1);
    output.clear();
    return lines[0]?._aws.CloudWatchMetrics[0]?.Namespace;
  }

  it('is Bulwark when neither the option nor POWERTOOLS_METRICS_NAMESPACE names one', () => {
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', undefined);
    expect(emittedNamespace(createMetrics({ serviceName: 'users' }))).toBe('Bulwark');
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', '  ');
    expect(emittedNamespace(createMetrics({ serviceName: 'users' }))).toBe('Bulwark');
  });

  it("is POWERTOOLS_METRICS_NAMESPACE's when set, as a stack sets it, trimmed as Powertools reads it", () => {
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', ' Bulwark/Bulwark-dev ');
    expect(emittedNamespace(createMetrics({ serviceName: 'users' }))).toBe('Bulwark/Bulwark-dev');
  });

  it('is the option when given, over POWERTOOLS_METRICS_NAMESPACE, for its single-metric lines too', () => {
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', 'Bulwark/Bulwark-dev');
    const metrics = createMetrics({ serviceName: 'users', namespace: 'Bulwark/staging' });
    expect(emittedNamespace(metrics)).toBe('Bulwark/staging');
    recordMetric(metrics, 'AuthFailure', { dimensions: { reason: 'expired' } });
    expect(output.emf().map((line) => line._aws.CloudWatchMetrics[0]?.Namespace)).toEqual([
      'Bulwark/staging',
    ]);
  });

  it('refuses a namespace CloudWatch would refuse, naming where it came from', () => {
    for (const namespace of ['', 'a'.repeat(256), 'Bulwark dev!', 'AWS/Lambda', '   ']) {
      expect(() => createMetrics({ serviceName: 'users', namespace })).toThrow(InvalidOptionsError);
    }
    expect(createMetrics({ serviceName: 'users', namespace: 'a'.repeat(255) })).toBeDefined();
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', 'Bulwark?dev');
    expect(() => createMetrics({ serviceName: 'users' })).toThrow(
      /POWERTOOLS_METRICS_NAMESPACE may hold only letters/,
    );
  });
});

function metricsPipeline(handler: () => Promise<unknown>) {
  const metrics = createMetrics({ serviceName: 'bookings' });
  const wrapped = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(captureMetrics(metrics))
    .use(httpErrorHandler({ logger: { error: () => {} } }))
    .handler(handler as never);
  return { metrics, wrapped };
}

describe('captureMetrics()', () => {
  it('records a cold start once, with the function name, and flushes every invocation', async () => {
    vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', 'on-demand');
    let calls = 0;
    const { metrics, wrapped } = metricsPipeline(async () => {
      calls += 1;
      recordMetric(metrics, 'RateLimited');
      return json(200, {});
    });
    await wrapped(httpEvent(), lambdaContext());
    await wrapped(httpEvent(), lambdaContext());
    expect(calls).toBe(2);
    const lines = output.emf();
    for (const line of lines) expect(emfProblems(line, metricCatalog, metricNamespace)).toEqual([]);
    const coldStarts = lines.filter((line) => line.ColdStart !== undefined);
    expect(coldStarts).toEqual([
      expect.objectContaining({ function_name: 'bulwark-users', service: 'bookings' }),
    ]);
    expect(lines.filter((line) => line.RateLimited !== undefined)).toHaveLength(2);
  });

  it('flushes when the handler throws', async () => {
    const { metrics, wrapped } = metricsPipeline(async () => {
      recordMetric(metrics, 'CircuitRejected', { dimensions: { circuit: 'users' } });
      recordMetric(metrics, 'AccessDenied');
      throw new Error('boom');
    });
    const response = await wrapped(httpEvent(), lambdaContext());
    expect(response.statusCode).toBe(500);
    expect(output.emf().map((line) => line._aws.CloudWatchMetrics[0]?.Metrics[0]?.Name)).toEqual([
      'CircuitRejected',
      'AccessDenied',
    ]);
    expect(metrics.hasStoredMetrics()).toBe(false);
  });

  it('stays quiet when nothing was recorded, and drops the invocation’s dimensions', async () => {
    const { metrics, wrapped } = metricsPipeline(async () => {
      metrics.addDimension('tenant', 'one-off');
      return json(200, {});
    });
    await wrapped(httpEvent(), lambdaContext());
    expect(output.lines()).toEqual([]);
    recordMetric(metrics, 'KmsRequest');
    metrics.publishStoredMetrics();
    expect(output.emf()[0]?.tenant).toBeUndefined();
  });

  it('flushes exactly once when a middleware answers early, through either cleanup entry point', async () => {
    const metrics = createMetrics({ serviceName: 'bookings' });
    const early = (via: 'bulwark' | 'powertools') =>
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(captureMetrics(metrics))
        .use({
          before: async (request) => {
            recordMetric(metrics, 'RateLimited');
            if (via === 'bulwark') return respondEarly(request, json(429, {}));
            await cleanupMiddlewares(request as never);
            await cleanupMiddlewares(request as never);
            return json(429, {});
          },
        })
        .handler(async () => json(200, {}));
    expect((await early('bulwark')(httpEvent(), lambdaContext())).statusCode).toBe(429);
    expect((await early('powertools')(httpEvent(), lambdaContext())).statusCode).toBe(429);
    expect(output.emf().filter((line) => line.RateLimited !== undefined)).toHaveLength(2);
  });

  it("puts the request's correlation id on its metric lines, flushed and single alike, and on no later request's", async () => {
    const metrics = createMetrics({ serviceName: 'bookings' });
    const record = async () => {
      recordMetric(metrics, 'AccessDenied');
      recordMetric(metrics, 'CircuitRejected', { dimensions: { circuit: 'users' } });
      return json(200, {});
    };
    const correlated = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(correlationIds())
        .use(captureMetrics(metrics))
        .handler(record),
    );
    const uncorrelated = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(captureMetrics(metrics))
      .handler(record);
    await correlated(httpEvent({ headers: { 'x-correlation-id': 'order-1' } }), lambdaContext());
    await correlated(httpEvent({ headers: { 'x-correlation-id': 'order-2' } }), lambdaContext());
    await uncorrelated(httpEvent(), lambdaContext());
    const namesAndIds = output
      .emf()
      .filter((line) => line.ColdStart === undefined)
      .map((line) => [line._aws.CloudWatchMetrics[0]?.Metrics[0]?.Name, line.correlation_id]);
    expect(namesAndIds).toEqual([
      ['CircuitRejected', 'order-1'],
      ['AccessDenied', 'order-1'],
      ['CircuitRejected', 'order-2'],
      ['AccessDenied', 'order-2'],
      ['CircuitRejected', undefined],
      ['AccessDenied', undefined],
    ]);
  });

  it("publishes what an invocation recorded after its answer on a line of its own, not under the next request's id", async () => {
    const metrics = createMetrics({ serviceName: 'users' });
    let lateWork: Promise<void> = Promise.resolve();
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(correlationIds())
        .use(captureMetrics(metrics))
        .handler(async (event) => {
          recordMetric(metrics, 'AccessDenied');
          if (event.rawPath === '/slow') {
            // Work the answer does not wait for, as a route's handler left running after its 504.
            lateWork = new Promise((resolve) => setImmediate(resolve)).then(() =>
              recordMetric(metrics, 'RateLimitStoreError'),
            );
          }
          return json(200, {});
        }),
    );
    recordMetric(metrics, 'KmsRequest');
    await handler(httpEvent({ path: '/slow', headers: { 'x-correlation-id': 'order-1' } }), lambdaContext());
    await lateWork;
    await handler(httpEvent({ headers: { 'x-correlation-id': 'order-2' } }), lambdaContext());
    const lines = output
      .emf()
      .filter((line) => line.ColdStart === undefined)
      .map((line) => ({
        names: line._aws.CloudWatchMetrics[0]?.Metrics.map((metric) => metric.Name),
        correlationId: line.correlation_id,
        late: line[lateMetricsMetadataKey],
      }));
    expect(lines).toEqual([
      // Recorded at module load, before any invocation: the first invocation's, as Powertools sends them.
      { names: ['KmsRequest', 'AccessDenied'], correlationId: 'order-1', late: undefined },
      { names: ['RateLimitStoreError'], correlationId: undefined, late: 'true' },
      { names: ['AccessDenied'], correlationId: 'order-2', late: undefined },
    ]);
  });

  it('rejects something that is not a Metrics', () => {
    expect(() => captureMetrics({} as never)).toThrow(InvalidOptionsError);
  });
});
