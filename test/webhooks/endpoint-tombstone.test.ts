// A deleted endpoint's tombstone (`WH#<endpointId>` / `TOMBSTONE`) at the store: every delete leaves one in
// its transaction, and a registration whose id it names is refused, writing nothing, until it expires.
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import {
  EndpointIdRetiredError,
  endpointIdFor,
  type StoredEndpoint,
} from '../../functions/shared/webhook-store.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { ForbiddenError } from '../../middleware/errors.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import { documentClient, maxEndpointsPerOwner, register, store, subscriptions } from './counting-store.js';
import { endpointCount, expectOnlyTombstone } from './helpers.js';

/** The id a registration by `owner` with the Idempotency-Key `key` gets. */
const keyDerivedId = (owner: Principal, key: string) =>
  endpointIdFor([null, 'jwt', 'person', owner.id, 'POST /webhooks', '/webhooks', key], 'user');

const registration = (id: string) =>
  ({ id, url: 'https://hooks.example.com/h', eventTypes: ['booking.created', 'booking.cancelled'] }) as const;

/** Every toolkit item under the endpoint's id, and its subscriptions. */
async function itemsUnder(endpointId: string): Promise<Record<string, unknown>[]> {
  const { Items } = await documentClient.send(
    new QueryCommand({
      TableName: testTableNames.toolkit,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `WH#${endpointId}` },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

/** The owner's count item as stored, or undefined when there is none. */
async function countItem(owner: Principal): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documentClient.send(
    new GetCommand({
      TableName: testTableNames.toolkit,
      Key: { pk: `WH#OWNER#default#${owner.id}`, sk: 'ENDPOINT_COUNT' },
      ConsistentRead: true,
    }),
  );
  return Item;
}

/** How the registration of `id` by `owner` fails, with what it left of the table. */
async function refusal(owner: Principal, id: string, now?: Date) {
  const before = { items: await itemsUnder(id), count: await countItem(owner) };
  const error = await store.createEndpoint(owner, registration(id), now).catch((thrown: unknown) => thrown);
  expect(await itemsUnder(id)).toEqual(before.items);
  expect(await countItem(owner)).toEqual(before.count);
  for (const eventType of ['booking.created', 'booking.cancelled'] as const) {
    expect(await subscriptions.findSubscribers('default', eventType, owner.id)).not.toContain(id);
  }
  return error;
}

const deletePaths: [string, (endpoint: StoredEndpoint, owner: Principal) => Promise<unknown>][] = [
  ['its owner', (endpoint, owner) => store.deleteEndpoint(endpoint.id, owner)],
  ['an administrator', (endpoint) => store.deleteTenantEndpoint(endpoint.id, 'default')],
];

describe("a deleted endpoint's id", () => {
  it.each(deletePaths)(
    'deleted by %s, is refused to a registration with EndpointIdRetiredError, writing nothing',
    async (_path, remove) => {
      const owner = testPrincipal();
      const id = keyDerivedId(owner, 'key-1');
      await store.createEndpoint(owner, registration(id));
      const endpoint = await store.getEndpoint(id);
      if (!endpoint) throw new Error('endpoint missing');
      const deleting = Date.now();
      await remove(endpoint, owner);
      expectOnlyTombstone(await itemsUnder(id), id, deleting);

      const error = await refusal(owner, id);
      expect(error).toBeInstanceOf(EndpointIdRetiredError);
      expect(error).toMatchObject({
        endpointId: id,
        statusCode: 409,
        code: 'CONFLICT',
        message: `Webhook endpoint ${id}, which a registration with this Idempotency-Key made, was deleted; register with a new Idempotency-Key`,
      });
      expect(await endpointCount(documentClient, owner.id)).toBe(0);
      // Another key still registers.
      const other = await store.createEndpoint(owner, registration(keyDerivedId(owner, 'key-2')));
      expect(other.endpoint.id).not.toBe(id);
    },
  );

  it("is the answer at the owner's cap too, rather than the cap", async () => {
    const owner = testPrincipal();
    const id = keyDerivedId(owner, 'key-1');
    await store.createEndpoint(owner, registration(id));
    await store.deleteEndpoint(id, owner);
    for (let index = 0; index < maxEndpointsPerOwner; index += 1) await register(owner);
    expect(await refusal(owner, id)).toBeInstanceOf(EndpointIdRetiredError);
    expect(await countItem(owner)).toMatchObject({ count: maxEndpointsPerOwner });
  });

  it('deleted with its owner, leaves a tombstone, and the closed owner is refused as closed (403)', async () => {
    const owner = testPrincipal();
    const id = keyDerivedId(owner, 'key-1');
    await store.createEndpoint(owner, registration(id));
    const deleting = Date.now();
    expect(await store.deletePersonEndpoints('default', owner.id)).toEqual([id]);
    expectOnlyTombstone(await itemsUnder(id), id, deleting);
    // A new key would not help: being closed is the answer.
    const error = await refusal(owner, id);
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ message: 'This owner can no longer register webhook endpoints' });
  });

  it('is registered again once its tombstone expired, though TTL has not deleted it yet', async () => {
    const owner = testPrincipal();
    const id = keyDerivedId(owner, 'key-1');
    await store.createEndpoint(owner, registration(id));
    await store.deleteEndpoint(id, owner);
    const [tombstone] = await itemsUnder(id);
    const expiresAtMs = Number(tombstone?.expiresAt) * 1000;
    // A second before its expiresAt it still refuses the id; at it, it no longer does.
    expect(await refusal(owner, id, new Date(expiresAtMs - 1000))).toBeInstanceOf(EndpointIdRetiredError);
    const again = await store.createEndpoint(owner, registration(id), new Date(expiresAtMs));
    expect(again.endpoint).toMatchObject({ id, createdAt: new Date(expiresAtMs).toISOString() });
  });
});
