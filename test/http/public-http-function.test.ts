import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeKeysOf } from '../../functions/routes.js';
import { createPublicHttpFunction } from '../../functions/shared/public-http-function.js';
import type { RouteBuilder } from '../../functions/shared/route-dispatch.js';
import { ConflictError } from '../../middleware/errors.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';

const output = captureStdout();
// The function's audit lines are INFO, which the suite silences; its logger reads the level when built.
beforeAll(() => {
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
});
afterAll(() => {
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
});

const unused: RouteBuilder = () => {
  throw new Error('must not be built');
};
const buildersFor = (keys: readonly string[]) => Object.fromEntries(keys.map((key) => [key, unused]));

describe('createPublicHttpFunction', () => {
  it('refuses a function with a route that needs auth or a rate limit, naming every such route', () => {
    expect(() =>
      createPublicHttpFunction('bookings', buildersFor(routeKeysOf('bookings')), new Logger()),
    ).toThrow(
      'Function bookings has routes that need auth or a rate limit: POST /bookings, GET /bookings, GET /bookings/{id}, DELETE /bookings/{id}; use createHttpFunction',
    );
  });

  it('refuses a public route that has a rate limit (POST /users)', () => {
    expect(() => createPublicHttpFunction('users', buildersFor(routeKeysOf('users')), new Logger())).toThrow(
      /need auth or a rate limit: POST \/users, GET \/users\/\{id\}, GET \/users\/\{id\}\/verify/,
    );
  });

  it('still checks the builders against the route table first', () => {
    expect(() => createPublicHttpFunction('health', {}, new Logger())).toThrow(
      'Function health does not match the route table: missing [GET /health], unknown []',
    );
  });
});

describe("a sample function's audit line for a route that throws", () => {
  // The route pipeline renders the error itself (so a 5xx keeps its rate-limit headers): the
  // function's audit sees only the answer, unless the error is passed up to it.
  let failWith: Error | undefined;
  const handler = () =>
    createPublicHttpFunction(
      'health',
      {
        'GET /health': (route) =>
          route.handler(async () => {
            if (failWith) throw failWith;
            return { statusCode: 200, body: 'ok' };
          }),
      },
      new Logger({ logLevel: 'SILENT' }),
    );
  // /health itself is never audited: the same route under another path is.
  const probe = () => httpEvent({ routeKey: 'GET /health', path: '/probe' });
  const requestAudits = () => output.audit().filter((event) => event.eventType === 'http.request');

  it.each([
    ['a 409 ConflictError', new ConflictError('taken'), 409, { name: 'ConflictError', code: 'CONFLICT' }],
    ['a 500 for an unexpected error', new TypeError('boom'), 500, { name: 'TypeError' }],
  ])('names %s in metadata.error', async (_what, error, status, named) => {
    failWith = error;
    const response = await handler()(probe(), lambdaContext());
    expect(response.statusCode).toBe(status);
    expect(requestAudits()).toEqual([
      expect.objectContaining({ statusCode: status, metadata: expect.objectContaining({ error: named }) }),
    ]);
  });

  it('names no error for a later success on the same Lambda context', async () => {
    const context = lambdaContext();
    const invoke = handler();
    failWith = new ConflictError('taken');
    expect((await invoke(probe(), context)).statusCode).toBe(409);
    failWith = undefined;
    expect((await invoke(probe(), context)).statusCode).toBe(200);
    const [, success] = requestAudits();
    expect(success).toMatchObject({ statusCode: 200 });
    expect(success?.metadata).not.toHaveProperty('error');
  });
});

describe("a sample function's default headers", () => {
  const defaults = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
    'Content-Security-Policy': "frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
  };
  const healthWith = (build: RouteBuilder) =>
    createPublicHttpFunction('health', { 'GET /health': build }, new Logger({ logLevel: 'SILENT' }));

  it('adds only those the answer lacks, whatever the case of the name it set one by', async () => {
    const handler = healthWith((route) =>
      route.handler(async () =>
        json(200, { ok: true }, { 'cache-control': 'max-age=60', 'X-FRAME-OPTIONS': 'SAMEORIGIN' }),
      ),
    );
    const response = await handler(httpEvent({ path: '/health' }), lambdaContext());
    expect(response.headers).toEqual({
      'Content-Type': 'application/json',
      'cache-control': 'max-age=60',
      'X-FRAME-OPTIONS': 'SAMEORIGIN',
      'X-Content-Type-Options': 'nosniff',
      'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
      'Content-Security-Policy': "frame-ancestors 'none'",
      'x-correlation-id': expect.any(String),
    });
  });

  it('are on a problem the function renders outside any route (no route for the key)', async () => {
    const handler = healthWith((route) => route.handler(async () => json(200, {})));
    const response = await handler(httpEvent({ routeKey: 'GET /elsewhere' }), lambdaContext());
    expect(response.statusCode).toBe(404);
    expect(response.headers).toMatchObject({ ...defaults, 'Content-Type': 'application/problem+json' });
  });

  it('are on an idempotency replay, which a route answers early', async () => {
    const persistenceStore = idempotencyStore();
    let runs = 0;
    const handler = healthWith((route) =>
      route
        .use(
          idempotency({
            persistenceStore,
            config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
            // A public route: no authentication runs before it.
            anonymous: true,
          }),
        )
        .handler(async () => {
          runs += 1;
          return json(200, { runs });
        }),
    );
    const event = httpEvent({ path: '/health', headers: { 'idempotency-key': randomUUID() } });
    await handler(event, lambdaContext());
    const replay = await handler(event, lambdaContext());
    expect(runs).toBe(1);
    expect(replay.headers).toMatchObject({ ...defaults, 'Idempotent-Replayed': 'true' });
  });
});

describe('a HEAD request to a GET route', () => {
  let runs = 0;
  let failWith: Error | undefined;
  // Built once the file's beforeAll has raised the log level, so its audit lines are written.
  let handler: ReturnType<typeof createPublicHttpFunction>;
  beforeAll(() => {
    handler = createPublicHttpFunction(
      'health',
      {
        'GET /health': (route) =>
          route.handler(async () => {
            runs += 1;
            if (failWith) throw failWith;
            return json(200, { status: 'ok' }, { ETag: '"v1"' });
          }),
      },
      new Logger({ logLevel: 'SILENT' }),
    );
  });
  // /health itself is never audited: the same route under another path is.
  const request = (method: 'GET' | 'HEAD') =>
    handler(
      httpEvent({
        method,
        routeKey: `${method} /health`,
        path: '/probe',
        headers: { 'x-correlation-id': 'head-1' },
      }),
      lambdaContext(),
    );

  it('runs the GET route and answers its status and headers without the body', async () => {
    runs = 0;
    failWith = undefined;
    const get = await request('GET');
    const head = await request('HEAD');
    expect(runs).toBe(2);
    expect(get.body).toBe('{"status":"ok"}');
    expect(head).toEqual({ statusCode: get.statusCode, headers: get.headers });
    expect(head.headers).toMatchObject({ 'Content-Type': 'application/json', ETag: '"v1"' });
  });

  it('answers a problem the route throws with its status and headers, without the body', async () => {
    failWith = new ConflictError('taken');
    const get = await request('GET');
    const head = await request('HEAD');
    expect(head.statusCode).toBe(409);
    expect(head.headers).toEqual(get.headers);
    expect(head).not.toHaveProperty('body');
  });

  it('writes the audit line a GET writes, naming HEAD and its route key', async () => {
    failWith = undefined;
    await request('HEAD');
    expect(output.audit().filter((event) => event.eventType === 'http.request')).toEqual([
      expect.objectContaining({
        method: 'HEAD',
        statusCode: 200,
        metadata: expect.objectContaining({ routeKey: 'HEAD /health' }),
      }),
    ]);
  });

  it('has no HEAD route for a route key the function lacks: a 404 without body', async () => {
    const response = await handler(
      httpEvent({ method: 'HEAD', routeKey: 'HEAD /nothing', path: '/nothing' }),
      lambdaContext(),
    );
    expect(response.statusCode).toBe(404);
    expect(response.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    expect(response).not.toHaveProperty('body');
  });
});
