// An administrator reads any owner's endpoint and its delivery history (on-call, after the DLQ alarm),
// audited; nobody else does.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { deliverMessages, type RegisteredEndpoint, registerEndpoint, startReceiver } from './helpers.js';

// Audit lines are INFO, which the suite otherwise silences; read when the runtime loads the functions.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();

interface ProblemBody {
  status: number;
  code: string;
  detail: string;
  errors?: { field: string; message: string }[];
}

interface DeliveryPage {
  items: { webhookId: string }[];
  nextCursor?: string;
}

const adminActions = (action: string): AuditEvent[] =>
  output.audit().filter((event) => event.eventType === 'admin.action' && event.metadata?.action === action);

async function ownerWithEndpoint(url: string): Promise<{
  ownerId: string;
  ownerToken: string;
  endpoint: RegisteredEndpoint;
}> {
  const ownerId = `wh-owner-${randomUUID()}`;
  const ownerToken = await api.token({ sub: ownerId });
  return { ownerId, ownerToken, endpoint: await registerEndpoint(api, ownerToken, url) };
}

const adminToken = () => api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });

describe('GET /admin/webhooks/{id}', () => {
  it("shows an admin another owner's endpoint as its owner sees it, with its owner, never its secret; audited by ids", async () => {
    // Never called: no event is published to it.
    const url = `http://127.0.0.1:9/admin-read-${randomUUID()}`;
    const { ownerId, ownerToken, endpoint } = await ownerWithEndpoint(url);
    const admin = await adminToken();
    // What on-call had before: the owner's route hides the endpoint from an admin.
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: admin })).status).toBe(404);
    const asOwner = await api.request('GET', `/webhooks/${endpoint.id}`, { token: ownerToken });
    output.clear();
    const response = await api.request('GET', `/admin/webhooks/${endpoint.id}`, { token: admin });
    expect(response.status).toBe(200);
    expect(response.body).toEqual(asOwner.body);
    expect(response.body).toMatchObject({ id: endpoint.id, ownerId, ownerKind: 'user', url });
    expect(response.body).not.toHaveProperty('secret');
    expect(response.text).not.toContain(endpoint.secret.slice('whsec_'.length));
    const [line, ...more] = adminActions('webhook.endpoint_read');
    expect(more).toEqual([]);
    expect(line).toMatchObject({
      outcome: 'success',
      isM2M: false,
      method: 'GET',
      path: `/admin/webhooks/${endpoint.id}`,
      metadata: { action: 'webhook.endpoint_read', endpointId: endpoint.id, ownerId, ownerKind: 'user' },
    });
    expect(JSON.stringify(line)).not.toContain(url);
    const head = await api.request('HEAD', `/admin/webhooks/${endpoint.id}`, { token: admin });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });
});

describe('GET /admin/webhooks/{id} of an integration', () => {
  it("shows a machine's endpoint named by its client id and kind integration", async () => {
    const clientId = `svc-${randomUUID()}`;
    const machine = await api.token({ m2m: true, clientId, scopes: ['webhooks/write', 'bookings/read'] });
    const endpoint = await registerEndpoint(api, machine, `http://127.0.0.1:9/${randomUUID()}`);
    try {
      const response = await api.request('GET', `/admin/webhooks/${endpoint.id}`, {
        token: await adminToken(),
      });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ id: endpoint.id, ownerId: clientId, ownerKind: 'integration' });
      expect(response.body).not.toHaveProperty('secret');
    } finally {
      // An integration's endpoint receives every booking event of the tenant, which other files' runtimes
      // share: left at this dead URL, their webhook queues would never drain.
      await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: machine });
    }
  });
});

describe('GET /admin/webhooks/{id}/deliveries', () => {
  it("pages another owner's delivery history for an admin by the owner route's cursor and limit rules; audited by ids", async () => {
    const receiver = await startReceiver();
    try {
      const { ownerId, ownerToken, endpoint } = await ownerWithEndpoint(receiver.url);
      const other = await registerEndpoint(api, ownerToken, receiver.url);
      const ids = await deliverMessages(api, endpoint.id, ownerToken, 3);
      const admin = await adminToken();
      const read = (path: string) => api.request('GET', path, { token: admin });
      // What on-call had before: the owner's route hides the history from an admin.
      expect((await read(`/webhooks/${endpoint.id}/deliveries`)).status).toBe(404);
      output.clear();
      const first = await read(`/admin/webhooks/${endpoint.id}/deliveries?limit=2`);
      expect(first.status).toBe(200);
      const page = first.body as DeliveryPage;
      expect(page.items.map((item) => item.webhookId)).toEqual([ids[2], ids[1]]);
      expect(page.nextCursor).toEqual(expect.any(String));
      const asOwner = await api.request('GET', `/webhooks/${endpoint.id}/deliveries?limit=2`, {
        token: ownerToken,
      });
      expect(first.body).toEqual(asOwner.body);
      const second = await read(
        `/admin/webhooks/${endpoint.id}/deliveries?limit=2&cursor=${page.nextCursor}`,
      );
      expect((second.body as DeliveryPage).items.map((item) => item.webhookId)).toEqual([ids[0]]);
      expect(adminActions('webhook.deliveries_read')).toEqual([
        expect.objectContaining({
          outcome: 'success',
          isM2M: false,
          method: 'GET',
          path: `/admin/webhooks/${endpoint.id}/deliveries`,
          metadata: {
            action: 'webhook.deliveries_read',
            endpointId: endpoint.id,
            ownerId,
            ownerKind: 'user',
          },
        }),
        expect.objectContaining({ metadata: expect.objectContaining({ endpointId: endpoint.id }) }),
      ]);
      output.clear();
      // The owner route's rules: a cursor continues only its own endpoint's list, limit is 1 to 100.
      const foreign = await read(`/admin/webhooks/${other.id}/deliveries?limit=2&cursor=${page.nextCursor}`);
      expect(foreign.status).toBe(400);
      expect((foreign.body as ProblemBody).errors?.[0]?.field).toBe('query.cursor');
      const tooMany = await read(`/admin/webhooks/${endpoint.id}/deliveries?limit=101`);
      expect(tooMany.status).toBe(400);
      expect((tooMany.body as ProblemBody).errors?.[0]?.field).toBe('query.limit');
      // Refused requests read nothing, so no admin.action line says they did.
      expect(adminActions('webhook.deliveries_read')).toEqual([]);
    } finally {
      await receiver.close();
    }
  });
});

describe('the admin webhook reads refuse', () => {
  const paths = (endpointId: string) => [
    `/admin/webhooks/${endpointId}`,
    `/admin/webhooks/${endpointId}/deliveries`,
  ];

  it('everyone but a human admin of the tenant (403, as DELETE /admin/webhooks/{id} does), and audit no read', async () => {
    const { ownerToken, endpoint } = await ownerWithEndpoint(`http://127.0.0.1:9/${randomUUID()}`);
    const stranger = await api.token({ sub: `wh-stranger-${randomUUID()}` });
    const machine = await api.token({ m2m: true, scopes: ['webhooks/read', 'webhooks/write'] });
    const otherTenantAdmin = await api.token({
      sub: `wh-admin-${randomUUID()}`,
      roles: ['admin'],
      tenant: 't2',
    });
    output.clear();
    for (const path of paths(endpoint.id)) {
      for (const token of [ownerToken, stranger]) {
        const refused = await api.request('GET', path, { token });
        expect(refused.status).toBe(403);
        expect(refused.body).toMatchObject({ code: 'FORBIDDEN', detail: 'Requires role admin' });
      }
      const byMachine = await api.request('GET', path, { token: machine });
      expect(byMachine.status).toBe(403);
      expect(byMachine.body).toMatchObject({
        code: 'FORBIDDEN',
        detail: 'This endpoint requires a human user',
      });
      const byOtherTenant = await api.request('GET', path, { token: otherTenantAdmin });
      expect(byOtherTenant.status).toBe(403);
      expect(byOtherTenant.body).toMatchObject({
        code: 'FORBIDDEN',
        detail: 'This tenant has no access here',
      });
      expect((await api.request('GET', path, { token: null })).status).toBe(401);
    }
    expect(output.audit().filter((event) => event.eventType === 'admin.action')).toEqual([]);
  });

  it('an unknown id and a deleted endpoint with 404 naming it, even while its history is kept; audit no read', async () => {
    const receiver = await startReceiver();
    try {
      const { ownerToken, endpoint } = await ownerWithEndpoint(receiver.url);
      await deliverMessages(api, endpoint.id, ownerToken, 1);
      expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: ownerToken })).status).toBe(
        204,
      );
      const admin = await adminToken();
      output.clear();
      for (const endpointId of ['ep_nothing', endpoint.id]) {
        for (const path of paths(endpointId)) {
          const missing = await api.request('GET', path, { token: admin });
          expect(missing.status).toBe(404);
          expect(missing.body).toMatchObject({
            code: 'NOT_FOUND',
            detail: `Webhook endpoint ${endpointId} not found`,
          });
        }
      }
      expect(output.audit().filter((event) => event.eventType === 'admin.action')).toEqual([]);
    } finally {
      await receiver.close();
    }
  });
});
