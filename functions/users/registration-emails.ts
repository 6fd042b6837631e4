// After a registration: enqueues the welcome email, the verification email (with a signed, expiring link) and, for a phone, an SMS code.

import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import {
  ConflictError,
  NotFoundError,
  ServiceUnavailableError,
  TooManyRequestsError,
} from '../../middleware/errors.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import { EmailQueueError, enqueueEmails, type NewEmailMessage } from '../shared/email-queue.js';
import { reportEnqueueFailure } from '../shared/enqueue-failure.js';
import type { QueueEnvironment } from '../shared/environment.js';
import { derivedBytes, derivedUuid } from '../shared/key-derived-ids.js';
import { afterCommitFailure, undoDeadline, untilAborted } from '../shared/post-commit.js';
import { type RotatingSecretReader, rotatingSecretReader } from '../shared/rotating-secret.js';
import { createVerificationLink, verificationLinkTtlMs } from '../shared/verification-link.js';
import { type IssuedPhoneCode, phoneCodeResendIntervalSec, type User } from './users-model.js';

/**
 * The SMS carrying a verification code to `userId`'s phone. It carries when the code expires, not the
 * minutes left now: the worker counts those when it sends, and drops the message once the code expired.
 */
function phoneCodeMessage(userId: string, to: string, { code, expiresAt }: IssuedPhoneCode): NewEmailMessage {
  return {
    type: 'sms',
    to,
    userId,
    template: 'sms-verification',
    data: { code, expiresAt: expiresAt.toISOString() },
  };
}

/**
 * The queue message id of a registration's welcome or verification email: the same whichever request
 * queues it. The worker sends one email per id (its idempotency key, kept a day), so a registration's
 * emails queued again (by a retried registration, see {@link RegistrationEmails.enqueue}) while or after
 * its own request queued them go out once.
 */
export function registrationMessageId(userId: string, type: 'welcome' | 'verification'): string {
  return derivedUuid(derivedBytes(['registration-email', type, userId], 16));
}

export interface RegistrationEmailsOptions {
  /** Undefined: no email queue is configured, so nothing is enqueued. */
  readonly sqs: SQSClient | undefined;
  readonly queues: QueueEnvironment;
  readonly logger: Logger;
  readonly auditLogger: AuditLogger;
  /** Counts each email or SMS that could not be enqueued (`EmailEnqueueFailed`). */
  readonly metrics: Metrics;
  /**
   * Reads the link secret; pass the function's own so the verify route and this share one reader.
   * @default a reader over `queues.verificationLinkSecret`, without audit events
   */
  readonly readLinkSecret?: RotatingSecretReader;
  /**
   * Issues (and stores the hash of) an SMS verification code for a user with a phone number
   * (UsersModel.issuePhoneCode), once the user's own limits pass; `signal`, when given, aborts its
   * requests (the registration's deadline).
   * @default none: no SMS is sent
   */
  readonly issuePhoneCode?: (userId: string, signal: AbortSignal | undefined) => Promise<IssuedPhoneCode>;
  /**
   * Spends a unit of each SMS budget for one SMS to a phone number, whoever the number belongs to
   * (SmsBudgets: the number's own, its region's, the deployment's): without them, each new registration
   * would send another SMS, to one phone again and again (bombing it) or to number after number (SMS
   * pumping). Asked once a code is issued, so only the one request of a user that gets the code spends
   * units; a refusal withdraws the code. `purpose` says whether a spent budget refuses the request
   * (`phone-code`, a 429) or only its SMS (`registration`). What it throws, the code's issue throws.
   * @default none: SMS have no budget
   */
  readonly admitSms?: (phoneNumber: string, purpose: SmsPurpose) => Promise<SmsAdmission>;
  /**
   * Records a user's registration emails queued (UsersModel.markRegistrationMessagesQueued), so that a
   * retried registration does not queue them again; `signal` aborts it.
   * @default none: nothing is recorded
   */
  readonly markQueued?: (userId: string, signal: AbortSignal | undefined) => Promise<void>;
}

/**
 * Verification emails each user may ask for again (`POST /users/{id}/verification-email`): a burst of
 * three, then one every 20 minutes, so the route cannot be used to flood someone's inbox.
 */
export const verificationEmailPerUserPolicy = {
  name: 'verification-email',
  limit: 3,
  windowSec: 60 * 60,
} as const;

/** Which SMS budget refused an SMS: its number's own, its number's region's, or the whole deployment's. */
export type SmsBudgetName = 'number' | 'region' | 'deployment';

/** The SMS budgets' answer to one SMS: admitted, with a way to give its units back, or refused by one budget. */
export type SmsAdmission =
  | {
      readonly allowed: true;
      /**
       * Gives the units back when no SMS was queued after all (no code issued, or the queue failed).
       * Should not throw; a failure leaves them spent.
       */
      readonly refund: () => Promise<void>;
    }
  | { readonly allowed: false; readonly retryAfterSec: number; readonly refusedBy: SmsBudgetName };

/** Why no code was sent: each budget's words, for the 429 of a requested code and the registration's log line. */
const budgetSpentMessages: Readonly<Record<SmsBudgetName, string>> = {
  number: 'Too many codes were sent to this phone number; try again later',
  region: "Too many codes were sent to this phone number's region this hour; try again later",
  deployment: 'Too many codes were sent this hour; try again later',
};

/** A 429 for an SMS one of its budgets refused, naming the budget. */
export class SmsBudgetSpentError extends TooManyRequestsError {
  readonly budget: SmsBudgetName;

  constructor(budget: SmsBudgetName, retryAfterSec: number) {
    super(retryAfterSec, budgetSpentMessages[budget]);
    this.name = 'SmsBudgetSpentError';
    this.budget = budget;
  }
}

/** Why an SMS is sent: with a new registration (no SMS past the budget), or on request (429 past it). */
export type SmsPurpose = 'registration' | 'phone-code';

/** An issued code and the budget unit it took, so that both can be undone. */
interface IssuedSms {
  readonly code: IssuedPhoneCode;
  readonly admission: SmsAdmission | undefined;
}

/** Whether an enqueue failure left the SMS of the batch out of the queue: all of it, or the SMS refused. */
function smsNotQueued(error: unknown): boolean {
  return !(error instanceof EmailQueueError) || error.refusedTypes.includes('sms');
}

/**
 * Enqueues the registration emails. Called after the user is stored; a queue failure is counted
 * (`EmailEnqueueFailed`), logged and audited (`email.enqueue_failed`, with the user id) but never fails the registration: the user exists
 * either way, and answering 5xx would make the client retry a registration that already succeeded.
 * So is the registration's deadline passing (`afterCommitDeadline`): the work stops there, unfinished.
 */
export class RegistrationEmails {
  readonly #readLinkSecret: RotatingSecretReader | undefined;

  constructor(private readonly options: RegistrationEmailsOptions) {
    const { queues } = options;
    if (queues.emailQueueUrl && !queues.verificationLinkSecret) {
      throw new Error(
        'Invalid function environment: VERIFICATION_LINK_SECRET (required with EMAIL_QUEUE_URL)',
      );
    }
    this.#readLinkSecret =
      options.readLinkSecret ??
      (queues.verificationLinkSecret ? rotatingSecretReader(queues.verificationLinkSecret) : undefined);
  }

  /**
   * Resolves with whether every message was queued, and records that (`markQueued`). Called again for a
   * registration whose emails were never queued (its request failed once its user was stored), the same
   * welcome and verification message ids keep a copy queued meanwhile from going out twice.
   * `signal`: the registration's deadline, past which nothing more is asked of DynamoDB, SQS or Secrets Manager.
   */
  async enqueue(user: User, correlationId: string | undefined, signal?: AbortSignal): Promise<boolean> {
    const { sqs, queues, logger, auditLogger, metrics } = this.options;
    if (!sqs || !queues.emailQueueUrl || !this.#readLinkSecret) return false;
    let sms: IssuedSms | undefined;
    try {
      const messages: NewEmailMessage[] = [
        {
          id: registrationMessageId(user.id, 'welcome'),
          type: 'welcome',
          to: user.email,
          userId: user.id,
          data: { name: user.name },
        },
        {
          ...(await this.#verificationEmail(user, this.#readLinkSecret, signal)).message,
          id: registrationMessageId(user.id, 'verification'),
        },
      ];
      sms = await this.#registrationSms(user, correlationId, signal);
      if (sms && user.phone !== undefined) messages.push(phoneCodeMessage(user.id, user.phone, sms.code));
      await enqueueEmails(sqs, queues.emailQueueUrl, messages, correlationId, signal);
    } catch (error) {
      reportEnqueueFailure(
        { logger, auditLogger, metrics },
        {
          metric: 'EmailEnqueueFailed',
          message: 'Registration emails were not enqueued; the user is registered',
          eventType: 'email.enqueue_failed',
          error: afterCommitFailure(error, signal),
          userId: user.id,
          correlationId,
        },
      );
      if (sms && smsNotQueued(error)) {
        await this.#withdraw(user.id, sms, correlationId, signal);
      }
      return false;
    }
    try {
      await this.options.markQueued?.(user.id, signal);
    } catch (error) {
      logger.warn(
        'Registration emails were queued but not recorded so; a retried registration queues them again',
        {
          userId: user.id,
          correlationId,
          error: afterCommitFailure(error, signal),
        },
      );
    }
    return true;
  }

  /**
   * The verification email, with a link signed now that expires in 24 hours, or when the registration
   * lapses if that comes first: a link never outlives the window it is for, so a resent link cannot
   * stretch it. The email also says when the registration lapses (`registrationLapsesAt`), so the reader
   * knows that the registration, not only the link, runs out.
   */
  async #verificationEmail(
    user: User,
    readLinkSecret: RotatingSecretReader,
    signal?: AbortSignal,
  ): Promise<{ message: NewEmailMessage; expiresAt: Date }> {
    const now = Date.now();
    const link = createVerificationLink({
      baseUrl: this.options.queues.appBaseUrl,
      userId: user.id,
      secret: (await untilAborted(signal, () => readLinkSecret(false))).current,
      now,
      ttlMs:
        user.expiresAt === undefined
          ? verificationLinkTtlMs
          : Math.min(verificationLinkTtlMs, Date.parse(user.expiresAt) - now),
    });
    return {
      message: {
        type: 'verification',
        to: user.email,
        userId: user.id,
        data: {
          name: user.name,
          verificationUrl: link.url,
          expiresAt: link.expiresAt.toISOString(),
          ...(user.expiresAt === undefined ? {} : { registrationLapsesAt: user.expiresAt }),
        },
      },
      expiresAt: link.expiresAt,
    };
  }

  /**
   * Sends a user's verification email again, with a fresh link (`POST /users/{id}/verification-email`),
   * for a link that expired or never arrived, and resolves with the link's expiry; 503 when no email could
   * be queued. The route refuses a verified user before this (409).
   */
  async sendVerificationEmail(user: User, correlationId: string | undefined): Promise<Date> {
    const { sqs, queues, metrics } = this.options;
    if (!sqs || !queues.emailQueueUrl || !this.#readLinkSecret) {
      throw new ServiceUnavailableError('Emails are not configured for this deployment');
    }
    const { message, expiresAt } = await this.#verificationEmail(user, this.#readLinkSecret);
    try {
      await enqueueEmails(sqs, queues.emailQueueUrl, [message], correlationId);
    } catch (error) {
      recordMetric(metrics, 'EmailEnqueueFailed');
      throw new ServiceUnavailableError('The email could not be queued; try again shortly', 60, {
        cause: error,
      });
    }
    return expiresAt;
  }

  /**
   * The code for a new registration's SMS, or undefined: no phone, no SMS configured, the number's SMS
   * budget is spent (logged), the user was deleted meanwhile (logged), or the code could not be issued
   * (logged and audited as `sms.enqueue_failed`).
   * The emails go out either way, and the user can ask for a code later with `POST /users/{id}/phone-code`;
   * only the deadline passing is thrown, since the emails then cannot go out either.
   */
  async #registrationSms(
    user: User,
    correlationId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<IssuedSms | undefined> {
    const { issuePhoneCode, logger, auditLogger, metrics } = this.options;
    if (user.phone === undefined || !issuePhoneCode) return undefined;
    try {
      return await this.#issue(issuePhoneCode, user.id, user.phone, 'registration', correlationId, signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      if (error instanceof SmsBudgetSpentError) {
        logger.warn(`No SMS code at registration: its ${error.budget} SMS budget is spent`, {
          userId: user.id,
          correlationId,
          budget: error.budget,
          retryAfterSec: error.retryAfterSec,
        });
      } else if (error instanceof NotFoundError) {
        // An admin deleted the user a moment after the registration: nothing failed, so no enqueue alarm.
        logger.info('No SMS code at registration: the user was deleted meanwhile', {
          userId: user.id,
          correlationId,
        });
      } else if (error instanceof TooManyRequestsError) {
        // Only a code issued before refuses another: these messages are being queued a second time (a
        // retried registration met them while the first was queueing them), so the user has that code.
        logger.info('No SMS code at registration: one was issued for it already', {
          userId: user.id,
          correlationId,
          retryAfterSec: error.retryAfterSec,
        });
      } else {
        reportEnqueueFailure(
          { logger, auditLogger, metrics },
          {
            metric: 'EmailEnqueueFailed',
            message: 'No SMS code at registration: it could not be issued; the emails are still enqueued',
            eventType: 'sms.enqueue_failed',
            error,
            userId: user.id,
            correlationId,
          },
        );
      }
      return undefined;
    }
  }

  /**
   * Issues a code (UsersModel.issuePhoneCode), then asks the SMS budgets for it: 429 when one is spent,
   * and the code is withdrawn, so the user's code item is as before. In that order because the issue is
   * what decides which of a user's concurrent requests gets the code: asked first, the budgets would
   * lend a unit to each of them until their writes lost, and those units, held meanwhile, could refuse
   * other users' SMS while the budget still had room. `signal` (a registration's deadline) bounds the
   * code and the budgets alike.
   */
  async #issue(
    issuePhoneCode: NonNullable<RegistrationEmailsOptions['issuePhoneCode']>,
    userId: string,
    phoneNumber: string,
    purpose: SmsPurpose,
    correlationId: string | undefined,
    signal?: AbortSignal,
  ): Promise<IssuedSms> {
    const code = await issuePhoneCode(userId, signal);
    const { admitSms } = this.options;
    if (!admitSms) return { code, admission: undefined };
    let refusal: unknown;
    try {
      const admission = await untilAborted(signal, () => admitSms(phoneNumber, purpose));
      if (admission.allowed) return { code, admission };
      refusal = new SmsBudgetSpentError(admission.refusedBy, admission.retryAfterSec);
    } catch (error) {
      refusal = error;
    }
    await this.#withdraw(userId, { code, admission: undefined }, correlationId, signal);
    throw refusal;
  }

  /**
   * Undoes an issued code whose SMS is not to go out or was not queued, so that it counts against
   * neither the user's limits nor the SMS budgets. The work's deadline (`signal`) passing may be why,
   * so the undo runs under its own (`undoDeadline`). A failure, that deadline passing included, is
   * logged; the code then counts as if it had been sent.
   */
  async #withdraw(
    userId: string,
    issued: IssuedSms,
    correlationId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const undoSignal = undoDeadline(signal);
    // Side by side: the code and the budget are separate items, and the undo has little time.
    await Promise.all([
      issued.code.withdraw(undoSignal).catch((error: unknown) => {
        this.options.logger.warn('An SMS code that was not sent could not be withdrawn; it still counts', {
          userId,
          correlationId,
          error,
        });
      }),
      this.#refundBudgets(userId, issued.admission, correlationId, undoSignal),
    ]);
  }

  /**
   * Gives the SMS budgets back the units of an SMS that was not queued, if units were taken; a failure,
   * `undoSignal` (an `undoDeadline`) passing included, is logged.
   */
  async #refundBudgets(
    userId: string,
    admission: SmsAdmission | undefined,
    correlationId: string | undefined,
    undoSignal: AbortSignal | undefined,
  ): Promise<void> {
    if (!admission?.allowed) return;
    try {
      await untilAborted(undoSignal, () => admission.refund());
    } catch (error) {
      this.options.logger.warn('The SMS budgets were not refunded for an SMS not sent', {
        userId,
        correlationId,
        error,
      });
    }
  }

  /**
   * Sends a user a new SMS code (`POST /users/{id}/phone-code`) and resolves with its expiry. Unlike the
   * registration messages, a failure to queue the SMS is the request's failure: 503 with Retry-After.
   * Once the code is issued, `signal` (the request's deadline) bounds the rest: past it, the answer is
   * that 503, not the invocation's timeout. The code is then withdrawn and the number's budget unit given
   * back, under the undo's own deadline (`undoDeadline`), so that the retry is neither refused as too soon
   * nor charged for an SMS the user did not get. Not guaranteed: an undo that fails or runs out of time
   * is logged and the code counts as sent (the Retry-After, the resend interval, covers that); and a send
   * the deadline cut short may have reached SQS all the same, so its SMS can arrive with a code already
   * withdrawn, which the user replaces by asking again.
   */
  async sendPhoneCode(user: User, correlationId: string | undefined, signal?: AbortSignal): Promise<Date> {
    const { sqs, queues, issuePhoneCode } = this.options;
    if (!sqs || !queues.emailQueueUrl || !issuePhoneCode) {
      throw new ServiceUnavailableError('SMS codes are not configured for this deployment');
    }
    if (user.phone === undefined) throw new ConflictError('The user has no phone number');
    // Before the number's budget is spent: a verified user gets no code anyway.
    if (user.phoneVerifiedAt !== undefined) throw new ConflictError('The phone number is already verified');
    const issued = await this.#issue(issuePhoneCode, user.id, user.phone, 'phone-code', correlationId);
    try {
      await enqueueEmails(
        sqs,
        queues.emailQueueUrl,
        [phoneCodeMessage(user.id, user.phone, issued.code)],
        correlationId,
        signal,
      );
    } catch (error) {
      recordMetric(this.options.metrics, 'EmailEnqueueFailed');
      await this.#withdraw(user.id, issued, correlationId, signal);
      // At most the resend interval: a code that could not be withdrawn still holds the next one back so long.
      throw new ServiceUnavailableError(
        'The SMS could not be queued; try again shortly',
        phoneCodeResendIntervalSec,
        { cause: error },
      );
    }
    return issued.code.expiresAt;
  }
}
