import { createHash } from 'node:crypto';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError, InvalidOptionsError } from '../../middleware/errors.js';
import {
  type CounterStore,
  MemoryCounterStore,
  type TatWrite,
} from '../../middleware/rate-limit/counter-store.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { gcraParameters } from '../../middleware/rate-limit/policy.js';
import { RateLimiter, type RateLimitResult } from '../../middleware/rate-limit/rate-limiter.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { countingClient, freezeClock, itemsWithPrefix, tableName, uniquePolicyName } from './helpers.js';

const second = 1000;

/** 400 requests at once on a shared 2-core machine can queue for seconds; these tests are about admission. */
const patientClient = { requestTimeoutMs: 30_000, connectionTimeoutMs: 30_000 };

const admitted = (results: readonly RateLimitResult[]) => results.filter((result) => result.allowed).length;

describe('RateLimiter on DynamoDB', () => {
  const counting = countingClient();

  afterEach(() => {
    vi.useRealTimers();
  });

  describe('admission', () => {
    it('admits up to the limit, then rejects with the wait until one unit refills', async () => {
      freezeClock();
      const limiter = new RateLimiter({ policy: 'register', tableName, client: counting.client });
      const results = [];
      for (let index = 0; index < 4; index += 1) results.push(await limiter.consume('ip:203.0.113.7'));
      expect(results.map((result) => result.allowed)).toEqual([true, true, true, false]);
      expect(results.map((result) => result.remaining)).toEqual([2, 1, 0, 0]);
      expect(results[0]).toMatchObject({ limit: 3, retryAfterSec: 0, refillInSec: 100, source: 'store' });
      // register is 3 per 300 s: one unit refills every 100 s, the bucket is full again 300 s on.
      expect(results[3]).toMatchObject({ allowed: false, retryAfterSec: 100, refillInSec: 100 });
      expect(results[3]?.resetAt).toBe(Date.now() + 300 * second);
    });

    it('admits exactly the limit when 8 instances fire 400 concurrent consumes at one key', async () => {
      freezeClock();
      const policy = { name: uniquePolicyName('exact'), limit: 100, windowSec: 60 };
      const instances = Array.from({ length: 8 }, () => {
        const own = countingClient(patientClient);
        // Fail closed: a store error must surface here, not turn into fallback admissions.
        return {
          own,
          limiter: new RateLimiter({ policy, tableName, client: own.client, failMode: 'closed' }),
        };
      });
      const results = await Promise.all(
        Array.from(
          { length: 400 },
          (_, index) => instances[index % 8]?.limiter.consume('user:flood') as Promise<RateLimitResult>,
        ),
      );
      // Documented bound: admitted ≤ limit + ⌊(t + δ) / T⌋; the clock is frozen (t = 0, δ = 0), so exactly 100.
      expect(admitted(results)).toBe(100);
      expect(results.filter((result) => !result.allowed).every((result) => result.retryAfterSec >= 1)).toBe(
        true,
      );
      expect(await instances[0]?.limiter.getRemaining('user:flood')).toBe(0);
      // Every admission is one conditional write: nothing is admitted by a read or by local knowledge.
      const requests = instances.reduce((sum, { own }) => sum + own.total(), 0);
      expect(requests).toBeLessThan(1200);
      for (const { own } of instances) own.client.destroy();
    });

    // 400 writes contending for one item take about 2 s here, and ten times that on a starved machine.
    it('stays within limit + elapsed / T on a running clock, and never admits fewer than the limit', async () => {
      const policy = { name: uniquePolicyName('running'), limit: 100, windowSec: 60 };
      const { intervalUs } = gcraParameters(policy);
      // Eight containers, each with its own client, failing closed so no fallback can admit anything.
      const clients = Array.from({ length: 8 }, () => countingClient(patientClient));
      const instances = clients.map(
        ({ client }) => new RateLimiter({ policy, tableName, client, failMode: 'closed' }),
      );
      const started = Date.now();
      const results = await Promise.all(
        Array.from(
          { length: 400 },
          (_, index) => instances[index % 8]?.consume('user:running') as Promise<RateLimitResult>,
        ),
      );
      const elapsedUs = (Date.now() - started + 1) * 1000;
      expect(admitted(results)).toBeGreaterThanOrEqual(100);
      expect(admitted(results)).toBeLessThanOrEqual(100 + Math.floor(elapsedUs / intervalUs));
      for (const { client } of clients) client.destroy();
    }, 60_000);

    it('refills one unit per interval and the whole limit after one window', async () => {
      const start = freezeClock();
      const limiter = new RateLimiter({ policy: 'register', tableName, client: counting.client });
      const key = `ip:${uniquePolicyName()}`;
      for (let index = 0; index < 3; index += 1) expect((await limiter.consume(key)).allowed).toBe(true);
      expect((await limiter.consume(key)).allowed).toBe(false);

      vi.setSystemTime(start + 99 * second);
      expect((await limiter.consume(key)).allowed).toBe(false);
      vi.setSystemTime(start + 100 * second);
      expect(await limiter.consume(key)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await limiter.consume(key)).allowed).toBe(false);

      vi.setSystemTime(start + 500 * second);
      expect(await limiter.getRemaining(key)).toBe(3);
      const afterWindow = [];
      for (let index = 0; index < 4; index += 1) afterWindow.push((await limiter.consume(key)).allowed);
      expect(afterWindow).toEqual([true, true, true, false]);
    });

    it('consumes cost units at once, and a rejected cost leaves the remaining units usable', async () => {
      freezeClock();
      const limiter = new RateLimiter({
        policy: { limit: 10, windowSec: 60 },
        tableName,
        client: counting.client,
      });
      const key = `user:${uniquePolicyName()}`;
      expect(await limiter.consume(key, 4)).toMatchObject({ allowed: true, remaining: 6 });
      expect(await limiter.consume(key, 3)).toMatchObject({ allowed: true, remaining: 3 });
      const tooMuch = await limiter.consume(key, 5);
      expect(tooMuch).toMatchObject({ allowed: false, remaining: 3, retryAfterSec: 12 });
      expect(await limiter.consume(key, 3)).toMatchObject({ allowed: true, remaining: 0 });
      expect(await limiter.consume(key, 1)).toMatchObject({ allowed: false, retryAfterSec: 6 });
    });

    it('keeps separate budgets for separate keys and policies', async () => {
      freezeClock();
      const strict = new RateLimiter({ policy: 'mfaVerify', tableName, client: counting.client });
      const key = `user:${uniquePolicyName()}`;
      expect((await strict.consume(key)).allowed).toBe(true);
      expect((await strict.consume(key)).allowed).toBe(false);
      expect((await strict.consume(`${key}-other`)).allowed).toBe(true);
      const login = new RateLimiter({ policy: 'login', tableName, client: counting.client });
      expect((await login.consume(key)).allowed).toBe(true);
    });
  });

  describe('cost in DynamoDB requests', () => {
    it('makes one request per admitted request in steady state with leases off', async () => {
      const start = freezeClock();
      const own = countingClient();
      const limiter = new RateLimiter({
        // T = 60 ms refills within the default 100 ms lease; leases are tested in lease.test.ts.
        policy: { limit: 1000, windowSec: 60 },
        leaseMs: 0,
        tableName,
        client: own.client,
      });
      const busyKey = `user:${uniquePolicyName()}`;
      const idleKey = `user:${uniquePolicyName()}`;
      for (let index = 0; index < 50; index += 1) {
        expect((await limiter.consume(busyKey)).allowed).toBe(true);
        // The idle key is used once a minute, so every request finds it fresh.
        vi.setSystemTime(start + index * 60 * second);
        expect((await limiter.consume(idleKey)).allowed).toBe(true);
        vi.setSystemTime(start);
      }
      expect(own.total()).toBe(100);
      expect(own.requests.get('UpdateItem')).toBe(100);
      own.client.destroy();
    });

    it('sends nothing to DynamoDB for a key known to be over its limit until a unit refills', async () => {
      const start = freezeClock();
      const own = countingClient();
      const limiter = new RateLimiter({ policy: 'mfaVerify', tableName, client: own.client });
      const key = `user:${uniquePolicyName()}`;
      expect(await limiter.consume(key)).toMatchObject({ allowed: true, remaining: 0, source: 'store' });
      expect(own.total()).toBe(1);
      for (let index = 0; index < 100; index += 1) {
        expect(await limiter.consume(key)).toMatchObject({
          allowed: false,
          source: 'local',
          retryAfterSec: 10,
        });
      }
      expect(own.total()).toBe(1);

      // Another instance learns the same from its first rejection, then stops asking too. The refused
      // write brings the stored TAT back (ReturnValuesOnConditionCheckFailure), so no read follows it.
      const other = countingClient();
      const otherLimiter = new RateLimiter({ policy: 'mfaVerify', tableName, client: other.client });
      expect(await otherLimiter.consume(key)).toMatchObject({
        allowed: false,
        source: 'store',
        retryAfterSec: 10,
      });
      expect([...other.requests.keys()]).toEqual(['UpdateItem']);
      const learnedAfter = other.total();
      expect(await otherLimiter.consume(key)).toMatchObject({ allowed: false, source: 'local' });
      expect(other.total()).toBe(learnedAfter);

      vi.setSystemTime(start + 10 * second);
      expect(await limiter.consume(key)).toMatchObject({ allowed: true, source: 'store' });
      expect(own.total()).toBe(2);
      own.client.destroy();
      other.client.destroy();
    });

    it('lets a concurrent burst on one instance cost the store little more than the admitted requests', async () => {
      freezeClock();
      const own = countingClient();
      const limiter = new RateLimiter({
        policy: { limit: 100, windowSec: 60 },
        tableName,
        client: own.client,
      });
      const key = `ip:${uniquePolicyName()}`;
      const results: RateLimitResult[] = [];
      // 32 concurrent clients, 2,000 requests.
      await Promise.all(
        Array.from({ length: 32 }, async (_, worker) => {
          for (let index = worker; index < 2000; index += 32) results.push(await limiter.consume(key));
        }),
      );
      expect(admitted(results)).toBe(100);
      const rejected = results.length - 100;
      // Requests beyond one per admission, spread over the rejections.
      expect((own.total() - 100) / rejected).toBeLessThanOrEqual(0.01);
      own.client.destroy();
    });
  });

  describe('storage', () => {
    it('names items by a keyed hash with keyHashSecret, so an address cannot be found again by hashing them all', async () => {
      freezeClock();
      const name = uniquePolicyName('keyed');
      const policy = { name, limit: 2, windowSec: 60 };
      const keyHashSecret = 'k'.repeat(16) + 'e'.repeat(16);
      const [first, second] = [1, 2].map(
        () => new RateLimiter({ policy, tableName, client: counting.client, keyHashSecret }),
      );
      const plain = new RateLimiter({ policy, tableName, client: counting.client });
      const key = 'ip:203.0.113.42';
      expect((await first?.consume(key))?.allowed).toBe(true);
      // Another instance with the same secret counts the same item: the limit stays shared.
      expect((await second?.consume(key))?.allowed).toBe(true);
      expect((await second?.consume(key))?.allowed).toBe(false);
      const items = await itemsWithPrefix(counting.client, `RL#${name}#`);
      expect(items.map((item) => item.pk?.S)).toEqual([first?.storageKeyOf(key)]);
      expect(first?.storageKeyOf(key)).not.toBe(plain.storageKeyOf(key));
      expect(first?.storageKeyOf(key)).toBe(
        new RateLimiter({
          policy,
          tableName,
          client: counting.client,
          keyHashSecret: Buffer.from(keyHashSecret),
        }).storageKeyOf(key),
      );
    });

    it('refuses a keyHashSecret anyone could guess, without showing it', () => {
      for (const keyHashSecret of ['short-secret', ' '.repeat(40), new Uint8Array(16)]) {
        const build = () =>
          new RateLimiter({ policy: 'register', tableName, client: counting.client, keyHashSecret });
        expect(build).toThrow(
          new InvalidOptionsError('RateLimiter', [
            'keyHashSecret must be at least 32 characters besides whitespace, or 32 bytes',
          ]),
        );
      }
    });

    it('keys every item RL#<policy>#<hash of the key>, whatever the key length', async () => {
      freezeClock();
      const name = uniquePolicyName('keys');
      const limiter = new RateLimiter({
        policy: { name, limit: 5, windowSec: 60 },
        tableName,
        client: counting.client,
      });
      const hugeKey = `apiKey:${'x'.repeat(1024 * 1024)}`;
      expect((await limiter.consume(hugeKey)).allowed).toBe(true);
      expect((await limiter.consume('ip:198.51.100.1')).allowed).toBe(true);
      const items = await itemsWithPrefix(counting.client, `RL#${name}#`);
      expect(items).toHaveLength(2);
      for (const item of items) {
        expect(item.pk?.S).toMatch(new RegExp(`^RL#${name}#[A-Za-z0-9_-]{43}$`));
        expect(Object.keys(item).sort()).toEqual(['expiresAt', 'pk', 'sk', 'tat', 'windowSec']);
        // The TTL attribute covers the item's whole useful life: after it, the key is idle anyway.
        expect(Number(item.expiresAt?.N) * 1_000_000).toBeGreaterThanOrEqual(Number(item.tat?.N));
      }
      expect(items.map((item) => item.pk?.S)).toContain(limiter.storageKeyOf(hugeKey));
    });

    it('counts keys that differ only in unpaired surrogates apart, and well-formed keys as SHA-256 of their UTF-8', async () => {
      freezeClock();
      const name = uniquePolicyName('surrogates');
      const limiter = new RateLimiter({
        policy: { name, limit: 1, windowSec: 60 },
        tableName,
        client: counting.client,
      });
      // UTF-8 would write all three as `tenant:t\ufffd`: one counter, and the second and third refused.
      const keys = ['tenant:t\ud800', 'tenant:t\udfff', 'tenant:t\ufffd'];
      for (const key of keys) expect((await limiter.consume(key)).allowed).toBe(true);
      expect(new Set(keys.map((key) => limiter.storageKeyOf(key))).size).toBe(3);
      expect((await itemsWithPrefix(counting.client, `RL#${name}#`)).length).toBe(3);
      expect(limiter.storageKeyOf('tenant:t\ufffd')).toBe(
        `RL#${name}#${createHash('sha256').update('tenant:t\ufffd', 'utf8').digest('base64url')}`,
      );
    });

    it('treats an item past its expiresAt that TTL has not deleted yet as idle, never as a live counter', async () => {
      // freezeClock runs a day ahead of the sweeper's real clock: past its expiresAt here, the item stays.
      const start = freezeClock();
      const own = countingClient();
      const limiter = new RateLimiter({ policy: 'register', tableName, client: own.client });
      const key = `ip:${uniquePolicyName()}`;
      for (let index = 0; index < 3; index += 1) await limiter.consume(key);
      const [item] = await itemsWithPrefix(own.client, limiter.storageKeyOf(key));
      const expiresAtMs = Number(item?.expiresAt?.N) * 1000;
      expect(expiresAtMs).toBe(Math.ceil((start + 300 * second) / 1000) * 1000);

      vi.setSystemTime(expiresAtMs);
      expect(await itemsWithPrefix(own.client, limiter.storageKeyOf(key))).toHaveLength(1);
      const fresh = new RateLimiter({ policy: 'register', tableName, client: own.client });
      expect(await fresh.getRemaining(key)).toBe(3);
      const before = own.total();
      expect(await fresh.consume(key)).toMatchObject({ allowed: true, remaining: 2 });
      expect(own.total() - before).toBe(1);
      own.client.destroy();
    });

    it('reads an item whose expiresAt has passed as absent, whatever its TAT says', async () => {
      const now = freezeClock();
      const limiter = new RateLimiter({ policy: 'mfaVerify', tableName, client: counting.client });
      const key = `user:${uniquePolicyName()}`;
      const storageKey = limiter.storageKeyOf(key);
      await counting.client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            pk: { S: storageKey },
            sk: { S: 'RL' },
            tat: { N: String((now + 3600 * second) * 1000) },
            expiresAt: { N: String(Math.floor(now / 1000) - 60) },
          },
        }),
      );
      expect(await limiter.getRemaining(key)).toBe(1);
      const { Item } = await counting.client.send(
        new GetItemCommand({ TableName: tableName, Key: { pk: { S: storageKey }, sk: { S: 'RL' } } }),
      );
      expect(Item).toBeDefined();
    });

    it('remembers at most localCacheSize keys, forgetting the oldest', async () => {
      freezeClock();
      const limiter = new RateLimiter({
        policy: 'mfaVerify',
        tableName,
        client: counting.client,
        localCacheSize: 1,
      });
      const [first, second_] = [`user:${uniquePolicyName()}`, `user:${uniquePolicyName()}`];
      await limiter.consume(first);
      expect((await limiter.consume(first)).source).toBe('local');
      await limiter.consume(second_);
      // The first key was forgotten: the store answers again, and still says no.
      expect(await limiter.consume(first)).toMatchObject({ allowed: false, source: 'store' });
    });

    it('reset forgets one key only', async () => {
      freezeClock();
      const limiter = new RateLimiter({ policy: 'mfaVerify', tableName, client: counting.client });
      const [first, second_] = [`user:${uniquePolicyName()}`, `user:${uniquePolicyName()}`];
      await limiter.consume(first);
      await limiter.consume(second_);
      await limiter.reset(first);
      expect((await limiter.consume(first)).allowed).toBe(true);
      expect((await limiter.consume(second_)).allowed).toBe(false);
    });

    it('refund gives back units a consume took, across instances, and nothing to an idle key', async () => {
      const start = freezeClock();
      const policy = { name: uniquePolicyName('refund'), limit: 2, windowSec: 60 };
      const first = new RateLimiter({ policy, tableName, client: counting.client });
      const second_ = new RateLimiter({ policy, tableName, client: counting.client });
      const both = await first.consume('k', 2);
      expect(both.remaining).toBe(0);
      // Known over the limit here: the refund must also clear what this instance remembers.
      expect((await first.consume('k')).source).toBe('local');
      await first.refund('k', both);
      expect(await second_.getRemaining('k')).toBe(1);
      expect(await first.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
      await second_.refund('k', both, 2);
      expect(await first.getRemaining('k')).toBe(2);
      // Idle (everything refilled): there is nothing to give back, and the key never exceeds its limit.
      vi.setSystemTime(start + 60 * second);
      await first.refund('k', both);
      expect(await first.getRemaining('k')).toBe(2);
      expect((await first.consume('k', 2)).allowed).toBe(true);
      expect((await first.consume('k')).allowed).toBe(false);
    });

    it("clearAll deletes this policy's keys and nothing else", async () => {
      freezeClock();
      const name = uniquePolicyName('clear');
      const mine = new RateLimiter({
        policy: { name, limit: 1, windowSec: 60 },
        tableName,
        client: counting.client,
      });
      // A policy whose name starts with this one's must survive: the prefix ends with '#'.
      const lookalike = new RateLimiter({
        policy: { name: `${name}2`, limit: 1, windowSec: 60 },
        tableName,
        client: counting.client,
      });
      const circuitKey = `CB#${name}`;
      await counting.client.send(
        new PutItemCommand({ TableName: tableName, Item: { pk: { S: circuitKey }, sk: { S: 'CB' } } }),
      );
      for (const key of ['a', 'b', 'c']) {
        await mine.consume(key);
        await lookalike.consume(key);
      }
      expect(await mine.clearAll()).toBe(3);
      expect(await itemsWithPrefix(counting.client, `RL#${name}#`)).toHaveLength(0);
      expect(await itemsWithPrefix(counting.client, `RL#${name}2#`)).toHaveLength(3);
      expect(await itemsWithPrefix(counting.client, circuitKey)).toHaveLength(1);
      expect((await mine.consume('a')).allowed).toBe(true);
      expect((await lookalike.consume('a')).allowed).toBe(false);
    });
  });

  describe('a named policy changed between deploys', () => {
    /** The policy `name` as one deploy runs it, on its own client; leases off, so every admission is one write. */
    const deployed = (name: string, limit: number, windowSec: number, client = counting.client) =>
      new RateLimiter({ policy: { name, limit, windowSec }, tableName, client, leaseMs: 0 });
    const storedItem = async (limiter: RateLimiter, key: string) =>
      (await itemsWithPrefix(counting.client, limiter.storageKeyOf(key)))[0];
    /** Writes `key`'s item as it is, its TAT `aheadSec` past `now`, labelled with `windowSec` if given. */
    const storeItem = (
      limiter: RateLimiter,
      key: string,
      now: number,
      aheadSec: number,
      windowSec?: number,
    ) =>
      counting.client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            pk: { S: limiter.storageKeyOf(key) },
            sk: { S: 'RL' },
            tat: { N: String((now + aheadSec * second) * 1000) },
            ...(windowSec === undefined ? {} : { windowSec: { N: String(windowSec) } }),
            expiresAt: { N: String(Math.ceil(now / 1000) + 3600) },
          },
        }),
      );

    it('carries the used share over to a shorter window: half the hour’s budget is half the minute’s', async () => {
      const start = freezeClock();
      const name = uniquePolicyName('shorter');
      const hourly = deployed(name, 100, 3600);
      for (let index = 0; index < 50; index += 1) expect((await hourly.consume('k')).allowed).toBe(true);
      const own = countingClient();
      const perMinute = deployed(name, 10, 60, own.client);
      // A read answers in the new terms and leaves the item as the hourly policy wrote it.
      expect(await perMinute.getRemaining('k')).toBe(5);
      expect((await storedItem(perMinute, 'k'))?.windowSec?.N).toBe('3600');
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 4, source: 'store' });
      const converted = await storedItem(perMinute, 'k');
      expect(converted?.windowSec?.N).toBe('60');
      // 30 s of the minute used (half of it), plus this request's 6 s.
      expect(Number(converted?.tat?.N)).toBe((start + 36 * second) * 1000);
      // Converted once: each admission is one write again.
      const before = own.total();
      for (let index = 0; index < 4; index += 1) expect((await perMinute.consume('k')).allowed).toBe(true);
      expect(own.total() - before).toBe(4);
      // Refused in the minute's terms (one unit per 6 s), from this instance's memory too.
      expect(await perMinute.consume('k')).toMatchObject({
        allowed: false,
        retryAfterSec: 6,
        source: 'local',
      });
      vi.setSystemTime(start + 6 * second);
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
      own.client.destroy();
    });

    it('carries the used share over to a longer window, refilling at the new rate', async () => {
      const start = freezeClock();
      const name = uniquePolicyName('longer');
      const perMinute = deployed(name, 10, 60);
      for (let index = 0; index < 5; index += 1) await perMinute.consume('k');
      const hourly = deployed(name, 100, 3600);
      // Half the minute used is half the hour, not the 30 s it would be as it stands (99 left).
      expect(await hourly.getRemaining('k')).toBe(50);
      expect(await hourly.consume('k')).toMatchObject({ allowed: true, remaining: 49 });
      vi.setSystemTime(start + 36 * second);
      expect(await hourly.getRemaining('k')).toBe(50);
    });

    it('restarts an idle key in the window of the policy that admits it, whichever window counted it before', async () => {
      const start = freezeClock();
      const name = uniquePolicyName('idle-restart');
      const perMinute = deployed(name, 10, 60);
      for (let index = 0; index < 5; index += 1) await perMinute.consume('k');
      // Idle (its TAT, 30 s ahead, has passed) while the item is still there, labelled with the minute.
      vi.setSystemTime(start + 31 * second);
      const hourly = deployed(name, 100, 3600);
      expect(await hourly.consume('k')).toMatchObject({ allowed: true, remaining: 99 });
      expect((await storedItem(hourly, 'k'))?.windowSec?.N).toBe('3600');
      expect(await hourly.consume('k')).toMatchObject({ allowed: true, remaining: 98 });
    });

    it('carries the used share over when the limit and the window both change', async () => {
      freezeClock();
      const name = uniquePolicyName('both');
      const hourly = deployed(name, 100, 3600);
      for (let index = 0; index < 25; index += 1) await hourly.consume('k');
      // A quarter used: 15 of 20 per 10 minutes left.
      expect(await deployed(name, 20, 600).consume('k')).toMatchObject({ allowed: true, remaining: 14 });
    });

    it('admits exactly the carried-over budget to concurrent requests on several instances', async () => {
      freezeClock();
      const name = uniquePolicyName('concurrent');
      const hourly = deployed(name, 100, 3600);
      for (let index = 0; index < 50; index += 1) await hourly.consume('k');
      const clients = Array.from({ length: 4 }, () => countingClient(patientClient));
      const instances = clients.map(({ client }) => deployed(name, 10, 60, client));
      const results = await Promise.all(
        Array.from(
          { length: 20 },
          (_, index) => instances[index % 4]?.consume('k') as Promise<RateLimitResult>,
        ),
      );
      // Every instance converts the same TAT; one conversion applies, and exactly half the minute is left.
      expect(admitted(results)).toBe(5);
      expect(results.filter((result) => !result.allowed).every((result) => result.retryAfterSec >= 1)).toBe(
        true,
      );
      expect(await instances[0]?.getRemaining('k')).toBe(0);
      for (const { client } of clients) client.destroy();
    });

    it('lets the old and the new window run side by side on one budget, each in its own terms', async () => {
      freezeClock();
      const name = uniquePolicyName('side-by-side');
      const hourly = deployed(name, 100, 3600);
      const perMinute = deployed(name, 10, 60);
      for (let index = 0; index < 50; index += 1) await hourly.consume('k');
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 4 });
      // 36 s of the minute is 60 % used: 40 of the hour's 100 left, one of them taken now.
      const hourlyAdmission = await hourly.consume('k');
      expect(hourlyAdmission).toMatchObject({ allowed: true, remaining: 39 });
      expect(await perMinute.getRemaining('k')).toBe(3);
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 2 });
      // Counted in the minute's window now: the hourly unit is not given back there.
      await hourly.refund('k', hourlyAdmission);
      expect(await perMinute.getRemaining('k')).toBe(2);
    });

    it('converts from the item a failed write returns, as DynamoDB does, at one write more', async () => {
      freezeClock();
      const shared = new MemoryCounterStore();
      const modes: TatWrite['mode'][] = [];
      const store: CounterStore = {
        write: (storageKey, write) => {
          modes.push(write.mode);
          return shared.write(storageKey, write);
        },
        read: (storageKey, nowUs) => shared.read(storageKey, nowUs),
        delete: (storageKey) => shared.delete(storageKey),
        deleteAll: (prefix) => shared.deleteAll(prefix),
      };
      const policy = { name: 'api', limit: 100, windowSec: 3600 };
      const hourly = new RateLimiter({ policy, store, leaseMs: 0 });
      for (let index = 0; index < 50; index += 1) await hourly.consume('k');
      modes.length = 0;
      const perMinute = new RateLimiter({
        policy: { ...policy, limit: 10, windowSec: 60 },
        store,
        leaseMs: 0,
      });
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 4 });
      expect(modes).toEqual(['fresh', 'rebase', 'busy']);
    });

    it('reads an item stored before windows were as the current window, never beyond its whole budget', async () => {
      const now = freezeClock();
      const perMinute = deployed(uniquePolicyName('unwindowed'), 10, 60);
      // Half of an hour's budget, written without the window.
      await storeItem(perMinute, 'k', now, 1800);
      // All of the minute's budget used, not half an hour's worth: one unit back in 6 s.
      expect(await perMinute.consume('k')).toMatchObject({
        allowed: false,
        retryAfterSec: 6,
        source: 'store',
      });
      const converted = await storedItem(perMinute, 'k');
      expect(converted?.windowSec?.N).toBe('60');
      expect(Number(converted?.tat?.N)).toBe((now + 60 * second) * 1000);
      vi.setSystemTime(now + 6 * second);
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
    });

    it("caps an item of its own window past its whole budget, as an earlier version's writes leave it", async () => {
      const now = freezeClock();
      const perMinute = deployed(uniquePolicyName('overfull'), 10, 60);
      // Labelled with the minute's window by this version, then added to in hourly steps by an instance
      // still on the version before, whose writes neither check nor set the window: 24 minutes ahead.
      await storeItem(perMinute, 'k', now, 1446, 60);
      expect(await perMinute.getRemaining('k')).toBe(0);
      // The whole minute's budget used, not 24 minutes' worth: one unit back in 6 s.
      expect(await perMinute.consume('k')).toMatchObject({
        allowed: false,
        retryAfterSec: 6,
        source: 'store',
      });
      expect(Number((await storedItem(perMinute, 'k'))?.tat?.N)).toBe((now + 60 * second) * 1000);
      vi.setSystemTime(now + 6 * second);
      expect(await perMinute.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
    });
  });

  describe('bad input', () => {
    let limiter: RateLimiter;
    let name: string;

    beforeEach(() => {
      name = uniquePolicyName('bad');
      limiter = new RateLimiter({
        policy: { name, limit: 5, windowSec: 60 },
        tableName,
        client: counting.client,
      });
    });

    it.each([
      ['an empty key', '', 1],
      ['a key that is not a string', 42 as unknown as string, 1],
      ['a zero cost', 'k', 0],
      ['a negative cost', 'k', -1],
      ['a fractional cost', 'k', 1.5],
      ['a NaN cost', 'k', Number.NaN],
      ['an infinite cost', 'k', Number.POSITIVE_INFINITY],
      ['a string cost', 'k', '2' as unknown as number],
      ['a cost above the limit', 'k', 6],
    ])('rejects %s with a clear error and writes nothing', async (_label, key, cost) => {
      await expect(limiter.consume(key, cost)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await itemsWithPrefix(counting.client, `RL#${name}#`)).toHaveLength(0);
    });

    it('never gives the store back units the fallback gave, even once the store answers again', async () => {
      const policy = { name: uniquePolicyName('refund-source'), limit: 5, windowSec: 60 };
      const limiter = new RateLimiter({ policy, tableName, client: counting.client });
      for (let index = 0; index < 3; index += 1) await limiter.consume('k');
      // A unit an outage's fallback admitted, refunded after the outage.
      await limiter.refund('k', { allowed: true, source: 'fallback' });
      expect(await limiter.getRemaining('k')).toBe(2);
    });

    it('rejects an empty key in getRemaining and reset too, and a bad key or cost in refund', async () => {
      await expect(limiter.getRemaining('')).rejects.toThrow(/non-empty string/);
      await expect(limiter.reset('')).rejects.toThrow(/non-empty string/);
      const admitted = { allowed: true, source: 'store' } as const;
      await expect(limiter.refund('', admitted)).rejects.toThrow(/non-empty string/);
      await expect(limiter.refund('k', admitted, 0)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(limiter.refund('k', admitted, 6)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(limiter.refund('k', { allowed: false, source: 'store' })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    });

    it('lists every invalid option in one error at construction', () => {
      const build = () =>
        new RateLimiter({
          policy: { name: 'no spaces', limit: 0, windowSec: -5 },
          tableName: 'x',
          failMode: 'sideways' as 'open',
          outageBackoffSec: -1,
          localCacheSize: 1.5,
          leaseMs: Number.NaN,
        });
      expect(build).toThrow(InvalidOptionsError);
      try {
        build();
      } catch (error) {
        const problems = (error as InvalidOptionsError).problems.join('\n');
        expect((error as InvalidOptionsError).problems).toHaveLength(8);
        for (const field of [
          'name',
          'limit',
          'windowSec',
          'tableName',
          'failMode',
          'outageBackoffSec',
          'localCacheSize',
          'leaseMs',
        ]) {
          expect(problems).toContain(field);
        }
      }
    });

    it.each([
      ['a zero limit', { limit: 0, windowSec: 60 }, /limit must be a positive integer/],
      ['a negative limit', { limit: -3, windowSec: 60 }, /limit must be a positive integer/],
      ['a fractional limit', { limit: 2.5, windowSec: 60 }, /limit must be a positive integer/],
      ['a zero window', { limit: 3, windowSec: 0 }, /windowSec must be a whole number/],
      ['a negative window', { limit: 3, windowSec: -1 }, /windowSec must be a whole number/],
      ['a fractional window', { limit: 3, windowSec: 0.5 }, /windowSec must be a whole number/],
      ['a window over a year', { limit: 3, windowSec: 400 * 24 * 3600 }, /windowSec must be a whole number/],
      ['over 10,000 per second', { limit: 20_001, windowSec: 2 }, /at most 10000 per second/],
    ])('rejects %s at construction', (_label, policy, message) => {
      expect(() => new RateLimiter({ policy, tableName })).toThrow(message);
    });

    it('rejects an unknown preset, a missing table and a store given twice', () => {
      expect(() => new RateLimiter({ policy: 'gold' as 'public', tableName })).toThrow(
        /must be one of public/,
      );
      expect(() => new RateLimiter({ policy: 'public' } as never)).toThrow(
        /tableName must name the toolkit table/,
      );
      expect(
        () => new RateLimiter({ policy: 'public', tableName, store: {} as CounterStore } as never),
      ).toThrow(/either store or tableName/);
    });

    it.each([
      ['blank', '   ', '"   "'],
      ['with a space', 'a b', '"a b"'],
      // Shown up to its 80th character: the message stays short.
      ['of 300 characters', 'x'.repeat(300), `"${'x'.repeat(80)}…"`],
    ])('rejects a tableName %s, which DynamoDB would refuse on every call', (_label, badName, shown) => {
      const problem = `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${shown})`;
      expect(() => new RateLimiter({ policy: 'public', tableName: badName })).toThrow(
        new InvalidOptionsError('RateLimiter', [problem]),
      );
      expect(() => rateLimit({ policy: 'public', tableName: badName })).toThrow(problem);
      expect(() => new DynamoDbCounterStore({ client: createDynamoDbClient(), tableName: badName })).toThrow(
        new InvalidOptionsError('DynamoDbCounterStore', [problem]),
      );
    });

    it('rejects a DynamoDbCounterStore without a client, which would fail every write', () => {
      expect(() => new DynamoDbCounterStore({ tableName } as never)).toThrow(
        new InvalidOptionsError('DynamoDbCounterStore', ['client must be a DynamoDBClient']),
      );
    });
  });

  describe('conflicting writers', () => {
    it('refuses rather than admits when every attempt meets a changed item', async () => {
      freezeClock();
      const writes: TatWrite['mode'][] = [];
      // A store whose item changes under every write: the condition always fails, the state always reads idle.
      const racing: CounterStore = {
        write: async (_key, write) => {
          writes.push(write.mode);
          return { applied: false, known: false };
        },
        read: async () => undefined,
        delete: async () => {},
        deleteAll: async () => 0,
      };
      const limiter = new RateLimiter({ policy: 'login', store: racing });
      expect(await limiter.consume('k')).toMatchObject({ allowed: false, retryAfterSec: 6, source: 'store' });
      expect(writes).toEqual(['fresh', 'busy', 'fresh', 'busy']);
    });
  });
});
