// Embedded SQS (local-aws-sqs) on 127.0.0.1 with each queue's dead-letter queue and redrive policy.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createRequestHandler } from 'local-aws-sqs';
import { refuseUnlessFromAwsClient } from './local-request-guard.js';

export interface LocalQueueDefinition {
  readonly name: string;
  /** Receives after which a message moves to `<name>-dlq`, as SQS redrive does. */
  readonly maxReceiveCount: number;
  readonly visibilityTimeoutSec: number;
}

export interface LocalSqs {
  readonly endpoint: string;
  /** Queue URL by queue name; `<name>-dlq` for each dead-letter queue. */
  readonly queueUrls: Readonly<Record<string, string>>;
  /** Queue ARN by queue name, as the server reports it (an event source's `eventSourceARN`). */
  readonly queueArns: Readonly<Record<string, string>>;
  /** A client for the embedded server (static local credentials). */
  createClient(): SQSClient;
  /** Messages each queue holds (visible, in flight or delayed), by queue name; queues holding none are left out. */
  countMessages(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export function createLocalSqsClient(endpoint: string): SQSClient {
  return new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/** The slice of a local-aws-sqs queue that {@link countVisibilityChangesAsSqsDoes} patches. */
interface EmulatedQueue {
  newRecord: (message: Record<string, unknown>, delay?: number) => unknown;
  changeVisibility(receiptHandle: string, visibilityTimeout: string): boolean;
}

interface EmulatedEntry {
  readonly record: { readonly MessageId: string; readonly attributes: { ApproximateReceiveCount: string } };
}

/**
 * local-aws-sqs counts a ChangeMessageVisibility as one more receive, which SQS does not: a worker
 * that backs off by changing visibility would reach the DLQ after half its attempts. This keeps each
 * queue's entries (newRecord returns them) and takes the extra count back after each change.
 */
function countVisibilityChangesAsSqsDoes(queue: EmulatedQueue): void {
  const entries = new Map<string, EmulatedEntry>();
  const newRecord = queue.newRecord;
  queue.newRecord = (message, delay) => {
    const entry = newRecord(message, delay) as EmulatedEntry;
    // Bounded: a local queue never holds this many messages that still matter.
    if (entries.size >= 10_000) entries.delete(entries.keys().next().value as string);
    entries.set(entry.record.MessageId, entry);
    return entry;
  };
  const changeVisibility = queue.changeVisibility.bind(queue);
  queue.changeVisibility = (receiptHandle, visibilityTimeout) => {
    const changed = changeVisibility(receiptHandle, visibilityTimeout);
    const decoded = Buffer.from(receiptHandle, 'base64').toString('utf8');
    const messageId = (JSON.parse(decoded.slice(decoded.indexOf('{'))) as { MessageId: string }).MessageId;
    const attributes = entries.get(messageId)?.record.attributes;
    if (changed && attributes) {
      attributes.ApproximateReceiveCount = String(Number(attributes.ApproximateReceiveCount) - 1);
    }
    return changed;
  };
}

// local-aws-sqs counts messages in flight in ApproximateNumberOfMessages too (SQS counts only visible
// ones there), so with the delayed ones these two are everything a queue holds.
const messageCountAttributes = ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed'] as const;

/** Starts the server on a free port and creates every queue after its DLQ. */
export async function startLocalSqs(queues: readonly LocalQueueDefinition[], port = 0): Promise<LocalSqs> {
  const { requestHandler, service } = createRequestHandler({
    port,
    hostname: '127.0.0.1',
    // Tests recreate queues freely; AWS's 60 s wait after a delete would only slow them down.
    emulateQueueCreationLifecycle: false,
  });
  const server = createServer((request, response) => {
    if (refuseUnlessFromAwsClient(request, response, { signed: true })) return;
    void requestHandler(request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  // As createSqsServer does: queue URLs carry the port actually bound.
  service.PORT = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${service.PORT}`;
  const client = createLocalSqsClient(endpoint);
  const queueUrls: Record<string, string> = {};
  const queueArns: Record<string, string> = {};
  const arnOf = async (queueUrl: string | undefined): Promise<string> => {
    const { Attributes } = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    return Attributes?.QueueArn as string;
  };
  for (const queue of queues) {
    const dlq = await client.send(new CreateQueueCommand({ QueueName: `${queue.name}-dlq` }));
    const dlqArn = await arnOf(dlq.QueueUrl);
    const main = await client.send(
      new CreateQueueCommand({
        QueueName: queue.name,
        Attributes: {
          VisibilityTimeout: String(queue.visibilityTimeoutSec),
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: dlqArn,
            maxReceiveCount: queue.maxReceiveCount,
          }),
        },
      }),
    );
    queueUrls[`${queue.name}-dlq`] = dlq.QueueUrl as string;
    queueUrls[queue.name] = main.QueueUrl as string;
    queueArns[`${queue.name}-dlq`] = dlqArn;
    queueArns[queue.name] = await arnOf(main.QueueUrl);
  }
  client.destroy();
  for (const queue of service.Queues) countVisibilityChangesAsSqsDoes(queue as unknown as EmulatedQueue);
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    queueUrls,
    queueArns,
    createClient: () => createLocalSqsClient(endpoint),
    countMessages: async () => {
      const counter = createLocalSqsClient(endpoint);
      const counts: Record<string, number> = {};
      try {
        for (const [name, queueUrl] of Object.entries(queueUrls)) {
          const { Attributes = {} } = await counter.send(
            new GetQueueAttributesCommand({
              QueueUrl: queueUrl,
              AttributeNames: [...messageCountAttributes],
            }),
          );
          const count = messageCountAttributes.reduce((sum, name) => sum + Number(Attributes[name] ?? 0), 0);
          if (count > 0) counts[name] = count;
        }
      } finally {
        counter.destroy();
      }
      return counts;
    },
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
