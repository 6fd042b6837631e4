// Rebuilding endpoint count items after a rollback past the per-kind counts: WebhookCountRebuilder.recountOwner and
// bin/recount-webhook-owners.ts, against the shared toolkit table.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { HelpRequested } from '../../bin/command.js';
import { describeRebuild, parseRecountArguments, recountOwners } from '../../bin/recount-webhook-owners.js';
import { WebhookCountRebuilder } from '../../functions/shared/webhook-count-rebuild.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { ConflictError } from '../../middleware/errors.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deleteMachineEndpoints,
  documentClient,
  machineWithId,
  maxEndpointsPerOwner,
  register,
  store,
} from './counting-store.js';

const rebuilder = new WebhookCountRebuilder({ store, documentClient, tableName: testTableNames.toolkit });

afterEach(async () => {
  vi.restoreAllMocks();
  // A test that failed may leave its counts drifted, which would refuse the deletes.
  await deleteMachineEndpoints((machine) =>
    rebuilder.recountOwner(machine.tenantId ?? 'default', machine.id),
  );
});

const countKey = (
  principal: Principal,
  kind: 'person' | 'integration' = principal.isM2M ? 'integration' : 'person',
) => ({
  pk: `WH#OWNER#${principal.tenantId ?? 'default'}#${principal.id}`,
  sk: kind === 'integration' ? 'INTEGRATION_ENDPOINT_COUNT' : 'ENDPOINT_COUNT',
});

async function countItem(key: Record<string, string>): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documentClient.send(
    new GetCommand({ TableName: testTableNames.toolkit, Key: key, ConsistentRead: true }),
  );
  return Item;
}

const putCount = (key: Record<string, string>, fields: Record<string, unknown>) =>
  documentClient.send(new PutCommand({ TableName: testTableNames.toolkit, Item: { ...key, ...fields } }));

describe('recountOwner', () => {
  it('removes an INTEGRATION_ENDPOINT_COUNT left counting endpoints that are gone, and the cap is whole again', async () => {
    const machine = machineWithId(`c-${randomUUID()}`);
    // Deleted under the earlier code, which wrote only ENDPOINT_COUNT: the machine's own item kept its 3.
    await putCount(countKey(machine), { count: maxEndpointsPerOwner });
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);

    expect(await rebuilder.recountOwner('default', machine.id)).toEqual([
      {
        tenantId: 'default',
        ownerId: machine.id,
        countItem: 'INTEGRATION_ENDPOINT_COUNT',
        before: maxEndpointsPerOwner,
        after: undefined,
      },
    ]);
    expect(await countItem(countKey(machine))).toBeUndefined();
    for (let registered = 0; registered < maxEndpointsPerOwner; registered += 1) await register(machine);
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);
    expect(await rebuilder.recountOwner('default', machine.id)).toEqual([]);
  });

  it("moves a client's endpoints with countKind integration off the ENDPOINT_COUNT they were counted on", async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    await register(person);
    await register(machine);
    await register(machine);
    // Registered under the earlier code: all three on ENDPOINT_COUNT, none on the machine's item.
    await putCount(countKey(person), { count: 3 });
    await documentClient.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: countKey(machine) }),
    );

    const changes = await rebuilder.recountOwner('default', person.id);
    expect(changes.map(describeRebuild)).toEqual([
      `default/${person.id} ENDPOINT_COUNT: 3 → 1`,
      `default/${person.id} INTEGRATION_ENDPOINT_COUNT: (no item) → 2`,
    ]);
    expect(await countItem(countKey(person))).toEqual({ ...countKey(person), count: 1 });
    expect(await countItem(countKey(machine))).toEqual({ ...countKey(machine), count: 2 });
    // Each kind at its own cap again.
    await register(machine);
    await expect(register(machine)).rejects.toBeInstanceOf(ConflictError);
    await register(person);
    await register(person);
    await expect(register(person)).rejects.toBeInstanceOf(ConflictError);
    await store.deletePersonEndpoints('default', person.id);
  });

  it("counts a machine's old-layout endpoint (no countKind) on ENDPOINT_COUNT and keeps a closed person's closedAt", async () => {
    const person = testPrincipal();
    const machine = machineWithId(person.id);
    const legacy = (await register(machine)).endpoint.id;
    await documentClient.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${legacy}`, sk: 'ENDPOINT' },
        UpdateExpression: 'REMOVE countKind',
      }),
    );
    await store.deletePersonEndpoints('default', person.id);
    const { closedAt } = (await countItem(countKey(person))) ?? {};
    expect(closedAt).toEqual(expect.any(String));
    await putCount(countKey(person), { count: 0, closedAt });
    await putCount(countKey(machine), { count: 2 });

    expect(await rebuilder.recountOwner('default', person.id)).toEqual([
      { tenantId: 'default', ownerId: person.id, countItem: 'ENDPOINT_COUNT', before: 0, after: 1, closedAt },
      {
        tenantId: 'default',
        ownerId: person.id,
        countItem: 'INTEGRATION_ENDPOINT_COUNT',
        before: 2,
        after: undefined,
      },
    ]);
    expect(await countItem(countKey(person))).toEqual({ ...countKey(person), count: 1, closedAt });
    // Its delete takes it off the person's item, which stays closed at 0.
    await store.deleteEndpoint(legacy, machine);
    expect(await countItem(countKey(person))).toEqual({ ...countKey(person), count: 0, closedAt });
    expect(await rebuilder.recountOwner('default', person.id)).toEqual([]);
  });

  it('counts an endpoint whose record this version cannot read whole (no createdAt, a newer status)', async () => {
    const person = testPrincipal();
    const { id } = (await register(person)).endpoint;
    await documentClient.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${id}`, sk: 'ENDPOINT' },
        UpdateExpression: 'REMOVE createdAt SET #status = :paused',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':paused': 'paused' },
      }),
    );
    await putCount(countKey(person), { count: 3 });

    expect((await rebuilder.recountOwner('default', person.id)).map(describeRebuild)).toEqual([
      `default/${person.id} ENDPOINT_COUNT: 3 → 1`,
    ]);
    await store.deleteEndpoint(id, person);
    expect(await countItem(countKey(person))).toBeUndefined();
  });

  it('changes nothing on a dry run, and says what it would change', async () => {
    const machine = machineWithId(`c-${randomUUID()}`);
    await register(machine);
    await putCount(countKey(machine), { count: 3 });

    expect(await rebuilder.recountOwner('default', machine.id, { dryRun: true })).toEqual([
      expect.objectContaining({ countItem: 'INTEGRATION_ENDPOINT_COUNT', before: 3, after: 1 }),
    ]);
    expect(await countItem(countKey(machine))).toEqual({ ...countKey(machine), count: 3 });
    expect(await countItem(countKey(machine, 'person'))).toBeUndefined();
  });

  it('rebuilds again when a registration commits between reading the count and writing it', async () => {
    const machine = machineWithId(`c-${randomUUID()}`);
    await register(machine);
    // One too many, and below the cap so the racing registration passes.
    await putCount(countKey(machine), { count: 2 });
    const send = documentClient.send.bind(documentClient);
    let raced = false;
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (
        !raced &&
        command instanceof UpdateCommand &&
        command.input.UpdateExpression === 'SET #count = :count'
      ) {
        raced = true;
        // A real registration, through the real client, between the recount's read and its write.
        await register(machine);
      }
      return send(command as never);
    }) as never);

    const changes = await rebuilder.recountOwner('default', machine.id);
    vi.restoreAllMocks();
    expect(raced).toBe(true);
    expect(changes).toEqual([expect.objectContaining({ before: 3, after: 2 })]);
    expect(await countItem(countKey(machine))).toEqual({ ...countKey(machine), count: 2 });
  });
});

describe('bin/recount-webhook-owners.ts', () => {
  it('finds every owner of the tenant from its count items and endpoints, escaped ids too', async () => {
    const tenantId = `t-${randomUUID()}`;
    const drifted = machineWithId('svc#1%', tenantId);
    const withoutItem = machineWithId(`c-${randomUUID()}`, tenantId);
    const exact = machineWithId(`c-${randomUUID()}`, tenantId);
    await register(drifted);
    await register(withoutItem);
    await register(exact);
    await putCount({ pk: `WH#OWNER#${tenantId}#svc%231%25`, sk: 'INTEGRATION_ENDPOINT_COUNT' }, { count: 3 });
    await documentClient.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: countKey(withoutItem) }),
    );
    const orphan = `gone-${randomUUID()}`;
    await putCount({ pk: `WH#OWNER#${tenantId}#${orphan}`, sk: 'INTEGRATION_ENDPOINT_COUNT' }, { count: 1 });

    expect(await rebuilder.listEndpointOwners(tenantId)).toEqual(
      [drifted.id, withoutItem.id, exact.id, orphan].sort(),
    );
    const dryRunLines: string[] = [];
    await recountOwners(rebuilder, { tenantId, owners: [], dryRun: true }, (line) => dryRunLines.push(line));
    expect(dryRunLines.at(-1)).toBe(
      '4 owner(s) checked, 3 count item(s) would change (dry run, nothing written)',
    );
    expect(
      await countItem({ pk: `WH#OWNER#${tenantId}#${orphan}`, sk: 'INTEGRATION_ENDPOINT_COUNT' }),
    ).toMatchObject({
      count: 1,
    });

    const lines: string[] = [];
    await recountOwners(rebuilder, { tenantId, owners: [], dryRun: false }, (line) => lines.push(line));
    expect(lines.sort()).toEqual(
      [
        `${tenantId}/svc#1% INTEGRATION_ENDPOINT_COUNT: 3 → 1`,
        `${tenantId}/${withoutItem.id} INTEGRATION_ENDPOINT_COUNT: (no item) → 1`,
        `${tenantId}/${orphan} INTEGRATION_ENDPOINT_COUNT: 1 → (no item)`,
        '4 owner(s) checked, 3 count item(s) changed',
      ].sort(),
    );
    expect(await countItem(countKey(withoutItem))).toMatchObject({ count: 1 });
    expect(await rebuilder.listEndpointOwners(tenantId)).toEqual(
      [drifted.id, withoutItem.id, exact.id].sort(),
    );
  });

  it('recounts only the owners named', async () => {
    const machine = machineWithId(`c-${randomUUID()}`);
    await register(machine);
    await putCount(countKey(machine), { count: 2 });
    const lines: string[] = [];
    await recountOwners(rebuilder, { tenantId: 'default', owners: [machine.id], dryRun: false }, (line) =>
      lines.push(line),
    );
    expect(lines).toEqual([
      `default/${machine.id} INTEGRATION_ENDPOINT_COUNT: 2 → 1`,
      '1 owner(s) checked, 1 count item(s) changed',
    ]);
  });

  it('runs as a command: prints the changes, and exits 1 with the reason on bad arguments', async () => {
    const machine = machineWithId(`c-${randomUUID()}`);
    await register(machine);
    await putCount(countKey(machine), { count: 2 });
    const run = (args: string[]) =>
      promisify(execFile)('node_modules/.bin/tsx', ['bin/recount-webhook-owners.ts', ...args], {
        env: {
          ...process.env,
          AWS_ENDPOINT_URL_DYNAMODB: inject('dynamoDbEndpoint'),
          AWS_REGION: 'us-east-1',
        },
      });
    const dryRun = await run(['--table', testTableNames.toolkit, '--owner', machine.id, '--dry-run']);
    expect(dryRun.stdout).toBe(
      `default/${machine.id} INTEGRATION_ENDPOINT_COUNT: 2 → 1\n` +
        '1 owner(s) checked, 1 count item(s) would change (dry run, nothing written)\n',
    );
    expect(await countItem(countKey(machine))).toMatchObject({ count: 2 });
    await run(['--table', testTableNames.toolkit, '--owner', machine.id]);
    expect(await countItem(countKey(machine))).toMatchObject({ count: 1 });

    await expect(run(['--owner', machine.id])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^--table \(the toolkit table\) is required\n\nUsage:/),
    });
  });

  it('parses its arguments and refuses bad ones with the usage', () => {
    expect(
      parseRecountArguments(['--table', 'toolkit', '--owner', 'a', '--owner', 'b', '--owner', 'a']),
    ).toEqual({
      table: 'toolkit',
      tenantId: 'default',
      owners: ['a', 'b'],
      dryRun: false,
    });
    expect(parseRecountArguments(['--table', 't', '--tenant', 't1', '--dry-run'])).toEqual({
      table: 't',
      tenantId: 't1',
      owners: [],
      dryRun: true,
    });
    expect(() => parseRecountArguments([])).toThrow(/--table \(the toolkit table\) is required[\s\S]*Usage/);
    expect(() => parseRecountArguments(['--table'])).toThrow(/--table[\s\S]*Usage/);
    expect(() => parseRecountArguments(['--table', 't', '--bogus'])).toThrow(/bogus[\s\S]*Usage/);
    expect(() => parseRecountArguments(['--table', 't', 'extra'])).toThrow(/extra[\s\S]*Usage/);
    expect(() => parseRecountArguments(['--table', 't', '--owner', ''])).toThrow(/--owner must not be empty/);
    expect(() => parseRecountArguments(['--table', 't', '--tenant', ' '])).toThrow(
      /--tenant must not be empty/,
    );
    expect(() => parseRecountArguments(['--table', 't', '--dry-run=yes'])).toThrow(/dry-run[\s\S]*Usage/);
    expect(() => parseRecountArguments(['--help'])).toThrow(HelpRequested);
  });
});
