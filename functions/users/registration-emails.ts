// After a registration: enqueues the welcome email, the verification email (with a signed, expiring link) and, for a phone, an SMS code.

import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { enqueueEmails, type NewEmailMessage } from '../shared/email-queue.js';
import { reportEnqueueFailure } from '../shared/enqueue-failure.js';
import type { QueueEnvironment } from '../shared/environment.js';
import { type RotatingSecretReader, rotatingSecretReader } from '../shared/rotating-secret.js';
import { createVerificationLink } from '../shared/verification-link.js';
import type { IssuedPhoneCode, User } from './users-model.js';

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
        const { code, expiresAt } = await this.options.issuePhoneCode(user.id);
        messages.push({
          type: 'sms',
          to: user.phone,
          template: 'sms-verification',
          data: {
            code,
            expiresInMinutes: Math.max(1, Math.round((expiresAt.getTime() - Date.now()) / 60_000)),
          },
        });
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
}
