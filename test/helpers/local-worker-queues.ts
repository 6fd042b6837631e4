// Worker and producer tests against a real local-aws-sqs: records really received from a queue, and reads of what landed.
import {
  ChangeMessageVisibilityCommand,
  type ChangeMessageVisibilityCommandInput,
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SendMessageBatchCommandInput,
  SendMessageCommand,
  type SendMessageCommandInput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { type LocalSqs, startLocalSqs } from '../../bin/runtime/local-sqs.js';
import { toSqsRecord } from '../../bin/runtime/queue-poller.js';
import { type WorkerName, workers } from '../../functions/workers.js';

/**
 * A real client for an SQS that is down: nothing listens on 127.0.0.1:1, so every call is refused a
 * connection (one attempt, no retries to wait for).
 */
export function unreachableSqsClient(): SQSClient {
  return new SQSClient({
    endpoint: 'http://127.0.0.1:1',
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
}

export interface ReceivedRecordOptions {
  /** How many times the message is received: the record is that receive (its ApproximateReceiveCount). @default 1 */
  readonly receiveCount?: number;
  /** String message attributes sent with it, e.g. `{ 'x-correlation-id': 'corr-1' }`. @default {} */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** A visibility change the worker asked the real server for, and whether the server carried it out. */
export interface VisibilityChange {
  readonly ReceiptHandle: string | undefined;
  readonly VisibilityTimeout: number | undefined;
  readonly succeeded: boolean;
}

/**
 * A local-aws-sqs server holding a worker's queue and its `-dlq` as the worker table defines them
 * (name, maxReceiveCount, visibility timeout), and a client for the code under test.
 */
export class LocalWorkerQueues {
  /** The client to give the code under test: its calls are recorded (and still executed by the server). */
  readonly client: SQSClient;
  /** The test's own calls (sending, receiving, cleaning up), kept out of that record. */
  readonly #admin: SQSClient;
  /** The latest receipt handle of every message this file received, so each test can delete its leftovers. */
  readonly #received = new Map<string, { queueUrl: string; receiptHandle: string }>();
  readonly #extraQueueUrls: string[] = [];
  #calls: Array<{ command: string; input: object; succeeded: boolean }> = [];
  /** Called once the server has carried out a visibility change of the code under test. */
  onVisibilityChange: (() => void) | undefined;

  private constructor(
    readonly sqs: LocalSqs,
    readonly queueName: string,
  ) {
    this.client = sqs.createClient();
    this.#admin = sqs.createClient();
    // Reads what the code under test asks of the real server, which still executes every call.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const call = {
          command: context.commandName as string,
          input: args.input as object,
          succeeded: false,
        };
        try {
          const result = await next(args);
          call.succeeded = true;
          return result;
        } finally {
          this.#calls.push(call);
          if (call.succeeded && call.command === 'ChangeMessageVisibilityCommand')
            this.onVisibilityChange?.();
        }
      },
      { step: 'initialize', name: 'recordCalls' },
    );
  }

  /** Starts the server (127.0.0.1, a free port) with the worker's queue and its DLQ. */
  static async start(worker: WorkerName): Promise<LocalWorkerQueues> {
    const { queueName, maxReceiveCount, visibilityTimeoutSec } = workers[worker];
    const sqs = await startLocalSqs([{ name: queueName, maxReceiveCount, visibilityTimeoutSec }]);
    return new LocalWorkerQueues(sqs, queueName);
  }

  get queueUrl(): string {
    return this.sqs.queueUrls[this.queueName] as string;
  }

  get dlqUrl(): string {
    return this.sqs.queueUrls[`${this.queueName}-dlq`] as string;
  }

  /**
   * Adds a queue that refuses any message above 1024 bytes (its MaximumMessageSize, SQS's smallest):
   * SendMessageBatch then refuses each larger entry on its own, in `Failed`, as SQS reports a partial
   * batch failure. Resolves with its URL.
   */
  createSmallMessageQueue(name: string): Promise<string> {
    return this.createQueue(name, { MaximumMessageSize: '1024' });
  }

  /** Adds a queue to the server (another worker's, e.g. the email queue a webhook alert goes to); resolves with its URL. */
  async createQueue(name: string, attributes: Record<string, string> = {}): Promise<string> {
    const { QueueUrl } = await this.#admin.send(
      new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
    );
    this.#extraQueueUrls.push(QueueUrl as string);
    return QueueUrl as string;
  }

  /** Forgets the calls recorded so far, as if the code under test had made none yet. */
  clearCalls(): void {
    this.#calls = [];
  }

  /** The visibility changes asked of the server since the last {@link reset}, in order. */
  visibilityChanges(): VisibilityChange[] {
    return this.#calls
      .filter((call) => call.command === 'ChangeMessageVisibilityCommand')
      .map(({ input, succeeded }) => {
        const { ReceiptHandle, VisibilityTimeout } = input as ChangeMessageVisibilityCommandInput;
        return { ReceiptHandle, VisibilityTimeout, succeeded };
      });
  }

  /** The inputs of the SendMessageBatch calls the code under test made since the last {@link reset}. */
  sendMessageBatches(): SendMessageBatchCommandInput[] {
    return this.#calls
      .filter((call) => call.command === 'SendMessageBatchCommand')
      .map((call) => call.input as SendMessageBatchCommandInput);
  }

  /** The inputs of the SendMessage calls the code under test made since the last {@link reset} (any queue). */
  sentMessages(): SendMessageCommandInput[] {
    return this.#calls
      .filter((call) => call.command === 'SendMessageCommand')
      .map((call) => call.input as SendMessageCommandInput);
  }

  /**
   * One receive of whatever is visible in the worker's queue (up to 10), as the records a poller
   * hands the worker; it hides them for their visibility timeout.
   */
  async receiveRecords(): Promise<SQSRecord[]> {
    const messages = await this.receive(this.queueUrl);
    return messages.map((message) => toSqsRecord(message, this.sqs.queueArns[this.queueName] as string));
  }

  /**
   * The messages visible in a queue (the worker's by default), each with its body parsed as `T`, in
   * the order the queue returns them; receiving them hides them from the rest of the test.
   */
  async enqueued<T>(queueUrl: string = this.queueUrl): Promise<Array<{ body: T; message: Message }>> {
    const found: Array<{ body: T; message: Message }> = [];
    for (let batch = await this.receive(queueUrl); batch.length > 0; batch = await this.receive(queueUrl)) {
      found.push(...batch.map((message) => ({ body: JSON.parse(message.Body ?? 'null') as T, message })));
    }
    return found;
  }

  /**
   * Sends `body` (JSON-encoded unless a string) to the worker's queue and receives it `receiveCount`
   * times (making it visible again in between), so the record is a real receive: its receipt handle,
   * receive count and message attributes are the server's.
   */
  async receivedRecord(body: unknown, options: ReceivedRecordOptions = {}): Promise<SQSRecord> {
    const { MessageId } = await this.#admin.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
        MessageAttributes: Object.fromEntries(
          Object.entries(options.attributes ?? {}).map(([name, value]) => [
            name,
            { DataType: 'String', StringValue: value },
          ]),
        ),
      }),
    );
    let record: SQSRecord | undefined;
    for (let receive = 0; receive < (options.receiveCount ?? 1); receive += 1) {
      if (record) await this.makeVisible(record);
      record = await this.#receive(MessageId as string);
    }
    if (!record) throw new Error('receiveCount must be at least 1');
    return record;
  }

  /** The same message received again (its visibility set to 0 first): a redelivery, one receive later. */
  async redelivered(record: SQSRecord): Promise<SQSRecord> {
    await this.makeVisible(record);
    return this.#receive(record.messageId);
  }

  async makeVisible(record: SQSRecord): Promise<void> {
    await this.#admin.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: record.receiptHandle,
        VisibilityTimeout: 0,
      }),
    );
  }

  /**
   * Receives `messageId` from the worker's queue, receiving again until it turns up (within 5 s): one receive
   * returns one visible message, oldest first. Other messages met on the way stay hidden until it is found,
   * so that each receive reaches past them, and are then released.
   */
  async #receive(messageId: string): Promise<SQSRecord> {
    // Not Date: tests freeze it.
    const deadline = performance.now() + 5000;
    const others: Message[] = [];
    let mine: Message | undefined;
    try {
      while (mine === undefined) {
        if (performance.now() > deadline) {
          throw new Error(`message ${messageId} was not received from ${this.queueName} within 5 s`);
        }
        // One at a time: local-aws-sqs answers as soon as it has as many as asked for, where a receive of
        // up to 10 waits out its whole 40 ms poll.
        const messages = await this.receive(this.queueUrl, 1);
        mine = messages.find((message) => message.MessageId === messageId);
        others.push(...messages.filter((message) => message !== mine));
        if (messages.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      for (const other of others) {
        await this.#admin.send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: this.queueUrl,
            ReceiptHandle: other.ReceiptHandle,
            VisibilityTimeout: 0,
          }),
        );
      }
    }
    return toSqsRecord(mine, this.sqs.queueArns[this.queueName] as string);
  }

  /** One receive of whatever is visible in a queue (up to `maxMessages`), with every attribute; it hides them. */
  async receive(queueUrl: string, maxMessages = 10): Promise<Message[]> {
    const { Messages } = await this.#admin.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: maxMessages,
        WaitTimeSeconds: 0,
        AttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    for (const message of Messages ?? []) {
      this.#received.set(message.MessageId ?? '', { queueUrl, receiptHandle: message.ReceiptHandle ?? '' });
    }
    return Messages ?? [];
  }

  /**
   * Which of `records` a receive from the worker's queue returns now (their ids): a message whose
   * visibility was set to 0 comes back at once, one set to N seconds stays hidden. It receives them.
   */
  async receivableNow(...records: SQSRecord[]): Promise<string[]> {
    const ids = new Set(records.map((record) => record.messageId));
    const received = (await this.receive(this.queueUrl)).filter((message) =>
      ids.has(message.MessageId ?? ''),
    );
    return received.map((message) => message.MessageId ?? '');
  }

  /**
   * The messages in the worker's DLQ, with their attributes, each deleted once read (the DLQ is
   * shared by the file's tests). `bodies` keeps only the copies of those bodies.
   */
  async deadLetters(bodies?: readonly string[]): Promise<Message[]> {
    const all: Message[] = [];
    for (;;) {
      const batch = await this.receive(this.dlqUrl);
      if (batch.length === 0) break;
      all.push(...batch);
      for (const message of batch) {
        await this.#admin.send(
          new DeleteMessageCommand({ QueueUrl: this.dlqUrl, ReceiptHandle: message.ReceiptHandle }),
        );
      }
    }
    return bodies ? all.filter((message) => bodies.includes(message.Body ?? '')) : all;
  }

  /**
   * What an operator's redrive (`start-message-move-task`) does with each message visible in the DLQ: sends
   * it to the worker's queue with the same body and attributes (a new message, its receives counted from 1)
   * and deletes it from the DLQ. Through the test's own client, so the worker's recorded calls leave it out.
   */
  async redriveDeadLetters(): Promise<void> {
    for (const message of await this.receive(this.dlqUrl)) {
      await this.#admin.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: message.Body,
          MessageAttributes: message.MessageAttributes,
        }),
      );
      await this.#admin.send(
        new DeleteMessageCommand({ QueueUrl: this.dlqUrl, ReceiptHandle: message.ReceiptHandle }),
      );
    }
  }

  /**
   * Between tests: deletes every message received so far (in flight or not), empties whatever is visible in
   * every queue and forgets the recorded calls, so no test sees another's messages.
   */
  async reset(): Promise<void> {
    await Promise.all(
      [...this.#received.values()].map(({ queueUrl, receiptHandle }) =>
        this.#admin
          .send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: receiptHandle }))
          .catch(() => {}),
      ),
    );
    this.#received.clear();
    // Every receive waits out the server's 40 ms poll: the queues are emptied side by side, and one that
    // holds nothing is not received from at all (its count is answered at once).
    await Promise.all(
      [this.queueUrl, this.dlqUrl, ...this.#extraQueueUrls].map(async (queueUrl) => {
        if ((await this.#messagesIn(queueUrl)) === 0) return;
        for (
          let batch = await this.receive(queueUrl);
          batch.length > 0;
          batch = await this.receive(queueUrl)
        ) {
          await Promise.all(
            batch.map((message) =>
              this.#admin.send(
                new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
              ),
            ),
          );
        }
      }),
    );
    this.#calls = [];
    this.onVisibilityChange = undefined;
  }

  /** The messages a queue holds, visible or in flight (local-aws-sqs counts both here), without delayed ones. */
  async #messagesIn(queueUrl: string): Promise<number> {
    const { Attributes } = await this.#admin.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }),
    );
    return Number(Attributes?.ApproximateNumberOfMessages ?? 0);
  }

  async stop(): Promise<void> {
    this.client.destroy();
    this.#admin.destroy();
    await this.sqs.stop();
  }
}

/** A received message's string attributes, by name. */
export const stringAttributesOf = (message: Message): Record<string, string | undefined> =>
  Object.fromEntries(
    Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue]),
  );
