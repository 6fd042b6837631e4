import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InternalErrorException,
  InvalidParameterException,
  InvalidParameterValueException,
  PublishCommand,
  SNSClient,
  ThrottledException,
} from '@aws-sdk/client-sns';
// SNS is the one AWS client mocked here (the project allows it for SMS); SQS is a real local-aws-sqs.
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { EmailWorker } from '../../functions/email-worker/email-worker.js';
import {
  parseEmailMessage,
  parseQueueMessage,
  smsCodeExpired,
} from '../../functions/email-worker/messages.js';
import {
  OutboxSmsTransport,
  type OutgoingSms,
  type SmsTransport,
  SnsSmsTransport,
} from '../../functions/email-worker/sms-transports.js';
import { EmailTemplates, maxSmsLength } from '../../functions/email-worker/templates.js';
import type { EmailTransport, OutgoingEmail } from '../../functions/email-worker/transports.js';
import { readQueueEnvironment } from '../../functions/shared/environment.js';
import { userKey } from '../../functions/shared/keys.js';
import { RegistrationEmails } from '../../functions/users/registration-emails.js';
import type { IssuedPhoneCode } from '../../functions/users/users-model.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import {
  ConflictError,
  DeliveryRejectedError,
  NotFoundError,
  TooManyRequestsError,
} from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { auditingSecurityEvents, storedMetric, testObservability } from '../helpers/observability.js';
import { testTableNames } from '../helpers/tables.js';
import { emailWorkerQueueOptions, testProviderBreaker, testProviderTimeoutMs } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const outboxDir = mkdtempSync(join(tmpdir(), 'bulwark-sms-test-'));
afterAll(() => rmSync(outboxDir, { recursive: true, force: true }));

// A real local-aws-sqs with the email queue and its DLQ: the worker's records are received from it, and
// the producer's messages land in it.
let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

/** An SMS code's data as the users function queues it: the code and when it expires, `inMs` from now. */
const codeExpiringIn = (inMs: number) => ({
  code: '042917',
  expiresAt: new Date(Date.now() + inMs).toISOString(),
});

/** An SMS code's data as producers queued it before `expiresAt`: the minutes left when queued. */
const codeQueuedBeforeExpiresAt = { code: '042917', expiresInMinutes: 10 };

const sms = (overrides: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  type: 'sms',
  to: '+14155552671',
  template: 'sms-verification',
  data: codeExpiringIn(10 * 60_000),
  ...overrides,
});

class RecordingSms implements SmsTransport {
  readonly name = 'outbox';
  readonly sent: OutgoingSms[] = [];
  failing = false;
  failure = new Error('SNS throttled');
  async send(message: OutgoingSms): Promise<string> {
    if (this.failing) throw this.failure;
    this.sent.push(message);
    return `sms-${this.sent.length}`;
  }
  close(): void {}
}

class RecordingEmail implements EmailTransport {
  readonly name = 'smtp';
  readonly sent: OutgoingEmail[] = [];
  async send(email: OutgoingEmail): Promise<string> {
    this.sent.push(email);
    return 'email-1';
  }
  close(): void {}
}

const context = {
  functionName: 'bulwark-email-worker',
  awsRequestId: 'req-sms',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

/** The message sent to the email queue and received `receiveCount` times: that receive's record. */
const record = (body: unknown, receiveCount = 1): Promise<SQSRecord> =>
  queues.receivedRecord(body, { receiveCount });

const breaker = (name: string) =>
  new CircuitBreaker<string>({
    name: `${name}-${randomUUID()}`,
    tableName: testTableNames.toolkit,
    client: dynamoDb,
    timeoutMs: testProviderTimeoutMs,
  });

function setup(options: { withSms?: boolean } = {}) {
  const smsTransport = new RecordingSms();
  const emailTransport = new RecordingEmail();
  const { observability, audits } = testObservability('email-worker');
  const worker = new EmailWorker({
    transport: emailTransport,
    templates: new EmailTemplates(),
    breaker: breaker('email-test'),
    ...(options.withSms === false ? {} : { sms: { transport: smsTransport, breaker: breaker('sms-test') } }),
    ...emailWorkerQueueOptions(dynamoDb, queues),
    observability,
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return {
    smsTransport,
    emailTransport,
    audits,
    run,
    logger: observability.logger,
    metrics: observability.metrics,
  };
}

/** The dead-letter reasons of the copies in the DLQ (read and removed). */
async function deadLetterReasons(): Promise<string[]> {
  return (await queues.deadLetters()).map(
    (message) => message.MessageAttributes?.['bulwark-dead-letter-reason']?.StringValue ?? '',
  );
}

describe('sms messages', () => {
  it('accepts a verification code to an E.164 number, and one queued before expiresAt existed', async () => {
    for (const message of [sms(), sms({ data: codeQueuedBeforeExpiresAt })]) {
      expect(await parseQueueMessage(JSON.stringify(message))).toEqual({ ok: true, message });
    }
  });

  it.each([
    ['4155552671', 'no leading +'],
    ['+1 415 555 2671', 'spaces'],
    ['+1-415-555-2671', 'dashes'],
    ['+1415555267', 'too short for its plan'],
    ['+999999', 'no such country'],
    ['+14155552671x', 'trailing junk'],
    ['+0014155552671', 'international prefix'],
    ['+1234567890123456', 'longer than 15 digits'],
    ['ada@example.com', 'an email address'],
  ])('rejects %s (%s) with a reason naming `to`, not the number', async (to) => {
    const parsed = await parseQueueMessage(JSON.stringify(sms({ to })));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.reason).toMatch(/^Invalid message: to: .*Must be a possible phone number in E\.164 form/);
    // The reason quotes an example number, never the rejected one.
    expect(parsed.reason.replace('e.g. +14155552671', '')).not.toContain(to);
  });

  it('rejects codes that are not 6 digits, unknown templates and extra fields', async () => {
    for (const [overrides, field] of [
      [{ data: { code: '12345', expiresInMinutes: 10 } }, /data\.code/],
      [{ data: { code: '12a456', expiresInMinutes: 10 } }, /data\.code/],
      [
        { data: { code: '123456' } },
        /^Invalid message: data: Must have expiresAt, or expiresInMinutes in a message queued before expiresAt existed, not both$/,
      ],
      [
        { data: { ...codeExpiringIn(60_000), expiresInMinutes: 10 } },
        /^Invalid message: data: Must have expiresAt, or expiresInMinutes in a message queued before expiresAt existed, not both$/,
      ],
      [
        { data: codeExpiringIn(61 * 60_000) },
        /^Invalid message: data\.expiresAt: Must be at most 60 minutes ahead$/,
      ],
      [{ data: { code: '123456', expiresAt: 'in ten minutes' } }, /^Invalid message: data\.expiresAt: /],
      [{ data: { code: '123456', expiresInMinutes: 10, extra: 1 } }, /data/],
      [{ template: 'promo' }, /template/],
      [{ subject: 'hi' }, /subject|\(root\)/],
    ] as const) {
      const parsed = await parseQueueMessage(JSON.stringify(sms(overrides)));
      expect(parsed.ok, JSON.stringify(overrides)).toBe(false);
      if (!parsed.ok) expect(parsed.reason).toMatch(field);
    }
  });

  it('is not an email: the email-only parser refuses it', () => {
    expect(parseEmailMessage(JSON.stringify(sms())).ok).toBe(false);
  });

  it('renders the minutes its code has left when it is rendered, not when it was queued, at least one', async () => {
    const queuedAt = Date.now();
    const parsed = await parseQueueMessage(JSON.stringify(sms()));
    if (!parsed.ok || parsed.message.type !== 'sms') throw new Error('expected an sms');
    const expiresAt = Date.parse(parsed.message.data.expiresAt as string);
    const text = (lifetime: string) =>
      `Your Bulwark verification code is 042917. It expires in ${lifetime}. Never share it: Bulwark will not ask you for it.`;
    const templates = new EmailTemplates();
    expect(templates.renderSms(parsed.message, queuedAt)).toBe(text('10 minutes'));
    expect(templates.renderSms(parsed.message, expiresAt - 3 * 60_000 - 20_000)).toBe(text('3 minutes'));
    expect(templates.renderSms(parsed.message, expiresAt - 20_000)).toBe(text('1 minute'));
  });

  it('calls a code expired from its expiresAt on, and a message queued before expiresAt existed never', async () => {
    const parsed = await parseQueueMessage(JSON.stringify(sms()));
    const queuedBefore = await parseQueueMessage(JSON.stringify(sms({ data: codeQueuedBeforeExpiresAt })));
    if (!parsed.ok || parsed.message.type !== 'sms') throw new Error('expected an sms');
    if (!queuedBefore.ok || queuedBefore.message.type !== 'sms') throw new Error('expected an sms');
    const expiresAt = Date.parse(parsed.message.data.expiresAt as string);
    expect(smsCodeExpired(parsed.message, expiresAt - 1)).toBe(false);
    expect(smsCodeExpired(parsed.message, expiresAt)).toBe(true);
    expect(smsCodeExpired(queuedBefore.message, Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it.each([
    [10, '10 minutes'],
    [1, '1 minute'],
  ])(
    'renders a message queued before expiresAt existed with the minutes it was queued with (%i)',
    async (minutes, lifetime) => {
      const parsed = await parseQueueMessage(
        JSON.stringify(sms({ data: { code: '042917', expiresInMinutes: minutes } })),
      );
      if (!parsed.ok || parsed.message.type !== 'sms') throw new Error('expected an sms');
      const text = new EmailTemplates().renderSms(parsed.message);
      expect(text).toBe(
        `Your Bulwark verification code is 042917. It expires in ${lifetime}. Never share it: Bulwark will not ask you for it.`,
      );
      expect(text.length).toBeLessThanOrEqual(maxSmsLength);
    },
  );
});

describe('the SNS transport', () => {
  it('publishes a Transactional SMS to the phone number and returns the SNS message id', async () => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).resolves({ MessageId: 'sns-1' });
    const transport = new SnsSmsTransport(new SNSClient({ region: 'us-east-1' }));
    expect(await transport.send({ to: '+14155552671', text: 'Code 123456', messageId: 'm-1' })).toBe('sns-1');
    expect(sns.commandCalls(PublishCommand)[0]?.args[0].input).toEqual({
      PhoneNumber: '+14155552671',
      Message: 'Code 123456',
      MessageAttributes: { 'AWS.SNS.SMS.SMSType': { DataType: 'String', StringValue: 'Transactional' } },
    });
    transport.close();
    sns.restore();
  });

  it('adds the sender id when configured', async () => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).resolves({});
    const transport = new SnsSmsTransport(new SNSClient({ region: 'us-east-1' }), { senderId: 'Bulwark' });
    expect(await transport.send({ to: '+33612345678', text: 'x', messageId: 'm-2' })).toBe('');
    expect(sns.commandCalls(PublishCommand)[0]?.args[0].input.MessageAttributes).toEqual({
      'AWS.SNS.SMS.SMSType': { DataType: 'String', StringValue: 'Transactional' },
      'AWS.SNS.SMS.SenderID': { DataType: 'String', StringValue: 'Bulwark' },
    });
    sns.restore();
  });

  it('passes SNS errors on, so the attempt counts as failed', async () => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).rejects(new Error('Throttling'));
    const transport = new SnsSmsTransport(new SNSClient({ region: 'us-east-1' }));
    await expect(transport.send({ to: '+14155552671', text: 'x', messageId: 'm-3' })).rejects.toThrow(
      'Throttling',
    );
    sns.restore();
  });

  it.each([
    new InvalidParameterException({
      message: 'Invalid parameter: PhoneNumber Reason: +14155550123 is not valid to publish to',
      $metadata: {},
    }),
    new InvalidParameterValueException({
      message: 'Invalid parameter: PhoneNumber Reason: input incorrectly formatted',
      $metadata: {},
    }),
  ])('refuses the recipient for good when SNS refuses the number ($name)', async (refusal) => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).rejects(refusal);
    const transport = new SnsSmsTransport(new SNSClient({ region: 'us-east-1' }));
    const error = await transport
      .send({ to: '+14155550123', text: 'x', messageId: 'm-4' })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ provider: 'sns', providerCode: refusal.name, refused: 'recipient' });
    // The provider's codes only: SNS quotes the number.
    expect(JSON.stringify(error)).not.toContain('4155550123');
    expect((error as Error).message).not.toContain('4155550123');
    sns.restore();
  });

  it.each([
    new ThrottledException({ message: 'Rate exceeded', $metadata: {} }),
    new InternalErrorException({ message: 'Internal error', $metadata: {} }),
    new InvalidParameterException({
      message: 'Invalid parameter: MessageAttributes Reason: SenderID is not valid',
      $metadata: {},
    }),
    new InvalidParameterException({
      message: 'Invalid parameter: PhoneNumber Reason: +14155550123 is not verified in the SMS sandbox',
      $metadata: {},
    }),
  ])('passes on an SNS error that is not a refusal of the number ($name: $message)', async (failure) => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).rejects(failure);
    const transport = new SnsSmsTransport(new SNSClient({ region: 'us-east-1' }));
    await expect(transport.send({ to: '+14155550123', text: 'x', messageId: 'm-5' })).rejects.toBe(failure);
    sns.restore();
  });
});

describe('the outbox transport', () => {
  it('writes each SMS as <time>-<id>.sms.txt with its recipient and text', async () => {
    const dir = join(outboxDir, 'nested');
    const transport = new OutboxSmsTransport(dir);
    const id = randomUUID();
    const file = await transport.send({ to: '+14155552671', text: 'Your code is 123456.', messageId: id });
    transport.close();
    const [name] = readdirSync(dir);
    expect(name).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T[\\d-]+Z-${id}\\.sms\\.txt$`));
    expect(file).toBe(join(dir, name ?? ''));
    const content = readFileSync(file, 'utf8');
    expect(content).toMatch(
      /^To: \+14155552671\nDate: .+\nX-Bulwark-Message-Id: [\w-]+\n\nYour code is 123456\.\n$/,
    );
  });
});

/**
 * Runs `message` (about `userId`) through the worker and expects it dropped unsent for `reason`: reported processed, not
 * dead-lettered nor delayed, counted as EmailSkipped and audited as sms.skipped with ids only.
 */
async function expectDroppedUnsent(
  {
    smsTransport,
    audits,
    run,
    metrics,
  }: Pick<ReturnType<typeof setup>, 'smsTransport' | 'audits' | 'run' | 'metrics'>,
  message: ReturnType<typeof sms>,
  userId: string,
  reason: string,
) {
  expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
  expect(smsTransport.sent).toEqual([]);
  expect(await deadLetterReasons()).toEqual([]);
  expect(queues.visibilityChanges()).toEqual([]);
  expect(storedMetric(metrics, 'EmailSkipped')).toBe(1);
  expect(audits).toEqual([
    expect.objectContaining({
      eventType: 'sms.skipped',
      userId,
      metadata: { messageId: message.id, type: 'sms', reason },
    }),
  ]);
}

describe('the email worker with SMS', () => {
  it('sends an sms message through the SMS transport, never the email one, and audits it without the number', async () => {
    const { smsTransport, emailTransport, audits, run } = setup();
    const message = sms();
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(smsTransport.sent).toEqual([
      { to: '+14155552671', text: expect.stringContaining('042917'), messageId: message.id },
    ]);
    expect(emailTransport.sent).toEqual([]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'sms.sent',
        metadata: { messageId: message.id, type: 'sms', transport: 'outbox' },
      }),
    ]);
    expect(JSON.stringify(audits)).not.toContain('+14155552671');
  });

  it('names the user an SMS is about on its sms.sent line', async () => {
    const { smsTransport, audits, run } = setup();
    // A registered user's item, as far as the worker reads it: there, not lapsed, not deleted.
    const userId = randomUUID();
    await createDocumentClient(dynamoDb).send(
      new PutCommand({ TableName: testTableNames.app, Item: userKey(userId) }),
    );
    const message = sms({ userId });
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(smsTransport.sent.map((sent) => sent.messageId)).toEqual([message.id]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'sms.sent',
        userId,
        metadata: { messageId: message.id, type: 'sms', transport: 'outbox' },
      }),
    ]);
  });

  it('sends once when the same sms message arrives twice, auditing the copy as a duplicate', async () => {
    const { smsTransport, audits, run } = setup();
    const message = sms();
    await run(await record(message));
    await run(await record(message, 2));
    expect(smsTransport.sent).toHaveLength(1);
    expect(audits.map((audit) => audit.eventType)).toEqual(['sms.sent', 'sms.duplicate']);
  });

  it('backs off a failed send like an email and reports the record failed', async () => {
    const { smsTransport, audits, run } = setup();
    smsTransport.failing = true;
    const failing = await record(sms(), 2);
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: failing.receiptHandle, VisibilityTimeout: 60, succeeded: true },
    ]);
    expect(await queues.receivableNow(failing)).toEqual([]);
    expect(audits).toEqual([expect.objectContaining({ eventType: 'sms.failed', outcome: 'error' })]);
  });

  it('drops an SMS whose recipient its provider refuses for good, audited as an SMS', async () => {
    const { smsTransport, audits, run } = setup();
    smsTransport.failing = true;
    smsTransport.failure = new DeliveryRejectedError('sms-gateway', 'UNREACHABLE_NUMBER', {
      refused: 'recipient',
    });
    const message = sms();
    expect((await run(await record(message))).batchItemFailures).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'sms.undeliverable',
        outcome: 'failure',
        metadata: expect.objectContaining({
          messageId: message.id,
          type: 'sms',
          provider: 'sms-gateway',
          reason: 'recipient_refused',
        }),
      }),
    ]);
  });

  it('drops SMS to a number SNS refuses, uncounted by the SMS circuit, which stays closed for other numbers', async () => {
    const refusedNumber = '+14155550123';
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand, { PhoneNumber: refusedNumber }).rejects(
      new InvalidParameterException({
        message: `Invalid parameter: PhoneNumber Reason: ${refusedNumber} is not valid to publish to`,
        $metadata: {},
      }),
    );
    sns.on(PublishCommand, { PhoneNumber: '+14155552671' }).resolves({ MessageId: 'sns-ok' });
    const { observability, audits } = testObservability('email-worker');
    const smsBreaker = testProviderBreaker(dynamoDb, 'sms-sns');
    const worker = new EmailWorker({
      transport: new RecordingEmail(),
      templates: new EmailTemplates(),
      breaker: breaker('email-test'),
      sms: { transport: new SnsSmsTransport(new SNSClient({ region: 'us-east-1' })), breaker: smsBreaker },
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability,
    });
    // The breaker's threshold (5) of refusals, then an SMS to another number.
    const refused: SQSRecord[] = [];
    for (let i = 0; i < 5; i += 1) refused.push(await record(sms({ to: refusedNumber })));
    expect(await worker.handle({ Records: refused } as SQSEvent, context)).toEqual({ batchItemFailures: [] });
    const other = await record(sms());
    expect(await worker.handle({ Records: [other] } as SQSEvent, context)).toEqual({ batchItemFailures: [] });
    expect(smsBreaker.state).toBe('CLOSED');
    expect(sns.commandCalls(PublishCommand, { PhoneNumber: '+14155552671' })).toHaveLength(1);
    expect(queues.visibilityChanges()).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
    // Not EmailRejected, whose share of emails sent the EmailRejectionRate alarm watches.
    expect(storedMetric(observability.metrics, 'SmsRejected')).toEqual([1, 1, 1, 1, 1]);
    expect(storedMetric(observability.metrics, 'EmailRejected')).toBeUndefined();
    expect(storedMetric(observability.metrics, 'SmsFailed')).toBeUndefined();
    expect(audits.map((audit) => audit.eventType)).toEqual([
      ...Array(5).fill('sms.undeliverable'),
      'sms.sent',
    ]);
    expect(audits[0]?.metadata).toMatchObject({
      reason: 'recipient_refused',
      provider: 'sns',
      providerCode: 'InvalidParameterException',
    });
    expect(JSON.stringify(audits)).not.toContain('4155550123');
    sns.restore();
  });

  it('dead-letters an SMS whose message its provider refuses for good, counted, logged and audited as an SMS', async () => {
    const { smsTransport, audits, run, metrics, logger } = setup();
    const error = vi.spyOn(logger, 'error');
    smsTransport.failing = true;
    smsTransport.failure = new DeliveryRejectedError('sms-gateway', 'CONTENT_REFUSED');
    expect((await run(await record(sms()))).batchItemFailures).toEqual([]);
    expect(await deadLetterReasons()).toEqual(['sms-gateway refused the message for good (CONTENT_REFUSED)']);
    expect(storedMetric(metrics, 'SmsFailed')).toBe(1);
    expect(storedMetric(metrics, 'EmailFailed')).toBeUndefined();
    expect(audits.at(-1)).toMatchObject({
      eventType: 'sms.rejected',
      metadata: expect.objectContaining({ reason: 'delivery_rejected' }),
    });
    expect(error).toHaveBeenCalledWith('SMS message rejected and dead-lettered', expect.any(Object));
  });

  it('dead-letters a body that is not JSON as an email: nothing in it says SMS', async () => {
    const { audits, run, metrics } = setup();
    const notJson = { ...(await record(sms())), body: '{"type":"sms",' };
    expect(await run(notJson)).toEqual({ batchItemFailures: [] });
    expect(storedMetric(metrics, 'EmailFailed')).toBe(1);
    expect(storedMetric(metrics, 'SmsFailed')).toBeUndefined();
    expect(audits).toEqual([expect.objectContaining({ eventType: 'email.rejected' })]);
  });

  it('logs why a send failed without the number the provider quoted', async () => {
    const { smsTransport, run, logger } = setup();
    smsTransport.failing = true;
    smsTransport.failure = Object.assign(
      new Error('Invalid parameter: PhoneNumber Reason: +14155552671 is not valid to publish to'),
      { name: 'InvalidParameterException' },
    );
    const warn = vi.spyOn(logger, 'warn');
    expect((await run(await record(sms()))).batchItemFailures).toHaveLength(1);
    expect(warn).toHaveBeenCalledWith(
      'SMS send failed',
      expect.objectContaining({
        errorName: 'InvalidParameterException',
        reason:
          'InvalidParameterException: Invalid parameter: PhoneNumber Reason: [phone] is not valid to publish to',
      }),
    );
    expect(JSON.stringify(warn.mock.calls)).not.toContain('4155552671');
  });

  it("names its message's correlation id on the SMS circuit's events", async () => {
    const { observability, audits } = testObservability('email-worker');
    const audited = auditingSecurityEvents(observability);
    const smsTransport = new RecordingSms();
    smsTransport.failing = true;
    const worker = new EmailWorker({
      transport: new RecordingEmail(),
      templates: new EmailTemplates(),
      breaker: breaker('email-test'),
      // As handler.ts builds it (the function's listener on the breaker), opened by one failure.
      sms: {
        transport: smsTransport,
        breaker: testProviderBreaker(dynamoDb, 'sms-test', { failureThreshold: 1, onEvent: audited.onEvent }),
      },
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability: audited,
    });
    const traced = async (correlationId: string) =>
      ({
        Records: [await queues.receivedRecord(sms(), { attributes: { 'x-correlation-id': correlationId } })],
      }) as SQSEvent;
    await worker.handle(await traced('trace-opens'), context);
    await worker.handle(await traced('trace-rejected'), context);
    const circuitEvents = audits
      .filter((event) => event.eventType.startsWith('circuit.'))
      .map((event) => [event.eventType, event.correlationId]);
    expect(circuitEvents).toEqual([
      ['circuit.opened', 'trace-opens'],
      ['circuit.rejected', 'trace-rejected'],
    ]);
  });

  it('dead-letters a non-E.164 number at once with a logged reason, never retrying it, counted as an SMS', async () => {
    const { smsTransport, audits, run, metrics } = setup();
    const bad = await record(sms({ to: '0044 7700 900123' }));
    expect(await run(bad)).toEqual({ batchItemFailures: [] });
    expect(smsTransport.sent).toEqual([]);
    expect(await deadLetterReasons()).toEqual([expect.stringMatching(/^Invalid message: to: .*E\.164/)]);
    expect(audits).toEqual([expect.objectContaining({ eventType: 'sms.rejected', outcome: 'failure' })]);
    expect(storedMetric(metrics, 'SmsFailed')).toBe(1);
    expect(storedMetric(metrics, 'EmailFailed')).toBeUndefined();
  });

  it('dead-letters sms messages when no SMS transport is configured, counted and audited as SMS', async () => {
    const { run, audits, metrics } = setup({ withSms: false });
    expect(await run(await record(sms()))).toEqual({ batchItemFailures: [] });
    expect(await deadLetterReasons()).toEqual(['No SMS transport is configured']);
    // The dashboard's SMS panel, not the email one, shows a misconfigured SMS channel.
    expect(storedMetric(metrics, 'SmsFailed')).toBe(1);
    expect(storedMetric(metrics, 'EmailFailed')).toBeUndefined();
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'sms.rejected',
        outcome: 'failure',
        metadata: expect.objectContaining({
          reason: 'invalid_message',
          detail: 'No SMS transport is configured',
        }),
      }),
    ]);
  });

  it('drops an SMS whose user no longer exists, unsent and not dead-lettered, even with no SMS transport', async () => {
    for (const withSms of [true, false]) {
      const { smsTransport, audits, run, metrics } = setup({ withSms });
      // A user id with no user item: deleted after the code was queued.
      const userId = randomUUID();
      const message = sms({ userId });
      await expectDroppedUnsent({ smsTransport, audits, run, metrics }, message, userId, 'user_deleted');
      expect(JSON.stringify(audits)).not.toContain('+14155552671');
    }
  });

  it('drops an SMS whose code expired before it could be sent (a DLQ redrive), unsent, not dead-lettered, before reading its user', async () => {
    const { smsTransport, audits, run, metrics } = setup();
    // A user id with no user item: the expired code, checked first, is the reason given.
    const userId = randomUUID();
    const message = sms({ userId, data: codeExpiringIn(-1000) });
    await expectDroppedUnsent({ smsTransport, audits, run, metrics }, message, userId, 'code_expired');
  });

  it('sends an SMS received late with the minutes its code has left then', async () => {
    const { smsTransport, run } = setup();
    const message = sms({ data: codeExpiringIn(3 * 60_000 + 10_000) });
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(smsTransport.sent.map((sent) => sent.text)).toEqual([
      'Your Bulwark verification code is 042917. It expires in 3 minutes. Never share it: Bulwark will not ask you for it.',
    ]);
  });

  it('sends an SMS queued before expiresAt existed as before, with its minutes, however late it comes', async () => {
    const { smsTransport, audits, run } = setup();
    const message = sms({ data: codeQueuedBeforeExpiresAt });
    const late = await record(message);
    late.attributes.SentTimestamp = String(Date.now() - 2 * 60 * 60_000);
    expect(await run(late)).toEqual({ batchItemFailures: [] });
    expect(smsTransport.sent.map((sent) => sent.text)).toEqual([
      'Your Bulwark verification code is 042917. It expires in 10 minutes. Never share it: Bulwark will not ask you for it.',
    ]);
    expect(audits.map((audit) => audit.eventType)).toEqual(['sms.sent']);
  });

  it('keeps emails flowing while sms messages of the same batch fail', async () => {
    const { smsTransport, emailTransport, run } = setup();
    smsTransport.failing = true;
    const failing = await record(sms());
    const email = await record({
      id: randomUUID(),
      type: 'welcome',
      to: 'ada@example.com',
      data: { name: 'Ada' },
    });
    expect((await run(failing, email)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    expect(emailTransport.sent).toHaveLength(1);
  });
});

describe('SMS configuration', () => {
  it('defaults to the outbox and accepts sns with a sender id', () => {
    expect(readQueueEnvironment({}).sms).toEqual({
      transport: 'outbox',
      outboxDir: '.bulwark/outbox',
      senderId: undefined,
    });
    expect(readQueueEnvironment({ SMS_TRANSPORT: 'sns', SMS_SENDER_ID: 'Bulwark' }).sms).toMatchObject({
      transport: 'sns',
      senderId: 'Bulwark',
    });
  });

  it('names every invalid SMS variable', () => {
    expect(() => readQueueEnvironment({ SMS_TRANSPORT: 'twilio', SMS_SENDER_ID: 'way-too-long-id' })).toThrow(
      'Invalid function environment: SMS_TRANSPORT, SMS_SENDER_ID',
    );
  });
});

describe('registration with a phone number', () => {
  const environment = () =>
    readQueueEnvironment({ EMAIL_QUEUE_URL: queues.queueUrl, VERIFICATION_LINK_SECRET: 'x'.repeat(32) });
  const user = {
    id: randomUUID(),
    email: 'ada@example.com',
    name: 'Ada',
    phone: '+14155552671',
    createdAt: '2030-01-01T00:00:00Z',
  };

  function registration(issuePhoneCode: (userId: string) => Promise<IssuedPhoneCode>) {
    const { observability, audits } = testObservability('users');
    const emails = new RegistrationEmails({
      sqs: queues.client,
      queues: environment(),
      logger: observability.logger,
      auditLogger: observability.auditLogger,
      metrics: observability.metrics,
      issuePhoneCode,
    });
    return { emails, audits, metrics: observability.metrics };
  }

  /** What the email queue holds (received, so each check sees only what was enqueued since). */
  const enqueued = () => queues.enqueued<{ type: string; [field: string]: unknown }>();

  it('enqueues the SMS code in the same batch as the two emails', async () => {
    const issued: string[] = [];
    const expiresAt = new Date(Date.now() + 600_000);
    const { emails } = registration(async (userId) => {
      issued.push(userId);
      return { code: '001234', expiresAt, withdraw: async () => {} };
    });
    await emails.enqueue(user, 'corr-1');
    // One SendMessageBatch carried all three, and all three are in the queue.
    const batches = queues.sendMessageBatches();
    expect(batches).toHaveLength(1);
    expect(batches[0]?.Entries?.map((entry) => JSON.parse(entry.MessageBody ?? '{}').type)).toEqual([
      'welcome',
      'verification',
      'sms',
    ]);
    const landed = await enqueued();
    expect(landed.map(({ body }) => body.type).sort()).toEqual(['sms', 'verification', 'welcome']);
    const smsMessage = landed.find(({ body }) => body.type === 'sms');
    expect(smsMessage?.body).toMatchObject({
      to: '+14155552671',
      template: 'sms-verification',
      data: { code: '001234', expiresAt: expiresAt.toISOString() },
    });
    expect(smsMessage?.message.MessageAttributes?.['x-correlation-id']?.StringValue).toBe('corr-1');
    expect((await parseQueueMessage(smsMessage?.message.Body ?? '')).ok).toBe(true);
    // Each names its user, for the worker to check that they still exist before sending.
    expect(landed.map(({ body }) => body.userId)).toEqual([user.id, user.id, user.id]);
    expect(issued).toEqual([user.id]);
  });

  it('issues no code for a user without a phone', async () => {
    const { emails } = registration(async () => {
      throw new Error('must not be called');
    });
    const { phone: _phone, ...withoutPhone } = user;
    await emails.enqueue(withoutPhone, undefined);
    expect((await enqueued()).map(({ body }) => body.type).sort()).toEqual(['verification', 'welcome']);
  });

  it('still enqueues the two emails when the code cannot be issued, and counts, logs and audits the SMS failure', async () => {
    const failures = [
      Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' }),
      new ConflictError('The phone number is already verified'),
    ];
    for (const failure of failures) {
      const { emails, audits, metrics } = registration(async () => {
        throw failure;
      });
      await expect(emails.enqueue(user, 'corr-1')).resolves.toBe(true);
      // Each round receives what it enqueued, so the next round sees only its own.
      expect((await enqueued()).map(({ body }) => body.type).sort()).toEqual(['verification', 'welcome']);
      expect(audits).toEqual([
        expect.objectContaining({
          eventType: 'sms.enqueue_failed',
          outcome: 'error',
          userId: user.id,
          correlationId: 'corr-1',
        }),
      ]);
      expect(storedMetric(metrics, 'EmailEnqueueFailed')).toBe(1);
    }
  });

  it('still enqueues the two emails, with no failure counted or audited, when the user was deleted meanwhile', async () => {
    const { emails, audits, metrics } = registration(async () => {
      throw new NotFoundError('No such user');
    });
    await expect(emails.enqueue(user, 'corr-1')).resolves.toBe(true);
    // The worker drops these once it finds the user gone; an admin's delete is no enqueue failure.
    expect((await enqueued()).map(({ body }) => body.type).sort()).toEqual(['verification', 'welcome']);
    expect(audits).toEqual([]);
    expect(storedMetric(metrics, 'EmailEnqueueFailed')).toBeUndefined();
  });

  it('still enqueues the two emails, with no failure counted or audited, when a code was issued already', async () => {
    // Queued a second time (a retried registration met them while the first queued them): the user has a code.
    const { emails, audits, metrics } = registration(async () => {
      throw new TooManyRequestsError(58, 'A code was sent less than a minute ago');
    });
    await expect(emails.enqueue(user, 'corr-1')).resolves.toBe(true);
    expect((await enqueued()).map(({ body }) => body.type).sort()).toEqual(['verification', 'welcome']);
    expect(audits).toEqual([]);
    expect(storedMetric(metrics, 'EmailEnqueueFailed')).toBeUndefined();
  });
});
