// A send that meets the provider's open circuit is deferred without spending one of the message's attempts.
import { randomUUID } from 'node:crypto';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { EmailWorker, type EmailWorkerOptions } from '../../functions/email-worker/email-worker.js';
import type { OutgoingSms, SmsTransport } from '../../functions/email-worker/sms-transports.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import { SesEmailTransport } from '../../functions/email-worker/transports.js';
import {
  attemptsMadeAttribute,
  deadLetterReasonAttribute,
  sendBacksAttribute,
} from '../../functions/shared/queue-worker.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import type { MetricName } from '../../middleware/metrics/catalog.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { emailWorkerContext, emailWorkerQueueOptions, SesStandIn, testProviderBreaker } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });

/** An SMS provider that is down while `down` is set, and records what it accepted otherwise. */
class SwitchableSms implements SmsTransport {
  readonly name = 'sns';
  down = false;
  readonly sent: OutgoingSms[] = [];
  async send(sms: OutgoingSms): Promise<string> {
    if (this.down) throw new Error('InternalError: SNS is failing');
    this.sent.push(sms);
    return randomUUID();
  }
  close(): void {}
}

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

/**
 * A circuit that opens at the first failure and lets a probe through 4 s later (long enough for a burst to
 * meet it still open on a loaded machine; with 1 s a slow batch met the half-open probe), and a 1 s send
 * limit: a deferred copy is due within about 4 s. `random` 0: no jitter on top of the circuit's wait.
 */
const reopenAfterMs = 4000;
const quickCircuit = {
  failureThreshold: 1,
  resetTimeoutMs: reopenAfterMs,
  successThreshold: 1,
  timeoutMs: 1000,
};

function setup(options: Partial<EmailWorkerOptions> = {}) {
  const { observability, audits } = testObservability('email-worker');
  const { metrics } = observability;
  const sms = new SwitchableSms();
  const worker = new EmailWorker({
    transport: new SesEmailTransport(ses.client()),
    templates: new EmailTemplates(),
    breaker: testProviderBreaker(dynamoDb, 'email-ses', quickCircuit),
    sms: { transport: sms, breaker: testProviderBreaker(dynamoDb, 'sms-sns', quickCircuit) },
    ...emailWorkerQueueOptions(dynamoDb, queues),
    random: () => 0,
    observability,
    ...options,
  });
  const run = (...records: SQSRecord[]) =>
    worker.handle({ Records: records } as SQSEvent, emailWorkerContext);
  return { worker, run, sms, audits, metrics, logger: observability.logger };
}

/** How many times a metric was recorded since the last flush (each record of these is a count of 1). */
function timesRecorded(metrics: Metrics, name: MetricName): number {
  const value = storedMetric(metrics, name);
  return Array.isArray(value) ? value.length : value === undefined ? 0 : 1;
}

const welcome = () => ({
  id: randomUUID(),
  type: 'welcome',
  to: `u-${randomUUID()}@example.com`,
  data: { name: 'Ada' },
});

const smsCode = () => ({
  id: randomUUID(),
  type: 'sms',
  to: '+14155552671',
  template: 'sms-verification',
  data: { code: '123456', expiresAt: new Date(Date.now() + 600_000).toISOString() },
});

/**
 * Opens the email circuit: one message whose send fails while SES is down. The message is then deleted
 * (with the calls recorded so far), so that only the messages under test are received afterwards.
 */
async function openEmailCircuit(run: ReturnType<typeof setup>['run']): Promise<void> {
  ses.mode = 'down';
  const opener = await queues.receivedRecord(welcome());
  expect((await run(opener)).batchItemFailures).toHaveLength(1);
  await queues.reset();
}

/**
 * Receives and processes what the worker's queue holds until `done` says so (within 15 s of real time):
 * deferred copies come back when they are due, and copies turned away again by the half-open circuit's
 * probe are deferred once more. The receive counts of the records it handed over, by message id.
 */
async function drain(run: ReturnType<typeof setup>['run'], done: () => boolean): Promise<number[]> {
  const receiveCounts: number[] = [];
  const deadline = performance.now() + 15_000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error('the queue was not drained within 15 s');
    const records = await queues.receiveRecords();
    if (records.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    receiveCounts.push(...records.map((record) => Number(record.attributes.ApproximateReceiveCount)));
    await run(...records);
  }
  return receiveCounts;
}

describe('a send that meets the open provider circuit', () => {
  it('is deferred without spending an attempt: a burst on its last receive is sent once SES is back, none in the DLQ', async () => {
    const { run, audits, metrics, logger } = setup();
    const info = vi.spyOn(logger, 'info');
    await openEmailCircuit(run);
    const requestsWhenOpened = ses.requests;
    const failedWhenOpened = timesRecorded(metrics, 'EmailFailed');
    const auditsWhenOpened = audits.length;
    // The burst, each message on the receive the queue's redrive would end with (maxReceiveCount 3).
    const burst: SQSRecord[] = [];
    for (let message = 0; message < 10; message += 1) {
      burst.push(await queues.receivedRecord(welcome(), { receiveCount: 3 }));
    }
    expect((await run(...burst)).batchItemFailures).toEqual([]);
    // Nothing reached SES, no receive was delayed (each record is processed), and nothing failed.
    expect(ses.requests).toBe(requestsWhenOpened);
    expect(queues.visibilityChanges()).toEqual([]);
    expect(timesRecorded(metrics, 'EmailFailed')).toBe(failedWhenOpened);
    expect(audits.slice(auditsWhenOpened).filter((audit) => audit.eventType === 'email.failed')).toEqual([]);
    const copies = queues.sentMessages();
    expect(copies.map((copy) => copy.MessageBody).sort()).toEqual(burst.map((record) => record.body).sort());
    for (const copy of copies) {
      expect(copy).toMatchObject({
        QueueUrl: queues.queueUrl,
        MessageAttributes: {
          // The two receives before this one: the copy's first receive is the third attempt again.
          [attemptsMadeAttribute]: { DataType: 'Number', StringValue: '2' },
          [sendBacksAttribute]: { DataType: 'Number', StringValue: '1' },
        },
      });
      // The circuit's retry-after (what is left of its 4 s), at least one send's limit (1 s); no jitter.
      expect(copy.DelaySeconds).toBeGreaterThanOrEqual(1);
      expect(copy.DelaySeconds).toBeLessThanOrEqual(reopenAfterMs / 1000);
    }
    const deferred = info.mock.calls.filter(
      ([line]) => line === 'Email deferred: its provider circuit is open',
    );
    expect(deferred).toHaveLength(10);
    expect(deferred[0]?.[1]).toMatchObject({
      attemptsMade: 2,
      deferral: 1,
      delaySec: copies[0]?.DelaySeconds,
    });

    // SES is back: every copy goes out on its own first receive, whatever the half-open probe turned away.
    ses.mode = 'up';
    const receiveCounts = await drain(run, () => ses.accepted === 10);
    expect(receiveCounts.every((count) => count === 1)).toBe(true);
    expect(await queues.deadLetters()).toEqual([]);
    expect(timesRecorded(metrics, 'EmailSent')).toBe(10);
  });

  it('defers an SMS the same way, on its own provider circuit', async () => {
    const { run, sms, metrics, logger } = setup();
    const info = vi.spyOn(logger, 'info');
    sms.down = true;
    expect((await run(await queues.receivedRecord(smsCode()))).batchItemFailures).toHaveLength(1);
    await queues.reset();
    const code = await queues.receivedRecord(smsCode(), { receiveCount: 3 });
    expect((await run(code)).batchItemFailures).toEqual([]);
    // The opener's failed send only.
    expect(timesRecorded(metrics, 'SmsFailed')).toBe(1);
    expect(info).toHaveBeenCalledWith(
      'SMS deferred: its provider circuit is open',
      expect.objectContaining({ attemptsMade: 2, deferral: 1 }),
    );
    sms.down = false;
    await drain(run, () => sms.sent.length === 1);
    expect(await queues.deadLetters()).toEqual([]);
  });

  it('is a failed attempt past maxCircuitDeferrals, so a message still ends in a long outage', async () => {
    const { run, audits } = setup({ maxCircuitDeferrals: 0 });
    await openEmailCircuit(run);
    const message = await queues.receivedRecord(welcome());
    expect((await run(message)).batchItemFailures).toEqual([{ itemIdentifier: message.messageId }]);
    expect(queues.sentMessages()).toEqual([]);
    expect(queues.visibilityChanges().map((change) => change.ReceiptHandle)).toEqual([message.receiptHandle]);
    expect(audits.filter((audit) => audit.eventType === 'email.failed')).toHaveLength(2);
  });

  it('defers a copy below maxCircuitDeferrals once more, and counts one at it as a failed attempt', async () => {
    const { run } = setup({ maxCircuitDeferrals: 2 });
    await openEmailCircuit(run);
    const below = await queues.receivedRecord(welcome(), {
      attributes: { [attemptsMadeAttribute]: '0', [sendBacksAttribute]: '1' },
    });
    expect((await run(below)).batchItemFailures).toEqual([]);
    expect(queues.sentMessages().map((copy) => copy.MessageAttributes?.[sendBacksAttribute])).toEqual([
      { DataType: 'Number', StringValue: '2' },
    ]);
    const atCap = await queues.receivedRecord(welcome(), {
      attributes: { [attemptsMadeAttribute]: '0', [sendBacksAttribute]: '2' },
    });
    expect((await run(atCap)).batchItemFailures).toEqual([{ itemIdentifier: atCap.messageId }]);
    expect(queues.sentMessages()).toHaveLength(1);
  });

  it.each([Number.NaN, -1, 2.5])('refuses maxCircuitDeferrals %s', (maxCircuitDeferrals) => {
    expect(() => setup({ maxCircuitDeferrals })).toThrow(InvalidOptionsError);
  });

  it('moves a copy whose attempts are used to the DLQ itself, unsent: SQS counts only the copy’s receives', async () => {
    const { run } = setup();
    const requestsBefore = ses.requests;
    const spent = await queues.receivedRecord(welcome(), {
      receiveCount: 2,
      attributes: { [attemptsMadeAttribute]: '2', [sendBacksAttribute]: '1' },
    });
    expect((await run(spent)).batchItemFailures).toEqual([]);
    expect(ses.requests).toBe(requestsBefore);
    const [deadLetter, ...more] = await queues.deadLetters();
    expect(more).toEqual([]);
    expect(deadLetter?.Body).toBe(spent.body);
    expect(deadLetter?.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue).toBe(
      'attempts used: 3 of 3',
    );
  });
});
