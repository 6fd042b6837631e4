// A function's observability for tests: silent logger, audit events collected in memory, real metrics.
import { Logger } from '@aws-lambda-powertools/logger';
import type { FunctionObservability } from '../../functions/shared/observability.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
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
