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
  readonly resolved: V | undefined;
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

  constructor(private readonly limits: KeyCacheLimits) {}

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
      if (this.newest !== key) {
        // Re-inserting moves the key to the end of the Map's order: least recently used stays first.
        this.entries.delete(key);
        this.entries.set(key, entry);
        this.newest = key;
      }
      return { value: entry.value, resolved: entry.resolved, hit: true };
    }
    const value = create();
    if (this.limits.maxAgeMs > 0) this.store(key, { value, resolved: undefined, createdAt: now, messages });
    return { value, resolved: undefined, hit: false };
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
  }

  private store(key: string, entry: Entry<V>): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.newest = key;
    entry.value.then(
      (value) => {
        entry.resolved = value;
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    while (this.entries.size > this.limits.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
