import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routes } from '../../functions/routes.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// A human admin may call every route; test/auth covers who else may.
const api = useLocalRuntime({ as: adminUser });

const headerValue = fc.string({
  unit: fc.constantFrom(...'abcXYZ019 ;=/,.-_*+"\'\\:{}[]'.split('')),
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
const pathSegment = fc.oneof(
  fc.uuid(),
  fc.string({ maxLength: 80 }).map(encodeURIComponent),
  fc.constantFrom('%', '%ZZ', '..', '%2F', 'a#b', ''),
);
const queryString = fc
  .array(fc.tuple(fc.constantFrom('limit', 'cursor', 'userId', 'x'), fc.string({ maxLength: 60 })), {
    maxLength: 3,
  })
  .map((pairs) => pairs.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join('&'));
const bookingLike = fc.record(
  {
    roomId: fc.oneof(fc.string({ maxLength: 70 }), fc.integer()),
    userId: fc.oneof(fc.uuid(), fc.string({ maxLength: 70 })),
    start: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      fc.string(),
    ),
    end: fc.oneof(
      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      fc.string(),
    ),
    email: fc.oneof(fc.emailAddress(), fc.string()),
    name: fc.string({ maxLength: 120 }),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.json().map((text) => text),
  bookingLike.map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 200 }),
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
          fc.json().map((text) => JSON.parse(text) as unknown),
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
