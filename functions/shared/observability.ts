// One function's logging, audit, metrics and security-event listener, built once at cold start and shared by its code.
import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { createRedactor } from '../../middleware/audit/redact.js';
import {
  createSecurityEventListener,
  defaultUnauditedEvents,
} from '../../middleware/audit/security-events.js';
import type { SecurityEventListener, SecurityEventType } from '../../middleware/events.js';
import { createMetrics } from '../../middleware/metrics/record.js';

export interface FunctionObservability {
  /** The function's logger: every line redacted, correlation id on every line. */
  readonly logger: Logger;
  /** Audit lines go through `logger`, under the `audit` key. */
  readonly auditLogger: AuditLogger;
  /** Namespace `Bulwark`, dimension `service` = the function name. */
  readonly metrics: Metrics;
  /** Pass as `onEvent` to every capability the function builds (authenticator, limiter, breaker…). */
  readonly onEvent: SecurityEventListener;
}

/**
 * A caught error as a log field: its name and message (`TimeoutError: …`), which a logged Error object
 * would bury in its stack; anything thrown that is no Error, as text.
 */
export const errorText = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** Personal data the sample handles (seed 001's sensitive fields), redacted from every line besides the secrets. */
const personalDataKeys = ['email', 'phone', 'password_hash'];

/**
 * Every route that authenticates runs inside the dispatcher's `audit()`, whose `http.request` line names the
 * caller and how it authenticated (`authMethod`): an `auth.success` line per request would only repeat it.
 * It is still counted (`AuthSuccess`, `AuthLatency`).
 */
const unaudited: readonly SecurityEventType[] = [...defaultUnauditedEvents, 'auth.success'];

const built = new Map<string, FunctionObservability>();

/**
 * The function's observability, made on first call and then shared, so the handler module and
 * `createHttpFunction` use the same logger, audit logger and metrics.
 *
 * @example
 * const { logger, onEvent } = functionObservability('users');
 * const encryptor = createFunctionEncryptor(environment, onEvent);
 */
export function functionObservability(functionName: string): FunctionObservability {
  let observability = built.get(functionName);
  if (!observability) {
    const redaction = { keys: personalDataKeys };
    const logger = new Logger({
      serviceName: functionName,
      jsonReplacerFn: createRedactor(redaction).replacer,
    });
    const auditLogger = new AuditLogger({ logger, redaction });
    const metrics = createMetrics({ serviceName: functionName });
    observability = {
      logger,
      auditLogger,
      metrics,
      onEvent: createSecurityEventListener({ auditLogger, metrics, unaudited }),
    };
    built.set(functionName, observability);
  }
  return observability;
}
