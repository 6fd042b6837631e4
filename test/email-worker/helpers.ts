// Helpers of the email worker tests: waiting on the SMTP sink and reading the queues of a local runtime.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SESv2Client } from '@aws-sdk/client-sesv2';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import type { LocalRuntime } from '../../bin/runtime/local-runtime.js';
import { createLocalSqsClient } from '../../bin/runtime/local-sqs.js';
import type { SmtpSinkMessage } from '../../bin/runtime/smtp-sink.js';
import {
  type EmailWorkerOptions,
  providerCircuitBreaker,
  providerTimeoutMs,
} from '../../functions/email-worker/email-worker.js';
import { userItemState } from '../../functions/shared/user-item.js';
import { workers } from '../../functions/workers.js';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import type { CircuitBreakerSettings } from '../../middleware/circuit-breaker/options.js';
import { createDocumentClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import type { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { testTableNames } from '../helpers/tables.js';

/** One email as a transport is handed it: the transports' tests send it. */
export const testEmail = {
  from: 'noreply@bulwark.local',
  to: 'ada@example.com',
  subject: 'Hello',
  html: '<p>Hi Ada</p>',
  text: 'Hi Ada',
  messageId: '7a0f4c1e-5a4e-4c7f-9d0b-2a1f0e3c4d5b',
};

export async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for `count` messages to `to` in the sink. */
export function emailsTo(runtime: LocalRuntime, to: string, count: number): Promise<SmtpSinkMessage[]> {
  return until(() => {
    const found = runtime.smtp.messages.filter((message) => message.to.includes(to));
    return found.length >= count ? found : undefined;
  });
}

/** A raw .eml with quoted-printable soft line breaks undone, so long links can be matched whole. */
export function decodedEml(raw: string): string {
  return raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
}

export async function sendRaw(runtime: LocalRuntime, body: string, queue = 'bulwark-email'): Promise<void> {
  const client = createLocalSqsClient(runtime.sqs.endpoint);
  await client.send(new SendMessageCommand({ QueueUrl: runtime.sqs.queueUrls[queue], MessageBody: body }));
  client.destroy();
}

/** Receives (and so hides for the queue's visibility timeout) whatever is visible in a queue. */
export async function receiveAll(runtime: LocalRuntime, queue: string) {
  const client = createLocalSqsClient(runtime.sqs.endpoint);
  const { Messages } = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: runtime.sqs.queueUrls[queue],
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
      MessageAttributeNames: ['All'],
      AttributeNames: ['All'],
    }),
  );
  client.destroy();
  return Messages ?? [];
}

/**
 * Waits until a queue holds no message, visible or in flight: every message was processed and deleted. On
 * timeout the error says what was left (visible, in flight, delayed: a delayed one is a retry).
 */
export async function drained(
  runtime: LocalRuntime,
  queue = 'bulwark-email',
  timeoutMs?: number,
): Promise<void> {
  const client = createLocalSqsClient(runtime.sqs.endpoint);
  let left = 'nothing read yet';
  try {
    await until(async () => {
      const { Attributes } = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: runtime.sqs.queueUrls[queue],
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      );
      const counts = [
        Number(Attributes?.ApproximateNumberOfMessages ?? 1),
        Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 1),
        Number(Attributes?.ApproximateNumberOfMessagesDelayed ?? 1),
      ];
      left = `${counts[0]} visible, ${counts[1]} in flight, ${counts[2]} delayed`;
      return counts.every((count) => count === 0) ? true : undefined;
    }, timeoutMs);
  } catch (error) {
    throw new Error(`${queue} did not drain: ${left}`, { cause: error });
  } finally {
    client.destroy();
  }
}

/**
 * The EmailWorker settings its unit tests share: the real client and queue URLs of a local-aws-sqs
 * server with the email queue and its DLQ, 3 attempts from 30 s, the real idempotency store on the
 * test toolkit table, and users read from the test app table as handler.ts reads them. The jitter's
 * random draw is its highest, so a failed attempt waits the whole exponential delay (30 s, then 60 s).
 */
export function emailWorkerQueueOptions(
  dynamoDb: DynamoDBClient,
  queues: LocalWorkerQueues,
): Pick<
  EmailWorkerOptions,
  | 'sqs'
  | 'queueUrl'
  | 'dlqUrl'
  | 'from'
  | 'maxAttempts'
  | 'retryBaseDelaySec'
  | 'random'
  | 'persistenceStore'
  | 'userState'
> {
  const documentClient = createDocumentClient(dynamoDb);
  return {
    sqs: queues.client,
    queueUrl: queues.queueUrl,
    dlqUrl: queues.dlqUrl,
    from: 'noreply@bulwark.local',
    maxAttempts: workers['email-worker'].maxReceiveCount,
    retryBaseDelaySec: 30,
    random: () => 1,
    persistenceStore: new ToolkitIdempotencyStore({
      name: 'email-worker',
      tableName: testTableNames.toolkit,
      client: dynamoDb,
    }),
    userState: (userId) => userItemState(documentClient, testTableNames.app, userId),
  };
}

/** The provider breakers' timeout as handler.ts sets it: one that fits the worker's invocation. */
export const testProviderTimeoutMs = providerTimeoutMs(workers['email-worker'].timeoutSec);

/** A provider breaker as handler.ts builds it, on the toolkit table under a name of its own. */
export function testProviderBreaker(
  dynamoDb: DynamoDBClient,
  prefix: string,
  settings: Omit<CircuitBreakerSettings<string>, 'name'> = {},
): CircuitBreaker<string> {
  return providerCircuitBreaker({
    name: `${prefix}-${randomUUID()}`,
    tableName: testTableNames.toolkit,
    client: dynamoDb,
    retryBaseDelaySec: 30,
    timeoutMs: testProviderTimeoutMs,
    ...settings,
  });
}

/**
 * The email worker's invocation context in these tests. Not a whole number of seconds, as Lambda's never is:
 * an in-progress record expires with the invocation, so the seconds until then are rounded up (30), never
 * down (a retry at 29 s would find it still there).
 */
export const emailWorkerContext = {
  functionName: 'bulwark-email-worker',
  awsRequestId: 'req-1',
  getRemainingTimeInMillis: () => 29_500,
} as unknown as Context;

/**
 * A local SES v2 endpoint answering SendEmail as SES does: `up` accepts it, `down` answers a 500
 * `InternalFailure` (an outage), `throttling` a 429 `TooManyRequestsException` "Maximum sending rate
 * exceeded." (a burst over the account's sending rate). `accepted` counts the emails it took, `requests`
 * every SendEmail it answered.
 */
export class SesStandIn {
  mode: 'up' | 'down' | 'throttling' = 'up';
  requests = 0;
  accepted = 0;
  private readonly server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      this.requests += 1;
      if (this.mode === 'up') {
        this.accepted += 1;
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ MessageId: randomUUID() }));
        return;
      }
      const [status, errorType, message] =
        this.mode === 'down'
          ? [500, 'InternalFailure', 'Internal failure']
          : [429, 'TooManyRequestsException', 'Maximum sending rate exceeded.'];
      response.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': errorType });
      response.end(JSON.stringify({ message }));
    });
  });

  start(): Promise<void> {
    return new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** A client of its own (no SDK retries: each send is one request, so the counts are the worker's). */
  client(): SESv2Client {
    const { port } = this.server.address() as AddressInfo;
    return new SESv2Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', maxAttempts: 1 });
  }

  stop(): void {
    this.server.close();
  }
}
