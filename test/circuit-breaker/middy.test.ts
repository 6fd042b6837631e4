// The serviceCalls middleware through a real middy pipeline with the problem+json error handler.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { correlationIds } from '../../middleware/audit/middy.js';
import { serviceCalls } from '../../middleware/circuit-breaker/middy.js';
import { createServiceClient, type ServiceOptions } from '../../middleware/circuit-breaker/service-client.js';
import type { CircuitStateStore } from '../../middleware/circuit-breaker/state.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { dynamoStore, holdingStore, storedItem, uniqueName } from './helpers.js';

let server: Server;
let baseUrl: string;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push(request.headers);
    if (request.url?.startsWith('/hang')) return;
    const status = request.url?.startsWith('/boom') ? 500 : 200;
    response.writeHead(status, { 'content-type': 'application/json' }).end('{"id":"u1"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function eventOf(headers: Record<string, string> = {}): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'POST /bookings',
    rawPath: '/bookings',
    rawQueryString: '',
    headers,
    isBase64Encoded: false,
    requestContext: {
      requestId: 'api-req-1',
      http: { method: 'POST', path: '/bookings' },
    } as APIGatewayProxyEventV2['requestContext'],
  };
}

const lambdaContext = (remainingMs = 10_000) =>
  ({ awsRequestId: 'req-1', getRemainingTimeInMillis: () => remainingMs }) as Context;

/** A handler that looks a user up through `context.callService`, behind the problem+json error handler. */
function pipeline(
  options: ServiceOptions = {},
  path = 'users/u1',
  init: { timeoutMs?: number } = {},
  store: CircuitStateStore = dynamoStore(),
) {
  // Each test gets a circuit of its own: the service name is the circuit's name.
  const serviceName = uniqueName('users');
  const services = createServiceClient({
    store,
    services: { [serviceName]: { baseUrl, logger: { warn: vi.fn(), info: vi.fn() }, ...options } },
  });
  const handler = lambdaHandler(
    middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger: { error: vi.fn() } }))
      .use(serviceCalls(services))
      .handler(async (_event, { callService }) => {
        const response = await callService(serviceName, path, init);
        return json(200, await response.json());
      }),
  );
  return Object.assign(handler, {
    callService: vi.spyOn(services, 'callService'),
    serviceName,
    breaker: services.breakers[serviceName],
  });
}

describe('serviceCalls through a middy pipeline', () => {
  it('gives the handler a typed callService that reaches the service', async () => {
    const invoke = pipeline();
    const result = await invoke(eventOf(), lambdaContext());
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body as string)).toEqual({ id: 'u1' });
  });

  it('passes the incoming correlation id on, or else the API Gateway request id', async () => {
    const invoke = pipeline();
    seen.length = 0;
    await invoke(eventOf({ 'x-correlation-id': 'order-42' }), lambdaContext());
    // A REST API (v1) event keeps the spelling the client sent.
    await invoke(eventOf({ 'X-Correlation-Id': 'order-43' }), lambdaContext());
    await invoke(eventOf(), lambdaContext());
    expect(seen.map((headers) => headers['x-correlation-id'])).toEqual(['order-42', 'order-43', 'api-req-1']);
  });

  it('renders an open circuit as 503 problem+json with Retry-After', async () => {
    const invoke = pipeline({ failureThreshold: 1, resetTimeoutMs: 30_000 }, 'boom');
    const first = await invoke(eventOf(), lambdaContext());
    expect(first.statusCode).toBe(502);
    expect(JSON.parse(first.body as string)).toMatchObject({ code: 'DEPENDENCY_FAILED', status: 502 });

    const second = await invoke(eventOf(), lambdaContext());
    expect(second.statusCode).toBe(503);
    expect(second.headers).toMatchObject({ 'Content-Type': 'application/problem+json', 'Retry-After': '30' });
    expect(JSON.parse(second.body as string)).toMatchObject({
      type: 'urn:bulwark:problem:circuit-open',
      status: 503,
      code: 'CIRCUIT_OPEN',
    });
    // The circuit's name is internal: it stays out of the response.
    expect(second.body).not.toContain('users-');
  });

  it('cuts a call short so that it ends before the Lambda would be stopped, without counting it', async () => {
    const invoke = pipeline({ timeoutMs: 30_000, failureThreshold: 1 }, 'hang');
    const before = Date.now();
    const result = await invoke(eventOf(), lambdaContext(700));
    const after = Date.now();
    expect(result.statusCode).toBe(504);
    expect(JSON.parse(result.body as string)).toMatchObject({ code: 'DEPENDENCY_TIMEOUT' });
    // 700 ms left less the 500 ms margin, from when the request came in.
    const deadline = invoke.callService.mock.calls[0]?.[2]?.deadline ?? Number.NaN;
    expect(deadline).toBeGreaterThanOrEqual(before + 200);
    expect(deadline).toBeLessThanOrEqual(after + 200);
    expect(invoke.breaker?.state).toBe('CLOSED');
    expect(await storedItem(invoke.serviceName)).toBeUndefined();
  });

  it('answers 504 without calling the service when less than the margin is left, and never opens the circuit', async () => {
    const invoke = pipeline();
    seen.length = 0;
    for (let call = 0; call < 8; call += 1) {
      const result = await invoke(eventOf(), lambdaContext(450));
      expect(result.statusCode).toBe(504);
      expect(JSON.parse(result.body as string)).toMatchObject({ code: 'DEPENDENCY_TIMEOUT' });
    }
    expect(seen).toHaveLength(0);
    expect(invoke.breaker?.state).toBe('CLOSED');
    expect(await storedItem(invoke.serviceName)).toBeUndefined();

    expect((await invoke(eventOf(), lambdaContext(9000))).statusCode).toBe(200);
  });

  it('answers 504, not the function timing out, when the circuit’s store hangs on the state read', async () => {
    const { store, hold } = holdingStore();
    hold('read');
    const result = await pipeline({}, 'users/u1', {}, store)(eventOf(), lambdaContext(600));
    expect(result.statusCode).toBe(504);
    expect(JSON.parse(result.body as string)).toMatchObject({ code: 'DEPENDENCY_TIMEOUT' });
  });

  it('answers a failing service with 502, not the function timing out, while the store hangs on counting it', async () => {
    const { store, hold } = holdingStore();
    const invoke = pipeline({}, 'boom', {}, store);
    expect((await invoke(eventOf(), lambdaContext())).statusCode).toBe(502);
    hold('addFailure');
    const result = await invoke(eventOf(), lambdaContext(600));
    expect(result.statusCode).toBe(502);
    expect(JSON.parse(result.body as string)).toMatchObject({ code: 'DEPENDENCY_FAILED' });
  });

  it('still counts a service slower than its own timeout, which ends before the Lambda’s', async () => {
    const invoke = pipeline({ timeoutMs: 50, failureThreshold: 1 }, 'hang');
    expect((await invoke(eventOf(), lambdaContext(10_000))).statusCode).toBe(504);
    expect(invoke.breaker?.state).toBe('OPEN');
    expect((await invoke(eventOf(), lambdaContext(10_000))).statusCode).toBe(503);
  });

  it('warns once when a service timeout does not fit in the Lambda’s time, since a hung service could then never open its circuit', async () => {
    const logger = { warn: vi.fn(), info: vi.fn() };
    const tooLong = pipeline({ timeoutMs: 30_000, logger });
    expect((await tooLong(eventOf(), lambdaContext(10_000))).statusCode).toBe(200);
    expect((await tooLong(eventOf(), lambdaContext(10_000))).statusCode).toBe(200);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]?.[0]).toMatch(/cannot open/);
    expect(logger.warn.mock.calls[0]?.[1]).toMatchObject({ timeoutMs: 30_000, availableMs: 9500 });
    const fitting = { warn: vi.fn(), info: vi.fn() };
    await pipeline({ timeoutMs: 3000, logger: fitting })(eventOf(), lambdaContext(10_000));
    expect(fitting.warn).not.toHaveBeenCalled();
    // A service that names no timeout gets the service client's 3 s, which fits a 10 s function.
    const byDefault = { warn: vi.fn(), info: vi.fn() };
    await pipeline({ logger: byDefault })(eventOf(), lambdaContext(10_000));
    expect(byDefault.warn).not.toHaveBeenCalled();
    await pipeline({ logger: byDefault })(eventOf(), lambdaContext(3400));
    expect(byDefault.warn.mock.calls[0]?.[1]).toMatchObject({ timeoutMs: 3000 });
  });

  it('sends no retry once the Lambda has no time for it, and answers 504', async () => {
    const invoke = pipeline({ timeoutMs: 3000, retry: { retries: 1, baseDelayMs: 1 } }, 'hang');
    seen.length = 0;
    const result = await invoke(eventOf(), lambdaContext(650));
    expect(result.statusCode).toBe(504);
    expect(JSON.parse(result.body as string)).toMatchObject({ code: 'DEPENDENCY_TIMEOUT' });
    expect(seen).toHaveLength(1);
  });

  it('keeps a shorter timeout asked for by the call', async () => {
    const invoke = pipeline({ timeoutMs: 30_000 }, 'hang', { timeoutMs: 50 });
    const result = await invoke(eventOf(), lambdaContext(10_000));
    expect(result.statusCode).toBe(504);
    expect(invoke.callService).toHaveBeenCalledWith(
      expect.any(String),
      'hang',
      expect.objectContaining({ timeoutMs: 50 }),
    );
    // Which dependency timed out is for the log, not for the client.
    expect(JSON.parse(result.body as string)).toMatchObject({
      code: 'DEPENDENCY_TIMEOUT',
      detail: 'A dependency did not answer in time',
    });
  });

  it('prefers the correlation id correlationIds() put on the context', async () => {
    const serviceName = uniqueName('users');
    const services = createServiceClient({ store: dynamoStore(), services: { [serviceName]: { baseUrl } } });
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .before((request) => {
          Object.assign(request.context, { correlationId: 'from-context' });
        })
        .use(serviceCalls(services))
        .handler(async (_event, { callService }) => {
          await callService(serviceName, 'users/u1');
          return json(200, {});
        }),
    );
    seen.length = 0;
    await handler(eventOf({ 'x-correlation-id': 'from-header' }), lambdaContext());
    expect(seen[0]?.['x-correlation-id']).toBe('from-context');
  });

  it("sends the request's correlation id for a correlationId given as undefined, and the one given otherwise", async () => {
    const serviceName = uniqueName('users');
    const services = createServiceClient({ store: dynamoStore(), services: { [serviceName]: { baseUrl } } });
    const unset: string | undefined = undefined;
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(serviceCalls(services))
        .handler(async (_event, { callService }) => {
          await callService(serviceName, 'users/u1', { correlationId: unset });
          await callService(serviceName, 'users/u2', { correlationId: 'given' });
          return json(200, {});
        }),
    );
    seen.length = 0;
    await handler(eventOf({ 'x-correlation-id': 'from-header' }), lambdaContext());
    expect(seen.map((headers) => headers['x-correlation-id'])).toEqual(['from-header', 'given']);
  });

  it('sends downstream the id correlationIds() returns, also when it is used after serviceCalls', async () => {
    const serviceName = uniqueName('users');
    const services = createServiceClient({ store: dynamoStore(), services: { [serviceName]: { baseUrl } } });
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(serviceCalls(services))
        .use(correlationIds({ generate: () => 'generated-id' }))
        .handler(async (_event, { callService }) => {
          await callService(serviceName, 'users/u1');
          return json(200, {});
        }),
    );
    seen.length = 0;
    // No incoming id: correlationIds() makes one, which the caller gets back and the service must get too.
    const result = await handler(eventOf(), lambdaContext());
    expect(result.headers?.['x-correlation-id']).toBe('generated-id');
    expect(seen[0]?.['x-correlation-id']).toBe('generated-id');
  });

  it('uses the service timeout when there is no Lambda deadline', async () => {
    const invoke = pipeline({ timeoutMs: 100 }, 'hang');
    const result = await invoke(eventOf(), { awsRequestId: 'direct' } as Context);
    expect(result.statusCode).toBe(504);
  });

  it('rejects invalid options at construction', () => {
    const client = createServiceClient({ store: dynamoStore(), services: { users: { baseUrl } } });
    expect(() => serviceCalls(client, { deadlineMarginMs: -1, correlationIdHeader: '' })).toThrow(
      new InvalidOptionsError('serviceCalls', [
        'deadlineMarginMs must be >= 0',
        'correlationIdHeader must be a header name',
      ]),
    );
    expect(() => serviceCalls(client, { correlationIdHeader: 'x corr' })).toThrow(
      new InvalidOptionsError('serviceCalls', ['correlationIdHeader must be a header name']),
    );
  });

  it('refuses a client that is not a ServiceClient (none, or its options) at construction', () => {
    for (const [client, shown] of [
      [undefined, 'undefined'],
      [null, 'null'],
    ] as const) {
      expect(() => serviceCalls(client as never)).toThrow(
        new InvalidOptionsError('serviceCalls', [
          `client must be a ServiceClient from createServiceClient() (got ${shown})`,
        ]),
      );
    }
    const options = { store: dynamoStore(), services: { users: { baseUrl } } };
    expect(() => serviceCalls(options as never)).toThrow(
      new InvalidOptionsError('serviceCalls', [
        'client must have callService() (a ServiceClient from createServiceClient() fits)',
        'client.breakers must be an object of circuit breakers by service name, each with checkTimeBudget() (got undefined)',
      ]),
    );
  });

  it("takes an adopter's double of the client, with the callService() and breakers it uses", async () => {
    const calls: { service: string; url: string | URL; init: unknown }[] = [];
    const client = {
      breakers: {},
      callService: async (service: string, url: string | URL, init: unknown) => {
        calls.push({ service, url, init });
        return new Response('{"id":"u1"}');
      },
    };
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(serviceCalls(client as never))
        .handler(async (_event, { callService }) =>
          json(200, await (await callService('users', 'u1')).json()),
        ),
    );
    const result = await handler(eventOf({ 'x-correlation-id': 'order-42' }), lambdaContext(10_000));
    expect(JSON.parse(result.body as string)).toEqual({ id: 'u1' });
    // The double gets what a ServiceClient would: the correlation id and the Lambda's deadline.
    expect(calls).toEqual([
      {
        service: 'users',
        url: 'u1',
        init: { correlationId: 'order-42', deadline: expect.any(Number) },
      },
    ]);
    expect(() => serviceCalls({ ...client, breakers: { users: {} } } as never)).toThrow(
      new InvalidOptionsError('serviceCalls', [
        'client.breakers must be an object of circuit breakers by service name, each with checkTimeBudget() (got an object with keys users)',
      ]),
    );
  });
});
