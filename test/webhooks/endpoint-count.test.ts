// The per-owner endpoint count item (`WH#OWNER#<tenant>#<owner>` / `ENDPOINT_COUNT`) at the store: it
// counts every endpoint, under races too, and is gone once its owner has none.
import { DeleteCommand, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { webhookSecretKeyContextFields } from '../../functions/shared/key-purposes.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { ConflictError, NotFoundError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import { endpointCount } from './helpers.js';

const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const maxEndpointsPerOwner = 3;
const store = new WebhookStore({
  documentClient,
  tableName: testTableNames.toolkit,
  encryptor: createFunctionEncryptor(readEnvironment(), undefined, webhookSecretKeyContextFields),
  maxEndpointsPerOwner,
});
const endpointInput = { url: 'https://hooks.example.com/h', eventTypes: ['booking.created'] } as const;

afterEach(() => {
  vi.restoreAllMocks();
});

const countKey = (principal: Principal) => ({ pk: `WH#OWNER#default#${principal.id}`, sk: 'ENDPOINT_COUNT' });

/** The owner's count item as stored, or undefined when there is none. */
async function countItem(principal: Principal): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documentClient.send(
    new GetCommand({ TableName: testTableNames.toolkit, Key: countKey(principal), ConsistentRead: true }),
  );
  return Item;
}

const register = (principal: Principal) => store.createEndpoint(principal, endpointInput);

describe('the endpoint count item', () => {
  it("goes with the owner's last endpoint, and a later registration counts from 1 up to the cap", async () => {
    const owner = testPrincipal();
    const [first, second] = await Promise.all([register(owner), register(owner)]);
    await store.deleteEndpoint(first.endpoint.id, owner);
    expect(await countItem(owner)).toMatchObject({ count: 1 });
    await store.deleteEndpoint(second.endpoint.id, owner);
    expect(await countItem(owner)).toBeUndefined();

    for (let index = 0; index < maxEndpointsPerOwner; index += 1) await register(owner);
    await expect(register(owner)).rejects.toBeInstanceOf(ConflictError);
    expect(await countItem(owner)).toMatchObject({ count: maxEndpointsPerOwner });
    expect(await endpointCount(documentClient, owner.id)).toBe(maxEndpointsPerOwner);
  });

  it('goes when an administrator deletes the last endpoint of an owner', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    await store.deleteTenantEndpoint(endpoint.id, 'default');
    expect(await countItem(owner)).toBeUndefined();
  });

  it('stays exact when a registration commits while the last endpoint is being deleted', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    const send = documentClient.send.bind(documentClient);
    const removals: string[] = [];
    let raced: Promise<unknown> | undefined;
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      const countWrite =
        command instanceof TransactWriteCommand ? command.input.TransactItems?.[1] : undefined;
      if (countWrite?.Delete?.Key?.sk === 'ENDPOINT_COUNT') {
        removals.push('last');
        // The delete has just learnt the owner is down to this endpoint; a registration lands first.
        raced ??= register(owner);
        await raced;
      } else if (countWrite?.Update?.UpdateExpression === 'ADD #count :minusOne') {
        removals.push('not last');
      }
      return send(command as never);
    }) as typeof documentClient.send);

    await store.deleteEndpoint(endpoint.id, owner);

    expect(removals).toEqual(['not last', 'last', 'not last']);
    expect(await countItem(owner)).toMatchObject({ count: 1 });
    expect(await endpointCount(documentClient, owner.id)).toBe(1);
    await register(owner);
    await register(owner);
    await expect(register(owner)).rejects.toBeInstanceOf(ConflictError);
  });

  it('answers 409 and changes nothing when the count keeps moving across the last endpoint', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    const send = documentClient.send.bind(documentClient);
    let other: string | undefined;
    let removals = 0;
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      const items = command instanceof TransactWriteCommand ? command.input.TransactItems : undefined;
      if (items?.[0]?.Delete?.Key?.pk === `WH#${endpoint.id}`) {
        removals += 1;
        // Before each guess, another endpoint comes or goes so that the guess is wrong: a decrement finds
        // the owner's last endpoint, a removal of the count item finds another one (this owner is not
        // closed, so leaving the item is wrong whatever the count).
        const guessesLast = items[1]?.Delete !== undefined;
        if (guessesLast && other === undefined) other = (await register(owner)).endpoint.id;
        if (items[1]?.Update !== undefined && other !== undefined) {
          await store.deleteEndpoint(other, owner);
          other = undefined;
        }
      }
      return send(command as never);
    }) as typeof documentClient.send);

    await expect(store.deleteEndpoint(endpoint.id, owner)).rejects.toBeInstanceOf(ConflictError);

    expect(removals).toBe(6);
    expect(await store.getEndpoint(endpoint.id)).toBeDefined();
    const left = other === undefined ? 1 : 2;
    expect(await countItem(owner)).toMatchObject({ count: left });
    expect(await endpointCount(documentClient, owner.id)).toBe(left);
  });

  it('counts every endpoint under concurrent registrations and deletes, and is gone when all are deleted', async () => {
    const owner = testPrincipal();
    const existing = await Promise.all([register(owner), register(owner)]);
    const outcomes = await Promise.allSettled([
      ...existing.map(({ endpoint }) => store.deleteEndpoint(endpoint.id, owner)),
      register(owner),
      register(owner),
      register(owner),
    ]);
    // A registration may find the cap still full, or lose to a concurrent write of the count: a 409 either way.
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(ConflictError);
    }
    const remaining = (await store.listOwnedEndpoints(owner, 10)).items;
    expect(remaining.length).toBeLessThanOrEqual(maxEndpointsPerOwner);
    expect(await countItem(owner)).toMatchObject({ count: remaining.length });

    await Promise.all(remaining.map((endpoint) => store.deleteEndpoint(endpoint.id, owner)));
    expect(await countItem(owner)).toBeUndefined();
    expect(await endpointCount(documentClient, owner.id)).toBe(0);
  });

  it('lets an owner with no count item (registered before endpoints were counted) delete an endpoint', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    await documentClient.send(new DeleteCommand({ TableName: testTableNames.toolkit, Key: countKey(owner) }));

    await store.deleteEndpoint(endpoint.id, owner);

    expect(await store.getEndpoint(endpoint.id)).toBeUndefined();
    expect(await countItem(owner)).toBeUndefined();
  });

  it('keeps a closed owner at a count of 0, never below, when it deletes endpoints registered before endpoints were counted', async () => {
    const person = testPrincipal();
    const { endpoint } = await register(person);
    await documentClient.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: countKey(person) }),
    );

    expect(await store.deletePersonEndpoints('default', person.id)).toEqual([endpoint.id]);

    expect(await store.getEndpoint(endpoint.id)).toBeUndefined();
    const closed = await countItem(person);
    expect(closed).toHaveProperty('closedAt');
    expect(closed?.count ?? 0).toBe(0);
    // An M2M client sharing the id gets the cap, not one more per uncounted endpoint.
    const machine = testPrincipal({ id: person.id, isM2M: true });
    for (let registered = 0; registered < maxEndpointsPerOwner; registered += 1) await register(machine);
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);
    // A machine's endpoints receive every booking event of the tenant, also those of other test files
    // sharing the table: they go, and the count item with the last of them.
    for (const { id } of (await store.listOwnedEndpoints(machine, maxEndpointsPerOwner)).items) {
      await store.deleteEndpoint(id, machine);
    }
    expect(await store.listOwnedEndpoints(machine, maxEndpointsPerOwner)).toMatchObject({ items: [] });
  });

  it('passes a DynamoDB error that is no failed condition on at once, not as a 409 after guessing again', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    const send = documentClient.send.bind(documentClient);
    let removals = 0;
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof TransactWriteCommand) {
        removals += 1;
        throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });
      }
      return send(command as never);
    }) as typeof documentClient.send);

    const error = await store.deleteEndpoint(endpoint.id, owner).catch((caught: unknown) => caught);

    expect(error).toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    expect(removals).toBe(1);
  });

  it('answers 404 when a concurrent delete of the same endpoint commits after a wrong guess', async () => {
    const owner = testPrincipal();
    const { endpoint } = await register(owner);
    const send = documentClient.send.bind(documentClient);
    let removals = 0;
    let concurrent: Promise<unknown> | undefined;
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof TransactWriteCommand && concurrent === undefined) {
        removals += 1;
        // The first guess (not the last endpoint) has failed; before the second is sent, another delete wins.
        if (removals === 2) {
          concurrent = store.deleteEndpoint(endpoint.id, owner);
          await concurrent;
        }
      }
      return send(command as never);
    }) as typeof documentClient.send);

    await expect(store.deleteEndpoint(endpoint.id, owner)).rejects.toBeInstanceOf(NotFoundError);

    expect(removals).toBe(2);
    expect(await countItem(owner)).toBeUndefined();
  });
});
