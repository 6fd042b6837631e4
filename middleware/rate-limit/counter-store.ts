// The counter-store interface the limiter runs on, and the in-memory store used as the documented local fallback.
import { assertNoProblems } from '../errors.js';
import { shownValue } from '../options.js';

/** A key's stored state: its TAT (epoch µs) and the window of the policy that counted it. */
export interface StoredTat {
  readonly tatUs: number;
  /** The policy's window in seconds; `undefined` for an item written before the window was stored. */
  readonly windowSec: number | undefined;
}

interface TatWriteCommon {
  readonly nowUs: number;
  /** The writing policy's window (seconds), stored with the TAT it writes. */
  readonly windowSec: number;
  /** TTL attribute (epoch seconds); never earlier than the TAT the write can produce. */
  readonly expiresAtSec: number;
}

/**
 * One conditional write of a key's theoretical arrival time (TAT, epoch µs). The store must apply
 * it atomically: check the condition and write in one step, never read-then-write.
 *
 * - `fresh`: the key is idle — no item, or its TAT is not after `nowUs`, whatever window counted it — so
 *   TAT becomes `nowUs + incrementUs`. An item past its `expiresAt` that TTL has not deleted yet is idle
 *   too: `expiresAtSec` is never earlier than the TAT a write can produce.
 * - `busy`: the key has a live TAT in `(nowUs, thresholdUs]` counted in `windowSec`, so TAT becomes
 *   `TAT + incrementUs`. A TAT counted in another window is left for a `rebase`.
 */
export interface TatAdvance extends TatWriteCommon {
  readonly mode: 'fresh' | 'busy';
  /**
   * Largest TAT the write applies to: for a consume, the largest that still admits it, now + (limit − cost)
   * × interval; for a refund, now + capacity (any busy key).
   */
  readonly thresholdUs: number;
  /** Negative for a refund (`RateLimiter.refund`), which moves a busy key's TAT back. */
  readonly incrementUs: number;
  /**
   * A refund's own random id, so that it applies once however often it is sent: the store keeps the id
   * of the last refund that applied to the key, applies a write whose id is already there as nothing
   * more, and answers it `applied` with the TAT it holds (a client retrying a write that landed but was
   * answered late sends it again). Only the last id is kept: a repeat sent after another refund of the
   * key landed applies again. @default none (every write that meets its condition applies)
   */
  readonly refundId?: string | undefined;
}

/**
 * A conversion (`rebase`) of a TAT another window counted into this one's terms: the item still holds
 * exactly `from` (the same TAT, counted in the same window or, written before windows were stored, in
 * none), so TAT becomes `tatUs`, counted in `windowSec`.
 */
export interface TatRebase extends TatWriteCommon {
  readonly mode: 'rebase';
  readonly from: StoredTat;
  readonly tatUs: number;
}

export type TatWrite = TatAdvance | TatRebase;

/**
 * What a conditional write did. Applied: `tatUs` is the TAT it left (for a refund whose `refundId` the
 * store already held, the TAT the store holds). When the condition failed, `stored` is the live state the
 * store saw (`undefined`: no live item) if the store returned it with the failure, and `known` is false
 * when it did not (then a {@link CounterStore.read} tells).
 */
export type TatWriteOutcome =
  | { readonly applied: true; readonly tatUs: number }
  | { readonly applied: false; readonly known: true; readonly stored: StoredTat | undefined }
  | { readonly applied: false; readonly known: false };

/** Storage primitives for rate-limit state; keys are full storage keys (`RL#<policy>#<hash>`). */
export interface CounterStore {
  write(storageKey: string, write: TatWrite): Promise<TatWriteOutcome>;
  /** The live state, or `undefined` when there is no item or it has expired. */
  read(storageKey: string, nowUs: number): Promise<StoredTat | undefined>;
  delete(storageKey: string): Promise<void>;
  /** Deletes every key starting with `prefix`; resolves to how many were deleted. */
  deleteAll(prefix: string): Promise<number>;
}

interface MemoryEntry extends StoredTat {
  readonly expiresAtSec: number;
  readonly lastRefundId: string | undefined;
}

export interface MemoryCounterStoreOptions {
  /**
   * Most keys kept (an integer >= 1); the oldest is dropped beyond it, so an outage cannot grow memory
   * without bound. @default 10000
   */
  readonly maxKeys?: number | undefined;
}

const isLive = (entry: MemoryEntry | undefined, nowUs: number): entry is MemoryEntry =>
  entry !== undefined && entry.expiresAtSec * 1_000_000 > nowUs;

const storedOf = (entry: MemoryEntry | undefined): StoredTat | undefined =>
  entry && { tatUs: entry.tatUs, windowSec: entry.windowSec };

const failedOn = (live: MemoryEntry | undefined): TatWriteOutcome => ({
  applied: false,
  known: true,
  stored: storedOf(live),
});

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
      problems.push(`maxKeys must be an integer >= 1 (got ${shownValue(maxKeys)})`);
    }
    assertNoProblems('MemoryCounterStore', problems);
    this.#maxKeys = maxKeys;
  }

  async write(storageKey: string, write: TatWrite): Promise<TatWriteOutcome> {
    const entry = this.#entries.get(storageKey);
    const live = isLive(entry, write.nowUs) ? entry : undefined;
    let tatUs: number;
    if (write.mode === 'rebase') {
      if (live?.tatUs !== write.from.tatUs || live.windowSec !== write.from.windowSec) return failedOn(live);
      tatUs = write.tatUs;
    } else if (write.mode === 'fresh') {
      if (live !== undefined && live.tatUs > write.nowUs) return failedOn(live);
      tatUs = write.nowUs + write.incrementUs;
    } else {
      if (write.refundId !== undefined && live?.lastRefundId === write.refundId) {
        return { applied: true, tatUs: live.tatUs };
      }
      if (
        live === undefined ||
        live.tatUs <= write.nowUs ||
        live.tatUs > write.thresholdUs ||
        live.windowSec !== write.windowSec
      ) {
        return failedOn(live);
      }
      tatUs = live.tatUs + write.incrementUs;
    }
    this.#entries.delete(storageKey);
    // Like an item's attribute in DynamoDB, the last refund's id outlives the writes that do not set one.
    const lastRefundId = (write.mode === 'rebase' ? undefined : write.refundId) ?? entry?.lastRefundId;
    this.#entries.set(storageKey, {
      tatUs,
      windowSec: write.windowSec,
      expiresAtSec: write.expiresAtSec,
      lastRefundId,
    });
    if (this.#entries.size > this.#maxKeys) {
      // Maps iterate in insertion order and a write re-inserts its key, so the first key is the least recent.
      for (const oldest of this.#entries.keys()) {
        this.#entries.delete(oldest);
        break;
      }
    }
    return { applied: true, tatUs };
  }

  async read(storageKey: string, nowUs: number): Promise<StoredTat | undefined> {
    const entry = this.#entries.get(storageKey);
    return storedOf(isLive(entry, nowUs) ? entry : undefined);
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
