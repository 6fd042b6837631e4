// README's option rules, checked across components: an object given as an option is refused at construction
// when it lacks a method the component calls, rather than failing each request or being quietly replaced.
import { describe, expect, it } from 'vitest';
import {
  ApiKeyStore,
  AuditLogger,
  audit,
  authenticate,
  CircuitBreaker,
  createDocumentClient,
  createDynamoDbClient,
  createKeyProvider,
  createServiceClient,
  createServiceSigner,
  DevIssuer,
  DynamoDbCircuitStateStore,
  DynamoDbCounterStore,
  DynamoDbNonceStore,
  Encryptor,
  guardedFetch,
  httpErrorHandler,
  InvalidArgumentError,
  InvalidOptionsError,
  idempotency,
  JwksKeyStore,
  JwtVerifier,
  KmsKeyProvider,
  LocalKeyProvider,
  provideEncryptor,
  RateLimiter,
  rateLimit,
  ServiceRequestVerifier,
  serviceAuth,
  ToolkitIdempotencyStore,
  validateInput,
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

describe('a missing options object', () => {
  it('is an InvalidOptionsError naming the component, not a TypeError about undefined', () => {
    const constructions: [string, (options: unknown) => unknown][] = [
      ['authenticate', (options) => authenticate(loose(options))],
      ['serviceAuth', (options) => serviceAuth(loose(options))],
      ['RateLimiter', (options) => new RateLimiter(loose(options))],
      ['rateLimit', (options) => rateLimit(loose(options))],
      ['CircuitBreaker', (options) => new CircuitBreaker(loose<never>(options))],
      ['ServiceClient', (options) => createServiceClient(loose(options))],
      ['Encryptor', (options) => new Encryptor(loose(options))],
      ['provideEncryptor', (options) => provideEncryptor(loose(options))],
      ['KmsKeyProvider', (options) => new KmsKeyProvider(loose(options))],
      ['LocalKeyProvider', (options) => new LocalKeyProvider(loose(options))],
      ['JwtVerifier', (options) => new JwtVerifier(loose(options))],
      ['ApiKeyStore', (options) => new ApiKeyStore(loose(options))],
      ['ServiceRequestVerifier', (options) => new ServiceRequestVerifier(loose(options))],
      ['idempotency', (options) => idempotency(loose<never>(options))],
      ['DevIssuer', (options) => new DevIssuer(loose(options))],
      ['JwksKeyStore', (options) => new JwksKeyStore(loose(options))],
      ['DynamoDbCircuitStateStore', (options) => new DynamoDbCircuitStateStore(loose(options))],
      ['DynamoDbCounterStore', (options) => new DynamoDbCounterStore(loose(options))],
      ['keyProvider', (options) => createKeyProvider(loose(options))],
      ['createServiceSigner', (options) => createServiceSigner(loose(options))],
    ];
    // null and [] are typeof 'object' and a function has properties: each must still be refused by name.
    const refusedValues: [unknown, string][] = [
      [undefined, 'undefined'],
      ['tableName', '"tableName"'],
      [null, 'null'],
      [[], 'an empty array'],
      [() => ({}), 'a function'],
    ];
    for (const [component, construct] of constructions) {
      for (const [options, shown] of refusedValues) {
        expectOptionsError(
          () => construct(options),
          `Invalid ${component} options: an options object is required (got ${shown})`,
        );
      }
    }
  });

  it('createDocumentClient refuses what is no DynamoDBClient, before the SDK reads its config', () => {
    expectOptionsError(
      () => createDocumentClient(loose({})),
      'Invalid createDocumentClient options: client must be a DynamoDBClient (got an object with no keys)',
    );
    // send() alone is not enough: DynamoDBDocumentClient.from reads client.config first.
    expectOptionsError(
      () => createDocumentClient(loose({ send() {} })),
      'Invalid createDocumentClient options: client must be a DynamoDBClient (got an object with keys send)',
    );
  });

  it('guardedFetch refuses a breaker without execute(), as it refuses its other arguments', async () => {
    const call = guardedFetch(loose({}), 'https://geo.example.com/');
    await expect(call).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(call).rejects.toThrow(/^breaker must be a CircuitBreaker \(got an object with no keys\)$/);
  });
});

describe('option problems name the option as it was given', () => {
  it('serviceAuth without verifier names serviceAuth and verifier, not authenticate', () => {
    expectOptionsError(
      () => serviceAuth(loose({ verfier: { verify() {} } })),
      'Invalid serviceAuth options: verifier is required (a ServiceRequestVerifier fits)',
    );
    expectOptionsError(
      () => serviceAuth(loose({ verifier: {} })),
      'Invalid serviceAuth options: verifier must have verify() (a ServiceRequestVerifier fits)',
    );
  });

  it('JwtVerifier with an issuer that is no URL blames the issuer, not the jwksUri made from it', () => {
    expectOptionsError(
      () => new JwtVerifier({ issuers: [{ issuer: 'not a url', tokenUse: 'access', clientId: ['x'] }] }),
      'Invalid JwtVerifier options: not a url: issuer is not an http(s) URL, so no default jwksUri can be made from it (give jwksUri)',
    );
    expectOptionsError(
      () =>
        new JwtVerifier({
          issuers: [
            { issuer: 'https://a.example.com', tokenUse: 'access', clientId: ['x'], jwksUri: 'keys' },
          ],
        }),
      'Invalid JwtVerifier options: https://a.example.com: jwksUri is not an http(s) URL',
    );
  });

  it('JwtVerifier with issuers given as one object says it must be an array', () => {
    expectOptionsError(
      () =>
        new JwtVerifier(
          loose({ issuers: { issuer: 'https://a.example.com', tokenUse: 'access', clientId: ['x'] } }),
        ),
      'Invalid JwtVerifier options: issuers must be an array of issuer options (got an object with keys issuer, tokenUse, clientId)',
    );
    expectOptionsError(
      () => new JwtVerifier({ issuers: [] }),
      'Invalid JwtVerifier options: issuers must not be empty',
    );
  });

  it('JwtVerifier with issuers left out or null says they must not be empty, not a verifier trusting none', () => {
    expectOptionsError(
      () => new JwtVerifier(loose({})),
      'Invalid JwtVerifier options: issuers must not be empty',
    );
    expectOptionsError(
      () => new JwtVerifier(loose({ issuers: null })),
      'Invalid JwtVerifier options: issuers must not be empty',
    );
  });
});

describe('an option given as null, as README lists it', () => {
  const issuers = [{ issuer: 'https://a.example.com', tokenUse: 'access' as const, clientId: ['x'] }];
  const limit = { policy: 'public', keyBy: 'ip', tableName: 'toolkit' };

  it('is taken as left out by onEvent, some loggers, trust and JwtVerifier cache', () => {
    expect(() => authenticate(loose({ jwt: { verify() {} }, onEvent: null }))).not.toThrow();
    expect(() => serviceAuth(loose({ verifier: { verify() {} }, onEvent: null }))).not.toThrow();
    expect(() => httpErrorHandler(loose({ logger: null }))).not.toThrow();
    expect(() => rateLimit(loose({ ...limit, logger: null, trust: null, onEvent: null }))).not.toThrow();
    expect(
      () => new CircuitBreaker(loose<never>({ name: 'geo', tableName: 'toolkit', logger: null })),
    ).not.toThrow();
    expect(() => new JwtVerifier(loose({ issuers, cache: null }))).not.toThrow();
  });

  it('is refused at construction by the options README names, each naming the option', () => {
    expectOptionsError(
      () => rateLimit(loose({ ...limit, leaseMs: null })),
      'Invalid rateLimit options: leaseMs must be a number of milliseconds in 0..10000 (got null)',
    );
    expectOptionsError(
      () => rateLimit(loose({ ...limit, keyBy: null })),
      'Invalid rateLimit options: keyBy must be one or more of ip, user, clientId, apiKey, tenant, route (got null)',
    );
    expectOptionsError(
      () => rateLimit(loose({ ...limit, failMode: null })),
      "Invalid rateLimit options: failMode must be 'open' or 'closed' (got null)",
    );
    expectOptionsError(
      () =>
        new CircuitBreaker(
          loose<never>({ name: 'geo', tableName: 'toolkit', failureThreshold: null, timeoutMs: null }),
        ),
      'Invalid CircuitBreaker options: failureThreshold must be an integer > 0 (got null); timeoutMs must be a number of milliseconds > 0 and <= 2147483647 (got null)',
    );
    expectOptionsError(
      () => validateInput(loose<never>({ body: null })),
      'Invalid validateInput options: body must be a Standard Schema (zod, valibot, arktype...)',
    );
    expectOptionsError(
      () => validateInput({}, loose({ maxBodyBytes: null })),
      'Invalid validateInput options: maxBodyBytes must be an integer of bytes >= 1 (got null)',
    );
    expectOptionsError(
      () =>
        idempotency(
          loose<never>({
            persistenceStore: new ToolkitIdempotencyStore({
              name: 'orders',
              tableName: 'toolkit',
              client: createDynamoDbClient(),
            }),
            logger: null,
          }),
        ),
      'Invalid idempotency options: logger must have warn() (a Powertools Logger fits)',
    );
    expectOptionsError(
      () => new AuditLogger(loose({ logger: null })),
      'Invalid AuditLogger options: logger must have an info() method (a Powertools Logger)',
    );
    expectOptionsError(
      () => audit(loose({ auditLogger: new AuditLogger(), excludePaths: null })),
      'Invalid audit options: excludePaths must be an array of paths (got null)',
    );
  });
});
