import { describe, expect, it } from 'vitest';
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

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const response = await api.request('PUT', '/bookings');
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST, GET');
    expect(response.body).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });

  it('answers a body over 1 MiB with 413 without invoking the function', async () => {
    const response = await api.request('POST', '/users', {
      body: JSON.stringify({ email: 'big@example.com', name: 'x'.repeat(1024 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('answers malformed percent-encoding in a path parameter with 400', async () => {
    const response = await api.request('GET', '/users/%E0%A4%A');
    expect(response.status).toBe(400);
  });

  it('never leaks a stack trace or internal detail in a problem', async () => {
    const response = await api.request('POST', '/bookings', { body: [] });
    expect(response.status).toBe(400);
    expect(response.text).not.toMatch(/at .*\.ts:\d+/);
  });
});
