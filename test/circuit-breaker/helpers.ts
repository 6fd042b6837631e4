// Circuit breaker test helpers: stores on the suite's embedded DynamoDB, request counting, a dead endpoint, a store that hangs.
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { inject, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import type { CircuitBreakerSettings } from '../../middleware/circuit-breaker/options.js';
import type { CircuitStateStore } from '../../middleware/circuit-breaker/state.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testTableNames } from '../helpers/tables.js';

export const tableName = testTableNames.toolkit;

/** A circuit name no other test uses, so tests never share state through the table. */
export const uniqueName = (label = 'dep') => `${label}-${randomUUID()}`;

/** Counts the DynamoDB requests (sends, not SDK retries) made through a client. */
export interface CountedClient {
  readonly client: DynamoDBClient;
  readonly requests: () => number;
  readonly byCommand: () => Record<string, number>;
}

export function countedClient(endpoint = inject('dynamoDbEndpoint')): CountedClient {
  const client = createDynamoDbClient({ endpoint });
  const counts: Record<string, number> = {};
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? 'unknown';
      counts[command] = (counts[command] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return {
    client,
    requests: () => Object.values(counts).reduce((sum, count) => sum + count, 0),
    byCommand: () => ({ ...counts }),
  };
}

/**
 * A DynamoDB store of its own (own client, own counter) on the suite's toolkit table. Its requests wait up
 * to 5 s, not the 1 s default: these tests are about the shared state, and on a busy machine (two test
 * workers beside the one embedded DynamoDB) a write past 1 s sent a clean-clone run's breaker to local
 * state mid-test. What a slow store does is tested on a store that answers late (late-answer.test.ts).
 */
export function dynamoStore(counted: CountedClient = countedClient()): DynamoDbCircuitStateStore {
  return new DynamoDbCircuitStateStore({ tableName, client: counted.client, requestTimeoutMs: 5000 });
}

/** One breaker instance as a Lambda instance would have it: its own store client and its own cache. */
export function instance<T = unknown>(
  name: string,
  settings: Omit<CircuitBreakerSettings<T>, 'name'> = {},
  counted: CountedClient = countedClient(),
): CircuitBreaker<T> {
  return new CircuitBreaker<T>({
    logger: { warn: vi.fn(), info: vi.fn() },
    ...settings,
    name,
    store: dynamoStore(counted),
  });
}

/** The circuit's item as stored. */
export async function storedItem(name: string): Promise<Record<string, unknown> | undefined> {
  const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
  const { Item } = await documents.send(
    new GetCommand({ TableName: tableName, Key: { pk: `CB#${name}`, sk: 'STATE' }, ConsistentRead: true }),
  );
  documents.destroy();
  return Item;
}

/**
 * A 127.0.0.1 port nothing listens on, so connections to it are refused at once: a privileged port
 * no test server takes (they all listen on port 0, and a port freed by one could be handed to another).
 */
export const refusedPort = 1;

export class DependencyDown extends Error {
  constructor(message = 'dependency down') {
    super(message);
    this.name = 'DependencyDown';
  }
}

export const failing = () => Promise.reject(new DependencyDown());
export const succeeding = () => Promise.resolve('ok');

/** A promise with its settle functions outside, for actions that answer when the test says so. */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((resolvePromise, rejectPromise) => {
    resolve = resolvePromise;
    reject = rejectPromise;
  });
  return { promise, resolve, reject };
}

/** Settles a breaker call into a value or the error, so tests can assert on either. */
export async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

/** A store that hangs on the operations the test holds, until it releases them. */
export interface HoldingStore {
  readonly store: CircuitStateStore;
  /** What the store holds, read directly. */
  readonly shared: MemoryCircuitStateStore;
  /** From now on, calls of `operation` wait (the write is not made) until {@link HoldingStore.release}. */
  hold(operation: keyof CircuitStateStore): void;
  /** How many calls are waiting. */
  held(): number;
  /** Stops holding; the waiting calls go through, or fail with `error` as a store that gave up would. */
  release(error?: unknown): void;
}

/**
 * A store in memory whose operations the test can hold: DynamoDB accepting requests and never
 * answering, with the answer (or the request timeout) coming when the test says.
 */
export function holdingStore(): HoldingStore {
  const shared = new MemoryCircuitStateStore();
  const holding = new Set<keyof CircuitStateStore>();
  let waiting: ReturnType<typeof deferred<void>>[] = [];
  const through = async <R>(operation: keyof CircuitStateStore, run: () => Promise<R>): Promise<R> => {
    if (holding.has(operation)) {
      const gate = deferred<void>();
      waiting.push(gate);
      await gate.promise;
    }
    return run();
  };
  return {
    shared,
    store: {
      read: (name, now) => through('read', () => shared.read(name, now)),
      addFailure: (name, failure, now) => through('addFailure', () => shared.addFailure(name, failure, now)),
      replace: (name, generation, next, expiresAt, now) =>
        through('replace', () => shared.replace(name, generation, next, expiresAt, now)),
    },
    hold: (operation) => {
      holding.add(operation);
    },
    held: () => waiting.length,
    release: (error) => {
      holding.clear();
      for (const gate of waiting) {
        if (error === undefined) gate.resolve();
        else gate.reject(error);
      }
      waiting = [];
    },
  };
}
