import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDynamoDbProcess } from '../../bin/runtime/dynamodb-process.js';
import type { LocalDynamoDb } from '../../bin/runtime/local-dynamodb.js';
import { storeFailureReason } from '../../middleware/dependency-failure.js';
import { ServiceUnavailableError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { toolkitTable } from '../../middleware/store/tables.js';
import { silentServer } from '../helpers/silent-server.js';
import { countingClient, refusedPort, tableName } from './helpers.js';

function recorder() {
  const events: SecurityEvent[] = [];
  const logger = { warn: vi.fn() };
  return { events, logger, onEvent: (event: SecurityEvent) => events.push(event) };
}

describe('RateLimiter when DynamoDB fails', () => {
  let unreachable: string;

  beforeAll(async () => {
    unreachable = `http://127.0.0.1:${refusedPort}`;
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  describe("failMode 'open' (the default)", () => {
    it('falls back to a per-instance limiter at the same policy, and reports the failure', async () => {
      const { events, logger, onEvent } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({
        policy: 'register',
        tableName,
        client: down.client,
        onEvent,
        logger,
      });
      const results = [];
      for (let index = 0; index < 4; index += 1) results.push(await limiter.consume('ip:192.0.2.1'));
      expect(results.map((result) => [result.allowed, result.source])).toEqual([
        [true, 'fallback'],
        [true, 'fallback'],
        [true, 'fallback'],
        [false, 'fallback'],
      ]);
      expect(results[3]?.retryAfterSec).toBe(100);
      expect(events).toEqual([
        {
          type: 'rateLimit.storeError',
          reason: 'store_unreachable',
          metadata: { policy: 'register', failMode: 'open', operation: 'consume' },
        },
      ]);
      expect(logger.warn).toHaveBeenCalledTimes(1);
      expect(logger.warn.mock.calls[0]?.[0]).toMatch(/counting per instance/);
      down.client.destroy();
    });

    it('leaves the store alone while it backs off, then tries it again', async () => {
      const start = Date.now();
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(start);
      const { events, onEvent, logger } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({
        policy: 'login',
        tableName,
        client: down.client,
        onEvent,
        logger,
        outageBackoffSec: 5,
      });
      await limiter.consume('ip:192.0.2.2');
      for (let index = 0; index < 5; index += 1) await limiter.consume('ip:192.0.2.2');
      expect(await limiter.getRemaining('ip:192.0.2.2')).toBe(4);
      expect(down.total()).toBe(1);
      vi.setSystemTime(start + 5000);
      expect((await limiter.consume('ip:192.0.2.2')).source).toBe('fallback');
      expect(down.total()).toBe(2);
      expect(events).toHaveLength(2);
      down.client.destroy();
    });

    it('gives a refund back to the fallback during an outage, and reports a refund the store fails', async () => {
      const { onEvent, logger, events } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({ policy: 'strict', tableName, client: down.client, onEvent, logger });
      await limiter.refund('user:1', { allowed: true, source: 'store' });
      expect(events.map((event) => event.metadata)).toEqual([
        expect.objectContaining({ operation: 'refund' }),
      ]);
      const requestsBefore = down.total();
      // Units the store gave before the outage stay spent now: no request waits for the failure.
      await limiter.refund('user:1', { allowed: true, source: 'store' });
      expect(down.total()).toBe(requestsBefore);
      const fromFallback = await limiter.consume('user:1', 10);
      expect(fromFallback.source).toBe('fallback');
      expect(await limiter.getRemaining('user:1')).toBe(0);
      await limiter.refund('user:1', fromFallback, 3);
      expect(await limiter.getRemaining('user:1')).toBe(3);
      expect(events).toHaveLength(1);
      down.client.destroy();
    });

    it('answers getRemaining from the fallback', async () => {
      const { onEvent, logger, events } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({ policy: 'strict', tableName, client: down.client, onEvent, logger });
      expect(await limiter.getRemaining('user:1')).toBe(10);
      expect(events[0]?.metadata).toMatchObject({ operation: 'getRemaining' });
      down.client.destroy();
    });

    it('never hangs on a store that accepts connections and never answers', async () => {
      const silent = await silentServer();
      const { events, onEvent, logger } = recorder();
      const client = createDynamoDbClient({
        endpoint: silent.endpoint,
        requestTimeoutMs: 300,
        maxAttempts: 1,
      });
      const limiter = new RateLimiter({ policy: 'login', tableName, client, onEvent, logger });
      const result = await limiter.consume('ip:192.0.2.3');
      expect(result).toMatchObject({ allowed: true, source: 'fallback' });
      // The silent server never answers, so only the 300 ms request timeout can end the wait: the reason says it did.
      expect(events[0]?.reason).toBe('store_timeout');
      client.destroy();
      await silent.close();
    });

    it('sends requests that waited behind a failed write to the fallback, not to the store again', async () => {
      const silent = await silentServer();
      const { events, onEvent, logger } = recorder();
      const store = countingClient({ endpoint: silent.endpoint, requestTimeoutMs: 300, maxAttempts: 1 });
      const limiter = new RateLimiter({ policy: 'login', tableName, client: store.client, onEvent, logger });
      // One key, six requests at once: the first writes, the others wait for its answer.
      const results = await Promise.all(
        Array.from({ length: 6 }, () => limiter.consume('user:waiting-behind-a-timeout')),
      );
      expect(store.total()).toBe(1);
      expect(results.map((result) => result.source)).toEqual(Array(6).fill('fallback'));
      expect(events).toHaveLength(1);
      store.client.destroy();
      await silent.close();
    });

    it('reports an outage once, however many requests for different keys were in flight when it began', async () => {
      const { events, onEvent, logger } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({ policy: 'login', tableName, client: down.client, onEvent, logger });
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, index) => limiter.consume(`ip:192.0.2.${10 + index}`)),
      );
      expect(down.total()).toBe(5);
      expect(results.map((result) => [result.allowed, result.source])).toEqual(
        Array(5).fill([true, 'fallback']),
      );
      expect(events).toEqual([
        {
          type: 'rateLimit.storeError',
          reason: 'store_unreachable',
          metadata: { policy: 'login', failMode: 'open', operation: 'consume' },
        },
      ]);
      expect(logger.warn).toHaveBeenCalledTimes(1);
      down.client.destroy();
    });

    it('refuses a localCacheSize of 0, which would leave the fallback unable to count', () => {
      expect(() => new RateLimiter({ policy: 'login', tableName, localCacheSize: 0 })).toThrow(
        /localCacheSize must be an integer >= 1/,
      );
    });
  });

  describe("failMode 'closed'", () => {
    it('refuses with a 503 carrying Retry-After until the store is tried again', async () => {
      const { onEvent, logger, events } = recorder();
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({
        policy: 'login',
        tableName,
        client: down.client,
        failMode: 'closed',
        outageBackoffSec: 7,
        onEvent,
        logger,
      });
      const failure = await limiter.consume('ip:192.0.2.4').catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ServiceUnavailableError);
      expect(failure).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '7' } });
      await expect(limiter.getRemaining('ip:192.0.2.4')).rejects.toBeInstanceOf(ServiceUnavailableError);
      expect(down.total()).toBe(1);
      expect(events[0]).toMatchObject({ reason: 'store_unreachable', metadata: { failMode: 'closed' } });
      expect(logger.warn.mock.calls[0]?.[0]).toMatch(/refusing requests/);
      down.client.destroy();
    });

    it('lets reset and clearAll report the failure to their caller', async () => {
      const down = countingClient({ endpoint: unreachable, maxAttempts: 1 });
      const limiter = new RateLimiter({
        policy: 'login',
        tableName,
        client: down.client,
        failMode: 'closed',
      });
      await expect(limiter.reset('ip:192.0.2.5')).rejects.toThrow();
      await expect(limiter.clearAll()).rejects.toThrow();
      down.client.destroy();
    });
  });

  describe('with a separately started embedded DynamoDB that stops', () => {
    let dynamoDb: LocalDynamoDb;

    beforeAll(async () => {
      dynamoDb = await startDynamoDbProcess();
      const setup = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
      await ensureTables(setup, [{ definition: toolkitTable, tableName }]);
      setup.destroy();
    });

    afterAll(async () => {
      await dynamoDb.stop();
    });

    it('counts in the store while it runs, then fails open or closed once it is gone', async () => {
      const { onEvent, logger, events } = recorder();
      const client = createDynamoDbClient({
        endpoint: dynamoDb.endpoint,
        maxAttempts: 1,
        requestTimeoutMs: 500,
      });
      const open = new RateLimiter({ policy: 'login', tableName, client, onEvent, logger });
      const closed = new RateLimiter({ policy: 'strict', tableName, client, failMode: 'closed', logger });
      expect((await open.consume('ip:192.0.2.6')).source).toBe('store');
      expect((await closed.consume('ip:192.0.2.6')).source).toBe('store');

      await dynamoDb.stop();

      expect(await open.consume('ip:192.0.2.6')).toMatchObject({ allowed: true, source: 'fallback' });
      await expect(closed.consume('ip:192.0.2.6')).rejects.toMatchObject({ statusCode: 503 });
      expect(events.map((event) => event.type)).toEqual(['rateLimit.storeError']);
      client.destroy();
    });
  });

  it('names the kind of failure for events and logs', () => {
    expect(storeFailureReason({ name: 'ThrottlingException' })).toBe('store_throttled');
    expect(storeFailureReason({ name: 'ProvisionedThroughputExceededException' })).toBe('store_throttled');
    expect(storeFailureReason({ name: 'TimeoutError', $metadata: { attempts: 2 } })).toBe('store_timeout');
    expect(storeFailureReason({ code: 'ETIMEDOUT' })).toBe('store_timeout');
    expect(storeFailureReason({ code: 'ECONNREFUSED' })).toBe('store_unreachable');
    expect(storeFailureReason({ name: 'ResourceNotFoundException' })).toBe('store_error');
    expect(storeFailureReason('boom')).toBe('store_error');
  });
});
