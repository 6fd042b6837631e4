// What the sample's SQS workers share: message parsing, retry delays, visibility backoff, dead-lettering, batch runs and invocation middlewares.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type MessageAttributeValue,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import middy, { type MiddyfiedHandler } from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdFromMessage, correlationIdHeader } from '../../middleware/audit/correlation.js';
import type { GuardedAction } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DeadlineExceededError } from '../../middleware/errors.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import { headOf } from '../../middleware/text.js';
import type { FunctionObservability } from './observability.js';

/** SQS's largest visibility timeout (12 hours). */
export const maxVisibilitySec = 43_200;

/**
 * How far a visibility change stays inside SQS's 12 hours from the receive: room for the poller's
 * receive-to-invoke gap and for the ChangeMessageVisibility call's own time and SDK retries.
 */
const receiveLimitMarginSec = 60;

/** When the invocation that is processing each record started (see {@link processSqsBatch}). */
const invocationStarts = new WeakMap<SQSRecord, number>();

/**
 * Records {@link processSqsBatch} reported failed at their batch's deadline while their own work still ran.
 * Lambda freezes that work with the invocation and may resume it when the environment next runs, minutes
 * later; SQS returns the message meanwhile (and after its last receive, its redrive moves it to the DLQ).
 * A copy the work made then (to the DLQ, back to the queue) would be a second message: {@link QueueActions}
 * takes no action on such a record.
 */
const answeredAtDeadline = new WeakSet<SQSRecord>();

/** Message attribute carrying why a message was dead-lettered by the worker itself. */
export const deadLetterReasonAttribute = 'bulwark-dead-letter-reason';

/**
 * Message attribute carrying how many attempts earlier copies of a message made, on a copy a worker
 * sent back to its own queue ({@link QueueActions.sendBack}): SQS counts each copy's receives afresh.
 */
export const attemptsMadeAttribute = 'bulwark-attempts-made';

/** Message attribute carrying how many times workers sent a message back ({@link QueueActions.sendBack}). */
export const sendBacksAttribute = 'bulwark-send-backs';

/** SQS's longest DelaySeconds on SendMessage (15 minutes). */
export const maxSendDelaySec = 900;

/**
 * `text` with each character SQS refuses in a message attribute written as `\uXXXX`: it takes only tab,
 * line feed, carriage return, U+0020 to U+D7FF, U+E000 to U+FFFD and the astral code points, and refuses
 * the whole SendMessage otherwise. A reason may quote such characters from its cause (an error's
 * message), and then every attempt to copy the message to the DLQ would fail.
 *
 * @example
 * sqsAttributeText('key "a\u0001"'); // 'key "a\\u0001"'
 */
export function sqsAttributeText(text: string): string {
  return text.replace(
    /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu,
    (character) => `\\u${(character.codePointAt(0) as number).toString(16).padStart(4, '0')}`,
  );
}

/** The delay before the attempt after `attempt` (1-based): exponential, capped by SQS's maximum. */
export function retryDelaySec(attempt: number, baseSec: number): number {
  return Math.min(maxVisibilitySec, baseSec * 2 ** Math.max(0, attempt - 1));
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a
 * uniformly random delay between 0 and the exponential one, capped by `capSec`, so messages that
 * failed together (an endpoint outage) do not all come back together.
 */
export function fullJitterDelaySec(
  attempt: number,
  baseSec: number,
  capSec: number = maxVisibilitySec,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capSec, maxVisibilitySec, retryDelaySec(attempt, baseSec));
  return Math.round(random() * ceiling);
}

/** How many times SQS handed over this copy of the message, this receive included: what its redrive counts. */
export function receiveCountOf(record: SQSRecord): number {
  return Number(record.attributes.ApproximateReceiveCount) || 1;
}

/**
 * Which attempt this receive is (1-based), for a worker that sends messages back
 * ({@link QueueActions.sendBack}): the attempts earlier copies of the message made (their
 * {@link attemptsMadeAttribute}) plus this copy's receive count, the number SQS's redrive counts. A copy
 * may so pass the worker's attempts before SQS's redrive takes it; the worker ends such a receive itself.
 *
 * Anyone who may send to the queue can set the attribute. A count the worker never writes is ignored, so
 * that no first receive is past the last attempt: at most `maxAttempts` − 1 (a copy is sent back from a
 * receive that is at most the last attempt, carrying the attempts before it). A producer can still set a
 * smaller count and so spend attempts of its own message, and nothing more.
 */
export function attemptOf(record: SQSRecord, maxAttempts: number): number {
  const attemptsMade = countAttribute(record, attemptsMadeAttribute);
  return (attemptsMade < maxAttempts ? attemptsMade : 0) + receiveCountOf(record);
}

/**
 * The reason a worker dead-lettered this message with ({@link deadLetterReasonAttribute}), when it carries
 * one: an operator redrove it from the DLQ (or a producer set it). Undefined for any other message.
 */
export function deadLetterReasonOf(record: SQSRecord): string | undefined {
  return record.messageAttributes?.[deadLetterReasonAttribute]?.stringValue;
}

/**
 * The names of the attributes a worker wrote that a received message carries: a dead-letter reason (the
 * message was redriven from the DLQ), a sent-back copy's counts ({@link QueueActions.sendBack}).
 */
function workerAttributesOf(record: SQSRecord): string[] {
  return Object.keys(record.messageAttributes ?? {}).filter((name) => name.startsWith(workerAttributePrefix));
}

/** The DLQ reason of a message whose last attempt failed: `attempts used: 3 of 3`. */
export function attemptsUsedReason(attemptsMade: number, maxAttempts: number): string {
  return `attempts used: ${attemptsMade} of ${maxAttempts}`;
}

/** How many times workers sent this message back to its queue: its {@link sendBacksAttribute}, else 0. */
export function sendBacksOf(record: SQSRecord): number {
  return countAttribute(record, sendBacksAttribute);
}

function countAttribute(record: SQSRecord, name: string): number {
  const count = Number(record.messageAttributes?.[name]?.stringValue);
  return Number.isSafeInteger(count) && count > 0 ? count : 0;
}

/** The fields that name a record on a worker's log lines: its correlation id (its message id without one) and its message id. */
function recordLogFields(record: SQSRecord): { correlation_id: string; sqsMessageId: string } {
  return {
    correlation_id: correlationIdFromMessage(record) ?? record.messageId,
    sqsMessageId: record.messageId,
  };
}

/** SQS's most message attributes on one message. */
const maxMessageAttributes = 10;

/**
 * What a copy of a message may weigh at least: 256 KiB, the least SQS's default MaximumMessageSize has
 * been. The stack sets no size on its queues and DLQs, so they share that default.
 */
const minMessageLimitBytes = 262_144;

/** The prefix of the attributes workers set themselves; a producer's are never forwarded. */
const workerAttributePrefix = 'bulwark-';

const utf8Bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/** How much an attribute weighs in a message's size: SQS counts its name, its data type and its value. */
const attributeBytes = (name: string, value: MessageAttributeValue) =>
  utf8Bytes(name) + utf8Bytes(value.DataType ?? '') + utf8Bytes(value.StringValue ?? '');

/** `text` cut to at most `maxBytes` bytes of UTF-8, never inside a character. */
function headOfBytes(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const character of text) {
    bytes += utf8Bytes(character);
    if (bytes > maxBytes) break;
    end += character.length;
  }
  return text.slice(0, end);
}

/**
 * How large a copy of `record` may be: the larger of {@link minMessageLimitBytes} and the message as it
 * was received, its body and string attributes (it fit its queue, whose MaximumMessageSize the copy's
 * queue shares).
 */
function copyLimitBytes(record: SQSRecord): number {
  let received = utf8Bytes(record.body);
  for (const [name, value] of Object.entries(record.messageAttributes ?? {})) {
    received += attributeBytes(name, { DataType: value.dataType, StringValue: value.stringValue });
  }
  return Math.max(minMessageLimitBytes, received);
}

/**
 * The attributes of a copy of `record`: the worker's `own` ones, then the producer's string ones (binary
 * ones are not used here) in SendMessage format, as many as fit SQS's 10 attributes and the copy's size
 * ({@link copyLimitBytes}), the correlation id first and then in the order received. A producer's
 * `bulwark-*` attributes are never forwarded: each send sets the worker's own. `leftOut` counts the
 * producer attributes that did not fit; `overBytes`, what the body and the worker's own attributes alone
 * weigh over the copy's size (0 when they fit).
 */
function copyAttributes(
  record: SQSRecord,
  own: Readonly<Record<string, MessageAttributeValue>>,
): { attributes: Record<string, MessageAttributeValue>; leftOut: number; overBytes: number } {
  const attributes: Record<string, MessageAttributeValue> = { ...own };
  let roomBytes = copyLimitBytes(record) - utf8Bytes(record.body);
  for (const [name, value] of Object.entries(own)) roomBytes -= attributeBytes(name, value);
  const overBytes = Math.max(0, -roomBytes);
  let roomCount = maxMessageAttributes - Object.keys(own).length;
  let leftOut = 0;
  const producers = Object.entries(record.messageAttributes ?? {}).filter(
    ([name, value]) => value.stringValue !== undefined && !name.startsWith(workerAttributePrefix),
  );
  producers.sort(([a], [b]) => Number(b === correlationIdHeader) - Number(a === correlationIdHeader));
  for (const [name, { dataType, stringValue }] of producers) {
    const value = { DataType: dataType, StringValue: stringValue };
    const bytes = attributeBytes(name, value);
    if (roomCount > 0 && bytes <= roomBytes) {
      attributes[name] = value;
      roomCount -= 1;
      roomBytes -= bytes;
    } else {
      leftOut += 1;
    }
  }
  return { attributes, leftOut, overBytes };
}

/** How a worker retries a message whose DLQ copy failed ({@link QueueActions.deadLetterOrRetry}). */
export interface DeadLetterRetry {
  readonly correlationId: string;
  /** Which attempt this receive is (1-based), and the last one: the queue's maxReceiveCount. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The worker's backoff after this attempt. */
  readonly retryDelaySec: () => number;
  /** The worker's own lines about the refused copy: its log line, its failure metric, its audit line on the last receive. */
  readonly refused: (failure: {
    readonly attempt: number;
    readonly last: boolean;
    readonly delaySec: number;
    readonly error: unknown;
  }) => void;
}

/**
 * How a worker dead-letters a message it rejects ({@link QueueActions.deadLetterRejected}): what its lines
 * call the message and carry, its failure metric and its audit line; the wording is the same for every worker.
 */
export interface DeadLetterRejection extends Omit<DeadLetterRetry, 'refused'> {
  /** What the log lines call the message: `Email`, `SMS`, `Webhook`. */
  readonly kind: string;
  /** The fields of the worker's log lines about the message. */
  readonly context: Record<string, unknown>;
  readonly metrics: Metrics;
  /** Counted once for the rejection, and once for each receive whose DLQ copy failed. */
  readonly failureMetric: 'EmailFailed' | 'SmsFailed' | 'WebhookFailed';
  /** Writes the worker's audit line of the rejection, with these fields added to its metadata. */
  readonly auditRejected: (metadata: Record<string, unknown>) => void;
}

/** A receive deferred while its dependency's circuit is open ({@link QueueActions.deferWhileCircuitOpen}). */
export interface CircuitDeferral {
  /** What the log lines call the message: `Email`, `SMS`, `Webhook delivery`. */
  readonly kind: string;
  /** What the log lines call the circuit: `provider circuit`, `endpoint circuit`. */
  readonly circuit: string;
  /** The fields of the worker's log lines about the message. */
  readonly context: Record<string, unknown>;
  /** Which attempt this receive is ({@link attemptOf}): the copy's first receive is this attempt again. */
  readonly attempt: number;
  /** When the copy is received, in seconds from now (at most SQS's {@link maxSendDelaySec}). */
  readonly delaySec: number;
}

export interface QueueActionsOptions {
  readonly sqs: SQSClient;
  /** The worker's queue (visibility changes) and its DLQ (messages that can never be processed). */
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly logger: Logger;
}

/**
 * The SQS calls a worker makes about the record in hand, besides the poller's delete. None is made for a
 * record already reported failed at its batch's deadline ({@link answeredAtDeadline}), its work resumed
 * after the answer: the visibility is left alone, and a copy (send-back, DLQ) fails with a
 * {@link DeadlineExceededError}, as a copy SQS refused does. A copy already in flight as the deadline
 * passed is followed by a delete of the original.
 */
export class QueueActions {
  constructor(private readonly options: QueueActionsOptions) {}

  /**
   * Delays the record's next receive by changing its visibility, by at most what is left of SQS's
   * 12 hours since the receive ({@link receiveLimitMarginSec} short of them). A failure is only
   * logged: the message still returns, after the queue's default visibility timeout instead.
   */
  async delayNextAttempt(record: SQSRecord, delaySec: number, correlationId: string): Promise<void> {
    if (this.skipsAnsweredRecord(record, 'visibility change')) return;
    // SQS rejects a visibility that ends over 12 hours after the receive, not after this call
    // ("If you try to extend the visibility timeout beyond 12 hours, your request is rejected",
    // Amazon SQS API Reference, ChangeMessageVisibility).
    const elapsedSec = (Date.now() - (invocationStarts.get(record) ?? Date.now())) / 1000;
    const leftSec = Math.floor(maxVisibilitySec - receiveLimitMarginSec - elapsedSec);
    try {
      await this.options.sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: this.options.queueUrl,
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: Math.max(0, Math.min(leftSec, Math.round(delaySec))),
        }),
      );
    } catch (error) {
      this.options.logger.warn('Could not change message visibility', {
        correlation_id: correlationId,
        error: String(error),
      });
    }
  }

  /**
   * Sends a copy of the record back to the worker's own queue, received no earlier than `delaySec`
   * from now (at most SQS's {@link maxSendDelaySec}), carrying the `attemptsMade` so far and its
   * send-backs, this one included, so the caller can report the record processed: the copy's receives
   * are counted afresh. If the send fails the error propagates and the record is left as it was; so it
   * does, unsent, when the body and the two counts weigh more than the copy may ({@link copyLimitBytes}:
   * a message received within some 60 bytes of the limit), which SQS would refuse.
   */
  async sendBack(record: SQSRecord, delaySec: number, attemptsMade: number): Promise<void> {
    if (this.skipsAnsweredRecord(record, 'send-back')) throw recordAnsweredError();
    const { attributes, leftOut, overBytes } = copyAttributes(record, {
      [attemptsMadeAttribute]: { DataType: 'Number', StringValue: String(attemptsMade) },
      [sendBacksAttribute]: { DataType: 'Number', StringValue: String(sendBacksOf(record) + 1) },
    });
    if (overBytes > 0) {
      throw new Error(
        `The copy to send back would weigh ${overBytes} bytes over the ${copyLimitBytes(record)} a message may: its body and the worker's counts do not fit`,
      );
    }
    await this.options.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.options.queueUrl,
        MessageBody: record.body,
        DelaySeconds: Math.max(0, Math.min(maxSendDelaySec, Math.round(delaySec))),
        MessageAttributes: attributes,
      }),
    );
    await this.deleteAnsweredOriginal(record, 'queue');
    this.reportLeftOut(record, leftOut, 'queue');
  }

  /**
   * Defers a receive that found its dependency's circuit open, so that it spends none of the message's
   * attempts: a copy goes back to the queue, received after `delaySec` and carrying the attempts made
   * before this receive ({@link sendBack}), and the caller reports the record processed. The copy's
   * receive is `attempt` again ({@link attemptOf}). Logged either way; false when the copy could not be
   * sent, and then the receive counts as an attempt. True, with nothing sent, for a record already reported
   * failed at its batch's deadline: SQS returns it, and its late work has nothing more to do or report.
   */
  async deferWhileCircuitOpen(record: SQSRecord, deferral: CircuitDeferral): Promise<boolean> {
    if (this.skipsAnsweredRecord(record, 'send-back')) return true;
    const { kind, circuit, attempt, delaySec } = deferral;
    const context = {
      ...deferral.context,
      attemptsMade: attempt - 1,
      deferral: sendBacksOf(record) + 1,
      delaySec,
    };
    try {
      await this.sendBack(record, delaySec, attempt - 1);
    } catch (error) {
      this.options.logger.error(
        `${kind} could not be deferred while its ${circuit} is open; the receive counts as an attempt`,
        { ...context, error },
      );
      return false;
    }
    this.options.logger.info(`${kind} deferred: its ${circuit} is open`, context);
    return true;
  }

  /**
   * A copy sent back while a circuit was open whose attempts are all used (`attempt` is past
   * `maxAttempts`: its last one failed and its move to the DLQ did not happen): SQS's redrive, which counts
   * only this copy's receives, would hand it over again, so it goes to the DLQ here, unprocessed. If the DLQ
   * write fails the error propagates, so the record is reported failed and comes back after the queue's
   * visibility timeout.
   */
  async deadLetterSpent(
    record: SQSRecord,
    {
      kind,
      attempt,
      maxAttempts,
      context,
    }: Omit<CircuitDeferral, 'circuit' | 'delaySec'> & {
      readonly maxAttempts: number;
    },
  ): Promise<void> {
    const lines = { ...context, attempt };
    try {
      await this.deadLetter(record, attemptsUsedReason(attempt - 1, maxAttempts));
    } catch (error) {
      if (answeredAtDeadline.has(record)) throw error;
      this.options.logger.error(
        `${kind} message whose attempts are used could not be dead-lettered; retrying`,
        {
          ...lines,
          error,
        },
      );
      throw error;
    }
    this.options.logger.warn(`${kind} message moved to the DLQ: its attempts are used`, lines);
  }

  /**
   * Copies a message that can never be processed to the DLQ once, with its reason, so the caller can
   * report it processed (retrying would only fail the same way). If the DLQ write fails the error
   * propagates and the message is retried like any failure, so it is never lost. The copy carries no
   * attempts made: redriven to the source queue, it starts its attempts afresh. The reason is cut to
   * 1024 characters, and further to what room the body leaves ({@link copyLimitBytes}); with none left
   * the copy goes without it.
   */
  async deadLetter(record: SQSRecord, reason: string): Promise<void> {
    if (this.skipsAnsweredRecord(record, 'dead-lettering')) throw recordAnsweredError();
    const roomBytes =
      copyLimitBytes(record) -
      utf8Bytes(record.body) -
      attributeBytes(deadLetterReasonAttribute, { DataType: 'String', StringValue: '' });
    const stated = headOfBytes(headOf(sqsAttributeText(reason), 1024), roomBytes);
    const { attributes, leftOut } = copyAttributes(
      record,
      stated === '' ? {} : { [deadLetterReasonAttribute]: { DataType: 'String', StringValue: stated } },
    );
    await this.options.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.options.dlqUrl,
        MessageBody: record.body,
        MessageAttributes: attributes,
      }),
    );
    await this.deleteAnsweredOriginal(record, 'dlq');
    this.reportLeftOut(record, leftOut, 'dlq');
  }

  /**
   * {@link deadLetter}, and when the DLQ refuses the copy, the message is retried like any failure of the
   * worker's, so it is never lost: `refused` logs, counts and (on the last receive) audits it, and the next
   * receive is delayed by `retryDelaySec()`; on the last receive (`attempt` reaching `maxAttempts`) it is
   * visible at once instead, for SQS's redrive to move it to the DLQ without its reason. Then the DLQ's
   * error is thrown, so the record is reported failed. A record already reported failed at its batch's
   * deadline made no copy (SQS returns it): nothing is counted, logged as refused or audited for it.
   */
  async deadLetterOrRetry(record: SQSRecord, reason: string, retry: DeadLetterRetry): Promise<void> {
    try {
      await this.deadLetter(record, reason);
    } catch (error) {
      if (answeredAtDeadline.has(record)) throw error;
      const { attempt, maxAttempts, correlationId } = retry;
      const last = attempt >= maxAttempts;
      const delaySec = last ? 0 : retry.retryDelaySec();
      retry.refused({ attempt, last, delaySec, error });
      await this.delayNextAttempt(record, delaySec, correlationId);
      throw error;
    }
  }

  /**
   * {@link deadLetterOrRetry} for a message the worker rejects, with the lines every worker writes about
   * it: dead-lettered, it is counted, logged as an error and audited as rejected. A copy the DLQ refused
   * is counted and logged as an error on each receive, and audited as rejected on the last one
   * (`deadLetteredBy: 'redrive'`), when SQS's redrive moves the message to the DLQ without its reason.
   */
  async deadLetterRejected(record: SQSRecord, reason: string, rejection: DeadLetterRejection): Promise<void> {
    const { kind, context, metrics, failureMetric, auditRejected, ...retry } = rejection;
    const { logger } = this.options;
    await this.deadLetterOrRetry(record, reason, {
      ...retry,
      refused: ({ attempt, last, delaySec, error }) => {
        recordMetric(metrics, failureMetric);
        logger.error(
          last
            ? `${kind} message rejected, but it could not be dead-lettered on the last attempt; the redrive moves it to the DLQ without its reason`
            : `${kind} message rejected, but it could not be dead-lettered; retrying`,
          { ...context, attempt, last, delaySec, error },
        );
        if (last) auditRejected({ deadLetteredBy: 'redrive' });
      },
    });
    recordMetric(metrics, failureMetric);
    logger.error(`${kind} message rejected and dead-lettered`, context);
    auditRejected({});
  }

  /**
   * Ends a message's last failed attempt, after which it belongs in the DLQ. SQS's redrive would move it
   * with every attribute it carries: a message an operator redrove from the DLQ would land there again
   * under the reason it was dead-lettered for before (`invalid_message` for a cause since fixed, say, which
   * the runbook says to delete), not the failure that ended it now, and a copy a worker sent back would
   * keep its counts, so that once redriven it would not start afresh (its send-backs used up). A message
   * carrying such attributes is copied to the DLQ by the worker itself with `reason` and without them
   * ({@link deadLetter}), and resolves true: the caller reports it processed. Any other message, or one
   * whose copy the DLQ refused (logged: SQS's redrive then moves it with them), is made visible at once for
   * SQS's redrive to move it on the next receive, and resolves false.
   */
  async endLastAttempt(record: SQSRecord, reason: string, correlationId: string): Promise<boolean> {
    if (this.skipsAnsweredRecord(record, 'dead-lettering')) return false;
    const workerAttributes = workerAttributesOf(record);
    if (workerAttributes.length > 0) {
      const context = {
        correlation_id: correlationId,
        sqsMessageId: record.messageId,
        reason,
        staleReason: deadLetterReasonOf(record),
        workerAttributes,
      };
      try {
        await this.deadLetter(record, reason);
        this.options.logger.warn(
          'Message dead-lettered with its current reason, without the worker attributes it carried',
          context,
        );
        return true;
      } catch (error) {
        this.options.logger.error(
          'Message could not be dead-lettered without the worker attributes it carried; the redrive moves it with them',
          { ...context, error },
        );
      }
    }
    await this.delayNextAttempt(record, 0, correlationId);
    return false;
  }

  /**
   * Whether `record` was reported failed at its batch's deadline ({@link answeredAtDeadline}), so `action`
   * is skipped (logged): SQS returns the message after its visibility timeout, as it does any failed record.
   */
  private skipsAnsweredRecord(record: SQSRecord, action: string): boolean {
    if (!answeredAtDeadline.has(record)) return false;
    this.options.logger.info(
      `Message ${action} skipped: its record was reported failed at its batch's deadline, so SQS returns it`,
      {
        ...recordLogFields(record),
      },
    );
    return true;
  }

  /**
   * After a copy of `record` was sent (to the DLQ, back to the queue): when its batch's deadline passed
   * while the copy was in flight, the record was reported failed and SQS keeps the original, so it is
   * deleted here, as the poller deletes a record reported processed. Not deleted (logged), the message is
   * held twice; the copy is made all the same, so the caller goes on as after any copy.
   */
  private async deleteAnsweredOriginal(record: SQSRecord, queue: 'queue' | 'dlq'): Promise<void> {
    if (!answeredAtDeadline.has(record)) return;
    const context = {
      ...recordLogFields(record),
      queue,
    };
    try {
      await this.options.sqs.send(
        new DeleteMessageCommand({ QueueUrl: this.options.queueUrl, ReceiptHandle: record.receiptHandle }),
      );
      this.options.logger.info(
        "Message copied as its batch's deadline passed; its original, reported failed, was deleted",
        context,
      );
    } catch (error) {
      this.options.logger.warn(
        "Message copied as its batch's deadline passed, but its original, reported failed, could not be deleted: SQS holds it twice",
        { ...context, error: String(error) },
      );
    }
  }

  /** A copy that went without some of the producer's attributes is worth a warning: they are gone. */
  private reportLeftOut(record: SQSRecord, leftOut: number, queue: 'queue' | 'dlq'): void {
    if (leftOut === 0) return;
    this.options.logger.warn(
      "Message copied without some of its producer's attributes, to fit SQS's limits",
      {
        ...recordLogFields(record),
        queue,
        attributesLeftOut: leftOut,
      },
    );
  }
}

/** Where a worker keeps its idempotency records, and for how long. */
export interface WorkerIdempotencySettings {
  readonly persistenceStore: BasePersistenceLayer;
  /** How long an id's completed record keeps copies of its message from being processed again. */
  readonly expiresAfterSeconds: number;
}

/**
 * Powertools idempotency for the records of one batch, keyed by the message's producer `id` (not SQS's
 * message id: a message enqueued twice is still one email, one webhook). Its in-progress records expire
 * with this batch's invocation, so a crashed attempt does not block retries for long. Made per batch:
 * the config holds the Lambda context, and invocations that run at once in one process (Lambda Managed
 * Instances, a test's poller) would otherwise write records expiring with each other's deadline.
 *
 * @example
 * const idempotency = new BatchIdempotency((send: Send) => transport.send(send), settings, context);
 * await idempotency.once(send);
 */
export class BatchIdempotency<A extends unknown[], R> {
  /** `work`, run at most once per id; a copy of an id still in progress throws IdempotencyAlreadyInProgressError. */
  readonly once: (...args: A) => Promise<R>;

  constructor(
    work: (...args: A) => Promise<R>,
    settings: WorkerIdempotencySettings,
    private readonly context: Context,
  ) {
    const config = new IdempotencyConfig({
      eventKeyJmesPath: 'id',
      expiresAfterSeconds: settings.expiresAfterSeconds,
    });
    config.registerLambdaContext(context);
    this.once = makeIdempotent(work, { persistenceStore: settings.persistenceStore, config });
  }

  /**
   * Seconds until an in-progress record written in this invocation expires. A record Powertools failed
   * to delete after a failed call blocks that id until then, so the retry is delayed at least this long.
   */
  inProgressExpirySec(): number {
    return Math.min(maxVisibilitySec, Math.ceil(this.context.getRemainingTimeInMillis() / 1000));
  }
}

/**
 * Kept back from a batch's invocation time ({@link BatchDeadline}): what a record's request in flight at
 * the deadline needs to end (a DynamoDB request's 2 s limit, an SQS request's 1 s), and the batch's answer.
 */
export const batchAnswerMarginMs = 3_000;

/** The `dependency` of the {@link DeadlineExceededError} a record still running at its batch's deadline fails with. */
const batchRecordWork = 'the record';

/** Why a copy of a record reported failed at its batch's deadline was not made ({@link answeredAtDeadline}). */
function recordAnsweredError(): DeadlineExceededError {
  return new DeadlineExceededError(batchRecordWork, 0, {
    message: "The message was not copied: its record was reported failed at its batch's deadline",
  });
}

/**
 * When a batch's records must be done: the invocation's end less {@link batchAnswerMarginMs}. Made once per
 * batch, before its records run. A send or POST is started only when its whole time limit fits before it,
 * checked as its breaker starts it ({@link BatchDeadline.startingInTime}), and its breaker is given it as
 * the call's `deadline`; a record still running then is reported failed ({@link processSqsBatch}), so the
 * batch is answered before Lambda's timeout, which would fail every record of it.
 *
 * @example
 * const deadline = new BatchDeadline(context);
 * await breaker.execute(deadline.startingInTime(breaker.name, breaker.timeoutMs, action), { deadline: deadline.at });
 */
export class BatchDeadline {
  /** Epoch ms. */
  readonly at: number;

  constructor(context: Pick<Context, 'getRemainingTimeInMillis'>) {
    this.at = Date.now() + context.getRemainingTimeInMillis() - batchAnswerMarginMs;
  }

  /** Milliseconds until the deadline; 0 once it has passed. */
  leftMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  /** Whether work bounded by `timeoutMs`, started now, ends by the deadline. */
  leaves(timeoutMs: number): boolean {
    return this.leftMs() >= timeoutMs;
  }

  /**
   * `action`, for a breaker's `execute`, started only if work bounded by `timeoutMs` still ends by the
   * deadline when the breaker starts it: after all that comes first (an idempotency write, the circuit's
   * state read, signing). Otherwise it throws {@link tooLateFor}, which the breaker does not count.
   */
  startingInTime<T>(dependency: string, timeoutMs: number, action: GuardedAction<T>): GuardedAction<T> {
    return (call) => {
      if (!this.leaves(timeoutMs)) throw this.tooLateFor(dependency, timeoutMs);
      return action(call);
    };
  }

  /** The failure of a call to `dependency`, bounded by `timeoutMs`, not started because it would not end by the deadline. */
  tooLateFor(dependency: string, timeoutMs: number): DeadlineExceededError {
    const leftMs = this.leftMs();
    return new DeadlineExceededError(dependency, leftMs, {
      message: `${dependency} was not called: its ${timeoutMs} ms limit does not fit in the ${leftMs} ms the batch has left`,
    });
  }
}

/**
 * Runs `processRecord` over an SQS batch with Powertools batch processing: records in parallel, a
 * rejected record reported in `batchItemFailures` (so SQS returns only it); batches run at once each get
 * their own answer. Each record's receive time is noted for {@link QueueActions.delayNextAttempt}; a
 * record it never ran counts as received when its visibility is changed. A record still running at the
 * batch's `deadline` is reported failed then, with a warning, so the rest of the batch is answered before
 * the invocation times out, and returns after the queue's visibility timeout. Its own work goes on: Lambda
 * freezes it with the invocation and may resume it when the environment next runs, so it is marked
 * ({@link answeredAtDeadline}) and its queue actions are skipped: the message neither changes visibility
 * nor is copied (SQS's redrive moves it to the DLQ after its last receive); a copy already in flight
 * then is followed by a delete of the original.
 *
 * @example
 * handle(event, context) {
 *   const deadline = new BatchDeadline(context);
 *   return processSqsBatch(event, context, deadline, logger, (record) => this.processRecord(record, deadline));
 * }
 */
export async function processSqsBatch(
  event: SQSEvent,
  context: Context,
  deadline: BatchDeadline,
  logger: Logger,
  processRecord: (record: SQSRecord) => Promise<void>,
): Promise<SQSBatchResponse> {
  // This receive's time: records carry only the first receive's, and the poller invokes right after one.
  const startedAt = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadlinePassed = new Promise<void>((resolve) => {
    // Unref'd: the records' own I/O holds the process open, never the deadline.
    timer = setTimeout(resolve, deadline.leftMs()).unref();
  });
  const lateRecord = async (record: SQSRecord, done: { settled: boolean }): Promise<void> => {
    await deadlinePassed;
    if (done.settled) return;
    answeredAtDeadline.add(record);
    logger.warn("Record still running at its batch's deadline; reported failed", {
      ...recordLogFields(record),
    });
    throw new DeadlineExceededError(batchRecordWork, Math.max(0, deadline.at - startedAt), {
      message: "The record was still running at its batch's deadline",
    });
  };
  try {
    return await processPartialResponse(
      event,
      (record: SQSRecord) => {
        invocationStarts.set(record, startedAt);
        const done = { settled: false };
        const run = processRecord(record).finally(() => {
          done.settled = true;
        });
        return Promise.race([run, lateRecord(record, done)]);
      },
      // Per batch: Lambda hands an instance one batch at a time, but a host may not (a test's poller, an
      // embedding app); a shared processor reported one batch's failures in the other's answer.
      new BatchProcessor(EventType.SQS),
      {
        context,
        // A batch whose every record failed is still a list of failures, not a crashed invocation.
        throwOnFullBatchFailure: false,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A worker's Lambda handler: `handle` inside the middlewares every invocation passes through, the
 * pieces the HTTP functions use too (withRequestMiddlewares, functions/shared/route-dispatch.ts): the
 * Lambda context on every log line (`function_request_id`, `cold_start`), and the metrics flushed once
 * per invocation, with `ColdStart` on the first. No correlation id here: each record of a batch carries
 * its own, so the worker names it on each of that record's lines (the `correlation_id` key).
 *
 * @example
 * export const handler = withWorkerMiddlewares((event, context) => worker.handle(event, context), observability);
 */
export function withWorkerMiddlewares(
  handle: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>,
  { logger, metrics }: FunctionObservability,
): MiddyfiedHandler<SQSEvent, SQSBatchResponse> {
  const handler = middy<SQSEvent, SQSBatchResponse>(handle);
  // Never the whole event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: its messages carry addresses,
  // names and one-time codes under keys no redactor can know (`to`, `data.code`).
  handler.use(injectLambdaContext(logger, { resetKeys: true, logEvent: false })).use(captureMetrics(metrics));
  return handler;
}
