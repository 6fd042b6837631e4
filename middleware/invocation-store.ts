// Per-invocation state that stays with its invocation when Lambda runs several at once in one process.

/**
 * The slice of the store Lambda's Node.js runtime keeps for each invocation
 * (`globalThis.awslambda.InvokeStore`, from `@aws/lambda-invoke-store`). On Lambda Managed Instances
 * one worker thread runs many invocations concurrently, each inside `InvokeStore.run()` on an
 * AsyncLocalStorage, so a value set there is seen only by the invocation that set it and its async work.
 */
interface InvocationStore {
  hasContext(): boolean;
  getContext(): object | undefined;
  get(key: symbol): unknown;
  set(key: symbol, value: unknown): void;
  run<T>(context: object, fn: () => T): T;
}

/** The runtime's store while an invocation is running in it; undefined elsewhere (tests, the local runtime). */
function currentInvocationStore(): InvocationStore | undefined {
  const store = (globalThis as { awslambda?: { InvokeStore?: InvocationStore | undefined } | undefined })
    .awslambda?.InvokeStore;
  return store?.hasContext() ? store : undefined;
}

/**
 * A value that belongs to the invocation in flight: kept in the runtime's invocation store when there is
 * one (Powertools keeps its log keys and metrics there too), else in this object, which is right wherever
 * one invocation runs at a time. Each slot has its own key, so two slots never see each other's values.
 *
 * @example
 * const scope = new InvocationSlot<AuditRequestScope>('audit scope');
 * scope.set({ requestId });   // in a middleware's before
 * scope.get()?.requestId;     // anywhere in the same invocation, also while others run concurrently
 */
export class InvocationSlot<T> {
  private readonly key: symbol;
  private fallback: T | undefined;

  constructor(description: string) {
    this.key = Symbol(`bulwark.${description}`);
  }

  get(): T | undefined {
    const store = currentInvocationStore();
    return store ? (store.get(this.key) as T | undefined) : this.fallback;
  }

  set(value: T | undefined): void {
    const store = currentInvocationStore();
    if (store) store.set(this.key, value);
    else this.fallback = value;
  }
}

/**
 * Runs a callback in the invocation in flight when it was made, wherever it is called from later.
 * Where invocations run concurrently, a timer shared by them (a breaker's) fires in the context of
 * whichever armed it; what the callback logs or audits then belongs to its own. Undefined outside an
 * invocation. Use only where Lambda runs invocations concurrently (`AWS_LAMBDA_MAX_CONCURRENCY`): where it
 * runs one at a time, re-entering an earlier invocation would replace the one in flight.
 */
export function inCurrentInvocation(callback: () => void): (() => void) | undefined {
  const store = currentInvocationStore();
  const context = store?.getContext();
  if (store === undefined || context === undefined) return undefined;
  return () => store.run(context, callback);
}
