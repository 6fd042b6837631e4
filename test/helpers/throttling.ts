// DynamoDB throttling for tests: the error it answers with, and an idempotency store that meets it once.
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import { ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { vi } from 'vitest';

/** What DynamoDB throws when it throttles a request. */
export function throttlingError(): ProvisionedThroughputExceededException {
  return new ProvisionedThroughputExceededException({ $metadata: {}, message: 'Rate exceeded' });
}

/**
 * Makes the first `deleteRecord` of a Powertools idempotency store (the one after a failed call) fail
 * as DynamoDB throttling does; later ones go through.
 */
export function throttleFirstDelete(persistenceStore: BasePersistenceLayer): void {
  const deleteRecord = persistenceStore.deleteRecord.bind(persistenceStore);
  let throttles = 1;
  vi.spyOn(persistenceStore, 'deleteRecord').mockImplementation((data) => {
    throttles -= 1;
    return throttles >= 0 ? Promise.reject(throttlingError()) : deleteRecord(data);
  });
}
