// The email worker and its batch's deadline: no send started that cannot end before it, the batch answered by it.
import { randomUUID } from 'node:crypto';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, onTestFinished, vi } from 'vitest';
import { EmailWorker, type EmailWorkerOptions } from '../../functions/email-worker/email-worker.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import type { EmailTransport, OutgoingEmail } from '../../functions/email-worker/transports.js';
import {
  batchAnswerMarginMs,
  QueueActions,
  withWorkerMiddlewares,
} from '../../functions/shared/queue-worker.js';
import type { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { CircuitState } from '../../middleware/circuit-breaker/state.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { testObservability } from '../helpers/observability.js';
import { emailWorkerContext, emailWorkerQueueOptions, testProviderBreaker } from './helpers.js';

/** A provider that takes each email at once and answers once its send is aborted, or never (`answers: false`). */
class HangingTransport implements EmailTransport {
  readonly name = 'smtp';
  readonly taken: OutgoingEmail[] = [];
  readonly aborted: OutgoingEmail[] = [];
  constructor(private readonly hangsFor: (email: OutgoingEmail) => boolean = () => true) {}
  send(email: OutgoingEmail, signal?: AbortSignal): Promise<string> {
    this.taken.push(email);
    if (!this.hangsFor(email)) return Promise.resolve(`<${randomUUID()}@test>`);
    return new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => {
        this.aborted.push(email);
        reject(signal.reason);
      });
    });
  }
  close(): void {}
}

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });

let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

const welcome = (userId?: string) => ({
  id: randomUUID(),
  type: 'welcome',
  to: `deadline-${randomUUID()}@example.com`,
  data: { name: 'Ada' },
  ...(userId === undefined ? {} : { userId }),
});

/** An invocation that ends `remainingMs` from now, its time left counting down as Lambda's does. */
function endingIn(remainingMs: number): { end: number; context: Context } {
  const end = Date.now() + remainingMs;
  return { end, context: { ...emailWorkerContext, getRemainingTimeInMillis: () => end - Date.now() } };
}

function setup(
  transport: EmailTransport,
  breaker: CircuitBreaker<string>,
  overrides: Partial<EmailWorkerOptions> = {},
) {
  const { observability, audits } = testObservability('email-worker');
  const worker = new EmailWorker({
    transport,
    templates: new EmailTemplates(),
    breaker,
    ...emailWorkerQueueOptions(dynamoDb, queues),
    observability,
    ...overrides,
  });
  return { worker, audits, observability };
}

const run = (worker: EmailWorker, context: Context, ...records: SQSRecord[]) =>
  worker.handle({ Records: records } as SQSEvent, context);

describe("the email worker and its batch's deadline", () => {
  it('starts no send whose provider timeout does not fit before it: the attempt fails and backs off, the circuit untouched', async () => {
    const transport = new HangingTransport();
    // One counted failure would open it.
    const breaker = testProviderBreaker(dynamoDb, 'email-deadline', { failureThreshold: 1 });
    const { worker, audits, observability } = setup(transport, breaker);
    const warned = vi.spyOn(observability.logger, 'warn');
    const message = welcome();
    const received = await queues.receivedRecord(message);
    // 10 s before the batch's deadline: less than the breaker's 21 s.
    const { context } = endingIn(batchAnswerMarginMs + 10_000);
    expect(await run(worker, context, received)).toEqual({
      batchItemFailures: [{ itemIdentifier: received.messageId }],
    });
    expect(transport.taken).toEqual([]);
    expect(warned).toHaveBeenCalledWith(
      "Email not sent: too little of the batch's time was left for its send",
      expect.objectContaining({ messageId: message.id, step: 'time_left', attempt: 1, last: false }),
    );
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.failed',
        metadata: expect.objectContaining({ reason: 'DeadlineExceededError', step: 'time_left', attempt: 1 }),
      }),
    ]);
    // Back after the first attempt's backoff (30 s), not the queue's 180 s.
    expect(queues.visibilityChanges().map((change) => change.VisibilityTimeout)).toEqual([30]);
    expect(breaker.state).toBe(CircuitState.closed);
  });

  it("gives the provider's breaker the batch's deadline: the invocation's end less the answer margin", async () => {
    const breaker = testProviderBreaker(dynamoDb, 'email-deadline');
    const execute = vi.spyOn(breaker, 'execute');
    const { worker } = setup(new HangingTransport(() => false), breaker);
    const { end, context } = endingIn(30_000);
    expect(await run(worker, context, await queues.receivedRecord(welcome()))).toEqual({
      batchItemFailures: [],
    });
    expect(execute).toHaveBeenCalledWith(
      expect.any(Function),
      expect.objectContaining({ deadline: end - batchAnswerMarginMs }),
    );
  });

  it('starts no send whose timeout stopped fitting while its idempotency record was written: the circuit untouched', async () => {
    const transport = new HangingTransport();
    const breaker = testProviderBreaker(dynamoDb, 'email-deadline', {
      failureThreshold: 1,
      timeoutMs: 1_500,
    });
    const queueOptions = emailWorkerQueueOptions(dynamoDb, queues);
    // 2 s before the deadline there is room for the 1.5 s send; the in-progress record's 1 s write leaves none.
    const { persistenceStore } = queueOptions;
    const saveInProgress = persistenceStore.saveInProgress.bind(persistenceStore);
    vi.spyOn(persistenceStore, 'saveInProgress').mockImplementation(async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      return saveInProgress(...args);
    });
    const { worker, audits } = setup(transport, breaker, { persistenceStore });
    const received = await queues.receivedRecord(welcome());
    const { context } = endingIn(batchAnswerMarginMs + 2_000);
    expect(await run(worker, context, received)).toEqual({
      batchItemFailures: [{ itemIdentifier: received.messageId }],
    });
    expect(transport.taken).toEqual([]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.failed',
        metadata: expect.objectContaining({ reason: 'DeadlineExceededError', step: 'time_left', attempt: 1 }),
      }),
    ]);
    expect(queues.visibilityChanges().map((change) => change.VisibilityTimeout)).toEqual([30]);
    expect(breaker.state).toBe(CircuitState.closed);
  });

  it('leaves the visibility of a record it reported failed at the deadline alone when its attempt fails later', async () => {
    const breaker = testProviderBreaker(dynamoDb, 'email-deadline');
    // The user check fails, but only after the batch's deadline.
    const userState = () =>
      new Promise<never>((_resolve, reject) =>
        setTimeout(() => reject(new Error('user table unreachable')), 1_500),
      );
    const { worker, audits } = setup(new HangingTransport(), breaker, { userState });
    const delayNextAttempt = vi.spyOn(QueueActions.prototype, 'delayNextAttempt');
    onTestFinished(() => delayNextAttempt.mockRestore());
    const received = await queues.receivedRecord(welcome(randomUUID()));
    const { context } = endingIn(batchAnswerMarginMs + 500);
    expect(await run(worker, context, received)).toEqual({
      batchItemFailures: [{ itemIdentifier: received.messageId }],
    });
    // Its own work goes on (in Lambda, once the environment is thawed) and fails its attempt.
    await vi.waitFor(() => expect(delayNextAttempt.mock.settledResults).toHaveLength(1), { timeout: 5_000 });
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.failed',
        metadata: expect.objectContaining({ step: 'user_check' }),
      }),
    ]);
    // Reported failed, the message comes back after the queue's visibility timeout, not the backoff.
    expect(queues.visibilityChanges()).toEqual([]);
  });

  it("answers the batch by its deadline through the function's middlewares: a record still running is reported failed, the rest as they ended", async () => {
    const transport = new HangingTransport(() => false);
    // The user check of a message about a user never answers.
    const breaker = testProviderBreaker(dynamoDb, 'email-deadline', { timeoutMs: 500 });
    const { worker, observability } = setup(transport, breaker, { userState: () => new Promise(() => {}) });
    const warned = vi.spyOn(observability.logger, 'warn');
    const handler = withWorkerMiddlewares((event, context) => worker.handle(event, context), observability);
    const sent = welcome();
    const stuck = welcome(randomUUID());
    const records = [await queues.receivedRecord(sent), await queues.receivedRecord(stuck)];
    const { context } = endingIn(batchAnswerMarginMs + 1_000);
    // Without the deadline Middy's own timeout would reject the whole invocation (TimeoutError), no record answered.
    expect(await handler({ Records: records } as SQSEvent, context)).toEqual({
      batchItemFailures: [{ itemIdentifier: records[1]?.messageId }],
    });
    expect(transport.taken.map((email) => email.messageId)).toEqual([sent.id]);
    expect(warned).toHaveBeenCalledWith("Record still running at its batch's deadline; reported failed", {
      correlation_id: records[1]?.messageId,
      sqsMessageId: records[1]?.messageId,
    });
  });
});
