// Refusals the webhooks handler decides itself, not the route table: each is an access.denied line (audited,
// counted in AccessDenied) as the table's are, while the client's answer stays what it was: a URL the SSRF
// guard refuses (400 on body.url), another owner's endpoint (the 404 of one that does not exist), and a client
// subscribing to events its scopes cannot read (403).
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { captureStdout } from '../helpers/log-capture.js';
import { type ApiResponse, useLocalRuntime } from '../helpers/runtime.js';
import { registerEndpoint } from './helpers.js';

// Before any function module loads: their loggers read it at cold start, and audit lines are INFO.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();

/** `method path` as `token`, with the audit lines of that request. */
async function traced(
  method: string,
  path: string,
  options: { token: string; body?: unknown },
): Promise<{ response: ApiResponse; audit: AuditEvent[] }> {
  const correlationId = randomUUID();
  const response = await api.request(method, path, {
    ...options,
    headers: { 'x-correlation-id': correlationId },
  });
  return { response, audit: output.audit().filter((event) => event.correlationId === correlationId) };
}

const accessDenied = (audit: AuditEvent[]) => audit.filter((event) => event.eventType === 'access.denied');

describe('a URL the SSRF guard refuses at registration', () => {
  it.each([
    [
      'a cloud metadata address',
      'http://169.254.169.254/latest/meta-data/',
      'cloud_metadata',
      '169.254.169.254',
    ],
    ['a private address', 'https://10.1.2.3/hooks/in?token=abc', 'private', '10.1.2.3'],
  ])(
    'is an access.denied line naming %s by its host, with the same 400',
    async (_case, url, reason, host) => {
      const token = await api.token({ sub: `ssrf-${randomUUID()}` });
      const { response, audit } = await traced('POST', '/webhooks', {
        token,
        body: { url, eventTypes: ['booking.created'] },
      });
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', detail: 'Invalid request: body.url' });
      expect(accessDenied(audit)).toEqual([
        expect.objectContaining({
          outcome: 'denied',
          metadata: { guard: 'ssrf', path: '/webhooks', httpMethod: 'POST', host, address: host, reason },
        }),
      ]);
      // The host only: a URL's path and query may carry a receiver's token.
      expect(JSON.stringify(audit)).not.toContain(new URL(url).pathname);
    },
  );
});

describe("another owner's endpoint", () => {
  it.each([
    ['GET', ''],
    ['POST', '/secret'],
    ['POST', '/enable'],
    ['GET', '/deliveries'],
    ['DELETE', ''],
  ])(
    '%s /webhooks/{id}%s answers the 404 of a missing endpoint and is an access.denied line',
    async (method, suffix) => {
      const owner = await api.token({ sub: `owner-${randomUUID()}` });
      const endpoint = await registerEndpoint(api, owner, 'http://127.0.0.1:9/hook');
      const intruderId = `intruder-${randomUUID()}`;
      const intruder = await api.token({ sub: intruderId });

      const { response, audit } = await traced(method, `/webhooks/${endpoint.id}${suffix}`, {
        token: intruder,
      });
      const missingId = `ep_${'A'.repeat(24)}`;
      const missing = await traced(method, `/webhooks/${missingId}${suffix}`, { token: intruder });
      expect(response.status).toBe(404);
      expect(missing.response.status).toBe(404);
      // Nothing tells the two apart but the id each names (and each request's own id).
      const { requestId: _request, ...refused } = JSON.parse(response.text.replaceAll(endpoint.id, '<id>'));
      const { requestId: _missing, ...absent } = JSON.parse(
        missing.response.text.replaceAll(missingId, '<id>'),
      );
      expect(refused).toEqual(absent);
      expect(accessDenied(audit)).toEqual([
        expect.objectContaining({
          outcome: 'denied',
          userId: intruderId,
          metadata: {
            path: `/webhooks/${endpoint.id}${suffix}`,
            httpMethod: method,
            endpointId: endpoint.id,
            reason: 'not_owner',
          },
        }),
      ]);
      // An endpoint that does not exist is no one's: a typo, not a reach for someone else's.
      expect(accessDenied(missing.audit)).toEqual([]);
      expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: owner })).status).toBe(200);
    },
  );

  it("is an access.denied line for a client of the tenant deleting a person's endpoint", async () => {
    const owner = await api.token({ sub: `owner-${randomUUID()}` });
    const endpoint = await registerEndpoint(api, owner, 'http://127.0.0.1:9/hook');
    const client = await api.token({
      m2m: true,
      clientId: `client-${randomUUID()}`,
      scopes: ['webhooks/write'],
    });
    const { response, audit } = await traced('DELETE', `/webhooks/${endpoint.id}`, { token: client });
    expect(response.status).toBe(404);
    expect(accessDenied(audit)).toEqual([
      expect.objectContaining({
        isM2M: true,
        metadata: expect.objectContaining({ endpointId: endpoint.id, reason: 'not_owner' }),
      }),
    ]);
  });
});

it('is an access.denied line when a client subscribes to events its scopes cannot read (403)', async () => {
  const clientId = `client-${randomUUID()}`;
  const client = await api.token({ m2m: true, clientId, scopes: ['webhooks/write'] });
  const { response, audit } = await traced('POST', '/webhooks', {
    token: client,
    body: { url: 'http://127.0.0.1:9/hook', eventTypes: ['booking.created', 'user.registered'] },
  });
  expect(response.status).toBe(403);
  expect(accessDenied(audit)).toEqual([
    expect.objectContaining({
      outcome: 'denied',
      clientId,
      metadata: {
        path: '/webhooks',
        httpMethod: 'POST',
        missingScopes: ['bookings/read', 'users/read'],
        reason: 'insufficient_scope',
      },
    }),
  ]);
});
