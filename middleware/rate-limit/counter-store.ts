// The counter-store interface the limiter runs on, and the in-memory store used as the documented local fallback.
import { assertNoProblems } from '../errors.js';

/**
 * One conditional write of a key's theoretical arrival time (TAT, epoch µs). The store must apply
 * it atomically: check the condition and write in one step, never read-then-write.
 *
 * - `fresh`: the key is idle — no item, or its TAT is not after `nowUs` — so TAT becomes
 *   `nowUs + incrementUs`. An item past its `expiresAt` that TTL has not deleted yet is idle too:
 *   `expiresAtSec` is never earlier than the TAT a write can produce.
 * - `busy`: the key has a live TAT in `(nowUs, thresholdUs]`, so TAT becomes `TAT + incrementUs`.
 */
export interface TatWrite {
  readonly mode: 'fresh' | 'busy';
  readonly nowUs: number;
  /**
   * Largest TAT the write applies to: for a consume, the largest that still admits it, now + (limit − cost)
   * × interval; for a refund, now + capacity (any busy key).
   */
  readonly thresholdUs: number;
  /** Negative for a refund (`RateLimiter.refund`), which moves a busy key's TAT back. */
  readonly incrementUs: number;
  /** TTL attribute (epoch seconds); never earlier than the TAT the write can produce. */
  readonly expiresAtSec: number;
}

/**
 * What a conditional write did. When the condition failed, `tatUs` is the stored TAT the store saw
 * (`undefined`: no live item) if the store returned it with the failure, and `known` is false when
 * it did not (then a {@link CounterStore.read} tells).
 */
export type TatWriteOutcome =
  | { readonly applied: true; readonly tatUs: number }
  | { readonly applied: false; readonly known: true; readonly tatUs: number | undefined }
  | { readonly applied: false; readonly known: false };

/** Storage primitives for rate-limit state; keys are full storage keys (`RL#<policy>#<hash>`). */
export interface CounterStore {
  write(storageKey: string, write: TatWrite): Promise<TatWriteOutcome>;
  /** The live TAT, or `undefined` when there is no item or it has expired. */
  read(storageKey: string, nowUs: number): Promise<number | undefined>;
  delete(storageKey: string): Promise<void>;
  /** Deletes every key starting with `prefix`; resolves to how many were deleted. */
  deleteAll(prefix: string): Promise<number>;
}

interface MemoryEntry {
  tatUs: number;
  expiresAtSec: number;
}

export interface MemoryCounterStoreOptions {
  /**
   * Most keys kept (an integer >= 1); the oldest is dropped beyond it, so an outage cannot grow memory
   * without bound. @default 10000
   */
  readonly maxKeys?: number;
}

const isLive = (entry: MemoryEntry | undefined, nowUs: number): entry is MemoryEntry =>
  entry !== undefined && entry.expiresAtSec * 1_000_000 > nowUs;

/**
 * A per-process store with the same conditions as the DynamoDB one. It is the fallback a limiter
 * uses while DynamoDB is unreachable (`failMode: 'open'`), not a substitute for it: each Lambda
 * instance counts on its own.
 */
export class MemoryCounterStore implements CounterStore {
  readonly #entries = new Map<string, MemoryEntry>();
  readonly #maxKeys: number;

  constructor(options: MemoryCounterStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? 10_000;
    const problems: string[] = [];
    // Below 1 every write evicts its own key at once, so no key is ever limited.
    if (!(Number.isSafeInteger(maxKeys) && maxKeys >= 1)) {
      problems.push(`maxKeys must be an integer >= 1 (got ${maxKeys})`);
    }
    assertNoProblems('MemoryCounterStore', problems);
    this.#maxKeys = maxKeys;
  }

  async write(storageKey: string, write: TatWrite): Promise<TatWriteOutcome> {
    const entry = this.#entries.get(storageKey);
    const liveTat = isLive(entry, write.nowUs) ? entry.tatUs : undefined;
    const failed: TatWriteOutcome = { applied: false, known: true, tatUs: liveTat };
    let tatUs: number;
    if (write.mode === 'fresh') {
      if (liveTat !== undefined && liveTat > write.nowUs) return failed;
      tatUs = write.nowUs + write.incrementUs;
    } else {
      if (liveTat === undefined || liveTat <= write.nowUs || liveTat > write.thresholdUs) return failed;
      tatUs = liveTat + write.incrementUs;
    }
    this.#entries.delete(storageKey);
    this.#entries.set(storageKey, { tatUs, expiresAtSec: write.expiresAtSec });
    if (this.#entries.size > this.#maxKeys) {
      // Maps iterate in insertion order and a write re-inserts its key, so the first key is the least recent.
      for (const oldest of this.#entries.keys()) {
        this.#entries.delete(oldest);
        break;
      }
    }
    return { applied: true, tatUs };
  }

  async read(storageKey: string, nowUs: number): Promise<number | undefined> {
    const entry = this.#entries.get(storageKey);
    return isLive(entry, nowUs) ? entry.tatUs : undefined;
  }

  async delete(storageKey: string): Promise<void> {
    this.#entries.delete(storageKey);
  }

  async deleteAll(prefix: string): Promise<number> {
    let deleted = 0;
    for (const key of [...this.#entries.keys()]) {
      if (key.startsWith(prefix)) {
        this.#entries.delete(key);
        deleted += 1;
      }
    }
    return deleted;
  }
}
