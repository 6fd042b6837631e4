// Tells a webhook endpoint's owner that it was disabled: a security-alert email to a human owner, a log line otherwise.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { NotFoundError } from '../../middleware/errors.js';
import { enqueueEmails } from '../shared/email-queue.js';
import { reportEnqueueFailure } from '../shared/enqueue-failure.js';
import { derivedBytes, derivedUuid } from '../shared/key-derived-ids.js';
import type { DisabledReason, WebhookEndpoint } from '../shared/webhook-store.js';
import type { User } from '../users/users-model.js';

/** Reads a user (the users model); only `get` is needed. */
export interface UserDirectory {
  get(id: string): Promise<User>;
}

export interface OwnerAlertsOptions {
  /** Undefined: no email queue configured, so owners are only logged about. */
  readonly sqs: SQSClient | undefined;
  readonly emailQueueUrl: string | undefined;
  readonly users: UserDirectory;
  readonly logger: Logger;
  readonly auditLogger: AuditLogger;
  /** Counts each alert that could not be enqueued (`EmailEnqueueFailed`). */
  readonly metrics: Metrics;
}

const reasonText: Readonly<Record<DisabledReason, string>> = {
  gone: 'it answered 410 Gone, which asks senders to stop',
  failing: 'its deliveries kept failing',
};

/**
 * The endpoint as an alert names it: its origin, and `/…` for any path. A receiver may keep its token in
 * the path (`https://discord.com/api/webhooks/<id>/<token>`), the query or the fragment, and the alert
 * stays in the email queue, and its dead-letter queue, for days; the owner knows the endpoint by its id
 * and host.
 */
function quotedEndpoint(url: string): string {
  if (!URL.canParse(url)) return 'its URL';
  const { origin, pathname } = new URL(url);
  return pathname === '/' ? origin : `${origin}/…`;
}

/**
 * The id of the alert of the endpoint's disable at `disabledAt`: one per disable, so that a copy queued
 * again (by a message for the endpoint after the disabling invocation was cut off, see
 * `ownerAlertPending`) is one the email worker has already sent, and sends no second email.
 */
export function ownerAlertMessageId(endpointId: string, disabledAt: Date): string {
  return derivedUuid(derivedBytes(['webhook-endpoint-disabled', endpointId, disabledAt.toISOString()], 16));
}

/**
 * Notifies the owner of a disabled endpoint. A human owner (`user`, `admin`) whose id is a user of
 * the users service gets a `security-alert` email; an integration (M2M client) has no mailbox, and an
 * owner unknown to the users service has no address, so both are logged and skipped. Never throws:
 * the endpoint is disabled either way, and the alert is best effort (audited when it fails).
 */
export class OwnerAlerts {
  constructor(private readonly options: OwnerAlertsOptions) {}

  /**
   * Resolves true when the owner's alert is done with: queued, or none is needed (no mailbox, no
   * registered user, no email queue). False when it could not be queued (the user's read or the enqueue
   * failed, reported here): the caller keeps it pending, to queue again.
   */
  async endpointDisabled(
    endpoint: WebhookEndpoint,
    reason: DisabledReason,
    correlationId: string,
    disabledAt: Date,
  ): Promise<boolean> {
    const { sqs, emailQueueUrl, users, logger } = this.options;
    const context = { correlation_id: correlationId, endpointId: endpoint.id, ownerKind: endpoint.ownerKind };
    if (endpoint.ownerKind === 'integration' || !sqs || !emailQueueUrl) {
      logger.info('Webhook endpoint disabled; its owner has no email to alert', context);
      return true;
    }
    try {
      let owner: User;
      try {
        owner = await users.get(endpoint.ownerId);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        logger.info('Webhook endpoint disabled; its owner is not a registered user, so no email', context);
        return true;
      }
      await enqueueEmails(
        sqs,
        emailQueueUrl,
        [
          {
            id: ownerAlertMessageId(endpoint.id, disabledAt),
            type: 'security-alert',
            to: owner.email,
            userId: owner.id,
            data: {
              name: owner.name,
              event: 'Webhook endpoint disabled',
              occurredAt: disabledAt.toISOString(),
              details: `Your webhook endpoint ${endpoint.id} (${quotedEndpoint(endpoint.url)}) was disabled because ${reasonText[reason]}. No further events are sent to it; register it again once it works.`,
            },
          },
        ],
        correlationId,
      );
      return true;
    } catch (error) {
      reportEnqueueFailure(this.options, {
        metric: 'EmailEnqueueFailed',
        message: 'Webhook endpoint disabled; the owner alert was not enqueued',
        eventType: 'email.enqueue_failed',
        error,
        userId: endpoint.ownerId,
        correlationId,
        metadata: { endpointId: endpoint.id },
      });
      return false;
    }
  }
}
