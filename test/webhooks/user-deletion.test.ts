// Deleting a user (DELETE /admin/users/{id}) closes the user as a webhook owner and deletes the endpoints
// that user registered, with their subscriptions and their share of the owner's count, through the local
// runtime: nothing of them is left to receive events, the user's still valid token registers no more
// (not even racing the delete), and nobody else's endpoints are touched.
import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { drained, until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { expectOnlyTombstone, type Receiver, registerEndpoint, startReceiver } from './helpers.js';

const at = bookingDay(23);

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

/** Every webhook item that names the owner: its endpoints, its subscriptions and its counts. */
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
/** The count item of an M2M client, apart from the person's of the same id. */
const machineCountKey = (clientId: string) => ({
  pk: `WH#OWNER#default#${clientId}`,
  sk: 'INTEGRATION_ENDPOINT_COUNT',
});

/** A registration with the user's token, answered as it is (not required to succeed). */
function register(token: string, url = 'http://127.0.0.1:9/hook') {
  return api.request('POST', '/webhooks', { token, body: { url, eventTypes: ['booking.created'] } });
}

/** The refusal of a registration by a deleted user: 403 problem+json, before anything is stored. */
function expectOwnerClosed(response: Awaited<ReturnType<typeof register>>) {
  expect(response.status).toBe(403);
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  expect(response.body).toMatchObject({
    code: 'FORBIDDEN',
    detail: 'This owner can no longer register webhook endpoints',
  });
}

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
    // A machine whose client id is Alice's user id shares her owner index, but is not her: it has a count
    // of its own, which deleting her neither closes nor touches.
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
        start: at(9),
        end: at(9, 30),
      },
    });
    expect(booked.status).toBe(201);
    const bookingId = (booked.body as { id: string }).id;
    await until(() => (aliceTarget.received.length > 0 ? aliceTarget.received : undefined));

    const deleting = Date.now();
    const removal = await api.request('DELETE', `/admin/users/${alice.userId}`);
    expect(removal.status).toBe(204);

    // Nothing of Alice's endpoints is left but her count item, at 0 and holding the marker that closes her;
    // the machine's endpoint (whose subscription is tenant-wide) and its count stay, the count open.
    const left = await webhookItemsOf(alice.userId);
    expect(left).toHaveLength(3);
    expect(left).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ...countKey(alice.userId), count: 0, closedAt: expect.any(String) }),
        { ...machineCountKey(alice.userId), count: 1 },
        expect.objectContaining({ pk: `WH#${machineHook.id}`, sk: 'ENDPOINT', ownerKind: 'integration' }),
      ]),
    );
    for (const endpoint of [severalEvents, oneEvent]) {
      // Only the delivery history is left, which expires with its TTL, and the tombstone that retires the id.
      const left = await itemsOfEndpoint(endpoint.id);
      expect(left.every((item) => item.expiresAt)).toBe(true);
      expectOnlyTombstone(left, endpoint.id, deleting);
      expect(await store.getEndpoint(endpoint.id)).toBeUndefined();
    }
    // Bob's endpoint, its subscription and his count are untouched.
    expect(await store.getEndpoint(bobHook.id)).toMatchObject({ ownerId: bob.userId, status: 'enabled' });
    expect(await webhookItemsOf(bob.userId)).toHaveLength(3);
    const subscribers = await new WebhookSubscriptions({
      documentClient: documents,
      tableName: api.runtime().tableNames.toolkit,
    }).findSubscribers('default', 'booking.cancelled', alice.userId);
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
    // Every delivery the cancellation enqueued has been made once the webhook queue holds none.
    await drained(api.runtime(), 'bulwark-webhook');
    expect(aliceTarget.received).toHaveLength(receivedBefore);
    expect(bobTarget.received).toHaveLength(0);

    // Deleting again answers 404, as before.
    expect((await api.request('DELETE', `/admin/users/${alice.userId}`)).status).toBe(404);

    // Alice's token is still valid, but registers nothing any more; the machine sharing her id and Bob
    // still register.
    expectOwnerClosed(await register(alice.token));
    const machineAgain = await registerEndpoint(api, machine, tenantTarget.url, ['booking.created']);
    const bobAgain = await registerEndpoint(api, bob.token, bobTarget.url, ['booking.created']);
    expect(await store.getEndpoint(machineAgain.id)).toMatchObject({ ownerKind: 'integration' });
    expect(await store.getEndpoint(bobAgain.id)).toMatchObject({ ownerId: bob.userId });
    expect(await webhookItemsOf(alice.userId)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ...countKey(alice.userId), count: 0 }),
        { ...machineCountKey(alice.userId), count: 2 },
      ]),
    );
    // The machine deleting its endpoints takes its count item with the last; Alice stays closed.
    for (const { id } of [machineHook, machineAgain]) {
      expect((await api.request('DELETE', `/webhooks/${id}`, { token: machine })).status).toBe(204);
    }
    expect(await webhookItemsOf(alice.userId)).toEqual([
      expect.objectContaining({ ...countKey(alice.userId), count: 0, closedAt: expect.any(String) }),
    ]);
    expectOwnerClosed(await register(alice.token));
  });

  it('closes a user without endpoints: a later registration with their token is refused', async () => {
    const carol = await registeredUser();
    expect((await api.request('DELETE', `/admin/users/${carol.userId}`)).status).toBe(204);
    expect((await api.request('GET', `/users/${carol.userId}`)).status).toBe(404);
    expect((await api.request('DELETE', `/admin/users/${carol.userId}`)).status).toBe(404);
    // The marker is the only item, and stays so after the refused registration.
    const marker = [expect.objectContaining({ ...countKey(carol.userId), closedAt: expect.any(String) })];
    expect(await webhookItemsOf(carol.userId)).toEqual(marker);
    expectOwnerClosed(await register(carol.token));
    const [item] = await webhookItemsOf(carol.userId);
    expect(item).not.toHaveProperty('count');
    expect(await webhookItemsOf(carol.userId)).toEqual(marker);
  });

  it("answers a registration retried with its Idempotency-Key the closed owner's 403, while the key's record lasts and after it", async () => {
    const dave = await registeredUser();
    const key = randomUUID();
    const body = { url: 'http://127.0.0.1:9/hook', eventTypes: ['booking.created'] };
    const retry = () =>
      api.request('POST', '/webhooks', { token: dave.token, body, headers: { 'idempotency-key': key } });
    const made = await retry();
    expect(made.status).toBe(201);
    const endpointId = (made.body as { id: string }).id;
    expect((await api.request('DELETE', `/admin/users/${dave.userId}`)).status).toBe(204);
    const items = await webhookItemsOf(dave.userId);
    const endpointItems = await itemsOfEndpoint(endpointId);
    // While the record lasts: its replay reads the deleted endpoint.
    expectOwnerClosed(await retry());
    const { Items: webhooksRecords = [] } = await documents.send(
      new ScanCommand({
        TableName: api.runtime().tableNames.toolkit,
        FilterExpression: 'begins_with(pk, :prefix)',
        ExpressionAttributeValues: { ':prefix': 'IDEM#webhooks#' },
        ConsistentRead: true,
      }),
    );
    const records = webhooksRecords.filter((record) => JSON.stringify(record).includes(endpointId));
    expect(records).toHaveLength(1);
    // After it (a retry after a 504, or past the hour).
    await documents.send(
      new DeleteCommand({
        TableName: api.runtime().tableNames.toolkit,
        Key: { pk: records[0]?.pk, sk: records[0]?.sk },
      }),
    );
    expectOwnerClosed(await retry());
    expect(await webhookItemsOf(dave.userId)).toEqual(items);
    expect(await itemsOfEndpoint(endpointId)).toEqual(endpointItems);
  });

  it('never answers 204 while a registration racing the delete survives it', async () => {
    for (let round = 0; round < 8; round += 1) {
      const erin = await registeredUser();
      // Staggered by a few milliseconds, so the registration lands before, during and after the delete.
      const [removal, registration] = await Promise.all([
        api.request('DELETE', `/admin/users/${erin.userId}`),
        new Promise((resolve) => setTimeout(resolve, round * 3)).then(() => register(erin.token)),
      ]);
      expect([201, 403]).toContain(registration.status);
      if (registration.status === 403) expectOwnerClosed(registration);
      const endpointsLeft = (await webhookItemsOf(erin.userId)).filter((item) => item.sk === 'ENDPOINT');
      if (removal.status === 204) {
        expect(endpointsLeft).toEqual([]);
        expect((await api.request('GET', `/users/${erin.userId}`)).status).toBe(404);
      } else {
        // A registration just before the marker that the owner index did not show yet: 409, user kept,
        // and the retry finishes (no registration can follow the marker).
        expect(removal.status).toBe(409);
        await until(async () => {
          const retried = await api.request('DELETE', `/admin/users/${erin.userId}`);
          return retried.status === 204 ? retried : undefined;
        });
        expect((await webhookItemsOf(erin.userId)).filter((item) => item.sk === 'ENDPOINT')).toEqual([]);
      }
      expectOwnerClosed(await register(erin.token));
    }
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

    // Once the index shows it (here: the stray count is gone), the retry completes and closes Dave again.
    await documents.send(new DeleteCommand({ TableName: tableName, Key: countKey(dave.userId) }));
    expect((await api.request('DELETE', `/admin/users/${dave.userId}`)).status).toBe(204);
    expect((await api.request('GET', `/users/${dave.userId}`)).status).toBe(404);
    expect(await webhookItemsOf(dave.userId)).toEqual([
      expect.objectContaining({ ...countKey(dave.userId), closedAt: expect.any(String) }),
    ]);
  });
});
