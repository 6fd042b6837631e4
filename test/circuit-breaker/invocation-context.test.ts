// Lambda Managed Instances run invocations concurrently in one process, each in the runtime's InvokeStore:
// what a call's timeout sets off (its events, the audit lines they make) belongs to that call's invocation.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { managedInstances } from '../helpers/managed-instances.js';

const { invoke, requestId } = managedInstances();

describe('a call timing out while other invocations run in the process', () => {
  it('reports its timeout and the opening it causes in its own invocation', async () => {
    const seen: { event: string; requestId: string }[] = [];
    const record = (event: string) => seen.push({ event, requestId: requestId() });
    const breaker = new CircuitBreaker<string>({
      name: 'geocoder',
      store: new MemoryCircuitStateStore(),
      timeoutMs: 50,
      failureThreshold: 1,
      onEvent: (event: SecurityEvent) => record(event.type),
    });
    breaker.on('timeout', () => record('timeout'));
    // The first call arms the breaker's one timer and is answered at once; the timer stays armed.
    expect(await invoke('lambda-fast', () => breaker.execute(() => 'ok'))).toBe('ok');
    // The next hangs: its timeout fires from that same timer.
    const hung = invoke('lambda-hung', () => breaker.execute(() => new Promise<string>(() => undefined)));
    await expect(hung).rejects.toMatchObject({ name: 'DependencyTimeoutError' });
    expect(seen).toEqual([
      { event: 'timeout', requestId: 'lambda-hung' },
      { event: 'circuit.opened', requestId: 'lambda-hung' },
    ]);
  });
});
