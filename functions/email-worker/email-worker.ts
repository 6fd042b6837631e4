// The email worker's core: validate, render, send once (idempotent, circuit-guarded), back off on failure, dead-letter the unsendable. Emails and SMS.
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyPersistenceLayerError,
} from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdFromMessage } from '../../middleware/audit/correlation.js';
import { CircuitBreaker, type GuardedAction } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { type CircuitBreakerOptions, circuitDefaults } from '../../middleware/circuit-breaker/options.js';
import {
  assertNoProblems,
  CircuitOpenError,
  DeadlineExceededError,
  DeliveryRejectedError,
} from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import type { FunctionObservability } from '../shared/observability.js';
import {
  attemptOf,
  attemptsUsedReason,
  BatchDeadline,
  BatchIdempotency,
  batchAnswerMarginMs,
  deadLetterReasonOf,
  fullJitterDelaySec,
  maxSendDelaySec,
  maxVisibilitySec,
  processSqsBatch,
  QueueActions,
  retryDelaySec,
  sendBacksOf,
  type WorkerIdempotencySettings,
} from '../shared/queue-worker.js';
import type { UserItemState } from '../shared/user-item.js';
import { workerSuccessEventTypes } from '../workers.js';
import { parseQueueMessage, type QueueMessage, smsCodeExpired } from './messages.js';
import { isProviderThrottling } from './provider-throttling.js';
import { sendFailureLogFields } from './send-failure.js';
import type { OutgoingSms, SmsTransport } from './sms-transports.js';
import { type EmailTemplates, TemplateRenderError } from './templates.js';
import type { EmailTransport, OutgoingEmail } from './transports.js';

// The queue plumbing (backoff, dead-lettering, batch runs) is shared with the webhook worker.
export { deadLetterReasonAttribute, retryDelaySec } from '../shared/queue-worker.js';

export interface EmailWorkerOptions {
  readonly transport: EmailTransport;
  readonly templates: EmailTemplates;
  /** Guards the transport: while it is open, sends fail fast and their messages back off. */
  readonly breaker: CircuitBreaker<string>;
  /**
   * The SMS channel (messages of type `sms`): its transport and the breaker that guards it (a
   * provider of its own, so an SMS outage never opens the email circuit).
   * @default none: SMS messages are dead-lettered as undeliverable
   */
  readonly sms?: { readonly transport: SmsTransport; readonly breaker: CircuitBreaker<string> };
  readonly sqs: SQSClient;
  /** The email queue (visibility changes) and its DLQ (messages that can never be sent). */
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly from: string;
  /** The queue's maxReceiveCount: after this many failed attempts SQS moves the message to the DLQ. */
  readonly maxAttempts: number;
  /**
   * Attempt n that fails waits a random 0 … base × 2^(n-1) seconds (full jitter) before the next one, so
   * messages that failed together do not all come back together.
   */
  readonly retryBaseDelaySec: number;
  /**
   * How many times one message is deferred at most while its provider's circuit is open (each deferral
   * spends none of its attempts; the n-th waits the circuit's retry-after plus a random 0 … base × 2^(n-1)
   * seconds, at most 15 minutes): past them an open circuit counts as an attempt, so a message still
   * reaches the DLQ in a long outage.
   * @default 10
   */
  readonly maxCircuitDeferrals?: number;
  /** @default Math.random */
  readonly random?: () => number;
  /** Where sent message ids are remembered (the toolkit table, `IDEM#` keys). */
  readonly persistenceStore: BasePersistenceLayer;
  /**
   * How long a sent id is remembered; a copy arriving later would be sent again.
   * @default 86400 (24 h, beyond SQS's retention of a retried message's attempts)
   */
  readonly idempotencyTtlSec?: number;
  /**
   * Whether the user a message is about (its `userId`) is still there, or why not, and whether their email
   * is verified: in the function, one read of the app table's key, expiry and verification time
   * (`userItemState`, functions/shared/user-item.ts). Rejects when it cannot tell (a DynamoDB outage).
   * Called once per user and batch: the batch's messages about that user share its answer.
   */
  readonly userState: UserState;
  readonly observability: FunctionObservability;
}

/** A DynamoDB request's time limit in the functions (`createDynamoDbClient`'s default). */
const dynamoDbRequestMs = 2_000;

/**
 * The DynamoDB calls a record makes one after the other before its send: the user read, the idempotency
 * record, the provider breaker's state.
 */
const callsBeforeSend = 3;

/**
 * A provider breaker's timeout in an email worker whose function times out after `functionTimeoutSec`:
 * the invocation less the batch's answer margin ({@link batchAnswerMarginMs}, which covers saving the
 * result) and room for the DynamoDB calls before the send, each allowed one request that timed out (21 s
 * of 30). A send is started only when its whole timeout fits before the batch's deadline, so a longer one
 * would leave a record whose calls before it were slow unsent, and one as long as the invocation, every record.
 */
export function providerTimeoutMs(functionTimeoutSec: number): number {
  return functionTimeoutSec * 1000 - batchAnswerMarginMs - callsBeforeSend * dynamoDbRequestMs;
}

/** The longest failure window a provider circuit gets, whatever the retry base. */
const maxProviderWindowMs = 3_600_000;

/**
 * The failure window of a provider circuit whose sends are retried `retryBaseDelaySec` apart: 2 ×
 * `failureThreshold` × that base, at most an hour (5 minutes with the defaults, 5 and 30 s).
 *
 * In an outage at low volume the failed sends are the messages' attempts, each retried a base and then
 * twice that later, so they come about a base apart, not several in 10 s: the breaker's default 10 s
 * window never held five (an SMTP outage drill: six failed sends, at most four in one window, and no
 * `CircuitOpened`). This window holds `failureThreshold` sends failing at most a base apart wherever its
 * (clock-aligned) boundaries fall: any 2 × `failureThreshold` − 1 of them span less than it, so they touch
 * at most two windows and one of them holds `failureThreshold`. Longer would let a busy provider's rare
 * transient failures add up and turn its sends away; the hour bounds that for a large base.
 */
export function providerWindowMs(
  retryBaseDelaySec: number,
  failureThreshold: number = circuitDefaults.failureThreshold,
): number {
  return Math.min(maxProviderWindowMs, 2 * failureThreshold * retryBaseDelaySec * 1000);
}

/**
 * The circuit breaker of an email or SMS provider, counting failures over {@link providerWindowMs} of the
 * worker's retry base. A message the provider refused for good (DeliveryRejectedError) shows the provider
 * is up: it does not count, so a few mistyped addresses never open the circuit for everyone. Nor does a
 * send the provider throttled ({@link isProviderThrottling}): a burst over the sending rate is the provider
 * asking us to slow down, which the message's jittered retry does, not an outage to page for.
 *
 * @example
 * const breaker = providerCircuitBreaker({ name: 'email-smtp', tableName, client, timeoutMs: providerTimeoutMs(30), retryBaseDelaySec: 30 });
 */
export function providerCircuitBreaker(
  options: CircuitBreakerOptions<string> & { readonly retryBaseDelaySec: number },
): CircuitBreaker<string> {
  const { retryBaseDelaySec, ...breakerOptions } = options;
  return new CircuitBreaker<string>({
    rollingWindowMs: providerWindowMs(retryBaseDelaySec, options.failureThreshold),
    ...breakerOptions,
    errorFilter: (error) => error instanceof DeliveryRejectedError || isProviderThrottling(error),
  });
}

/** Whether a user is still there, or why not: `EmailWorkerOptions.userState`, read once per user in a batch. */
type UserState = (userId: string) => Promise<UserItemState>;

/**
 * Why a message was dropped unsent: its user was deleted, its registration lapsed, it is a verification
 * email to an address verified since it was queued (a new link asked for, then the old one used), or it is
 * an SMS code that expired before the message could go out (a backlog, retries, a DLQ redrive).
 */
type SkipCause = 'deleted' | 'lapsed' | 'verified' | 'expired';

/** A {@link SkipCause} as the `email.skipped` audit line records it, and as the log line says it. */
const skipCauses: Readonly<Record<SkipCause, { reason: string; logged: string }>> = {
  deleted: { reason: 'user_deleted', logged: 'its user was deleted' },
  lapsed: { reason: 'registration_lapsed', logged: "its user's registration lapsed unverified" },
  verified: { reason: 'already_verified', logged: "its user's address is already verified" },
  expired: { reason: 'code_expired', logged: 'its code expired before it could be sent' },
};

/**
 * Whether a message that failed the schema says it is an SMS (a number not in E.164 form, say), so its
 * dead-lettering counts on the SMS side; a body that is not JSON says nothing.
 */
function claimsToBeSms(body: string): boolean {
  try {
    return (JSON.parse(body) as { type?: unknown } | null)?.type === 'sms';
  } catch {
    return false;
  }
}

/**
 * The messages of the batch in hand that were redriven from the DLQ: they carry the dead-letter reason
 * the worker copied them there with ({@link deadLetterReasonOf}).
 */
const redrivenMessages = new WeakSet<QueueMessage>();

/**
 * What every log and audit line about a message names: its id, and `redriven: true` for a message
 * redriven from the DLQ, so that its lines are told apart from a new message's.
 */
function messageFields(message: QueueMessage) {
  return { messageId: message.id, ...(redrivenMessages.has(message) ? { redriven: true } : {}) };
}

/** Why the worker dead-lettered a message, as its `email.rejected` audit line records it. */
type DeadLetterCause = 'invalid_message' | 'delivery_rejected';

/**
 * What failed in an attempt: the check that the message's user still exists, the send itself, or the time
 * left, too little for the send's timeout (it was not started).
 */
type FailedStep = 'user_check' | 'send' | 'time_left';

/** The log line of a failed attempt, by the step that failed and the channel. */
const failedAttemptLine: Readonly<Record<FailedStep, { email: string; sms: string }>> = {
  send: { email: 'Email send failed', sms: 'SMS send failed' },
  user_check: {
    email: 'Email not sent: could not check that its user still exists',
    sms: 'SMS not sent: could not check that its user still exists',
  },
  time_left: {
    email: "Email not sent: too little of the batch's time was left for its send",
    sms: "SMS not sent: too little of the batch's time was left for its send",
  },
};

/** The log line of a send the provider throttled: a failed attempt its circuit does not count. */
const throttledSendLine = {
  email: 'Email send throttled by the provider; retrying after the backoff',
  sms: 'SMS send throttled by the provider; retrying after the backoff',
};

/**
 * One send, keyed by the message id for idempotency (the rest is the payload, not part of the key),
 * with the message's correlation id for the events the provider's breaker reports during it.
 */
type IdempotentSend = { readonly id: string; readonly correlationId: string } & (
  | { readonly channel: 'email'; readonly email: OutgoingEmail }
  | { readonly channel: 'sms'; readonly sms: OutgoingSms }
);

/**
 * Processes SQS batches of email messages with Powertools batch processing (partial batch failures).
 *
 * - a message about a user (`userId`) who no longer exists, a verification email to a user whose address
 *   was verified since it was queued (one read per user and batch), or an SMS whose code has expired (its
 *   `expiresAt` passed): dropped unsent (reported processed, so SQS deletes it; no retry, no DLQ), counted
 *   (`EmailSkipped`), logged and audited with ids only; when the user check itself fails (DynamoDB), the
 *   attempt fails and backs off like a failed send, neither sent nor dropped;
 * - invalid JSON, a schema violation or a template that cannot render: the message can never be sent,
 *   so it is logged, audited and copied to the DLQ once with its reason, then reported as processed
 *   (no retries);
 * - a send whose recipient the provider refuses for good (DeliveryRejectedError, `refused: 'recipient'`:
 *   no such mailbox or domain, the user's input): dropped (reported processed; no retry, no DLQ, so no
 *   DLQ alarm; only a share of them too large for mistyped addresses alarms, EmailRejectionRate),
 *   counted (`EmailRejected`), logged and audited with ids and the provider's codes only;
 * - a send the provider refuses otherwise for good (`refused: 'message'`, SES `MessageRejected`):
 *   dead-lettered at once, like the above;
 * - a send that fails: the message's visibility is set to the backoff delay (full jitter) and the record is
 *   reported failed; after `maxAttempts` receives SQS moves it to the DLQ (redrive), or, for a message
 *   redriven from the DLQ, the worker copies it there with its current reason ({@link QueueActions.endLastAttempt}).
 *   A send the provider throttled ({@link isProviderThrottling}) is such a failed attempt, logged as throttled,
 *   which the provider's circuit does not count;
 * - a message id already sent (a redelivery or a duplicate enqueue): Powertools Idempotency returns
 *   the stored result, so no second email goes out; logged and audited as a duplicate, not as sent;
 * - a send the provider's open circuit turned away (nothing reached the provider; also a half-open
 *   circuit's probe in flight): deferred without spending an attempt, up to `maxCircuitDeferrals` times. A
 *   copy goes back to the queue with the attempts made so far, received after the circuit's retry-after
 *   plus jitter, and the record is reported processed; logged, with no failure metric or audit line. A
 *   receive's attempt is those attempts plus the copy's receive count ({@link attemptOf}), and a copy
 *   whose attempts are used goes to the DLQ through the worker ({@link QueueActions.deadLetterSpent}).
 *   Past the count, or when the copy cannot be sent (logged), the open circuit is a failed attempt;
 * - a message id another invocation is sending right now: the copy backs off, not counted as failed;
 * - a send whose breaker's timeout does not fit in what is left of the batch's time ({@link BatchDeadline}):
 *   not started; the attempt fails and backs off like a failed send (`step: 'time_left'`), and the provider's
 *   circuit does not count it. A send started is given the batch's deadline, and a record still running
 *   at it is reported failed then, so the batch is answered before the invocation times out;
 * - a send the provider accepted whose result the idempotency store could not save: counted as sent,
 *   with a warning, since a retry would send it again;
 * - a failed send whose in-progress record the idempotency store could not delete: handled by the
 *   provider's error as above (refused: the DLQ; otherwise backed off), with a warning; its retry waits
 *   at least until that record expires with the invocation.
 */
export class EmailWorker {
  private readonly idempotency: WorkerIdempotencySettings;
  private readonly queue: QueueActions;
  private readonly maxCircuitDeferrals: number;
  private readonly random: () => number;
  /**
   * The sends whose provider accepted the message in this invocation. Whatever the idempotency store
   * then says (a failed save of the result), such a message went out and must not be sent again.
   */
  private readonly accepted = new WeakSet<IdempotentSend>();
  /**
   * The sends whose provider call failed in this invocation, with its error. When Powertools then cannot
   * delete its in-progress record it throws that failure of its own instead, and the provider's answer
   * must still decide what follows (a refused message goes to the DLQ).
   */
  private readonly failed = new WeakMap<IdempotentSend, unknown>();

  constructor(private readonly options: EmailWorkerOptions) {
    const { sqs, queueUrl, dlqUrl, observability } = options;
    this.queue = new QueueActions({ sqs, queueUrl, dlqUrl, logger: observability.logger });
    this.idempotency = {
      persistenceStore: options.persistenceStore,
      expiresAfterSeconds: options.idempotencyTtlSec ?? 86_400,
    };
    this.maxCircuitDeferrals = options.maxCircuitDeferrals ?? 10;
    if (!(Number.isSafeInteger(this.maxCircuitDeferrals) && this.maxCircuitDeferrals >= 0)) {
      assertNoProblems('EmailWorker', [
        `maxCircuitDeferrals must be an integer >= 0 (got ${this.maxCircuitDeferrals})`,
      ]);
    }
    this.random = options.random ?? Math.random;
  }

  /**
   * Sends one message through its channel's breaker, by the batch's deadline; made idempotent per batch
   * (BatchIdempotency).
   */
  private async send(send: IdempotentSend, deadline: BatchDeadline): Promise<{ providerMessageId: string }> {
    let providerMessageId: string;
    const breaker = this.breakerOf(send.channel);
    const transmit: GuardedAction<string> = ({ signal }) =>
      send.channel === 'email'
        ? this.options.transport.send(send.email, signal)
        : this.smsChannel().transport.send(send.sms, signal);
    try {
      providerMessageId = await breaker.execute(
        deadline.startingInTime(breaker.name, breaker.timeoutMs, transmit),
        // The breakers are shared by the batch's records, sent in parallel: each call names its message.
        { onEvent: this.eventsOf(send.correlationId), deadline: deadline.at },
      );
    } catch (error) {
      this.failed.set(send, error);
      throw error;
    }
    this.accepted.add(send);
    return { providerMessageId };
  }

  /** The Lambda handler's body. */
  handle(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    // One user read per user per batch: a registration's messages (welcome, verification, SMS code) share it.
    const users = new Map<string, Promise<UserItemState>>();
    const userState: UserState = (userId) => {
      let read = users.get(userId);
      if (!read) {
        read = this.options.userState(userId);
        users.set(userId, read);
      }
      return read;
    };
    const deadline = new BatchDeadline(context);
    const sending = new BatchIdempotency(
      (send: IdempotentSend) => this.send(send, deadline),
      this.idempotency,
      context,
    );
    return processSqsBatch(event, context, deadline, this.options.observability.logger, (record) =>
      this.processRecord(record, userState, sending, deadline),
    );
  }

  private async processRecord(
    record: SQSRecord,
    userState: UserState,
    sending: BatchIdempotency<[IdempotentSend], { providerMessageId: string }>,
    deadline: BatchDeadline,
  ): Promise<void> {
    const correlationId = correlationIdFromMessage(record) ?? record.messageId;
    const parsed = await parseQueueMessage(record.body);
    if (!parsed.ok) {
      return this.deadLetter(record, parsed.reason, correlationId, { sms: claimsToBeSms(record.body) });
    }
    const { message } = parsed;
    const previousReason = deadLetterReasonOf(record);
    const attempt = attemptOf(record, this.options.maxAttempts);
    if (previousReason !== undefined) {
      redrivenMessages.add(message);
      this.options.observability.logger.info('Email message redriven from the DLQ', {
        correlation_id: correlationId,
        ...messageFields(message),
        type: message.type,
        attempt,
        previousReason,
      });
    }
    if (attempt > this.options.maxAttempts) {
      return this.queue.deadLetterSpent(record, {
        kind: message.type === 'sms' ? 'SMS' : 'Email',
        context: { correlation_id: correlationId, ...messageFields(message) },
        attempt,
        maxAttempts: this.options.maxAttempts,
      });
    }
    // Before anything else that could keep the message (the DLQ holds personal data for 14 days).
    let skipCause: SkipCause | undefined;
    try {
      skipCause = await this.whyNotSend(message, userState);
    } catch (error) {
      // Neither sent to someone who may be gone nor dropped for someone who may not: the attempt failed.
      return this.failAttempt(record, message, error, correlationId, { step: 'user_check' });
    }
    if (skipCause) return this.recordSkipped(message, correlationId, skipCause);
    if (message.type === 'sms' && !this.options.sms) {
      return this.deadLetter(record, 'No SMS transport is configured', correlationId, { message });
    }
    let send: IdempotentSend;
    try {
      send = this.render(message, correlationId);
    } catch (error) {
      if (error instanceof TemplateRenderError) {
        return this.deadLetter(record, error.message, correlationId, { message });
      }
      throw error;
    }
    // A send cut short by the deadline may have reached the provider with its result never saved: its
    // retry would send it again. Not started, it is only late. Checked again as the breaker starts the send
    // (BatchDeadline.startingInTime), after the idempotency write and the circuit's state read; this first
    // check spares those when the time is already too short.
    const breaker = this.breakerOf(send.channel);
    if (!deadline.leaves(breaker.timeoutMs)) {
      const error = deadline.tooLateFor(breaker.name, breaker.timeoutMs);
      return this.failAttempt(record, message, error, correlationId, { step: 'time_left' });
    }
    try {
      await sending.once(send);
    } catch (thrown) {
      // The provider's own error, also when Powertools threw its failure to delete the in-progress record instead.
      const error = this.failed.get(send) ?? thrown;
      const notBeforeSec =
        error === thrown ? 0 : this.recordLeftInProgress(message, thrown, correlationId, sending);
      if (error instanceof DeliveryRejectedError) {
        // A refused recipient is the user's input (a mistyped address), no fault of ours: nothing to page
        // or redrive for, and the DLQ would only keep the address. A refused message may be ours (content).
        if (error.refused === 'recipient') return this.recordRecipientRefused(message, error, correlationId);
        return this.deadLetter(record, error.message, correlationId, { message, cause: 'delivery_rejected' });
      }
      if (error instanceof IdempotencyAlreadyInProgressError) {
        return this.deferCopyInProgress(record, message, error, correlationId);
      }
      if (
        error instanceof CircuitOpenError &&
        (await this.deferred(record, message, { attempt, notBeforeSec, breaker }, error, correlationId))
      ) {
        return;
      }
      if (!(error instanceof IdempotencyPersistenceLayerError && this.accepted.has(send))) {
        // The batch's deadline fails only a send not started (startingInTime, or the breaker's state read).
        const step = error instanceof DeadlineExceededError ? 'time_left' : 'send';
        return this.failAttempt(record, message, error, correlationId, { notBeforeSec, step });
      }
      // Sent, but not remembered: retrying would send it twice, so it counts as sent.
      this.options.observability.logger.warn(
        send.channel === 'sms'
          ? 'SMS sent, but its idempotency record was not saved'
          : 'Email sent, but its idempotency record was not saved',
        {
          correlation_id: correlationId,
          ...messageFields(message),
          ...sendFailureLogFields(error.cause ?? error),
        },
      );
    }
    // No send of this invocation reached the provider: Powertools returned the stored result of an earlier one.
    if (!this.accepted.has(send)) return this.recordDuplicate(message, correlationId);
    const { auditLogger, metrics } = this.options.observability;
    const sms = send.channel === 'sms';
    recordMetric(metrics, sms ? 'SmsSent' : 'EmailSent');
    auditLogger.log({
      // The message id and type only: the recipient (an address or a number) is personal data.
      eventType: sms ? workerSuccessEventTypes.smsSent : workerSuccessEventTypes.emailSent,
      outcome: 'success',
      correlationId,
      // The user it is about, where it names one, as its skipped and undeliverable lines do: "user X got
      // no email" starts from the id.
      userId: message.userId,
      metadata: {
        ...messageFields(message),
        type: message.type,
        transport: sms ? this.options.sms?.transport.name : this.options.transport.name,
      },
    });
  }

  /**
   * Why the message must not go out: it is an SMS whose code has expired, the user it is about is no
   * longer there (deleted, or their registration lapsed since it was queued), or it asks them to verify an
   * address they verified since. Undefined otherwise, and for a message naming no user (about no one who
   * can be gone). Rejects when the user could not be checked (the caller's failed attempt).
   */
  private async whyNotSend(message: QueueMessage, userState: UserState): Promise<SkipCause | undefined> {
    // Before the user's read, which an expired code does not need.
    if (message.type === 'sms' && smsCodeExpired(message, Date.now())) return 'expired';
    if (message.userId === undefined) return undefined;
    const state = await userState(message.userId);
    if (state === 'deleted' || state === 'lapsed') return state;
    // Its "confirm your address, or this registration is removed" would be false, and its link useless.
    if (state === 'verified' && message.type === 'verification') return 'verified';
    return undefined;
  }

  /** A message that must not go out (see {@link SkipCause}): nothing went out, and nothing of it is kept but its ids. */
  private recordSkipped(message: QueueMessage, correlationId: string, why: SkipCause): void {
    const { logger, auditLogger, metrics } = this.options.observability;
    const sms = message.type === 'sms';
    recordMetric(metrics, 'EmailSkipped');
    logger.info(`${sms ? 'SMS' : 'Email'} dropped: ${skipCauses[why].logged}`, {
      correlation_id: correlationId,
      ...messageFields(message),
      userId: message.userId,
    });
    auditLogger.log({
      eventType: sms ? 'sms.skipped' : 'email.skipped',
      outcome: 'success',
      correlationId,
      userId: message.userId,
      reason: skipCauses[why].reason,
      metadata: { ...messageFields(message), type: message.type },
    });
  }

  /**
   * A message whose recipient the provider refused for good: dropped (reported processed, so SQS deletes
   * it), with nothing of it kept but its ids and the provider's codes.
   */
  private recordRecipientRefused(
    message: QueueMessage,
    error: DeliveryRejectedError,
    correlationId: string,
  ): void {
    const { logger, auditLogger, metrics } = this.options.observability;
    const sms = message.type === 'sms';
    // Apart from emails: the EmailRejectionRate alarm's share of refused emails is of emails only.
    recordMetric(metrics, sms ? 'SmsRejected' : 'EmailRejected');
    logger.info(
      sms
        ? 'SMS dropped: the provider refused its recipient'
        : 'Email dropped: the provider refused its recipient',
      {
        correlation_id: correlationId,
        ...messageFields(message),
        userId: message.userId,
        provider: error.provider,
        providerCode: error.providerCode,
        responseCode: error.responseCode,
      },
    );
    auditLogger.log({
      eventType: sms ? 'sms.undeliverable' : 'email.undeliverable',
      outcome: 'failure',
      correlationId,
      userId: message.userId,
      reason: 'recipient_refused',
      metadata: {
        ...messageFields(message),
        type: message.type,
        provider: error.provider,
        providerCode: error.providerCode,
        responseCode: error.responseCode,
      },
    });
  }

  /**
   * Powertools could not delete the in-progress record of a failed send: the message id stays blocked
   * until the record expires with this invocation. Logged; returns those seconds, for a retry to wait at
   * least, since one before then would be deferred as a copy in progress and spend a receive.
   */
  private recordLeftInProgress(
    message: QueueMessage,
    error: unknown,
    correlationId: string,
    sending: BatchIdempotency<[IdempotentSend], unknown>,
  ): number {
    const expiresInSec = sending.inProgressExpirySec();
    this.options.observability.logger.warn(
      message.type === 'sms'
        ? 'SMS send failed, and its in-progress idempotency record could not be deleted'
        : 'Email send failed, and its in-progress idempotency record could not be deleted',
      {
        correlation_id: correlationId,
        ...messageFields(message),
        expiresInSec,
        ...sendFailureLogFields(error instanceof Error ? (error.cause ?? error) : error),
      },
    );
    return expiresInSec;
  }

  /** A copy of a message already sent (a redelivery, a duplicate enqueue): nothing went out. */
  private recordDuplicate(message: QueueMessage, correlationId: string): void {
    const { logger, auditLogger } = this.options.observability;
    const sms = message.type === 'sms';
    logger.info(sms ? 'SMS already sent; copy skipped' : 'Email already sent; copy skipped', {
      correlation_id: correlationId,
      ...messageFields(message),
    });
    auditLogger.log({
      eventType: sms ? 'sms.duplicate' : 'email.duplicate',
      outcome: 'success',
      correlationId,
      metadata: { ...messageFields(message), type: message.type },
    });
  }

  /**
   * Another invocation, or another record of this batch, is sending this id right now. This copy backs
   * off and is reported failed, so it comes back to be skipped once that send is stored, or sent if
   * that send failed. It is no failed send: no failure metric or audit line.
   */
  private async deferCopyInProgress(
    record: SQSRecord,
    message: QueueMessage,
    error: IdempotencyAlreadyInProgressError,
    correlationId: string,
  ): Promise<never> {
    const attempt = attemptOf(record, this.options.maxAttempts);
    // Not jittered: a shorter wait would come back while that send is still running, spending a receive.
    const delaySec = retryDelaySec(attempt, this.options.retryBaseDelaySec);
    this.options.observability.logger.info(
      message.type === 'sms'
        ? 'An SMS with this id is being sent right now; this copy comes back later'
        : 'An email with this id is being sent right now; this copy comes back later',
      { correlation_id: correlationId, ...messageFields(message), attempt, delaySec },
    );
    await this.queue.delayNextAttempt(record, delaySec, correlationId);
    throw error;
  }

  /** The wait after failed attempt `attempt`: exponential from the retry base, with full jitter. */
  private backoffSec(attempt: number): number {
    return fullJitterDelaySec(attempt, this.options.retryBaseDelaySec, maxVisibilitySec, this.random);
  }

  /**
   * The provider's open circuit turned the send away, so nothing reached it: `maxCircuitDeferrals` times
   * at most, this receive is not spent ({@link QueueActions.deferWhileCircuitOpen}). The copy is received
   * after the circuit's retry-after, or one send's timeout if longer (a probe in flight has ended by then),
   * plus a random 0 … base × 2^(n-1) seconds for the n-th deferral, so a burst turned away together does
   * not come back together; at least `notBeforeSec`, at most SQS's 15 minutes. No failed attempt: no
   * failure metric or audit line. False past the count, or when the copy could not be sent (logged): the
   * receive then counts as an attempt.
   */
  private async deferred(
    record: SQSRecord,
    message: QueueMessage,
    {
      attempt,
      notBeforeSec,
      breaker,
    }: { attempt: number; notBeforeSec: number; breaker: CircuitBreaker<string> },
    error: CircuitOpenError,
    correlationId: string,
  ): Promise<boolean> {
    const deferrals = sendBacksOf(record);
    if (deferrals >= this.maxCircuitDeferrals) return false;
    const waitSec = Math.max(error.retryAfterSec, Math.ceil(breaker.timeoutMs / 1000));
    const jitterSec = fullJitterDelaySec(
      deferrals + 1,
      this.options.retryBaseDelaySec,
      maxSendDelaySec,
      this.random,
    );
    const delaySec = Math.min(maxSendDelaySec, Math.max(notBeforeSec, waitSec + jitterSec));
    return this.queue.deferWhileCircuitOpen(record, {
      kind: message.type === 'sms' ? 'SMS' : 'Email',
      circuit: 'provider circuit',
      context: { correlation_id: correlationId, ...messageFields(message), userId: message.userId },
      attempt,
      delaySec,
    });
  }

  /** The SMS channel; processRecord dead-letters SMS messages before any use when there is none. */
  private smsChannel(): NonNullable<EmailWorkerOptions['sms']> {
    if (!this.options.sms) throw new Error('No SMS transport is configured');
    return this.options.sms;
  }

  /** The breaker guarding a channel's provider. */
  private breakerOf(channel: IdempotentSend['channel']): CircuitBreaker<string> {
    return channel === 'email' ? this.options.breaker : this.smsChannel().breaker;
  }

  /** The function's listener, with the message each event happened for named on its audit line. */
  private eventsOf(correlationId: string): SecurityEventListener {
    const { onEvent } = this.options.observability;
    return (event) => onEvent({ ...event, correlationId });
  }

  /** The message rendered for its channel; throws TemplateRenderError when it can never render. */
  private render(message: QueueMessage, correlationId: string): IdempotentSend {
    const { id } = message;
    if (message.type === 'sms') {
      const text = this.options.templates.renderSms(message);
      return { id, correlationId, channel: 'sms', sms: { to: message.to, text, messageId: id } };
    }
    const email = { from: this.options.from, to: message.to, messageId: id };
    return {
      id,
      correlationId,
      channel: 'email',
      email: { ...email, ...this.options.templates.render(message) },
    };
  }

  /**
   * Reports a failed attempt (of its send, or of the check before it), delays the next one (at least
   * `notBeforeSec`) by changing the message's visibility and rethrows `error`, so the record is reported
   * failed. After the last attempt the message goes to the DLQ ({@link QueueActions.endLastAttempt}): it
   * resolves instead when the worker moved it there itself.
   */
  private async failAttempt(
    record: SQSRecord,
    message: QueueMessage,
    error: unknown,
    correlationId: string,
    { notBeforeSec = 0, step = 'send' }: { notBeforeSec?: number; step?: FailedStep } = {},
  ): Promise<void> {
    const { logger, auditLogger, metrics } = this.options.observability;
    const attempt = attemptOf(record, this.options.maxAttempts);
    const last = attempt >= this.options.maxAttempts;
    // After the last attempt: visible at once, for the DLQ (QueueActions.endLastAttempt).
    const delaySec = last ? 0 : Math.max(notBeforeSec, this.backoffSec(attempt));
    const sms = message.type === 'sms';
    const throttled = step === 'send' && isProviderThrottling(error);
    recordMetric(metrics, sms ? 'SmsFailed' : 'EmailFailed');
    logger.warn((throttled ? throttledSendLine : failedAttemptLine[step])[sms ? 'sms' : 'email'], {
      correlation_id: correlationId,
      ...messageFields(message),
      userId: message.userId,
      step,
      attempt,
      last,
      delaySec,
      ...(throttled ? { throttled } : {}),
      ...sendFailureLogFields(error),
    });
    auditLogger.log({
      eventType: sms ? 'sms.failed' : 'email.failed',
      outcome: 'error',
      correlationId,
      userId: message.userId,
      reason: error instanceof Error ? error.name : 'error',
      metadata: {
        ...messageFields(message),
        type: message.type,
        step,
        attempt,
        last,
        ...(throttled ? { throttled } : {}),
      },
    });
    if (!last) await this.queue.delayNextAttempt(record, delaySec, correlationId);
    else {
      const reason = attemptsUsedReason(attempt, this.options.maxAttempts);
      if (await this.queue.endLastAttempt(record, reason, correlationId)) return;
    }
    throw error;
  }

  /**
   * A message that can never be sent goes to the DLQ once, with its reason, and is then reported as
   * processed so SQS deletes it: retrying it would only fail the same way. If the DLQ write fails the
   * message is retried like a failed send, so it is never lost: logged as an error, counted, backed off;
   * on the last receive SQS's redrive moves it to the DLQ without its reason, and it is audited as rejected
   * then (`deadLetteredBy: 'redrive'`). An SMS counts as
   * one (`SmsFailed`, `sms.rejected`), also one that fails the schema; a body that is not JSON, as an email.
   */
  private async deadLetter(
    record: SQSRecord,
    reason: string,
    correlationId: string,
    {
      message,
      sms = message?.type === 'sms',
      cause = 'invalid_message',
    }: { message?: QueueMessage; sms?: boolean; cause?: DeadLetterCause } = {},
  ): Promise<void> {
    const { auditLogger, metrics } = this.options.observability;
    const redriven = deadLetterReasonOf(record) === undefined ? {} : { redriven: true };
    const context = { correlation_id: correlationId, sqsMessageId: record.messageId, reason, ...redriven };
    const auditRejected = (metadata: Record<string, unknown>) =>
      auditLogger.log({
        eventType: sms ? 'sms.rejected' : 'email.rejected',
        outcome: 'failure',
        correlationId,
        reason: cause,
        metadata: { sqsMessageId: record.messageId, detail: reason, ...redriven, ...metadata },
      });
    const attempt = attemptOf(record, this.options.maxAttempts);
    await this.queue.deadLetterRejected(record, reason, {
      correlationId,
      attempt,
      maxAttempts: this.options.maxAttempts,
      retryDelaySec: () => this.backoffSec(attempt),
      kind: sms ? 'SMS' : 'Email',
      context,
      metrics,
      failureMetric: sms ? 'SmsFailed' : 'EmailFailed',
      auditRejected,
    });
  }
}
