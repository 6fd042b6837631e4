// Per-process circuit state: the breaker's documented fallback while its shared store is unreachable.
import {
  type CircuitRecord,
  CircuitState,
  type CircuitStateStore,
  initialRecord,
  type ReplaceResult,
} from './state.js';

interface StoredRecord {
  readonly record: CircuitRecord;
  /** Epoch seconds, as in DynamoDB. */
  readonly expiresAt: number;
}

/**
 * Keeps circuits in this process only, with the same semantics as the DynamoDB store. A breaker
 * switches to one while DynamoDB is unreachable, so it keeps protecting its dependency on local
 * state; pass one as `store` to get opossum-style per-process breakers on purpose.
 *
 * @example
 * const breaker = new CircuitBreaker({ name: 'geocoder', store: new MemoryCircuitStateStore() });
 */
export class MemoryCircuitStateStore implements CircuitStateStore {
  private readonly records = new Map<string, StoredRecord>();

  async read(name: string, nowMs: number): Promise<CircuitRecord> {
    return this.current(name, nowMs);
  }

  async addFailure(
    name: string,
    failure: { readonly generation: number; readonly windowStart: number; readonly expiresAt: number },
    nowMs: number,
  ): Promise<CircuitRecord> {
    const record = this.current(name, nowMs);
    if (record.state !== CircuitState.closed || record.generation !== failure.generation) return record;
    // A failure from a window that has already rolled over is not counted, as in DynamoDB.
    if (record.windowStart > failure.windowStart) return record;
    const failures = record.windowStart === failure.windowStart ? record.failures + 1 : 1;
    const next = { ...record, windowStart: failure.windowStart, failures };
    this.records.set(name, { record: next, expiresAt: failure.expiresAt });
    return next;
  }

  async replace(
    name: string,
    expectedGeneration: number,
    next: CircuitRecord,
    expiresAt: number,
    nowMs: number,
  ): Promise<ReplaceResult> {
    const record = this.current(name, nowMs);
    if (record.generation !== expectedGeneration) return { applied: false, record };
    this.records.set(name, { record: next, expiresAt });
    return { applied: true, record: next };
  }

  /** Sets a circuit's record outright: how a breaker carries its last shared state into local mode. */
  seed(name: string, record: CircuitRecord, expiresAt: number): void {
    this.records.set(name, { record, expiresAt });
  }

  private current(name: string, nowMs: number): CircuitRecord {
    const stored = this.records.get(name);
    if (!stored || stored.expiresAt * 1000 <= nowMs) return initialRecord;
    return stored.record;
  }
}
