import { randomInt, randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment, readQueueEnvironment } from '../../functions/shared/environment.js';
import { phoneCodeKey } from '../../functions/shared/keys.js';
import {
  RegistrationEmails,
  type RegistrationEmailsOptions,
  registrationMessageId,
  type SmsAdmission,
} from '../../functions/users/registration-emails.js';
import { SmsBudgets } from '../../functions/users/sms-budgets.js';
import { smsPerNumberPolicy, UsersModel } from '../../functions/users/users-model.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import {
  ConflictError,
  DeadlineExceededError,
  ServiceUnavailableError,
  TooManyRequestsError,
} from '../../middleware/errors.js';
import { createMetrics } from '../../middleware/metrics/record.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues, unreachableSqsClient } from '../helpers/local-worker-queues.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { sharedToolkitTableSms } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

// A real local-aws-sqs with the email queue: what the producer enqueues is read back from it.
let sqs: LocalWorkerQueues;
/** A queue taking messages of at most 1024 bytes: SQS refuses each larger entry of a batch on its own. */
let smallMessageQueueUrl: string;
beforeAll(async () => {
  sqs = await LocalWorkerQueues.start('email-worker');
  smallMessageQueueUrl = await sqs.createSmallMessageQueue('bulwark-email-small-messages');
});
afterEach(() => sqs.reset());
afterAll(() => sqs.stop());

const environment = (emailQueueUrl = sqs.queueUrl, appBaseUrl = 'https://api.example.com') =>
  readQueueEnvironment({
    EMAIL_QUEUE_URL: emailQueueUrl,
    VERIFICATION_LINK_SECRET: 'x'.repeat(32),
    APP_BASE_URL: appBaseUrl,
  });
const user = { id: 'user-1', email: 'ada@example.com', name: 'Ada', createdAt: '2030-01-01T00:00:00Z' };

interface Enqueued {
  id: string;
  type: string;
  userId?: string;
  data: Record<string, unknown>;
}

/**
 * The two ways SQS fails a SendMessageBatch, each for real: down (a client on a port nothing listens
 * on), or refusing one entry (a queue whose 1024-byte limit only that entry of the batch exceeds).
 */
const failingSqs = [
  { name: 'SQS down', client: () => unreachableSqsClient(), queueUrl: () => sqs.queueUrl },
  { name: 'entry refused', client: () => sqs.client, queueUrl: () => smallMessageQueueUrl },
];
/** A name that puts the welcome email just under 1024 bytes and the verification email (its link) over. */
const longNamed = { ...user, name: 'A'.repeat(860) };

function setup(
  options: {
    client?: SQSClient;
    queues?: ReturnType<typeof environment>;
    markQueued?: RegistrationEmailsOptions['markQueued'];
  } = {},
) {
  const audits: AuditEvent[] = [];
  const metrics = createMetrics({ serviceName: 'users' });
  const emails = new RegistrationEmails({
    sqs: options.client ?? sqs.client,
    queues: options.queues ?? environment(),
    logger: new Logger({ logLevel: 'SILENT' }),
    auditLogger: new AuditLogger({ sink: (event) => audits.push(event), logToConsole: false }),
    metrics,
    ...(options.markQueued ? { markQueued: options.markQueued } : {}),
  });
  return { emails, audits, metrics };
}

describe('registration emails', () => {
  it("link under APP_BASE_URL's path, where a custom domain maps the API under a base path", async () => {
    await setup({ queues: environment(sqs.queueUrl, 'https://example.com/api') }).emails.enqueue(
      user,
      'corr-1',
    );
    const landed = await sqs.enqueued<Enqueued>();
    expect(landed.find(({ body }) => body.type === 'verification')?.body.data.verificationUrl).toMatch(
      /^https:\/\/example\.com\/api\/users\/user-1\/verify\?expires=\d+&signature=[\w-]{43}$/,
    );
  });

  it('enqueue a welcome and a verification email in one batch, with the correlation id', async () => {
    await setup().emails.enqueue(user, 'corr-1');
    const batches = sqs.sendMessageBatches();
    expect(
      batches.map((batch) => batch.Entries?.map((entry) => JSON.parse(entry.MessageBody ?? '{}').type)),
    ).toEqual([['welcome', 'verification']]);
    // What landed in the queue.
    const landed = await sqs.enqueued<Enqueued>();
    expect(landed.map(({ body }) => body.type).sort()).toEqual(['verification', 'welcome']);
    const verification = landed.find(({ body }) => body.type === 'verification');
    expect(verification?.body.data.verificationUrl).toMatch(
      /^https:\/\/api\.example\.com\/users\/user-1\/verify\?/,
    );
    expect(new Set(landed.map(({ body }) => body.id)).size).toBe(2);
    for (const { message } of landed) {
      expect(Object.keys(message.MessageAttributes ?? {})).toEqual(['x-correlation-id']);
      expect(message.MessageAttributes?.['x-correlation-id']).toMatchObject({
        DataType: 'String',
        StringValue: 'corr-1',
      });
    }
  });

  it("put the registration's lapse time on the verification email, and none for a user without one", async () => {
    const unverified = { ...user, id: 'user-2', expiresAt: '2030-01-03T00:00:00.000Z' };
    await setup().emails.enqueue(unverified, undefined);
    await setup().emails.enqueue(user, undefined);
    const verifications = (await sqs.enqueued<Enqueued>())
      .map(({ body }) => body)
      .filter((body) => body.type === 'verification');
    expect(verifications.map(({ data }) => data.registrationLapsesAt).sort()).toEqual([
      '2030-01-03T00:00:00.000Z',
      undefined,
    ]);
    expect(verifications.map(({ data }) => 'registrationLapsesAt' in data).sort()).toEqual([false, true]);
  });

  it('give a registration the same welcome and verification message ids each time, recorded queued once SQS took them', async () => {
    const marked: string[] = [];
    const markQueued = async (userId: string) => {
      marked.push(userId);
    };
    await expect(setup({ markQueued }).emails.enqueue(user, undefined)).resolves.toBe(true);
    await expect(setup({ markQueued }).emails.enqueue(user, undefined)).resolves.toBe(true);
    await setup({ markQueued }).emails.enqueue({ ...user, id: 'user-2' }, undefined);
    const ids = (await sqs.enqueued<Enqueued>()).map(({ body }) => [body.userId, body.type, body.id]);
    const welcome = registrationMessageId('user-1', 'welcome');
    const verification = registrationMessageId('user-1', 'verification');
    expect(ids).toEqual(
      expect.arrayContaining([
        ['user-1', 'welcome', welcome],
        ['user-1', 'verification', verification],
        ['user-2', 'welcome', registrationMessageId('user-2', 'welcome')],
      ]),
    );
    expect(ids.filter(([, , id]) => id === welcome)).toHaveLength(2);
    expect(new Set([welcome, verification, registrationMessageId('user-2', 'welcome')]).size).toBe(3);
    expect(marked).toEqual(['user-1', 'user-1', 'user-2']);

    const down = setup({ client: unreachableSqsClient(), markQueued });
    await expect(down.emails.enqueue(user, undefined)).resolves.toBe(false);
    expect(marked).toHaveLength(3);
  });

  it('never fail the registration when SQS is down or refuses an entry: they count, log and audit it', async () => {
    for (const failure of failingSqs) {
      const { emails, audits, metrics } = setup({
        client: failure.client(),
        queues: environment(failure.queueUrl()),
      });
      await expect(emails.enqueue(longNamed, undefined), failure.name).resolves.toBe(false);
      expect(audits, failure.name).toEqual([
        expect.objectContaining({ eventType: 'email.enqueue_failed', outcome: 'error', userId: 'user-1' }),
      ]);
      expect(storedMetric(metrics, 'EmailEnqueueFailed'), failure.name).toBe(1);
    }
    // SQS did refuse only the verification entry (entry 1, the only one over 1024 bytes): the welcome went in.
    const sizes = sqs
      .sendMessageBatches()
      .map((batch) => batch.Entries?.map((entry) => entry.MessageBody?.length));
    expect(sizes).toEqual([[expect.any(Number), expect.any(Number)]]);
    expect(sizes[0]?.[0]).toBeLessThan(1024);
    expect(sizes[0]?.[1]).toBeGreaterThan(1024);
    expect((await sqs.enqueued<Enqueued>(smallMessageQueueUrl)).map(({ body }) => body.type)).toEqual([
      'welcome',
    ]);
  });

  it('do nothing when no email queue is configured', async () => {
    const emails = new RegistrationEmails({
      sqs: undefined,
      queues: readQueueEnvironment({}),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      metrics: createMetrics({ serviceName: 'users' }),
    });
    await emails.enqueue(user, undefined);
    expect(await sqs.enqueued()).toEqual([]);
  });

  it('refuse to start with a queue but no link secret, and with an invalid environment', () => {
    expect(
      () =>
        new RegistrationEmails({
          sqs: undefined,
          queues: readQueueEnvironment({ EMAIL_QUEUE_URL: 'http://127.0.0.1:1/q' }),
          logger: new Logger({ logLevel: 'SILENT' }),
          auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
          metrics: createMetrics({ serviceName: 'users' }),
        }),
    ).toThrow('VERIFICATION_LINK_SECRET');
    // The stack's secret is the rotation shape; a plain string is its `current`.
    const current = 'c'.repeat(32);
    const previous = 'p'.repeat(32);
    expect(
      readQueueEnvironment({ VERIFICATION_LINK_SECRET: JSON.stringify({ current, previous }) })
        .verificationLinkSecret,
    ).toEqual({ value: { current, previous } });
    expect(readQueueEnvironment({ VERIFICATION_LINK_SECRET: current }).verificationLinkSecret).toEqual({
      value: { current },
    });
    // Whitespace adds nothing to guess: 32 spaces are refused as an empty secret is, in either form.
    for (const weak of [
      'short',
      ' '.repeat(32),
      `short${'\t'.repeat(40)}`,
      JSON.stringify({ current: 'short' }),
      JSON.stringify({ current: ' '.repeat(32) }),
      JSON.stringify({ current, previous: '\n'.repeat(32) }),
    ]) {
      expect(() => readQueueEnvironment({ VERIFICATION_LINK_SECRET: weak })).toThrow(
        'VERIFICATION_LINK_SECRET',
      );
    }
    // The stack names the secret instead; it is read at run time, and one of the two forms is allowed.
    const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:VerificationLinkSecret-AbCdEf';
    expect(readQueueEnvironment({ VERIFICATION_LINK_SECRET_ARN: secretArn }).verificationLinkSecret).toEqual({
      secretArn,
    });
    expect(() => readQueueEnvironment({ VERIFICATION_LINK_SECRET_ARN: 'VerificationLinkSecret' })).toThrow(
      'VERIFICATION_LINK_SECRET_ARN',
    );
    expect(() =>
      readQueueEnvironment({ VERIFICATION_LINK_SECRET: current, VERIFICATION_LINK_SECRET_ARN: secretArn }),
    ).toThrow('give one');
    expect(() => readQueueEnvironment({ SMTP_PORT: 'abc', EMAIL_TRANSPORT: 'pigeon' })).toThrow(
      /SMTP_PORT, EMAIL_TRANSPORT|EMAIL_TRANSPORT, SMTP_PORT/,
    );
  });
});

describe('the verification email again (sendVerificationEmail)', () => {
  it('enqueues one verification email with a fresh link and resolves with its expiry', async () => {
    const before = Date.now();
    const expiresAt = await setup().emails.sendVerificationEmail(user, 'corr-2');
    const landed = await sqs.enqueued<Enqueued>();
    expect(landed.map(({ body }) => body.type)).toEqual(['verification']);
    expect(landed[0]?.body.data.verificationUrl).toMatch(
      /^https:\/\/api\.example\.com\/users\/user-1\/verify\?/,
    );
    expect(landed[0]?.body.data.expiresAt).toBe(expiresAt.toISOString());
    expect(expiresAt.getTime()).toBeGreaterThanOrEqual(before + 24 * 3600_000 - 1000);
  });

  it("carries the registration's lapse time, and a link that expires with it when that comes first", async () => {
    const lapsesAt = new Date(Date.now() + 3600_000).toISOString();
    const expiresAt = await setup().emails.sendVerificationEmail({ ...user, expiresAt: lapsesAt }, undefined);
    const landed = await sqs.enqueued<Enqueued>();
    expect(landed.map(({ body }) => body.data.registrationLapsesAt)).toEqual([lapsesAt]);
    expect(expiresAt.getTime()).toBeLessThanOrEqual(Date.parse(lapsesAt));
  });

  it.each(failingSqs)(
    'answers 503 and counts EmailEnqueueFailed when the queue fails ($name)',
    async (failure) => {
      const { emails, metrics } = setup({
        client: failure.client(),
        queues: environment(failure.queueUrl()),
      });
      const sent = emails.sendVerificationEmail(longNamed, 'corr-3');
      await expect(sent).rejects.toBeInstanceOf(ServiceUnavailableError);
      await expect(sent).rejects.toMatchObject({ retryAfterSec: 60 });
      expect(storedMetric(metrics, 'EmailEnqueueFailed'), failure.name).toBe(1);
    },
  );

  it('answers 503 when the deployment has no email queue', async () => {
    const { emails } = setup({ queues: readQueueEnvironment({}) });
    await expect(emails.sendVerificationEmail(user, undefined)).rejects.toBeInstanceOf(
      ServiceUnavailableError,
    );
  });
});

describe('a new SMS code (sendPhoneCode)', () => {
  const withPhone = { ...user, phone: '+14155552671' };
  const issued = { code: '123456', expiresAt: new Date(Date.now() + 600_000), withdraw: async () => {} };

  function phoneSetup(
    issuePhoneCode: RegistrationEmailsOptions['issuePhoneCode'] = async () => issued,
    client: SQSClient = sqs.client,
    queueUrl = sqs.queueUrl,
    metrics = createMetrics({ serviceName: 'users' }),
    budget: Pick<RegistrationEmailsOptions, 'admitSms'> = {},
  ) {
    return new RegistrationEmails({
      sqs: client,
      queues: environment(queueUrl),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      metrics,
      issuePhoneCode,
      ...budget,
    });
  }

  it('enqueues one SMS with the code and resolves with its expiry', async () => {
    await expect(phoneSetup().sendPhoneCode(withPhone, 'corr-2')).resolves.toEqual(issued.expiresAt);
    const landed = await sqs.enqueued<Enqueued>();
    expect(landed.map(({ message }) => message.MessageAttributes?.['x-correlation-id']?.StringValue)).toEqual(
      ['corr-2'],
    );
    expect(landed.map(({ body }) => body)).toEqual([
      expect.objectContaining({
        type: 'sms',
        to: '+14155552671',
        template: 'sms-verification',
        data: { code: '123456', expiresAt: issued.expiresAt.toISOString() },
      }),
    ]);
  });

  it('answers 503 with Retry-After when SQS is down or refuses the SMS, counts it, and undoes the code and its budget unit', async () => {
    for (const failure of failingSqs) {
      const metrics = createMetrics({ serviceName: 'users' });
      let withdrawn = 0;
      const refunded: string[] = [];
      // A code long enough that its SMS exceeds the small queue's 1024 bytes: SQS refuses that one entry.
      const oversized = async () => ({
        code: '1'.repeat(1100),
        expiresAt: issued.expiresAt,
        withdraw: async () => {
          withdrawn += 1;
        },
      });
      const error = await phoneSetup(oversized, failure.client(), failure.queueUrl(), metrics, {
        admitSms: async (phone) => ({
          allowed: true,
          refund: async () => {
            refunded.push(phone);
          },
        }),
      })
        .sendPhoneCode(withPhone, undefined)
        .catch((caught: unknown) => caught);
      expect(error, failure.name).toBeInstanceOf(ServiceUnavailableError);
      expect(error, failure.name).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '60' } });
      expect(storedMetric(metrics, 'EmailEnqueueFailed'), failure.name).toBe(1);
      // The SMS was never queued: it counts against neither the user's limits nor the number's budget.
      expect(withdrawn, failure.name).toBe(1);
      expect(refunded, failure.name).toEqual(['+14155552671']);
    }
    expect(await sqs.enqueued(smallMessageQueueUrl)).toEqual([]);
  });

  it('still answers 503 when the code cannot be withdrawn nor the unit refunded', async () => {
    const stuck = async () => ({
      ...issued,
      withdraw: async () => {
        throw new Error('DynamoDB is down');
      },
    });
    const error = await phoneSetup(stuck, unreachableSqsClient(), sqs.queueUrl, undefined, {
      admitSms: async () => ({
        allowed: true,
        refund: async () => {
          throw new Error('the rate-limit store is down');
        },
      }),
    })
      .sendPhoneCode(withPhone, undefined)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
  });

  it('answers 503 without a queue and 409 without a phone, issuing no code', async () => {
    let issuedCodes = 0;
    const counting = async () => {
      issuedCodes += 1;
      return issued;
    };
    const unconfigured = new RegistrationEmails({
      sqs: undefined,
      queues: readQueueEnvironment({}),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      metrics: createMetrics({ serviceName: 'users' }),
      issuePhoneCode: counting,
    });
    await expect(unconfigured.sendPhoneCode(withPhone, undefined)).rejects.toBeInstanceOf(
      ServiceUnavailableError,
    );
    await expect(phoneSetup(counting).sendPhoneCode(user, undefined)).rejects.toBeInstanceOf(ConflictError);
    expect(issuedCodes).toBe(0);
    expect(sqs.sendMessageBatches()).toHaveLength(0);
    expect(await sqs.enqueued()).toEqual([]);
  });
});

describe("a phone number's SMS budget (admitSms)", () => {
  const withPhone = { ...user, phone: '+14155552671' };
  const spent = async (): Promise<SmsAdmission> => ({
    allowed: false,
    retryAfterSec: 3600,
    refusedBy: 'number',
  });

  /**
   * A code issuer recording whom it issued codes for and whose it withdrew; `lostRace` makes it fail as
   * a request that lost the race to a concurrent one does (429, no code).
   */
  function issuer(lostRace = false) {
    const issuedFor: string[] = [];
    const withdrawnFor: string[] = [];
    const issuePhoneCode = async (userId: string) => {
      if (lostRace) throw new TooManyRequestsError(60, 'A code was sent less than a minute ago');
      issuedFor.push(userId);
      return {
        code: '123456',
        expiresAt: new Date(Date.now() + 600_000),
        withdraw: async () => {
          withdrawnFor.push(userId);
        },
      };
    };
    return { issuedFor, withdrawnFor, issuePhoneCode };
  }

  function budgetSetup(
    admitSms: (phone: string) => Promise<SmsAdmission>,
    { lostRace = false, client = sqs.client, queueUrl = sqs.queueUrl } = {},
  ) {
    const { issuedFor, withdrawnFor, issuePhoneCode } = issuer(lostRace);
    const refunded: string[] = [];
    const audits: AuditEvent[] = [];
    const metrics = createMetrics({ serviceName: 'users' });
    const emails = new RegistrationEmails({
      sqs: client,
      queues: environment(queueUrl),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: (event) => audits.push(event) }),
      metrics,
      issuePhoneCode,
      // Each admitted SMS gives its units back through its own refund: recorded by number.
      admitSms: async (phone) => {
        const admission = await admitSms(phone);
        if (!admission.allowed) return admission;
        return {
          allowed: true,
          refund: async () => {
            refunded.push(phone);
            await admission.refund();
          },
        };
      },
    });
    return { emails, issuedFor, withdrawnFor, refunded, audits, metrics };
  }
  const admitted = async (): Promise<SmsAdmission> => ({ allowed: true, refund: async () => {} });

  /** The types of the messages sent, in the order sent; each of them is checked to be in the queue. */
  async function sentTypes(): Promise<string[]> {
    const sent = sqs
      .sendMessageBatches()
      .flatMap((batch) => batch.Entries ?? [])
      .map((entry) => JSON.parse(entry.MessageBody ?? '{}').type as string);
    const landed = (await sqs.enqueued<Enqueued>()).map(({ body }) => body.type);
    expect([...landed].sort()).toEqual([...sent].sort());
    return sent;
  }

  it('is asked with the number, and an admitted registration sends its SMS', async () => {
    const asked: string[] = [];
    const { emails, issuedFor } = budgetSetup(async (phone) => {
      asked.push(phone);
      return admitted();
    });
    await emails.enqueue(withPhone, undefined);
    expect(asked).toEqual(['+14155552671']);
    expect(issuedFor).toEqual(['user-1']);
    expect(await sentTypes()).toEqual(['welcome', 'verification', 'sms']);
  });

  it('once spent, a registration still sends its emails but no SMS, and withdraws the code it issued', async () => {
    const { emails, issuedFor, withdrawnFor } = budgetSetup(spent);
    await emails.enqueue(withPhone, undefined);
    expect(await sentTypes()).toEqual(['welcome', 'verification']);
    expect(issuedFor).toEqual(['user-1']);
    expect(withdrawnFor).toEqual(['user-1']);
  });

  it('is not spent on a user whose phone is already verified (409 first)', async () => {
    const asked: string[] = [];
    const { emails, issuedFor } = budgetSetup(async (phone) => {
      asked.push(phone);
      return admitted();
    });
    const verified = { ...withPhone, phoneVerifiedAt: '2030-01-01T00:00:00Z' };
    await expect(emails.sendPhoneCode(verified, undefined)).rejects.toBeInstanceOf(ConflictError);
    expect(asked).toEqual([]);
    expect(issuedFor).toEqual([]);
  });

  it('is not asked for a code that was not issued, and gives back nothing it did not give', async () => {
    const asked: string[] = [];
    const lost = budgetSetup(
      async (phone) => {
        asked.push(phone);
        return admitted();
      },
      { lostRace: true },
    );
    await expect(lost.emails.sendPhoneCode(withPhone, undefined)).rejects.toBeInstanceOf(
      TooManyRequestsError,
    );
    await lost.emails.enqueue(withPhone, undefined);
    expect(asked).toEqual([]);
    expect(lost.refunded).toEqual([]);
    const refused = budgetSetup(spent);
    await expect(refused.emails.sendPhoneCode(withPhone, undefined)).rejects.toBeInstanceOf(
      TooManyRequestsError,
    );
    await refused.emails.enqueue(withPhone, undefined);
    expect(refused.refunded).toEqual([]);
    expect(refused.withdrawnFor).toEqual(['user-1', 'user-1']);
    const sent = budgetSetup(admitted);
    await sent.emails.enqueue(withPhone, undefined);
    await sent.emails.sendPhoneCode(withPhone, undefined);
    expect(sent.refunded).toEqual([]);
    expect(sent.withdrawnFor).toEqual([]);
  });

  it('gets back the unit, and the user the code, of a registration SMS the queue did not take', async () => {
    const [down, refusingOthers] = failingSqs.map((failure) =>
      budgetSetup(admitted, { client: failure.client(), queueUrl: failure.queueUrl() }),
    );
    await down?.emails.enqueue({ ...withPhone, name: longNamed.name }, undefined);
    expect(down?.withdrawnFor).toEqual(['user-1']);
    expect(down?.refunded).toEqual(['+14155552671']);
    // SQS refused only the verification email (over 1024 bytes): the SMS went in, and counts.
    await refusingOthers?.emails.enqueue({ ...withPhone, name: longNamed.name }, undefined);
    expect((await sqs.enqueued<Enqueued>(smallMessageQueueUrl)).map(({ body }) => body.type).sort()).toEqual([
      'sms',
      'welcome',
    ]);
    expect(refusingOthers?.withdrawnFor).toEqual([]);
    expect(refusingOthers?.refunded).toEqual([]);
  });

  it("that hangs past the registration's deadline costs the registration its messages, reported once as the deadline", async () => {
    const deadline = new AbortController();
    const { emails, issuedFor, withdrawnFor, refunded, audits, metrics } = budgetSetup(() => {
      // The budget's store hangs: its answer comes only after the registration's time is up.
      setTimeout(() => deadline.abort(new DeadlineExceededError('work after the commit', 50)), 50);
      return new Promise<SmsAdmission>(() => {});
    });
    await emails.enqueue(withPhone, 'corr-late', deadline.signal);
    // The code, issued before the budget was asked, is withdrawn under the undo's own deadline.
    expect(issuedFor).toEqual(['user-1']);
    expect(withdrawnFor).toEqual(['user-1']);
    expect(refunded).toEqual([]);
    expect(await sentTypes()).toEqual([]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.enqueue_failed',
        outcome: 'error',
        userId: 'user-1',
        correlationId: 'corr-late',
        metadata: { reason: 'DeadlineExceededError' },
      }),
    ]);
    expect(storedMetric(metrics, 'EmailEnqueueFailed')).toBe(1);
  });

  it('answers a new code 503 when its deadline passes before the SMS is queued, and undoes the stored code and the budget unit', async () => {
    // The real code store and budget (dynalite): the undo must get through after the deadline passed.
    const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
    const documents = createDocumentClient(dynamoDb);
    const users = new UsersModel(documents, testTableNames.app, createFunctionEncryptor(readEnvironment()));
    const budget = new RateLimiter({
      policy: smsPerNumberPolicy,
      tableName: testTableNames.toolkit,
      client: dynamoDb,
    });
    const registered = await users.register({
      email: `deadline-${randomUUID()}@example.com`,
      name: 'Ada',
      phone: `+1415555${randomInt(1000, 10_000)}`,
    });
    const phone = registered.phone as string;
    const budgetKey = await users.smsBudgetKey(phone);
    // The users function's own budgets, over the suite's toolkit table as its runtimes count there.
    const smsBudgets = new SmsBudgets({
      store: new DynamoDbCounterStore({ tableName: testTableNames.toolkit, client: dynamoDb }),
      sms: sharedToolkitTableSms,
      numberKey: (number) => users.smsBudgetKey(number),
      observability: testObservability('users').observability,
    });
    const deadline = new AbortController();
    const emails = new RegistrationEmails({
      sqs: sqs.client,
      queues: environment(),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      metrics: createMetrics({ serviceName: 'users' }),
      // The deadline passes as the code is stored: the SMS's send then starts aborted.
      issuePhoneCode: async (userId, signal) => {
        const issuedCode = await users.issuePhoneCode(userId, { abortSignal: signal });
        deadline.abort(new DeadlineExceededError('work after the commit', 0));
        return issuedCode;
      },
      admitSms: (number, purpose) => smsBudgets.admit(number, purpose),
    });
    const fullBudget = await budget.getRemaining(budgetKey);
    const error = await emails
      .sendPhoneCode(registered, undefined, deadline.signal)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '60' } });
    expect(await sqs.enqueued()).toEqual([]);
    // Undone: no code stored, the budget whole, so the retry the 503 asks for gets its code.
    const { Item } = await documents.send(
      new GetCommand({
        TableName: testTableNames.app,
        Key: phoneCodeKey(registered.id),
        ConsistentRead: true,
      }),
    );
    expect(Item).toBeUndefined();
    expect(await budget.getRemaining(budgetKey)).toBe(fullBudget);
    await expect(emails.sendPhoneCode(registered, undefined)).resolves.toBeInstanceOf(Date);
    expect(await budget.getRemaining(budgetKey)).toBe(fullBudget - 1);
  });

  it('once spent, a new code is a 429 with Retry-After, its code withdrawn and nothing queued', async () => {
    const { emails, issuedFor, withdrawnFor } = budgetSetup(spent);
    const error = await emails.sendPhoneCode(withPhone, undefined).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TooManyRequestsError);
    expect(error).toMatchObject({
      statusCode: 429,
      message: 'Too many codes were sent to this phone number; try again later',
      headers: { 'Retry-After': '3600' },
    });
    expect(issuedFor).toEqual(['user-1']);
    expect(withdrawnFor).toEqual(['user-1']);
    expect(await sentTypes()).toEqual([]);
  });
});
