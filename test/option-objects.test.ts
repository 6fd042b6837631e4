// README's option rules, checked across components: an object given as an option is refused at construction
// when it lacks a method the component calls, rather than failing each request or being quietly replaced.
import { describe, expect, it } from 'vitest';
import {
  ApiKeyStore,
  CircuitBreaker,
  createServiceClient,
  DynamoDbNonceStore,
  InvalidOptionsError,
  idempotency,
  RateLimiter,
  rateLimit,
  ServiceRequestVerifier,
} from '../middleware/index.js';

/** The error a construction throws, for its class and exact message. */
function thrownBy(construct: () => unknown): unknown {
  try {
    construct();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Checks the options error of one component: its class and its whole message. */
function expectOptionsError(construct: () => unknown, message: string): void {
  const error = thrownBy(construct);
  expect(error).toBeInstanceOf(InvalidOptionsError);
  expect((error as Error).message).toBe(message);
}

// Casts stand for options read from a config file or built by hand, where the types do not reach.
const loose = <T>(value: unknown) => value as T;
type Loose<F extends (...args: never[]) => unknown> = Parameters<F>[0];

describe('an object option missing a method the component calls', () => {
  it("idempotency's persistenceStore, missing or without Powertools' methods, is refused at construction", () => {
    const store = (persistenceStore: unknown) => () =>
      idempotency(loose<Loose<typeof idempotency>>({ persistenceStore, anonymous: true }));
    expectOptionsError(store(undefined), 'Invalid idempotency options: persistenceStore is required');
    expectOptionsError(
      store({ getRecord() {} }),
      'Invalid idempotency options: persistenceStore must have configure() and getRecord() and saveInProgress() and saveSuccess() and deleteRecord() and processExistingRecord() (a ToolkitIdempotencyStore fits)',
    );
  });

  it("a RateLimiter's or rateLimit's store is refused, not replaced by per-instance counting", () => {
    const problem =
      'store must have write() and read() and delete() and deleteAll() (a DynamoDbCounterStore fits)';
    expectOptionsError(
      () => new RateLimiter({ policy: 'public', store: loose({}) }),
      `Invalid RateLimiter options: ${problem}`,
    );
    expectOptionsError(
      () => rateLimit({ policy: 'public', keyBy: 'ip', store: loose({ read() {} }) }),
      `Invalid rateLimit options: ${problem}`,
    );
  });

  it("a CircuitBreaker's or createServiceClient's store is refused, not read as the service's outage", () => {
    const problem =
      'store must have read() and addFailure() and replace() (a DynamoDbCircuitStateStore fits)';
    expectOptionsError(
      () => new CircuitBreaker({ name: 'geo', store: loose({}) }),
      `Invalid CircuitBreaker options: ${problem}`,
    );
    expectOptionsError(
      () =>
        createServiceClient({
          store: loose({ read() {} }),
          services: { geo: { baseUrl: 'https://geo.example.com' } },
        }),
      `Invalid ServiceClient options: geo: ${problem}`,
    );
  });

  it("ServiceRequestVerifier's nonceStore without claim() is refused, not a 503 for every signed request", () => {
    expectOptionsError(
      () =>
        new ServiceRequestVerifier({
          services: { bookings: { current: 'a'.repeat(40) } },
          nonceStore: loose({}),
        }),
      'Invalid ServiceRequestVerifier options: nonceStore must have claim() (a DynamoDbNonceStore fits)',
    );
  });

  it("ApiKeyStore's and DynamoDbNonceStore's client without send() is refused", () => {
    const problem = 'client must have send() (a DynamoDBDocumentClient fits)';
    expectOptionsError(
      () => new ApiKeyStore({ tableName: 'toolkit', client: loose({}) }),
      `Invalid ApiKeyStore options: ${problem}`,
    );
    expectOptionsError(
      () => new DynamoDbNonceStore({ tableName: 'toolkit', client: loose({}) }),
      `Invalid DynamoDbNonceStore options: ${problem}`,
    );
  });
});
