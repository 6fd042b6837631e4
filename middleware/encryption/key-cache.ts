// A bounded cache of data keys that coalesces concurrent misses into one provider request.

export interface KeyCacheLimits {
  /** How long an entry is used after it was requested, in ms; 0 disables caching. */
  readonly maxAgeMs: number;
  /** How many values one entry may encrypt before a fresh one is made (Infinity for unwrap caches). */
  readonly maxMessages: number;
  /** How many entries are kept; the least recently used goes first. */
  readonly maxEntries: number;
}

interface Entry<V> {
  readonly value: Promise<V>;
  /** The value once the promise has settled successfully: hot paths use it without awaiting. */
  resolved: V | undefined;
  readonly createdAt: number;
  messages: number;
}

export interface Acquired<V> {
  readonly value: Promise<V>;
  /** Served by an existing entry (resolved or still in flight), so no provider request was made. */
  readonly hit: boolean;
}

/**
 * Entries hold promises, so a hundred concurrent requests for a cold key share one provider call
 * (no thundering herd on a cold instance). A failed request is forgotten, so the next one retries.
 */
export class KeyCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private newest: string | undefined;
  /** The entry of {@link newest}: a repeat of the last key skips the Map (and hashing a fresh key). */
  private newestEntry: Entry<V> | undefined;

  constructor(private readonly limits: KeyCacheLimits) {}

  /**
   * The hot path: the settled value for `key` when its entry is within its limits, reserving
   * `messages` as {@link acquire} does; undefined otherwise (then the caller goes through acquire).
   * Allocates nothing.
   */
  take(key: string, messages: number, now: number): V | undefined {
    const newest = key === this.newest;
    const entry = newest ? this.newestEntry : this.entries.get(key);
    if (
      entry === undefined ||
      entry.resolved === undefined ||
      now - entry.createdAt >= this.limits.maxAgeMs ||
      entry.messages + messages > this.limits.maxMessages
    ) {
      return undefined;
    }
    entry.messages += messages;
    if (!newest) this.touch(key, entry);
    return entry.resolved;
  }

  /**
   * The entry for `key` with room for `messages` more uses, or a new one from `create`.
   * `messages` is reserved at once, so concurrent callers cannot overrun the budget together.
   */
  acquire(key: string, messages: number, create: () => Promise<V>, now = Date.now()): Acquired<V> {
    const entry = this.entries.get(key);
    if (
      entry !== undefined &&
      now - entry.createdAt < this.limits.maxAgeMs &&
      entry.messages + messages <= this.limits.maxMessages
    ) {
      entry.messages += messages;
      if (this.newest !== key) this.touch(key, entry);
      return { value: entry.value, hit: true };
    }
    const value = create();
    if (this.limits.maxAgeMs > 0) this.store(key, { value, resolved: undefined, createdAt: now, messages });
    return { value, hit: false };
  }

  /** Records an already known value (a key just generated is also a key we can unwrap). */
  prime(key: string, value: V, now = Date.now()): void {
    if (this.limits.maxAgeMs > 0) {
      this.store(key, { value: Promise.resolve(value), resolved: value, createdAt: now, messages: 0 });
    }
  }

  clear(): void {
    this.entries.clear();
    this.newest = undefined;
    this.newestEntry = undefined;
  }

  /** Re-inserting moves the key to the end of the Map's order: least recently used stays first. */
  private touch(key: string, entry: Entry<V>): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.newest = key;
    this.newestEntry = entry;
  }

  private store(key: string, entry: Entry<V>): void {
    this.touch(key, entry);
    entry.value.then(
      (value) => {
        entry.resolved = value;
      },
      () => {
        if (this.entries.get(key) !== entry) return;
        this.entries.delete(key);
        if (this.newestEntry === entry) {
          this.newest = undefined;
          this.newestEntry = undefined;
        }
      },
    );
    // The newest entry is the last in the Map, so with maxEntries >= 1 it is never the one evicted.
    while (this.entries.size > this.limits.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
