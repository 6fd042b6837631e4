import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { UnsupportedEventError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureStdout } from '../helpers/log-capture.js';
import { httpEvent, lambdaContext } from './fixtures.js';

const output = captureStdout();

interface Captured {
  request: { bytes: number; contentType?: string; body?: string };
  response: { bytes: number; body?: string };
}

function pipeline(
  handler: (event: APIGatewayProxyEventV2) => Promise<unknown> = async () => json(200, { ok: true }),
) {
  const logger = new Logger({ serviceName: 'users', logLevel: 'INFO' });
  const auditLogger = new AuditLogger({ logger });
  return lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(correlationIds({ loggers: [logger] }))
      .use(audit({ auditLogger, logRequestBody: true, logResponseBody: true, maxBodyLength: 256 }))
      .use(httpErrorHandler({ logger }))
      .handler(handler as never),
  );
}

/** Every line must be one valid JSON object: nothing a client sends may split or corrupt a line. */
function expectWellFormedLines() {
  const lines = output.lines();
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  return lines;
}

const captured = () => output.audit()[0]?.metadata as unknown as Captured;

describe('audit() with bad input', () => {
  it('logs a huge JSON body by its size only, keeps the line small and the answer intact', async () => {
    const huge = JSON.stringify({
      items: Array.from({ length: 100_000 }, (_, index) => ({ index, password: 'pw' })),
    });
    const response = await pipeline()(
      httpEvent({ method: 'POST', body: huge, headers: { 'content-type': 'application/json' } }),
      lambdaContext(),
    );
    expect(response.statusCode).toBe(200);
    const lines = expectWellFormedLines();
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThan(4_000);
    expect(captured().request.bytes).toBe(Buffer.byteLength(huge));
    // Too large to parse, so it cannot be redacted by key: its size only.
    expect(captured().request.body).toBe(
      `[body ${Buffer.byteLength(huge)} bytes, not captured: too large or malformed to redact by key]`,
    );
  });

  it('leaves out a JSON body too large to redact by key, whose secrets the patterns could not bound', async () => {
    const secrets = { credit_card: { number: '4111111111111111', cvc: '123' }, password: ['hunter2'] };
    const large = JSON.stringify({ ...secrets, padding: 'x'.repeat(70_000) });
    await pipeline()(
      httpEvent({ method: 'POST', body: large, headers: { 'content-type': 'application/json' } }),
      lambdaContext(),
    );
    const body = String(captured().request.body);
    for (const secret of ['4111111111111111', 'hunter2', '"cvc"']) expect(body).not.toContain(secret);
    expect(body).toMatch(/^\[body \d+ bytes, not captured/);
  });

  it('logs a binary body as its size only', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
    await pipeline()(
      httpEvent({
        method: 'POST',
        body: png.toString('base64'),
        isBase64Encoded: true,
        headers: { 'content-type': 'image/png' },
      }),
      lambdaContext(),
    );
    expectWellFormedLines();
    expect(captured().request).toEqual({ bytes: 12, contentType: 'image/png', body: '[binary 12 bytes]' });
  });

  it('logs non-UTF-8 text and lone surrogates as valid JSON', async () => {
    const invalidUtf8 = Buffer.from([0x68, 0x69, 0xff, 0xfe, 0xc3, 0x28]).toString('base64');
    const handler = pipeline();
    await handler(
      httpEvent({
        method: 'POST',
        body: invalidUtf8,
        isBase64Encoded: true,
        headers: { 'content-type': 'text/plain; charset=latin1' },
      }),
      lambdaContext(),
    );
    await handler(
      httpEvent({
        method: 'POST',
        body: '{"name":"\ud800 broken"}',
        headers: { 'content-type': 'application/json' },
      }),
      lambdaContext(),
    );
    expectWellFormedLines();
    const [binaryText, surrogate] = output.audit().map((event) => event.metadata as unknown as Captured);
    expect(binaryText?.request.body).toContain('hi');
    expect(binaryText?.request.bytes).toBe(6);
    expect(surrogate?.request.body).toContain('broken');
  });

  it('redacts form bodies by key and malformed JSON by pattern', async () => {
    const handler = pipeline();
    await handler(
      httpEvent({
        method: 'POST',
        body: 'user=al&Password=form-secret',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      lambdaContext(),
    );
    await handler(
      httpEvent({
        method: 'POST',
        body: '{"token": "json-secret", broken',
        headers: { 'content-type': 'application/json' },
      }),
      lambdaContext(),
    );
    const text = expectWellFormedLines().join('\n');
    expect(text).not.toContain('form-secret');
    expect(text).not.toContain('json-secret');
    expect(output.audit()[0]?.metadata).toMatchObject({
      request: { body: '{"user":"al","Password":"[REDACTED]"}' },
    });
  });

  it('escapes CR/LF in headers and paths, so nothing can forge a log line or a header', async () => {
    const response = await pipeline()(
      httpEvent({
        path: '/bookings\r\n{"audit":{"eventType":"forged"}}',
        headers: {
          'user-agent': 'agent\r\nX-Injected: 1',
          'content-type': 'application/json\r\nSet-Cookie: a=b',
          'x-correlation-id': 'id\r\nSet-Cookie: a=b',
        },
      }),
      lambdaContext(),
    );
    expect(Object.keys(response.headers ?? {}).map((name) => name.toLowerCase())).not.toContain('set-cookie');
    expect(response.headers?.['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
    const lines = expectWellFormedLines();
    expect(lines.every((line) => !/[\r\n]/.test(line))).toBe(true);
    const events = output.audit();
    expect(events).toHaveLength(1);
    expect(events[0]?.eventType).toBe('http.request');
    expect(events[0]?.userAgent).toBe('agent\\u{D}\\u{A}X-Injected: 1');
  });

  it('writes bidi, C1 and line-separator characters of the path, User-Agent and Content-Type as \\u{…}, so none reorders or breaks the line', async () => {
    await pipeline()(
      httpEvent({
        path: '/users/abc\u202Efdp.exe\u2028x\u2029',
        // A route's template, as API Gateway names it: not the client's text.
        routeKey: 'GET /users/{id}',
        headers: {
          'user-agent': 'Mozilla\u0085\u009B31mRED\u200F\u2066',
          'content-type': 'text/plain\u061C\u007F',
        },
      }),
      lambdaContext(),
    );
    const lines = expectWellFormedLines();
    const actedOn = /[\u0080-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C\u007F]/;
    expect(lines.filter((line) => actedOn.test(line))).toEqual([]);
    expect(output.audit()).toMatchObject([
      {
        path: '/users/abc\\u{202E}fdp.exe\\u{2028}x\\u{2029}',
        userAgent: 'Mozilla\\u{85}\\u{9B}31mRED\\u{200F}\\u{2066}',
        metadata: { request: { contentType: 'text/plain\\u{61C}\\u{7F}' } },
      },
    ]);
  });

  it('never loses the answer to a result or metadata it cannot serialise', async () => {
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const response = await pipeline(async () => circular)(httpEvent(), lambdaContext());
    expect(response).toMatchObject({ statusCode: 200 });
    const auditLogger = new AuditLogger({ logger: new Logger({ logLevel: 'INFO' }) });
    auditLogger.logAdminAction('user.deleted', { target: circular });
    expectWellFormedLines();
    expect(output.audit().at(-1)?.metadata).toMatchObject({ target: { name: 'loop', self: '[Circular]' } });
  });

  it('refuses an event without request context (a direct invocation) and writes no audit line', async () => {
    const ran: unknown[] = [];
    const handler = pipeline(async (event) => {
      ran.push(event);
      return json(200, { ok: true });
    });
    await expect(handler({} as APIGatewayProxyEventV2, lambdaContext())).rejects.toThrow(
      UnsupportedEventError,
    );
    expect(ran).toEqual([]);
    expect(output.audit()).toEqual([]);
  });
});
