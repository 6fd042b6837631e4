// Hands SQS batches to a worker the way a Lambda event source mapping does, with partial batch failures.
import {
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';

export interface QueuePollerOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
  readonly queueArn: string;
  /** @default 10 */
  readonly batchSize?: number;
  /** Batches in flight at once, like the mapping's maximum concurrency. @default 2 */
  readonly maxConcurrency?: number;
  /** Pause after an empty receive. @default 100 */
  readonly idleDelayMs?: number;
  readonly invoke: (event: SQSEvent) => Promise<unknown>;
  /** Invocation or SQS errors; the messages involved return after their visibility timeout. */
  readonly onError?: (error: unknown) => void;
}

function toLambdaAttributes(
  attributes: Record<string, MessageAttributeValue> | undefined,
): SQSMessageAttributes {
  const result: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(attributes ?? {})) {
    result[name] = {
      dataType: value.DataType ?? 'String',
      stringListValues: [],
      binaryListValues: [],
      ...(value.StringValue === undefined ? {} : { stringValue: value.StringValue }),
      ...(value.BinaryValue === undefined
        ? {}
        : { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }),
    };
  }
  return result;
}

export function toSqsRecord(message: Message, queueArn: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: toLambdaAttributes(message.MessageAttributes),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: queueArn.split(':')[3] ?? 'us-east-1',
  };
}

/**
 * Which records of a batch failed, by Lambda's documented rules: no response or an empty or null
 * `batchItemFailures` is full success; an item identifier that is empty or not in the batch, or a
 * malformed response, fails the whole batch.
 */
export function failedMessageIds(response: unknown, batch: readonly SQSRecord[]): Set<string> {
  const all = new Set(batch.map((record) => record.messageId));
  if (response === undefined || response === null) return new Set();
  if (typeof response !== 'object') return all;
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return all;
  const failed = new Set<string>();
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || !all.has(id)) return all;
    failed.add(id);
  }
  return failed;
}

export class QueuePoller {
  private running = false;
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(private readonly options: QueuePollerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const concurrency = this.options.maxConcurrency ?? 2;
    this.loops = Array.from({ length: concurrency }, () => this.loop());
  }

  /** Stops polling and waits for batches in flight to settle. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.pollOnce();
      } catch (error) {
        if (!this.running) return;
        this.options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private async pollOnce(): Promise<void> {
    const { client, queueUrl, queueArn } = this.options;
    // Short polls: local-aws-sqs fills a long poll until its wait ends, so a message whose visibility
    // lapses meanwhile would come back twice in one batch, which SQS never does.
    const received = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: this.options.batchSize ?? 10,
        WaitTimeSeconds: 0,
        // local-aws-sqs reads the older AttributeNames; SQS reads either.
        AttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: this.abort.signal },
    );
    const records = (received.Messages ?? []).map((message) => toSqsRecord(message, queueArn));
    if (records.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, this.options.idleDelayMs ?? 100));
      return;
    }
    let failed: Set<string>;
    try {
      failed = failedMessageIds(await this.options.invoke({ Records: records }), records);
    } catch (error) {
      // A failed invocation deletes nothing: every record returns after its visibility timeout.
      this.options.onError?.(error);
      return;
    }
    const done = records.filter((record) => !failed.has(record.messageId));
    if (done.length === 0) return;
    await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: done.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle })),
      }),
    );
  }
}
