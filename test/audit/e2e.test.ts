import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { smsPerNumberPolicy } from '../../functions/users/users-model.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { metricCatalog, metricNamespace } from '../../middleware/metrics/catalog.js';
import { bookingDay } from '../helpers/booking-times.js';
import { captureStdout, emfProblems, enableMetricsOutput } from '../helpers/log-capture.js';
import { adminUser, randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';
import { registerEndpoint } from '../webhooks/helpers.js';

const at = bookingDay(19);

// The functions read their log level when the runtime loads them (beforeAll): audit lines are INFO,
// which the suite otherwise silences.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime({ as: adminUser });
enableMetricsOutput();
const output = captureStdout();

type Line = Record<string, unknown> & { service?: string; audit?: AuditEvent };

const linesOf = (service: string) => (output.json() as Line[]).filter((line) => line.service === service);
const requestEvents = (service: string) =>
  linesOf(service).flatMap((line) => (line.audit?.eventType === 'http.request' ? [line.audit] : []));

async function registerUser(): Promise<string> {
  const created = await api.request('POST', '/users', {
    body: { email: `audit-${randomUUID()}@example.com`, name: 'Audited' },
  });
  expect(created.status).toBe(201);
  return (created.body as { id: string }).id;
}

describe('audit, metrics and correlation ids in the sample system', () => {
  it('returns the caller’s correlation id and carries it into the users service call', async () => {
    const userId = await registerUser();
    output.clear();
    const correlationId = `e2e-${randomUUID()}`;
    const response = await api.request('POST', '/bookings', {
      headers: { 'x-correlation-id': correlationId },
      body: {
        userId,
        roomId: `room-${randomUUID()}`,
        start: at(9),
        end: at(10),
      },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-correlation-id')).toBe(correlationId);

    // The bookings request, audited once, with the caller as principal.
    const [booking] = requestEvents('bookings');
    expect(booking).toMatchObject({
      method: 'POST',
      path: '/bookings',
      statusCode: 201,
      outcome: 'success',
      userId: 'e2e-admin',
      correlationId,
    });
    // The users function answered the service call under the same correlation id, signed by bookings.
    const lookup = requestEvents('users').find((event) => event.path === `/users/${userId}`);
    expect(lookup).toMatchObject({
      method: 'GET',
      statusCode: 200,
      userId: 'bookings',
      isM2M: true,
      correlationId,
    });
    // Every log line either function wrote for this request carries it as Powertools' correlation_id.
    const requestLines = [...linesOf('bookings'), ...linesOf('users')].filter((line) => !line._aws);
    // One http.request line each: their auth.success lines are not written in the sample.
    expect(requestLines.length).toBeGreaterThanOrEqual(2);
    for (const line of requestLines) expect(line.correlation_id).toBe(correlationId);
  });

  it('writes no auth.success line: the http.request line names how the caller authenticated, and AuthSuccess still counts', async () => {
    const userId = await registerUser();
    output.clear();
    const response = await api.request('POST', '/bookings', {
      body: { userId, roomId: `room-${randomUUID()}`, start: at(11), end: at(12) },
    });
    expect(response.status).toBe(201);
    const auditsOf = (service: string) =>
      linesOf(service).flatMap((line) => (line.audit ? [line.audit] : []));
    // The caller's JWT at bookings, bookings' signed call at users: each request's only audit line.
    expect(
      auditsOf('bookings').map(({ eventType, userId, authMethod }) => [eventType, userId, authMethod]),
    ).toEqual([['http.request', 'e2e-admin', 'jwt']]);
    expect(
      auditsOf('users')
        .filter((event) => event.path === `/users/${userId}`)
        .map(({ eventType, userId, authMethod }) => [eventType, userId, authMethod]),
    ).toEqual([['http.request', 'bookings', 'service']]);
    const authSuccesses = output
      .emf()
      .flatMap((line) => (line.AuthSuccess === undefined ? [] : [line.service]));
    expect(authSuccesses.filter((service) => service === 'bookings')).toHaveLength(1);
    expect(authSuccesses).toContain('users');
  });

  it('generates a correlation id when the caller sends none, or an unusable one', async () => {
    const plain = await api.request('GET', '/bookings?limit=1');
    const generated = plain.headers.get('x-correlation-id') ?? '';
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await api.request('GET', '/bookings?limit=1', { headers: { 'x-correlation-id': 'a b' } });
    expect(hostile.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestEvents('bookings').map((event) => event.correlationId)).toEqual([
      generated,
      hostile.headers.get('x-correlation-id'),
    ]);
  });

  it('audits and counts a request refused by authentication, with its reason', async () => {
    const response = await api.request('GET', '/bookings', {
      token: null,
      headers: { 'x-correlation-id': 'no-token' },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('x-correlation-id')).toBe('no-token');
    const events = linesOf('bookings').flatMap((line) => (line.audit ? [line.audit] : []));
    expect(events.find((event) => event.eventType === 'auth.failure')).toMatchObject({
      outcome: 'denied',
      correlationId: 'no-token',
      path: '/bookings',
      metadata: { reason: 'missing' },
    });
    expect(events.find((event) => event.eventType === 'http.request')).toMatchObject({
      statusCode: 401,
      outcome: 'denied',
      correlationId: 'no-token',
    });
    const emf = output.emf();
    expect(emf.find((line) => line.AuthFailure !== undefined)).toMatchObject({
      service: 'bookings',
      reason: 'missing',
    });
    for (const line of emf) expect(emfProblems(line, metricCatalog, metricNamespace)).toEqual([]);
  });

  it('audits, counts and labels a request refused by the rate limiter', async () => {
    const sourceIp = randomLoopbackAddress();
    const register = () =>
      api.request('POST', '/users', {
        sourceIp,
        headers: { 'x-correlation-id': 'flood' },
        body: { email: `flood-${randomUUID()}@example.com`, name: 'Flood' },
      });
    // The register preset admits 3 per 5 minutes per IP.
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await register()).status).toBe(201);
    output.clear();
    const refused = await register();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-correlation-id')).toBe('flood');
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.headers.get('ratelimit')).toBeTruthy();
    const events = linesOf('users').flatMap((line) => (line.audit ? [line.audit] : []));
    expect(events.find((event) => event.eventType === 'rateLimit.hit')).toMatchObject({
      outcome: 'denied',
      correlationId: 'flood',
      ipAddress: sourceIp,
    });
    expect(events.find((event) => event.eventType === 'http.request')).toMatchObject({
      statusCode: 429,
      outcome: 'denied',
      ipAddress: sourceIp,
    });
    expect(output.emf().some((line) => line.RateLimited !== undefined && line.service === 'users')).toBe(
      true,
    );
  });

  it("names the route's error on the request's audit line: a second registration's 409", async () => {
    const email = `audit-${randomUUID()}@example.com`;
    const register = () => api.request('POST', '/users', { body: { email, name: 'Twice' } });
    expect((await register()).status).toBe(201);
    output.clear();
    expect((await register()).status).toBe(409);
    expect(requestEvents('users')).toEqual([
      expect.objectContaining({
        statusCode: 409,
        outcome: 'failure',
        // The users model's ConflictError for an address whose registration waits for its verification.
        metadata: expect.objectContaining({ error: { name: 'UnverifiedEmailTakenError', code: 'CONFLICT' } }),
      }),
    ]);
  });

  it("audits and counts a cancel of someone else's booking as access.denied (not_owner)", async () => {
    const userId = await registerUser();
    const booked = await api.request('POST', '/bookings', {
      token: await api.token({ sub: userId }),
      body: {
        userId,
        roomId: `room-${randomUUID()}`,
        start: at(11),
        end: at(12),
      },
    });
    const bookingId = (booked.body as { id: string }).id;
    output.clear();
    const refused = await api.request('DELETE', `/bookings/${bookingId}`, {
      token: await api.token({ sub: 'e2e-stranger' }),
    });
    // To anyone else the booking does not exist; the probe still shows in the audit trail.
    expect(refused.status).toBe(404);
    const denied = linesOf('bookings').find((line) => line.audit?.eventType === 'access.denied')?.audit;
    expect(denied).toMatchObject({
      outcome: 'denied',
      userId: 'e2e-stranger',
      metadata: { reason: 'not_owner', bookingId, path: `/bookings/${bookingId}`, httpMethod: 'DELETE' },
    });
    expect(output.emf().some((line) => line.AccessDenied !== undefined && line.service === 'bookings')).toBe(
      true,
    );
  });

  it("audits a phone number's spent SMS budget as rateLimit.hit, counting RateLimited only for a 429", async () => {
    // 415-556: a block no other test file registers, so this budget is this test's alone.
    const phone = `+1415556${String(1000 + Math.floor(Math.random() * 9000))}`;
    let userId = '';
    for (let registration = 0; registration <= smsPerNumberPolicy.limit; registration += 1) {
      output.clear();
      const response = await api.request('POST', '/users', {
        body: { email: `budget-${randomUUID()}@example.com`, name: 'Budget', phone },
      });
      expect(response.status).toBe(201);
      userId = (response.body as { id: string }).id;
    }
    const line = linesOf('users').find((candidate) => candidate.audit?.eventType === 'rateLimit.hit');
    const hit = line?.audit;
    expect(hit).toMatchObject({
      outcome: 'denied',
      metadata: { policy: 'sms-number', keyBy: 'phone', limit: smsPerNumberPolicy.limit },
    });
    expect(JSON.stringify(line)).not.toContain(phone.slice(2));
    // The registration was answered 201: it refused no request, so the 429 metric does not count it.
    const rateLimited = () =>
      output.emf().filter((emf) => emf.RateLimited !== undefined && emf.service === 'users');
    expect(rateLimited()).toEqual([]);
    output.clear();
    const refused = await api.request('POST', `/users/${userId}/phone-code`, { token: null });
    expect(refused.status).toBe(429);
    expect(rateLimited()).toHaveLength(1);
    expect(
      linesOf('users').find((candidate) => candidate.audit?.eventType === 'rateLimit.hit')?.audit,
    ).toMatchObject({
      metadata: { policy: 'sms-number', keyBy: 'phone' },
    });
  });

  it('writes the admin delete as an admin.action audit event, naming the endpoints it deleted by id', async () => {
    const userId = await registerUser();
    // Never called: no booking of this user is made.
    const url = `http://127.0.0.1:9/audited-${randomUUID()}`;
    const endpoint = await registerEndpoint(api, await api.token({ sub: userId }), url, ['booking.created']);
    output.clear();
    const response = await api.request('DELETE', `/admin/users/${userId}`);
    expect(response.status).toBe(204);
    const line = linesOf('users').find((candidate) => candidate.audit?.eventType === 'admin.action');
    expect(line?.audit).toMatchObject({
      outcome: 'success',
      userId: 'e2e-admin',
      isM2M: false,
      path: `/admin/users/${userId}`,
      method: 'DELETE',
      metadata: {
        action: 'user.deleted',
        targetUserId: userId,
        deletedEndpointCount: 1,
        deletedEndpointIds: [endpoint.id],
      },
    });
    expect(JSON.stringify(line)).not.toContain(url);
  });

  it('audits every read of users in clear, by ids: an admin list, an admin or M2M read; a service check is no read', async () => {
    const userId = await registerUser();
    const adminActions = (action: string) =>
      linesOf('users').flatMap((line) =>
        line.audit?.eventType === 'admin.action' && line.audit.metadata.action === action ? [line.audit] : [],
      );
    output.clear();
    const listed = await api.request('GET', '/admin/users?limit=100');
    expect(listed.status).toBe(200);
    const listedIds = (listed.body as { items: { id: string }[] }).items.map((user) => user.id);
    expect(adminActions('users.listed')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        userId: 'e2e-admin',
        isM2M: false,
        method: 'GET',
        path: '/admin/users',
        metadata: { action: 'users.listed', count: listedIds.length, userIds: listedIds },
      }),
    ]);

    output.clear();
    expect((await api.request('GET', `/users/${userId}`)).status).toBe(200);
    const machine = await api.token({ m2m: true, clientId: 'audited-reader', scopes: ['users/read'] });
    expect((await api.request('GET', `/users/${userId}`, { token: machine })).status).toBe(200);
    expect(adminActions('user.read')).toEqual([
      expect.objectContaining({
        userId: 'e2e-admin',
        isM2M: false,
        metadata: { action: 'user.read', targetUserId: userId },
      }),
      expect.objectContaining({
        clientId: 'audited-reader',
        isM2M: true,
        metadata: { action: 'user.read', targetUserId: userId },
      }),
    ]);

    // Booking for the user makes the bookings service ask the users service, signed, whether it exists.
    output.clear();
    const booked = await api.request('POST', '/bookings', {
      body: { userId, roomId: `room-${randomUUID()}`, start: at(11), end: at(12) },
    });
    expect(booked.status).toBe(201);
    expect(requestEvents('users')).toContainEqual(
      expect.objectContaining({ path: `/users/${userId}`, authMethod: 'service', statusCode: 200 }),
    );
    expect(adminActions('user.read')).toEqual([]);
    // A read that fails reads nothing: no line.
    expect((await api.request('GET', `/users/${randomUUID()}`)).status).toBe(404);
    expect(adminActions('user.read')).toEqual([]);
  });

  it('never audits /health, and keeps personal data and credentials out of every line', async () => {
    const health = await api.request('GET', '/health');
    expect(health.status).toBe(200);
    // Only the health function's lines: the workers may still be auditing emails from earlier tests.
    expect(linesOf('health').filter((line) => line.audit)).toEqual([]);
    const email = `private-${randomUUID()}@example.com`;
    const token = await api.token({ sub: 'e2e-admin', roles: ['admin'] });
    await api.request('POST', '/users', { token, body: { email, name: 'Private' } });
    await api.request('POST', '/users', { token, body: { email, name: 'Private again' } });
    const text = output.lines().join('\n');
    expect(output.audit().length).toBeGreaterThanOrEqual(2);
    expect(text).not.toContain(email);
    expect(text).not.toContain(token);
  });
});
