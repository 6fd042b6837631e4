// Lambda Managed Instances as the Node.js runtime sets them up: many invocations at once in one process,
// each inside the runtime's InvokeStore (an AsyncLocalStorage), with AWS_LAMBDA_MAX_CONCURRENCY set.
import { InvokeStore, InvokeStoreBase } from '@aws/lambda-invoke-store';
import { afterAll, beforeAll, vi } from 'vitest';

/**
 * Installs the runtime's multi-concurrency store for the test file (and removes it after), and returns
 * `invoke`, which runs `run` as the runtime runs one invocation: inside the store, with its own request id.
 * Call it at the top level of a test file, before anything that reads AWS_LAMBDA_MAX_CONCURRENCY is built.
 */
export function managedInstances(): {
  invoke: <R>(requestId: string, run: () => Promise<R>) => Promise<R>;
  /** The Lambda request id of the invocation in flight, as the runtime's store holds it. */
  requestId: () => string;
} {
  let store: InvokeStoreBase | undefined;
  beforeAll(async () => {
    vi.stubEnv('AWS_LAMBDA_MAX_CONCURRENCY', '8');
    store = await InvokeStore.getInstanceAsync(true);
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    (globalThis as { awslambda?: unknown }).awslambda = undefined;
  });
  const installed = (): InvokeStoreBase => {
    if (store === undefined) throw new Error('managedInstances(): the store is installed in beforeAll');
    return store;
  };
  return {
    invoke: (requestId, run) =>
      installed().run({ [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: requestId }, run),
    requestId: () => installed().getRequestId(),
  };
}
