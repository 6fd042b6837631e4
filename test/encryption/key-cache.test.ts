// The data-key cache on its own: the allocation-free hot path (take) keeps acquire's limits and LRU order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyCache } from '../../middleware/encryption/key-cache.js';

const limits = { maxAgeMs: 1000, maxMessages: 10, maxEntries: 2 };

/** Lets the cache's own promise callbacks (settling, forgetting failures) run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('KeyCache.take', () => {
  it('serves a settled entry without creating anything, and nothing for an unknown key', async () => {
    const cache = new KeyCache<string>(limits);
    expect(cache.take('a', 1, 0)).toBeUndefined();
    cache.acquire('a', 1, async () => 'key-a', 0);
    await settled();
    expect(cache.take('a', 1, 10)).toBe('key-a');
    expect(cache.take('b', 1, 10)).toBeUndefined();
  });

  it('leaves an entry still in flight to acquire, which joins it instead of creating another', async () => {
    const cache = new KeyCache<string>(limits);
    let created = 0;
    const create = async () => {
      created += 1;
      return 'key';
    };
    cache.acquire('a', 1, create, 0);
    expect(cache.take('a', 1, 0)).toBeUndefined();
    const joined = cache.acquire('a', 1, create, 0);
    expect(joined.hit).toBe(true);
    expect(await joined.value).toBe('key');
    expect(created).toBe(1);
  });

  it('refuses an entry past maxAgeMs or past its message budget, as acquire does', async () => {
    const cache = new KeyCache<string>(limits);
    cache.acquire('a', 4, async () => 'key', 0);
    await settled();
    expect(cache.take('a', 6, 999)).toBe('key');
    expect(cache.take('a', 1, 999)).toBeUndefined();
    const fresh = new KeyCache<string>(limits);
    fresh.acquire('a', 0, async () => 'key', 0);
    await settled();
    expect(fresh.take('a', 1, 1000)).toBeUndefined();
    expect(fresh.acquire('a', 1, async () => 'newer', 1000).hit).toBe(false);
  });

  it('reserves messages, so take and acquire together never overrun the budget', async () => {
    const cache = new KeyCache<string>(limits);
    cache.acquire('a', 5, async () => 'key', 0);
    await settled();
    expect(cache.take('a', 5, 1)).toBe('key');
    expect(cache.acquire('a', 1, async () => 'second', 1).hit).toBe(false);
  });

  it('forgets a failed entry, so the next take and acquire start over', async () => {
    const cache = new KeyCache<string>(limits);
    const failed = cache.acquire('a', 1, async () => Promise.reject(new Error('KMS down')), 0);
    await expect(failed.value).rejects.toThrow('KMS down');
    await settled();
    expect(cache.take('a', 1, 1)).toBeUndefined();
    expect(cache.acquire('a', 1, async () => 'retried', 1).hit).toBe(false);
  });

  it('forgets a failed entry that is no longer the newest, and keeps the newest one', async () => {
    const cache = new KeyCache<string>(limits);
    let fail: (error: Error) => void = () => undefined;
    const failing = cache.acquire('a', 1, () => new Promise<string>((_, reject) => (fail = reject)), 0);
    cache.prime('b', 'key-b', 0);
    fail(new Error('KMS down'));
    await expect(failing.value).rejects.toThrow('KMS down');
    await settled();
    expect(cache.take('a', 1, 1)).toBeUndefined();
    expect(cache.take('b', 1, 1)).toBe('key-b');
  });

  it('leaves alone the entry that replaced a failed one, for take and acquire alike', async () => {
    const cache = new KeyCache<string>({ ...limits, maxEntries: 1 });
    let fail: (error: Error) => void = () => undefined;
    const failing = cache.acquire('a', 1, () => new Promise<string>((_, reject) => (fail = reject)), 0);
    // maxMessages reached: the next acquire of the same key replaces the entry still in flight.
    cache.acquire('a', 10, async () => 'replacement', 0);
    fail(new Error('KMS down'));
    await expect(failing.value).rejects.toThrow('KMS down');
    await settled();
    expect(cache.take('a', 0, 1)).toBe('replacement');
    // take answers from the newest entry without the map; acquire looks the key up in it.
    const acquired = cache.acquire('a', 0, async () => 'recreated', 1);
    expect(acquired.hit).toBe(true);
    expect(await acquired.value).toBe('replacement');
  });

  it('keeps the least recently used order when take moves an older key to the front', async () => {
    const cache = new KeyCache<string>(limits);
    cache.prime('a', 'key-a', 0);
    cache.prime('b', 'key-b', 0);
    expect(cache.take('a', 1, 1)).toBe('key-a');
    cache.prime('c', 'key-c', 2);
    expect(cache.take('a', 1, 3)).toBe('key-a');
    expect(cache.take('b', 1, 3)).toBeUndefined();
    expect(cache.take('c', 1, 3)).toBe('key-c');
  });

  it('keeps the same order when acquire, not take, moves an older key to the front', async () => {
    const cache = new KeyCache<string>(limits);
    cache.prime('a', 'key-a', 0);
    cache.prime('b', 'key-b', 0);
    expect(cache.acquire('a', 1, async () => 'unused', 1).hit).toBe(true);
    cache.prime('c', 'key-c', 2);
    expect(cache.take('a', 1, 3)).toBe('key-a');
    expect(cache.take('b', 1, 3)).toBeUndefined();
  });

  it('serves nothing once cleared, not even the last key used', async () => {
    const cache = new KeyCache<string>(limits);
    cache.prime('a', 'key-a', 0);
    expect(cache.take('a', 1, 1)).toBe('key-a');
    cache.clear();
    expect(cache.take('a', 1, 1)).toBeUndefined();
  });

  it('caches nothing when maxAgeMs is 0', async () => {
    const cache = new KeyCache<string>({ ...limits, maxAgeMs: 0 });
    cache.prime('a', 'key-a', 0);
    cache.acquire('b', 1, async () => 'key-b', 0);
    await settled();
    expect(cache.take('a', 0, 0)).toBeUndefined();
    expect(cache.take('b', 0, 0)).toBeUndefined();
  });
});

describe('KeyCache limits, over generated runs of take and acquire', () => {
  /** One use: messages to encrypt under `key`, after `waitMs`, on the hot path or not, its creation failing or not. */
  const use = fc.record({
    key: fc.constantFrom('a', 'b', 'c'),
    messages: fc.integer({ min: 1, max: 4 }),
    waitMs: fc.integer({ min: 0, max: 40 }),
    hot: fc.boolean(),
    createFails: fc.boolean(),
  });

  it('never serves one data key for more than maxMessages messages, nor maxAgeMs after it was made', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxMessages: fc.integer({ min: 1, max: 6 }),
          maxAgeMs: fc.integer({ min: 1, max: 100 }),
          maxEntries: fc.integer({ min: 1, max: 3 }),
        }),
        fc.array(use, { maxLength: 40 }),
        async (cacheLimits, uses) => {
          const cache = new KeyCache<{ id: number; madeAt: number }>(cacheLimits);
          const messagesServed: number[] = [];
          let now = 0;
          for (const { key, messages, waitMs, hot, createFails } of uses) {
            now += waitMs;
            const wanted = Math.min(messages, cacheLimits.maxMessages);
            let dataKey = hot ? cache.take(key, wanted, now) : undefined;
            if (dataKey === undefined) {
              const madeAt = now;
              const made = cache.acquire(
                key,
                wanted,
                async () => {
                  if (createFails) throw new Error('the key provider failed');
                  return { id: messagesServed.push(0) - 1, madeAt };
                },
                now,
              );
              dataKey = await made.value.catch(() => undefined);
              if (dataKey === undefined) continue;
            }
            messagesServed[dataKey.id] = (messagesServed[dataKey.id] ?? 0) + wanted;
            expect(messagesServed[dataKey.id]).toBeLessThanOrEqual(cacheLimits.maxMessages);
            expect(now - dataKey.madeAt).toBeLessThan(cacheLimits.maxAgeMs);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
