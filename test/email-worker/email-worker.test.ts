import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { EmailWorker, retryDelaySec } from '../../functions/email-worker/email-worker.js';
import { compileTemplate } from '../../functions/email-worker/template-sources.js';
import { EmailTemplates, precompiledTemplateSet } from '../../functions/email-worker/templates.js';
import {
  type EmailTransport,
  type OutgoingEmail,
  SesEmailTransport,
  SmtpEmailTransport,
} from '../../functions/email-worker/transports.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { userKey } from '../../functions/shared/keys.js';
import { sqsAttributeText } from '../../functions/shared/queue-worker.js';
import { userItemState } from '../../functions/shared/user-item.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DeliveryRejectedError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { handleTwoBatchesAtOnce } from '../helpers/concurrent-batches.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { LocalWorkerQueues, unreachableSqsClient } from '../helpers/local-worker-queues.js';
import { auditingSecurityEvents, storedMetric, testObservability } from '../helpers/observability.js';
import { testTableNames } from '../helpers/tables.js';
import { throttleFirstDelete } from '../helpers/throttling.js';
import {
  emailWorkerContext,
  emailWorkerQueueOptions,
  testProviderBreaker,
  testProviderTimeoutMs,
} from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });

class RecordingTransport implements EmailTransport {
  readonly name = 'smtp';
  readonly sent: OutgoingEmail[] = [];
  readonly providerMessageIds: string[] = [];
  /** Recipients whose sends fail (records of a batch are processed in parallel, so not by order). */
  readonly failFor = new Set<string>();
  /** What a send to one of those recipients throws. */
  failure = new Error('connection refused');
  /** Sends wait for it when set: a send the provider is still busy with. */
  busyUntil: Promise<void> | undefined;
  async send(email: OutgoingEmail): Promise<string> {
    await this.busyUntil;
    if (this.failFor.has(email.to)) throw this.failure;
    this.sent.push(email);
    const providerMessageId = `<${randomUUID()}@test>`;
    this.providerMessageIds.push(providerMessageId);
    return providerMessageId;
  }
  close(): void {}
}

const context = emailWorkerContext;

// A real local-aws-sqs with the email queue and its DLQ: records are really received from the queue, and
// the worker's visibility changes and DLQ copies are checked on the server.
let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

/** The message sent to the email queue and received `receiveCount` times: that receive's record. */
const record = (body: unknown, receiveCount = 1): Promise<SQSRecord> =>
  queues.receivedRecord(body, { receiveCount, attributes: { 'x-correlation-id': 'corr-123' } });

/** The dead-letter reasons of the DLQ copies the worker made, in the order the DLQ returns them. */
const deadLetterReasons = async (bodies?: readonly string[]) =>
  (await queues.deadLetters(bodies)).map(
    (message) => message.MessageAttributes?.['bulwark-dead-letter-reason']?.StringValue,
  );

function welcome(to = `u-${randomUUID()}@example.com`) {
  return { id: randomUUID(), type: 'welcome', to, data: { name: 'Grace <Hopper>' } };
}

/** The worker's queue settings, with an idempotency store whose first deleteRecord (after a failed send) DynamoDB throttles. */
function throttledDelete(queueOptions = emailWorkerQueueOptions(dynamoDb, queues)) {
  throttleFirstDelete(queueOptions.persistenceStore);
  return queueOptions;
}

function setup(templates = new EmailTemplates(), queueOptions = emailWorkerQueueOptions(dynamoDb, queues)) {
  const transport = new RecordingTransport();
  const { observability, audits } = testObservability('email-worker');
  const worker = new EmailWorker({
    transport,
    templates,
    breaker: new CircuitBreaker<string>({
      name: `email-test-${randomUUID()}`,
      tableName: testTableNames.toolkit,
      client: dynamoDb,
      timeoutMs: testProviderTimeoutMs,
    }),
    ...queueOptions,
    observability,
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return { worker, transport, audits, run, logger: observability.logger, metrics: observability.metrics };
}

describe('the email worker', () => {
  it('renders the template pair, escaping HTML only in the HTML part, and audits the send', async () => {
    const { transport, audits, run } = setup();
    const message = welcome();
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(transport.sent).toHaveLength(1);
    const [email] = transport.sent;
    expect(email?.subject).toBe('Welcome to Bulwark');
    expect(email?.html).toContain('Welcome, Grace &lt;Hopper&gt;!');
    expect(email?.text).toContain('Welcome, Grace <Hopper>!');
    expect(audits).toEqual([
      expect.objectContaining({ eventType: 'email.sent', outcome: 'success', correlationId: 'corr-123' }),
    ]);
  });

  it('sends once when the same SQS record is delivered twice, remembering it under a partition key of its own for a day', async () => {
    const { transport, run } = setup();
    const message = welcome();
    const delivered = await record(message);
    const sentAfterSec = Math.round(Date.now() / 1000);
    await run(delivered);
    // The same SQS message received again, as after a worker whose delete was lost.
    const redelivered = await queues.redelivered(delivered);
    expect(redelivered).toMatchObject({
      messageId: delivered.messageId,
      attributes: { ApproximateReceiveCount: '2' },
    });
    expect(await run(redelivered)).toEqual({ batchItemFailures: [] });
    const other = welcome();
    await run(await record(other));
    expect(transport.sent.filter((email) => email.to === message.to)).toHaveLength(1);
    const stored = await idempotencyRecordsOf(createDocumentClient(dynamoDb), 'email-worker');
    // Other files' workers keep records too: each message's record holds its provider id.
    const [providerMessageId, otherProviderMessageId] = transport.providerMessageIds;
    const recordOf = (id: string | undefined) => {
      const found = stored.filter(
        (item) => (item.data as { providerMessageId?: string })?.providerMessageId === id,
      );
      expect(found).toEqual([expect.objectContaining({ status: 'COMPLETED' })]);
      return found[0] as { pk: string; sk: string; expiresAt: number };
    };
    const mine = recordOf(providerMessageId);
    const others = recordOf(otherProviderMessageId);
    // Two messages, two partition keys: IDEM#email-worker# then Powertools' key, which the sort key holds.
    expect(mine.pk).toBe(`IDEM#email-worker#${mine.sk}`);
    expect(others.pk).toBe(`IDEM#email-worker#${others.sk}`);
    expect(mine.pk).not.toBe(others.pk);
    // Kept for idempotencyTtlSec (default a day) from the send.
    expect(mine.expiresAt).toBeGreaterThanOrEqual(sentAfterSec + 86_400);
    expect(mine.expiresAt).toBeLessThanOrEqual(Math.round(Date.now() / 1000) + 86_400);
  });

  it('logs and audits a redelivered copy as a duplicate, not as a second send', async () => {
    const { transport, audits, run, metrics, logger } = setup();
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const info = vi.spyOn(logger, 'info');
    const message = welcome();
    await run(await record(message));
    expect(await run(await record(message, 2))).toEqual({ batchItemFailures: [] });
    expect(info).toHaveBeenCalledWith(
      'Email already sent; copy skipped',
      expect.objectContaining({ correlation_id: 'corr-123', messageId: message.id }),
    );
    expect(transport.sent).toHaveLength(1);
    expect(addMetric.mock.calls.map(([name]) => name)).toEqual(['EmailSent']);
    expect(audits.map((audit) => audit.eventType)).toEqual(['email.sent', 'email.duplicate']);
    expect(audits[1]).toMatchObject({ outcome: 'success', metadata: { messageId: message.id } });
  });

  it('sends one email for one producer id enqueued twice, whatever correlation id each copy carries', async () => {
    const { transport, audits, run } = setup();
    const message = welcome();
    const enqueued = (correlationId: string) =>
      queues.receivedRecord(message, { attributes: { 'x-correlation-id': correlationId } });
    expect(await run(await enqueued('corr-first'))).toEqual({ batchItemFailures: [] });
    expect(await run(await enqueued('corr-second'))).toEqual({ batchItemFailures: [] });
    expect(transport.sent).toHaveLength(1);
    expect(audits).toEqual([
      expect.objectContaining({ eventType: 'email.sent', correlationId: 'corr-first' }),
      expect.objectContaining({ eventType: 'email.duplicate', correlationId: 'corr-second' }),
    ]);
  });

  it('backs off a copy whose id another record is sending, without counting a failed send', async () => {
    const { transport, audits, run, metrics, logger } = setup();
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const info = vi.spyOn(logger, 'info');
    // The provider is busy with the first copy until the second one has backed off.
    let backedOff: () => void = () => {};
    transport.busyUntil = new Promise<void>((resolve) => {
      backedOff = resolve;
    });
    queues.onVisibilityChange = () => backedOff();
    const message = welcome();
    const [first, second] = [await record(message), await record(message)];
    const response = await run(first, second);
    expect(transport.sent).toHaveLength(1);
    expect(response.batchItemFailures).toHaveLength(1);
    const deferred = response.batchItemFailures[0]?.itemIdentifier === first.messageId ? first : second;
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: deferred.receiptHandle, VisibilityTimeout: 30, succeeded: true },
    ]);
    // Hidden for those 30 s: the queue does not hand it out again now.
    expect(await queues.receivableNow(deferred)).toEqual([]);
    expect(info).toHaveBeenCalledWith(
      'An email with this id is being sent right now; this copy comes back later',
      expect.objectContaining({ correlation_id: 'corr-123', messageId: message.id, delaySec: 30 }),
    );
    expect(addMetric.mock.calls.map(([name]) => name)).toEqual(['EmailSent']);
    expect(audits.map((audit) => audit.eventType)).toEqual(['email.sent']);
  });

  it('counts a message as sent, with a warning, when the provider took it but its idempotency record was not saved', async () => {
    const queueOptions = emailWorkerQueueOptions(dynamoDb, queues);
    vi.spyOn(queueOptions.persistenceStore, 'saveSuccess').mockRejectedValueOnce(
      Object.assign(new Error('Rate of requests exceeds the allowed throughput'), {
        name: 'ProvisionedThroughputExceededException',
      }),
    );
    const { transport, audits, run, logger } = setup(new EmailTemplates(), queueOptions);
    const warn = vi.spyOn(logger, 'warn');
    expect(await run(await record(welcome()))).toEqual({ batchItemFailures: [] });
    expect(transport.sent).toHaveLength(1);
    expect(queues.visibilityChanges()).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(audits).toEqual([expect.objectContaining({ eventType: 'email.sent', outcome: 'success' })]);
    expect(warn).toHaveBeenCalledWith(
      'Email sent, but its idempotency record was not saved',
      expect.objectContaining({
        correlation_id: 'corr-123',
        errorName: 'ProvisionedThroughputExceededException',
      }),
    );
  });

  it("backs off a failed send whose in-progress record could not be deleted until it expires, with the provider's error", async () => {
    // A base of 5 s: the backoff alone would bring the retry back before the record expires (29.5 s left).
    const { transport, audits, run, logger, metrics } = setup(
      new EmailTemplates(),
      throttledDelete({ ...emailWorkerQueueOptions(dynamoDb, queues), retryBaseDelaySec: 5 }),
    );
    const warn = vi.spyOn(logger, 'warn');
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const message = welcome();
    transport.failFor.add(message.to);
    const failing = await record(message);
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 30, succeeded: true },
    ]);
    expect(warn).toHaveBeenCalledWith(
      'Email send failed, and its in-progress idempotency record could not be deleted',
      expect.objectContaining({
        correlation_id: 'corr-123',
        expiresInSec: 30,
        errorName: 'ProvisionedThroughputExceededException',
      }),
    );
    // Logged, counted and audited as the send's own failure, as without the idempotency store's.
    expect(warn).toHaveBeenCalledWith(
      'Email send failed',
      expect.objectContaining({ attempt: 1, delaySec: 30, reason: 'Error: connection refused' }),
    );
    expect(addMetric.mock.calls.map(([name]) => name)).toEqual(['EmailFailed']);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.failed',
        outcome: 'error',
        metadata: expect.objectContaining({ reason: 'Error', attempt: 1, last: false }),
      }),
    ]);
  });

  it('fails only the record whose send failed and delays its next attempt exponentially', async () => {
    const { transport, run } = setup();
    const failingMessage = welcome();
    transport.failFor.add(failingMessage.to);
    const failing = await record(failingMessage, 2);
    const fine = await record(welcome());
    expect(failing.attributes.ApproximateReceiveCount).toBe('2');
    const response = await run(failing, fine);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    expect(transport.sent).toHaveLength(1);
    // Attempt 2 failed: 30 × 2 = 60 s before the third, carried out by the server.
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 60, succeeded: true },
    ]);
    expect(await queues.receivableNow(failing)).toEqual([]);
  });

  it('spreads the delay with full jitter: a random share of the exponential one, so a failed burst does not come back together', async () => {
    const { transport, run } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      random: () => 0.25,
    });
    const failingMessage = welcome();
    transport.failFor.add(failingMessage.to);
    const failing = await record(failingMessage, 2);
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    // A quarter of attempt 2's 60 s.
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 15, succeeded: true },
    ]);
  });

  it('makes a message visible at once after its last attempt, so redrive moves it to the DLQ', async () => {
    const { transport, audits, run } = setup();
    const message = welcome();
    transport.failFor.add(message.to);
    const last = await record(message, 3);
    expect((await run(last)).batchItemFailures).toHaveLength(1);
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: last.receiptHandle, VisibilityTimeout: 0, succeeded: true },
    ]);
    // Visible at once, and received 3 times (the queue's maxReceiveCount): the next receive redrives it.
    expect(await queues.receivableNow(last)).toEqual([]);
    const redriven = await queues.deadLetters([last.body]);
    expect(redriven).toHaveLength(1);
    // Moved by SQS, not copied by the worker: no dead-letter reason of its own.
    expect(redriven[0]?.MessageAttributes?.['bulwark-dead-letter-reason']).toBeUndefined();
    expect(audits[0]).toMatchObject({
      eventType: 'email.failed',
      outcome: 'error',
      metadata: { attempt: 3, last: true },
    });
  });

  it('logs why a send failed by error name and codes, masking the recipient the relay quoted', async () => {
    const { transport, run, logger } = setup();
    const message = welcome('ada.lovelace@example.com');
    transport.failFor.add(message.to);
    transport.failure = Object.assign(
      new Error(
        `Can't send mail - all recipients were rejected: 450 4.2.0 <${message.to}>: Recipient address rejected: Greylisted`,
      ),
      { code: 'EENVELOPE', responseCode: 450 },
    );
    const warn = vi.spyOn(logger, 'warn');
    expect((await run(await record(message))).batchItemFailures).toHaveLength(1);
    expect(warn).toHaveBeenCalledWith(
      'Email send failed',
      expect.objectContaining({
        errorName: 'Error',
        errorCode: 'EENVELOPE',
        responseCode: 450,
        reason: expect.stringContaining('450 4.2.0 <[email]>: Recipient address rejected'),
      }),
    );
    expect(JSON.stringify(warn.mock.calls)).not.toContain('lovelace');
  });

  it('still fails the record when its visibility cannot be changed', async () => {
    // The record is a real receive, but by the time the worker backs it off SQS is down.
    const { transport, run, logger } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      sqs: unreachableSqsClient(),
    });
    const warn = vi.spyOn(logger, 'warn');
    const message = welcome();
    transport.failFor.add(message.to);
    const failing = await record(message);
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    expect(warn).toHaveBeenCalledWith(
      'Could not change message visibility',
      expect.objectContaining({ correlation_id: 'corr-123' }),
    );
  });

  it('copies an invalid message to the DLQ once with its reason and reports it processed', async () => {
    const { transport, audits, run, logger } = setup();
    const error = vi.spyOn(logger, 'error');
    const bad = await record({ id: randomUUID(), type: 'fax', to: 'x@example.com', data: {} });
    expect(await run(bad)).toEqual({ batchItemFailures: [] });
    expect(error).toHaveBeenCalledWith(
      'Email message rejected and dead-lettered',
      expect.objectContaining({ correlation_id: 'corr-123', sqsMessageId: bad.messageId }),
    );
    expect(transport.sent).toEqual([]);
    // What landed in the DLQ: one copy, with the correlation id carried over and the reason added.
    const copies = await queues.deadLetters();
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({
      Body: bad.body,
      MessageAttributes: {
        'x-correlation-id': { DataType: 'String', StringValue: 'corr-123' },
        'bulwark-dead-letter-reason': { DataType: 'String', StringValue: expect.stringContaining('type') },
      },
    });
    expect(audits).toEqual([expect.objectContaining({ eventType: 'email.rejected', outcome: 'failure' })]);
  });

  it.each([
    [
      'a javascript: link',
      {
        type: 'verification',
        data: { name: 'Ada', verificationUrl: 'javascript:alert(1)//', expiresAt: '2030-01-01T00:00:00Z' },
      },
      'data.verificationUrl: Must be an absolute https URL, or http to localhost, 127.0.0.1 or ::1',
    ],
    [
      'an http: link to a host other than loopback (a mis-set APP_BASE_URL)',
      {
        type: 'password-reset',
        data: { name: 'Ada', resetUrl: 'http://api.example.com/reset?t=1', expiresInMinutes: 30 },
      },
      'data.resetUrl: Must be an absolute https URL, or http to localhost, 127.0.0.1 or ::1',
    ],
    [
      'a CR-LF in the subject',
      {
        type: 'security-alert',
        data: {
          name: 'Ada',
          event: 'New sign-in\r\nBcc: x@example.com',
          occurredAt: '2030-01-01T00:00:00Z',
          details: 'From 203.0.113.9',
        },
      },
      'data.event: Must not contain control, line separator or bidi characters',
    ],
  ])(
    'dead-letters a message with %s as invalid, counted as failed, and sends nothing',
    async (_what, message, reason) => {
      const { transport, audits, run, metrics } = setup();
      const bad = await record({ id: randomUUID(), to: `u-${randomUUID()}@example.com`, ...message });
      expect(await run(bad)).toEqual({ batchItemFailures: [] });
      expect(transport.sent).toEqual([]);
      expect(await deadLetterReasons([bad.body])).toEqual([`Invalid message: ${reason}`]);
      expect(storedMetric(metrics, 'EmailFailed')).toBe(1);
      expect(audits).toEqual([
        expect.objectContaining({
          eventType: 'email.rejected',
          outcome: 'failure',
          metadata: expect.objectContaining({
            reason: 'invalid_message',
            detail: `Invalid message: ${reason}`,
          }),
        }),
      ]);
    },
  );

  it('cuts a long dead-letter reason to 1024 characters, never between the halves of a surrogate pair', async () => {
    const { transport, run } = setup();
    const message = welcome();
    transport.failFor.add(message.to);
    // The reason is `smtp refused the message for good (<code>)`; the emoji's first half is its 1024th unit.
    const prefix = 'smtp refused the message for good (';
    const providerCode = `${'x'.repeat(1023 - prefix.length)}\u{1F600} rest`;
    transport.failure = new DeliveryRejectedError('smtp', providerCode);
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(await deadLetterReasons()).toEqual([`${prefix}${'x'.repeat(1023 - prefix.length)}`]);
  });

  it('escapes the characters SQS refuses in an attribute when the reason quotes them from its cause', async () => {
    const { transport, run } = setup();
    const message = welcome();
    transport.failFor.add(message.to);
    // The provider's code is quoted in the reason: U+0001, U+FFFF and a lone surrogate.
    transport.failure = new DeliveryRejectedError('smtp', 'k\u0001\uffff\ud800😀');
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    const [reason] = await deadLetterReasons();
    expect(reason).toContain('k\\u0001\\uffff\\ud800😀');
    expect(sqsAttributeText(reason as string)).toBe(reason);
  });

  it('retries an invalid message normally when the DLQ cannot take it, so it is never lost', async () => {
    const { run } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      sqs: unreachableSqsClient(),
    });
    const bad = await record('not json');
    expect((await run(bad)).batchItemFailures).toEqual([{ itemIdentifier: bad.messageId }]);
    expect(await queues.deadLetters()).toEqual([]);
  });

  it('dead-letters a message whose template needs a variable the message lacks', async () => {
    const welcomeText = compileTemplate('welcome.txt', 'Hello {{name}}, your code is {{code}}');
    const { transport, audits, run } = setup(
      new EmailTemplates({ ...precompiledTemplateSet(), 'welcome.txt': welcomeText }),
    );
    const unrenderable = await record(welcome());
    expect(await run(unrenderable)).toEqual({ batchItemFailures: [] });
    expect(transport.sent).toEqual([]);
    expect(await deadLetterReasons([unrenderable.body])).toEqual([
      expect.stringContaining('"code" not defined'),
    ]);
    expect(audits[0]).toMatchObject({ eventType: 'email.rejected' });
  });

  it('sends, not dead-letters, a verification email queued before it carried its lapse time', async () => {
    const { transport, run } = setup();
    const message = {
      id: randomUUID(),
      type: 'verification',
      to: `u-${randomUUID()}@example.com`,
      data: {
        name: 'Ada',
        verificationUrl: 'https://example.com/verify?t=1',
        expiresAt: '2030-01-01T00:00:00Z',
      },
    };
    const queued = await record(message);
    expect(await run(queued)).toEqual({ batchItemFailures: [] });
    expect(await deadLetterReasons([queued.body])).toEqual([]);
    expect(transport.sent.map((email) => email.to)).toEqual([message.to]);
    expect(transport.sent[0]?.text).toContain(
      'The link works until 1 January 2030, 00:00 UTC. If it has expired, opening it lets you ask for a new one.\nIf you do not confirm your address, this registration may be removed.\n',
    );
  });
});

describe('the email worker when the relay refuses recipients for good', () => {
  let server: SMTPServer;
  let transport: SmtpEmailTransport;
  const delivered: string[] = [];
  beforeAll(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(address, _session, callback) {
        if (!address.address.startsWith('nobody')) return callback();
        callback(
          Object.assign(new Error(`5.1.1 <${address.address}>: Recipient address rejected: User unknown`), {
            responseCode: 550,
          }),
        );
      },
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          delivered.push(...session.envelope.rcptTo.map((recipient) => recipient.address));
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    transport = new SmtpEmailTransport({
      host: '127.0.0.1',
      port: (server.server.address() as AddressInfo).port,
    });
  });
  afterAll(async () => {
    transport.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('drops each message whose recipient is refused at its first attempt, without the DLQ, and the circuit stays closed for the rest', async () => {
    const { observability, audits } = testObservability('email-worker');
    const worker = new EmailWorker({
      transport,
      templates: new EmailTemplates(),
      // As handler.ts builds it; 5 counted failures would open it.
      breaker: testProviderBreaker(dynamoDb, 'email-test'),
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability,
    });
    const info = vi.spyOn(observability.logger, 'info');
    const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
    const messages = Array.from({ length: 5 }, (_, index) => welcome(`nobody${index}@example.com`));
    for (const message of messages) {
      expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    }
    expect(queues.visibilityChanges()).toEqual([]);
    // Nothing for the DLQ alarm to page on, and no address kept for 14 days.
    expect(await queues.deadLetters()).toEqual([]);
    expect(storedMetric(observability.metrics, 'EmailRejected')).toEqual(Array(5).fill(1));
    expect(storedMetric(observability.metrics, 'EmailFailed')).toBeUndefined();
    expect(audits).toEqual(
      messages.map((message) =>
        expect.objectContaining({
          eventType: 'email.undeliverable',
          outcome: 'failure',
          correlationId: 'corr-123',
          metadata: {
            messageId: message.id,
            type: 'welcome',
            provider: 'smtp',
            providerCode: 'EENVELOPE',
            responseCode: 550,
            reason: 'recipient_refused',
          },
        }),
      ),
    );
    expect(info).toHaveBeenCalledWith(
      'Email dropped: the provider refused its recipient',
      expect.objectContaining({ correlation_id: 'corr-123', messageId: messages[0]?.id, responseCode: 550 }),
    );
    expect(JSON.stringify([audits, info.mock.calls])).not.toContain('nobody');
    expect(await run(await record(welcome('ada@example.com')))).toEqual({ batchItemFailures: [] });
    expect(delivered).toEqual(['ada@example.com']);
  });

  it('drops a message whose recipient is refused once even when its in-progress record could not be deleted', async () => {
    const { observability, audits } = testObservability('email-worker');
    const worker = new EmailWorker({
      transport,
      templates: new EmailTemplates(),
      breaker: testProviderBreaker(dynamoDb, 'email-test'),
      ...throttledDelete(),
      observability,
    });
    const refused = await record(welcome(`nobody-${randomUUID()}@example.com`));
    expect(await worker.handle({ Records: [refused] } as SQSEvent, context)).toEqual({
      batchItemFailures: [],
    });
    expect(queues.visibilityChanges()).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(storedMetric(observability.metrics, 'EmailRejected')).toBe(1);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.undeliverable',
        metadata: expect.objectContaining({ reason: 'recipient_refused' }),
      }),
    ]);
  });

  it('still dead-letters a message the provider refused as a whole (SES MessageRejected): it may be ours', async () => {
    const { observability, audits } = testObservability('email-worker');
    const ses = mockClient(SESv2Client);
    ses
      .on(SendEmailCommand)
      .rejects(Object.assign(new Error('Message rejected: content'), { name: 'MessageRejected' }));
    const worker = new EmailWorker({
      transport: new SesEmailTransport(new SESv2Client({ region: 'us-east-1' })),
      templates: new EmailTemplates(),
      breaker: testProviderBreaker(dynamoDb, 'email-test'),
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability,
    });
    const refused = await record(welcome());
    expect(await worker.handle({ Records: [refused] } as SQSEvent, context)).toEqual({
      batchItemFailures: [],
    });
    expect(await deadLetterReasons()).toEqual(['ses refused the message for good (MessageRejected)']);
    expect(storedMetric(observability.metrics, 'EmailRejected')).toBeUndefined();
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.rejected',
        metadata: expect.objectContaining({ reason: 'delivery_rejected' }),
      }),
    ]);
    ses.restore();
  });
});

describe('batches handled at once by one worker', () => {
  it("writes each batch's in-progress records to expire with its own invocation", async () => {
    const queueOptions = emailWorkerQueueOptions(dynamoDb, queues);
    const { worker } = setup(new EmailTemplates(), queueOptions);
    const long = welcome();
    const short = welcome();
    const records = [await record(long), await record(short)] as const;
    const { failures, remainingMsById } = await handleTwoBatchesAtOnce(
      worker,
      queueOptions.persistenceStore,
      context,
      records,
    );
    expect(failures).toEqual([[], []]);
    expect(remainingMsById).toEqual({ [long.id]: 900_000, [short.id]: 40_000 });
  });
});

describe("a message's correlation id", () => {
  it('is on the log lines and circuit events of its send, each record of a parallel batch naming its own', async () => {
    const { observability, audits } = testObservability('email-worker');
    const audited = auditingSecurityEvents(observability);
    const transport = new RecordingTransport();
    const worker = new EmailWorker({
      transport,
      templates: new EmailTemplates(),
      // As handler.ts builds it (the function's listener on the breaker), opened by one failure.
      breaker: testProviderBreaker(dynamoDb, 'email-test', { failureThreshold: 1, onEvent: audited.onEvent }),
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability: audited,
    });
    const warn = vi.spyOn(observability.logger, 'warn');
    const info = vi.spyOn(observability.logger, 'info');
    const traced = (correlationId: string) => {
      const message = welcome();
      transport.failFor.add(message.to);
      return queues.receivedRecord(message, { attributes: { 'x-correlation-id': correlationId } });
    };
    const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
    await run(await traced('trace-opens'));
    // The open circuit turns both away, at the same time.
    await run(await traced('trace-b'), await traced('trace-c'));

    const circuitEvents = audits
      .filter((event) => event.eventType.startsWith('circuit.'))
      .map((event) => [event.eventType, event.correlationId]);
    expect(circuitEvents).toHaveLength(3);
    expect(circuitEvents).toEqual(
      expect.arrayContaining([
        ['circuit.opened', 'trace-opens'],
        ['circuit.rejected', 'trace-b'],
        ['circuit.rejected', 'trace-c'],
      ]),
    );
    const correlationIdsOf = (calls: unknown[][], line: string) =>
      calls
        .filter(([message]) => message === line)
        .map(([, fields]) => (fields as { correlation_id?: string }).correlation_id)
        .sort();
    expect(correlationIdsOf(warn.mock.calls, 'Email send failed')).toEqual(['trace-opens']);
    expect(correlationIdsOf(info.mock.calls, 'Email deferred: its provider circuit is open')).toEqual([
      'trace-b',
      'trace-c',
    ]);
  });
});

describe('a message about a user', () => {
  // The real users model on the test app table: the user is registered, and deleted as the admin route does.
  const users = new UsersModel(
    createDocumentClient(dynamoDb),
    testTableNames.app,
    createFunctionEncryptor(readEnvironment()),
  );
  const register = () => users.register({ email: `u-${randomUUID()}@example.com`, name: 'Gina' });
  const about = (user: { id: string; email: string }) => ({ ...welcome(user.email), userId: user.id });

  /**
   * All a dropped message leaves: processed (so SQS deletes it), nothing sent, not retried, not
   * dead-lettered, counted once as EmailSkipped, one email.skipped audit line and one log line naming why,
   * by ids only: neither the address nor the name reaches a log or audit line.
   */
  async function expectDroppedUnsent(
    { transport, audits, metrics }: Pick<ReturnType<typeof setup>, 'transport' | 'audits' | 'metrics'>,
    info: { mock: { calls: unknown[][] } },
    dropped: {
      readonly message: { readonly id: string; readonly type: string };
      readonly user: { readonly id: string; readonly email: string };
      readonly reason: string;
      readonly logged: string;
    },
  ) {
    expect(transport.sent).toEqual([]);
    expect(queues.visibilityChanges()).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(storedMetric(metrics, 'EmailSkipped')).toBe(1);
    expect(storedMetric(metrics, 'EmailSent')).toBeUndefined();
    expect(storedMetric(metrics, 'EmailFailed')).toBeUndefined();
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.skipped',
        outcome: 'success',
        correlationId: 'corr-123',
        userId: dropped.user.id,
        metadata: { messageId: dropped.message.id, type: dropped.message.type, reason: dropped.reason },
      }),
    ]);
    expect(info).toHaveBeenCalledWith(`Email dropped: ${dropped.logged}`, {
      correlation_id: 'corr-123',
      messageId: dropped.message.id,
      userId: dropped.user.id,
    });
    expect(JSON.stringify([info.mock.calls, audits])).not.toMatch(new RegExp(`${dropped.user.email}|Gina`));
  }

  it('is dropped unsent once its user was deleted: processed (so SQS deletes it), not retried, not dead-lettered, counted and audited by id', async () => {
    const worker = setup();
    const info = vi.spyOn(worker.logger, 'info');
    const user = await register();
    const message = about(user);
    const queued = await record(message);
    await users.delete(user.id);
    expect(await worker.run(queued)).toEqual({ batchItemFailures: [] });
    await expectDroppedUnsent(worker, info, {
      message,
      user,
      reason: 'user_deleted',
      logged: 'its user was deleted',
    });
  });

  it('is dropped unsent once its registration lapsed unverified, audited with that reason, not as a deletion', async () => {
    const worker = setup();
    const info = vi.spyOn(worker.logger, 'info');
    const lapsing = await register();
    const message = about(lapsing);
    const queued = await record(message);
    // Past the registration's expiry, before TTL deletes its item.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse(lapsing.expiresAt ?? '') + 1000 });
    try {
      expect(await worker.run(queued)).toEqual({ batchItemFailures: [] });
    } finally {
      vi.useRealTimers();
    }
    await expectDroppedUnsent(worker, info, {
      message,
      user: lapsing,
      reason: 'registration_lapsed',
      logged: "its user's registration lapsed unverified",
    });
  });

  it('is sent as before while its user exists, its email.sent line naming the user', async () => {
    const { transport, audits, run, metrics } = setup();
    const user = await register();
    const message = about(user);
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(transport.sent.map((email) => email.to)).toEqual([user.email]);
    expect(storedMetric(metrics, 'EmailSent')).toBe(1);
    expect(storedMetric(metrics, 'EmailSkipped')).toBeUndefined();
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.sent',
        userId: user.id,
        metadata: { messageId: message.id, type: message.type, transport: 'smtp' },
      }),
    ]);
  });

  /** A verification email about `user`, as the users function queues one (registration or a new link). */
  const verificationAbout = (user: { id: string; email: string }) => ({
    id: randomUUID(),
    type: 'verification',
    to: user.email,
    userId: user.id,
    data: {
      name: 'Gina',
      verificationUrl: `https://example.com/users/${user.id}/verify?t=1`,
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    },
  });

  it('is dropped unsent when it is a verification email and the address was verified after it was queued, counted and audited as already verified', async () => {
    const worker = setup();
    const info = vi.spyOn(worker.logger, 'info');
    const user = await register();
    const message = verificationAbout(user);
    const queued = await record(message);
    // The old link used while the new one waits in the queue.
    await users.verifyEmail(user.id);
    expect(await worker.run(queued)).toEqual({ batchItemFailures: [] });
    await expectDroppedUnsent(worker, info, {
      message,
      user,
      reason: 'already_verified',
      logged: "its user's address is already verified",
    });
  });

  it('is sent when it is a verification email and the address is not verified yet', async () => {
    const { transport, audits, run, metrics } = setup();
    const user = await register();
    const message = verificationAbout(user);
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(transport.sent.map((email) => [email.to, email.subject])).toEqual([
      [user.email, 'Verify your email address'],
    ]);
    expect(storedMetric(metrics, 'EmailSkipped')).toBeUndefined();
    expect(audits.map((audit) => audit.eventType)).toEqual(['email.sent']);
  });

  it('is sent when it is not a verification email, to a verified user too', async () => {
    const { transport, run } = setup();
    const user = await register();
    await users.verifyEmail(user.id);
    expect(await run(await record(about(user)))).toEqual({ batchItemFailures: [] });
    expect(transport.sent.map((email) => email.to)).toEqual([user.email]);
  });

  it('is sent as before when it names no user (queued before messages carried one)', async () => {
    const { transport, run } = setup();
    const message = welcome();
    expect(message).not.toHaveProperty('userId');
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(transport.sent.map((email) => email.to)).toEqual([message.to]);
  });

  it('is neither sent nor dropped when DynamoDB cannot tell whether its user exists: the attempt fails and backs off', async () => {
    // A real client to a DynamoDB that is down: nothing listens on 127.0.0.1:1.
    const unreachable = createDocumentClient(
      createDynamoDbClient({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 }),
    );
    const { transport, audits, run, logger, metrics } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      userState: (userId) => userItemState(unreachable, testTableNames.app, userId),
    });
    const warn = vi.spyOn(logger, 'warn');
    const user = await register();
    const failing = await record(about(user));
    expect(await run(failing)).toEqual({ batchItemFailures: [{ itemIdentifier: failing.messageId }] });
    expect(transport.sent).toEqual([]);
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 30, succeeded: true },
    ]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(storedMetric(metrics, 'EmailFailed')).toBe(1);
    expect(storedMetric(metrics, 'EmailSkipped')).toBeUndefined();
    expect(warn).toHaveBeenCalledWith(
      'Email not sent: could not check that its user still exists',
      expect.objectContaining({
        correlation_id: 'corr-123',
        userId: user.id,
        step: 'user_check',
        attempt: 1,
        delaySec: 30,
      }),
    );
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.failed',
        outcome: 'error',
        userId: user.id,
        metadata: expect.objectContaining({ step: 'user_check', attempt: 1, last: false }),
      }),
    ]);
    // Its retry, with DynamoDB back, sends it: nothing of the failed check was remembered as sent.
    const { transport: retried, run: retry } = setup();
    expect(await retry(await queues.redelivered(failing))).toEqual({ batchItemFailures: [] });
    expect(retried.sent.map((email) => email.to)).toEqual([user.email]);
  });

  it("is checked with one read per user and batch: a registration's messages share it, the next batch reads again", async () => {
    // A pass-through spy on the client handler.ts reads users with: every GetItem that reaches the store.
    const documentClient = createDocumentClient(dynamoDb);
    const send = vi.spyOn(documentClient, 'send');
    const userReads = () =>
      send.mock.calls.filter(([command]) => command.constructor.name === 'GetCommand').length;
    const { transport, run } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      userState: (userId) => userItemState(documentClient, testTableNames.app, userId),
    });
    const [ada, grace] = [await register(), await register()];
    // Three messages about one user (as a registration with a phone queues), one about another.
    const batch: SQSRecord[] = [];
    for (const user of [ada, ada, ada, grace]) batch.push(await record(about(user)));
    expect(await run(...batch)).toEqual({ batchItemFailures: [] });
    expect(transport.sent).toHaveLength(4);
    expect(userReads()).toBe(2);
    // A later batch reads again: a user deleted meanwhile is seen.
    await users.delete(ada.id);
    expect(await run(await record(about(ada)))).toEqual({ batchItemFailures: [] });
    expect(userReads()).toBe(3);
    expect(transport.sent).toHaveLength(4);
  });

  it('backs off every message of a batch about a user whose one read failed', async () => {
    const unreachable = createDocumentClient(
      createDynamoDbClient({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 }),
    );
    const send = vi.spyOn(unreachable, 'send');
    const { transport, run, metrics } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      userState: (userId) => userItemState(unreachable, testTableNames.app, userId),
    });
    const user = await register();
    const batch = [await record(about(user)), await record(about(user))];
    expect((await run(...batch)).batchItemFailures).toHaveLength(2);
    expect(send).toHaveBeenCalledTimes(1);
    expect(transport.sent).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(storedMetric(metrics, 'EmailFailed')).toEqual([1, 1]);
  });

  it("is checked with one consistent GetItem that reads back the user's key, expiry and verification time alone", async () => {
    // A pass-through spy: dynalite answers every read consistently, so only the command shows the read asked for it.
    const documentClient = createDocumentClient(dynamoDb);
    const send = vi.spyOn(documentClient, 'send');
    const user = await register();
    expect(await userItemState(documentClient, testTableNames.app, user.id)).toBe('unverified');
    await users.delete(user.id);
    expect(await userItemState(documentClient, testTableNames.app, user.id)).toBe('deleted');
    // A registration whose email was not verified in time is gone too, before TTL deletes its item.
    const lapsing = await register();
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse(lapsing.expiresAt ?? '') + 1000 });
    try {
      expect(await userItemState(documentClient, testTableNames.app, lapsing.id)).toBe('lapsed');
    } finally {
      vi.useRealTimers();
    }
    const verifying = await register();
    await users.verifyEmail(verifying.id);
    expect(await userItemState(documentClient, testTableNames.app, verifying.id)).toBe('verified');

    const read = (id: string) => ({
      TableName: testTableNames.app,
      Key: userKey(id),
      ConsistentRead: true,
      ProjectionExpression: 'pk, expiresAt, emailVerifiedAt',
    });
    expect(send.mock.calls.map(([command]) => [command.constructor.name, command.input])).toEqual([
      ['GetCommand', read(user.id)],
      ['GetCommand', read(user.id)],
      ['GetCommand', read(lapsing.id)],
      ['GetCommand', read(verifying.id)],
    ]);
    // Nothing of the user but the key, its lapse and its verification time left the table: no encrypted
    // address or name to hold.
    expect((await send.mock.results[0]?.value)?.Item).toEqual({
      pk: userKey(user.id).pk,
      expiresAt: expect.any(Number),
    });
    expect((await send.mock.results[3]?.value)?.Item).toEqual({
      pk: userKey(verifying.id).pk,
      emailVerifiedAt: expect.any(String),
    });
  });
});

describe("SQS's 12 hours from the receive", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shortens a 12-hour backoff by the time since the receive and a minute, so SQS does not reject it', async () => {
    const { transport, run } = setup(new EmailTemplates(), {
      ...emailWorkerQueueOptions(dynamoDb, queues),
      retryBaseDelaySec: 43_200,
    });
    // The send fails 100 s into the invocation.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.spyOn(transport, 'send').mockImplementationOnce(async () => {
      vi.setSystemTime(Date.now() + 100_000);
      throw new Error('connection refused');
    });
    const failing = await record(welcome());
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    // 43200 − 100 s since the receive − the 60 s margin.
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 43_040, succeeded: true },
    ]);
  });
});

describe('retry delays', () => {
  it('double after each failed attempt and stop at SQS maximum visibility', () => {
    expect([1, 2, 3].map((attempt) => retryDelaySec(attempt, 30))).toEqual([30, 60, 120]);
    expect(retryDelaySec(40, 30)).toBe(43_200);
  });
});

describe('a dead-letter reason as an SQS attribute', () => {
  it('keeps what SQS takes and writes the rest as \\uXXXX', () => {
    const allowed = 'tab\there\nline\r\u0020~\u00e9\ud7ff\ue000\ufffd😀\u{10ffff}';
    expect(sqsAttributeText(allowed)).toBe(allowed);
    expect(sqsAttributeText('a\u0000b\u0008\u000b\u001f\ufffe\uffff\udc00\ud800x')).toBe(
      'a\\u0000b\\u0008\\u000b\\u001f\\ufffe\\uffff\\udc00\\ud800x',
    );
  });
});
