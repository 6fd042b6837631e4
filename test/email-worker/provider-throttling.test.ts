// A provider's throttling ("slow down") is a retried attempt, not an outage: the provider circuits do not count it.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  LimitExceededException,
  SendingPausedException,
  TooManyRequestsException,
} from '@aws-sdk/client-sesv2';
import { InternalErrorException, ThrottledException } from '@aws-sdk/client-sns';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { EmailWorker, providerCircuitBreaker } from '../../functions/email-worker/email-worker.js';
import { isProviderThrottling } from '../../functions/email-worker/provider-throttling.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import {
  type EmailTransport,
  SesEmailTransport,
  SmtpEmailTransport,
} from '../../functions/email-worker/transports.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { testObservability } from '../helpers/observability.js';
import { emailWorkerContext, emailWorkerQueueOptions, SesStandIn, testProviderBreaker } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const $metadata = {};

/** An SMTP error as nodemailer rejects with it: the reply's code and text. */
const smtpReply = (responseCode: number, response: string) =>
  Object.assign(new Error(`Message failed: ${response}`), { code: 'EMESSAGE', responseCode, response });

describe('isProviderThrottling', () => {
  it('is true for SES, SNS and SMTP answers that ask the sender to slow down', () => {
    expect(
      [
        new TooManyRequestsException({ $metadata, message: 'Maximum sending rate exceeded.' }),
        new ThrottledException({ $metadata, message: 'Rate exceeded' }),
        smtpReply(454, '454 Throttling failure: Maximum sending rate exceeded.'),
        smtpReply(421, '421 vm Too many connected clients, try again in a moment'),
        smtpReply(451, '451 4.7.1 Please try again later'),
        smtpReply(450, '450-4.7.0 Rate limited'),
      ].map(isProviderThrottling),
    ).toEqual([true, true, true, true, true, true]);
  });

  it('is false for an outage, a paused account, a quota and a refusal: those still count against the circuit', () => {
    expect(
      [
        new SendingPausedException({ $metadata, message: 'Sending is paused for this account.' }),
        new LimitExceededException({ $metadata, message: 'Daily message quota exceeded.' }),
        new InternalErrorException({ $metadata, message: 'Internal error' }),
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:2525'), { code: 'ECONNREFUSED' }),
        smtpReply(452, '452 4.2.2 Mailbox full'),
        smtpReply(535, '535 5.7.8 Authentication credentials invalid'),
        smtpReply(451, '451 4.3.0 Temporary server error'),
        // SES's daily quota, as the API and SES SMTP answer it: no backoff lifts it.
        new TooManyRequestsException({ $metadata, message: 'Daily message quota exceeded.' }),
        smtpReply(454, '454 Throttling failure: Daily message quota exceeded.'),
        // A relay whose authentication or TLS is failing, not one asking for a slower pace.
        smtpReply(454, '454 4.7.0 Temporary authentication failure'),
        smtpReply(454, '454 4.7.0 TLS not available due to local problem'),
        smtpReply(451, '451 4.7.1 Relaying denied'),
        undefined,
      ].map(isProviderThrottling),
    ).toEqual(Array.from({ length: 13 }, () => false));
  });
});

describe('the provider circuit', () => {
  const breaker = (events: SecurityEvent[]) =>
    providerCircuitBreaker({
      name: 'sms-sns',
      store: new MemoryCircuitStateStore(),
      retryBaseDelaySec: 30,
      onEvent: (event) => events.push(event),
    });
  const failures = (breakerOf: ReturnType<typeof breaker>, error: Error, count: number) =>
    Promise.all(
      Array.from({ length: count }, () => breakerOf.execute(() => Promise.reject(error)).catch(() => {})),
    );

  it('does not count throttling: ten ThrottledException leave it closed, with no circuit event', async () => {
    const events: SecurityEvent[] = [];
    const sns = breaker(events);
    await failures(sns, new ThrottledException({ $metadata, message: 'Rate exceeded' }), 10);
    expect(sns.state).toBe('CLOSED');
    expect(events).toEqual([]);
  });

  it('still opens on an outage: five InternalErrorException', async () => {
    const events: SecurityEvent[] = [];
    const sns = breaker(events);
    await failures(sns, new InternalErrorException({ $metadata, message: 'Internal error' }), 5);
    expect(sns.state).toBe('OPEN');
    expect(events.map((event) => event.type)).toEqual(['circuit.opened']);
  });
});

describe('the email worker against a throttling provider', () => {
  let queues: LocalWorkerQueues;
  const ses = new SesStandIn();
  beforeAll(async () => {
    queues = await LocalWorkerQueues.start('email-worker');
    await ses.start();
  });
  afterEach(async () => {
    await queues.reset();
    ses.mode = 'up';
  });
  afterAll(async () => {
    await queues.stop();
    ses.stop();
  });

  function setup(transport: EmailTransport) {
    const { observability, audits } = testObservability('email-worker');
    const events: SecurityEvent[] = [];
    const breaker = testProviderBreaker(dynamoDb, `email-${transport.name}`, {
      onEvent: (event) => events.push(event),
    });
    const worker = new EmailWorker({
      transport,
      templates: new EmailTemplates(),
      breaker,
      ...emailWorkerQueueOptions(dynamoDb, queues),
      observability,
    });
    const run = (...records: SQSRecord[]) =>
      worker.handle({ Records: records } as SQSEvent, emailWorkerContext);
    return { run, breaker, events, audits, logger: observability.logger };
  }

  const welcome = () => ({
    id: randomUUID(),
    type: 'welcome',
    to: `u-${randomUUID()}@example.com`,
    data: { name: 'Ada' },
  });

  async function burst(size: number): Promise<SQSRecord[]> {
    const records: SQSRecord[] = [];
    for (let message = 0; message < size; message += 1) records.push(await queues.receivedRecord(welcome()));
    return records;
  }

  it('retries a burst SES throttles with the jittered backoff, logged as throttled, and keeps the circuit closed', async () => {
    const { run, breaker, events, audits, logger } = setup(new SesEmailTransport(ses.client()));
    const warn = vi.spyOn(logger, 'warn');
    ses.mode = 'throttling';
    const records = await burst(10);
    expect((await run(...records)).batchItemFailures).toHaveLength(10);
    // Each a failed attempt, backed off (the shared test options draw the jitter's highest: 30 s).
    expect(queues.visibilityChanges().map((change) => change.VisibilityTimeout)).toEqual(Array(10).fill(30));
    const throttled = warn.mock.calls.filter(
      ([line]) => line === 'Email send throttled by the provider; retrying after the backoff',
    );
    expect(throttled).toHaveLength(10);
    expect(throttled[0]?.[1]).toMatchObject({
      step: 'send',
      attempt: 1,
      last: false,
      throttled: true,
      errorName: 'TooManyRequestsException',
    });
    expect(audits.filter((audit) => audit.eventType === 'email.failed')[0]).toMatchObject({
      metadata: expect.objectContaining({ reason: 'TooManyRequestsException', throttled: true }),
    });
    // Not an outage: no circuit.opened (no CircuitOpened page), and the next send goes out.
    expect(events).toEqual([]);
    expect(breaker.state).toBe('CLOSED');
    ses.mode = 'up';
    expect((await run(await queues.receivedRecord(welcome()))).batchItemFailures).toEqual([]);
    expect(ses.accepted).toBe(1);
  });

  it('retries the sends an SMTP relay limiting its connections turns away with 421, and keeps the circuit closed', async () => {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      // As Office 365's SMTP AUTH limit: 3 connections at once; one batch of 10, unpooled, opens 10.
      maxClients: 3,
      onData(stream, _session, callback) {
        stream.resume();
        stream.on('end', () => setTimeout(callback, 200));
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const transport = new SmtpEmailTransport({
      host: '127.0.0.1',
      port: (server.server.address() as AddressInfo).port,
    });
    try {
      const { run, breaker, events, logger } = setup(transport);
      const warn = vi.spyOn(logger, 'warn');
      const { batchItemFailures } = await run(...(await burst(10)));
      const throttled = warn.mock.calls.filter(
        ([line]) => line === 'Email send throttled by the provider; retrying after the backoff',
      );
      expect(batchItemFailures.length).toBeGreaterThanOrEqual(5);
      expect(throttled).toHaveLength(batchItemFailures.length);
      expect(throttled[0]?.[1]).toMatchObject({ responseCode: 421, throttled: true });
      expect(events).toEqual([]);
      expect(breaker.state).toBe('CLOSED');
    } finally {
      transport.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
