import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import {
  type AuditOptions,
  audit,
  type CorrelationContext,
  correlationIds,
} from '../../middleware/audit/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { ConflictError, ForbiddenError, InvalidOptionsError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import type { IdempotencyKeyContext } from '../../middleware/idempotency.js';
import { idempotencyKeyHash } from '../../middleware/idempotency-key-hash.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureStdout } from '../helpers/log-capture.js';
import { alice, httpEvent, lambdaContext } from './fixtures.js';

const output = captureStdout();

type Handler = (
  event: APIGatewayProxyEventV2,
  context: Context & CorrelationContext & { principal?: Principal },
) => Promise<unknown>;

function pipeline(handler: Handler, options: Partial<Parameters<typeof audit>[0]> = {}) {
  const logger = new Logger({ serviceName: 'users', logLevel: 'INFO' });
  const auditLogger = new AuditLogger({ logger });
  return lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(injectLambdaContext(logger, { resetKeys: true }))
      .use(correlationIds({ loggers: [logger], generate: () => 'generated-id' }))
      .use(audit({ auditLogger, excludePaths: ['/health', '/internal/*'], ...options }))
      .use(httpErrorHandler({ logger }))
      .handler(handler as never),
  );
}

describe('audit()', () => {
  it('writes one event per request with request and response summaries', async () => {
    const handler = pipeline(async (_event, context) => {
      context.principal = alice;
      return json(201, { id: 'booking-1' });
    });
    const response = await handler(
      httpEvent({
        method: 'POST',
        path: '/bookings',
        body: '{"roomId":"atlas"}',
        headers: { 'content-type': 'application/json' },
      }),
      lambdaContext(),
    );
    expect(response.statusCode).toBe(201);
    const events = output.audit();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      eventType: 'http.request',
      outcome: 'success',
      userId: 'user-alice',
      clientId: 'web-client',
      isM2M: false,
      tenantId: 'tenant-1',
      path: '/bookings',
      method: 'POST',
      statusCode: 201,
      ipAddress: '203.0.113.9',
      userAgent: 'vitest',
      requestId: 'api-request-1',
      correlationId: 'generated-id',
      metadata: {
        routeKey: 'POST /bookings',
        request: { bytes: 18, contentType: 'application/json' },
        response: { bytes: 18, contentType: 'application/json' },
      },
    });
    expect(events[0]?.durationMs).toBeGreaterThanOrEqual(0);
    // Bodies are off by default.
    expect(JSON.stringify(events[0])).not.toContain('atlas');
    // The line also carries Powertools' Lambda context and correlation id keys.
    const line = output.json().find((candidate) => candidate.audit);
    expect(line).toMatchObject({ correlation_id: 'generated-id', function_request_id: 'lambda-request-1' });
  });

  it('records the client address, method and path of a REST API (v1) event, read from its own fields', async () => {
    const handler = pipeline(async () => json(200, {}));
    const restApiEvent = (identity: Record<string, unknown>) =>
      ({
        resource: '/bookings',
        path: '/bookings',
        httpMethod: 'GET',
        headers: { 'User-Agent': 'curl/8' },
        requestContext: { requestId: 'rest-request-1', httpMethod: 'GET', identity },
        body: null,
        isBase64Encoded: false,
      }) as unknown as APIGatewayProxyEventV2;
    await handler(restApiEvent({ sourceIp: '198.51.100.7' }), lambdaContext());
    // An address that is not a string is no address.
    await handler(restApiEvent({ sourceIp: 42 }), lambdaContext());
    const [rest, malformed] = output.audit();
    expect(rest).toMatchObject({
      ipAddress: '198.51.100.7',
      userAgent: 'curl/8',
      method: 'GET',
      path: '/bookings',
      statusCode: 200,
    });
    expect(malformed?.ipAddress).toBeUndefined();
  });

  it('logs nothing for excluded paths, exact or by prefix', async () => {
    const handler = pipeline(async () => json(200, { status: 'ok' }));
    await handler(httpEvent({ path: '/health' }), lambdaContext());
    await handler(httpEvent({ path: '/internal/metrics' }), lambdaContext());
    expect(output.audit()).toEqual([]);
    await handler(httpEvent({ path: '/healthz' }), lambdaContext());
    expect(output.audit()).toHaveLength(1);
  });

  it('adds bodies only when enabled, redacted and cut', async () => {
    const handler = pipeline(async () => json(200, { token: 'response-secret', data: 'd'.repeat(500) }), {
      logRequestBody: true,
      logResponseBody: true,
      maxBodyLength: 120,
    });
    await handler(
      httpEvent({
        method: 'POST',
        body: JSON.stringify({ user: 'al', password: 'request-secret' }),
        headers: { 'content-type': 'application/json' },
      }),
      lambdaContext(),
    );
    const event = output.audit()[0];
    const metadata = event?.metadata as { request: { body: string }; response: { body: string } };
    expect(metadata.request.body).toBe('{"user":"al","password":"[REDACTED]"}');
    expect(metadata.response.body).toMatch(/^\{"token":"\[REDACTED\]","data":"d+…\[truncated \d+ chars\]$/);
    expect(output.lines().join('\n')).not.toMatch(/request-secret|response-secret/);
  });

  it('captures an XML body by its size only, since no pattern sees a secret inside an element', async () => {
    const handler = pipeline(async () => json(200, {}), { logRequestBody: true });
    const body = '<login><user>ada</user><password>correct horse</password></login>';
    await handler(
      httpEvent({ method: 'POST', body, headers: { 'content-type': 'application/xml' } }),
      lambdaContext(),
    );
    expect(output.audit()[0]?.metadata).toMatchObject({
      request: {
        bytes: body.length,
        body: `[body ${body.length} bytes, not captured: markup cannot be redacted by key]`,
      },
    });
    expect(output.lines().join('\n')).not.toMatch(/correct|horse/);
  });

  it('records the problem+json status and the error class of a failed request', async () => {
    const handler = pipeline(async () => {
      throw new ForbiddenError('Admins only');
    });
    const forbidden = await handler(httpEvent(), lambdaContext());
    expect(forbidden.statusCode).toBe(403);
    const crash = pipeline(async () => {
      throw new TypeError('cannot read password=hunter2');
    });
    const failed = await crash(httpEvent(), lambdaContext());
    expect(failed.statusCode).toBe(500);
    const [denied, error] = output.audit();
    expect(denied).toMatchObject({
      statusCode: 403,
      outcome: 'denied',
      metadata: { error: { name: 'ForbiddenError', code: 'FORBIDDEN' } },
    });
    expect(error).toMatchObject({
      statusCode: 500,
      outcome: 'error',
      metadata: { error: { name: 'TypeError' } },
    });
    // The server-fault line of httpErrorHandler is redacted too.
    const errorLine = output.json().find((line) => line.message === 'Request failed');
    expect(errorLine).toBeDefined();
    expect(output.lines().join('\n')).not.toContain('hunter2');
  });

  it('audits an error that no handler renders with the error’s own status', async () => {
    const auditLogger = new AuditLogger({ logger: new Logger({ logLevel: 'INFO' }) });
    const bare = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(audit({ auditLogger }))
      .handler(async () => {
        throw Object.assign(new Error('gone'), { statusCode: 410 });
      });
    await expect(bare(httpEvent(), lambdaContext())).rejects.toThrow('gone');
    const crash = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(audit({ auditLogger }))
      .handler(async () => {
        throw new Error('boom');
      });
    await expect(crash(httpEvent(), lambdaContext())).rejects.toThrow('boom');
    expect(output.audit().map((event) => event.statusCode)).toEqual([410, 500]);
  });

  it("records the answer's Location, so a create's new id is found from its request's line", async () => {
    const handler = pipeline(async () =>
      json(201, { id: 'booking-1' }, { Location: '/bookings/booking-1', 'Cache-Control': 'no-store' }),
    );
    await handler(httpEvent({ method: 'POST', path: '/bookings' }), lambdaContext());
    expect(output.audit()[0]?.metadata).toEqual({
      routeKey: 'POST /bookings',
      request: { bytes: 0 },
      response: { bytes: 18, contentType: 'application/json', location: '/bookings/booking-1' },
    });
  });

  it("names the request's idempotency key by a hash on a 409, and never a key a context handed in again still holds", async () => {
    const scopedKey = ['tenant-1', 'jwt', 'person', 'user-alice', 'POST /bookings', '/bookings', 'key-1'];
    let setKey = true;
    const handler = pipeline(async (_event, context) => {
      // What idempotency() leaves on the context of a request with a key.
      if (setKey) (context as IdempotencyKeyContext).scopedIdempotencyKey = scopedKey;
      throw new ConflictError('Room atlas is already booked for part of that period');
    });
    const reused = lambdaContext();
    await handler(httpEvent({ method: 'POST', path: '/bookings' }), reused);
    // The same context object for a request of a route without idempotency(): nothing sets a key.
    setKey = false;
    await handler(httpEvent({ method: 'POST', path: '/bookings' }), reused);
    expect(output.audit().map((event) => [event.statusCode, event.metadata.idempotencyKeyHash])).toEqual([
      [409, idempotencyKeyHash(scopedKey)],
      [409, undefined],
    ]);
  });

  it('audits plain (non-structured) results as the 200 API Gateway infers', async () => {
    const handler = pipeline(async () => ({ hello: 'world' }));
    const response = (await handler(httpEvent(), lambdaContext())) as APIGatewayProxyStructuredResultV2;
    expect(response).toMatchObject({ statusCode: 200, body: '{"hello":"world"}' });
    expect(response.headers?.['x-correlation-id']).toBe('generated-id');
    expect(output.audit()[0]).toMatchObject({ statusCode: 200, metadata: { response: { bytes: 17 } } });
  });

  // Options often come from configuration that may be unset: `{ maxBodyLength: config.auditBodyMax }`.
  it.each<[string, Omit<AuditOptions, 'auditLogger'>, Omit<AuditOptions, 'auditLogger'>]>([
    ['excludePaths', { excludePaths: undefined }, {}],
    ['maxBodyLength', { logRequestBody: true, maxBodyLength: undefined }, { logRequestBody: true }],
    ['parseLimitBytes', { logRequestBody: true, parseLimitBytes: undefined }, { logRequestBody: true }],
    ['now', { now: undefined }, {}],
  ])('keeps the default %s when it is given as undefined', async (_name, givenUndefined, leftOut) => {
    const auditLogger = new AuditLogger({ logger: new Logger({ serviceName: 'users', logLevel: 'INFO' }) });
    const event = httpEvent({
      method: 'POST',
      body: JSON.stringify({ password: 'request-secret', a: 'a'.repeat(1500), b: 'b'.repeat(1500) }),
      headers: { 'content-type': 'application/json' },
    });
    for (const options of [givenUndefined, leftOut]) {
      const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(audit({ auditLogger, ...options }))
        .use(httpErrorHandler())
        .handler(async () => json(200, { ok: true }));
      expect((await handler(event, lambdaContext())).statusCode).toBe(200);
    }
    const [withUndefined, withDefault] = output.audit();
    expect(withDefault).toMatchObject({ statusCode: 200, durationMs: expect.any(Number) });
    expect(withUndefined).toMatchObject({
      statusCode: withDefault?.statusCode,
      durationMs: expect.any(Number),
      metadata: withDefault?.metadata,
    });
  });

  it('rejects invalid options, listing every problem at once', () => {
    expect(() =>
      audit({
        auditLogger: {} as AuditLogger,
        excludePaths: ['health'],
        maxBodyLength: 0,
        parseLimitBytes: 1.5,
      }),
    ).toThrow(InvalidOptionsError);
    try {
      audit({
        auditLogger: {} as AuditLogger,
        excludePaths: ['health'],
        maxBodyLength: 0,
        parseLimitBytes: 1.5,
      });
    } catch (error) {
      expect((error as InvalidOptionsError).problems).toHaveLength(4);
    }
  });

  it('refuses a clock that is not a function when built, not at the first request', () => {
    const auditLogger = new AuditLogger({ logger: new Logger() });
    expect(() => audit({ auditLogger, now: 5 as never })).toThrow(
      new InvalidOptionsError('audit', ['now must be a function']),
    );
    // Its default replaces only undefined: a null clock would be called at the first request.
    expect(() => audit({ auditLogger, now: null as never })).toThrow(
      new InvalidOptionsError('audit', ['now must be a function']),
    );
  });

  it('refuses excludePaths given as one path with one problem, not one per character', () => {
    const auditLogger = new AuditLogger({ logger: new Logger() });
    expect(() => audit({ auditLogger, excludePaths: '/health' as never })).toThrow(
      new InvalidOptionsError('audit', ['excludePaths must be an array of paths (got "/health")']),
    );
    // A pasted document shows its first 80 characters, not all of them.
    const long = `/${'x'.repeat(100_000)}`;
    expect(() => audit({ auditLogger, excludePaths: long as never })).toThrow(
      new InvalidOptionsError('audit', [
        `excludePaths must be an array of paths (got "${long.slice(0, 80)}…")`,
      ]),
    );
    // A null is kept over the default list, and the path matcher would fail on it.
    expect(() => audit({ auditLogger, excludePaths: null as never })).toThrow(
      new InvalidOptionsError('audit', ['excludePaths must be an array of paths (got null)']),
    );
  });
});

describe('correlationIds()', () => {
  it('returns the caller’s id and puts it on every log line', async () => {
    const handler = pipeline(async (_event, context) => {
      new Logger({ logLevel: 'INFO' }); // another logger is unaffected
      return json(200, { seen: context.correlationId });
    });
    const response = await handler(
      httpEvent({ headers: { 'X-Correlation-Id': 'order-42' } }),
      lambdaContext(),
    );
    expect(response.headers?.['x-correlation-id']).toBe('order-42');
    expect(JSON.parse(response.body ?? '{}')).toEqual({ seen: 'order-42' });
    for (const line of output.json()) expect(line.correlation_id).toBe('order-42');
    expect(output.audit()[0]?.correlationId).toBe('order-42');
  });

  it('replaces an id that could inject a header or break a log line, and audits the attempt', async () => {
    const handler = pipeline(async () => json(200, {}));
    for (const hostile of ['evil\r\nSet-Cookie: a=b', 'x'.repeat(129), 'has space', 'ünïcode', '']) {
      const response = await handler(
        httpEvent({ headers: { 'x-correlation-id': hostile } }),
        lambdaContext(),
      );
      expect(response.headers?.['x-correlation-id']).toBe('generated-id');
    }
    const events = output.audit();
    expect(events).toHaveLength(5);
    for (const event of events) {
      expect(event.correlationId).toBe('generated-id');
      expect(event.metadata).toMatchObject({ correlationIdRejected: true });
    }
    expect(output.lines().every((line) => !line.includes('\r'))).toBe(true);
  });

  it('returns the id on error answers too', async () => {
    const handler = pipeline(async () => {
      throw new ForbiddenError();
    });
    const response = await handler(httpEvent({ headers: { 'x-correlation-id': 'c-1' } }), lambdaContext());
    expect(response).toMatchObject({ statusCode: 403, headers: { 'x-correlation-id': 'c-1' } });
  });

  it('can leave the response alone and generates UUIDs by default', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(correlationIds({ returnHeader: false }))
        .handler(async (_event, context) => json(200, { id: context.correlationId })),
    );
    const response = await handler(httpEvent(), lambdaContext());
    expect(response.headers?.['x-correlation-id']).toBeUndefined();
    expect(JSON.parse(response.body ?? '{}').id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('rejects invalid options', () => {
    expect(() => correlationIds({ loggers: [{} as Logger], generate: 'x' as never })).toThrow(
      /setCorrelationId.*generate/,
    );
  });

  it('takes loggers: null as no loggers, but refuses a null generate, which would be called', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(correlationIds({ loggers: null as never }))
        .handler(async (_event, context) => json(200, { id: context.correlationId })),
    );
    const response = await handler(httpEvent({ headers: { 'x-correlation-id': 'c-7' } }), lambdaContext());
    expect(response.headers?.['x-correlation-id']).toBe('c-7');
    expect(JSON.parse(response.body ?? '{}')).toEqual({ id: 'c-7' });
    expect(() => correlationIds({ generate: null as never })).toThrow(
      new InvalidOptionsError('correlationIds', ['generate must be a function']),
    );
  });

  it('names loggers when given one logger instead of a list of them', () => {
    expect(() => correlationIds({ loggers: new Logger() as never })).toThrow(
      new InvalidOptionsError('correlationIds', [
        'loggers must be an array of loggers, e.g. [logger] (got an instance of Logger)',
      ]),
    );
    // A double is named by its methods, which JSON would drop (it read `{}`).
    expect(() => correlationIds({ loggers: { setCorrelationId: () => undefined } as never })).toThrow(
      new InvalidOptionsError('correlationIds', [
        'loggers must be an array of loggers, e.g. [logger] (got an object with keys setCorrelationId)',
      ]),
    );
  });
});
