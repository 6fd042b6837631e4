import { createServer, request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MalformedResultError,
  parseRequestTarget,
  type RequestTarget,
  toHttpApiEvent,
  writeHttpApiResult,
} from '../../bin/runtime/http-api-event.js';
import { signedPathOf } from '../../middleware/http/request-event.js';

let server: Server;
let url: string;
let lastEvent: APIGatewayProxyEventV2 | undefined;
let nextResult: unknown;
const writeFailures: unknown[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      lastEvent = toHttpApiEvent({
        request,
        target: parseRequestTarget(request.url ?? '') as RequestTarget,
        body: Buffer.concat(chunks),
        routeKey: 'POST /things/{id}',
        pathParameters: { id: '42' },
      });
      try {
        writeHttpApiResult(response, nextResult);
      } catch (error) {
        // As the runtime does: what API Gateway answers for a result it cannot map.
        writeFailures.push(error);
        writeHttpApiResult(response, { statusCode: 500, body: '{"message":"Internal Server Error"}' });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

interface ResponseHead {
  statusLine: string;
  headers: Headers;
  /** What the server sent after the head before it closed the connection. */
  rest: string;
}

/**
 * One GET over a raw connection, read to its close: fetch and node:http take a 1xx for an interim answer
 * and wait for another, and they hide whether a 204 or 304 carried a Content-Length.
 */
function responseHead(base: string): Promise<ResponseHead> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () =>
      socket.write(`GET / HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`),
    );
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // A 1xx ends no exchange, so the server keeps the connection open after it.
      if (Buffer.concat(chunks).includes('\r\n\r\n')) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = text.slice(0, headEnd).split('\r\n');
      const headers = new Headers();
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      resolve({ statusLine, headers, rest: text.slice(headEnd + 4) });
    });
  });
}

describe('parseRequestTarget', () => {
  it('splits the target at its first ? and keeps both parts as sent', () => {
    expect(parseRequestTarget('/a/b%20c?x=1?y&z')).toEqual({
      rawPath: '/a/b%20c',
      rawQueryString: 'x=1?y&z',
    });
    expect(parseRequestTarget('/a')).toEqual({ rawPath: '/a', rawQueryString: '' });
  });

  it('reads a target starting with // as a path, never as a host', () => {
    expect(parseRequestTarget('//foo/bookings?limit=1')).toEqual({
      rawPath: '//foo/bookings',
      rawQueryString: 'limit=1',
    });
    expect(parseRequestTarget('//[')).toEqual({ rawPath: '//[', rawQueryString: '' });
  });

  it('refuses a target that is not a path', () => {
    expect(parseRequestTarget('http://example.com/health')).toBeUndefined();
    expect(parseRequestTarget('*')).toBeUndefined();
  });
});

describe('API Gateway HTTP API v2 translation', () => {
  it('builds a v2 event with lowercased headers, cookies, query and request context', async () => {
    nextResult = { statusCode: 204 };
    await fetch(`${url}/things/42?a=1&a=2&b=x%20y`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Custom': 'v', Cookie: 'c1=1; c2=2' },
      body: '{"k":1}',
    });
    expect(lastEvent).toMatchObject({
      version: '2.0',
      routeKey: 'POST /things/{id}',
      rawPath: '/things/42',
      rawQueryString: 'a=1&a=2&b=x%20y',
      cookies: ['c1=1', 'c2=2'],
      queryStringParameters: { a: '1,2', b: 'x y' },
      pathParameters: { id: '42' },
      body: '{"k":1}',
      isBase64Encoded: false,
      requestContext: {
        http: { method: 'POST', path: '/things/42', sourceIp: '127.0.0.1' },
        routeKey: 'POST /things/{id}',
        stage: '$default',
      },
    });
    expect(lastEvent?.headers['x-custom']).toBe('v');
    expect(lastEvent?.headers.cookie).toBeUndefined();
    expect(lastEvent?.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(lastEvent?.requestContext.time).toMatch(/^\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
  });

  it('hands the function its path percent-decoded, as an HTTP API does, and its query as sent', async () => {
    nextResult = { statusCode: 204 };
    for (const [sent, delivered] of [
      ['/things/caf%C3%A9', '/things/café'],
      ['/things/a%20b', '/things/a b'],
      ['/things/a%2Fb', '/things/a/b'],
      ['/things/50%25', '/things/50%'],
      // Not percent-encoding at all: nothing to decode, so it goes on as sent.
      ['/things/50%', '/things/50%'],
      ['/things/%E0%A4%A', '/things/%E0%A4%A'],
    ]) {
      await fetch(`${url}${sent}?q=a%20b`);
      expect(lastEvent).toMatchObject({
        rawPath: delivered,
        rawQueryString: 'q=a%20b',
        requestContext: { http: { path: delivered } },
      });
    }
  });

  it('never names a Function URL domain, whatever the Host: service auth reads its rawPath as already decoded', async () => {
    nextResult = { statusCode: 204 };
    const { hostname, port } = new URL(url);
    for (const [host, domainName] of [
      ['abcdefghij0123456789abcdefghij01.lambda-url.us-east-1.on.aws', 'localhost'],
      ['api.example.com', 'api.example.com'],
    ]) {
      await new Promise<void>((resolve, reject) => {
        httpRequest({ hostname, port, path: '/things/a%2541', headers: { host } }, (response) => {
          response.resume().on('end', resolve);
        })
          .on('error', reject)
          .end();
      });
      expect(lastEvent?.requestContext.domainName, host).toBe(domainName);
      // Decoded once by the runtime, never again: the id `a%41`, not `aA`.
      expect(signedPathOf(lastEvent as APIGatewayProxyEventV2), host).toBe('/things/a%41');
    }
  });

  it('keeps a ? that starts the raw query in the first key, as URL parsing does', async () => {
    nextResult = { statusCode: 204 };
    await fetch(`${url}/things/42??userId=alice&b=1`);
    expect(lastEvent?.rawQueryString).toBe('?userId=alice&b=1');
    expect(lastEvent?.queryStringParameters).toEqual({ '?userId': 'alice', b: '1' });
  });

  it('base64-encodes a binary body', async () => {
    nextResult = { statusCode: 204 };
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from([0, 255, 1]),
    });
    expect(lastEvent?.isBase64Encoded).toBe(true);
    expect(Buffer.from(lastEvent?.body ?? '', 'base64')).toEqual(Buffer.from([0, 255, 1]));
  });

  it('base64-encodes a JSON body that is not UTF-8, so the function sees the bytes as sent', async () => {
    nextResult = { statusCode: 204 };
    const latin1 = Buffer.from('{"name":"René"}', 'latin1');
    await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: latin1 });
    expect(lastEvent?.isBase64Encoded).toBe(true);
    expect(Buffer.from(lastEvent?.body ?? '', 'base64')).toEqual(latin1);
  });

  it('writes cookies as separate Set-Cookie headers and decodes a base64 body', async () => {
    nextResult = {
      statusCode: 201,
      headers: { 'x-result': 'yes' },
      cookies: ['a=1; Path=/', 'b=2; Path=/'],
      body: Buffer.from('hello').toString('base64'),
      isBase64Encoded: true,
    };
    const response = await fetch(url);
    expect(response.status).toBe(201);
    expect(response.headers.get('x-result')).toBe('yes');
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(await response.text()).toBe('hello');
  });

  it('infers a 200 JSON response from a result without statusCode', async () => {
    nextResult = { hello: 'world' };
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ hello: 'world' });
  });

  it.each([100, 103, 204, 304])(
    'sends no Content-Length and no body with a %i (RFC 9110 §8.6)',
    async (statusCode) => {
      nextResult = { statusCode, headers: { 'x-result': 'yes' }, body: 'ignored' };
      const head = await responseHead(url);
      expect(head.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${statusCode} `));
      expect(head.headers.get('x-result')).toBe('yes');
      expect(head.headers.has('content-length')).toBe(false);
      expect(head.headers.has('transfer-encoding')).toBe(false);
      expect(head.rest).toBe('');
    },
  );

  it('sends Content-Length: 0 with an empty answer of any other status', async () => {
    for (const statusCode of [200, 202, 404]) {
      nextResult = { statusCode };
      const head = await responseHead(url);
      expect(head.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${statusCode} `));
      expect(head.headers.get('content-length'), String(statusCode)).toBe('0');
    }
  });

  it.each([
    ['a body that is not a string', { statusCode: 200, body: { a: 1 } }],
    ['a status that is not a number', { statusCode: '2xx' }],
    ['a status out of range', { statusCode: 1000 }],
    ['headers that are not an object', { statusCode: 200, headers: 'x' }],
    ['cookies that are not strings', { statusCode: 200, cookies: [1] }],
    ['a header value with a line break', { statusCode: 200, headers: { 'x-kept': 'no', 'x-bad': 'a\nb' } }],
    ['a header name that is not a token', { statusCode: 200, headers: { 'x-kept': 'no', 'bad name': 'x' } }],
    ['a cookie with a line break', { statusCode: 200, cookies: ['a=1\r\nx-injected: yes'] }],
  ])("answers API Gateway's 500, having written nothing, for %s", async (_, result) => {
    nextResult = result;
    writeFailures.length = 0;
    const response = await fetch(url);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ message: 'Internal Server Error' });
    expect(response.headers.get('x-kept')).toBeNull();
    expect(writeFailures).toEqual([expect.any(MalformedResultError)]);
  });
});

describe('repeated request headers', () => {
  it('joins every value with commas, as API Gateway does, Authorization included', async () => {
    nextResult = { statusCode: 204 };
    await new Promise<void>((resolve, reject) => {
      const request = httpRequest(`${url}/things/42`);
      request.setHeader('authorization', ['Bearer one', 'Bearer two']);
      request.setHeader('x-dup', ['a', 'b']);
      request.on('response', (response) => response.resume().on('end', resolve));
      request.on('error', reject);
      request.end();
    });
    expect(lastEvent?.headers.authorization).toBe('Bearer one,Bearer two');
    expect(lastEvent?.headers['x-dup']).toBe('a,b');
  });
});
