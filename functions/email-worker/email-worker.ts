// The email worker's core: validate, render, send once (idempotent, circuit-guarded), back off on failure, dead-letter the unsendable.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import {
  ChangeMessageVisibilityCommand,
  type MessageAttributeValue,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdFromMessage } from '../../middleware/audit/correlation.js';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import type { FunctionObservability } from '../shared/observability.js';
import { type EmailMessage, parseEmailMessage } from './messages.js';
import { type EmailTemplates, TemplateRenderError } from './templates.js';
import type { EmailTransport, OutgoingEmail } from './transports.js';

/** SQS's largest visibility timeout (12 hours). */
const maxVisibilitySec = 43_200;

/** Message attribute carrying why a message was dead-lettered by the worker itself. */
export const deadLetterReasonAttribute = 'bulwark-dead-letter-reason';

export interface EmailWorkerOptions {
  readonly transport: EmailTransport;
  readonly templates: EmailTemplates;
  /** Guards the transport: while it is open, sends fail fast and their messages back off. */
  readonly breaker: CircuitBreaker<string>;
  readonly sqs: SQSClient;
  /** The email queue (visibility changes) and its DLQ (messages that can never be sent). */
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly from: string;
  /** The queue's maxReceiveCount: after this many failed attempts SQS moves the message to the DLQ. */
  readonly maxAttempts: number;
  /** Attempt n that fails waits base × 2^(n-1) seconds before the next one. */
  readonly retryBaseDelaySec: number;
  /** Where sent message ids are remembered (the toolkit table, `IDEM#` keys). */
  readonly persistenceStore: BasePersistenceLayer;
  /**
   * How long a sent id is remembered; a copy arriving later would be sent again.
   * @default 86400 (24 h, beyond SQS's retention of a retried message's attempts)
   */
  readonly idempotencyTtlSec?: number;
  readonly observability: FunctionObservability;
}

/** The delay before the attempt after `attempt` (1-based): exponential, capped by SQS's maximum. */
export function retryDelaySec(attempt: number, baseSec: number): number {
  return Math.min(maxVisibilitySec, baseSec * 2 ** Math.max(0, attempt - 1));
}

/** Lambda-format message attributes back to SendMessage format (string ones; binary ones are not used here). */
function forwardAttributes(record: SQSRecord): Record<string, MessageAttributeValue> {
  const result: Record<string, MessageAttributeValue> = {};
  for (const [name, value] of Object.entries(record.messageAttributes ?? {})) {
    if (value.stringValue !== undefined)
      result[name] = { DataType: value.dataType, StringValue: value.stringValue };
  }
  return result;
}

interface IdempotentSend extends OutgoingEmail {
  readonly id: string;
}

/**
 * Processes SQS batches of email messages with Powertools batch processing (partial batch failures).
 *
 * - invalid JSON, a schema violation or a template that cannot render: the message can never be sent,
 *   so it is logged, audited and copied to the DLQ once with its reason, then reported as processed
 *   (no retries);
 * - a send that fails: the message's visibility is set to the backoff delay and the record is
 *   reported failed; after `maxAttempts` receives SQS moves it to the DLQ (redrive);
 * - a message id already sent (a redelivery or a duplicate enqueue): Powertools Idempotency returns
 *   the stored result, so no second email goes out.
 */
export class EmailWorker {
  private readonly processor = new BatchProcessor(EventType.SQS);
  private readonly idempotencyConfig: IdempotencyConfig;
  private readonly sendOnce: (email: IdempotentSend) => Promise<{ providerMessageId: string }>;

  constructor(private readonly options: EmailWorkerOptions) {
    this.idempotencyConfig = new IdempotencyConfig({
      // The producer's message id, not SQS's: a message enqueued twice is still one email.
      eventKeyJmesPath: 'id',
      expiresAfterSeconds: options.idempotencyTtlSec ?? 86_400,
    });
    this.sendOnce = makeIdempotent(
      async (email: IdempotentSend) => {
        const providerMessageId = await options.breaker.execute(({ signal }) =>
          options.transport.send(email, signal),
        );
        return { providerMessageId };
      },
      { persistenceStore: options.persistenceStore, config: this.idempotencyConfig },
    );
  }

  /** The Lambda handler's body. */
  async handle(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    // In-progress records expire with the invocation, so a crashed attempt does not block retries.
    this.idempotencyConfig.registerLambdaContext(context);
    try {
      return await processPartialResponse(
        event,
        (record: SQSRecord) => this.processRecord(record),
        this.processor,
        {
          context,
          // A batch whose every record failed is still a list of failures, not a crashed invocation.
          throwOnFullBatchFailure: false,
        },
      );
    } finally {
      const { metrics } = this.options.observability;
      // A batch of only duplicates records nothing; publishing then would just log a warning.
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  }

  private async processRecord(record: SQSRecord): Promise<void> {
    const correlationId = correlationIdFromMessage(record) ?? record.messageId;
    const parsed = parseEmailMessage(record.body);
    if (!parsed.ok) return this.deadLetter(record, parsed.reason, correlationId);
    const { message } = parsed;
    let email: IdempotentSend;
    try {
      email = {
        id: message.id,
        from: this.options.from,
        to: message.to,
        messageId: message.id,
        ...this.options.templates.render(message),
      };
    } catch (error) {
      if (error instanceof TemplateRenderError) return this.deadLetter(record, error.message, correlationId);
      throw error;
    }
    try {
      await this.sendOnce(email);
    } catch (error) {
      await this.failAttempt(record, message, error, correlationId);
      throw error;
    }
    const { auditLogger, metrics } = this.options.observability;
    recordMetric(metrics, 'EmailSent');
    auditLogger.log({
      eventType: 'email.sent',
      outcome: 'success',
      correlationId,
      metadata: { messageId: message.id, type: message.type, transport: this.options.transport.name },
    });
  }

  /** Reports a failed attempt and delays the next one by changing the message's visibility. */
  private async failAttempt(
    record: SQSRecord,
    message: EmailMessage,
    error: unknown,
    correlationId: string,
  ): Promise<void> {
    const { logger, auditLogger, metrics } = this.options.observability;
    const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
    const last = attempt >= this.options.maxAttempts;
    // After the last attempt: visible at once, so SQS's redrive moves it to the DLQ on the next receive.
    const delaySec = last ? 0 : retryDelaySec(attempt, this.options.retryBaseDelaySec);
    recordMetric(metrics, 'EmailFailed');
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    logger.warn('Email send failed', {
      correlationId,
      messageId: message.id,
      attempt,
      last,
      delaySec,
      reason,
    });
    auditLogger.log({
      eventType: 'email.failed',
      outcome: 'error',
      correlationId,
      reason: error instanceof Error ? error.name : 'error',
      metadata: { messageId: message.id, type: message.type, attempt, last },
    });
    try {
      await this.options.sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: this.options.queueUrl,
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: delaySec,
        }),
      );
    } catch (visibilityError) {
      // Harmless: the message still returns, after the queue's default visibility timeout instead.
      logger.warn('Could not change message visibility', { correlationId, error: String(visibilityError) });
    }
  }

  /**
   * A message that can never be sent goes to the DLQ once, with its reason, and is then reported as
   * processed so SQS deletes it: retrying it would only fail the same way. If the DLQ write fails the
   * error propagates and the message is retried like any failure, so it is never lost.
   */
  private async deadLetter(record: SQSRecord, reason: string, correlationId: string): Promise<void> {
    const { logger, auditLogger, metrics } = this.options.observability;
    await this.options.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.options.dlqUrl,
        MessageBody: record.body,
        MessageAttributes: {
          ...forwardAttributes(record),
          [deadLetterReasonAttribute]: { DataType: 'String', StringValue: reason.slice(0, 1024) },
        },
      }),
    );
    recordMetric(metrics, 'EmailFailed');
    logger.error('Email message rejected and dead-lettered', {
      correlationId,
      sqsMessageId: record.messageId,
      reason,
    });
    auditLogger.log({
      eventType: 'email.rejected',
      outcome: 'failure',
      correlationId,
      reason: 'invalid_message',
      metadata: { sqsMessageId: record.messageId, detail: reason },
    });
  }
}
