// The standard Lambda runtime runs one invocation at a time, its InvokeStore holding the current one's
// context until the next replaces it: a call left from an earlier invocation must not bring that one back.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import { oneInvocationAtATime } from '../helpers/managed-instances.js';

const { invoke, requestId } = oneInvocationAtATime();

describe('a call timing out after its invocation has given way to the next', () => {
  it('times out in the invocation in flight, which stays the current one', async () => {
    const breaker = new CircuitBreaker<string>({
      name: 'geocoder',
      store: new MemoryCircuitStateStore(),
      timeoutMs: 50,
    });
    // The first invocation's call hangs, and the function answers without waiting for it.
    let armed: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      armed = resolve;
    });
    const hung = invoke('lambda-first', () =>
      breaker.execute(() => {
        armed();
        return new Promise<string>(() => undefined);
      }),
    );
    await started;
    // The next invocation is in flight when the first one's call times out.
    const seenAfterTimeout = await invoke('lambda-second', async () => {
      await expect(hung).rejects.toMatchObject({ name: 'DependencyTimeoutError' });
      return requestId();
    });
    expect(seenAfterTimeout).toBe('lambda-second');
  });
});
