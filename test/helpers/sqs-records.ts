// Builds Lambda SQS records for worker tests, as an event source mapping hands them over.
import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';

export interface SqsRecordOptions {
  /** SQS's ApproximateReceiveCount: which attempt this receive is. @default 1 */
  readonly receiveCount?: number;
  /** String message attributes, e.g. `{ 'x-correlation-id': 'corr-1' }`. @default {} */
  readonly attributes?: Readonly<Record<string, string>>;
  /** @default 'bulwark-email' */
  readonly queueName?: string;
}

/** One SQS record carrying `body` (JSON-encoded unless already a string), with a fresh message id. */
export function sqsRecord(body: unknown, options: SqsRecordOptions = {}): SQSRecord {
  return {
    messageId: randomUUID(),
    receiptHandle: `handle-${randomUUID()}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: String(options.receiveCount ?? 1),
      SentTimestamp: String(Date.now()),
      SenderId: 'local',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: Object.fromEntries(
      Object.entries(options.attributes ?? {}).map(([name, value]) => [
        name,
        { dataType: 'String', stringValue: value, stringListValues: [], binaryListValues: [] },
      ]),
    ),
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:000000000000:${options.queueName ?? 'bulwark-email'}`,
    awsRegion: 'us-east-1',
  };
}
