// The email queue's producer side: typed messages (emails and SMS) sent in one batch, carrying the caller's correlation id.
import { randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { QueueMessage } from '../email-worker/messages.js';
import { sendMessageBatch } from './sqs-client.js';

/** A message to enqueue; `id` (the worker's idempotency key) is generated when absent. */
export type NewEmailMessage = QueueMessage extends infer M
  ? M extends QueueMessage
    ? Omit<M, 'id'> & { readonly id?: string }
    : never
  : never;

export class EmailQueueError extends Error {
  /** The types of the messages SQS refused; the batch's others were enqueued. */
  readonly refusedTypes: readonly string[];

  constructor(refusedTypes: readonly string[], options?: ErrorOptions) {
    super(`SQS did not accept: ${refusedTypes.join(', ')}`, options);
    this.name = 'EmailQueueError';
    this.refusedTypes = refusedTypes;
  }
}

/**
 * Enqueues up to 10 emails in one SendMessageBatch. Rejects with {@link EmailQueueError} naming the
 * message types SQS did not accept (a batch can partly fail), so the caller can decide what to do.
 * `signal` aborts the send (a handler's deadline after its commit).
 *
 * @example
 * await enqueueEmails(sqs, queueUrl, [{ type: 'welcome', to, data: { name } }], correlationId);
 */
export async function enqueueEmails(
  sqs: SQSClient,
  queueUrl: string,
  messages: readonly NewEmailMessage[],
  correlationId?: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const withIds = messages.map((message) => ({ ...message, id: message.id ?? randomUUID() }));
  const refused = await sendMessageBatch(sqs, queueUrl, withIds, correlationId, signal);
  const failed = refused.map((index) => withIds[index]?.type ?? 'unknown');
  if (failed.length > 0) throw new EmailQueueError(failed);
  return withIds.map((message) => message.id);
}
