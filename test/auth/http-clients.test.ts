// The client id check over HTTP: a runtime whose functions accept tokens of one client only.
import { describe, expect, it } from 'vitest';
import { useLocalRuntime } from '../helpers/runtime.js';

const api = useLocalRuntime({ authClientIds: ['bulwark-local', 'svc-known'] });

describe('a runtime accepting listed clients only', () => {
  it('accepts tokens of the listed clients', async () => {
    expect((await api.request('GET', '/bookings?limit=1', { token: await api.token() })).status).toBe(200);
    const m2m = await api.token({ m2m: true, clientId: 'svc-known', scopes: ['bookings/read'] });
    expect((await api.request('GET', '/bookings?limit=1', { token: m2m })).status).toBe(200);
  });

  it('refuses a token of another client with 401 invalid_token', async () => {
    const token = await api.token({ m2m: true, clientId: 'svc-stranger', scopes: ['bookings/read'] });
    const response = await api.request('GET', '/bookings?limit=1', { token });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(response.body).toMatchObject({
      code: 'INVALID_TOKEN',
      detail: 'The token client is not accepted',
    });
  });

  it("refuses a user's token issued to another client", async () => {
    const token = await api.token({ clientId: 'web-other' });
    expect((await api.request('GET', '/bookings?limit=1', { token })).status).toBe(401);
  });
});
