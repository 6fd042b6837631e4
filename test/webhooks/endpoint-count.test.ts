// The per-owner endpoint count item (`WH#OWNER#<tenant>#<owner>` / `ENDPOINT_COUNT`, or
// `INTEGRATION_ENDPOINT_COUNT` for an M2M client) at the store: it counts every endpoint, under races too,
// is gone once its owner has none, and a person and a machine with the same id each have their own.
import {
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EndpointIdTakenError, endpointIdFor } from '../../functions/shared/webhook-store.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../middleware/errors.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deleteMachineEndpoints,
  documentClient,
  machineWithId,
  maxEndpointsPerOwner,
  register,
  store,
  storeOnAnotherInstance,
} from './counting-store.js';
import { endpointCount } from './helpers.js';

afterEach(async () => {
  vi.restoreAllMocks();
  await deleteMachineEndpoints();
});

const countKey = (principal: Principal) => ({
  pk: `WH#OWNER#default#${principal.id}`,
  sk: principal.isM2M ? 'INTEGRATION_ENDPOINT_COUNT' : 'ENDPOINT_COUNT',
});

/** The owner's count item as stored, or undefined when there is none. */
async function countItem(principal: Principal): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documentClient.send(
    new GetCommand({ TableName: testTableNames.toolkit, Key: countKey(principal), ConsistentRead: true }),
  );
  return Item;
}

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

  it('refuses an id already registered with EndpointIdTakenError, at the cap too, counting nothing more', async () => {
    const owner = testPrincipal();
    const scopedKey = [null, 'jwt', 'person', owner.id, 'POST /webhooks', '/webhooks', 'key-1'];
    const id = endpointIdFor(scopedKey, 'user');
    expect(id).toMatch(/^ep_[A-Za-z0-9_-]{24}$/);
    expect(endpointIdFor(scopedKey, 'admin')).not.toBe(id);
    const input = { id, url: 'https://hooks.example.com/h', eventTypes: ['booking.created'] } as const;
    const { endpoint } = await store.createEndpoint(owner, input);
    expect(endpoint.id).toBe(id);
    for (let index = 1; index < maxEndpointsPerOwner; index += 1) await register(owner);
    const again = await store.createEndpoint(owner, input).catch((error: unknown) => error);
    expect(again).toBeInstanceOf(EndpointIdTakenError);
    expect(again).toMatchObject({ endpointId: id, statusCode: 409 });
    expect(await countItem(owner)).toMatchObject({ count: maxEndpointsPerOwner });
    expect(await endpointCount(documentClient, owner.id)).toBe(maxEndpointsPerOwner);
    // Past the cap a new id is the cap's 409, as before.
    await expect(store.createEndpoint(owner, { ...input, id: undefined })).rejects.toMatchObject({
      message: `An owner may have at most ${maxEndpointsPerOwner} webhook endpoints; delete one to register another`,
    });
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

  it('lets exactly the cap of eight registrations sent at once from separate instances through', async () => {
    const owner = testPrincipal();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        storeOnAnotherInstance().createEndpoint(owner, {
          url: 'https://hooks.example.com/h',
          eventTypes: ['booking.created'],
        }),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(maxEndpointsPerOwner);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(ConflictError);
    }
    expect(await countItem(owner)).toMatchObject({ count: maxEndpointsPerOwner });
    expect(await endpointCount(documentClient, owner.id)).toBe(maxEndpointsPerOwner);
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

/**
 * Puts a person's and a machine's endpoints (`machineEndpointIds` the machine's only ones) in the layout from
 * before kinds were counted apart: the machine's carry no countKind and are counted on the one item of the
 * id, with the person's.
 */
async function countTogether(person: Principal, machine: Principal, machineEndpointIds: readonly string[]) {
  for (const id of machineEndpointIds) {
    await documentClient.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${id}`, sk: 'ENDPOINT' },
        UpdateExpression: 'REMOVE countKind',
      }),
    );
  }
  const personCount = (await countItem(person))?.count;
  await documentClient.send(new DeleteCommand({ TableName: testTableNames.toolkit, Key: countKey(machine) }));
  await documentClient.send(
    new PutCommand({
      TableName: testTableNames.toolkit,
      Item: { ...countKey(person), count: Number(personCount ?? 0) + machineEndpointIds.length },
    }),
  );
}

describe('a person and an M2M client with the same id', () => {
  it('each reach their own cap, counted on an item of their own', async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    for (let registered = 0; registered < maxEndpointsPerOwner; registered += 1) await register(person);
    await expect(register(person)).rejects.toBeInstanceOf(ConflictError);

    for (let registered = 0; registered < maxEndpointsPerOwner; registered += 1) await register(machine);
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);

    expect(await countItem(person)).toMatchObject({ count: maxEndpointsPerOwner });
    expect(await countItem(machine)).toMatchObject({ count: maxEndpointsPerOwner });
    expect(await endpointCount(documentClient, person.id)).toBe(2 * maxEndpointsPerOwner);
    // Deleting frees a slot of the deleting kind only.
    const [machineEndpoint] = (await store.listOwnedEndpoints(machine, 1)).items;
    await store.deleteEndpoint(String(machineEndpoint?.id), machine);
    await expect(register(person)).rejects.toBeInstanceOf(ConflictError);
    await register(machine);
  });

  it("closing the deleted person deletes only the person's endpoints and leaves the machine open", async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    const { endpoint: personEndpoint } = await register(person);
    const machineEndpoints = [(await register(machine)).endpoint.id, (await register(machine)).endpoint.id];

    expect(await store.deletePersonEndpoints('default', person.id)).toEqual([personEndpoint.id]);

    expect(await countItem(person)).toMatchObject({ count: 0, closedAt: expect.any(String) });
    await expect(register(person)).rejects.toBeInstanceOf(ForbiddenError);
    for (const id of machineEndpoints) {
      expect(await store.getEndpoint(id)).toMatchObject({ ownerKind: 'integration', status: 'enabled' });
    }
    expect(await countItem(machine)).toEqual({ ...countKey(machine), count: 2 });
    // Open, up to its own cap: the 409 of a full cap, not the 403 of a closed owner.
    await register(machine);
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);
    for (const id of machineEndpoints) await store.deleteEndpoint(id, machine);
    expect(await countItem(machine)).toMatchObject({ count: 1 });
    expect(await countItem(person)).toMatchObject({ count: 0, closedAt: expect.any(String) });
  });

  it("keeps counting a machine's endpoints registered while both shared one count item on that item", async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    const { endpoint: personEndpoint } = await register(person);
    const legacy = [(await register(machine)).endpoint.id, (await register(machine)).endpoint.id];
    await countTogether(person, machine, legacy);
    expect(await store.getEndpoint(String(legacy[0]))).toMatchObject({ countKind: 'person' });

    // The person's cap still holds the machine's old endpoints, the machine counts anew from its own item.
    await expect(register(person)).rejects.toBeInstanceOf(ConflictError);
    const { endpoint: counted } = await register(machine);
    expect(await store.getEndpoint(counted.id)).toMatchObject({ countKind: 'integration' });
    expect(await countItem(machine)).toMatchObject({ count: 1 });

    // Deleting an old one takes it off the item that counts it, the person's.
    await store.deleteEndpoint(String(legacy[0]), machine);
    expect(await countItem(person)).toMatchObject({ count: 2 });
    expect(await countItem(machine)).toMatchObject({ count: 1 });

    // Deleting the person: the old endpoint left counted on their item is the machine's, no 409.
    expect(await store.deletePersonEndpoints('default', person.id)).toEqual([personEndpoint.id]);
    expect(await countItem(person)).toMatchObject({ count: 1, closedAt: expect.any(String) });
    expect(await store.getEndpoint(String(legacy[1]))).toMatchObject({ ownerKind: 'integration' });
    await register(machine);
    expect(await countItem(machine)).toMatchObject({ count: 2 });

    // The last old one leaves the closed person's item at 0; the machine's own count goes with its last.
    await store.deleteEndpoint(String(legacy[1]), machine);
    expect(await countItem(person)).toMatchObject({ count: 0, closedAt: expect.any(String) });
    for (const { id } of (await store.listOwnedEndpoints(machine, 10)).items) {
      await store.deleteEndpoint(id, machine);
    }
    expect(await countItem(machine)).toBeUndefined();
    expect(await store.deletePersonEndpoints('default', person.id)).toEqual([]);
  });

  it("does not let a machine's old endpoint the index still shows, though deleted, hide a person's endpoint the index does not show yet", async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    await register(person);
    const legacy = (await register(machine)).endpoint.id;
    await countTogether(person, machine, [legacy]);
    const { Item: legacyItem } = await documentClient.send(
      new GetCommand({ TableName: testTableNames.toolkit, Key: { pk: `WH#${legacy}`, sk: 'ENDPOINT' } }),
    );
    // One the machine registered since, counted on its own item, never accounts for the person's count.
    await register(machine);
    // Just before the person's account is deleted, they register another endpoint and the machine deletes
    // its old one; DynamoDB's owner index (eventually consistent) shows neither change yet.
    const { endpoint: latest } = await register(person);
    await store.deleteEndpoint(legacy, machine);
    const send = documentClient.send.bind(documentClient);
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      const answer = (await send(command as never)) as { Items?: Record<string, unknown>[] };
      if (!(command instanceof QueryCommand) || command.input.IndexName !== 'gsi1') return answer;
      const shown = (answer.Items ?? []).filter((item) => item.pk !== `WH#${latest.id}`);
      const machineQuery = command.input.FilterExpression === 'ownerKind = :integration';
      return { ...answer, Items: machineQuery && legacyItem ? [...shown, legacyItem] : shown };
    }) as typeof documentClient.send);
    await expect(store.deletePersonEndpoints('default', person.id)).rejects.toBeInstanceOf(ConflictError);
    vi.restoreAllMocks();
    // Once the index caught up, the retry deletes the endpoint it had not shown.
    expect(await store.deletePersonEndpoints('default', person.id)).toEqual([latest.id]);
    expect(await store.getEndpoint(latest.id)).toBeUndefined();
  });
});
