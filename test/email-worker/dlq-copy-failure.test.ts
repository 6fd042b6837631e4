// The email worker when the DLQ refuses the copy of a message it can never send: logged, counted, backed off, never silent.
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { EmailWorker } from '../../functions/email-worker/email-worker.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import type { EmailTransport } from '../../functions/email-worker/transports.js';
import { attemptsMadeAttribute } from '../../functions/shared/queue-worker.js';
import { workers } from '../../functions/workers.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { emailWorkerContext, emailWorkerQueueOptions, testProviderBreaker } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const context = emailWorkerContext;

/** No message here is sendable: a send would be a failure of the test. */
const refusingTransport: EmailTransport = {
  name: 'smtp',
  send: () => Promise.reject(new Error('nothing here may be sent')),
  close: () => {},
};

let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

/** A worker whose DLQ is a queue the server does not have: every copy to it is refused. */
function setup() {
  const { observability, audits } = testObservability('email-worker');
  const error = vi.spyOn(observability.logger, 'error');
  const worker = new EmailWorker({
    transport: refusingTransport,
    templates: new EmailTemplates(),
    breaker: testProviderBreaker(dynamoDb, 'email-dlq-refused'),
    ...emailWorkerQueueOptions(dynamoDb, queues),
    dlqUrl: `${queues.dlqUrl}-missing`,
    observability,
  });
  const run = (record: SQSRecord) => worker.handle({ Records: [record] } as SQSEvent, context);
  return { run, audits, error, metrics: observability.metrics };
}

const receive = (receiveCount: number, attributes: Record<string, string> = {}) =>
  queues.receivedRecord('not json', {
    receiveCount,
    attributes: { 'x-correlation-id': 'corr-dlq', ...attributes },
  });

describe('a DLQ copy the DLQ refuses', () => {
  it('is logged as an error, counted in EmailFailed and backed off like a failed send, then reported failed', async () => {
    const { run, audits, error, metrics } = setup();
    const record = await receive(1);
    queues.clearCalls();
    expect(await run(record)).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    expect(error).toHaveBeenCalledWith(
      'Email message rejected, but it could not be dead-lettered; retrying',
      {
        correlation_id: 'corr-dlq',
        sqsMessageId: record.messageId,
        reason: 'Body is not JSON',
        attempt: 1,
        last: false,
        delaySec: 30,
        error: expect.objectContaining({ name: expect.stringContaining('QueueDoesNotExist') }),
      },
    );
    expect(storedMetric(metrics, 'EmailFailed')).toBe(1);
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: record.receiptHandle, VisibilityTimeout: 30, succeeded: true },
    ]);
    expect(audits).toEqual([]);
  });

  it('on the last receive is visible at once for the redrive, and audited as rejected by it', async () => {
    const { run, audits, error } = setup();
    const record = await receive(workers['email-worker'].maxReceiveCount);
    queues.clearCalls();
    expect(await run(record)).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    expect(error).toHaveBeenCalledWith(
      'Email message rejected, but it could not be dead-lettered on the last attempt; the redrive moves it to the DLQ without its reason',
      expect.objectContaining({ attempt: 3, last: true, delaySec: 0 }),
    );
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: record.receiptHandle, VisibilityTimeout: 0, succeeded: true },
    ]);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.rejected',
        outcome: 'failure',
        correlationId: 'corr-dlq',
        metadata: expect.objectContaining({
          reason: 'invalid_message',
          detail: 'Body is not JSON',
          deadLetteredBy: 'redrive',
        }),
      }),
    ]);
  });

  it("counts its attempts by SQS's receives alone: a producer's bulwark-attempts-made does not make the first one the last", async () => {
    const { run, error } = setup();
    const record = await receive(1, { [attemptsMadeAttribute]: '1000' });
    queues.clearCalls();
    await run(record);
    expect(error).toHaveBeenCalledWith(
      'Email message rejected, but it could not be dead-lettered; retrying',
      expect.objectContaining({ attempt: 1, last: false, delaySec: 30 }),
    );
    expect(queues.visibilityChanges()).toEqual([
      { ReceiptHandle: record.receiptHandle, VisibilityTimeout: 30, succeeded: true },
    ]);
  });
});
