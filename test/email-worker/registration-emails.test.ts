import { Logger } from '@aws-lambda-powertools/logger';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { readQueueEnvironment } from '../../functions/shared/environment.js';
import { RegistrationEmails } from '../../functions/users/registration-emails.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { ConflictError, ServiceUnavailableError, TooManyRequestsError } from '../../middleware/errors.js';
import { sendMessageBatchFailures } from '../helpers/sqs-failures.js';

const sqsMock = mockClient(SQSClient);
afterEach(() => sqsMock.reset());

const queues = readQueueEnvironment({
  EMAIL_QUEUE_URL: 'http://127.0.0.1:1/000000000000/bulwark-email',
  VERIFICATION_LINK_SECRET: 'x'.repeat(32),
  APP_BASE_URL: 'https://api.example.com',
});
const user = { id: 'user-1', email: 'ada@example.com', name: 'Ada', createdAt: '2030-01-01T00:00:00Z' };

function setup() {
  const audits: AuditEvent[] = [];
  const emails = new RegistrationEmails({
    sqs: new SQSClient({ region: 'us-east-1' }),
    queues,
    logger: new Logger({ logLevel: 'SILENT' }),
    auditLogger: new AuditLogger({ sink: (event) => audits.push(event), logToConsole: false }),
  });
  return { emails, audits };
}

describe('registration emails', () => {
  it('enqueue a welcome and a verification email in one batch, with the correlation id', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await setup().emails.enqueue(user, 'corr-1');
    const input = sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input;
    const bodies = (input?.Entries ?? []).map((entry) => JSON.parse(entry.MessageBody ?? '{}'));
    expect(bodies.map((body) => body.type)).toEqual(['welcome', 'verification']);
    expect(bodies[1].data.verificationUrl).toMatch(/^https:\/\/api\.example\.com\/users\/user-1\/verify\?/);
    expect(new Set(bodies.map((body) => body.id)).size).toBe(2);
    expect(input?.Entries?.[0]?.MessageAttributes).toEqual({
      'x-correlation-id': { DataType: 'String', StringValue: 'corr-1' },
    });
  });

  it('never fail the registration when SQS is down or refuses an entry: they log and audit it', async () => {
    for (const fail of sendMessageBatchFailures(sqsMock, '1')) {
      fail();
      const { emails, audits } = setup();
      await expect(emails.enqueue(user, undefined)).resolves.toBeUndefined();
      expect(audits).toEqual([
        expect.objectContaining({ eventType: 'email.enqueue_failed', outcome: 'error', userId: 'user-1' }),
      ]);
    }
  });

  it('do nothing when no email queue is configured', async () => {
    const emails = new RegistrationEmails({
      sqs: undefined,
      queues: readQueueEnvironment({}),
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
    });
    await emails.enqueue(user, undefined);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  });

  it('refuse to start with a queue but no link secret, and with an invalid environment', () => {
    expect(
      () =>
        new RegistrationEmails({
          sqs: undefined,
          queues: readQueueEnvironment({ EMAIL_QUEUE_URL: 'http://127.0.0.1:1/q' }),
          logger: new Logger({ logLevel: 'SILENT' }),
          auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
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
    expect(() =>
      readQueueEnvironment({ VERIFICATION_LINK_SECRET: JSON.stringify({ current: 'short' }) }),
    ).toThrow('VERIFICATION_LINK_SECRET');
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

describe('a new SMS code (sendPhoneCode)', () => {
  const withPhone = { ...user, phone: '+14155552671' };
  const issued = { code: '123456', expiresAt: new Date(Date.now() + 600_000) };

  function phoneSetup(issuePhoneCode = async () => issued) {
    return new RegistrationEmails({
      sqs: new SQSClient({ region: 'us-east-1' }),
      queues,
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      issuePhoneCode,
    });
  }

  it('enqueues one SMS with the code and resolves with its expiry', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await expect(phoneSetup().sendPhoneCode(withPhone, 'corr-2')).resolves.toEqual(issued.expiresAt);
    const entries = sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries ?? [];
    expect(entries.map((entry) => JSON.parse(entry.MessageBody ?? '{}'))).toEqual([
      expect.objectContaining({
        type: 'sms',
        to: '+14155552671',
        template: 'sms-verification',
        data: { code: '123456', expiresInMinutes: 10 },
      }),
    ]);
  });

  it('answers 503 with Retry-After when SQS is down or refuses the SMS', async () => {
    for (const fail of sendMessageBatchFailures(sqsMock, '0')) {
      fail();
      const error = await phoneSetup()
        .sendPhoneCode(withPhone, undefined)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '60' } });
    }
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
      issuePhoneCode: counting,
    });
    await expect(unconfigured.sendPhoneCode(withPhone, undefined)).rejects.toBeInstanceOf(
      ServiceUnavailableError,
    );
    await expect(phoneSetup(counting).sendPhoneCode(user, undefined)).rejects.toBeInstanceOf(ConflictError);
    expect(issuedCodes).toBe(0);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  });
});

describe("a phone number's SMS budget (admitSms)", () => {
  const withPhone = { ...user, phone: '+14155552671' };
  const spent = async () => ({ allowed: false, retryAfterSec: 3600 });

  /** A code issuer that runs the caller's check where UsersModel does: after its own, before writing. */
  function issuer() {
    const issuedFor: string[] = [];
    const issuePhoneCode = async (userId: string, beforeIssuing: () => Promise<void>) => {
      await beforeIssuing();
      issuedFor.push(userId);
      return { code: '123456', expiresAt: new Date(Date.now() + 600_000) };
    };
    return { issuedFor, issuePhoneCode };
  }

  function budgetSetup(admitSms: (phone: string) => Promise<{ allowed: boolean; retryAfterSec: number }>) {
    const { issuedFor, issuePhoneCode } = issuer();
    const emails = new RegistrationEmails({
      sqs: new SQSClient({ region: 'us-east-1' }),
      queues,
      logger: new Logger({ logLevel: 'SILENT' }),
      auditLogger: new AuditLogger({ logToConsole: false, sink: () => {} }),
      issuePhoneCode,
      admitSms,
    });
    return { emails, issuedFor };
  }

  const sentTypes = () =>
    sqsMock
      .commandCalls(SendMessageBatchCommand)
      .flatMap((call) => call.args[0].input.Entries ?? [])
      .map((entry) => JSON.parse(entry.MessageBody ?? '{}').type);

  it('is asked with the number, and an admitted registration sends its SMS', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const asked: string[] = [];
    const { emails, issuedFor } = budgetSetup(async (phone) => {
      asked.push(phone);
      return { allowed: true, retryAfterSec: 0 };
    });
    await emails.enqueue(withPhone, undefined);
    expect(asked).toEqual(['+14155552671']);
    expect(issuedFor).toEqual(['user-1']);
    expect(sentTypes()).toEqual(['welcome', 'verification', 'sms']);
  });

  it('once spent, a registration still sends its emails but no SMS, and issues no code', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const { emails, issuedFor } = budgetSetup(spent);
    await emails.enqueue(withPhone, undefined);
    expect(sentTypes()).toEqual(['welcome', 'verification']);
    expect(issuedFor).toEqual([]);
  });

  it('is not spent on a user whose phone is already verified (409 first)', async () => {
    const asked: string[] = [];
    const { emails, issuedFor } = budgetSetup(async (phone) => {
      asked.push(phone);
      return { allowed: true, retryAfterSec: 0 };
    });
    const verified = { ...withPhone, phoneVerifiedAt: '2030-01-01T00:00:00Z' };
    await expect(emails.sendPhoneCode(verified, undefined)).rejects.toBeInstanceOf(ConflictError);
    expect(asked).toEqual([]);
    expect(issuedFor).toEqual([]);
  });

  it('once spent, a new code is a 429 with Retry-After, with no code issued and nothing queued', async () => {
    const { emails, issuedFor } = budgetSetup(spent);
    const error = await emails.sendPhoneCode(withPhone, undefined).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TooManyRequestsError);
    expect(error).toMatchObject({
      statusCode: 429,
      message: 'Too many codes were sent to this phone number; try again later',
      headers: { 'Retry-After': '3600' },
    });
    expect(issuedFor).toEqual([]);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  });
});
