// A disabled endpoint is enabled again by its owner, or an admin of its tenant, without losing its id:
// its subscriptions reach fan-out again, and its failure streak starts afresh.
import { randomUUID } from 'node:crypto';
import { DeleteCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DisabledReason, WebhookStore } from '../../functions/shared/webhook-store.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deliverMessages,
  expectEndpointNotFound,
  type Receiver,
  registerEndpoint,
  registeringWebhookStore,
  startReceiver,
  storedEndpointItem,
} from './helpers.js';

// Audit lines are INFO, which the suite otherwise silences; read when the runtime loads the functions.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();
let documents: ReturnType<typeof createDocumentClient>;
let store: WebhookStore;
let subscriptions: WebhookSubscriptions;
let target: Receiver;

beforeAll(async () => {
  documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
  store = registeringWebhookStore(documents);
  subscriptions = new WebhookSubscriptions({ documentClient: documents, tableName: testTableNames.toolkit });
  target = await startReceiver();
  return () => target.close();
});

const hourMs = 3_600_000;

const storedEndpoint = (endpointId: string) => storedEndpointItem(documents, endpointId);

/** The statuses of the endpoint's subscription items, one per event type. */
async function subscriptionStatuses(ownerId: string, endpointId: string): Promise<unknown[]> {
  const statuses: unknown[] = [];
  for (const eventType of ['booking.created', 'booking.cancelled']) {
    const { Items } = await documents.send(
      new QueryCommand({
        TableName: testTableNames.toolkit,
        KeyConditionExpression: 'pk = :pk AND sk = :sk',
        ExpressionAttributeValues: {
          ':pk': `WH#SUB#default#${eventType}`,
          ':sk': `USER#${ownerId}#${endpointId}`,
        },
        ConsistentRead: true,
      }),
    );
    statuses.push(...(Items ?? []).map((item) => item.status));
  }
  return statuses;
}

/**
 * A user's endpoint disabled as the worker disables one: `failing` after five deliveries failed for
 * good, the first two days ago; `gone` after a 410.
 */
async function disabledEndpoint(reason: DisabledReason) {
  const ownerId = `wh-enable-${randomUUID()}`;
  const token = await api.token({ sub: ownerId });
  const registered = await registerEndpoint(api, token, target.url);
  if (reason === 'failing') {
    for (let failure = 0; failure < 5; failure += 1) {
      await store.noteFailedDelivery(
        registered.id,
        `msg_failed${failure}`,
        new Date(Date.now() - 48 * hourMs),
      );
    }
  }
  const endpoint = await store.getEndpoint(registered.id);
  if (!endpoint) throw new Error('endpoint not stored');
  const cause = reason === 'failing' ? { reason, webhookId: 'msg_failed4' } : { reason };
  expect(await store.disableEndpoint(endpoint, cause)).toBe(true);
  return { ownerId, token, endpoint: registered };
}

/**
 * Whether fan-out of the owner's booking.created finds the endpoint. The table is shared with other test
 * files, whose admin and M2M endpoints receive every event of the tenant: only this endpoint is looked at.
 */
const fannedOutTo = async (ownerId: string, endpointId: string) =>
  (await subscriptions.findSubscribers('default', 'booking.created', ownerId)).filter(
    (id) => id === endpointId,
  );

const enabledLines = (): AuditEvent[] =>
  output.audit().filter((event) => event.eventType === 'webhook.endpoint_enabled');

describe('POST /webhooks/{id}/enable', () => {
  it.each<[DisabledReason]>([['failing'], ['gone']])(
    'enables an endpoint disabled as %s with its subscriptions, answers its view, and audits it',
    async (reason) => {
      const { ownerId, token, endpoint } = await disabledEndpoint(reason);
      expect(await fannedOutTo(ownerId, endpoint.id)).toEqual([]);
      const response = await api.request('POST', `/webhooks/${endpoint.id}/enable`, { token });
      expect(response.status).toBe(200);
      const { secret: _secret, ...registered } = endpoint;
      expect(response.body).toEqual(registered);
      expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token })).body).toEqual(registered);
      expect(await subscriptionStatuses(ownerId, endpoint.id)).toEqual(['enabled', 'enabled']);
      expect(await fannedOutTo(ownerId, endpoint.id)).toEqual([endpoint.id]);
      expect(enabledLines()).toEqual([
        expect.objectContaining({
          outcome: 'success',
          metadata: { endpointId: endpoint.id, ownerKind: 'user', disabledReason: reason },
        }),
      ]);
      // The worker delivers to it again.
      await deliverMessages(api, endpoint.id, token, 1);
    },
  );

  it('ends the failure streak, so its next delivery that fails for good starts a new one', async () => {
    const { token, endpoint } = await disabledEndpoint('failing');
    expect((await api.request('POST', `/webhooks/${endpoint.id}/enable`, { token })).status).toBe(200);
    const item = await storedEndpoint(endpoint.id);
    for (const bookkeeping of [
      'failedDeliveries',
      'failingSince',
      'failedWebhookIds',
      'disabledReason',
      'disabledAt',
      // The owner alert of a disable whose invocation was cut off: the owner has acted since.
      'ownerAlertPending',
    ]) {
      expect(item).not.toHaveProperty(bookkeeping);
    }
    const now = new Date();
    // Counted as the first of a new streak: the worker's rule (5 failures, or 24 hours) is far from it.
    expect(await store.noteFailedDelivery(endpoint.id, 'msg_after', now)).toEqual({
      failedDeliveries: 1,
      failingSince: now.toISOString(),
    });
  });

  it('wins over a disable for failing the worker decided before it: the streak it ended no longer counts', async () => {
    const ownerId = `wh-enable-${randomUUID()}`;
    const token = await api.token({ sub: ownerId });
    const registered = await registerEndpoint(api, token, target.url);
    // The worker read the endpoint while it was enabled; another delivery's 410 then disabled it.
    const workerRead = await store.getEndpoint(registered.id);
    if (!workerRead) throw new Error('endpoint not stored');
    expect(await store.disableEndpoint(workerRead, { reason: 'gone' })).toBe(true);
    // The worker's delivery failed for good as the fifth of a streak: the rule is met ...
    for (let failure = 0; failure < 5; failure += 1) {
      await store.noteFailedDelivery(registered.id, `msg_streak${failure}`);
    }
    // ... the owner enables the endpoint, and the worker's disable lands after.
    expect((await api.request('POST', `/webhooks/${registered.id}/enable`, { token })).status).toBe(200);
    const item = await storedEndpoint(registered.id);
    expect(await store.disableEndpoint(workerRead, { reason: 'failing', webhookId: 'msg_streak4' })).toBe(
      false,
    );
    expect(await storedEndpoint(registered.id)).toEqual(item);
    expect(item?.status).toBe('enabled');
    expect(await subscriptionStatuses(ownerId, registered.id)).toEqual(['enabled', 'enabled']);
    // A 410 after the enable still disables it.
    expect(await store.disableEndpoint(workerRead, { reason: 'gone' })).toBe(true);
  });

  it('answers an enabled endpoint 200 with its view, and changes and audits nothing', async () => {
    const ownerId = `wh-enable-${randomUUID()}`;
    const token = await api.token({ sub: ownerId });
    const { secret: _secret, ...registered } = await registerEndpoint(api, token, target.url);
    const before = await storedEndpoint(registered.id);
    const response = await api.request('POST', `/webhooks/${registered.id}/enable`, { token });
    expect(response.status).toBe(200);
    expect(response.body).toEqual(registered);
    expect(await storedEndpoint(registered.id)).toEqual(before);
    expect(enabledLines()).toEqual([]);
  });

  it("answers 404 problem+json for an unknown id, another owner's endpoint and a deleted one, and changes nothing", async () => {
    const { token, endpoint } = await disabledEndpoint('gone');
    const stranger = await api.token({ sub: `wh-stranger-${randomUUID()}` });
    const admin = await api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });
    const before = await storedEndpoint(endpoint.id);
    for (const caller of [stranger, admin]) {
      expectEndpointNotFound(
        await api.request('POST', `/webhooks/${endpoint.id}/enable`, { token: caller }),
        endpoint.id,
      );
    }
    expect(await storedEndpoint(endpoint.id)).toEqual(before);
    const unknown = await api.request('POST', `/webhooks/ep_${'A'.repeat(24)}/enable`, { token });
    expect(unknown.body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token })).status).toBe(204);
    const deleted = await api.request('POST', `/webhooks/${endpoint.id}/enable`, { token });
    expect(deleted.body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(enabledLines()).toEqual([]);
  });

  it('racing another enable: the one that loses answers the endpoint as enabled, unchanged', async () => {
    const { endpoint } = await disabledEndpoint('gone');
    const read = await store.getEndpoint(endpoint.id);
    if (!read) throw new Error('endpoint not stored');
    expect((await store.enableEndpoint(read)).enabled).toBe(true);
    const item = await storedEndpoint(endpoint.id);
    const late = await store.enableEndpoint(read);
    expect(late.enabled).toBe(false);
    expect(late.endpoint.status).toBe('enabled');
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
  });

  it('makes again a subscription item lost by hand, so the endpoint is enabled for all its event types', async () => {
    const { ownerId, token, endpoint } = await disabledEndpoint('gone');
    await documents.send(
      new DeleteCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: 'WH#SUB#default#booking.cancelled', sk: `USER#${ownerId}#${endpoint.id}` },
      }),
    );
    expect((await api.request('POST', `/webhooks/${endpoint.id}/enable`, { token })).status).toBe(200);
    expect(await subscriptionStatuses(ownerId, endpoint.id)).toEqual(['enabled', 'enabled']);
  });

  it('refuses an enable read before the endpoint was deleted (404), leaving no subscription behind', async () => {
    const { ownerId, token, endpoint } = await disabledEndpoint('gone');
    const read = await store.getEndpoint(endpoint.id);
    if (!read) throw new Error('endpoint not stored');
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token })).status).toBe(204);
    await expect(store.enableEndpoint(read)).rejects.toThrow(`Webhook endpoint ${endpoint.id} not found`);
    expect(await subscriptionStatuses(ownerId, endpoint.id)).toEqual([]);
    expect(await storedEndpoint(endpoint.id)).toBeUndefined();
  });
});

describe('POST /admin/webhooks/{id}/enable', () => {
  it("enables another owner's endpoint for an admin of the tenant, audited by ids", async () => {
    const { ownerId, endpoint } = await disabledEndpoint('failing');
    const admin = await api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });
    const response = await api.request('POST', `/admin/webhooks/${endpoint.id}/enable`, { token: admin });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id: endpoint.id, ownerId, status: 'enabled' });
    expect(response.body).not.toHaveProperty('disabledReason');
    expect(await subscriptionStatuses(ownerId, endpoint.id)).toEqual(['enabled', 'enabled']);
    expect(
      output
        .audit()
        .filter(
          (event) =>
            event.eventType === 'admin.action' && event.metadata?.action === 'webhook.endpoint_enabled',
        ),
    ).toEqual([
      expect.objectContaining({
        metadata: expect.objectContaining({ endpointId: endpoint.id, ownerId, ownerKind: 'user' }),
      }),
    ]);
  });

  it('refuses a user who is no admin (403), and its owner too, changing nothing', async () => {
    const { token, endpoint } = await disabledEndpoint('gone');
    const before = await storedEndpoint(endpoint.id);
    for (const caller of [token, await api.token({ sub: `wh-user-${randomUUID()}` })]) {
      const refused = await api.request('POST', `/admin/webhooks/${endpoint.id}/enable`, { token: caller });
      expect(refused.status).toBe(403);
    }
    expect(await storedEndpoint(endpoint.id)).toEqual(before);
  });
});
