// After a registration: enqueues the welcome email, the verification email (with a signed, expiring link) and, for a phone, an SMS code.

import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { ConflictError, ServiceUnavailableError, TooManyRequestsError } from '../../middleware/errors.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import { enqueueEmails, type NewEmailMessage } from '../shared/email-queue.js';
import { reportEnqueueFailure } from '../shared/enqueue-failure.js';
import type { QueueEnvironment } from '../shared/environment.js';
import { type RotatingSecretReader, rotatingSecretReader } from '../shared/rotating-secret.js';
import { createVerificationLink } from '../shared/verification-link.js';
import { type IssuedPhoneCode, phoneCodeResendIntervalSec, type User } from './users-model.js';

/** The SMS carrying a verification code. */
function phoneCodeMessage(to: string, { code, expiresAt }: IssuedPhoneCode): NewEmailMessage {
  return {
    type: 'sms',
    to,
    template: 'sms-verification',
    data: { code, expiresInMinutes: Math.max(1, Math.round((expiresAt.getTime() - Date.now()) / 60_000)) },
  };
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
   * Issues (and stores the hash of) an SMS verification code for a user with a phone number, calling
   * `beforeIssuing` once the user's own limits pass (UsersModel.issuePhoneCode).
   * @default none: no SMS is sent
   */
  readonly issuePhoneCode?: (userId: string, beforeIssuing: () => Promise<void>) => Promise<IssuedPhoneCode>;
  /**
   * Spends one unit of a phone number's SMS budget, whoever the number belongs to: without it, each new
   * registration of a number would send it another SMS (SMS pumping, bombing one phone).
   * @default none: numbers have no budget of their own
   */
  readonly admitSms?: (phoneNumber: string) => Promise<{ allowed: boolean; retryAfterSec: number }>;
}

/**
 * Enqueues the registration emails. Called after the user is stored; a queue failure is counted
 * (`EmailEnqueueFailed`), logged and audited (`email.enqueue_failed`, with the user id) but never fails the registration: the user exists
 * either way, and answering 5xx would make the client retry a registration that already succeeded.
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

  async enqueue(user: User, correlationId: string | undefined): Promise<void> {
    const { sqs, queues, logger, auditLogger, metrics } = this.options;
    if (!sqs || !queues.emailQueueUrl || !this.#readLinkSecret) return;
    try {
      const link = createVerificationLink({
        baseUrl: queues.appBaseUrl,
        userId: user.id,
        secret: (await this.#readLinkSecret(false)).current,
      });
      const messages: NewEmailMessage[] = [
        { type: 'welcome', to: user.email, data: { name: user.name } },
        {
          type: 'verification',
          to: user.email,
          data: { name: user.name, verificationUrl: link.url, expiresAt: link.expiresAt.toISOString() },
        },
      ];
      const sms = await this.#registrationSms(user, correlationId);
      if (sms) messages.push(sms);
      await enqueueEmails(sqs, queues.emailQueueUrl, messages, correlationId);
    } catch (error) {
      reportEnqueueFailure(
        { logger, auditLogger, metrics },
        {
          metric: 'EmailEnqueueFailed',
          message: 'Registration emails were not enqueued; the user is registered',
          eventType: 'email.enqueue_failed',
          error,
          userId: user.id,
          correlationId,
        },
      );
    }
  }

  /**
   * The SMS of a new registration, or undefined: no phone, no SMS configured, the number's SMS budget
   * is spent (logged), or the code could not be issued (logged and audited as `sms.enqueue_failed`).
   * Never throws: the emails go out either way, and the user can ask for a code later with
   * `POST /users/{id}/phone-code`.
   */
  async #registrationSms(
    user: User,
    correlationId: string | undefined,
  ): Promise<NewEmailMessage | undefined> {
    const { issuePhoneCode, logger, auditLogger, metrics } = this.options;
    if (user.phone === undefined || !issuePhoneCode) return undefined;
    try {
      return phoneCodeMessage(user.phone, await issuePhoneCode(user.id, this.#admitNumber(user.phone)));
    } catch (error) {
      if (error instanceof TooManyRequestsError) {
        logger.warn('No SMS code at registration: the phone number has had its SMS for now', {
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

  /** Throws 429 when the number's SMS budget is spent; the caller then issues no code. */
  #admitNumber(phoneNumber: string): () => Promise<void> {
    return async () => {
      const admitted = await this.options.admitSms?.(phoneNumber);
      if (admitted && !admitted.allowed) {
        throw new TooManyRequestsError(
          admitted.retryAfterSec,
          'Too many codes were sent to this phone number; try again later',
        );
      }
    };
  }

  /**
   * Sends a user a new SMS code (`POST /users/{id}/phone-code`) and resolves with its expiry. Unlike the
   * registration messages, a failure here is the request's failure: 503, and no SMS was queued.
   */
  async sendPhoneCode(user: User, correlationId: string | undefined): Promise<Date> {
    const { sqs, queues, issuePhoneCode } = this.options;
    if (!sqs || !queues.emailQueueUrl || !issuePhoneCode) {
      throw new ServiceUnavailableError('SMS codes are not configured for this deployment');
    }
    if (user.phone === undefined) throw new ConflictError('The user has no phone number');
    // Before the number's budget is spent: a verified user gets no code anyway.
    if (user.phoneVerifiedAt !== undefined) throw new ConflictError('The phone number is already verified');
    const issued = await issuePhoneCode(user.id, this.#admitNumber(user.phone));
    try {
      await enqueueEmails(sqs, queues.emailQueueUrl, [phoneCodeMessage(user.phone, issued)], correlationId);
    } catch (error) {
      recordMetric(this.options.metrics, 'EmailEnqueueFailed');
      // The code was stored without an SMS: the next request may replace it once the resend interval passes.
      throw new ServiceUnavailableError(
        'The SMS could not be queued; try again shortly',
        phoneCodeResendIntervalSec,
        {
          cause: error,
        },
      );
    }
    return issued.expiresAt;
  }
}
