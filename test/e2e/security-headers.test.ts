// Every answer of the sample's functions, whatever produced it, carries the default headers of
// functions/shared/route-dispatch.ts: no caching, and OWASP's security headers for a JSON API.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ApiResponse, randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';

const api = useLocalRuntime();

const defaultHeaders = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'content-security-policy': "frame-ancestors 'none'",
  'x-frame-options': 'DENY',
};

function expectDefaultHeaders(response: ApiResponse, status: number): void {
  expect(response.status).toBe(status);
  for (const [name, value] of Object.entries(defaultHeaders)) {
    expect(response.headers.get(name), `${status} ${name}`).toBe(value);
  }
}

describe('the default headers of every sample answer', () => {
  it('are on successes, of the public health function and of a policy-guarded route', async () => {
    expectDefaultHeaders(await api.request('GET', '/health'), 200);
    const registered = await api.request('POST', '/users', {
      body: { email: `headers-${randomUUID()}@example.com`, name: 'Hedda' },
    });
    expectDefaultHeaders(registered, 201);
    const admin = await api.token({ sub: 'headers-admin', roles: ['admin'] });
    expectDefaultHeaders(await api.request('GET', '/admin/users?limit=1', { token: admin }), 200);
  });

  it('are on the problems a route renders (400) and its early answers (401, 403)', async () => {
    expectDefaultHeaders(await api.request('POST', '/users', { body: { email: 42 } }), 400);
    const anonymous = await api.request('GET', '/admin/users');
    expectDefaultHeaders(anonymous, 401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const plainUser = await api.token({ sub: `headers-user-${randomUUID()}` });
    expectDefaultHeaders(await api.request('GET', '/admin/users', { token: plainUser }), 403);
  });

  it("are on the catch-all's 404 and 405", async () => {
    expectDefaultHeaders(await api.request('GET', '/no/such/path'), 404);
    const wrongMethod = await api.request('PATCH', '/users');
    expectDefaultHeaders(wrongMethod, 405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
  });

  it('are on a 429, beside its rate-limit headers', async () => {
    // verify-phone allows one request per 10 s per address (mfaVerify).
    const sourceIp = randomLoopbackAddress();
    const verify = () =>
      api.request('POST', `/users/${randomUUID()}/verify-phone`, { body: { code: '123456' }, sourceIp });
    expect((await verify()).status).toBe(404);
    const limited = await verify();
    expectDefaultHeaders(limited, 429);
    expect(limited.headers.get('retry-after')).not.toBeNull();
  });
});
