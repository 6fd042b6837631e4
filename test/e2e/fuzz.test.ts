import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routes } from '../../functions/routes.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// A human admin may call every route; test/auth covers who else may.
const api = useLocalRuntime({ as: adminUser });

/**
 * One unit of text beyond printable ASCII: any code point, a lone surrogate (JSON carries one as
 * `\ud800`), or an invisible control that reorders or hides text (BOM, bidi overrides and isolates,
 * direction marks), drawn far more often than their share of all code points would draw them.
 */
const unicodeUnit = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  fc.constantFrom(...'\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c'),
);
/** Text up to `maxLength` units: printable ASCII (what could pass validation) or full Unicode, half each. */
const text = (maxLength: number) =>
  fc.oneof(fc.string({ maxLength }), fc.string({ unit: unicodeUnit, maxLength }));
/**
 * Text for a path segment or query value, percent-encoded as UTF-8, or a lone surrogate encoded as if
 * UTF-8 could carry one (`%ED%A0%80`), which decodeURIComponent refuses.
 */
const encodedText = (maxLength: number) =>
  fc.oneof(
    { weight: 4, arbitrary: text(maxLength).map((value) => encodeURIComponent(value.toWellFormed())) },
    fc.constantFrom('%ED%A0%80', '%ED%B0%80', 'a%ED%A0%80b'),
  );

// Latin-1 beyond ASCII is the most a header value can carry (`obs-text`).
const headerValue = fc.string({
  unit: fc.constantFrom(...'abcXYZ019 ;=/,.-_*+"\'\\:{}[]\u00e9\u00ff'.split('')),
  maxLength: 40,
});
const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/octet-stream',
  ),
  fc.constantFrom('application/problem+json', 'multipart/form-data; boundary=x', ''),
  headerValue,
);
const headers = fc.record(
  {
    'content-type': contentType,
    authorization: headerValue,
    cookie: headerValue,
    accept: headerValue,
    'x-forwarded-for': headerValue,
  },
  { requiredKeys: [] },
);
const pathSegment = fc.oneof(fc.uuid(), encodedText(80), fc.constantFrom('%', '%ZZ', '..', '%2F', 'a#b', ''));
const queryString = fc
  .array(fc.tuple(fc.constantFrom('limit', 'cursor', 'userId', 'x'), encodedText(60)), {
    maxLength: 3,
  })
  .map((pairs) => pairs.map(([key, value]) => `${key}=${value}`).join('&'));
const bookingLike = fc.record(
  {
    roomId: fc.oneof(text(70), fc.integer()),
    userId: fc.oneof(fc.uuid(), text(70)),
    start: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      text(30),
    ),
    end: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      text(30),
    ),
    email: fc.oneof(fc.emailAddress(), text(30)),
    name: text(120),
  },
  { requiredKeys: [] },
);
/**
 * A webhook registration whose URL is any text, or any text after a host the SSRF guard refuses in any
 * spelling (full-width digits among them): the URL is parsed and checked, but never stored, so no
 * endpoint of this admin fans out other tests' events, and no host name sends the guard to DNS.
 */
const webhookLike = fc.record(
  {
    url: fc.oneof(
      fc
        .tuple(
          fc.constantFrom('http://', 'https://', 'HTTP://'),
          fc.constantFrom('10.0.0.1', '\uff11\uff10.0.0.1', '169.254.169.254', '[::ffff:10.0.0.1]', '0'),
          text(60),
        )
        .map(([scheme, host, rest]) => `${scheme}${host}/${rest}`),
      text(80),
    ),
    eventTypes: fc.constantFrom(['booking.created'], ['user.registered'], []),
  },
  { requiredKeys: ['url'] },
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.json(),
  fc.json({ stringUnit: unicodeUnit, maxDepth: 3 }),
  bookingLike.map((value) => JSON.stringify(value)),
  webhookLike.map((value) => JSON.stringify(value)),
  text(200),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
);

describe('every route under random input', () => {
  it('never answers with a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
        pathSegment,
        queryString,
        headers,
        body,
        async (route, method, segment, query, requestHeaders, requestBody) => {
          const path = route.path.replace(/\{\w+\}/g, segment);
          const sendBody = method === 'GET' ? undefined : requestBody;
          const response = await api.request(method, `${path}${query ? `?${query}` : ''}`, {
            headers: requestHeaders,
            ...(sendBody === undefined ? {} : { body: sendBody }),
          });
          expect(response.status, `${method} ${path}?${query} -> ${response.text}`).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never answers a JSON body on a write route with a 5xx', async () => {
    const writeRoutes = routes.filter((route) => route.method === 'POST');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...writeRoutes),
        fc.oneof(
          bookingLike,
          webhookLike,
          fc.json().map((json) => JSON.parse(json) as unknown),
          fc.json({ stringUnit: unicodeUnit, maxDepth: 3 }).map((json) => JSON.parse(json) as unknown),
        ),
        async (route, value) => {
          const response = await api.request('POST', route.path, { body: value ?? null });
          expect(response.status, `${route.path} ${JSON.stringify(value)} -> ${response.text}`).toBeLessThan(
            500,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
