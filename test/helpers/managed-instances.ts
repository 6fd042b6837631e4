// The runtime's invocation store as the Node.js runtime sets it up. On Lambda Managed Instances: many
// invocations at once in one process, each inside the InvokeStore (an AsyncLocalStorage), with
// AWS_LAMBDA_MAX_CONCURRENCY set. Elsewhere: one invocation at a time, the store holding the current one's
// context until the next invocation replaces it.
import { InvokeStore, InvokeStoreBase } from '@aws/lambda-invoke-store';
import { afterAll, beforeAll, vi } from 'vitest';

interface RuntimeInvocations {
  /** Runs `run` as the runtime runs one invocation: inside the store, with its own request id. */
  invoke: <R>(requestId: string, run: () => Promise<R>) => Promise<R>;
  /** The Lambda request id of the invocation in flight, as the runtime's store holds it. */
  requestId: () => string;
}

/**
 * Installs the runtime's store for the test file (and removes it after). The runtime installs one store
 * per process, so a file installs one: this or {@link oneInvocationAtATime}, never both. Call it at the top
 * level of a test file, before anything that reads AWS_LAMBDA_MAX_CONCURRENCY is built.
 */
function runtimeStore(maxConcurrency: string | undefined): RuntimeInvocations {
  let store: InvokeStoreBase | undefined;
  beforeAll(async () => {
    vi.stubEnv('AWS_LAMBDA_MAX_CONCURRENCY', maxConcurrency);
    store = await InvokeStore.getInstanceAsync(maxConcurrency !== undefined);
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    (globalThis as { awslambda?: unknown }).awslambda = undefined;
  });
  const installed = (): InvokeStoreBase => {
    if (store === undefined) throw new Error('the runtime store is installed in beforeAll');
    return store;
  };
  return {
    invoke: (requestId, run) =>
      installed().run({ [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: requestId }, run),
    requestId: () => installed().getRequestId(),
  };
}

/** Lambda Managed Instances: the multi-concurrency store, with AWS_LAMBDA_MAX_CONCURRENCY set. */
export function managedInstances(): RuntimeInvocations {
  return runtimeStore('8');
}

/**
 * The standard runtime: one invocation at a time, without AWS_LAMBDA_MAX_CONCURRENCY. Its store's run()
 * makes a context current and leaves it so, whatever async work of an earlier invocation runs later.
 */
export function oneInvocationAtATime(): RuntimeInvocations {
  return runtimeStore(undefined);
}
