// The consumer of the security-event hook: turns each SecurityEvent into its audit line and its catalog metric.
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { assertNoProblems } from '../errors.js';
import type { SecurityEvent, SecurityEventListener, SecurityEventType } from '../events.js';
import { recordMetric } from '../metrics/record.js';
import { arrayOption, shownValue } from '../options.js';
import { AuditLogger } from './audit-logger.js';

type MetricRecorder = (metrics: Metrics, event: SecurityEvent) => void;

const circuitOf = (event: SecurityEvent) =>
  String(event.metadata?.['circuit'] ?? event.metadata?.['name'] ?? event.metadata?.['service'] ?? 'unknown');

const reasonOf = (event: SecurityEvent) => String(event.reason ?? event.metadata?.['reason'] ?? 'unknown');

/** Verification time, when the reporter measured it. */
function recordLatency(metrics: Metrics, event: SecurityEvent): void {
  const duration = event.durationMs ?? event.metadata?.['durationMs'];
  if (typeof duration === 'number' && Number.isFinite(duration) && duration >= 0) {
    recordMetric(metrics, 'AuthLatency', { value: duration });
  }
}

/**
 * The metric each event type counts (none for types that are audit-only). A `Record` over the union,
 * so adding an event type without deciding its metric is a type error.
 */
export const securityEventMetrics: Readonly<Record<SecurityEventType, MetricRecorder | undefined>> = {
  'auth.success': (metrics, event) => {
    recordMetric(metrics, 'AuthSuccess');
    recordLatency(metrics, event);
  },
  'auth.failure': (metrics, event) => {
    recordMetric(metrics, 'AuthFailure', { dimensions: { reason: reasonOf(event) } });
    recordLatency(metrics, event);
  },
  'access.denied': (metrics) => recordMetric(metrics, 'AccessDenied'),
  'apiKey.used': undefined,
  'apiKey.created': undefined,
  'apiKey.revoked': undefined,
  'apiKey.rehashed': undefined,
  'replay.rejected': (metrics) => recordMetric(metrics, 'ReplayRejected'),
  'csrf.rejected': (metrics) => recordMetric(metrics, 'CsrfRejected'),
  'rateLimit.hit': (metrics) => recordMetric(metrics, 'RateLimited'),
  'rateLimit.storeError': (metrics) => recordMetric(metrics, 'RateLimitStoreError'),
  'circuit.opened': (metrics, event) =>
    recordMetric(metrics, 'CircuitOpened', { dimensions: { circuit: circuitOf(event) } }),
  'circuit.halfOpen': undefined,
  'circuit.closed': undefined,
  'circuit.rejected': (metrics, event) =>
    recordMetric(metrics, 'CircuitRejected', { dimensions: { circuit: circuitOf(event) } }),
  'circuit.storeError': (metrics) => recordMetric(metrics, 'CircuitStoreError'),
  'secret.accessed': undefined,
  'dataKey.cacheHit': (metrics) => recordMetric(metrics, 'DataKeyCacheHit'),
  'kms.request': (metrics) => recordMetric(metrics, 'KmsRequest'),
  'decryption.failed': undefined,
  'admin.action': undefined,
};

/**
 * High-volume events that are counted but not written as audit lines: they are not security decisions.
 * A failed one is (a KMS call refused or that threw): the listener writes it all the same.
 */
export const defaultUnauditedEvents: readonly SecurityEventType[] = ['dataKey.cacheHit', 'kms.request'];

export interface SecurityEventListenerOptions {
  /** Writes each event's audit line. @default none: metrics only */
  readonly auditLogger?: AuditLogger | undefined;
  /** Records each event's catalog metric. @default none: audit lines only */
  readonly metrics?: Metrics | undefined;
  /**
   * Event types counted in metrics but not written as audit lines, as an array or a Set; an event its
   * reporter marked failed (`metadata.outcome` `'error'`: a KMS call or secret read that threw, or
   * `'failure'`: a refusal) is written whatever its type. Add
   * `'auth.success'` where every route that authenticates runs inside `audit()`: its `http.request` line
   * names the principal and its `authMethod` already.
   * @default ['dataKey.cacheHit', 'kms.request']
   */
  readonly unaudited?: readonly SecurityEventType[] | ReadonlySet<SecurityEventType> | undefined;
}

/**
 * The listener to pass as `onEvent` to every capability (authenticator, API key store, limiter, breaker, encryptor,
 * config loader). It never throws: `emitEvent` guards it too, but a listener is also safe on its own.
 *
 * @example
 * const onEvent = createSecurityEventListener({ auditLogger, metrics });
 * const limiter = new RateLimiter({ ..., onEvent });
 */
export function createSecurityEventListener(options: SecurityEventListenerOptions): SecurityEventListener {
  const problems: string[] = [];
  if (options?.auditLogger !== undefined && !(options.auditLogger instanceof AuditLogger)) {
    problems.push('auditLogger must be an AuditLogger');
  }
  if (options?.metrics !== undefined && typeof options.metrics.addMetric !== 'function') {
    problems.push('metrics must be a Powertools Metrics');
  }
  if (options?.auditLogger === undefined && options?.metrics === undefined) {
    problems.push('give an auditLogger, metrics or both');
  }
  // A misspelt type would match no event, and the lines it was meant to leave out would still be written.
  const givenUnaudited = options?.unaudited instanceof Set ? [...options.unaudited] : options?.unaudited;
  for (const type of arrayOption(problems, 'unaudited', givenUnaudited, 'or a Set of event types')) {
    if (typeof type !== 'string' || !Object.hasOwn(securityEventMetrics, type)) {
      problems.push(`unaudited entries must be event types such as 'kms.request' (got ${shownValue(type)})`);
    }
  }
  assertNoProblems('createSecurityEventListener', problems);
  const { auditLogger, metrics } = options;
  const unaudited = new Set(options.unaudited ?? defaultUnauditedEvents);

  return function onSecurityEvent(event: SecurityEvent): void {
    if (auditLogger && (!unaudited.has(event.type) || reportedFailed(event))) {
      auditLogger.logSecurityEvent(event);
    }
    const record = metrics ? securityEventMetrics[event.type] : undefined;
    if (!metrics || !record) return;
    try {
      record(metrics, event);
    } catch {
      // A metric that cannot be recorded must not hide the event's audit line or fail the request.
    }
  };
}

/** Whether the reporter marked `event` failed, as the audit line's outcome reads it: it threw or was refused. */
function reportedFailed(event: SecurityEvent): boolean {
  const outcome = event.metadata?.['outcome'];
  return outcome === 'error' || outcome === 'failure';
}
