// Emitting catalog metrics through Powertools Metrics (EMF), typed so names, units and dimensions match the catalog.
import { Metrics } from '@aws-lambda-powertools/metrics';
import { assertNoProblems } from '../errors.js';
import {
  type ExtraDimension,
  type MetricName,
  metricCatalog,
  metricNamespace,
  metricNamespaceProblems,
  serviceDimension,
} from './catalog.js';

export interface CreateMetricsOptions {
  /** The `service` dimension of every metric; use the function's name. */
  readonly serviceName: string;
  /**
   * The CloudWatch namespace of every metric (1 to 255 letters, digits, spaces and `. - _ / # :`).
   * @default POWERTOOLS_METRICS_NAMESPACE when set (BulwarkStack sets it to its own namespace), else `Bulwark`
   */
  readonly namespace?: string | undefined;
}

/**
 * The namespace `createMetrics` uses: the option, else Powertools' own variable as Powertools reads it
 * (trimmed, empty meaning unset), else `Bulwark`. Powertools also prefers an explicit namespace to the
 * variable, so passing the result changes nothing but the fallback, which is Bulwark's instead of
 * Powertools' `default_namespace`.
 */
function chosenNamespace(option: string | undefined): { namespace: string; source: string } {
  if (option !== undefined) return { namespace: option, source: 'namespace' };
  const fromEnvironment = process.env['POWERTOOLS_METRICS_NAMESPACE']?.trim() ?? '';
  return fromEnvironment === ''
    ? { namespace: metricNamespace, source: 'namespace' }
    : { namespace: fromEnvironment, source: 'POWERTOOLS_METRICS_NAMESPACE' };
}

/**
 * A Powertools `Metrics` in the given namespace, else POWERTOOLS_METRICS_NAMESPACE's, else `Bulwark`.
 * Create one per function at module scope.
 *
 * @example
 * const metrics = createMetrics({ serviceName: 'users' });
 * const staging = createMetrics({ serviceName: 'users', namespace: 'Bulwark/staging' });
 */
export function createMetrics(options: CreateMetricsOptions): Metrics {
  const problems: string[] = [];
  if (typeof options?.serviceName !== 'string' || options.serviceName.trim() === '') {
    problems.push('serviceName must be a non-empty string');
  }
  const { namespace, source } = chosenNamespace(options?.namespace);
  problems.push(...metricNamespaceProblems(namespace).map((problem) => `${source} ${problem}`));
  assertNoProblems('createMetrics', problems);
  return new Metrics({ namespace, serviceName: options.serviceName });
}

/** The extra dimensions of a metric, each a short label (a reason code, a circuit name). */
export type MetricDimensions<N extends MetricName> = Readonly<Record<ExtraDimension<N>, string>>;

/** Options of {@link recordMetric}: required `dimensions` exactly when the catalog lists extra ones. */
export type RecordMetricArgs<N extends MetricName> = [ExtraDimension<N>] extends [never]
  ? [options?: { readonly value?: number | undefined }]
  : [options: { readonly dimensions: MetricDimensions<N>; readonly value?: number | undefined }];

/**
 * A dimension value safe for CloudWatch and bounded in cardinality: short, no control characters.
 * Values come from reason codes and circuit names, never from raw user input, but are cleaned anyway.
 */
export function dimensionValue(value: unknown): string {
  const cleaned = String(value ?? '')
    .trim()
    .replace(/[^A-Za-z0-9_.:/-]/g, '_')
    .slice(0, 64);
  return cleaned === '' ? 'unknown' : cleaned;
}

/** The key Powertools' logger writes the correlation id under, so one filter finds log and metric lines. */
const correlationIdMetadataKey = 'correlation_id';

/** The correlation id of the request `captureMetrics` is recording a function's metrics for. */
const requestCorrelationIds = new WeakMap<Metrics, string>();

/**
 * Puts `correlationId` on every EMF line `metrics` writes until it is cleared (undefined): the lines of
 * metrics flushed at the end of the request, as Powertools metadata, and each single-metric line
 * {@link recordMetric} writes at once, so `filter correlation_id = …` finds a request's metric lines too.
 */
export function setMetricsCorrelationId(metrics: Metrics, correlationId: string | undefined): void {
  if (correlationId === undefined) {
    requestCorrelationIds.delete(metrics);
    return;
  }
  requestCorrelationIds.set(metrics, correlationId);
  metrics.addMetadata(correlationIdMetadataKey, correlationId);
}

/**
 * Adds one data point of a catalog metric. Metrics without extra dimensions are buffered and flushed
 * with the invocation (one EMF line); metrics with extra dimensions are written at once as their own
 * EMF line, because one EMF line has one dimension set.
 *
 * @example
 * recordMetric(metrics, 'RateLimited');
 * recordMetric(metrics, 'AuthFailure', { dimensions: { reason: 'expired' } });
 * recordMetric(metrics, 'AuthLatency', { value: 12.5 });
 */
export function recordMetric<N extends MetricName>(
  metrics: Metrics,
  name: N,
  ...[options]: RecordMetricArgs<N>
): void {
  const definition = metricCatalog[name];
  const value = options?.value ?? 1;
  if (!Number.isFinite(value)) return;
  const extra = definition.dimensions.filter((dimension) => dimension !== serviceDimension);
  if (extra.length === 0) {
    metrics.addMetric(name, definition.unit, value);
    return;
  }
  const dimensions =
    (options as { dimensions?: Record<string, unknown> | undefined } | undefined)?.dimensions ?? {};
  const single = metrics.singleMetric();
  const correlationId = requestCorrelationIds.get(metrics);
  if (correlationId !== undefined) single.addMetadata(correlationIdMetadataKey, correlationId);
  for (const dimension of extra) single.addDimension(dimension, dimensionValue(dimensions[dimension]));
  single.addMetric(name, definition.unit, value);
}
