// A function's observability for tests: silent logger, audit events collected in memory, real metrics.
import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { FunctionObservability } from '../../functions/shared/observability.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import type { MetricName } from '../../middleware/metrics/catalog.js';
import { createMetrics } from '../../middleware/metrics/record.js';

/** What a worker or handler under test is given, plus the audit events it logged, in order. */
export function testObservability(serviceName: string): {
  observability: FunctionObservability;
  audits: AuditEvent[];
} {
  const audits: AuditEvent[] = [];
  return {
    audits,
    observability: {
      logger: new Logger({ serviceName, logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ sink: (event) => audits.push(event), logToConsole: false }),
      metrics: createMetrics({ serviceName }),
      onEvent: () => {},
    },
  };
}

/** The same observability with the function's real security-event listener: events become audit events and metrics. */
export function auditingSecurityEvents(observability: FunctionObservability): FunctionObservability {
  const { auditLogger, metrics } = observability;
  return { ...observability, onEvent: createSecurityEventListener({ auditLogger, metrics }) };
}

/**
 * The buffered value of one metric, as its next EMF line would carry it (a number, an array when
 * recorded more than once), or undefined when it was not recorded since the last flush.
 */
export function storedMetric(metrics: Metrics, name: MetricName): unknown {
  if (!metrics.hasStoredMetrics()) return undefined;
  return (metrics.serializeMetrics() as unknown as Record<string, unknown>)[name];
}
