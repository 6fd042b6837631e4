// The functions' SQS client (AWS defaults in Lambda, local credentials for the embedded local-aws-sqs) and the one batch send producers use.
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { correlationMessageAttributes } from '../../middleware/audit/correlation.js';
import { nameAwsDependency } from '../../middleware/dependency-failure.js';
import { boundedRequestHandler } from '../../middleware/request-handler.js';

const clients = new Map<string, SQSClient>();

/**
 * Bounds on every SQS call: an HTTP function sends after its write has committed, so a stalled queue
 * must fail the send (reported as an enqueue failure) well inside the function's timeout, never turn
 * a stored booking into a 500. Two attempts of at most 1 s each.
 */
const sqsBounds = { maxAttempts: 2, requestTimeoutMs: 1000, connectionTimeoutMs: 500 } as const;

/**
 * The SQS client for an endpoint (none: AWS), made on the first call and shared by every producer in
 * the process: in Lambda, that is the function (one connection pool, one client to build at cold
 * start); the local runtime's functions, all in one process, share it too. With an endpoint (the local
 * runtime) it signs with static local credentials.
 */
export function functionSqsClient(endpoint: string | undefined): SQSClient {
  const key = endpoint ?? '';
  let client = clients.get(key);
  if (!client) {
    const bounded = { maxAttempts: sqsBounds.maxAttempts, requestHandler: boundedRequestHandler(sqsBounds) };
    client = endpoint
      ? new SQSClient({
          ...bounded,
          endpoint,
          region: process.env.AWS_REGION ?? 'us-east-1',
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        })
      : new SQSClient(bounded);
    nameAwsDependency(client);
    clients.set(key, client);
  }
  return client;
}

/**
 * Sends up to 10 messages (JSON-encoded) in one SendMessageBatch, each carrying the caller's correlation
 * id, and resolves with the indexes of the ones SQS refused (a batch can partly fail). `signal` aborts the
 * send, retries included (a handler's deadline after its commit).
 */
export async function sendMessageBatch(
  sqs: SQSClient,
  queueUrl: string,
  messages: readonly unknown[],
  correlationId: string | undefined,
  signal?: AbortSignal,
): Promise<number[]> {
  const result = await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: messages.map((message, index) => ({
        Id: String(index),
        MessageBody: JSON.stringify(message),
        MessageAttributes: { ...correlationMessageAttributes(correlationId) },
      })),
    }),
    { abortSignal: signal },
  );
  return (result.Failed ?? []).map((entry) => Number(entry.Id));
}
