// Reports a queue write that failed after its request already succeeded: counted, logged and audited, never thrown.
import { recordMetric } from '../../middleware/metrics/record.js';
import { errorText, type FunctionObservability } from './observability.js';

export interface EnqueueFailure {
  /** The catalog metric counting it, which the stack alarms on. */
  readonly metric: 'EmailEnqueueFailed' | 'WebhookEnqueueFailed';
  /** The log line, saying what was not enqueued and that the request itself stands. */
  readonly message: string;
  /** The audit event type, e.g. `email.enqueue_failed`. */
  readonly eventType: string;
  readonly error: unknown;
  readonly userId?: string;
  readonly correlationId?: string | undefined;
  /** Ids only: audit lines must not carry personal data in clear. */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/**
 * Counts (`metric`), logs (error level) and audits (`outcome: error`) a failed enqueue. Used where a committed change
 * enqueues follow-up work (emails, webhooks): answering 5xx then would make the client retry a change
 * that already happened, so the failure is made visible instead.
 *
 * @example
 * reportEnqueueFailure(observability, {
 *   metric: 'EmailEnqueueFailed',
 *   message: 'Emails not enqueued',
 *   eventType: 'email.enqueue_failed',
 *   error,
 * });
 */
export function reportEnqueueFailure(
  { logger, auditLogger, metrics }: Pick<FunctionObservability, 'logger' | 'auditLogger' | 'metrics'>,
  failure: EnqueueFailure,
): void {
  recordMetric(metrics, failure.metric);
  const { error, userId, correlationId, metadata } = failure;
  logger.error(failure.message, {
    // A queue worker's logger has no correlation id set: its messages each bring their own.
    ...(correlationId ? { correlation_id: correlationId } : {}),
    ...(userId ? { userId } : {}),
    ...metadata,
    error: errorText(error),
  });
  auditLogger.log({
    eventType: failure.eventType,
    outcome: 'error',
    ...(userId ? { userId } : {}),
    ...(correlationId ? { correlationId } : {}),
    reason: error instanceof Error ? error.name : 'error',
    ...(metadata ? { metadata } : {}),
  });
}
