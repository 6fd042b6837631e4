// An operator's DLQ redrive of email messages, against a real local-aws-sqs (the queue, its DLQ and the redrive policy).
import type { Message } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, expect, inject, it } from 'vitest';
import { EmailWorker } from '../../functions/email-worker/email-worker.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import type { EmailTransport } from '../../functions/email-worker/transports.js';
import { deadLetterReasonAttribute } from '../../functions/shared/queue-worker.js';
import { workers } from '../../functions/workers.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DeliveryRejectedError } from '../../middleware/errors.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues, stringAttributesOf } from '../helpers/local-worker-queues.js';
import { testObservability } from '../helpers/observability.js';
import { testTableNames } from '../helpers/tables.js';
import { emailWorkerContext, emailWorkerQueueOptions, testProviderTimeoutMs } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const maxAttempts = workers['email-worker'].maxReceiveCount;
const context = emailWorkerContext;

let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

/** A provider that refuses the message for good, is down, or accepts, as `mode` says. */
function provider() {
  const state = { mode: 'refusing' as 'refusing' | 'down' | 'up', sent: 0 };
  const transport: EmailTransport = {
    name: 'smtp',
    async send() {
      if (state.mode === 'refusing') throw new DeliveryRejectedError('ses', 'MessageRejected');
      if (state.mode === 'down') {
        throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:587'), { code: 'ECONNREFUSED' });
      }
      state.sent += 1;
      return `<${state.sent}@test>`;
    },
    close() {},
  };
  return { state, transport };
}

function setup(transport: EmailTransport) {
  const { observability, audits } = testObservability('email-worker');
  const worker = new EmailWorker({
    transport,
    templates: new EmailTemplates(),
    breaker: new CircuitBreaker<string>({
      name: `email-redrive-${crypto.randomUUID()}`,
      tableName: testTableNames.toolkit,
      client: dynamoDb,
      failureThreshold: 100,
      timeoutMs: testProviderTimeoutMs,
    }),
    ...emailWorkerQueueOptions(dynamoDb, queues),
    observability,
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return { run, audits };
}

const welcome = () =>
  JSON.stringify({
    id: crypto.randomUUID(),
    type: 'welcome',
    to: `u-${crypto.randomUUID()}@example.com`,
    data: { name: 'Grace' },
  });

it('dead-letters a redriven message that runs out of attempts with that reason, not the one it was redriven with', async () => {
  const { state, transport } = provider();
  const { run } = setup(transport);
  const body = welcome();
  await run(await queues.receivedRecord(body, { attributes: { 'x-correlation-id': 'corr-redrive' } }));

  // Fixed and redriven; then the provider is down for all of its attempts.
  await queues.redriveDeadLetters();
  state.mode = 'down';
  let [received] = await queues.receiveRecords();
  expect(received?.messageAttributes[deadLetterReasonAttribute]?.stringValue).toMatch(/MessageRejected/);
  for (let attempt = 1; attempt < maxAttempts; attempt += 1) {
    expect((await run(received as SQSRecord)).batchItemFailures).toHaveLength(1);
    received = await queues.redelivered(received as SQSRecord);
  }
  expect(await run(received as SQSRecord)).toEqual({ batchItemFailures: [] });

  expect(await queues.receiveRecords()).toEqual([]);
  const [copy, ...others] = await queues.deadLetters([body]);
  expect(others).toEqual([]);
  expect(stringAttributesOf(copy as Message)).toEqual({
    [deadLetterReasonAttribute]: `attempts used: ${maxAttempts} of ${maxAttempts}`,
    'x-correlation-id': 'corr-redrive',
  });
});

it('marks a redriven message redriven in its audit lines, and a new one not', async () => {
  const { state, transport } = provider();
  state.mode = 'up';
  const { run, audits } = setup(transport);
  const redriven = welcome();
  const fresh = welcome();

  await run(
    await queues.receivedRecord(redriven, {
      attributes: { [deadLetterReasonAttribute]: 'ses refused the message for good (MessageRejected)' },
    }),
  );
  await run(await queues.receivedRecord(fresh));
  await run(
    await queues.receivedRecord('not json', {
      attributes: { [deadLetterReasonAttribute]: 'Body is not JSON' },
    }),
  );

  expect(audits.map((audit) => [audit.eventType, audit.metadata?.redriven])).toEqual([
    ['email.sent', true],
    ['email.sent', undefined],
    ['email.rejected', true],
  ]);
  expect(audits[0]?.metadata?.messageId).toBe(JSON.parse(redriven).id);
});
