// What the suite's fault-injecting DynamoDB proxies share: reading a request whole, passing it on to the embedded
// server, and the answers DynamoDB refuses a request with.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { awsJsonError, type FaultyAnswer } from './fault-server.js';

export function readBody(message: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    message.on('data', (chunk: Buffer) => chunks.push(chunk));
    message.on('end', () => resolve(Buffer.concat(chunks)));
    message.on('error', reject);
  });
}

/**
 * Sends `request` (its method, path and headers, signature included, with `body`) on to `upstream` and
 * hands its answer to `onAnswer`; a failed connection ends `response` without an answer.
 */
export function forward(
  upstream: URL,
  request: IncomingMessage,
  response: ServerResponse,
  body: Buffer,
  onAnswer: (answer: IncomingMessage) => void,
): void {
  const forwarded = httpRequest(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: request.method,
      path: request.url,
      // The embedded server answers only a Host naming it; it checks no signature, so the signed Host
      // (the proxy's) may differ.
      headers: { ...request.headers, host: upstream.host },
    },
    onAnswer,
  );
  forwarded.on('error', () => response.destroy());
  forwarded.end(body);
}

/** DynamoDB's answer to a request it refuses with the error `type` (`ProvisionedThroughputExceededException`…). */
export function dynamoDbError(status: number, type: string, message = 'refused by the test'): FaultyAnswer {
  return awsJsonError(status, `com.amazonaws.dynamodb.v20120810#${type}`, message);
}

/**
 * DynamoDB's TransactionCanceledException for the TransactWriteItems request `body` (its JSON): one
 * CancellationReasons entry per item of the request, `codeAt(index)` its code (`None` for an item that was
 * fine, `ThrottlingError`, `ConditionalCheckFailed`…).
 */
export function cancelledTransaction(body: string, codeAt: (index: number) => string): FaultyAnswer {
  const items = (JSON.parse(body) as { TransactItems?: unknown[] }).TransactItems ?? [];
  const codes = items.map((_item, index) => codeAt(index));
  return {
    status: 400,
    contentType: 'application/x-amz-json-1.0',
    body: JSON.stringify({
      __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
      message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes.join(', ')}]`,
      CancellationReasons: codes.map((Code) => ({ Code })),
    }),
  };
}
