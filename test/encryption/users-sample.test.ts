// The sample users: email, phone and name encrypted at rest, the email claim by blind index, nothing in clear.
import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  DeleteItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { emailClaimKey, userKey } from '../../functions/shared/keys.js';
import { defaultTenantId } from '../../functions/shared/tenant.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError, EncryptionError, NotFoundError } from '../../middleware/errors.js';
import type { SecurityEvent, SecurityEventListener } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import { rejectionOf } from './helpers.js';

// An admin human: passes every users route (GET needs a principal, the admin routes role admin).
const api = useLocalRuntime({ as: adminUser });
const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documentClient = createDocumentClient(dynamoDb);

interface Created {
  id: string;
  email: string;
  name: string;
  phone?: string;
  createdAt: string;
}

/** The users model over the runtime's own key (the runtime sets ENCRYPTION_KEY when it starts). */
function runtimeModel(tenantId = defaultTenantId, onEvent?: SecurityEventListener): UsersModel {
  const encryptor = new Encryptor({
    keyProvider: new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' }),
    keyContextFields: ['tenantId'],
    ...(onEvent ? { onEvent } : {}),
  });
  return new UsersModel(documentClient, testTableNames.app, encryptor, tenantId);
}

async function scanApp(): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  for (let page = 0; page < 100; page += 1) {
    const result = await dynamoDb.send(
      new ScanCommand({ TableName: testTableNames.app, ExclusiveStartKey: start }),
    );
    items.push(...(result.Items ?? []));
    start = result.LastEvaluatedKey;
    if (!start) break;
  }
  return items;
}

/** Every string and every binary value (as latin1 and utf8 text) anywhere in an item. */
function textsOf(value: AttributeValue): string[] {
  if (value.S !== undefined) return [value.S];
  if (value.N !== undefined) return [value.N];
  if (value.B !== undefined)
    return [Buffer.from(value.B).toString('latin1'), Buffer.from(value.B).toString('utf8')];
  if (value.L !== undefined) return value.L.flatMap(textsOf);
  if (value.M !== undefined) return Object.values(value.M).flatMap(textsOf);
  if (value.SS !== undefined) return value.SS;
  return [];
}

/** A person's name no other registration uses: letters only, as the register route requires. */
function uniqueName(first: string): string {
  const letters = randomUUID()
    .replaceAll('-', '')
    .replace(/\d/g, (digit) => 'ghijklmnop'[Number(digit)] as string);
  return `${first} ${letters}`;
}

/** The user as the admin list shows it, paging through every user registered so far. */
async function listed(id: string): Promise<Created | undefined> {
  let cursor: string | undefined;
  do {
    const response = await api.request(
      'GET',
      `/admin/users?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(response.status).toBe(200);
    const page = response.body as { items: Created[]; nextCursor?: string };
    const found = page.items.find((user) => user.id === id);
    if (found) return found;
    cursor = page.nextCursor;
  } while (cursor);
  return undefined;
}

async function register(body: Record<string, unknown>): Promise<Created> {
  const response = await api.request('POST', '/users', { body });
  expect(response.status).toBe(201);
  return response.body as Created;
}

describe('users stored encrypted', () => {
  it('registers a user with a phone and reads both fields back decrypted', async () => {
    const email = `Enc-${randomUUID()}@Example.com`;
    const created = await register({ email, name: 'Ada', phone: '+14155552671' });
    expect(created).toMatchObject({ email, name: 'Ada', phone: '+14155552671' });
    const read = await api.request('GET', `/users/${created.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created);
    expect(await runtimeModel().get(created.id)).toEqual(created);
    const listed = await api.request('GET', '/admin/users?limit=100');
    expect(listed.status).toBe(200);
    const items = (listed.body as { items: Created[] }).items;
    expect(items.every((user) => typeof user.email === 'string' && user.email.includes('@'))).toBe(true);
  });

  it('keeps no email, phone, name or lower-cased email readable anywhere in the app table', async () => {
    const email = `Secret.Person-${randomUUID()}@Example.org`;
    const phone = '+14155552671';
    const name = uniqueName('Grace');
    const created = await register({ email, name, phone });
    const items = await scanApp();
    const texts = items.flatMap((item) => Object.values(item).flatMap(textsOf));
    for (const needle of [
      email,
      email.toLowerCase(),
      email.split('@')[0] as string,
      phone,
      phone.slice(1),
      name,
      name.split(' ')[1] as string,
    ]) {
      expect(texts.some((text) => text.includes(needle))).toBe(false);
    }
    const user = items.find((item) => item.pk?.S === `USER#${created.id}` && item.sk?.S === 'USER');
    expect(user?.email?.B).toBeInstanceOf(Uint8Array);
    expect(user?.phone?.B).toBeInstanceOf(Uint8Array);
    expect(user?.name?.B).toBeInstanceOf(Uint8Array);
    expect(user?._dataKey?.B).toBeInstanceOf(Uint8Array);
    expect(user?.tenantId?.S).toBe(defaultTenantId);
    const claim = items.find((item) => item.sk?.S === 'EMAIL' && item.userId?.S === created.id);
    expect(claim?.pk?.S).toMatch(/^EMAIL#[A-Za-z0-9_-]{22}$/);
    expect(claim?.pk?.S).toBe(`EMAIL#${user?.emailIndex?.S}`);
  });

  it('reads a sealed name back decrypted on get, in the admin list and through the model', async () => {
    const name = uniqueName('Ada');
    const created = await register({ email: `named-${randomUUID()}@example.com`, name });
    expect(created.name).toBe(name);
    expect((await storedUser(created.id)).name).toBeInstanceOf(Uint8Array);
    const read = await api.request('GET', `/users/${created.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created);
    expect(await listed(created.id)).toEqual(created);
    expect(await runtimeModel().get(created.id)).toEqual(created);
  });

  it('refuses an item whose sealed name was replaced with plain text, as tampered', async () => {
    const model = runtimeModel(`plain-${randomUUID()}`);
    const created = await model.register({ email: `plain-${randomUUID()}@example.com`, name: 'Sealed' });
    await documentClient.send(
      new PutCommand({
        TableName: testTableNames.app,
        Item: { ...(await storedUser(created.id)), name: 'Forged' },
      }),
    );
    const error = await rejectionOf(model.get(created.id));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error).toMatchObject({ field: 'name' });
  });

  it('stores no phone attribute when none is given', async () => {
    const created = await register({ email: `nophone-${randomUUID()}@example.com`, name: 'Lin' });
    expect(created).not.toHaveProperty('phone');
    const items = await scanApp();
    expect(
      items.find((item) => item.pk?.S === `USER#${created.id}` && item.sk?.S === 'USER'),
    ).not.toHaveProperty('phone');
  });

  it('lets one of nine registrations of one email in different cases, sent back to back through the runtime, succeed', async () => {
    // The runtime runs one users invocation at a time, so these arrive one after another; the race itself,
    // on separate instances at once, is in test/e2e/model-races.test.ts.
    const local = `race-${randomUUID()}`;
    const variants = [`${local}@example.com`, `${local.toUpperCase()}@EXAMPLE.COM`, `${local}@Example.Com`];
    const responses = await Promise.all(
      Array.from({ length: 9 }, (_, index) =>
        api.request('POST', '/users', { body: { email: variants[index % 3], name: 'Racer' } }),
      ),
    );
    expect(responses.map((response) => response.status).sort()).toEqual([201, ...Array(8).fill(409)]);
  });

  it.each([
    ['not a number', 'call me'],
    ['a national format', '07911 123456'],
    ['spaces', '+44 7911 123456'],
    ['an impossible number', '+4412'],
    ['an unassigned country code', '+8081234567'],
    ['too long', '+1415555267112345'],
    ['a landline (no SMS reaches it)', '+442079460000'],
    ['a landline in a plan with its own mobile ranges', '+33145453245'],
    ['a number type', 14155552671],
  ])('rejects a phone that is %s with a 400 and writes nothing', async (_name, phone) => {
    const email = `badphone-${randomUUID()}@example.com`;
    const response = await api.request('POST', '/users', { body: { email, name: 'X', phone } });
    expect(response.status).toBe(400);
    expect((response.body as { errors: { field: string }[] }).errors.map((error) => error.field)).toContain(
      'body.phone',
    );
    await expect(runtimeModel().findByEmail(email)).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each([
    ['a mobile of a region SMS codes do not go to', '+447400123456'],
    ['a mobile of a +1 region other than the US', '+18762101234'],
    ['a mobile of the Channel Islands (+44 but not GB)', '+447911123456'],
    ['a satellite phone (no region)', '+8816212345678'],
  ])('refuses a phone that is %s with a 400 naming the regions, and writes nothing', async (_name, phone) => {
    const email = `region-${randomUUID()}@example.com`;
    const response = await api.request('POST', '/users', { body: { email, name: 'X', phone } });
    expect(response.status).toBe(400);
    expect((response.body as { errors: { field: string; message: string }[] }).errors).toEqual([
      {
        field: 'body.phone',
        message: 'Must be a mobile phone number of a region SMS codes are sent to (US)',
      },
    ]);
    await expect(runtimeModel().findByEmail(email)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('answers a tampered stored value with a generic 500 (a DecryptionError inside), never plaintext', async () => {
    const created = await register({ email: `tamper-${randomUUID()}@example.com`, name: 'Eve' });
    const items = await scanApp();
    const stored = items.find((item) => item.pk?.S === `USER#${created.id}` && item.sk?.S === 'USER')?.email
      ?.B as Uint8Array;
    const tampered = Buffer.from(stored);
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    await dynamoDb.send(
      new UpdateItemCommand({
        TableName: testTableNames.app,
        Key: { pk: { S: `USER#${created.id}` }, sk: { S: 'USER' } },
        // Out of the listing index too, so other files' admin listings never meet this poisoned record.
        UpdateExpression: 'SET email = :email REMOVE gsi1pk, gsi1sk',
        ExpressionAttributeValues: { ':email': { B: tampered } },
      }),
    );
    // A server fault: httpErrorHandler renders it as a generic 500 whose detail only reaches the log.
    const response = await api.request('GET', `/users/${created.id}`);
    expect(response.status).toBe(500);
    expect(response.text).not.toContain('tamper-');
    expect(response.text).not.toContain('authentication');
    const error = await rejectionOf(runtimeModel().get(created.id));
    await dynamoDb.send(
      new DeleteItemCommand({
        TableName: testTableNames.app,
        Key: { pk: { S: `USER#${created.id}` }, sk: { S: 'USER' } },
      }),
    );
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error).toMatchObject({ reason: 'authentication_failed', field: 'email' });
    expect(error.message).not.toContain('tamper-');
  });
});

/** The stored item of a user, as a table writer sees it. */
async function storedUser(id: string): Promise<Record<string, unknown>> {
  const { Item } = await documentClient.send(
    new GetCommand({ TableName: testTableNames.app, Key: userKey(id) }),
  );
  return Item as Record<string, unknown>;
}

/**
 * What someone who can write the table but not use the key can do: put the victim's sealed fields and
 * data-key header, and with `withId` the victim's plain `id` attribute too, under the mover's own key.
 * `unlisted` also takes the item out of the listing index, so other files' admin listings never meet it.
 */
async function moveSealedFields(
  victimId: string,
  moverId: string,
  { withId, unlisted = false }: { withId: boolean; unlisted?: boolean },
): Promise<void> {
  const [victim, mover] = await Promise.all([storedUser(victimId), storedUser(moverId)]);
  const { gsi1pk, gsi1sk, ...moverUnlisted } = mover;
  await documentClient.send(
    new PutCommand({
      TableName: testTableNames.app,
      Item: {
        ...(unlisted ? moverUnlisted : mover),
        email: victim.email,
        phone: victim.phone,
        name: victim.name,
        _dataKey: victim._dataKey,
        ...(withId ? { id: victim.id } : {}),
      },
    }),
  );
}

describe('sealed fields moved to another user', () => {
  it("refuses a victim's fields and header under another user's key", async () => {
    const model = runtimeModel(`moved-${randomUUID()}`);
    const victim = await model.register({ email: `victim-${randomUUID()}@example.com`, name: 'V' });
    const mover = await model.register({ email: `mover-${randomUUID()}@example.com`, name: 'M' });
    await moveSealedFields(victim.id, mover.id, { withId: false });
    const error = await rejectionOf(model.get(mover.id));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('authentication_failed');
  });

  it("refuses a victim's sealed name alone under another user's key: the name is bound to its user", async () => {
    const model = runtimeModel(`moved-${randomUUID()}`);
    const victim = await model.register({ email: `victim-${randomUUID()}@example.com`, name: 'Victim' });
    const mover = await model.register({ email: `mover-${randomUUID()}@example.com`, name: 'Mover' });
    const [stored, moverItem] = await Promise.all([storedUser(victim.id), storedUser(mover.id)]);
    // One tenant, one data key: the mover's header opens the victim's name, only its AAD (the userId) differs.
    expect(moverItem._dataKey).toEqual(stored._dataKey);
    await documentClient.send(
      new PutCommand({ TableName: testTableNames.app, Item: { ...moverItem, name: stored.name } }),
    );
    const error = await rejectionOf(model.get(mover.id));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error).toMatchObject({ reason: 'authentication_failed', field: 'name' });
  });

  it("refuses them with the victim's id copied too on get, and lists the mover as unreadable, naming no personal data", async () => {
    // Its own tenant: the list reads every tenant's users but decrypts only its own, so no other file meets this item.
    const events: SecurityEvent[] = [];
    const model = runtimeModel(`moved-${randomUUID()}`, (event) => events.push(event));
    const victimEmail = `victim-${randomUUID()}@example.com`;
    const victim = await model.register({ email: victimEmail, name: 'V', phone: '+447911123456' });
    const mover = await model.register({ email: `mover-${randomUUID()}@example.com`, name: 'M' });
    await moveSealedFields(victim.id, mover.id, { withId: true });
    const moved = {
      type: 'decryption.failed',
      reason: 'record_moved',
      metadata: expect.objectContaining({
        keyContextFields: ['tenantId'],
        contextFields: ['tenantId', 'userId'],
      }),
    };

    const error = await rejectionOf(model.get(mover.id));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('record_moved');
    expect(error.message).not.toContain(victimEmail);
    // Listed as unreadable, by the key's id: no field of the victim's is decrypted.
    let cursor: string | undefined;
    const listed: unknown[] = [];
    do {
      const page = await model.list(100, cursor);
      listed.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    expect(listed).toContainEqual({ id: mover.id, createdAt: mover.createdAt, unreadable: 'record_moved' });
    // Refused before decrypting, and reported as a decryption refusal: once for the get, once for the list.
    const failures = events.filter((event) => event.type === 'decryption.failed');
    expect(failures).toEqual([moved, moved]);
    expect(JSON.stringify(failures)).not.toContain(victimEmail);
    // The victim's email is listed once, the victim's own.
    expect(listed.filter((user) => JSON.stringify(user).includes(victimEmail))).toEqual([victim]);
    // The victim's own record is untouched and still reads.
    expect(await model.get(victim.id)).toEqual(victim);
  });

  it("answers GET of the mover's id with a generic 500, never the victim's email", async () => {
    const victimEmail = `victim-${randomUUID()}@example.com`;
    const victim = await register({ email: victimEmail, name: 'V' });
    const mover = await register({ email: `mover-${randomUUID()}@example.com`, name: 'M' });
    await moveSealedFields(victim.id, mover.id, { withId: true, unlisted: true });
    const response = await api.request('GET', `/users/${mover.id}`);
    await dynamoDb.send(
      new DeleteItemCommand({
        TableName: testTableNames.app,
        Key: { pk: { S: `USER#${mover.id}` }, sk: { S: 'USER' } },
      }),
    );
    expect(response.status).toBe(500);
    expect(response.text).not.toContain(victimEmail);
    expect(response.text).not.toContain(victim.id);
  });
});

describe('UsersModel with encryption', () => {
  it('finds a user by email in any case through the blind index', async () => {
    const email = `Find.Me-${randomUUID()}@Example.com`;
    const created = await register({ email, name: 'Finder' });
    const model = runtimeModel();
    expect(await model.findByEmail(email.toLowerCase())).toEqual(created);
    expect(await model.findByEmail(`  ${email.toUpperCase()}`)).toEqual(created);
    await expect(model.findByEmail(`nobody-${randomUUID()}@example.com`)).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('finds no user by email when the email claim names a user with another email', async () => {
    const aliceEmail = `alice-${randomUUID()}@example.com`;
    const alice = await register({ email: aliceEmail, name: 'Alice' });
    const mallory = await register({ email: `mallory-${randomUUID()}@example.com`, name: 'Mallory' });
    const { Item: aliceItem } = await documentClient.send(
      new GetCommand({ TableName: testTableNames.app, Key: userKey(alice.id) }),
    );
    // The claim's userId is a plain attribute: a table writer re-points Alice's claim at Mallory.
    await documentClient.send(
      new UpdateCommand({
        TableName: testTableNames.app,
        Key: emailClaimKey(String(aliceItem?.emailIndex)),
        UpdateExpression: 'SET userId = :mallory',
        ExpressionAttributeValues: { ':mallory': mallory.id },
      }),
    );
    const events: SecurityEvent[] = [];
    const error = await rejectionOf(
      runtimeModel(defaultTenantId, (event) => events.push(event)).findByEmail(aliceEmail),
    );
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.cause).toBeInstanceOf(DecryptionError);
    expect((error.cause as DecryptionError).reason).toBe('record_moved');
    expect(events.filter((event) => event.type === 'decryption.failed')).toEqual([
      {
        type: 'decryption.failed',
        reason: 'record_moved',
        metadata: { providerId: 'local', contextFields: ['tenantId', 'userId'] },
      },
    ]);
  });

  it('treats a user of another tenant as absent', async () => {
    const created = await register({ email: `tenant-${randomUUID()}@example.com`, name: 'Tenant' });
    await expect(runtimeModel('other-tenant').get(created.id)).rejects.toBeInstanceOf(NotFoundError);
    const page = await runtimeModel('other-tenant').list(100);
    expect(page.items.map((user) => user.id)).not.toContain(created.id);
  });

  it('writes nothing at all when the key provider is unavailable', async () => {
    const inner = new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' });
    const unavailable = new Encryptor({
      keyProvider: {
        providerId: inner.providerId,
        currentKeyId: inner.currentKeyId,
        generateDataKey: async () => {
          throw new Error('KMS unreachable');
        },
        decryptDataKey: (key, context) => inner.decryptDataKey(key, context),
        deriveIndexKey: (name) => inner.deriveIndexKey(name),
      },
      keyContextFields: ['tenantId'],
    });
    const model = new UsersModel(documentClient, testTableNames.app, unavailable);
    const name = `Unwritten ${randomUUID()}`;
    const email = `down-${randomUUID()}@example.com`;
    const error = await rejectionOf(model.register({ email, name, phone: '+14155552671' }));
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error.reason).toBe('key_unavailable');
    const texts = (await scanApp()).flatMap((item) => Object.values(item).flatMap(textsOf));
    expect(texts.some((text) => text.includes(name))).toBe(false);
    await expect(runtimeModel().findByEmail(email)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('releases the blind-index claim on delete, so the email can register again', async () => {
    const email = `again-${randomUUID()}@example.com`;
    const created = await register({ email, name: 'Once' });
    expect((await api.request('DELETE', `/admin/users/${created.id}`)).status).toBe(204);
    await expect(runtimeModel().findByEmail(email)).rejects.toBeInstanceOf(NotFoundError);
    expect((await register({ email: email.toUpperCase(), name: 'Twice' })).name).toBe('Twice');
  });
});
