// Users whose stored fields cannot be decrypted (sealed under a key no longer configured, tampered, written in
// clear before encryption): the admin list shows them without their fields, the admin can delete them, and a
// read of one says what went wrong.
import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { emailClaimKey, phoneCodeKey, userKey } from '../../functions/shared/keys.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { decodeHeader, encodeHeader, keyRefOf } from '../../middleware/encryption/format.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { rejectionOf } from '../encryption/helpers.js';
import { captureStdout } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// Read when the users function builds its logger, at the runtime's start: the warning is what is asserted.
process.env.POWERTOOLS_LOG_LEVEL = 'WARN';
const output = captureStdout();
// Tables of the file's own: the suite's other admin listings never meet these unreadable users.
const api = useLocalRuntime({ as: adminUser, ownAppTable: true, ownToolkitTable: true });
const documents = () =>
  createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));

interface Registered {
  id: string;
  email: string;
  name: string;
  phone?: string;
  createdAt: string;
  expiresAt: string;
}

async function register(): Promise<Registered> {
  const response = await api.request('POST', '/users', {
    body: { email: `unreadable-${randomUUID()}@example.com`, name: 'Olga Old', phone: '+14155552671' },
  });
  expect(response.status).toBe(201);
  return response.body as Registered;
}

async function storedItem(key: Record<string, string>): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documents().send(
    new GetCommand({ TableName: api.runtime().tableNames.app, Key: key, ConsistentRead: true }),
  );
  return Item;
}

async function putItem(item: Record<string, unknown>): Promise<void> {
  await documents().send(new PutCommand({ TableName: api.runtime().tableNames.app, Item: item }));
}

/** Re-seals the user's fields under a key the runtime does not hold: a record never re-encrypted before its key was dropped. */
async function sealUnderDroppedKey(user: Registered): Promise<void> {
  const { _dataKey, email, name, phone, ...clear } = (await storedItem(userKey(user.id))) ?? {};
  const dropped = new Encryptor({
    keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }),
    keyContextFields: ['tenantId'],
  });
  await putItem(
    await dropped.encryptFields(
      { ...clear, email: user.email, name: user.name, phone: user.phone },
      ['email', 'name', 'phone'],
      { tenantId: 'default', userId: user.id },
    ),
  );
}

/** Puts the name back in clear, as a record written before names were encrypted. */
async function writeNameInClear(user: Registered): Promise<void> {
  await putItem({ ...(await storedItem(userKey(user.id))), name: user.name });
}

/**
 * Rewrites the record's header to name `toString` as its key context, a member every context object only
 * inherits, and fixes each field's key reference to match: what someone who can write the table can do.
 */
async function forgeHeaderNamingInherited(user: Registered): Promise<void> {
  const item = (await storedItem(userKey(user.id))) ?? {};
  const header = encodeHeader({
    ...decodeHeader(Buffer.from(item._dataKey as Uint8Array)),
    keyContextNames: ['toString'],
  });
  const fields = Object.fromEntries(
    ['email', 'name', 'phone'].map((field) => {
      const bytes = Buffer.from(item[field] as Uint8Array);
      keyRefOf(header).copy(bytes, 1);
      return [field, bytes];
    }),
  );
  await putItem({ ...item, ...fields, _dataKey: header });
}

async function listAll(): Promise<Record<string, unknown>[]> {
  const response = await api.request('GET', '/admin/users?limit=100');
  expect(response.status).toBe(200);
  return (response.body as { items: Record<string, unknown>[] }).items;
}

describe('a user whose fields cannot be decrypted', () => {
  it('is listed by id, creation time and reason, among the readable users of its page, with a warning naming no personal data', async () => {
    const readable = await register();
    const dropped = await register();
    const clear = await register();
    await sealUnderDroppedKey(dropped);
    await writeNameInClear(clear);
    output.clear();

    const items = await listAll();
    expect(items.find((item) => item.id === readable.id)).toEqual(readable);
    expect(items.find((item) => item.id === dropped.id)).toEqual({
      id: dropped.id,
      createdAt: dropped.createdAt,
      unreadable: 'key_not_allowed',
    });
    expect(items.find((item) => item.id === clear.id)).toEqual({
      id: clear.id,
      createdAt: clear.createdAt,
      unreadable: 'malformed',
    });
    const warnings = output
      .json()
      .filter(
        (line) => line.message === 'A listed user cannot be decrypted; it is listed without its fields',
      );
    expect(warnings.map(({ level, userId, reason }) => ({ level, userId, reason }))).toEqual([
      { level: 'WARN', userId: dropped.id, reason: 'key_not_allowed' },
      { level: 'WARN', userId: clear.id, reason: 'malformed' },
    ]);
    const lines = output.lines().join('\n');
    expect(lines).not.toContain(dropped.email);
    expect(lines).not.toContain(clear.email);
  });

  it('is read as a 500 DECRYPTION_FAILED problem that says the stored record could not be decrypted', async () => {
    const user = await register();
    await sealUnderDroppedKey(user);
    const response = await api.request('GET', `/users/${user.id}`);
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.body).toMatchObject({
      type: 'urn:bulwark:problem:decryption-failed',
      title: 'Internal Server Error',
      status: 500,
      code: 'DECRYPTION_FAILED',
      detail: 'A stored record could not be decrypted',
    });
    expect(response.text).not.toContain('key_not_allowed');
  });

  it('is one whose forged header names a context member only inherited: unreadable, not a key outage', async () => {
    const readable = await register();
    const forged = await register();
    await forgeHeaderNamingInherited(forged);
    const items = await listAll();
    expect(items.find((item) => item.id === readable.id)).toEqual(readable);
    expect(items.find((item) => item.id === forged.id)).toEqual({
      id: forged.id,
      createdAt: forged.createdAt,
      unreadable: 'invalid_context',
    });
    const response = await api.request('GET', `/users/${forged.id}`);
    expect(response.status).toBe(500);
    expect(response.headers.get('retry-after')).toBeNull();
    expect(response.body).toMatchObject({ code: 'DECRYPTION_FAILED' });
  });

  it('is deleted by the admin with its email claim and phone code, and its email can register again', async () => {
    for (const makeUnreadable of [sealUnderDroppedKey, writeNameInClear]) {
      const user = await register();
      const { emailIndex } = (await storedItem(userKey(user.id))) as { emailIndex: string };
      await putItem({ ...phoneCodeKey(user.id), codeHash: 'x', attempts: 0 });
      await makeUnreadable(user);

      expect((await api.request('DELETE', `/admin/users/${user.id}`)).status).toBe(204);
      expect(await storedItem(userKey(user.id))).toBeUndefined();
      expect(await storedItem(emailClaimKey(emailIndex))).toBeUndefined();
      expect(await storedItem(phoneCodeKey(user.id))).toBeUndefined();
      expect((await api.request('DELETE', `/admin/users/${user.id}`)).status).toBe(404);
      const again = await api.request('POST', '/users', { body: { email: user.email, name: 'Back' } });
      expect(again.status).toBe(201);
    }
  });

  it('still fails the whole list when the key service cannot answer: no readable user is shown as unreadable', async () => {
    await register();
    const runtimeKey = new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' });
    const keyServiceDown = new Encryptor({
      keyProvider: {
        providerId: runtimeKey.providerId,
        currentKeyId: runtimeKey.currentKeyId,
        generateDataKey: (context) => runtimeKey.generateDataKey(context),
        decryptDataKey: async () => {
          throw new DecryptionError('key_unavailable', 'KMS Decrypt failed (KMSInternalException)');
        },
        deriveIndexKey: (name) => runtimeKey.deriveIndexKey(name),
      },
      keyContextFields: ['tenantId'],
    });
    const model = new UsersModel(documents(), api.runtime().tableNames.app, keyServiceDown);
    const error = await rejectionOf(model.list(100));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error).toMatchObject({ reason: 'key_unavailable' });
  });
});
