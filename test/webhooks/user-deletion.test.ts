// Deleting a user (DELETE /admin/users/{id}) deletes the webhook endpoints that user registered, with
// their subscriptions and the owner's count, through the local runtime: nothing of them is left to
// receive events, and nobody else's endpoints are touched.
import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { until } from '../email-worker/helpers.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { type Receiver, registerEndpoint, startReceiver } from './helpers.js';

// A toolkit table of its own: the integration endpoint below receives every booking.cancelled of the
// tenant, and must not receive other files' events (nor their receivers this file's).
const api = useLocalRuntime({ as: adminUser, ownToolkitTable: true, webhookRetryBaseDelaySec: 1 });
let documents: ReturnType<typeof createDocumentClient>;
let store: WebhookStore;
const receivers: Receiver[] = [];

beforeAll(() => {
  const { dynamoDbEndpoint, tableNames } = api.runtime();
  documents = createDocumentClient(createDynamoDbClient({ endpoint: dynamoDbEndpoint }));
  store = new WebhookStore({ documentClient: documents, tableName: tableNames.toolkit });
});

afterAll(async () => {
  await Promise.all(receivers.map((started) => started.close()));
});

async function receiver(): Promise<Receiver> {
  const started = await startReceiver();
  receivers.push(started);
  return started;
}

/** A registered user and a token acting as that user. */
async function registeredUser(): Promise<{ userId: string; token: string }> {
  const email = `deleted-hooks-${randomUUID()}@example.com`;
  const created = await api.request('POST', '/users', { body: { email, name: 'Hook Owner' } });
  expect(created.status).toBe(201);
  const userId = (created.body as { id: string }).id;
  return { userId, token: await api.token({ sub: userId }) };
}

/** Every webhook item that names the owner: its endpoints, its subscriptions and its count. */
async function webhookItemsOf(ownerId: string): Promise<Record<string, unknown>[]> {
  const { Items } = await documents.send(
    new ScanCommand({
      TableName: api.runtime().tableNames.toolkit,
      FilterExpression: 'ownerId = :owner OR begins_with(sk, :subscription) OR pk = :count',
      ExpressionAttributeValues: {
        ':owner': ownerId,
        ':subscription': `USER#${ownerId}#`,
        ':count': `WH#OWNER#default#${ownerId}`,
      },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

/** Every toolkit item of one endpoint: the endpoint, its subscriptions and its deliveries. */
async function itemsOfEndpoint(endpointId: string): Promise<Record<string, unknown>[]> {
  const { Items } = await documents.send(
    new ScanCommand({
      TableName: api.runtime().tableNames.toolkit,
      FilterExpression: 'pk = :pk OR endpointId = :id',
      ExpressionAttributeValues: { ':pk': `WH#${endpointId}`, ':id': endpointId },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

const countKey = (ownerId: string) => ({ pk: `WH#OWNER#default#${ownerId}`, sk: 'ENDPOINT_COUNT' });

describe('deleting a user with webhook endpoints', () => {
  it("deletes the user's endpoints, subscriptions and count, and their events stop; others' stay", async () => {
    const alice = await registeredUser();
    const bob = await registeredUser();
    const aliceTarget = await receiver();
    const bobTarget = await receiver();
    const tenantTarget = await receiver();
    const severalEvents = await registerEndpoint(api, alice.token, aliceTarget.url, [
      'booking.created',
      'booking.cancelled',
      'user.registered',
    ]);
    const oneEvent = await registerEndpoint(api, alice.token, aliceTarget.url, ['booking.cancelled']);
    const bobHook = await registerEndpoint(api, bob.token, bobTarget.url, ['booking.cancelled']);
    // A machine whose client id is Alice's user id shares her owner index and count, but is not her.
    const machine = await api.token({
      m2m: true,
      clientId: alice.userId,
      scopes: ['webhooks/write', 'bookings/read'],
    });
    const machineHook = await registerEndpoint(api, machine, tenantTarget.url, ['booking.cancelled']);
    expect(await store.getEndpoint(machineHook.id)).toMatchObject({
      ownerId: alice.userId,
      ownerKind: 'integration',
    });

    // Before the delete, Alice's endpoints receive her booking's events.
    const booked = await api.request('POST', '/bookings', {
      body: {
        roomId: `deleted-hooks-room-${randomUUID()}`,
        userId: alice.userId,
        start: '2032-03-01T09:00:00.000Z',
        end: '2032-03-01T09:30:00.000Z',
      },
    });
    expect(booked.status).toBe(201);
    const bookingId = (booked.body as { id: string }).id;
    await until(() => (aliceTarget.received.length > 0 ? aliceTarget.received : undefined));

    const removal = await api.request('DELETE', `/admin/users/${alice.userId}`);
    expect(removal.status).toBe(204);

    // Nothing of Alice's endpoints is left but the machine's (whose subscription is tenant-wide).
    const left = await webhookItemsOf(alice.userId);
    expect(left).toHaveLength(2);
    expect(left).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ...countKey(alice.userId), count: 1 }),
        expect.objectContaining({ pk: `WH#${machineHook.id}`, sk: 'ENDPOINT', ownerKind: 'integration' }),
      ]),
    );
    for (const endpoint of [severalEvents, oneEvent]) {
      // Only the delivery history is left, which expires with its TTL.
      const left = await itemsOfEndpoint(endpoint.id);
      expect(left.every((item) => String(item.sk).startsWith('DELIVERY#') && item.expiresAt)).toBe(true);
      expect(await store.getEndpoint(endpoint.id)).toBeUndefined();
    }
    // Bob's endpoint, its subscription and his count are untouched.
    expect(await store.getEndpoint(bobHook.id)).toMatchObject({ ownerId: bob.userId, status: 'enabled' });
    expect(await webhookItemsOf(bob.userId)).toHaveLength(3);
    const subscribers = await store.findSubscribers('default', 'booking.cancelled', alice.userId);
    expect(subscribers).toEqual([machineHook.id]);

    // An event about Alice's booking still fans out, to the tenant-wide endpoint only.
    const receivedBefore = aliceTarget.received.length;
    const cancelled = await api.request('DELETE', `/bookings/${bookingId}`);
    expect(cancelled.status).toBe(200);
    const [tenantWebhook] = await until(() =>
      tenantTarget.received.length > 0 ? tenantTarget.received : undefined,
    );
    expect(JSON.parse(tenantWebhook?.body ?? '{}')).toMatchObject({
      type: 'booking.cancelled',
      data: { id: bookingId, userId: alice.userId },
    });
    // The tenant-wide delivery was enqueued in the same batch as any of Alice's would have been.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(aliceTarget.received).toHaveLength(receivedBefore);
    expect(bobTarget.received).toHaveLength(0);

    // Deleting again answers 404, as before.
    expect((await api.request('DELETE', `/admin/users/${alice.userId}`)).status).toBe(404);
  });

  it('deletes a user without endpoints as before', async () => {
    const carol = await registeredUser();
    expect((await api.request('DELETE', `/admin/users/${carol.userId}`)).status).toBe(204);
    expect((await api.request('GET', `/users/${carol.userId}`)).status).toBe(404);
    expect((await api.request('DELETE', `/admin/users/${carol.userId}`)).status).toBe(404);
  });

  it('answers 404 for an unknown user and touches no endpoint of that id', async () => {
    const stranger = `never-registered-${randomUUID()}`;
    const target = await receiver();
    const hook = await registerEndpoint(api, await api.token({ sub: stranger }), target.url, [
      'booking.created',
    ]);
    expect((await api.request('DELETE', `/admin/users/${stranger}`)).status).toBe(404);
    expect(await store.getEndpoint(hook.id)).toMatchObject({ ownerId: stranger });
  });

  it('keeps the user (409, retry) while the count holds an endpoint the owner index does not show yet', async () => {
    const dave = await registeredUser();
    const target = await receiver();
    const hook = await registerEndpoint(api, dave.token, target.url, ['booking.created']);
    const tableName = api.runtime().tableNames.toolkit;
    // An endpoint registered a moment ago: counted (strongly consistent), not yet in the index.
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { ...countKey(dave.userId), count: 2 } }),
    );
    const refused = await api.request('DELETE', `/admin/users/${dave.userId}`);
    expect(refused.status).toBe(409);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    // The user stays, so the admin can retry; the endpoint seen is already gone.
    expect((await api.request('GET', `/users/${dave.userId}`)).status).toBe(200);
    expect(await store.getEndpoint(hook.id)).toBeUndefined();
    expect(
      (await documents.send(new GetCommand({ TableName: tableName, Key: countKey(dave.userId) }))).Item,
    ).toMatchObject({ count: 1 });

    // Once the index shows it (here: the stray count is gone), the retry completes.
    await documents.send(new DeleteCommand({ TableName: tableName, Key: countKey(dave.userId) }));
    expect((await api.request('DELETE', `/admin/users/${dave.userId}`)).status).toBe(204);
    expect((await api.request('GET', `/users/${dave.userId}`)).status).toBe(404);
    expect(await webhookItemsOf(dave.userId)).toEqual([]);
  });
});
