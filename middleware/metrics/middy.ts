// Middy adapter: flushes a function's metrics once per invocation (answers, errors and early answers alike) and records cold starts.
import { METRICS_KEY } from '@aws-lambda-powertools/commons';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { MiddlewareObj, Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { registerCleanup, runCleanup } from '../cleanup.js';
import { assertNoProblems } from '../errors.js';
import { setMetricsCorrelationId } from './record.js';

export interface CaptureMetricsOptions {
  /** Emit Powertools' `ColdStart` metric (dimensions service, function_name) on a cold start. @default true */
  readonly captureColdStartMetric?: boolean | undefined;
}

const metricsCleanup = 'bulwark.metrics';

/** Metadata on the EMF line of data points an invocation recorded after its flush (see captureMetrics). */
export const lateMetricsMetadataKey = 'recorded_after_answer';

/** The Metrics that captureMetrics has flushed at least once: what they buffer after that is late. */
const flushedMetrics = new WeakSet<Metrics>();

/**
 * Built on Powertools' `logMetrics`: its `before` records the cold start and registers Powertools'
 * own cleanup key; the flush is replaced by one that runs exactly once per invocation, also when the
 * handler throws or another middleware answers early, and that stays quiet when nothing was recorded
 * (Powertools would warn on every such invocation).
 *
 * @example
 * const metrics = createMetrics({ serviceName: 'users' });
 * export const handler = middy(fn).use(captureMetrics(metrics)).use(httpErrorHandler({ logger }));
 */
export function captureMetrics(metrics: Metrics, options: CaptureMetricsOptions = {}): MiddlewareObj {
  const problems: string[] = [];
  if (typeof metrics?.publishStoredMetrics !== 'function')
    problems.push('metrics must be a Powertools Metrics');
  assertNoProblems('captureMetrics', problems);
  const powertools = logMetrics(metrics, { captureColdStartMetric: options.captureColdStartMetric ?? true });
  const flush = () => {
    flushedMetrics.add(metrics);
    setMetricsCorrelationId(metrics, undefined);
    if (metrics.hasStoredMetrics()) {
      metrics.publishStoredMetrics();
      return;
    }
    // Dimensions and metadata added during an invocation must not leak into the next one.
    metrics.clearDimensions();
    metrics.clearMetadata();
  };

  const captureMetricsBefore = async (
    request: Request<unknown, unknown, Error, Context, Record<string, unknown>>,
  ) => {
    publishLateMetrics(metrics);
    // Powertools' before puts its own flush on its cleanup key; the once-only flush below replaces it,
    // and the key goes back to what it held (Bulwark's hook for every cleanup, registered again below).
    const earlierHook = request.internal[METRICS_KEY];
    await powertools.before?.(request);
    if (earlierHook === undefined) delete request.internal[METRICS_KEY];
    else request.internal[METRICS_KEY] = earlierHook;
    registerCleanup(request, metricsCleanup, flush);
    // Set by correlationIds(), used before this middleware as documented; a queue worker has none.
    const { correlationId } = request.context as Partial<{ correlationId: unknown }>;
    if (typeof correlationId === 'string') setMetricsCorrelationId(metrics, correlationId);
  };
  const captureMetricsAfterOrError = (request: Request) => runCleanup(request, metricsCleanup);
  return {
    before: captureMetricsBefore,
    after: captureMetricsAfterOrError,
    onError: captureMetricsAfterOrError,
  };
}

/**
 * Publishes, on a line of their own marked {@link lateMetricsMetadataKey}, the data points an earlier
 * invocation's work recorded after its flush: work its answer did not wait for (a route pipeline's 504
 * leaves its handler running). Otherwise they would go out with this invocation's line, counted under its
 * correlation id. In Lambda they can only be written here, when the environment is invoked again; one that
 * never is loses them. Data points recorded before the first invocation (at module load) are not late and
 * go with its line, as Powertools sends them.
 */
function publishLateMetrics(metrics: Metrics): void {
  if (!flushedMetrics.has(metrics) || !metrics.hasStoredMetrics()) return;
  metrics.addMetadata(lateMetricsMetadataKey, 'true');
  metrics.publishStoredMetrics();
}
