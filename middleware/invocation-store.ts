// Per-invocation state that stays with its invocation when Lambda runs several at once in one process.

/**
 * The slice of the store Lambda's Node.js runtime keeps for each invocation
 * (`globalThis.awslambda.InvokeStore`, from `@aws/lambda-invoke-store`). On Lambda Managed Instances
 * one worker thread runs many invocations concurrently, each inside `InvokeStore.run()` on an
 * AsyncLocalStorage, so a value set there is seen only by the invocation that set it and its async work.
 */
interface InvocationStore {
  hasContext(): boolean;
  get(key: symbol): unknown;
  set(key: symbol, value: unknown): void;
}

/** The runtime's store while an invocation is running in it; undefined elsewhere (tests, the local runtime). */
function currentInvocationStore(): InvocationStore | undefined {
  const store = (globalThis as { awslambda?: { InvokeStore?: InvocationStore } }).awslambda?.InvokeStore;
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
