import { request } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { refusalOf } from '../../bin/runtime/local-runtime.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// A human admin may call every route; test/auth covers who else may.
const api = useLocalRuntime({ as: adminUser });

describe('local runtime over HTTP', () => {
  it('answers the health check when both tables are reachable', async () => {
    const response = await api.request('GET', '/health');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok', tables: { app: 'ok', toolkit: 'ok' } });
  });

  it('answers an unknown path with a 404 problem', async () => {
    const response = await api.request('GET', '/no/such/path');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.body).toMatchObject({ status: 404, code: 'NOT_FOUND', instance: '/no/such/path' });
  });

  it('names the path of a problem as a URI reference, escaped as the client sent it', async () => {
    const invalidId = await api.request('GET', '/bookings/a%20b%22%3Cx%3E');
    expect(invalidId.status).toBe(400);
    expect(invalidId.body).toMatchObject({
      code: 'VALIDATION_FAILED',
      instance: '/bookings/a%20b%22%3Cx%3E',
    });
    const unknown = await api.request('GET', '/n%C3%B6pe%20x');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'NOT_FOUND', instance: '/n%C3%B6pe%20x' });
  });

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const response = await api.request('PUT', '/bookings');
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST, GET, HEAD');
    expect(response.body).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });

  /** The headers of an answer, less those that differ between any two requests. */
  const stableHeaders = (headers: Headers) =>
    Object.fromEntries(
      [...headers].filter(
        ([name]) =>
          !['date', 'content-length', 'ratelimit', 'x-ratelimit-remaining', 'x-ratelimit-reset'].includes(
            name,
          ),
      ),
    );

  it('answers HEAD /health with the status and headers of GET, no body and no Content-Length', async () => {
    const get = await api.request('GET', '/health', { headers: { 'x-correlation-id': 'head-health' } });
    const head = await api.request('HEAD', '/health', { headers: { 'x-correlation-id': 'head-health' } });
    expect(head.status).toBe(200);
    expect(stableHeaders(head.headers)).toEqual(stableHeaders(get.headers));
    expect(head.headers.get('content-type')).toBe('application/json');
    expect(head.headers.get('content-length')).toBeNull();
    expect(head.text).toBe('');
  });

  it('runs the GET route for HEAD on an authenticated route: auth, the same rate-limit budget, its headers', async () => {
    const correlation = { 'x-correlation-id': 'head-bookings' };
    // Only Date, held still: the budget refills a unit every 7.2 s, and one refilled between the two
    // requests would leave the GET the HEAD's remaining. The runtime's timers and sockets run as usual.
    vi.useFakeTimers({ toFake: ['Date'] });
    const { head, get } = await (async () => {
      try {
        const head = await api.request('HEAD', '/bookings?limit=1', { headers: correlation });
        return { head, get: await api.request('GET', '/bookings?limit=1', { headers: correlation }) };
      } finally {
        vi.useRealTimers();
      }
    })();
    expect(head.status).toBe(200);
    expect(stableHeaders(head.headers)).toEqual(stableHeaders(get.headers));
    expect(head.text).toBe('');
    // One per-user budget for both methods: the GET after the HEAD has one unit less.
    const remaining = (response: { headers: Headers }) =>
      Number(response.headers.get('x-ratelimit-remaining'));
    expect(remaining(get)).toBe(remaining(head) - 1);

    const anonymous = await api.request('HEAD', '/bookings', { token: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(anonymous.headers.get('content-type')).toBe('application/problem+json');
    expect(anonymous.text).toBe('');
  });

  it('answers HEAD on a path with no GET with 405, Allow without HEAD, and no body', async () => {
    const response = await api.request('HEAD', '/users');
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
    expect(response.text).toBe('');
  });

  it("serves HEAD on the dev issuer's JWKS, with the Content-Length of its GET body", async () => {
    const get = await api.request('GET', '/.well-known/jwks.json');
    const head = await api.request('HEAD', '/.well-known/jwks.json');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(get.text)));
    expect(head.text).toBe('');
  });

  it("answers another method on the dev issuer's JWKS with 405 and Allow: GET, HEAD", async () => {
    for (const method of ['POST', 'DELETE', 'OPTIONS']) {
      const response = await api.request(method, '/.well-known/jwks.json', { body: '{}' });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.body).toMatchObject({ code: 'METHOD_NOT_ALLOWED', instance: '/.well-known/jwks.json' });
    }
  });

  it("lets a body over 1 MiB through to the function, so the function's own 413 carries the correlation id", async () => {
    const response = await api.request('POST', '/bookings', {
      body: JSON.stringify({ roomId: 'x'.repeat(1024 * 1024) }),
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'big-body-1' },
    });
    expect(response.status).toBe(413);
    expect(response.headers.get('x-correlation-id')).toBe('big-body-1');
    expect(response.body).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      // POST /bookings takes a few fields: its limit is 8 KiB.
      detail: 'Request body exceeds 8192 bytes',
    });
  });

  const tooLargeForLambda = {
    code: 'PAYLOAD_TOO_LARGE',
    detail: "The request's event exceeds Lambda's invocation payload of 6291456 bytes",
  };

  it("answers a body over Lambda's 6 MiB invocation payload with 413 without invoking the function", async () => {
    const response = await api.request('POST', '/bookings', {
      body: JSON.stringify({ roomId: 'x'.repeat(6 * 1024 * 1024) }),
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'huge-body-1' },
    });
    expect(response.status).toBe(413);
    expect(response.headers.get('x-correlation-id')).toBeNull();
    expect(response.body).toMatchObject(tooLargeForLambda);
  });

  it.each([
    // Base64 in the event: a third larger than the body.
    ['5 MiB of binary', 'application/octet-stream', Buffer.alloc(5 * 1024 * 1024, 0xff)],
    // Each control character is escaped in the event's JSON as six bytes (\u0001).
    ['1.1 MiB of control characters', 'application/json', Buffer.alloc(1.1 * 1024 * 1024, 0x01)],
  ])(
    'answers %s, whose event is over the invocation payload, with 413 without invoking the function',
    async (_name, contentType, body) => {
      const response = await api.request('POST', '/bookings', {
        body,
        headers: { 'content-type': contentType, 'x-correlation-id': 'big-event-1' },
      });
      expect(response.status).toBe(413);
      expect(response.headers.get('x-correlation-id')).toBeNull();
      expect(response.body).toMatchObject(tooLargeForLambda);
    },
  );

  it('routes a path that is not valid percent-encoding as sent: its route refuses the id with 400', async () => {
    const response = await api.request('GET', '/users/%E0%A4%A');
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'path.id' }] });
  });

  it('routes an encoded slash as the slash its function gets, and a miss names the path routed on', async () => {
    // `/bookings/bk_none` to the function, so the bookings route answers, not the catch-all.
    const booking = await api.request('GET', '/bookings%2Fbk_none');
    expect(booking.status).toBe(404);
    expect(booking.body).toMatchObject({ code: 'NOT_FOUND', detail: 'Booking bk_none not found' });
    const missing = await api.request('GET', '/users/a%2Fb');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({
      code: 'NOT_FOUND',
      detail: 'No route for /users/a/b',
      instance: '/users/a/b',
    });
    // Decoded once only: the id `a%2Fb` holds no slash, and the route it was matched to refuses it.
    const encodedTwice = await api.request('GET', '/users/a%252Fb');
    expect(encodedTwice.status).toBe(400);
    expect(encodedTwice.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'path.id' }] });
  });

  it.each([
    ['GET', '/users/a%20b', 400],
    ['GET', '/users/caf%C3%A9', 400],
    ['GET', '/users/a%252Fb', 400],
    ['GET', '/bookings/a%20b', 400],
    ['DELETE', '/webhooks/50%25', 400],
    ['GET', '/webhooks/a%20b/deliveries', 400],
    ['PUT', '/users/a%20b', 405],
    ['PUT', '/users/50%25', 405],
    ['GET', '/nowhere%20at/all', 404],
  ])('routes %s %s on the path decoded once, the one its function gets: %i', async (method, path, status) => {
    const response = await api.request(method, path);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });

  /** Sends `target` as the request line's target exactly, which fetch and URL-taking clients would normalise. */
  /** Sends `target` as the request line's target, unparsed and unescaped; a GET, or a POST of `body`. */
  function sendTarget(
    target: string,
    body?: Buffer,
  ): Promise<{ status: number; contentType: string | undefined; body: string }> {
    const { port } = api.runtime();
    const method = body === undefined ? 'GET' : 'POST';
    return new Promise((resolve, reject) => {
      const outgoing = request(
        { host: '127.0.0.1', port, path: target, method, agent: false },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () =>
            resolve({
              status: incoming.statusCode ?? 0,
              contentType: incoming.headers['content-type'],
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  // The instance keeps the path a path: `/.` before a leading `//`, which would otherwise name a host.
  it.each([
    ['//[', '/.//%5B'],
    ['//a:99999/x', '/.//a:99999/x'],
    ['//foo/bookings?limit=1', '/.//foo/bookings'],
  ])('reads the target %s as a path, as API Gateway does: a 404 problem', async (target, instance) => {
    const response = await sendTarget(target);
    expect(response.status).toBe(404);
    expect(response.contentType).toBe('application/problem+json');
    expect(JSON.parse(response.body)).toMatchObject({ code: 'NOT_FOUND', instance });
  });

  it('names the path of its own 413 as a URI reference, escaping what the client left unescaped', async () => {
    const response = await sendTarget('/bookings/"x"%20<y>', Buffer.alloc(6 * 1024 * 1024 + 1, 0x61));
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body)).toMatchObject({
      ...tooLargeForLambda,
      instance: '/bookings/%22x%22%20%3Cy%3E',
    });
  });

  it('answers a target that is not a path with a 400 problem instead of serving the path inside it', async () => {
    const response = await sendTarget('http://example.com/health');
    expect(response.status).toBe(400);
    expect(response.contentType).toBe('application/problem+json');
    expect(JSON.parse(response.body)).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  /** Writes `head` (a request line and headers, as sent) on a raw connection and reads the answer to its close. */
  function sendRaw(head: string): Promise<string> {
    const { port } = api.runtime();
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect(port, '127.0.0.1', () => socket.write(head));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  }

  it.each([
    [
      'a control character in a header value',
      'GET /health HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: a\u0001b\r\n\r\n',
      400,
    ],
    ['a method that is not a token', 'G@T /health HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    [
      'headers over the limit',
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
    ],
  ])(
    'answers a request Node cannot parse (%s) with a problem and closes the connection',
    async (_name, head, status) => {
      const answer = await sendRaw(head);
      const [statusLine, ...rest] = answer.split('\r\n');
      expect(statusLine).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(rest).toContain('Content-Type: application/problem+json');
      expect(rest).toContain('Connection: close');
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(body).toMatchObject({ status, code: status === 400 ? 'VALIDATION_FAILED' : 'CLIENT_ERROR' });
    },
  );

  it.each([
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'CLIENT_ERROR'],
    ['HPE_HEADER_OVERFLOW', 431, 'CLIENT_ERROR'],
    ['HPE_CHUNK_EXTENSIONS_OVERFLOW', 413, 'PAYLOAD_TOO_LARGE'],
    ['HPE_INVALID_METHOD', 400, 'VALIDATION_FAILED'],
    [undefined, 400, 'VALIDATION_FAILED'],
  ])('refuses what Node refuses with %s with the status Node gives it (%i)', (code, status, problemCode) => {
    expect(refusalOf(code)).toMatchObject({ statusCode: status, code: problemCode });
  });

  it('never leaks a stack trace or internal detail in a problem', async () => {
    const response = await api.request('POST', '/bookings', { body: [] });
    expect(response.status).toBe(400);
    expect(response.text).not.toMatch(/at .*\.ts:\d+/);
  });
});
