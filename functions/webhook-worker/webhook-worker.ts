// The webhook worker's core: validate, sign, POST once (idempotent, per-endpoint circuit), record every attempt, back off, disable dead endpoints.
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyUnknownError,
} from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdFromMessage } from '../../middleware/audit/correlation.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import {
  type CircuitBreakerSettings,
  resolveCircuitOptions,
} from '../../middleware/circuit-breaker/options.js';
import type { CircuitStateStore } from '../../middleware/circuit-breaker/state.js';
import {
  assertNoProblems,
  CircuitOpenError,
  DeadlineExceededError,
  DependencyTimeoutError,
  InvalidOptionsError,
  SsrfBlockedError,
} from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import { definedOnly } from '../../middleware/options.js';
import { checkTimeLimit } from '../../middleware/time-limits.js';
import type { FunctionObservability } from '../shared/observability.js';
import { parseMessageBody } from '../shared/queue-messages.js';
import {
  attemptOf,
  attemptsUsedReason,
  BatchDeadline,
  BatchIdempotency,
  deadLetterReasonOf,
  fullJitterDelaySec,
  maxSendDelaySec,
  maxVisibilitySec,
  processSqsBatch,
  type QueueActions,
  sendBacksOf,
  type WorkerIdempotencySettings,
} from '../shared/queue-worker.js';
import type { SsrfGuard } from '../shared/ssrf-guard.js';
import { StoredRecordError } from '../shared/stored-attributes.js';
import type {
  DeliveryAttempt,
  DisableCause,
  DisabledReason,
  StoredEndpoint,
  WebhookStore,
} from '../shared/webhook-store.js';
import { webhookEndpointCircuit, workerSuccessEventTypes } from '../workers.js';
import {
  type PostOutcome,
  postWebhook,
  type SignedHeaders,
  signWebhook,
  WebhookResponseError,
} from './delivery.js';
import { eventSubjectOf, type WebhookMessage, webhookMessageSchema } from './messages.js';
import type { OwnerAlerts } from './owner-alerts.js';

/**
 * When an endpoint is disabled for failing (besides 410 Gone, which disables it at once): checked each
 * time one of its deliveries fails for good (all its attempts used). Either condition disables it.
 */
export interface DisableRule {
  /**
   * Consecutive deliveries that failed for good, with no success in between.
   * @default 5
   */
  readonly afterFailedDeliveries?: number;
  /**
   * Hours since the first of those failures: an endpoint that has not accepted anything for this long
   * is disabled at its next failed delivery, however few events it receives.
   * @default 24
   */
  readonly afterFailingHours?: number;
}

export interface WebhookWorkerOptions {
  readonly store: WebhookStore;
  /** Checks every connection's address (the allowlist opens loopback for local runs and tests only). */
  readonly guard: SsrfGuard;
  readonly sqs: QueueActions;
  /**
   * The queue's maxReceiveCount: after this many failed attempts the message goes to the DLQ (by SQS's
   * redrive; by the worker for a copy sent back while a circuit was open, whose receives SQS counts afresh).
   */
  readonly maxAttempts: number;
  /** Attempt n that fails waits a random 0 … base × 2^(n-1) seconds (full jitter) before the next. */
  readonly retryBaseDelaySec: number;
  /**
   * The schedule's longest wait between two attempts; a Retry-After or an open circuit can lengthen a
   * wait up to this, never beyond (nor past SQS's 12 hours from the receive).
   * @default 3600
   */
  readonly maxRetryDelaySec?: number;
  /**
   * One POST's time limit: whole milliseconds, 1..2147483647 (`AbortSignal.timeout()` throws for a
   * fraction, and fires at once past that).
   * @default 10000
   */
  readonly timeoutMs?: number;
  /** Where each endpoint's circuit lives (the toolkit table, `CB#webhook-<endpointId>`). */
  readonly circuitStore: CircuitStateStore;
  /**
   * The per-endpoint circuits' settings, checked at construction (`InvalidOptionsError`, each problem
   * prefixed `circuit:`), so that a bad one never fails an endpoint's delivery.
   * @default failureThreshold 5 in a 60 s window, resetTimeoutMs 60000
   */
  readonly circuit?: Omit<CircuitBreakerSettings<PostOutcome>, 'name' | 'timeoutMs' | 'fallback' | 'onEvent'>;
  /**
   * Hours from a message's `createdAt` during which a receive that finds the endpoint's circuit open
   * (nothing POSTed) is deferred, not counted as an attempt: the message is sent back to the queue
   * with the attempts made so far. Past them an open circuit counts as an attempt, so the messages of a
   * dead endpoint still end and its disable rule still fires.
   * @default 24
   */
  readonly circuitDeferralHours?: number;
  /**
   * How many times one message is deferred at most (from the second on, each waits at least the retry
   * base, doubled per deferral since the first): a dead endpoint's messages then cost ten sends each,
   * not one a minute for the whole window, and its disable rule fires within hours, not a day late.
   * @default 10
   */
  readonly maxCircuitDeferrals?: number;
  readonly disableRule?: DisableRule;
  readonly alerts: OwnerAlerts;
  /** Where delivered webhook ids are remembered (the toolkit table, `IDEM#webhook-worker#…`). */
  readonly persistenceStore: BasePersistenceLayer;
  /**
   * How long a delivered id is remembered; a copy arriving later would be POSTed again.
   * @default 86400 (24 h, beyond SQS's retention of a retried message's attempts)
   */
  readonly idempotencyTtlSec?: number;
  readonly observability: FunctionObservability;
  /** @default Math.random */
  readonly random?: () => number;
}

/** What one successful POST leaves in the idempotency record, so a replay can still record it. */
interface Delivered extends PostOutcome {
  readonly attempt: number;
  readonly at: string;
}

interface DeliveryJob {
  readonly message: WebhookMessage;
  readonly endpoint: StoredEndpoint;
  readonly attempt: number;
  /** The message's, for the events the endpoint's circuit reports during this POST. */
  readonly correlationId: string;
  /** The batch's: the POST is cut short by it, which counts against neither the circuit nor the endpoint. */
  readonly deadline: BatchDeadline;
  /**
   * `posted` is set once the POST is sent, so a worker failure after it (saving the outcome) is told
   * apart, and so is a result Powertools replayed without one. `failure` is why the POST failed (the
   * endpoint's answer, a timeout, an open circuit): when Powertools then cannot delete its in-progress
   * record it throws that failure of its own instead, and the attempt must still count. `startedAt` is
   * the attempt's time (its `webhook-timestamp`), which the history gives failed attempts too.
   */
  readonly progress: { posted: boolean; failure?: unknown; startedAt?: Date };
}

/**
 * The worker could not sign a delivery (the endpoint's secret could not be read or decrypted: KMS
 * throttling or an outage, a key policy). Nothing was POSTed, which `progress.posted` tells the caller, as
 * for every failure before the POST; this class only names the cause in the audit line's `error`.
 */
class SigningFailedError extends Error {
  constructor(cause: unknown) {
    super('Webhook could not be signed', { cause });
    this.name = 'SigningFailedError';
  }
}

/**
 * Why the worker dead-lettered a message, as its `webhook.rejected` audit line records it: the message is
 * not JSON or fails the schema, or its endpoint's stored record is one this version cannot read.
 */
type RejectionCause = 'invalid_message' | 'unreadable_record';

/**
 * The DLQ reason of a message whose endpoint is disabled: it waits there for the endpoint's enable and
 * then a redrive (`endpoint_disabled` is its audit reason too).
 */
export const endpointDisabledReason = 'endpoint_disabled: its endpoint is disabled; enable it, then redrive';

/** Circuits kept per process; the least recently created is dropped beyond this (its state stays in DynamoDB). */
const maxCircuits = 1000;

/**
 * The endpoints' failure window: longer than the breaker's 10 s, so that five 10 s timeouts can add up,
 * but not the 2 × 5 × 10 s one caller's timeouts need wherever a boundary falls. The worker POSTs a
 * batch's records in parallel (10 a batch, up to 10 batches at once), so a burst to a hanging endpoint
 * times out within one time limit; a trickle to it costs each message its attempts, then the disable
 * rule ends it; and a longer window would let a busy endpoint's rare failures add up.
 */
const endpointWindowMs = 60_000;

/**
 * The messages of the batch in hand that were redriven from the DLQ: they carry the dead-letter reason
 * the worker copied them there with ({@link deadLetterReasonOf}). Keyed by the parsed message, which
 * every line about a delivery is written from.
 */
const redrivenMessages = new WeakSet<WebhookMessage>();

/**
 * The ids every line about a delivery names: its webhook and endpoint, and what its event is about
 * (`bookingId` or `userId`), the id an engineer is handed; and `redriven: true` for a message redriven
 * from the DLQ, so that its lines are told apart from a new event's.
 */
function deliveryFields(message: WebhookMessage) {
  return {
    webhookId: message.id,
    endpointId: message.endpointId,
    ...eventSubjectOf(message),
    ...(redrivenMessages.has(message) ? { redriven: true } : {}),
  };
}

/** A short, safe description of why an attempt failed (no response body, no secret). */
function describeFailure(error: unknown): { statusCode?: number; error: string } {
  if (error instanceof WebhookResponseError)
    return { statusCode: error.statusCode, error: `HTTP ${error.statusCode}` };
  if (error instanceof CircuitOpenError) return { error: 'circuit open: not attempted' };
  if (error instanceof DependencyTimeoutError) return { error: `timeout after ${error.timeoutMs} ms` };
  if (error instanceof SsrfBlockedError) return { error: `blocked address (${error.reason})` };
  if (error instanceof Error && error.name === 'TimeoutError') return { error: 'timeout' };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return { error: code };
  return { error: error instanceof Error ? error.name : 'error' };
}

/**
 * Why a message must not go to the endpoint now stored under its id, if it must not. Fan-out makes a
 * message only for an endpoint subscribed to its event type, and only after reading that subscription,
 * which the registration commits after taking the endpoint's `createdAt`: so the message's `createdAt`
 * comes later, as long as the two functions' clocks differ by less than that registration took. A message
 * that breaks either rule was made for an endpoint deleted before this one got its id (a key-derived id,
 * registered again once the deleted one's tombstone expired; a message redriven from the DLQ after that),
 * and would reach a URL that endpoint never had, with an event this one never asked for. Subscriptions
 * never change once registered (there is no route to change them), so the event type rule drops nothing
 * fan-out chose for this endpoint.
 */
function misdirectionOf(message: WebhookMessage, endpoint: StoredEndpoint): string | undefined {
  if (!endpoint.eventTypes.includes(message.eventType)) {
    return 'Webhook dropped: its endpoint does not subscribe to its event type';
  }
  if (Date.parse(message.createdAt) < Date.parse(endpoint.createdAt)) {
    return 'Webhook dropped: it was made before its endpoint was registered';
  }
  return undefined;
}

/** An endpoint's circuit options but its name: the same for every endpoint. */
type EndpointCircuitOptions = Omit<CircuitBreakerSettings<PostOutcome>, 'name'> & {
  readonly store: CircuitStateStore;
};

/**
 * What is wrong with the endpoints' circuit options, each problem prefixed `circuit:`. Checked under the
 * one name every endpoint's circuit is reported by: an endpoint id (1-64 characters) makes a valid name.
 */
function circuitProblems(circuitOptions: EndpointCircuitOptions): string[] {
  try {
    resolveCircuitOptions<PostOutcome>({ ...circuitOptions, name: webhookEndpointCircuit });
    return [];
  } catch (error) {
    if (!(error instanceof InvalidOptionsError)) throw error;
    return error.problems.map((problem) => `circuit: ${problem}`);
  }
}

/**
 * Processes SQS batches of webhook messages with Powertools batch processing (partial batch failures,
 * records in parallel). For each message:
 *
 * - invalid JSON or schema (among its rules, a payload nesting at most 32 levels): copied
 *   to the DLQ once with its reason, reported processed (no retries);
 *   so is a message whose endpoint's stored record this version cannot read (`StoredRecordError`: an
 *   attribute missing, a status it does not know), which fails the same way on every receive;
 * - endpoint deleted: dropped (logged); endpoint disabled: the delivery is marked failed, no POST, and
 *   the message is copied to the DLQ (reason {@link endpointDisabledReason}) for a redrive once it is enabled;
 *   another tenant's endpoint: dropped, logged as a warning and audited (`webhook.misdirected`);
 * - an endpoint under the message's id that does not subscribe to its event type, or was registered
 *   after the message was made: dropped (logged as a warning), as the message was made for an endpoint
 *   deleted before this one got its id;
 * - otherwise the payload is signed (Standard Webhooks) and POSTed through the endpoint's circuit,
 *   with the SSRF guard on the connection and a 10 s limit. 2xx: delivered. 410 Gone: the endpoint is
 *   disabled at once and the delivery fails with no more attempts. Anything else (3xx, 4xx, 5xx,
 *   timeout, network error, blocked address; an open circuit past `circuitDeferralHours`, see below)
 *   is a failed attempt: recorded and audited (`webhook.failed`, outcome `failure`: the receiver's), then the
 *   message's visibility is set to the backoff delay (full jitter; longer for a Retry-After on 429/503
 *   or an open circuit, within the schedule's maximum) and the record is reported failed. The
 *   `maxAttempts`-th failure marks the delivery failed, counts against the endpoint's disable rule
 *   and leaves the message to SQS's redrive into the DLQ; a message carrying a worker's attributes (a
 *   redriven one's dead-letter reason, a sent-back copy's counts) the worker copies there itself, with
 *   the current reason and without them ({@link QueueActions.endLastAttempt}).
 * - the worker's own failure before any POST (reading the endpoint; signing: KMS, the stored
 *   secret; the idempotency store; marking a delivery to a disabled endpoint failed; too little of the
 *   batch's time left for a POST's whole limit ({@link BatchDeadline}), so it is not started; anything else
 *   before the POST but the endpoint's open circuit), or a POST the batch's deadline cut short, is not an
 *   attempt against the endpoint: nothing is recorded on the delivery, the failure streak and the
 *   disable rule are untouched, and the message is retried later; on the last receive the delivery
 *   ends, marked failed and audited as `webhook.failed` (`worker_error`, outcome `error`). A failure saving
 *   the outcome after the POST is retried the same way, except that an answer the endpoint did give
 *   (410, a last failed attempt) is applied to the endpoint before the outcome is saved. A failed
 *   POST stays a failed attempt when the idempotency store then fails to delete its in-progress
 *   record; the next attempt waits for that record to expire with the invocation. A saved
 *   delivery is counted and audited at once; a failure resetting the streak after it only retries that.
 * - a webhook id already delivered (a redelivery, a duplicate): Powertools Idempotency returns the
 *   stored result, so the endpoint is never POSTed twice after a success; logged and audited as a
 *   duplicate, not as delivered (unless this copy is the one that saves the delivery).
 *
 * A receive that finds the endpoint's circuit open (nothing POSTed) spends none of the delivery's
 * attempts while the message is younger than `circuitDeferralHours` (24 h from its `createdAt`):
 * SQS's redrive counts every receive of a message, so the worker sends a copy back to its own queue,
 * delayed until the circuit may probe again (at least one POST time limit, at most 15 minutes), with
 * the attempts made so far in a message attribute, and reports the record processed. A receive's
 * attempt is those attempts plus the copy's receive count ({@link attemptOf}); a copy whose attempts
 * are all used is moved to the DLQ by the worker, since SQS's redrive counts only its own receives.
 * Nothing is recorded on the delivery for a deferral. Past that age, or if the copy cannot be sent
 * (logged), the open circuit counts as an attempt, a cheap one (no connection, no 10 s wait, the next
 * waits for the circuit), so a dead endpoint's messages still end and its disable rule still fires.
 */
export class WebhookWorker {
  private readonly idempotency: WorkerIdempotencySettings;
  private readonly circuits = new Map<string, CircuitBreaker<PostOutcome>>();
  /** Every endpoint's circuit but its name, checked once at construction. */
  private readonly circuitOptions: EndpointCircuitOptions;
  private readonly circuitEvents: SecurityEventListener;
  private readonly maxRetryDelaySec: number;
  private readonly timeoutMs: number;
  private readonly circuitDeferralMs: number;
  private readonly maxCircuitDeferrals: number;
  private readonly rule: Required<DisableRule>;
  private readonly random: () => number;

  constructor(private readonly options: WebhookWorkerOptions) {
    this.maxRetryDelaySec = Math.min(maxVisibilitySec, options.maxRetryDelaySec ?? 3600);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const problems: string[] = [];
    const timeoutValid = checkTimeLimit(problems, 'timeoutMs', this.timeoutMs);
    const deferralHours = options.circuitDeferralHours ?? 24;
    if (!(Number.isFinite(deferralHours) && deferralHours >= 0)) {
      problems.push(`circuitDeferralHours must be a number of hours >= 0 (got ${deferralHours})`);
    }
    this.circuitDeferralMs = deferralHours * 3_600_000;
    this.maxCircuitDeferrals = options.maxCircuitDeferrals ?? 10;
    if (!(Number.isSafeInteger(this.maxCircuitDeferrals) && this.maxCircuitDeferrals >= 0)) {
      problems.push(`maxCircuitDeferrals must be an integer >= 0 (got ${this.maxCircuitDeferrals})`);
    }
    const { onEvent } = options.observability;
    // One metric dimension for every endpoint's circuit (an id per endpoint would be unbounded
    // CloudWatch cardinality); the endpoint id stays in the audit metadata.
    this.circuitEvents = (event) =>
      onEvent({
        ...event,
        metadata: {
          ...event.metadata,
          circuit: webhookEndpointCircuit,
          endpointCircuit: event.metadata?.circuit,
        },
      });
    this.circuitOptions = {
      rollingWindowMs: endpointWindowMs,
      // An explicit undefined keeps the worker's defaults, not the breaker's.
      ...definedOnly(options.circuit),
      timeoutMs: this.timeoutMs,
      store: options.circuitStore,
      onEvent: this.circuitEvents,
      logger: options.observability.logger,
    };
    // A bad timeoutMs is the worker's own problem, reported once above, not again as the circuits'.
    if (timeoutValid) problems.push(...circuitProblems(this.circuitOptions));
    assertNoProblems('WebhookWorker', problems);
    this.rule = {
      afterFailedDeliveries: options.disableRule?.afterFailedDeliveries ?? 5,
      afterFailingHours: options.disableRule?.afterFailingHours ?? 24,
    };
    this.random = options.random ?? Math.random;
    // One webhook id is at most one successful POST.
    this.idempotency = {
      persistenceStore: options.persistenceStore,
      expiresAfterSeconds: options.idempotencyTtlSec ?? 86_400,
    };
  }

  /** The Lambda handler's body. */
  handle(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    // One endpoint read per endpoint per batch: a burst of events to one receiver shares it.
    const endpoints = new Map<string, Promise<StoredEndpoint | undefined>>();
    const endpointOf = (endpointId: string) => {
      let read = endpoints.get(endpointId);
      if (!read) {
        read = this.options.store.getEndpoint(endpointId);
        endpoints.set(endpointId, read);
      }
      return read;
    };
    const delivering = new BatchIdempotency(
      (_key: { id: string }, job: DeliveryJob) => this.post(job),
      this.idempotency,
      context,
    );
    const deadline = new BatchDeadline(context);
    return processSqsBatch(event, context, deadline, this.options.observability.logger, (record) =>
      this.processRecord(record, endpointOf, delivering, deadline),
    );
  }

  private circuitFor(endpointId: string): CircuitBreaker<PostOutcome> {
    let circuit = this.circuits.get(endpointId);
    if (!circuit) {
      if (this.circuits.size >= maxCircuits)
        this.circuits.delete(this.circuits.keys().next().value as string);
      circuit = new CircuitBreaker<PostOutcome>({ ...this.circuitOptions, name: `webhook-${endpointId}` });
      this.circuits.set(endpointId, circuit);
    }
    return circuit;
  }

  /** Signs (with the attempt's own timestamp) and POSTs through the endpoint's circuit; throws unless 2xx. */
  private async post({
    message,
    endpoint,
    attempt,
    correlationId,
    deadline,
    progress,
  }: DeliveryJob): Promise<Delivered> {
    const body = JSON.stringify(message.payload);
    const at = new Date();
    progress.startedAt = at;
    try {
      const headers = await this.sign(endpoint, message.id, body, at);
      const outcome = await this.circuitFor(endpoint.id).execute(
        // The time left is checked again here, after the idempotency write, signing and the circuit's state read.
        deadline.startingInTime(`webhook-${endpoint.id}`, this.timeoutMs, ({ signal }) => {
          progress.posted = true;
          return postWebhook(new URL(endpoint.url), { ...headers }, body, {
            guard: this.options.guard,
            signal,
            timeoutMs: this.timeoutMs,
          });
        }),
        // The batch's records to one endpoint share its circuit: each call names its message.
        { onEvent: (event) => this.circuitEvents({ ...event, correlationId }), deadline: deadline.at },
      );
      return { ...outcome, attempt, at: at.toISOString() };
    } catch (error) {
      progress.failure = error;
      throw error;
    }
  }

  /** The attempt's Standard Webhooks headers; a failure here is named {@link SigningFailedError}. */
  private async sign(
    endpoint: StoredEndpoint,
    webhookId: string,
    body: string,
    at: Date,
  ): Promise<SignedHeaders> {
    try {
      return signWebhook(await this.options.store.signingSecrets(endpoint, at), webhookId, body, at);
    } catch (error) {
      throw new SigningFailedError(error);
    }
  }

  private async processRecord(
    record: SQSRecord,
    endpointOf: (endpointId: string) => Promise<StoredEndpoint | undefined>,
    delivering: BatchIdempotency<[{ id: string }, DeliveryJob], Delivered>,
    deadline: BatchDeadline,
  ): Promise<void> {
    const correlationId = correlationIdFromMessage(record) ?? record.messageId;
    const parsed = parseMessageBody(webhookMessageSchema, record.body);
    if (!parsed.ok) return this.reject(record, parsed.reason, correlationId);
    const { message } = parsed;
    const previousReason = deadLetterReasonOf(record);
    const attempt = attemptOf(record, this.options.maxAttempts);
    if (previousReason !== undefined) {
      redrivenMessages.add(message);
      this.options.observability.logger.info('Webhook message redriven from the DLQ', {
        correlation_id: correlationId,
        ...deliveryFields(message),
        attempt,
        previousReason,
      });
    }
    if (attempt > this.options.maxAttempts)
      return this.options.sqs.deadLetterSpent(record, {
        kind: 'Webhook',
        context: { correlation_id: correlationId, ...deliveryFields(message) },
        attempt,
        maxAttempts: this.options.maxAttempts,
      });
    const { store, observability } = this.options;
    let endpoint: StoredEndpoint | undefined;
    try {
      endpoint = await endpointOf(message.endpointId);
    } catch (error) {
      // A record this version cannot read fails the same way on every receive: retrying only delays the
      // DLQ, and a redrive cannot help until the record is fixed or deleted.
      if (error instanceof StoredRecordError) {
        return this.reject(
          record,
          `Endpoint unreadable: ${error.message}`,
          correlationId,
          'unreadable_record',
          message,
        );
      }
      // The toolkit table could not be read (an outage, throttling): ours, not the endpoint's failure.
      return this.postpone(record, message, { attempt, posted: false }, error, correlationId);
    }
    if (!endpoint) {
      // Deleted since the event: nobody to deliver to and no history to keep.
      observability.logger.info('Webhook dropped: its endpoint no longer exists', {
        correlation_id: correlationId,
        ...deliveryFields(message),
      });
      return;
    }
    if (endpoint.tenantId !== message.tenantId) return this.dropForeign(message, endpoint, correlationId);
    const misdirection = misdirectionOf(message, endpoint);
    if (misdirection) {
      observability.logger.warn(misdirection, {
        correlation_id: correlationId,
        ...deliveryFields(message),
        eventType: message.eventType,
        messageCreatedAt: message.createdAt,
        endpointCreatedAt: endpoint.createdAt,
      });
      return;
    }
    if (endpoint.status === 'disabled') {
      await this.alertOwnerIfPending(endpoint, correlationId);
      return this.keepForEnable(record, message, attempt, correlationId);
    }
    // A POST cut short by the deadline may have reached the receiver with its outcome never saved: its
    // retry would POST it again. Not started, it is only late: a failure of ours, not the endpoint's.
    if (!deadline.leaves(this.timeoutMs)) {
      const error = deadline.tooLateFor(`webhook-${endpoint.id}`, this.timeoutMs);
      return this.postpone(record, message, { attempt, posted: false }, error, correlationId);
    }
    let delivered: Delivered;
    const started = performance.now();
    const progress: DeliveryJob['progress'] = { posted: false };
    try {
      delivered = await delivering.once(
        { id: message.id },
        { message, endpoint, attempt, correlationId, deadline, progress },
      );
    } catch (thrown) {
      // The attempt's own failure (signing, the POST), also when Powertools threw its failure to delete the
      // in-progress record instead.
      const error = progress.failure ?? thrown;
      const durationMs = Math.round(performance.now() - started);
      let notBeforeSec = 0;
      if (thrown !== error) {
        // The webhook id stays blocked until that record expires: a retry before then would be turned
        // away as a copy in flight, spending a receive.
        notBeforeSec = delivering.inProgressExpirySec();
        observability.logger.warn(
          'Webhook attempt failed, and its in-progress idempotency record could not be deleted',
          {
            correlation_id: correlationId,
            ...deliveryFields(message),
            expiresInSec: notBeforeSec,
            error: thrown,
          },
        );
      }
      // Nothing reached the endpoint unless its circuit turned the POST away: any other failure before
      // the POST is ours (signing, the idempotency store, serialising the payload), not the endpoint's;
      // so is a POST the batch's deadline cut short.
      if (
        error instanceof IdempotencyUnknownError ||
        error instanceof DeadlineExceededError ||
        !(progress.posted || error instanceof CircuitOpenError)
      ) {
        return this.postpone(
          record,
          message,
          { attempt, posted: progress.posted, notBeforeSec },
          error,
          correlationId,
        );
      }
      if (
        error instanceof CircuitOpenError &&
        (await this.deferred(record, message, { attempt, notBeforeSec }, error, correlationId))
      ) {
        return;
      }
      return this.failAttempt(
        record,
        message,
        endpoint,
        { attempt, durationMs, notBeforeSec, startedAt: progress.startedAt },
        error,
        correlationId,
      );
    }
    const { attempt: deliveredAttempt, at, statusCode, durationMs } = delivered;
    let saved: boolean;
    try {
      saved = await store.recordAttempt(
        message,
        { attempt: deliveredAttempt, at, statusCode, durationMs },
        'delivered',
      );
    } catch (error) {
      return this.postpone(record, message, { attempt, posted: true }, error, correlationId);
    }
    // No POST in this invocation (Powertools returned an earlier one's result) and the delivery was
    // already saved: a copy. A replay that saves an outcome its POST could not is still the delivery.
    if (!progress.posted && !saved) {
      this.recordDuplicate(message, correlationId);
    } else {
      // Counted once it is saved: what follows cannot make the saved delivery a failed one.
      recordMetric(observability.metrics, 'WebhookDelivered');
      this.audit(workerSuccessEventTypes.webhookDelivered, 'success', correlationId, message, {
        attempt: deliveredAttempt,
        statusCode,
        durationMs,
      });
    }
    if (endpoint.failedDeliveries > 0) {
      await this.resetStreak(record, message, endpoint, attempt, correlationId);
    }
  }

  /**
   * The endpoint's open circuit turned the POST away, so nothing reached it: within
   * `circuitDeferralHours` of the message's `createdAt`, and `maxCircuitDeferrals` times at most, this
   * receive is not spent. A copy of the message goes back to the queue carrying the attempts made so
   * far (this receive not among them), received after the longest of: the wait a failed attempt would
   * have had (at least the circuit's retryAfter), one POST time limit (a probe in flight has ended by
   * then, and SQS's redrive counts no copy) and, from the second deferral on, the retry base doubled
   * per deferral since the first; at most SQS's 15 minutes. The record is then reported processed, so
   * SQS deletes it. False past the age or the count (a `createdAt` in the future counts as past the
   * age), or when the copy could not be sent (logged): the receive then counts as an attempt. A copy
   * sent and the record redelivered anyway is a duplicate the idempotency store turns away.
   */
  private async deferred(
    record: SQSRecord,
    message: WebhookMessage,
    { attempt, notBeforeSec }: { readonly attempt: number; readonly notBeforeSec: number },
    error: CircuitOpenError,
    correlationId: string,
  ): Promise<boolean> {
    const ageMs = Date.now() - Date.parse(message.createdAt);
    const deferrals = sendBacksOf(record);
    if (!(ageMs >= 0 && ageMs < this.circuitDeferralMs) || deferrals >= this.maxCircuitDeferrals) {
      return false;
    }
    const delaySec = Math.min(
      maxSendDelaySec,
      Math.max(
        notBeforeSec,
        Math.ceil(this.timeoutMs / 1000),
        this.nextDelaySec(attempt, error),
        deferrals === 0 ? 0 : this.options.retryBaseDelaySec * 2 ** (deferrals - 1),
      ),
    );
    return this.options.sqs.deferWhileCircuitOpen(record, {
      kind: 'Webhook delivery',
      circuit: 'endpoint circuit',
      context: { correlation_id: correlationId, ...deliveryFields(message) },
      attempt,
      delaySec,
    });
  }

  /**
   * A message for a disabled endpoint: nothing is POSTed, the delivery is marked failed, and the message
   * is copied to the DLQ with reason {@link endpointDisabledReason} and reported processed, so that once
   * the endpoint is enabled a redrive delivers it; deleted, it could never be sent (a redrive made before
   * the enable would use up the whole backlog). The DLQ copy is its end until an operator redrives it, so a
   * redrive while the endpoint is still disabled only puts it back there. A failure marking the delivery
   * postpones the message like any failure of ours; a DLQ copy refused is retried the same way, and on the
   * last receive SQS's redrive moves it to the DLQ instead, without the reason.
   */
  private async keepForEnable(
    record: SQSRecord,
    message: WebhookMessage,
    attempt: number,
    correlationId: string,
  ): Promise<void> {
    const { logger, metrics } = this.options.observability;
    const at = new Date().toISOString();
    try {
      // Refused for a delivery already failed (a redrive before the enable): its history keeps the first.
      await this.options.store.recordAttempt(
        message,
        { attempt, at, error: 'endpoint disabled: not attempted, kept in the DLQ', durationMs: 0 },
        'failed',
      );
    } catch (error) {
      return this.postpone(record, message, { attempt, posted: false }, error, correlationId);
    }
    const context = { correlation_id: correlationId, ...deliveryFields(message), attempt };
    const auditFailed = (metadata: Record<string, unknown>) =>
      this.audit('webhook.failed', 'failure', correlationId, message, {
        attempt,
        reason: 'endpoint_disabled',
        ...metadata,
      });
    await this.options.sqs.deadLetterOrRetry(record, endpointDisabledReason, {
      correlationId,
      attempt,
      maxAttempts: this.options.maxAttempts,
      retryDelaySec: () => this.nextDelaySec(attempt, undefined),
      refused: ({ last, delaySec, error }) => {
        recordMetric(metrics, 'WebhookFailed');
        logger.error(
          last
            ? 'Webhook for a disabled endpoint could not be dead-lettered on the last attempt; the redrive moves it to the DLQ without its reason'
            : 'Webhook for a disabled endpoint could not be dead-lettered; retrying',
          { ...context, last, delaySec, error },
        );
        if (last) auditFailed({ deadLetteredBy: 'redrive' });
      },
    });
    logger.warn('Webhook not sent: its endpoint is disabled; kept in the DLQ until it is enabled', context);
    auditFailed({ deadLetteredBy: 'worker' });
  }

  /**
   * A delivery ends its endpoint's failure streak. It is counted and audited already, so a failure to
   * reset the streak is no failed delivery: it is logged, and the message comes back after the backoff
   * to reset it (Powertools replays the saved POST: that copy is a duplicate that only resets the
   * streak). On the last receive the message is let go rather than sent to the DLQ, since the webhook
   * was delivered; the endpoint's next delivery resets the streak.
   */
  private async resetStreak(
    record: SQSRecord,
    message: WebhookMessage,
    endpoint: StoredEndpoint,
    attempt: number,
    correlationId: string,
  ): Promise<void> {
    try {
      await this.options.store.clearFailures(endpoint.id);
    } catch (error) {
      const last = attempt >= this.options.maxAttempts;
      this.options.observability.logger.error(
        last
          ? 'Webhook delivered, but its endpoint failure streak could not be reset; left to its next delivery'
          : 'Webhook delivered, but its endpoint failure streak could not be reset; retrying',
        { correlation_id: correlationId, ...deliveryFields(message), error },
      );
      if (last) return;
      await this.options.sqs.delayNextAttempt(record, this.nextDelaySec(attempt, error), correlationId);
      throw error;
    }
  }

  /**
   * A message naming another tenant's endpoint: fan-out never makes one (it reads the subscription under
   * the event's tenant), so a producer that is buggy or not ours made it. Dropped with nothing in the
   * endpoint's history, and audited (`webhook.misdirected`, outcome `denied`) for the tenant it claimed.
   */
  private dropForeign(message: WebhookMessage, endpoint: StoredEndpoint, correlationId: string): void {
    const detail = { ...deliveryFields(message), endpointTenantId: endpoint.tenantId };
    this.options.observability.logger.warn('Webhook dropped: its endpoint belongs to another tenant', {
      correlation_id: correlationId,
      ...detail,
      tenantId: message.tenantId,
    });
    this.options.observability.auditLogger.log({
      eventType: 'webhook.misdirected',
      outcome: 'denied',
      tenantId: message.tenantId,
      correlationId,
      reason: 'tenant_mismatch',
      metadata: { ...detail, eventType: message.eventType },
    });
  }

  /** A copy of a webhook already delivered (a redelivery, a duplicate): nothing was POSTed. */
  private recordDuplicate(message: WebhookMessage, correlationId: string): void {
    this.options.observability.logger.info('Webhook already delivered; copy skipped', {
      correlation_id: correlationId,
      ...deliveryFields(message),
    });
    this.audit('webhook.duplicate', 'success', correlationId, message, {});
  }

  /**
   * Not the endpoint's answer: another copy of this message is being delivered right now, or the
   * worker failed before the POST (reading the endpoint, signing, the idempotency store) or in saving
   * its outcome. Nothing is recorded against the endpoint here (a KMS outage must not disable every
   * endpoint at once); the message comes back later and the record is reported failed:
   * after the base delay for a copy in flight (it is about to finish), after the jittered backoff for
   * a failure of ours, so messages that failed together in an outage do not all return together. A
   * failure of ours on the last receive ends the delivery instead (see {@link failForGood}) and sends
   * the message to the DLQ ({@link QueueActions.endLastAttempt}).
   */
  private async postpone(
    record: SQSRecord,
    message: WebhookMessage,
    {
      attempt,
      posted,
      notBeforeSec = 0,
    }: { readonly attempt: number; readonly posted: boolean; readonly notBeforeSec?: number },
    error: unknown,
    correlationId: string,
  ): Promise<void> {
    const { logger, metrics } = this.options.observability;
    const last = attempt >= this.options.maxAttempts;
    const context = {
      correlation_id: correlationId,
      ...deliveryFields(message),
      attempt,
      last,
    };
    let delaySec = this.options.retryBaseDelaySec;
    if (error instanceof IdempotencyAlreadyInProgressError) {
      logger.warn('Webhook delivery postponed: another copy is in flight', { ...context, delaySec });
    } else if (last) {
      await this.failForGood(message, { attempt, posted }, error, correlationId, context);
      if (await this.endLastAttempt(record, attempt, correlationId)) return;
      throw error;
    } else {
      // Counted with the failed attempts so an outage of ours shows on the dashboard, but logged as
      // the worker's error, not the endpoint's.
      recordMetric(metrics, 'WebhookFailed');
      delaySec = Math.max(notBeforeSec, this.nextDelaySec(attempt, error));
      logger.error(
        posted
          ? 'Webhook delivery postponed: the worker failed after POSTing, so the outcome was not saved'
          : 'Webhook delivery postponed: the worker failed before POSTing',
        { ...context, delaySec, error },
      );
    }
    await this.options.sqs.delayNextAttempt(record, delaySec, correlationId);
    throw error;
  }

  /**
   * A failure of ours on the last receive: SQS's redrive takes the message next, so the delivery ends
   * here. Counted in `WebhookFailed` like every failed receive of ours, audited as `webhook.failed`
   * (reason `worker_error`, so it is told apart from the endpoint's failures), logged as the
   * delivery's end, and marked failed in its history. The failure streak is left alone: an answer
   * the endpoint gave was applied before its save failed.
   */
  private async failForGood(
    message: WebhookMessage,
    { attempt, posted }: { readonly attempt: number; readonly posted: boolean },
    error: unknown,
    correlationId: string,
    context: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    const { logger, metrics } = this.options.observability;
    recordMetric(metrics, 'WebhookFailed');
    this.audit('webhook.failed', 'error', correlationId, message, {
      attempt,
      last: true,
      posted,
      reason: 'worker_error',
      error: error instanceof Error ? error.name : 'error',
    });
    logger.error(
      posted
        ? 'Webhook delivery failed for good: the worker failed after POSTing on the last attempt, so the outcome was not saved; the message goes to the DLQ'
        : 'Webhook delivery failed for good: the worker failed before POSTing on the last attempt; the message goes to the DLQ',
      { ...context, error },
    );
    const entry = {
      attempt,
      at: new Date().toISOString(),
      error: posted ? 'outcome not saved: worker error' : 'not attempted: worker error',
      durationMs: 0,
    };
    // Best effort: the store may be what is failing, and the message must still go to the redrive now.
    await this.options.store.recordAttempt(message, entry, 'failed').catch((saveError: unknown) => {
      logger.error('Webhook delivery left pending: it could not be marked failed', {
        ...context,
        error: saveError,
      });
    });
  }

  /**
   * Records a failed attempt and decides what follows: 410 ends the delivery and disables the endpoint
   * (resolves: the message is deleted); otherwise the next attempt is delayed (rejects), or after the last
   * one the delivery is marked failed, the disable rule applied and the message sent to the DLQ
   * ({@link QueueActions.endLastAttempt}: rejects when that is left to SQS's redrive).
   * The next attempt waits at least `notBeforeSec`. A write that fails here postpones the message
   * like any failure of the worker's.
   */
  private async failAttempt(
    record: SQSRecord,
    message: WebhookMessage,
    endpoint: StoredEndpoint,
    {
      attempt,
      durationMs,
      notBeforeSec,
      startedAt,
    }: { attempt: number; durationMs: number; notBeforeSec: number; startedAt: Date | undefined },
    error: unknown,
    correlationId: string,
  ): Promise<void> {
    const { store, observability } = this.options;
    const failure = describeFailure(error);
    const now = new Date();
    // When it started, as for a delivered attempt: a timed-out POST ended 10 s after the receiver got it.
    const entry: DeliveryAttempt = { attempt, at: (startedAt ?? now).toISOString(), ...failure, durationMs };
    const gone = failure.statusCode === 410;
    const last = attempt >= this.options.maxAttempts;
    try {
      // The endpoint's answer first: if saving the attempt then fails, a 410 still disables the
      // endpoint and a last failed attempt still counts toward the disable rule.
      if (gone) await this.disable(endpoint, { reason: 'gone' }, correlationId);
      else if (last) await this.applyDisableRule(endpoint, message.id, correlationId, now);
      await store.recordAttempt(message, entry, gone || last ? 'failed' : 'pending');
    } catch (saveError) {
      return this.postpone(record, message, { attempt, posted: true }, saveError, correlationId);
    }
    recordMetric(observability.metrics, 'WebhookFailed');
    if (gone) {
      this.audit('webhook.failed', 'failure', correlationId, message, {
        attempt,
        statusCode: 410,
        last: true,
      });
      return;
    }
    // After the last attempt: visible at once, for the DLQ (QueueActions.endLastAttempt).
    const delaySec = last ? 0 : Math.max(notBeforeSec, this.nextDelaySec(attempt, error));
    observability.logger.warn('Webhook delivery attempt failed', {
      correlation_id: correlationId,
      ...deliveryFields(message),
      attempt,
      last,
      delaySec,
      reason: failure.error,
    });
    // The receiver's failure (its answer, a timeout, a blocked address), not ours: `failure`, as a client's
    // 4xx is, so that `outcome = "error"` finds the worker's own faults (`worker_error`) only.
    this.audit('webhook.failed', 'failure', correlationId, message, { attempt, last, reason: failure.error });
    if (!last) await this.options.sqs.delayNextAttempt(record, delaySec, correlationId);
    else if (await this.endLastAttempt(record, attempt, correlationId)) return;
    throw error;
  }

  /** {@link QueueActions.endLastAttempt}: true when the worker moved the message to the DLQ itself. */
  private endLastAttempt(record: SQSRecord, attempt: number, correlationId: string): Promise<boolean> {
    const reason = attemptsUsedReason(attempt, this.options.maxAttempts);
    return this.options.sqs.endLastAttempt(record, reason, correlationId);
  }

  /** Full-jitter backoff, lengthened (within the schedule's maximum) by a Retry-After or an open circuit. */
  private nextDelaySec(attempt: number, error: unknown): number {
    const backoff = fullJitterDelaySec(
      attempt,
      this.options.retryBaseDelaySec,
      this.maxRetryDelaySec,
      this.random,
    );
    const asked =
      error instanceof WebhookResponseError
        ? error.retryAfterSec
        : error instanceof CircuitOpenError
          ? error.retryAfterSec
          : undefined;
    return Math.min(this.maxRetryDelaySec, Math.max(backoff, asked ?? 0));
  }

  /** Counts a delivery that failed for good and disables the endpoint when the rule says so. */
  private async applyDisableRule(
    endpoint: StoredEndpoint,
    webhookId: string,
    correlationId: string,
    now: Date,
  ): Promise<void> {
    const streak = await this.options.store.noteFailedDelivery(endpoint.id, webhookId, now);
    if (!streak) return;
    const failingMs = now.getTime() - new Date(streak.failingSince).getTime();
    if (
      streak.failedDeliveries >= this.rule.afterFailedDeliveries ||
      failingMs >= this.rule.afterFailingHours * 3_600_000
    ) {
      await this.disable(endpoint, { reason: 'failing', webhookId }, correlationId);
    }
  }

  private async disable(endpoint: StoredEndpoint, cause: DisableCause, correlationId: string): Promise<void> {
    const { store, observability } = this.options;
    const { reason } = cause;
    const disabledAt = new Date();
    // Only the call that disabled it alerts (or, when it is cut off first, the next message for the
    // endpoint): concurrent failures of one endpoint send one email.
    if (!(await store.disableEndpoint(endpoint, cause, disabledAt))) return;
    recordMetric(observability.metrics, 'WebhookEndpointDisabled');
    observability.logger.warn('Webhook endpoint disabled', {
      correlation_id: correlationId,
      endpointId: endpoint.id,
      reason,
    });
    observability.auditLogger.log({
      eventType: 'webhook.endpoint_disabled',
      outcome: 'success',
      userId: endpoint.ownerId,
      tenantId: endpoint.tenantId,
      correlationId,
      reason,
      metadata: { endpointId: endpoint.id, ownerKind: endpoint.ownerKind },
    });
    await this.alertOwner(endpoint, reason, disabledAt.toISOString(), correlationId);
  }

  /**
   * The owner's alert of a disable whose invocation was cut off, or failed to queue it, before it was
   * queued (its `ownerAlertPending` is still set): queued now, by the next message for the endpoint.
   */
  private async alertOwnerIfPending(endpoint: StoredEndpoint, correlationId: string): Promise<void> {
    const { ownerAlertPending, disabledReason, disabledAt } = endpoint;
    if (!ownerAlertPending || disabledReason === undefined || disabledAt === undefined) return;
    await this.alertOwner(endpoint, disabledReason, disabledAt, correlationId);
  }

  /**
   * Queues the alert of the endpoint's disable at `disabledAt` (as stored: the flag is cleared on that
   * text), then, once it is queued or none is needed, clears the disable's `ownerAlertPending`. The
   * alert's id is the disable's, so a copy queued again (a message for the endpoint that met the flag
   * while the disabling invocation was still queuing its own, or after it failed to queue it or to clear
   * the flag) is one the email worker sends once (it remembers sent ids for 24 hours).
   */
  private async alertOwner(
    endpoint: StoredEndpoint,
    reason: DisabledReason,
    disabledAt: string,
    correlationId: string,
  ): Promise<void> {
    const { store, alerts, observability } = this.options;
    const disabledTime = new Date(disabledAt);
    if (Number.isNaN(disabledTime.getTime())) {
      // A record written by hand or by another version: its message is set aside all the same.
      observability.logger.warn(
        "Webhook endpoint's owner alert is not queued: its stored disabledAt is not a time; it stays pending",
        { correlation_id: correlationId, endpointId: endpoint.id, disabledAt },
      );
      return;
    }
    // Not queued: reported as such, and left pending for the next message for the endpoint.
    if (!(await alerts.endpointDisabled(endpoint, reason, correlationId, disabledTime))) return;
    try {
      await store.ownerAlerted(endpoint.id, disabledAt);
    } catch (error) {
      observability.logger.warn(
        "Webhook endpoint's owner alert is still marked pending; the next message for it queues it again, under the same id",
        { correlation_id: correlationId, endpointId: endpoint.id, error },
      );
    }
  }

  /**
   * A message that can never be delivered: to the DLQ once, with its reason; then reported processed.
   * If the DLQ write fails the message is retried like any failure of ours (logged, counted, after the
   * jittered backoff), so it is never lost; on the last receive SQS's redrive moves it to the DLQ
   * instead, without the reason attribute, and it is audited as rejected then. The audit's reason is
   * `cause`: the message itself, or its endpoint's record, which only fixing or deleting it mends.
   * `message` is the parsed message when there is one (the record is the cause): its lines then name the
   * delivery, as every other line about a delivery does.
   */
  private async reject(
    record: SQSRecord,
    reason: string,
    correlationId: string,
    cause: RejectionCause = 'invalid_message',
    message?: WebhookMessage,
  ): Promise<void> {
    const { auditLogger, metrics } = this.options.observability;
    const delivery = message === undefined ? {} : deliveryFields(message);
    const redriven = deadLetterReasonOf(record) === undefined ? {} : { redriven: true };
    const context = {
      correlation_id: correlationId,
      sqsMessageId: record.messageId,
      reason,
      ...redriven,
      ...delivery,
    };
    const auditRejected = (metadata: Record<string, unknown>) =>
      auditLogger.log({
        eventType: 'webhook.rejected',
        outcome: 'failure',
        ...(message === undefined ? {} : { tenantId: message.tenantId }),
        correlationId,
        reason: cause,
        metadata: { sqsMessageId: record.messageId, detail: reason, ...redriven, ...delivery, ...metadata },
      });
    const attempt = attemptOf(record, this.options.maxAttempts);
    await this.options.sqs.deadLetterRejected(record, reason, {
      correlationId,
      attempt,
      maxAttempts: this.options.maxAttempts,
      retryDelaySec: () => this.nextDelaySec(attempt, undefined),
      kind: 'Webhook',
      context,
      metrics,
      failureMetric: 'WebhookFailed',
      auditRejected,
    });
  }

  private audit(
    eventType: string,
    outcome: 'success' | 'failure' | 'error',
    correlationId: string,
    message: WebhookMessage,
    metadata: Record<string, unknown>,
  ): void {
    this.options.observability.auditLogger.log({
      eventType,
      outcome,
      tenantId: message.tenantId,
      correlationId,
      metadata: {
        ...deliveryFields(message),
        eventType: message.eventType,
        ...metadata,
      },
    });
  }
}
