// callService and guardedFetch against a real 127.0.0.1 HTTP server: failures, timeouts, retries, signing.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { guardedFetch } from '../../middleware/circuit-breaker/guarded-fetch.js';
import {
  createServiceClient,
  type OutgoingServiceRequest,
  type ServiceOptions,
} from '../../middleware/circuit-breaker/service-client.js';
import {
  CircuitOpenError,
  DependencyError,
  DependencyTimeoutError,
  InvalidArgumentError,
  InvalidOptionsError,
} from '../../middleware/errors.js';
import { freezeAtFailureWindowStart } from '../helpers/failure-window.js';
import { countedClient, dynamoStore, outcome, refusedPort, tableName, uniqueName } from './helpers.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** When the request arrived, from performance.now(). */
  at: number;
}

let server: Server;
let baseUrl: string;
const received: Received[] = [];
/** Per-path count of requests, for endpoints that fail a given number of times. */
const hits = new Map<string, number>();

function answer(request: IncomingMessage, response: ServerResponse, body: string): void {
  const path = new URL(request.url ?? '/', 'http://x').pathname;
  const count = (hits.get(path) ?? 0) + 1;
  hits.set(path, count);
  received.push({
    method: request.method ?? '',
    url: request.url ?? '',
    headers: request.headers,
    body,
    at: performance.now(),
  });
  const json = (status: number, value: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(value));
  };
  if (path.startsWith('/ok')) json(200, { ok: true });
  else if (path.startsWith('/missing')) json(404, { error: 'not found' });
  else if (path.startsWith('/boom')) json(503, { error: 'down' });
  else if (path.startsWith('/empty')) response.writeHead(204).end();
  else if (path.startsWith('/busy')) {
    const after = new URL(request.url ?? '/', 'http://x').searchParams.get('after') ?? '1';
    response.writeHead(503, { 'content-type': 'application/json', 'retry-after': after });
    response.end('{"error":"busy"}');
  } else if (path.startsWith('/moved')) response.writeHead(302, { location: '/ok' }).end();
  else if (path.startsWith('/large')) {
    const bytes = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('bytes'));
    const declared = !path.startsWith('/large-chunked');
    response.writeHead(200, declared ? { 'content-length': String(bytes) } : {});
    response.end('x'.repeat(bytes));
  } else if (path.startsWith('/stall')) {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.write('{"partial":');
  } else if (path.startsWith('/flaky')) {
    if (count <= 2) json(500, { error: 'flaky' });
    else json(200, { attempt: count });
  } else if (!path.startsWith('/hang')) {
    json(200, { method: request.method, body });
  }
}

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => answer(request, response, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  received.length = 0;
  hits.clear();
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** A client with one uniquely named service on the test server, on the suite's DynamoDB. */
function clientFor(
  options: ServiceOptions = {},
  sign?: (request: OutgoingServiceRequest) => Record<string, string>,
) {
  const service = uniqueName('svc');
  const client = createServiceClient({
    store: dynamoStore(),
    services: { [service]: { baseUrl, logger: { warn: vi.fn(), info: vi.fn() }, ...options } },
    ...(sign ? { sign } : {}),
  });
  return { client, service, call: (path: string, init = {}) => client.callService(service, path, init) };
}

describe('callService', () => {
  it('returns a successful answer, fully read, resolving relative paths under baseUrl', async () => {
    const { call } = clientFor();
    const response = await call('ok/1');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    expect(received[0]?.url).toBe('/ok/1');
  });

  it('accepts an absolute URL when the service has no baseUrl', async () => {
    const service = uniqueName('svc');
    const client = createServiceClient({ store: dynamoStore(), services: { [service]: {} } });
    expect((await client.callService(service, `${baseUrl}ok`)).status).toBe(200);
  });

  it('refuses at construction a baseUrl given as undefined (an unset environment variable), and one not a string', () => {
    const servicesOf = (value: unknown) => ({ users: { baseUrl: value as string } });
    expect(() => createServiceClient({ store: dynamoStore(), services: servicesOf(undefined) })).toThrow(
      new InvalidOptionsError('ServiceClient', [
        'users: baseUrl is undefined (an unset environment variable?); leave it out to call absolute URLs',
      ]),
    );
    expect(() => createServiceClient({ store: dynamoStore(), services: servicesOf(42) })).toThrow(
      new InvalidOptionsError('ServiceClient', ['users: baseUrl is not a string']),
    );
  });

  it('returns a 4xx answer to the caller without counting it as a failure', async () => {
    const { client, service, call } = clientFor({ failureThreshold: 1 });
    const response = await call('missing');
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'not found' });
    await call('missing');
    expect(client.breakers[service]?.state).toBe('CLOSED');
  });

  it('keeps a bodiless answer bodiless', async () => {
    const { call } = clientFor();
    const response = await call('empty');
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
  });

  it('turns a 5xx answer into a 502 DependencyError that counts, and opens after the threshold', async () => {
    const { client, service, call } = clientFor({ failureThreshold: 2 });
    freezeAtFailureWindowStart();
    const { error } = await outcome(call('boom'));
    expect(error).toBeInstanceOf(DependencyError);
    expect(error).toMatchObject({
      statusCode: 502,
      code: 'DEPENDENCY_FAILED',
      upstreamStatus: 503,
      dependency: service,
    });
    await outcome(call('boom'));
    expect(client.breakers[service]?.state).toBe('OPEN');

    const rejected = await outcome(call('ok'));
    expect(rejected.error).toBeInstanceOf(CircuitOpenError);
    expect(received.filter((request) => request.url === '/ok')).toHaveLength(0);
  });

  it('lets the caller decide which answers are failures', async () => {
    const { client, service, call } = clientFor({
      failureThreshold: 1,
      isFailure: (response) => response.status === 404,
    });
    expect((await outcome(call('missing'))).error).toBeInstanceOf(DependencyError);
    expect(client.breakers[service]?.state).toBe('OPEN');
  });

  it('turns a refused connection into a DependencyError that counts', async () => {
    const service = uniqueName('svc');
    const client = createServiceClient({
      store: dynamoStore(),
      services: { [service]: { baseUrl: `http://127.0.0.1:${refusedPort}/`, failureThreshold: 1 } },
    });
    const { error } = await outcome(client.callService(service, 'ok'));
    expect(error).toBeInstanceOf(DependencyError);
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(client.breakers[service]?.state).toBe('OPEN');
  });

  it('releases a request the service never answers at timeoutMs with a 504', async () => {
    const { call } = clientFor({ timeoutMs: 150 });
    const { error } = await outcome(call('hang'));
    expect(error).toBeInstanceOf(DependencyTimeoutError);
    expect(error).toMatchObject({ statusCode: 504, timeoutMs: 150 });
  });

  it('releases a service that sends headers and then stalls, since the body is read within the timeout', async () => {
    const { call } = clientFor({ timeoutMs: 150 });
    expect((await outcome(call('stall'))).error).toBeInstanceOf(DependencyTimeoutError);
  });

  it('applies a shorter per-call timeout', async () => {
    const { call } = clientFor({ timeoutMs: 10_000 });
    expect((await outcome(call('hang', { timeoutMs: 100 }))).error).toMatchObject({ timeoutMs: 100 });
  });

  it('refuses a per-call timeout of 0 or less before sending anything, and does not count it', async () => {
    const { client, service, call } = clientFor({ failureThreshold: 1 });
    for (const timeoutMs of [0, -250]) {
      expect((await outcome(call('ok', { timeoutMs }))).error).toBeInstanceOf(InvalidArgumentError);
    }
    expect(received).toHaveLength(0);
    expect(client.breakers[service]?.state).toBe('CLOSED');
  });

  it('sends the method, headers and string body it is given', async () => {
    const { call } = clientFor();
    const response = await call('echo', {
      method: 'post',
      body: '{"a":1}',
      headers: { 'content-type': 'application/json', 'x-extra': 'yes' },
    });
    expect(await response.json()).toEqual({ method: 'POST', body: '{"a":1}' });
    expect(received[0]?.headers['x-extra']).toBe('yes');
  });

  it('adds the correlation id header when correlationIds() would accept the id, and drops it otherwise', async () => {
    const { call } = clientFor();
    await call('ok', { correlationId: 'order-42' });
    await call('ok', { correlationId: 'bad id\r\nx-injected: 1' });
    await call('ok', { correlationId: '_vdZg0_COBOXOZSnKIBfr' });
    await call('ok', { correlationId: '-AtDYQla9B2HZZx9qa0DVw' });
    expect(received[0]?.headers['x-correlation-id']).toBe('order-42');
    expect(received[1]?.headers['x-correlation-id']).toBeUndefined();
    expect(received[1]?.headers['x-injected']).toBeUndefined();
    expect(received.slice(2).map((request) => request.headers['x-correlation-id'])).toEqual([
      '_vdZg0_COBOXOZSnKIBfr',
      undefined,
    ]);
  });

  it('signs every attempt through the signing hook, which sees method, URL and body', async () => {
    const sign = vi.fn((request: OutgoingServiceRequest) => ({
      'x-signature': `${request.method} ${request.url.pathname}${request.url.search}|${request.body ?? ''}`,
      'x-nonce': String(sign.mock.calls.length),
    }));
    const { call } = clientFor({ retry: { retries: 2, baseDelayMs: 1 } }, sign);
    await call('flaky?x=1');
    expect(sign).toHaveBeenCalledTimes(3);
    expect(received.map((request) => request.headers['x-nonce'])).toEqual(['1', '2', '3']);
    expect(received[0]?.headers['x-signature']).toBe('GET /flaky?x=1|');
  });

  it('lets a service opt out of the client-wide signer', async () => {
    const sign = vi.fn(() => ({ 'x-signature': 'sig' }));
    const { call } = clientFor({ sign: false }, sign);
    await call('ok');
    expect(sign).not.toHaveBeenCalled();
    expect(received[0]?.headers['x-signature']).toBeUndefined();
  });

  it('retries an idempotent request with backoff until it succeeds', async () => {
    const { call } = clientFor({ retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
    const response = await call('flaky');
    expect(await response.json()).toEqual({ attempt: 3 });
    expect(received).toHaveLength(3);
  });

  it('gives up after the configured retries with the last error', async () => {
    const { call } = clientFor({ retry: { retries: 1, baseDelayMs: 1 } });
    expect((await outcome(call('flaky'))).error).toBeInstanceOf(DependencyError);
    expect(received).toHaveLength(2);
  });

  it('does not retry when the backoff would end past the deadline, and keeps the failure it has', async () => {
    const { call } = clientFor({ retry: { retries: 1, baseDelayMs: 5000, maxDelayMs: 5000 } });
    vi.useFakeTimers({ toFake: ['Date'] });
    // The longest backoff: 5 s, past a deadline 2 s away on a clock that stands still. The attempt itself
    // is bounded by that deadline in real time, so it must leave a busy machine room to answer.
    vi.spyOn(Math, 'random').mockReturnValue(1);
    const { error } = await outcome(call('boom', { deadline: Date.now() + 2000 }));
    expect(error).toBeInstanceOf(DependencyError);
    expect(received).toHaveLength(1);
  });

  it('never retries a non-idempotent request', async () => {
    const { call } = clientFor({ retry: { retries: 3, baseDelayMs: 1 } });
    expect((await outcome(call('flaky', { method: 'POST', body: '{}' }))).error).toBeInstanceOf(
      DependencyError,
    );
    expect(received).toHaveLength(1);
  });

  it('does not retry once the circuit is open', async () => {
    const { call } = clientFor({ failureThreshold: 1, retry: { retries: 3, baseDelayMs: 1 } });
    expect((await outcome(call('boom'))).error).toBeInstanceOf(CircuitOpenError);
    expect(received).toHaveLength(1);
  });

  it('answers with the fallback instead of an error when one is configured', async () => {
    const { call } = clientFor({ fallback: () => new Response('{"cached":true}', { status: 200 }) });
    expect(await (await call('boom')).json()).toEqual({ cached: true });
  });

  it('waits at least the Retry-After a failing answer asks for before retrying', async () => {
    const { call } = clientFor({ retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 2000 } });
    const { error } = await outcome(call('busy?after=1'));
    const [first, retry] = received;
    expect(received).toHaveLength(2);
    expect((retry?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(error).toMatchObject({
      statusCode: 503,
      code: 'DEPENDENCY_UNAVAILABLE',
      retryAfterSec: 1,
      headers: { 'Retry-After': '1' },
    });
  });

  it('does not retry when Retry-After asks for longer than maxDelayMs, and passes it on as a 503', async () => {
    const { call } = clientFor({ retry: { retries: 2, maxDelayMs: 2000 } });
    const { error } = await outcome(call('busy?after=30'));
    expect(received).toHaveLength(1);
    expect(error).toBeInstanceOf(DependencyError);
    expect(error).toMatchObject({ statusCode: 503, upstreamStatus: 503, headers: { 'Retry-After': '30' } });
  });

  it.each([
    ['two days', '172800'],
    ['more digits than a day has seconds', '99999999999'],
    ['a date decades away', 'Wed, 21 Oct 2099 07:28:00 GMT'],
  ])(
    'does not retry when Retry-After asks for %s, and passes on a 503 that asks for a day',
    async (_label, after) => {
      const { call } = clientFor({ retry: { retries: 2, maxDelayMs: 2000 } });
      const { error } = await outcome(call(`busy?after=${encodeURIComponent(after)}`));
      expect(received).toHaveLength(1);
      expect(error).toBeInstanceOf(DependencyError);
      expect(error).toMatchObject({
        statusCode: 503,
        retryAfterSec: 86_400,
        headers: { 'Retry-After': '86400' },
      });
    },
  );

  it('returns a redirect as the answer instead of following it', async () => {
    const { call } = clientFor();
    const response = await call('moved');
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('/ok');
    expect(received.map((request) => request.url)).toEqual(['/moved']);
  });

  it('refuses a URL that resolves outside the base URL before sending anything, signed or not', async () => {
    const sign = vi.fn(() => ({ 'x-signature': 'secret' }));
    const { call } = clientFor({ baseUrl: `${baseUrl}api/` }, sign);
    const port = new URL(baseUrl).port;
    for (const outside of [`//localhost:${port}/ok`, `http://localhost:${port}/ok`, '../ok', '/ok']) {
      const { error } = await outcome(call(outside));
      expect(error).toBeInstanceOf(InvalidArgumentError);
    }
    expect(received).toEqual([]);
    expect(sign).not.toHaveBeenCalled();
  });

  it('refuses an answer longer than maxResponseBytes as a failure, declared or streamed', async () => {
    const { client, service, call } = clientFor({ maxResponseBytes: 100, failureThreshold: 2 });
    freezeAtFailureWindowStart();
    expect((await call('large?bytes=100')).status).toBe(200);
    for (const path of ['large?bytes=101', 'large-chunked?bytes=5000']) {
      const { error } = await outcome(call(path));
      expect(error).toBeInstanceOf(DependencyError);
      expect((error as DependencyError).message).toBe(`${service} answered more than 100 bytes`);
    }
    expect(client.breakers[service]?.state).toBe('OPEN');
  });

  it('uses the 3 s service default when timeoutMs is given as undefined', async () => {
    const { client, service } = clientFor({ timeoutMs: undefined });
    const breaker = client.breakers[service];
    expect((breaker as unknown as { options: { timeoutMs: number } }).options.timeoutMs).toBe(3000);
  });

  it('refuses an unknown service name', async () => {
    const { client } = clientFor();
    await expect(client.callService('nope' as never, 'ok')).rejects.toThrow(TypeError);
  });

  it('builds its breakers on the toolkit table when given a table name', async () => {
    const service = uniqueName('svc');
    const counted = countedClient();
    const client = createServiceClient({
      tableName,
      client: counted.client,
      services: { [service]: { baseUrl } },
    });
    expect((await client.callService(service, 'ok')).status).toBe(200);
    expect(counted.requests()).toBe(1);
  });

  it('takes a null sign, fetch or isFailure as left out: unsigned, global fetch, 5xx as failures', async () => {
    const service = uniqueName('svc');
    const client = createServiceClient({
      store: dynamoStore(),
      services: { [service]: { baseUrl, isFailure: null as never, retry: { retries: 0 } } },
      sign: null as never,
      fetch: null as never,
    });
    expect((await client.callService(service, 'ok')).status).toBe(200);
    expect((await outcome(client.callService(service, 'boom'))).error).toBeInstanceOf(DependencyError);
  });

  it('rejects invalid options with one error listing every problem, per service', () => {
    let thrown: unknown;
    try {
      createServiceClient({
        store: dynamoStore(),
        services: {
          users: { baseUrl: 'ftp://nope', failureThreshold: 0, retry: { retries: -1, baseDelayMs: -1 } },
          rooms: { baseUrl: 'not a url', timeoutMs: -5 },
        },
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidOptionsError);
    expect((thrown as InvalidOptionsError).problems).toEqual([
      'users: failureThreshold must be an integer > 0 (got 0)',
      'users: baseUrl must be an absolute http(s) URL',
      'users: retry.retries must be an integer 0..10',
      'users: retry.baseDelayMs must be a number >= 0',
      'rooms: timeoutMs must be a number of milliseconds > 0 and <= 2147483647 (got -5)',
      'rooms: baseUrl must be an absolute http(s) URL',
    ]);
    expect(() => createServiceClient({ store: dynamoStore(), services: {} })).toThrow(
      'services must name at least one service',
    );
    expect(() =>
      createServiceClient({ store: dynamoStore(), services: { a: {} }, sign: 'x' as never }),
    ).toThrow('sign must be a function');
  });

  it('refuses, at construction, options that would fail every call or open the circuit of a healthy service', () => {
    const problemsOf = (options: object) => {
      try {
        createServiceClient({ store: dynamoStore(), ...options } as never);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidOptionsError);
        return (error as InvalidOptionsError).problems;
      }
      return [];
    };
    expect(
      problemsOf({
        services: { users: { isFailure: 'x', sign: 'x', retry: null }, rooms: null },
        fetch: 'x',
        correlationIdHeader: 'x corr',
      }),
    ).toEqual([
      'fetch must be a function',
      'correlationIdHeader must be a header name',
      'users: isFailure must be a function',
      'users: sign must be a function or false',
      'users: retry must be an object ({ retries, baseDelayMs?, maxDelayMs? })',
      'rooms: must be an object of service options',
    ]);
    for (const correlationIdHeader of ['', 'x:corr', 'x\ncorr', 5]) {
      expect(problemsOf({ services: { users: {} }, correlationIdHeader })).toEqual([
        'correlationIdHeader must be a header name',
      ]);
    }
    expect(problemsOf({ services: null })).toEqual(['services must name at least one service']);
    expect(() => createServiceClient({ tableName: '   ', services: { users: {} } })).toThrow(
      'users: tableName must be a DynamoDB table name',
    );
    expect(problemsOf({ services: { users: { sign: false } }, correlationIdHeader: 'X-Request-ID' })).toEqual(
      [],
    );
  });
});

describe('guardedFetch', () => {
  it('guards a plain fetch with a breaker of your own', async () => {
    const breaker = new CircuitBreaker<Response>({ name: uniqueName('fetch'), store: dynamoStore() });
    const response = await guardedFetch(breaker, `${baseUrl}ok`);
    expect(await response.json()).toEqual({ ok: true });
  });

  it('keeps an answer whose status text the Response constructor would refuse', async () => {
    const breaker = new CircuitBreaker<Response>({ name: uniqueName('fetch'), store: dynamoStore() });
    const odd = new Response('{"ok":true}', { status: 200 });
    Object.defineProperty(odd, 'statusText', { value: 'OK\u0001' });
    const response = await guardedFetch(breaker, 'http://127.0.0.1:9/x', {}, { fetch: async () => odd });
    expect(await response.json()).toEqual({ ok: true });
  });

  it('uses an injected fetch', async () => {
    const breaker = new CircuitBreaker<Response>({ name: uniqueName('fetch'), store: dynamoStore() });
    const fetchImpl = vi.fn(async () => new Response('{"fake":true}', { status: 200 }));
    const response = await guardedFetch(breaker, 'http://127.0.0.1:9/x', {}, { fetch: fetchImpl });
    expect(await response.json()).toEqual({ fake: true });
    expect(fetchImpl).toHaveBeenCalledWith(
      'http://127.0.0.1:9/x',
      expect.objectContaining({ signal: expect.any(AbortSignal) }),
    );
  });

  it('refuses a fetch or isFailure that is not a function without counting it against the dependency', async () => {
    const breaker = new CircuitBreaker<Response>({
      name: uniqueName('fetch'),
      store: dynamoStore(),
      failureThreshold: 1,
    });
    await expect(guardedFetch(breaker, `${baseUrl}ok`, {}, { fetch: 'fetch' as never })).rejects.toThrow(
      new InvalidArgumentError('fetch must be a function'),
    );
    await expect(guardedFetch(breaker, `${baseUrl}ok`, {}, { isFailure: 500 as never })).rejects.toThrow(
      new InvalidArgumentError('isFailure must be a function'),
    );
    await expect(
      guardedFetch(breaker, `${baseUrl}ok`, {}, { fetch: 'fetch' as never, isFailure: 500 as never }),
    ).rejects.toThrow(new InvalidArgumentError('fetch must be a function; isFailure must be a function'));
    // Null is left out: the global fetch and the 5xx rule.
    const nulls = { fetch: null, isFailure: null } as never;
    expect((await guardedFetch(breaker, `${baseUrl}ok`, {}, nulls)).status).toBe(200);
    // One failure would have opened this circuit: the next call still reaches the service.
    expect((await guardedFetch(breaker, `${baseUrl}ok`)).status).toBe(200);
  });
});
