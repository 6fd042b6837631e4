import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { correlationIds } from '../../middleware/audit/middy.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate } from '../../middleware/auth/middy.js';
import {
  ConflictError,
  InvalidArgumentError,
  InvalidOptionsError,
  SecretAccessError,
  ServiceUnavailableError,
  UnsupportedContentEncodingError,
  type ValidationError,
} from '../../middleware/errors.js';
import {
  defaultMaxBodyBytes,
  maxReportedProblems,
  parseInput,
  readJsonBody,
  requestBodyBytes,
} from '../../middleware/http/input.js';
import { httpErrorHandler, validateInput } from '../../middleware/http/middy.js';
import { pathAsUriReference } from '../../middleware/http/request-event.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { jsonBodyParserOf, parsedBy } from '../helpers/json-body-parser.js';

const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 1000 } as Context;

function eventOf(overrides: Partial<APIGatewayProxyEventV2> = {}): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'POST /things/{id}',
    rawPath: '/things/1',
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    isBase64Encoded: false,
    requestContext: {
      requestId: 'api-req-1',
      http: { method: 'POST', path: '/things/1' },
    } as APIGatewayProxyEventV2['requestContext'],
    ...overrides,
  };
}

const schemas = {
  body: z.strictObject({ name: z.string().min(1), count: z.number().int() }),
  query: z.object({ limit: z.coerce.number().int().max(10).default(5) }),
  path: z.strictObject({ id: z.string().regex(/^\d+$/) }),
};

function pipeline(logger = { error: vi.fn(), warn: vi.fn() }) {
  const handler = lambdaHandler(
    middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .use(validateInput(schemas))
      .handler(async (_event, { input }) =>
        json(200, { name: input.body.name, limit: input.query.limit, id: input.path.id }),
      ),
  );
  return { handler, logger };
}

describe('validateInput through a middy pipeline', () => {
  it('puts the typed, validated input on the context', async () => {
    const { handler } = pipeline();
    const result = await handler(
      eventOf({
        body: '{"name":"n","count":2}',
        pathParameters: { id: '7' },
        queryStringParameters: { limit: '3' },
      }),
      context,
    );
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body as string)).toEqual({ name: 'n', limit: 3, id: '7' });
  });

  it('reports the problems of every part in one 400', async () => {
    const { handler } = pipeline();
    const result = await handler(
      eventOf({
        body: '{"name":"","extra":1}',
        pathParameters: { id: 'x' },
        queryStringParameters: { limit: '99' },
      }),
      context,
    );
    expect(result.statusCode).toBe(400);
    const fields = JSON.parse(result.body as string).errors.map((error: { field: string }) => error.field);
    expect(fields).toEqual(
      expect.arrayContaining(['body.name', 'body.count', 'body.extra', 'query.limit', 'path.id']),
    );
  });

  it('says a field that was not sent is required and names each unknown field, each problem once', async () => {
    const { handler } = pipeline();
    const result = await handler(
      eventOf({ body: '{"name":"n","extra":1,"other":2}', pathParameters: { id: '1' } }),
      context,
    );
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(result.body as string).errors).toEqual([
      { field: 'body.count', message: 'Required' },
      { field: 'body.extra', message: 'Unknown field' },
      { field: 'body.other', message: 'Unknown field' },
    ]);
    // A field sent with the wrong type keeps the schema's own message.
    const wrongType = await handler(
      eventOf({ body: '{"name":"n","count":"2"}', pathParameters: { id: '1' } }),
      context,
    );
    expect(JSON.parse(wrongType.body as string).errors).toEqual([
      { field: 'body.count', message: 'Invalid input: expected number, received string' },
    ]);
  });

  it('names a field breaking two rules once in the detail, and lists both of its problems', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger: { error: vi.fn(), warn: vi.fn() } }))
        .use(
          validateInput({
            body: z.object({
              name: z
                .string()
                .max(3, 'Too long')
                .regex(/^[a-z]*$/, 'Lower case'),
            }),
          }),
        )
        .handler(async () => json(200, {})),
    );
    const result = await handler(eventOf({ body: '{"name":"ABCDE"}' }), context);
    expect(result.statusCode).toBe(400);
    const problem = JSON.parse(result.body as string);
    expect(problem.detail).toBe('Invalid request: body.name');
    expect(problem.errors).toEqual([
      { field: 'body.name', message: 'Too long' },
      { field: 'body.name', message: 'Lower case' },
    ]);
  });

  it('says a query parameter given twice is repeated, not that the values it joins are a bad value', async () => {
    const { handler } = pipeline();
    const repeated = await handler(
      eventOf({
        body: '{"name":"n","count":1}',
        pathParameters: { id: '1' },
        rawQueryString: 'limit=1&extra=a&limit=2&extra=b',
        queryStringParameters: { limit: '1,2', extra: 'a,b' },
      }),
      context,
    );
    expect(repeated.statusCode).toBe(400);
    // The schema's rule for a value it refuses is kept for a parameter given once.
    expect(JSON.parse(repeated.body as string).errors).toEqual([
      { field: 'query.limit', message: 'Repeated parameter' },
    ]);
    const once = await handler(
      eventOf({
        body: '{"name":"n","count":1}',
        pathParameters: { id: '1' },
        rawQueryString: 'limit=1%2C2',
        queryStringParameters: { limit: '1,2' },
      }),
      context,
    );
    expect(JSON.parse(once.body as string).errors).toEqual([
      { field: 'query.limit', message: 'Invalid input: expected number, received NaN' },
    ]);
    // A REST API event hands over the last value only, and every value in its multi-value map.
    const restEvent = {
      httpMethod: 'GET',
      path: '/things',
      headers: {},
      requestContext: { requestId: 'rest-1', httpMethod: 'GET' },
      queryStringParameters: { limit: '20' },
      multiValueQueryStringParameters: { limit: ['1', '20'] },
      body: null,
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEvent;
    await expect(parseInput({ query: schemas.query }, restEvent)).rejects.toMatchObject({
      fields: [{ field: 'query.limit', message: 'Repeated parameter' }],
    });
  });

  it('lists at most maxReportedProblems problems, counts the rest, and cuts long field names', async () => {
    const { handler } = pipeline();
    // A 1 MiB body of short unknown keys: ~95,000 problems, which listed in full made a 6.8 MB answer.
    const unknownKeys = Array.from({ length: 95_000 }, (_, index) => `"k${index.toString(36)}":0`);
    const body = `{"name":"n","count":1,${unknownKeys.join(',')}}`;
    expect(Buffer.byteLength(body)).toBeLessThan(defaultMaxBodyBytes);
    const result = await handler(eventOf({ body, pathParameters: { id: '1' } }), context);
    expect(result.statusCode).toBe(400);
    const problem = JSON.parse(result.body as string);
    expect(problem.errors).toHaveLength(maxReportedProblems);
    expect(problem.errors[0]).toEqual({ field: 'body.k0', message: 'Unknown field' });
    expect(problem.detail).toMatch(/, body\.kj and 94980 more$/);
    expect(Buffer.byteLength(result.body as string)).toBeLessThan(4096);

    const longKey = 'x'.repeat(100_000);
    const long = await handler(
      eventOf({ body: `{"name":"n","count":1,"${longKey}":0}`, pathParameters: { id: '1' } }),
      context,
    );
    const [longField] = JSON.parse(long.body as string).errors;
    expect(longField.field).toBe(`body.${'x'.repeat(194)}…`);
    expect(longField.field).toHaveLength(200);
    // Never cut between the two halves of an emoji: a lone surrogate is not valid UTF-8.
    const emojiKey = `${'x'.repeat(193)}${'😀'.repeat(10)}`;
    const emoji = await handler(
      eventOf({ body: JSON.stringify({ name: 'n', count: 1, [emojiKey]: 0 }), pathParameters: { id: '1' } }),
      context,
    );
    expect(JSON.parse(emoji.body as string).errors[0].field).toBe(`body.${'x'.repeat(193)}…`);
  });

  it('decodes a base64 body and accepts +json media types with parameters', async () => {
    const { handler } = pipeline();
    const result = await handler(
      eventOf({
        headers: { 'content-type': 'application/vnd.api+json; charset=utf-8' },
        body: Buffer.from('{"name":"b","count":1}').toString('base64'),
        isBase64Encoded: true,
        pathParameters: { id: '1' },
      }),
      context,
    );
    expect(result.statusCode).toBe(200);
  });

  it('answers 415 for a missing or non-JSON content type', async () => {
    const { handler } = pipeline();
    expect((await handler(eventOf({ headers: {}, body: '{}' }), context)).statusCode).toBe(415);
    expect(
      (await handler(eventOf({ headers: { 'content-type': 'text/json' }, body: '{}' }), context)).statusCode,
    ).toBe(415);
  });

  it('reads the content type whatever its name case, as authenticate reads Authorization', async () => {
    // @middy/http-header-normalizer({ canonical: true }) and REST API events name headers `Content-Type`.
    const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
    const verifier = devIssuerVerifier(issuer);
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger: { error: vi.fn() } }))
        .use(authenticate({ jwt: verifier }))
        .use(validateInput({ body: schemas.body }))
        .handler(async (_event, { input, principal }) =>
          json(201, { name: input.body.name, by: principal.id }),
        ),
    );
    const token = await issuer.mint({ sub: 'alice' });
    for (const name of ['Content-Type', 'CONTENT-TYPE']) {
      const result = await handler(
        eventOf({
          headers: { [name]: 'application/json', Authorization: `Bearer ${token}` },
          body: '{"name":"n","count":1}',
        }),
        context,
      );
      expect(result.statusCode, name).toBe(201);
      expect(JSON.parse(result.body as string)).toEqual({ name: 'n', by: 'alice' });
    }
    const textual = await handler(
      eventOf({ headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${token}` }, body: '{}' }),
      context,
    );
    expect(textual.statusCode).toBe(415);
  });

  it('answers 415 problem+json for a charset other than UTF-8, and accepts UTF-8 however it is spelled', async () => {
    const { handler } = pipeline();
    const body = { name: 'José', count: 1 };
    const sent = (contentType: string, bytes: Buffer) =>
      handler(
        eventOf({
          headers: { 'content-type': contentType },
          body: bytes.toString('base64'),
          isBase64Encoded: true,
          pathParameters: { id: '1' },
        }),
        context,
      );
    for (const [contentType, encoding] of [
      ['application/json; charset=utf-16le', 'utf16le'],
      ['application/json; charset=ISO-8859-1', 'latin1'],
      ['application/json;charset="us-ascii"', 'ascii'],
    ] as const) {
      const result = await sent(contentType, Buffer.from(JSON.stringify(body), encoding));
      expect(result.statusCode, contentType).toBe(415);
      expect(result.headers?.['Content-Type']).toBe('application/problem+json');
      expect(JSON.parse(result.body as string).detail).toBe('Content-Type must be application/json (UTF-8)');
    }
    for (const contentType of [
      'application/json; charset=UTF-8',
      'application/json;charset=utf8',
      'application/json; charset="utf-8"',
    ]) {
      const result = await sent(contentType, Buffer.from(JSON.stringify(body), 'utf8'));
      expect(result.statusCode, contentType).toBe(200);
      expect(JSON.parse(result.body as string).name).toBe('José');
    }
  });

  it('answers 415 with Accept-Encoding: identity to a body with a content coding, gzipped or only labelled so', async () => {
    const { handler } = pipeline();
    const text = '{"name":"n","count":1}';
    const sent = (contentEncoding: string, body: Buffer) =>
      handler(
        eventOf({
          headers: { 'content-type': 'application/json', 'Content-Encoding': contentEncoding },
          body: body.toString('base64'),
          isBase64Encoded: true,
          pathParameters: { id: '1' },
        }),
        context,
      );
    for (const [contentEncoding, body] of [
      ['gzip', gzipSync(text)],
      ['gzip', Buffer.from(text)],
      [' GZIP ', Buffer.from(text)],
      ['br', Buffer.from(text)],
      ['identity, gzip', gzipSync(text)],
      ['x-unknown', Buffer.from(text)],
    ] as const) {
      const result = await sent(contentEncoding, body);
      expect(result.statusCode, contentEncoding).toBe(415);
      expect(result.headers).toMatchObject({
        'Content-Type': 'application/problem+json',
        'Accept-Encoding': 'identity',
      });
      expect(JSON.parse(result.body as string)).toMatchObject({
        code: 'UNSUPPORTED_MEDIA_TYPE',
        detail: 'Content-Encoding is not supported: send the body without one (identity)',
      });
    }
    // identity is no coding at all, whatever its case and spacing; so is an empty list.
    for (const contentEncoding of ['identity', ' Identity ', 'IDENTITY', '']) {
      const result = await sent(contentEncoding, Buffer.from(text));
      expect(result.statusCode, JSON.stringify(contentEncoding)).toBe(200);
    }
  });

  it('refuses a content coding also when an earlier body parser took the body', () => {
    const gzipped = eventOf({
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: '{"name":"n","count":1}',
    });
    for (const version of [3, 4] as const) {
      expect(() => readJsonBody(parsedBy(version, gzipped))).toThrow(UnsupportedContentEncodingError);
    }
  });

  it('reads the body of a REST API (v1) event labelled gzip: API Gateway decoded it and kept the header', () => {
    const restApiEvent = {
      resource: '/things',
      path: '/things',
      httpMethod: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      requestContext: { requestId: 'rest-1', httpMethod: 'POST' },
      body: '{"name":"n","count":1}',
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2;
    expect(readJsonBody(restApiEvent)).toEqual({ name: 'n', count: 1 });
  });

  it('answers 400 naming the key to a body that repeats one, which JSON.parse would take with its last value', async () => {
    const { handler } = pipeline();
    const result = await handler(
      eventOf({ body: '{"name":"first","count":1,"name":"second"}', pathParameters: { id: '1' } }),
      context,
    );
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(result.body as string)).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: 'Request body repeats a key: body.name',
      errors: [{ field: 'body.name', message: 'Repeated key' }],
    });
    const repeats = (body: string) => {
      try {
        readJsonBody(eventOf({ body }));
      } catch (error) {
        return (error as ValidationError).fields;
      }
      return 'accepted';
    };
    // Nested, in an array, spelt with escapes: each by its path, as schema problems are named.
    expect(repeats('{"a":{"list":[{"k":1},{"k":2,"\\u006b":3}]}}')).toEqual([
      { field: 'body.a.list.1.k', message: 'Repeated key' },
    ]);
    // In base64, as API Gateway sends a binary body.
    expect(() =>
      readJsonBody(
        eventOf({
          body: Buffer.from('{"userId":"other","userId":"mine"}').toString('base64'),
          isBase64Encoded: true,
        }),
      ),
    ).toThrow('Request body repeats a key: body.userId');
    // The same key in two objects is no repeat.
    expect(readJsonBody(eventOf({ body: '[{"k":1},{"k":2,"j":{"k":3}}]' }))).toEqual([
      { k: 1 },
      { k: 2, j: { k: 3 } },
    ]);
  });

  it('finds a repeated key under 100,000 levels of nesting, and names it by a path cut to 200 characters', () => {
    const depth = 100_000;
    const arrays = `${'['.repeat(depth)}{"k":1,"k":2}${']'.repeat(depth)}`;
    let field = '';
    try {
      readJsonBody(eventOf({ body: arrays }));
    } catch (error) {
      field = (error as ValidationError).fields[0]?.field ?? '';
    }
    expect(field).toBe(`body${'.0'.repeat(97)}.…`);
    const objects = `${'{"a":'.repeat(depth)}{"k":1}${'}'.repeat(depth)}`;
    expect(() => readJsonBody(eventOf({ body: objects }))).not.toThrow();
  });

  it('answers 400 to a body that is not UTF-8 rather than storing replacement characters', () => {
    const latin1 = Buffer.from('{"name":"José","count":1}', 'latin1').toString('base64');
    expect(() => readJsonBody(eventOf({ body: latin1, isBase64Encoded: true }))).toThrow(
      'Request body is not valid UTF-8',
    );
  });

  it('reads a body that starts with a UTF-8 byte order mark (RFC 8259), as text or base64, and keeps the mark in its bytes', () => {
    const text = '\ufeff{"name":"\ufeffn","count":1}';
    const base64 = Buffer.from(text).toString('base64');
    for (const event of [eventOf({ body: text }), eventOf({ body: base64, isBase64Encoded: true })]) {
      // Only the leading mark goes: one inside a string is the caller's text.
      expect(readJsonBody(event)).toEqual({ name: '\ufeffn', count: 1 });
      // What a signature is checked over: the bytes as sent.
      expect(requestBodyBytes(event).subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    }
    for (const body of ['\ufeff\ufeff{"name":"n","count":1}', '\ufeff']) {
      expect(() => readJsonBody(eventOf({ body })), JSON.stringify(body)).toThrow(
        'Request body is not valid JSON',
      );
    }
  });

  it('answers 400 to a base64 body that is not valid base64', () => {
    // `b>>>` encodes to `Yj4+Pi`: the base64url spelling of the same bytes has `-` for `+`.
    const valid = Buffer.from('{"name":"b>>>","count":1}').toString('base64');
    expect(readJsonBody(eventOf({ body: valid, isBase64Encoded: true }))).toEqual({ name: 'b>>>', count: 1 });
    for (const body of [
      `${valid.slice(0, 4)}!!*${valid.slice(4)}`,
      '!!!@@@',
      valid.replace(/=+$/, ''),
      `${valid}==`,
      valid.replaceAll('+', '-'),
    ]) {
      expect(() => readJsonBody(eventOf({ body, isBase64Encoded: true })), body).toThrow(
        'Request body is not valid base64',
      );
    }
  });

  it('answers 413 for a body over the limit', () => {
    expect(() => readJsonBody(eventOf({ body: '{"a":"0123456789"}' }), 10)).toThrow(/exceeds 10 bytes/);
  });

  it('accepts a body of exactly the limit in bytes and answers 413 to one byte more', async () => {
    const { handler } = pipeline();
    // Mostly two-byte characters, so that counting characters instead of bytes would let both through.
    const bodyOf = (bytes: number) => {
      const fillBytes = bytes - Buffer.byteLength('{"name":"","count":1}');
      const body = `{"name":"${'é'.repeat(Math.floor(fillBytes / 2))}${'n'.repeat(fillBytes % 2)}","count":1}`;
      expect(Buffer.byteLength(body)).toBe(bytes);
      return body;
    };
    const atLimit = await handler(
      eventOf({ body: bodyOf(defaultMaxBodyBytes), pathParameters: { id: '7' } }),
      context,
    );
    expect(atLimit.statusCode).toBe(200);
    const over = await handler(
      eventOf({ body: bodyOf(defaultMaxBodyBytes + 1), pathParameters: { id: '7' } }),
      context,
    );
    expect(over.statusCode).toBe(413);
    expect(JSON.parse(over.body as string)).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      detail: `Request body exceeds ${defaultMaxBodyBytes} bytes`,
    });
  });

  describe("after a body parser (@middy/http-json-body-parser, Middy's documented order)", () => {
    const sentEvent = (body: string, fields: Partial<APIGatewayProxyEventV2> = {}) =>
      eventOf({ pathParameters: { id: '7' }, ...fields, body });
    const base64Of = (text: string) => Buffer.from(text).toString('base64');
    const send = async (
      event: APIGatewayProxyEventV2,
      { parser, maxBodyBytes }: { parser?: 3 | 4; maxBodyBytes?: number } = {},
    ) => {
      let chain = middy<APIGatewayProxyEventV2>().use(httpErrorHandler({ logger: { error: vi.fn() } }));
      if (parser !== undefined) chain = chain.use(jsonBodyParserOf(parser));
      const handler = lambdaHandler(
        chain
          .use(validateInput({ body: schemas.body }, maxBodyBytes === undefined ? {} : { maxBodyBytes }))
          .handler(async (_event, { input }) => json(201, input.body)),
      );
      const result = await handler(event, context);
      return { status: result.statusCode, body: JSON.parse(result.body as string) };
    };
    const text = '{"name":"n","count":2}';

    it('validates the body the parser left, plain or sent as base64, instead of parsing it again', async () => {
      for (const parser of [3, 4] as const) {
        for (const event of [sentEvent(text), sentEvent(base64Of(text), { isBase64Encoded: true })]) {
          expect(await send(event, { parser }), `v${parser}`).toEqual({
            status: 201,
            body: { name: 'n', count: 2 },
          });
        }
        const wrong = await send(sentEvent('42'), { parser });
        expect(wrong, `v${parser}`).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
      }
    });

    it("parses a JSON string body once after v3, whose rawBody tells it was parsed, and twice after v4's", async () => {
      const stringBody = JSON.stringify(text);
      expect(await send(sentEvent(stringBody), { parser: 3 })).toMatchObject({
        status: 400,
        body: { code: 'VALIDATION_FAILED' },
      });
      // No rawBody: the string the parser left looks like a body not parsed yet (as the README says).
      expect((await send(sentEvent(stringBody), { parser: 4 })).status).toBe(201);
    });

    it('still refuses another media type a parser let through, and measures the limit on the body as sent, or on the value written back', async () => {
      // A parser told to skip its media type check (v6's disableContentTypeCheck) leaves a value anyway.
      const textual = eventOf({
        pathParameters: { id: '7' },
        headers: { 'content-type': 'text/plain' },
        body: { name: 'n', count: 2 } as unknown as string,
      });
      expect((await send(textual)).status).toBe(415);
      // 64 bytes as sent (padded with spaces), 88 as base64, 22 as JSON.
      const padded = `{"name":"n",${' '.repeat(42)}"count":2}`;
      expect(Buffer.byteLength(padded)).toBe(64);
      for (const event of [sentEvent(padded), sentEvent(base64Of(padded), { isBase64Encoded: true })]) {
        expect((await send(event, { parser: 3, maxBodyBytes: 63 })).status).toBe(413);
        expect((await send(event, { parser: 3, maxBodyBytes: 64 })).status).toBe(201);
        expect((await send(event, { parser: 4, maxBodyBytes: 21 })).status).toBe(413);
        expect((await send(event, { parser: 4, maxBodyBytes: 22 })).status).toBe(201);
      }
    });

    it('answers 400 to a body nested deeper than writing it back as JSON can go, after v4', async () => {
      const depth = 10_000;
      const nested = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      expect(Buffer.byteLength(nested)).toBeLessThan(defaultMaxBodyBytes);
      expect(await send(sentEvent(nested), { parser: 4 })).toMatchObject({
        status: 400,
        body: { code: 'VALIDATION_FAILED', detail: 'Request body is nested too deeply' },
      });
    });

    it("gives the bytes v3's rawBody keeps, decoded when base64, and names the fix after v4, rather than a TypeError", () => {
      expect(requestBodyBytes(parsedBy(3, sentEvent(text))).toString()).toBe(text);
      const base64 = parsedBy(3, sentEvent(base64Of(text), { isBase64Encoded: true }));
      expect((base64 as { rawBody?: unknown }).rawBody).toBe(base64Of(text));
      expect(requestBodyBytes(base64).toString()).toBe(text);
      const withoutRawBody = parsedBy(4, sentEvent(text));
      expect(() => requestBodyBytes(withoutRawBody)).toThrow(InvalidArgumentError);
      expect(() => requestBodyBytes(withoutRawBody)).toThrow(
        /kept no rawBody.*after Bulwark's middlewares, or drop it/,
      );
    });
  });

  it.each([Number.NaN, 0, -1, 1.5, '1024'])(
    'refuses maxBodyBytes %s at construction, which would turn the body limit off or reject every body',
    (maxBodyBytes) => {
      expect(() => validateInput(schemas, { maxBodyBytes: maxBodyBytes as number })).toThrow(
        InvalidOptionsError,
      );
    },
  );

  it('refuses, at construction, a schema that is not a Standard Schema rather than answer 500 to every request', () => {
    const make = () =>
      validateInput({ body: 'x', query: {} } as unknown as Parameters<typeof validateInput>[0]);
    expect(make).toThrow(InvalidOptionsError);
    expect(make).toThrow(/body must be a Standard Schema.*query must be a Standard Schema/);
  });

  it('refuses a part it does not know, which would validate nothing', () => {
    const misspelt = { bdy: schemas.body } as unknown as Parameters<typeof validateInput>[0];
    expect(() => validateInput(misspelt)).toThrow(
      new InvalidOptionsError('validateInput', [
        'bdy is not a part of the request: give body, query or path',
      ]),
    );
  });

  it('does not compile a misspelt part beside a valid one, which it refuses at construction too', () => {
    const misspelt = { body: schemas.body, qury: schemas.body };
    // @ts-expect-error qury is not a part of the request (a lone misspelt part fails the weak-type check)
    const make = () => validateInput(misspelt);
    expect(make).toThrow(
      new InvalidOptionsError('validateInput', [
        'qury is not a part of the request: give body, query or path',
      ]),
    );
  });

  it('names the second argument for a maxBodyBytes given among the schemas, where it would limit nothing', () => {
    const misplaced = { body: schemas.body, maxBodyBytes: 2048 } as unknown as Parameters<
      typeof validateInput
    >[0];
    expect(() => validateInput(misplaced)).toThrow(
      new InvalidOptionsError('validateInput', [
        'maxBodyBytes is an option: give it in the second argument, validateInput(schemas, { maxBodyBytes })',
      ]),
    );
  });
});

describe('httpErrorHandler through a middy pipeline', () => {
  it('puts the correlation id on the problem wherever it sits in the chain', async () => {
    const errorHandlerFirst = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger: { error: vi.fn() } }))
        .use(correlationIds())
        .handler(async () => {
          throw new ConflictError('Taken');
        }),
    );
    const result = await errorHandlerFirst(eventOf({ headers: { 'x-correlation-id': 'corr-9' } }), context);
    expect(result.statusCode).toBe(409);
    expect(result.headers).toMatchObject({ 'x-correlation-id': 'corr-9' });
  });

  it('renders a thrown toolkit error as problem+json without logging it', async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .handler(async () => {
        throw new ConflictError('Taken');
      });
    const result = await handler(eventOf(), context);
    expect(result.statusCode).toBe(409);
    expect(JSON.parse(result.body as string)).toMatchObject({
      instance: '/things/1',
      requestId: 'api-req-1',
    });
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('sends the toolkit’s correlation id and rate-limit headers once, whatever case the handler spelt them in', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(correlationIds())
        .use(httpErrorHandler({ logger: { error: vi.fn() } }))
        .use(
          rateLimit({ policy: { name: 'casing', limit: 5, windowSec: 60 }, store: new MemoryCounterStore() }),
        )
        .handler(async () => ({
          statusCode: 200,
          headers: { 'X-Correlation-Id': 'handler-set', ratelimit: 'mine' },
          body: 'x',
        })),
    );
    const result = await handler(
      eventOf({
        headers: { 'x-correlation-id': 'caller' },
        requestContext: {
          requestId: 'api-req-1',
          http: { method: 'POST', path: '/things/1', sourceIp: '203.0.113.7' },
        } as APIGatewayProxyEventV2['requestContext'],
      }),
      context,
    );
    expect(result.headers).toEqual({
      'x-correlation-id': 'caller',
      'RateLimit-Policy': '"casing";q=5;w=60',
      RateLimit: '"casing";r=4;t=12',
      'X-RateLimit-Limit': '5',
      'X-RateLimit-Remaining': '4',
      'X-RateLimit-Reset': expect.any(String),
    });
  });

  it('names a REST API (v1) request’s path as the problem’s instance', async () => {
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger: { error: vi.fn(), warn: vi.fn() } }))
      .handler(async () => {
        throw new ConflictError('Taken');
      });
    const restApiEvent = {
      resource: '/things/{id}',
      path: '/things/7',
      httpMethod: 'PUT',
      headers: {},
      requestContext: { requestId: 'rest-req-1', httpMethod: 'PUT' },
      body: null,
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2;
    const result = await handler(restApiEvent, context);
    expect(JSON.parse(result.body as string)).toMatchObject({
      status: 409,
      instance: '/things/7',
      requestId: 'rest-req-1',
    });
  });

  it('gives a path that is no URI reference as written as one: escaped once, decoded or not', async () => {
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger: { error: vi.fn(), warn: vi.fn() } }))
      .handler(async () => {
        throw new ConflictError('Taken');
      });
    const instanceOf = async (event: APIGatewayProxyEventV2) =>
      JSON.parse((await handler(event, context)).body as string).instance;
    // An HTTP API hands rawPath on decoded: `GET /bookings/a%20b%22%3Cx%3E` arrives as this.
    expect(await instanceOf(eventOf({ rawPath: '/bookings/a b"<x>' }))).toBe('/bookings/a%20b%22%3Cx%3E');
    expect(await instanceOf(eventOf({ rawPath: '/nöpe x' }))).toBe('/n%C3%B6pe%20x');
    expect(await instanceOf(eventOf({ rawPath: '/50%/a?b#c' }))).toBe('/50%25/a%3Fb%23c');
    // A Function URL hands it on as sent: its escapes stay as they are, what is not one is escaped.
    const functionUrl = (rawPath: string) =>
      eventOf({
        rawPath,
        requestContext: {
          ...eventOf().requestContext,
          domainName: 'abc123.lambda-url.us-east-1.on.aws',
        },
      });
    expect(await instanceOf(functionUrl('/n%C3%B6pe%20x'))).toBe('/n%C3%B6pe%20x');
    expect(await instanceOf(functionUrl('/a"b/50%'))).toBe('/a%22b/50%25');
    const restApiEvent = {
      path: '/nöpe x',
      httpMethod: 'GET',
      headers: {},
      requestContext: { requestId: 'rest-req-2', httpMethod: 'GET' },
    } as unknown as APIGatewayProxyEventV2;
    expect(await instanceOf(restApiEvent)).toBe('/n%C3%B6pe%20x');
  });

  it('makes every path a URI path that names the same path again', () => {
    const uriPath = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*$/;
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (tail) => {
        const path = `/${tail}`;
        const reference = pathAsUriReference(path, false);
        expect(reference).toMatch(uriPath);
        // `//` would start a host: such a path keeps itself behind `/.`, a segment that resolves away.
        expect(reference.startsWith('//')).toBe(false);
        expect(decodeURIComponent(reference.replace(/^\/\.(?=\/\/)/, ''))).toBe(path);
        expect(pathAsUriReference(reference, true)).toBe(reference);
      }),
    );
    expect(pathAsUriReference('/\ud800', false)).toBe('/%EF%BF%BD');
    expect(pathAsUriReference('//evil.example/x', false)).toBe('/.//evil.example/x');
  });

  it('logs an unknown error in full and answers a generic 500', async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const failure = new TypeError('cannot read properties of undefined');
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .handler(async () => {
        throw failure;
      });
    const result = await handler(eventOf(), context);
    expect(result.statusCode).toBe(500);
    expect(result.body).not.toContain('undefined');
    // Logged in full but redacted (name, message, stack, cause), whatever the logger.
    expect(logger.error).toHaveBeenCalledWith('Request failed', {
      error: expect.objectContaining({ name: 'TypeError', message: failure.message, stack: failure.stack }),
    });
  });

  it.each([
    ['not_json', 500, 'error', 'Request failed'],
    ['unreachable', 503, 'warn', 'Request degraded'],
  ] as const)(
    'logs a secret read failing %s (%d) with the whole ARN of the secret and the reason as fields',
    async (reason, status, level, message) => {
      const logger = { error: vi.fn(), warn: vi.fn() };
      const secretArn = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:BookingsSigningSecret-AbCdEf';
      const handler = middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger }))
        .handler(async () => {
          throw new SecretAccessError(secretArn, 'AWSCURRENT', reason);
        });
      expect((await handler(eventOf(), context)).statusCode).toBe(status);
      expect(logger[level]).toHaveBeenCalledWith(
        message,
        expect.objectContaining({
          error: expect.objectContaining({
            message: `Secret ${secretArn} (AWSCURRENT) is unavailable: ${reason}`,
            secretName: secretArn,
            versionStage: 'AWSCURRENT',
            reason,
          }),
        }),
      );
    },
  );

  it('logs a deliberate 503 as a warning, not an error', async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .handler(async () => {
        throw new ServiceUnavailableError('Store down', 2);
      });
    const result = await handler(eventOf(), context);
    expect(result.statusCode).toBe(503);
    expect(result.headers?.['Retry-After']).toBe('2');
    expect(logger.warn).toHaveBeenCalledOnce();
    expect(logger.error).not.toHaveBeenCalled();
  });

  it("answers Middy's early timeout 504 problem+json and logs it as a degraded answer, not a fault", async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    // 1000 ms left, Middy gives up 950 ms before the end: the handler below is cut short after 50 ms.
    const handler = middy<APIGatewayProxyEventV2>({ timeoutEarlyInMillis: 950 })
      .use(httpErrorHandler({ logger }))
      .handler((_event, _context, { signal }) => sleep(5000, json(200, { late: true }), { signal }));
    const result = await handler(eventOf(), context);
    expect(result.statusCode).toBe(504);
    expect(result.headers).toEqual({
      'Content-Type': 'application/problem+json',
      'Cache-Control': 'no-store',
    });
    expect(JSON.parse(result.body as string)).toEqual({
      type: 'urn:bulwark:problem:dependency-timeout',
      title: 'Gateway Timeout',
      status: 504,
      detail: 'The request did not complete in time',
      instance: '/things/1',
      code: 'DEPENDENCY_TIMEOUT',
      requestId: 'api-req-1',
    });
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledExactlyOnceWith('Request degraded', {
      error: expect.objectContaining({
        name: 'TimeoutError',
        message: '[AbortError]: The operation was aborted.',
      }),
    });
  });

  it.each([
    ['without a cause', Object.assign(new Error('aborted'), { name: 'TimeoutError' })],
    [
      'with a cause another package names',
      Object.assign(new Error('aborted', { cause: { package: '@middy/util' } }), { name: 'TimeoutError' }),
    ],
  ])('keeps a TimeoutError %s, not Middy’s own, a logged 500', async (_label, failure) => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .handler(async () => {
        throw failure;
      });
    expect((await handler(eventOf(), context)).statusCode).toBe(500);
    expect(logger.error).toHaveBeenCalledOnce();
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it('leaves a response another middleware already set on error', async () => {
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler())
      .use({
        onError: (request) => {
          request.response = { statusCode: 418, body: 'set earlier' };
        },
      })
      .handler(async () => {
        throw new Error('boom');
      });
    expect(await handler(eventOf(), context)).toEqual({ statusCode: 418, body: 'set earlier' });
  });

  it('refuses a logger without error() when built, rather than throw in place of the first error answer', () => {
    expect(() => httpErrorHandler({ logger: 42 as never })).toThrow(
      new InvalidOptionsError('httpErrorHandler', ['logger must have error() (a Powertools Logger fits)']),
    );
    expect(() => httpErrorHandler({ logger: { error: () => {}, warn: 'loud' as never } })).toThrow(
      new InvalidOptionsError('httpErrorHandler', ['logger.warn must be a function']),
    );
  });

  it('takes a null logger as none (the console) and a null warn as left out (error() then)', async () => {
    const errorSpy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const failing = lambdaHandler(
        middy<APIGatewayProxyEventV2>()
          .use(httpErrorHandler({ logger: null as never }))
          .handler(async () => {
            throw new Error('boom');
          }),
      );
      expect((await failing(eventOf(), context)).statusCode).toBe(500);
      expect(errorSpy).toHaveBeenCalledWith('Request failed', expect.anything());
    } finally {
      errorSpy.mockRestore();
    }
    const logged: unknown[] = [];
    const degraded = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(
          httpErrorHandler({
            logger: { error: (message: string) => logged.push(message), warn: null as never },
          }),
        )
        .handler(async () => {
          throw new ServiceUnavailableError('store down', 5);
        }),
    );
    expect((await degraded(eventOf(), context)).statusCode).toBe(503);
    expect(logged).toEqual(['Request degraded']);
  });
});
