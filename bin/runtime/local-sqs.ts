// Embedded SQS (local-aws-sqs) on 127.0.0.1 with each queue's dead-letter queue and redrive policy.

import type { AddressInfo } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createSqsServer } from 'local-aws-sqs';

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
  /** A client for the embedded server (static local credentials). */
  createClient(): SQSClient;
  stop(): Promise<void>;
}

export function createLocalSqsClient(endpoint: string): SQSClient {
  return new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/** Starts the server on a free port and creates every queue after its DLQ. */
export async function startLocalSqs(queues: readonly LocalQueueDefinition[], port = 0): Promise<LocalSqs> {
  const server = await createSqsServer({
    port,
    hostname: '127.0.0.1',
    // Tests recreate queues freely; AWS's 60 s wait after a delete would only slow them down.
    emulateQueueCreationLifecycle: false,
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createLocalSqsClient(endpoint);
  const queueUrls: Record<string, string> = {};
  for (const queue of queues) {
    const dlq = await client.send(new CreateQueueCommand({ QueueName: `${queue.name}-dlq` }));
    const dlqAttributes = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
    );
    const main = await client.send(
      new CreateQueueCommand({
        QueueName: queue.name,
        Attributes: {
          VisibilityTimeout: String(queue.visibilityTimeoutSec),
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: dlqAttributes.Attributes?.QueueArn,
            maxReceiveCount: queue.maxReceiveCount,
          }),
        },
      }),
    );
    queueUrls[`${queue.name}-dlq`] = dlq.QueueUrl as string;
    queueUrls[queue.name] = main.QueueUrl as string;
  }
  client.destroy();
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    queueUrls,
    createClient: () => createLocalSqsClient(endpoint),
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
