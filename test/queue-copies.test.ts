// The copies a worker sends of a message (to the DLQ, back to its queue) fit SQS's limits whatever the producer attached.

import type { Logger } from '@aws-lambda-powertools/logger';
import type { Message } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  attemptsMadeAttribute,
  BatchDeadline,
  batchAnswerMarginMs,
  deadLetterReasonAttribute,
  processSqsBatch,
  QueueActions,
  sendBacksAttribute,
} from '../functions/shared/queue-worker.js';
import { DeadlineExceededError } from '../middleware/errors.js';
import { LocalWorkerQueues } from './helpers/local-worker-queues.js';
import { testObservability } from './helpers/observability.js';

let queues: LocalWorkerQueues;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('email-worker');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

function setup() {
  const { logger } = testObservability('email-worker').observability;
  const warn = vi.spyOn(logger, 'warn');
  const actions = new QueueActions({
    sqs: queues.client,
    queueUrl: queues.queueUrl,
    dlqUrl: queues.dlqUrl,
    logger,
  });
  return { actions, warn, logger };
}

/** Ten attributes, SQS's most: the correlation id last, and a `bulwark-` one a producer has no business setting. */
const tenAttributes = {
  ...Object.fromEntries(Array.from({ length: 8 }, (_, index) => [`a${index}`, `value-${index}`])),
  'bulwark-priority': 'high',
  'x-correlation-id': 'corr-1',
};

const attributesOf = (message: Message | undefined) =>
  Object.fromEntries(
    Object.entries(message?.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue]),
  );

describe('a DLQ copy', () => {
  it('keeps its reason and the correlation id when the producer used all 10 attributes, leaving out what does not fit and no bulwark- one', async () => {
    const { actions, warn } = setup();
    const record = await queues.receivedRecord('not json', { attributes: tenAttributes });
    await actions.deadLetter(record, 'Body is not JSON');
    const [copy, ...others] = await queues.deadLetters();
    expect(others).toEqual([]);
    expect(attributesOf(copy)).toEqual({
      [deadLetterReasonAttribute]: 'Body is not JSON',
      'x-correlation-id': 'corr-1',
      ...Object.fromEntries(Array.from({ length: 8 }, (_, index) => [`a${index}`, `value-${index}`])),
    });
    expect(warn).not.toHaveBeenCalled();
  });

  it('leaves out the producer attributes past the 9 the reason leaves room for, with a warning counting them', async () => {
    const { actions, warn } = setup();
    const attributes = {
      ...Object.fromEntries(Array.from({ length: 9 }, (_, index) => [`a${index}`, `value-${index}`])),
      'x-correlation-id': 'corr-1',
    };
    const record = await queues.receivedRecord('not json', { attributes });
    await actions.deadLetter(record, 'Body is not JSON');
    const [copy] = await queues.deadLetters();
    expect(Object.keys(attributesOf(copy)).sort()).toEqual(
      [
        deadLetterReasonAttribute,
        'x-correlation-id',
        ...Array.from({ length: 8 }, (_, index) => `a${index}`),
      ].sort(),
    );
    expect(warn).toHaveBeenCalledWith(
      "Message copied without some of its producer's attributes, to fit SQS's limits",
      {
        correlation_id: 'corr-1',
        sqsMessageId: record.messageId,
        queue: 'dlq',
        attributesLeftOut: 1,
      },
    );
  });

  it('cuts its reason to the room a large body leaves, and goes without it when there is none', async () => {
    const { actions } = setup();
    // 256 KiB less 100 bytes: the reason's name and type take 32 of them, so 68 are left for its text.
    const large = await queues.receivedRecord('x'.repeat(262_144 - 100));
    await actions.deadLetter(large, `Body is not JSON ${'y'.repeat(200)}`);
    // At the local queue's limit (1 MiB): no room at all.
    const atLimit = await queues.receivedRecord('z'.repeat(1_048_576));
    await actions.deadLetter(atLimit, 'Body is not JSON');
    const copies = await queues.deadLetters();
    expect(copies.map((copy) => [copy.Body?.length, attributesOf(copy)[deadLetterReasonAttribute]])).toEqual([
      [262_044, `Body is not JSON ${'y'.repeat(68 - 17)}`],
      [1_048_576, undefined],
    ]);
  });
});

describe('a copy sent back to the queue', () => {
  it("carries the worker's two counts when the producer used all 10 attributes", async () => {
    const { actions, warn } = setup();
    const record = await queues.receivedRecord({ id: 'm-1' }, { attributes: tenAttributes });
    await actions.sendBack(record, 0, 2);
    const [copy, ...others] = (await queues.enqueued()).filter(
      ({ message }) => message.MessageId !== record.messageId,
    );
    expect(others).toEqual([]);
    const attributes = attributesOf(copy?.message);
    expect(attributes).toMatchObject({
      [attemptsMadeAttribute]: '2',
      [sendBacksAttribute]: '1',
      'x-correlation-id': 'corr-1',
    });
    expect(Object.keys(attributes)).toHaveLength(10);
    expect(warn).toHaveBeenCalledWith(
      "Message copied without some of its producer's attributes, to fit SQS's limits",
      expect.objectContaining({ queue: 'queue', attributesLeftOut: 1 }),
    );
  });

  it("is not sent, and fails, when the body leaves no room for the worker's two counts", async () => {
    const { actions } = setup();
    // 256 KiB less 30 bytes: the two counts' names, types and values weigh more than that.
    const record = await queues.receivedRecord('x'.repeat(262_144 - 30));
    await expect(actions.sendBack(record, 0, 2)).rejects.toThrow(
      /^The copy to send back would weigh \d+ bytes over the 262144 a message may/,
    );
    expect((await queues.enqueued()).filter(({ message }) => message.MessageId !== record.messageId)).toEqual(
      [],
    );
  });
});

/**
 * Runs `record` in a batch whose deadline passes 200 ms in, its work (`lateWork`, which starts 500 ms in) still
 * running then; resolves with the batch's answer and, once the late work has settled, what each of its
 * actions came to.
 */
async function answeredThenWorking(
  record: SQSRecord,
  logger: Logger,
  lateWork: (received: SQSRecord) => Promise<unknown>[],
): Promise<{ answer: SQSBatchResponse; settled: PromiseSettledResult<unknown>[] }> {
  const end = Date.now() + batchAnswerMarginMs + 200;
  const context = { getRemainingTimeInMillis: () => end - Date.now() } as Context;
  let settled: Promise<PromiseSettledResult<unknown>[]> | undefined;
  const answer = await processSqsBatch(
    { Records: [record] } as SQSEvent,
    context,
    new BatchDeadline(context),
    logger,
    async (received) => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      settled = Promise.allSettled(lateWork(received));
      await settled;
    },
  );
  await vi.waitFor(() => expect(settled).toBeDefined(), { timeout: 2_000 });
  return { answer, settled: await (settled as Promise<PromiseSettledResult<unknown>[]>) };
}

describe("a record reported failed at its batch's deadline", () => {
  it('is neither sent back nor copied to the DLQ by its own work going on after the answer', async () => {
    const { actions, logger } = setup();
    const record = await queues.receivedRecord('{"id":"late"}');
    const { answer, settled } = await answeredThenWorking(record, logger, (received) => [
      actions.sendBack(received, 0, 1),
      actions.deadLetter(received, 'late'),
    ]);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    expect(settled).toEqual([
      { status: 'rejected', reason: expect.any(DeadlineExceededError) },
      { status: 'rejected', reason: expect.any(DeadlineExceededError) },
    ]);
    expect(queues.sentMessages()).toEqual([]);
    expect(await queues.deadLetters()).toEqual([]);
  });

  it("reports no refused copy for it: no error line, metric or audit from the worker's composite actions", async () => {
    const { actions, logger } = setup();
    const error = vi.spyOn(logger, 'error');
    const record = await queues.receivedRecord('{"id":"late-rejected"}');
    const refusals: unknown[] = [];
    const { settled } = await answeredThenWorking(record, logger, (received) => [
      actions.deferWhileCircuitOpen(received, {
        kind: 'Email',
        circuit: 'provider circuit',
        attempt: 3,
        delaySec: 10,
        context: {},
      }),
      actions.deadLetterOrRetry(received, 'invalid_message', {
        attempt: 3,
        maxAttempts: 3,
        correlationId: 'late-rejected',
        retryDelaySec: () => 30,
        refused: (refusal) => refusals.push(refusal),
      }),
    ]);
    expect(settled).toEqual([
      { status: 'fulfilled', value: true },
      { status: 'rejected', reason: expect.any(DeadlineExceededError) },
    ]);
    expect(refusals).toEqual([]);
    expect(error).not.toHaveBeenCalled();
    expect(queues.sentMessages()).toEqual([]);
    expect(queues.visibilityChanges()).toEqual([]);
  });
});
