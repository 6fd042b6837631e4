// After a registration: enqueues the welcome email, the verification email (with a signed, expiring link) and, for a phone, an SMS code.

import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { ConflictError, ServiceUnavailableError } from '../../middleware/errors.js';
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
  /**
   * Reads the link secret; pass the function's own so the verify route and this share one reader.
   * @default a reader over `queues.verificationLinkSecret`, without audit events
   */
  readonly readLinkSecret?: RotatingSecretReader;
  /**
   * Issues (and stores the hash of) an SMS verification code for a user with a phone number.
   * @default none: no SMS is sent
   */
  readonly issuePhoneCode?: (userId: string) => Promise<IssuedPhoneCode>;
}

/**
 * Enqueues the registration emails. Called after the user is stored; a queue failure is logged and
 * audited (`email.enqueue_failed`, with the user id) but never fails the registration: the user exists
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
    const { sqs, queues, logger, auditLogger } = this.options;
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
      if (user.phone !== undefined && this.options.issuePhoneCode) {
        messages.push(phoneCodeMessage(user.phone, await this.options.issuePhoneCode(user.id)));
      }
      await enqueueEmails(sqs, queues.emailQueueUrl, messages, correlationId);
    } catch (error) {
      reportEnqueueFailure(
        { logger, auditLogger },
        {
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
   * Sends a user a new SMS code (`POST /users/{id}/phone-code`) and resolves with its expiry. Unlike the
   * registration messages, a failure here is the request's failure: 503, and no SMS was queued.
   */
  async sendPhoneCode(user: User, correlationId: string | undefined): Promise<Date> {
    const { sqs, queues, issuePhoneCode } = this.options;
    if (!sqs || !queues.emailQueueUrl || !issuePhoneCode) {
      throw new ServiceUnavailableError('SMS codes are not configured for this deployment');
    }
    if (user.phone === undefined) throw new ConflictError('The user has no phone number');
    const issued = await issuePhoneCode(user.id);
    try {
      await enqueueEmails(sqs, queues.emailQueueUrl, [phoneCodeMessage(user.phone, issued)], correlationId);
    } catch (error) {
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
