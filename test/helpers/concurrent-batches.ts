// Two SQS batches handled at once by one worker, as Lambda Managed Instances may run them.
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { vi } from 'vitest';

interface BatchWorker {
  handle(event: SQSEvent, context: Context): Promise<SQSBatchResponse>;
}

/**
 * Hands `first` to `worker` with 900 s left and `second` with 40 s left, at once: the second begins before
 * the first has written its in-progress record. Returns both answers and, per message `id`, the remaining
 * time each in-progress record was written with (what Powertools' `saveInProgress` was given).
 */
export async function handleTwoBatchesAtOnce(
  worker: BatchWorker,
  persistenceStore: BasePersistenceLayer,
  context: Context,
  [first, second]: readonly [SQSRecord, SQSRecord],
): Promise<{ failures: SQSBatchResponse['batchItemFailures'][]; remainingMsById: Record<string, unknown> }> {
  const saveInProgress = vi.spyOn(persistenceStore, 'saveInProgress');
  const invocation = (remainingMs: number) =>
    ({ ...context, getRemainingTimeInMillis: () => remainingMs }) as Context;
  const answers = await Promise.all([
    worker.handle({ Records: [first] } as SQSEvent, invocation(900_000)),
    worker.handle({ Records: [second] } as SQSEvent, invocation(40_000)),
  ]);
  const remainingMsById = Object.fromEntries(
    saveInProgress.mock.calls.map(([data, remainingMs]) => [(data as { id: string }).id, remainingMs]),
  );
  saveInProgress.mockRestore();
  return { failures: answers.map((answer) => answer.batchItemFailures), remainingMsById };
}
