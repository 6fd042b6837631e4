// The worker tests' queue helper: a message a test just sent is the record it gets, whatever else the queue holds.
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalWorkerQueues } from './local-worker-queues.js';

let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('webhook-worker');
});
afterAll(() => queues.stop());

describe('LocalWorkerQueues.receivedRecord', () => {
  it('receives its message behind more older visible messages than one receive returns, and leaves those visible', async () => {
    const producer = queues.sqs.createClient();
    const older = Array.from({ length: 12 }, (_, index) => index);
    for (const index of older) {
      await producer.send(
        new SendMessageCommand({ QueueUrl: queues.queueUrl, MessageBody: JSON.stringify({ older: index }) }),
      );
    }
    producer.destroy();

    const record = await queues.receivedRecord({ mine: true });
    expect(record.body).toBe('{"mine":true}');
    expect(record.attributes.ApproximateReceiveCount).toBe('1');
    const stillVisible = await queues.enqueued<{ older: number }>();
    expect(stillVisible.map(({ body }) => body.older).sort((a, b) => a - b)).toEqual(older);
  });
});
