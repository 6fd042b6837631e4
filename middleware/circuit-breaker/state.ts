// The circuit's shared record and the small storage interface the breaker's algorithm is written over.

/** The three states of a circuit, as stored. */
export const CircuitState = {
  closed: 'CLOSED',
  open: 'OPEN',
  halfOpen: 'HALF_OPEN',
} as const;

export type CircuitStateName = (typeof CircuitState)[keyof typeof CircuitState];

/**
 * What every instance of a breaker shares. Each state change writes a whole new record with
 * `generation + 1`, so a compare-and-set on the generation alone tells whether anyone changed the
 * circuit since it was read; only failure counting in CLOSED updates a record in place.
 */
export interface CircuitRecord {
  readonly state: CircuitStateName;
  /** Bumped by every state change (including a half-open lease); 0 for a circuit never written. */
  readonly generation: number;
  /** When the circuit last opened (epoch ms); a half-open probe is due at `openedAt + resetTimeoutMs`. */
  readonly openedAt: number;
  /** Who holds the half-open probe lease; absent when nobody does. */
  readonly probeOwner?: string | undefined;
  /** Until when (epoch ms) the probe lease holds; after it another instance may probe. */
  readonly probeLeaseUntil: number;
  /** Consecutive successful probes in HALF_OPEN. */
  readonly successes: number;
  /** Start (epoch ms) of the window `failures` counts in, while CLOSED. */
  readonly windowStart: number;
  /** Failures counted fleet-wide in the current window, while CLOSED. */
  readonly failures: number;
}

/** A circuit nobody has written yet (or whose record expired): closed, nothing counted. */
export const initialRecord: CircuitRecord = {
  state: CircuitState.closed,
  generation: 0,
  openedAt: 0,
  probeLeaseUntil: 0,
  successes: 0,
  windowStart: 0,
  failures: 0,
};

/** The answer to a compare-and-set: whether it applied, and the record as it now stands. */
export interface ReplaceResult {
  readonly applied: boolean;
  readonly record: CircuitRecord;
}

/**
 * Where circuits keep their shared state. {@link DynamoDbCircuitStateStore} is the real one (shared by
 * every Lambda instance); {@link MemoryCircuitStateStore} is the per-process fallback a breaker uses
 * while its store is unreachable. Every write carries `expiresAt` (epoch seconds) and readers treat
 * an expired record as {@link initialRecord}.
 */
export interface CircuitStateStore {
  /** The circuit's current record; a missing or expired one reads as {@link initialRecord}. */
  read(name: string, nowMs: number): Promise<CircuitRecord>;
  /**
   * Counts one failure in the window that starts at `windowStart`, but only while the circuit is
   * CLOSED at `generation` (a newer window restarts the count at 1). Returns the record after the
   * count, or the current record, unchanged, when the circuit has moved on.
   */
  addFailure(
    name: string,
    failure: { readonly generation: number; readonly windowStart: number; readonly expiresAt: number },
    nowMs: number,
  ): Promise<CircuitRecord>;
  /**
   * Replaces the record with `next` only if the stored generation is still `expectedGeneration`:
   * of several instances attempting the same transition, exactly one succeeds.
   */
  replace(
    name: string,
    expectedGeneration: number,
    next: CircuitRecord,
    expiresAt: number,
    nowMs: number,
  ): Promise<ReplaceResult>;
}
