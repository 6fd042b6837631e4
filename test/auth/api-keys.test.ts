import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import {
  InvalidOptionsError,
  InvalidTokenError,
  ServiceUnavailableError,
  ValidationError,
} from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testTableNames } from '../helpers/tables.js';
import { reasonOf } from './helpers.js';

const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const tableName = testTableNames.toolkit;
const owner = () => `owner-${randomUUID()}`;

function store(options: Partial<ConstructorParameters<typeof ApiKeyStore>[0]> = {}): ApiKeyStore {
  return new ApiKeyStore({ client: documentClient, tableName, ...options });
}

async function rawItem(keyId: string): Promise<Record<string, unknown> | undefined> {
  const result = await documentClient.send(
    new GetCommand({ TableName: tableName, Key: { pk: `APIKEY#${keyId}`, sk: 'APIKEY' } }),
  );
  return result.Item;
}

/** What DynamoDB's TTL eventually does to an item past its `expiresAt`. */
async function deleteLikeTtl(keyId: string): Promise<void> {
  await documentClient.send(
    new DeleteCommand({ TableName: tableName, Key: { pk: `APIKEY#${keyId}`, sk: 'APIKEY' } }),
  );
}

/** The secret part of `bwk_<keyId>_<secret>` (base64url, so it may hold `_` itself). */
const secretOf = (key: string) => key.split('_').slice(2).join('_');
const sha256 = (secret: string) => createHash('sha256').update(secret).digest('hex');
const hmac = (pepper: string, secret: string) => createHmac('sha256', pepper).update(secret).digest('hex');

/** Makes a key's item what the store wrote before hash schemes were recorded. */
async function forgetHashScheme(keyId: string): Promise<void> {
  await documentClient.send(
    new UpdateCommand({
      TableName: tableName,
      Key: { pk: `APIKEY#${keyId}`, sk: 'APIKEY' },
      UpdateExpression: 'REMOVE hashScheme',
    }),
  );
}

/** A key of the right shape whose id no key has (ids are random: a collision is a 2^-64 chance). */
const madeUpKey = () => `bwk_${randomBytes(8).toString('hex')}_${'B'.repeat(43)}`;

/** Counts the key reads (GetItem) the store makes from now on. */
function readCounter(): () => number {
  const send = vi.spyOn(documentClient, 'send');
  return () => send.mock.calls.filter(([command]) => command instanceof GetCommand).length;
}

const day = 24 * 60 * 60 * 1000;
const epochSeconds = (ms: number) => Math.floor(ms / 1000);

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('ApiKeyStore', () => {
  it('creates a key, shows its plaintext once and stores only a SHA-256 of the secret', async () => {
    const created = await store().create(owner(), ['bookings/read']);
    expect(created.key).toMatch(/^bwk_[0-9a-f]{16}_[\w-]{43}$/);
    const item = await rawItem(created.keyId);
    const secret = created.key.split('_').slice(2).join('_');
    expect(JSON.stringify(item)).not.toContain(secret);
    expect(item?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(created).not.toHaveProperty('secretHash');
  });

  it('verifies a key into a machine principal with its scopes', async () => {
    const apiKeys = store();
    const created = await apiKeys.create('alice', ['bookings/read', 'bookings/write'], { tenantId: 't1' });
    const principal = await apiKeys.verify(created.key);
    expect(principal).toEqual({
      id: created.keyId,
      isM2M: true,
      clientId: undefined,
      email: undefined,
      scopes: ['bookings/read', 'bookings/write'],
      roles: [],
      tenantId: 't1',
      authMethod: 'apiKey',
      claims: { keyId: created.keyId, owner: 'alice' },
    });
  });

  it('rejects a wrong secret for a real key id, an unknown id and a malformed key', async () => {
    const apiKeys = store();
    const created = await apiKeys.create(owner(), []);
    const wrongSecret = `${created.key.slice(0, 21)}${'A'.repeat(43)}`;
    expect(await reasonOf(apiKeys.verify(wrongSecret))).toBe('unknown_key');
    expect(await reasonOf(apiKeys.verify(`bwk_0123456789abcdef_${'A'.repeat(43)}`))).toBe('unknown_key');
    for (const malformed of ['', 'bwk_', 'not-a-key', `${created.key}x`, created.key.toUpperCase()]) {
      expect(await reasonOf(apiKeys.verify(malformed))).toBe('malformed');
    }
  });

  it('answers unknown_key, not a server error, for a key whose stored hash is not a digest long', async () => {
    const created = await store().create(owner(), []);
    const truncatedHash = sha256(secretOf(created.key)).slice(0, 32);
    await documentClient.send(
      new UpdateCommand({
        TableName: tableName,
        Key: { pk: `APIKEY#${created.keyId}`, sk: 'APIKEY' },
        UpdateExpression: 'SET secretHash = :hash',
        ExpressionAttributeValues: { ':hash': truncatedHash },
      }),
    );
    expect(await reasonOf(store().verify(created.key))).toBe('unknown_key');
    expect(await rawItem(created.keyId)).toMatchObject({ secretHash: truncatedHash });
  });

  it('rejects a revoked key at once on the revoking instance, and on others within the cache bound', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const revoker = store();
    const other = store();
    const created = await revoker.create(owner(), []);
    await other.verify(created.key);
    expect(await revoker.revoke(created.keyId)).toBe(true);
    expect(await reasonOf(revoker.verify(created.key))).toBe('revoked');
    await expect(other.verify(created.key)).resolves.toBeDefined();
    vi.setSystemTime(Date.now() + 60_000);
    expect(await reasonOf(other.verify(created.key))).toBe('revoked');
  });

  it('caches no copy of a key whose read was in flight while it was revoked', async () => {
    const apiKeys = store();
    const created = await apiKeys.create(owner(), []);
    const original = documentClient.send.bind(documentClient);
    let readServed!: () => void;
    const served = new Promise<void>((resolve) => {
      readServed = resolve;
    });
    let deliverAnswer!: () => void;
    const answerArrives = new Promise<void>((resolve) => {
      deliverAnswer = resolve;
    });
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      const result = await original(command as never);
      if (command instanceof GetCommand) {
        readServed();
        await answerArrives;
      }
      return result;
    }) as typeof documentClient.send);
    const inFlight = apiKeys.verify(created.key);
    await served; // DynamoDB has answered with the key unrevoked; the answer is still on its way
    expect(await apiKeys.revoke(created.keyId)).toBe(true);
    deliverAnswer();
    // That request came before the revocation finished; the next one must not be served its answer.
    await expect(inFlight).resolves.toMatchObject({ id: created.keyId });
    expect(await reasonOf(apiKeys.verify(created.key))).toBe('revoked');
  });

  it('drops a copy of a key read while its revocation was being written', async () => {
    const apiKeys = store();
    const created = await apiKeys.create(owner(), []);
    const original = documentClient.send.bind(documentClient);
    let revocationHeld!: () => void;
    const held = new Promise<void>((resolve) => {
      revocationHeld = resolve;
    });
    let applyRevocation!: () => void;
    const applied = new Promise<void>((resolve) => {
      applyRevocation = resolve;
    });
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof UpdateCommand && command.input.UpdateExpression?.includes('revokedAt')) {
        revocationHeld();
        await applied;
      }
      return original(command as never);
    }) as typeof documentClient.send);
    const revoking = apiKeys.revoke(created.keyId);
    await held;
    await expect(apiKeys.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
    applyRevocation();
    expect(await revoking).toBe(true);
    expect(await reasonOf(apiKeys.verify(created.key))).toBe('revoked');
  });

  it('revokes nothing that does not exist, and never creates an item doing so', async () => {
    expect(await store().revoke('0123456789abcdef')).toBe(false);
    expect(await rawItem('0123456789abcdef')).toBeUndefined();
    expect(await store().revoke('not an id')).toBe(false);
  });

  it('keeps a revoked key without an expiry for 30 days, then lists it no more and TTL may delete it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store({ cacheTtlMs: 0 });
    const alice = owner();
    const created = await apiKeys.create(alice, ['bookings/read']);
    const revokedAt = Date.now();
    expect(await apiKeys.revoke(created.keyId)).toBe(true);
    expect((await rawItem(created.keyId))?.expiresAt).toBe(epochSeconds(revokedAt + 30 * day));

    vi.setSystemTime(revokedAt + 30 * day - 1000);
    expect(await reasonOf(apiKeys.verify(created.key))).toBe('revoked');
    expect((await apiKeys.listByOwner(alice)).map((record) => record.keyId)).toEqual([created.keyId]);

    // Past its expiresAt the item is gone for readers, whether or not TTL has deleted it yet.
    vi.setSystemTime(revokedAt + 30 * day);
    expect(await apiKeys.listByOwner(alice)).toEqual([]);
    await deleteLikeTtl(created.keyId);
    const deleted = await apiKeys.verify(created.key).catch((caught: unknown) => caught);
    const unknown = await apiKeys
      .verify(`bwk_0123456789abcdef_${'A'.repeat(43)}`)
      .catch((caught: unknown) => caught);
    expect(deleted).toBeInstanceOf(InvalidTokenError);
    expect(deleted).toMatchObject({
      statusCode: 401,
      reason: 'unknown_key',
      message: (unknown as InvalidTokenError).message,
      headers: (unknown as InvalidTokenError).headers,
    });
  });

  it("brings a revoked key's expiry forward to the retention, never later, and revoking again keeps it", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store({ revokedRetentionMs: 60 * 60 * 1000 });
    const now = Date.now();
    const longLived = await apiKeys.create(owner(), [], { expiresAt: new Date(now + 365 * day) });
    const shortLived = await apiKeys.create(owner(), [], { expiresAt: new Date(now + 60_000) });
    expect(await apiKeys.revoke(longLived.keyId)).toBe(true);
    expect(await apiKeys.revoke(shortLived.keyId)).toBe(true);
    expect(await rawItem(longLived.keyId)).toMatchObject({ expiresAt: epochSeconds(now + 60 * 60 * 1000) });
    expect(await rawItem(shortLived.keyId)).toMatchObject({
      expiresAt: Math.ceil((now + 60_000) / 1000),
      revokedAt: new Date(now).toISOString(),
    });

    vi.setSystemTime(now + 30 * 60 * 1000);
    const first = await rawItem(longLived.keyId);
    expect(await apiKeys.revoke(longLived.keyId)).toBe(true);
    expect(await rawItem(longLived.keyId)).toEqual(first);
  });

  it('lists an expired key no more, though TTL has not deleted it yet', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store();
    const alice = owner();
    const expiring = await apiKeys.create(alice, [], { expiresAt: new Date(Date.now() + 60_000) });
    const lasting = await apiKeys.create(alice, []);
    vi.setSystemTime(Date.parse(expiring.expiresAt as string));
    expect((await apiKeys.listByOwner(alice)).map((record) => record.keyId)).toEqual([lasting.keyId]);
    expect(await rawItem(expiring.keyId)).toBeDefined();
  });

  it('rejects an expired key', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store();
    const created = await apiKeys.create(owner(), [], { expiresAt: new Date(Date.now() + 60_000) });
    expect(created.expiresAt).toBeDefined();
    await expect(apiKeys.verify(created.key)).resolves.toBeDefined();
    vi.setSystemTime(Date.now() + 61_000);
    expect(await reasonOf(apiKeys.verify(created.key))).toBe('expired');
  });

  it('keeps a key until at least its expiresAt, stored as the second after it, even within the current second', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store({ cacheTtlMs: 0 });
    const second = Math.floor(Date.now() / 1000) * 1000;
    vi.setSystemTime(second + 100);
    const created = await apiKeys.create(owner(), [], { expiresAt: new Date(second + 900) });
    expect(created.expiresAt).toBe(new Date(second + 1000).toISOString());
    expect(await rawItem(created.keyId)).toMatchObject({ expiresAt: second / 1000 + 1 });

    vi.setSystemTime(second + 900);
    await expect(apiKeys.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
    vi.setSystemTime(second + 1000);
    expect(await reasonOf(apiKeys.verify(created.key))).toBe('expired');
  });

  it('reads DynamoDB once per key per cache TTL, not per request, with a strongly consistent read', async () => {
    const apiKeys = store();
    const created = await apiKeys.create(owner(), []);
    const send = vi.spyOn(documentClient, 'send');
    for (let index = 0; index < 20; index += 1) await apiKeys.verify(created.key);
    const gets = send.mock.calls.filter(([command]) => command instanceof GetCommand);
    expect(gets).toHaveLength(1);
    // An eventually consistent read just after a revocation could cache the key as valid for cacheTtlMs.
    expect(gets.map(([command]) => (command as GetCommand).input.ConsistentRead)).toEqual([true]);
  });

  it('answers 503 when the key cannot be read, and remembers nothing of the failed read', async () => {
    const apiKeys = store();
    const created = await apiKeys.create(owner(), []);
    const original = documentClient.send.bind(documentClient);
    const send = vi.spyOn(documentClient, 'send').mockImplementation(((command: unknown) => {
      if (command instanceof GetCommand) return Promise.reject(new Error('ProvisionedThroughputExceeded'));
      return original(command as never);
    }) as typeof documentClient.send);
    const error = await apiKeys.verify(created.key).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '5' } });
    send.mockRestore();
    await expect(apiKeys.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
  });

  it('caches unknown key ids too, so guessing costs one read per id', async () => {
    const apiKeys = store();
    const send = vi.spyOn(documentClient, 'send');
    const guess = `bwk_fedcba9876543210_${'B'.repeat(43)}`;
    for (let index = 0; index < 5; index += 1) await reasonOf(apiKeys.verify(guess));
    expect(send).toHaveBeenCalledTimes(1);
  });

  it('keeps real keys cached through a flood of made-up key ids: those are cached apart, a tenth as many', async () => {
    const apiKeys = store({ cacheMaxEntries: 10 });
    const keys = await Promise.all([1, 2, 3, 4, 5].map(() => apiKeys.create(owner(), [])));
    for (const created of keys) await apiKeys.verify(created.key);
    const reads = readCounter();
    for (let index = 0; index < 50; index += 1)
      expect(await reasonOf(apiKeys.verify(madeUpKey()))).toBe('unknown_key');
    expect(reads()).toBe(50);
    for (const created of keys) await apiKeys.verify(created.key);
    expect(reads()).toBe(50);
  });

  it('drops the least recently used key when full, not the one read first', async () => {
    const apiKeys = store({ cacheMaxEntries: 2 });
    const [first, second, third] = (await Promise.all([1, 2, 3].map(() => apiKeys.create(owner(), [])))).map(
      (created) => created.key,
    ) as [string, string, string];
    await apiKeys.verify(first);
    await apiKeys.verify(second);
    const reads = readCounter();
    await apiKeys.verify(first);
    await apiKeys.verify(third);
    expect(reads()).toBe(1);
    // `second`, unused since `first` was, made room for `third`.
    await apiKeys.verify(first);
    expect(reads()).toBe(1);
    await apiKeys.verify(second);
    expect(reads()).toBe(2);
  });

  it('keeps unknown key ids the same way: the least recently asked for goes first', async () => {
    // Room for two unknown ids.
    const apiKeys = store({ cacheMaxEntries: 20 });
    const [first, second, third] = [madeUpKey(), madeUpKey(), madeUpKey()];
    const reads = readCounter();
    for (const guess of [first, second, first, third, first]) await reasonOf(apiKeys.verify(guess));
    expect(reads()).toBe(3);
    await reasonOf(apiKeys.verify(second));
    expect(reads()).toBe(4);
  });

  it('stamps lastUsedAt at most once a minute per key', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store({ cacheTtlMs: 0 });
    const created = await apiKeys.create(owner(), []);
    const send = vi.spyOn(documentClient, 'send');
    for (let index = 0; index < 10; index += 1) await apiKeys.verify(created.key);
    const firstStamp = (await rawItem(created.keyId))?.lastUsedAt;
    expect(firstStamp).toBeTypeOf('number');
    vi.setSystemTime(Date.now() + 30_000);
    await apiKeys.verify(created.key);
    expect((await rawItem(created.keyId))?.lastUsedAt).toBe(firstStamp);
    vi.setSystemTime(Date.now() + 31_000);
    await apiKeys.verify(created.key);
    expect((await rawItem(created.keyId))?.lastUsedAt).toBeGreaterThan(firstStamp as number);
    const updates = send.mock.calls.filter(([command]) => command instanceof UpdateCommand);
    expect(updates).toHaveLength(2);
  });

  it('lets only one of two instances stamp a key in the same minute', async () => {
    const first = store({ cacheTtlMs: 0 });
    const second = store({ cacheTtlMs: 0 });
    const created = await first.create(owner(), []);
    const original = documentClient.send.bind(documentClient);
    const outcomes: string[] = [];
    vi.spyOn(documentClient, 'send').mockImplementation(((command: unknown) => {
      const sent = original(command as never);
      if (command instanceof UpdateCommand) {
        sent.then(
          () => outcomes.push('written'),
          (error: Error) => outcomes.push(error.name),
        );
      }
      return sent;
    }) as typeof documentClient.send);
    // Both instances may read the key before either stamps it: the conditional write lets one win.
    await Promise.all([first.verify(created.key), second.verify(created.key)]);
    expect(outcomes.filter((outcome) => outcome === 'written')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome !== 'written')).toEqual(
      outcomes.length === 2 ? ['ConditionalCheckFailedException'] : [],
    );
  });

  it('goes on when the usage stamp cannot be written', async () => {
    const apiKeys = store({ cacheTtlMs: 0 });
    const created = await apiKeys.create(owner(), []);
    const original = documentClient.send.bind(documentClient);
    vi.spyOn(documentClient, 'send').mockImplementation(((command: unknown) => {
      if (command instanceof UpdateCommand) return Promise.reject(new Error('throttled'));
      return original(command as never);
    }) as typeof documentClient.send);
    await expect(apiKeys.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
  });

  it("lists an owner's keys oldest first, without secrets", async () => {
    const apiKeys = store();
    const alice = owner();
    const first = await apiKeys.create(alice, ['a/read']);
    const second = await apiKeys.create(alice, ['a/write']);
    await apiKeys.create(owner(), []);
    await apiKeys.revoke(second.keyId);
    const listed = await apiKeys.listByOwner(alice);
    expect(listed.map((record) => record.keyId)).toEqual([first.keyId, second.keyId]);
    expect(listed[1]?.revokedAt).toBeDefined();
    expect(JSON.stringify(listed)).not.toMatch(/secretHash|bwk_/);
  });

  it("lists an owner's keys of one tenant only: a key without a tenant only to a call without one", async () => {
    const apiKeys = store();
    const alice = owner();
    const inA = await apiKeys.create(alice, ['bookings/read'], { tenantId: 'tenant-a' });
    const inB = await apiKeys.create(alice, ['bookings/write'], { tenantId: 'tenant-b' });
    const untenanted = await apiKeys.create(alice, []);
    const listed = async (tenantId?: string) =>
      (await apiKeys.listByOwner(alice, { tenantId })).map((record) => [record.keyId, record.tenantId]);
    expect(await listed('tenant-a')).toEqual([[inA.keyId, 'tenant-a']]);
    expect(await listed('tenant-b')).toEqual([[inB.keyId, 'tenant-b']]);
    expect(await listed('tenant-c')).toEqual([]);
    expect(await listed(undefined)).toEqual([[untenanted.keyId, undefined]]);
    expect((await apiKeys.listByOwner(alice)).map((record) => record.keyId)).toEqual([untenanted.keyId]);
  });

  it('revokes with a guard only a key of that tenant and owner; any other answers false and stays as it was', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const apiKeys = store({ cacheTtlMs: 0 });
    const alice = owner();
    const inA = await apiKeys.create(alice, ['bookings/read'], { tenantId: 'tenant-a' });
    // Its own expiry comes before the retention: the revoking write that keeps it must check the guard too.
    const soonInA = await apiKeys.create(alice, [], {
      tenantId: 'tenant-a',
      expiresAt: new Date(Date.now() + 60_000),
    });
    const untenanted = await apiKeys.create(alice, []);
    const before = {
      inA: await rawItem(inA.keyId),
      soonInA: await rawItem(soonInA.keyId),
      untenanted: await rawItem(untenanted.keyId),
    };
    const refused: [string, Parameters<ApiKeyStore['revoke']>[1]][] = [
      [inA.keyId, { tenantId: 'tenant-b' }],
      [inA.keyId, { owner: alice, tenantId: 'tenant-b' }],
      [inA.keyId, { owner: owner(), tenantId: 'tenant-a' }],
      [inA.keyId, { owner: alice }],
      [inA.keyId, {}],
      [soonInA.keyId, { owner: alice, tenantId: 'tenant-b' }],
      [untenanted.keyId, { owner: alice, tenantId: 'tenant-a' }],
      [untenanted.keyId, { owner: owner() }],
      ['0123456789abcdef', { owner: alice, tenantId: 'tenant-a' }],
    ];
    for (const [keyId, guard] of refused) {
      expect(await apiKeys.revoke(keyId, guard), JSON.stringify({ keyId, guard })).toBe(false);
    }
    expect(await rawItem(inA.keyId)).toEqual(before.inA);
    expect(await rawItem(soonInA.keyId)).toEqual(before.soonInA);
    expect(await rawItem(untenanted.keyId)).toEqual(before.untenanted);
    expect(await rawItem('0123456789abcdef')).toBeUndefined();
    await expect(apiKeys.verify(inA.key)).resolves.toMatchObject({ id: inA.keyId, tenantId: 'tenant-a' });

    expect(await apiKeys.revoke(inA.keyId, { owner: alice, tenantId: 'tenant-a' })).toBe(true);
    expect(await apiKeys.revoke(soonInA.keyId, { tenantId: 'tenant-a' })).toBe(true);
    expect(await apiKeys.revoke(untenanted.keyId, { owner: alice, tenantId: undefined })).toBe(true);
    for (const created of [inA, soonInA, untenanted]) {
      expect(await reasonOf(apiKeys.verify(created.key))).toBe('revoked');
    }
    expect(await rawItem(soonInA.keyId)).toMatchObject({ expiresAt: before.soonInA?.expiresAt });
  });

  it('hashes with a pepper when given one, so the stored hash is not a plain SHA-256', async () => {
    const peppered = store({ pepper: 'p'.repeat(32) });
    const created = await peppered.create(owner(), []);
    await expect(peppered.verify(created.key)).resolves.toBeDefined();
    expect(await reasonOf(store().verify(created.key))).toBe('unknown_key');
  });

  it('rejects invalid create arguments, listing each, and stores nothing', async () => {
    const apiKeys = store();
    const send = vi.spyOn(documentClient, 'send');
    const error = await apiKeys
      .create('has space', ['ok', 'not ok'], { expiresAt: new Date(Date.now() - 1), tenantId: 'a#b' })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).fields.map((field) => field.field)).toEqual([
      'owner',
      'scopes',
      'expiresAt',
      'tenantId',
    ]);
    expect(send).not.toHaveBeenCalled();
  });

  it.each([
    ['a lone surrogate', '\ud800'],
    ['a NUL', '\u0000'],
    ['an escape sequence', '\u001b[31m'],
    ['a C1 control', '\u0085'],
  ])(
    'refuses an owner and a tenant holding %s, as a token’s ids are, and stores nothing',
    async (_what, text) => {
      const apiKeys = store();
      const send = vi.spyOn(documentClient, 'send');
      const error = await apiKeys
        .create(`own${text}`, ['bookings/read'], { tenantId: `ten${text}` })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ValidationError);
      const problem = 'Must be 1-128 characters without spaces, #, control characters or unpaired surrogates';
      expect((error as ValidationError).fields).toEqual([
        { field: 'owner', message: problem },
        { field: 'tenantId', message: problem },
      ]);
      expect(send).not.toHaveBeenCalled();
    },
  );

  it('refuses a tenant that is not a string, rather than reading its digits', async () => {
    const apiKeys = store();
    const error = await apiKeys
      .create(owner(), ['bookings/read'], { tenantId: 42 as unknown as string })
      .catch((caught: unknown) => caught);
    expect((error as ValidationError).fields).toEqual([
      {
        field: 'tenantId',
        message: 'Must be 1-128 characters without spaces, #, control characters or unpaired surrogates',
      },
    ]);
  });

  it('answers a ValidationError on expiresAt that is not a valid Date, and stores nothing', async () => {
    const apiKeys = store();
    const send = vi.spyOn(documentClient, 'send');
    for (const expiresAt of ['2031-01-01T00:00:00Z', 1_924_992_000_000, new Date('not a date'), null]) {
      const error = await apiKeys
        .create(owner(), ['bookings/read'], { expiresAt: expiresAt as unknown as Date })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).fields).toEqual([
        { field: 'expiresAt', message: 'Must be a valid Date object, not a string or number' },
      ]);
    }
    expect(send).not.toHaveBeenCalled();
  });

  it('rejects invalid options at construction, listing each', () => {
    expect(
      () =>
        new ApiKeyStore({
          client: undefined as never,
          tableName: '',
          cacheTtlMs: -1,
          cacheMaxEntries: 0,
          lastUsedIntervalMs: -1,
          pepper: 'short',
        }),
    ).toThrow(InvalidOptionsError);
    for (const revokedRetentionMs of [-1, 1.5, Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => store({ revokedRetentionMs })).toThrow(
        'Invalid ApiKeyStore options: revokedRetentionMs must be a whole number >= 0',
      );
    }
    expect(() => store({ revokedRetentionMs: 0 })).not.toThrow();
    for (const tableName of ['   ', 'a b', 'x']) {
      expect(() => new ApiKeyStore({ client: documentClient, tableName })).toThrow(
        `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${JSON.stringify(tableName)})`,
      );
    }
  });

  it('keeps its cache bounded', async () => {
    const apiKeys = store({ cacheMaxEntries: 2 });
    const keys = await Promise.all([1, 2, 3].map(() => apiKeys.create(owner(), [])));
    for (const created of keys) await apiKeys.verify(created.key);
    const send = vi.spyOn(documentClient, 'send');
    await apiKeys.verify((keys[0] as { key: string }).key);
    expect(send.mock.calls.filter(([command]) => command instanceof GetCommand)).toHaveLength(1);
  });
});

describe('ApiKeyStore peppers', () => {
  const plainPepper = 's'.repeat(32);
  const january = { id: '2027-01', secret: 'j'.repeat(32) };
  const june = { id: '2027-06', secret: 'u'.repeat(32) };

  it("records the scheme each key is hashed under, its hash being that scheme's digest", async () => {
    for (const [options, scheme, digest] of [
      [{}, 'sha256', sha256],
      [{ pepper: plainPepper }, 'hmac-sha256', (secret: string) => hmac(plainPepper, secret)],
      [{ pepper: january }, 'hmac-sha256:2027-01', (secret: string) => hmac(january.secret, secret)],
    ] as const) {
      const created = await store(options).create(owner(), []);
      expect(created.hashScheme).toBe(scheme);
      expect(await rawItem(created.keyId)).toMatchObject({
        hashScheme: scheme,
        secretHash: digest(secretOf(created.key)),
      });
    }
  });

  it('verifies a key stored before schemes were recorded under the options of its time, and records it', async () => {
    const unpepperedKey = await store().create(owner(), []);
    const plainPepperKey = await store({ pepper: plainPepper }).create(owner(), []);
    await forgetHashScheme(unpepperedKey.keyId);
    await forgetHashScheme(plainPepperKey.keyId);
    // Each under its own scheme only: a key stranded by a pepper set before schemes were recorded stays so.
    expect(await reasonOf(store({ pepper: plainPepper }).verify(unpepperedKey.key))).toBe('unknown_key');
    expect(await reasonOf(store().verify(plainPepperKey.key))).toBe('unknown_key');
    await expect(store().verify(unpepperedKey.key)).resolves.toMatchObject({ id: unpepperedKey.keyId });
    await expect(store({ pepper: plainPepper }).verify(plainPepperKey.key)).resolves.toMatchObject({
      id: plainPepperKey.keyId,
    });
    expect(await rawItem(unpepperedKey.keyId)).toMatchObject({
      hashScheme: 'sha256',
      secretHash: sha256(secretOf(unpepperedKey.key)),
    });
    expect(await rawItem(plainPepperKey.keyId)).toMatchObject({
      hashScheme: 'hmac-sha256',
      secretHash: hmac(plainPepper, secretOf(plainPepperKey.key)),
    });
  });

  it('pepper added: keys hashed without one verify while acceptUnpeppered is set, and move to the pepper', async () => {
    const before = store();
    const recorded = await before.create(owner(), []);
    const unrecorded = await before.create(owner(), []);
    await forgetHashScheme(unrecorded.keyId);
    expect(await reasonOf(store({ pepper: january }).verify(recorded.key))).toBe('unknown_key');
    expect(await reasonOf(store({ pepper: january, acceptUnpeppered: false }).verify(recorded.key))).toBe(
      'unknown_key',
    );
    const moving = store({ pepper: january, acceptUnpeppered: true });
    for (const created of [recorded, unrecorded]) {
      await expect(moving.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
      expect(await rawItem(created.keyId)).toMatchObject({
        hashScheme: 'hmac-sha256:2027-01',
        secretHash: hmac(january.secret, secretOf(created.key)),
      });
      await expect(store({ pepper: january }).verify(created.key)).resolves.toMatchObject({
        id: created.keyId,
      });
    }
    expect((await moving.create(owner(), [])).hashScheme).toBe('hmac-sha256:2027-01');
  });

  it('pepper rotated: a key under the previous pepper verifies and moves to the new one; unused, it dies with the old', async () => {
    const original = store({ pepper: january });
    const used = await original.create(owner(), []);
    const unused = await original.create(owner(), []);
    const rotated = store({ pepper: june, previousPeppers: [january] });
    await expect(rotated.verify(used.key)).resolves.toMatchObject({ id: used.keyId });
    expect(await rawItem(used.keyId)).toMatchObject({
      hashScheme: 'hmac-sha256:2027-06',
      secretHash: hmac(june.secret, secretOf(used.key)),
    });
    expect((await rotated.create(owner(), [])).hashScheme).toBe('hmac-sha256:2027-06');
    const dropped = store({ pepper: june });
    await expect(dropped.verify(used.key)).resolves.toMatchObject({ id: used.keyId });
    expect(await reasonOf(dropped.verify(unused.key))).toBe('unknown_key');
  });

  it('pepper rotated from the plain-string form: keys stored under it, recorded or not, verify and move', async () => {
    const before = store({ pepper: plainPepper });
    const recorded = await before.create(owner(), []);
    const unrecorded = await before.create(owner(), []);
    await forgetHashScheme(unrecorded.keyId);
    const rotated = store({ pepper: june, previousPeppers: [plainPepper] });
    for (const created of [recorded, unrecorded]) {
      await expect(rotated.verify(created.key)).resolves.toMatchObject({ id: created.keyId });
      expect(await rawItem(created.keyId)).toMatchObject({ hashScheme: 'hmac-sha256:2027-06' });
    }
  });

  it('pepper removed: keys under the previous pepper verify and move to plain SHA-256', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const unpeppered = store({ previousPeppers: [january] });
    await expect(unpeppered.verify(issued.key)).resolves.toMatchObject({ id: issued.keyId });
    expect(await rawItem(issued.keyId)).toMatchObject({
      hashScheme: 'sha256',
      secretHash: sha256(secretOf(issued.key)),
    });
    await expect(store().verify(issued.key)).resolves.toMatchObject({ id: issued.keyId });
    expect((await unpeppered.create(owner(), [])).hashScheme).toBe('sha256');
  });

  it('rehashes only the hash and its scheme: owner, tenant, scopes, expiry and index stay', async () => {
    const issued = await store({ pepper: january }).create(owner(), ['bookings/read'], {
      tenantId: 'tenant-a',
      expiresAt: new Date(Date.now() + day),
    });
    const before = await rawItem(issued.keyId);
    await store({ pepper: june, previousPeppers: [january], lastUsedIntervalMs: day }).verify(issued.key);
    const after = await rawItem(issued.keyId);
    const { secretHash, hashScheme, lastUsedAt, ...kept } = after ?? {};
    expect(kept).toEqual({ ...before, secretHash: undefined, hashScheme: undefined, lastUsedAt: undefined });
    expect([secretHash, hashScheme]).toEqual([
      hmac(june.secret, secretOf(issued.key)),
      'hmac-sha256:2027-06',
    ]);
    expect(lastUsedAt).toBeTypeOf('number');
  });

  it('rehashes a key once when verifies on several instances race, and every one of them succeeds', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const instances = [1, 2, 3, 4].map(() =>
      store({ pepper: june, previousPeppers: [january], cacheTtlMs: 0 }),
    );
    const original = documentClient.send.bind(documentClient);
    const rehashes: string[] = [];
    let readsServed = 0;
    let allRead!: () => void;
    const everyoneHasRead = new Promise<void>((resolve) => {
      allRead = resolve;
    });
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof GetCommand) {
        const result = await original(command as never);
        readsServed += 1;
        if (readsServed === instances.length) allRead();
        // Every instance holds the key under the old pepper before any of them rewrites it.
        await everyoneHasRead;
        return result;
      }
      const sent = original(command as never);
      if (command instanceof UpdateCommand && command.input.UpdateExpression?.includes('hashScheme')) {
        await sent.then(
          () => rehashes.push('written'),
          (error: Error) => rehashes.push(error.name),
        );
      }
      return sent;
    }) as typeof documentClient.send);
    const principals = await Promise.all(instances.map((instance) => instance.verify(issued.key)));
    expect(principals.map((principal) => principal.id)).toEqual(instances.map(() => issued.keyId));
    expect(rehashes.sort()).toEqual([
      'ConditionalCheckFailedException',
      'ConditionalCheckFailedException',
      'ConditionalCheckFailedException',
      'written',
    ]);
    vi.restoreAllMocks();
    expect(await rawItem(issued.keyId)).toMatchObject({
      hashScheme: 'hmac-sha256:2027-06',
      secretHash: hmac(june.secret, secretOf(issued.key)),
    });
    await expect(store({ pepper: june }).verify(issued.key)).resolves.toMatchObject({ id: issued.keyId });
  });

  it('keeps a revoked key under an old pepper revoked, and leaves it as it is', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const rotated = store({ pepper: june, previousPeppers: [january] });
    expect(await rotated.revoke(issued.keyId)).toBe(true);
    const before = await rawItem(issued.keyId);
    expect(await reasonOf(rotated.verify(issued.key))).toBe('revoked');
    expect(await rawItem(issued.keyId)).toEqual(before);
  });

  it('keeps a revocation written while the key was being rehashed', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const rotated = store({ pepper: june, previousPeppers: [january] });
    const original = documentClient.send.bind(documentClient);
    let rehashHeld!: () => void;
    const held = new Promise<void>((resolve) => {
      rehashHeld = resolve;
    });
    let releaseRehash!: () => void;
    const released = new Promise<void>((resolve) => {
      releaseRehash = resolve;
    });
    vi.spyOn(documentClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof UpdateCommand && command.input.UpdateExpression?.includes('hashScheme')) {
        rehashHeld();
        await released;
      }
      return original(command as never);
    }) as typeof documentClient.send);
    const verifying = rotated.verify(issued.key);
    await held;
    expect(await store().revoke(issued.keyId)).toBe(true);
    releaseRehash();
    // That request's key was valid when it was read; the revocation outlives the rewrite.
    await expect(verifying).resolves.toMatchObject({ id: issued.keyId });
    expect(await rawItem(issued.keyId)).toMatchObject({
      hashScheme: 'hmac-sha256:2027-06',
      revokedAt: expect.any(String),
    });
    expect(await reasonOf(store({ pepper: june }).verify(issued.key))).toBe('revoked');
  });

  it('answers a verify whose rehash cannot be written, and tries again on its next read of the key', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const rotated = store({ pepper: june, previousPeppers: [january] });
    const original = documentClient.send.bind(documentClient);
    const send = vi.spyOn(documentClient, 'send').mockImplementation(((command: unknown) => {
      if (command instanceof UpdateCommand) return Promise.reject(new Error('throttled'));
      return original(command as never);
    }) as typeof documentClient.send);
    await expect(rotated.verify(issued.key)).resolves.toMatchObject({ id: issued.keyId });
    await expect(rotated.verify(issued.key)).resolves.toMatchObject({ id: issued.keyId });
    const rehashes = () =>
      send.mock.calls.filter(
        ([command]) =>
          command instanceof UpdateCommand && command.input.UpdateExpression?.includes('hashScheme'),
      );
    // Once per read of the key, not per request: the second verify was answered from the cache.
    expect(rehashes()).toHaveLength(1);
    expect(await rawItem(issued.keyId)).toMatchObject({ hashScheme: 'hmac-sha256:2027-01' });
    send.mockImplementation(original as typeof documentClient.send);
    await store({ pepper: june, previousPeppers: [january] }).verify(issued.key);
    expect(await rawItem(issued.keyId)).toMatchObject({ hashScheme: 'hmac-sha256:2027-06' });
  });

  it('lists the keys a store can verify, each with its scheme, and revokes any of its owner', async () => {
    const alice = owner();
    const unrecorded = await store({ pepper: plainPepper }).create(alice, []);
    await forgetHashScheme(unrecorded.keyId);
    const underJanuary = await store({ pepper: january }).create(alice, []);
    const underJune = await store({ pepper: june }).create(alice, []);
    const listed = async (apiKeys: ApiKeyStore) =>
      (await apiKeys.listByOwner(alice)).map((record) => [record.keyId, record.hashScheme]);
    // Sorted by id: keys created in the same millisecond list in either order.
    const sortedById = (pairs: (string | undefined)[][]) =>
      [...pairs].sort(([left], [right]) => String(left).localeCompare(String(right)));
    expect(
      sortedById(await listed(store({ pepper: june, previousPeppers: [january, plainPepper] }))),
    ).toEqual(
      sortedById([
        [unrecorded.keyId, undefined],
        [underJanuary.keyId, 'hmac-sha256:2027-01'],
        [underJune.keyId, 'hmac-sha256:2027-06'],
      ]),
    );
    // The others answer unknown_key to this store: listing them would show dead keys as live.
    const juneOnly = store({ pepper: june });
    expect(await listed(juneOnly)).toEqual([[underJune.keyId, 'hmac-sha256:2027-06']]);
    expect(await juneOnly.revoke(underJanuary.keyId, { owner: alice })).toBe(true);
    expect(await reasonOf(store({ pepper: june, previousPeppers: [january] }).verify(underJanuary.key))).toBe(
      'revoked',
    );
  });

  it('answers a wrong secret, an unknown id and a dropped pepper alike, after one read each', async () => {
    const issued = await store({ pepper: january }).create(owner(), []);
    const rotated = store({ pepper: june, previousPeppers: [january] });
    const dropped = store({ pepper: june });
    const send = vi.spyOn(documentClient, 'send');
    const failures = [
      await rotated.verify(`${issued.key.slice(0, 21)}${'A'.repeat(43)}`).catch((error: unknown) => error),
      await rotated.verify(`bwk_00000000deadbeef_${'A'.repeat(43)}`).catch((error: unknown) => error),
      await dropped.verify(issued.key).catch((error: unknown) => error),
    ];
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(InvalidTokenError);
      expect(failure).toMatchObject({
        reason: 'unknown_key',
        statusCode: 401,
        message: 'The API key is not valid',
      });
    }
    expect(send.mock.calls.map(([command]) => command.constructor.name)).toEqual([
      'GetCommand',
      'GetCommand',
      'GetCommand',
    ]);
  });

  it('rejects invalid pepper options at construction, listing each', () => {
    const error = (() => {
      try {
        store({
          pepper: { id: 'has space', secret: 'short' },
          previousPeppers: [january, 'too short', { id: '2027-01', secret: 'x'.repeat(16) }, 42 as never],
          acceptUnpeppered: 'yes' as never,
        });
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).problems).toEqual([
      'pepper.id must be 1-64 letters, digits, . _ or -',
      'pepper.secret must be a string of >= 16 characters',
      'previousPeppers[1] must be >= 16 characters',
      'previousPeppers[2].id "2027-01" is used twice',
      'previousPeppers[3] must be a string or { id, secret }',
      'acceptUnpeppered must be a boolean',
    ]);
    expect(() => store({ pepper: plainPepper, previousPeppers: ['t'.repeat(16)] })).toThrow(
      'previousPeppers[0] is a second pepper without an id',
    );
    expect(() => store({ pepper: june, previousPeppers: [june] })).toThrow(
      'previousPeppers[0].id "2027-06" is used twice',
    );
    expect(() => store({ previousPeppers: plainPepper as never })).toThrow(
      'previousPeppers must be an array',
    );
    expect(() =>
      store({ pepper: january, previousPeppers: [june, plainPepper], acceptUnpeppered: true }),
    ).not.toThrow();
    expect(() => store({ previousPeppers: [null as never] })).toThrow(
      'previousPeppers[0] must be a string or { id, secret }',
    );
  });

  it('takes a pepper of 16 characters and an id of 64, and refuses one character less or more', () => {
    expect(() => store({ pepper: 'p'.repeat(16) })).not.toThrow();
    expect(() => store({ pepper: 'p'.repeat(15) })).toThrow('pepper must be >= 16 characters');
    expect(() => store({ pepper: { id: 'i'.repeat(64), secret: 's'.repeat(16) } })).not.toThrow();
    expect(() => store({ pepper: { id: 'i'.repeat(65), secret: 's'.repeat(16) } })).toThrow(
      'pepper.id must be 1-64 letters, digits, . _ or -',
    );
    expect(() => store({ pepper: { id: 'i', secret: 's'.repeat(15) } })).toThrow(
      'pepper.secret must be a string of >= 16 characters',
    );
  });
});

describe('ApiKeyStore events', () => {
  /** A store whose events are kept, and the audit lines the toolkit's listener writes of them. */
  function reporting(options: Partial<ConstructorParameters<typeof ApiKeyStore>[0]> = {}) {
    const events: SecurityEvent[] = [];
    const lines: AuditEvent[] = [];
    const auditLogger = new AuditLogger({ logToConsole: false, sink: (line) => lines.push(line) });
    const listener = createSecurityEventListener({ auditLogger });
    const onEvent = (event: SecurityEvent) => {
      events.push(event);
      listener(event);
    };
    return { apiKeys: store({ ...options, onEvent }), events, lines };
  }

  it("reports a key's creation with its owner, tenant, scopes and expiry, never its secret", async () => {
    const { apiKeys, events, lines } = reporting();
    const keyOwner = owner();
    const expiresAt = new Date(Date.now() + day);
    const created = await apiKeys.create(keyOwner, ['bookings/read'], { tenantId: 'tenant-a', expiresAt });
    expect(events).toEqual([
      {
        type: 'apiKey.created',
        metadata: {
          keyId: created.keyId,
          owner: keyOwner,
          tenantId: 'tenant-a',
          scopes: ['bookings/read'],
          expiresAt: created.expiresAt,
          hashScheme: 'sha256',
        },
      },
    ]);
    expect(lines).toEqual([expect.objectContaining({ eventType: 'apiKey.created', outcome: 'success' })]);
    expect(JSON.stringify(lines)).not.toContain(secretOf(created.key));
  });

  it('reports each revocation with its guard: failure when no key was revoked, keyId only when well-formed', async () => {
    const { apiKeys, events, lines } = reporting();
    const keyOwner = owner();
    const created = await apiKeys.create(keyOwner, []);
    events.length = 0;
    lines.length = 0;
    const guard = { owner: keyOwner, tenantId: undefined };
    expect(await apiKeys.revoke(created.keyId, guard)).toBe(true);
    expect(await apiKeys.revoke(created.keyId, { owner: 'someone-else' })).toBe(false);
    expect(await apiKeys.revoke(`${'z'.repeat(300)}\n`)).toBe(false);
    expect(events).toEqual([
      { type: 'apiKey.revoked', metadata: { keyId: created.keyId, guard } },
      {
        type: 'apiKey.revoked',
        reason: 'no_such_key',
        metadata: { keyId: created.keyId, outcome: 'failure', guard: { owner: 'someone-else' } },
      },
      { type: 'apiKey.revoked', reason: 'malformed_key_id', metadata: { outcome: 'failure' } },
    ]);
    expect(lines.map(({ outcome, metadata }) => [outcome, metadata.reason])).toEqual([
      ['success', undefined],
      ['failure', 'no_such_key'],
      ['failure', 'malformed_key_id'],
    ]);
  });

  it('reports a revocation whose write failed as an error, and still throws', async () => {
    const events: SecurityEvent[] = [];
    const down = { send: () => Promise.reject(new Error('connect ECONNREFUSED')) } as never;
    const apiKeys = store({ client: down, onEvent: (event) => events.push(event) });
    await expect(apiKeys.revoke('0011223344556677')).rejects.toThrow('ECONNREFUSED');
    expect(events).toEqual([
      { type: 'apiKey.revoked', reason: 'Error', metadata: { keyId: '0011223344556677', outcome: 'error' } },
    ]);
  });

  it('reports a rehash with the schemes it moved the key from and to, once', async () => {
    const plainPepper = 's'.repeat(32);
    const created = await store({ pepper: plainPepper }).create(owner(), []);
    const { apiKeys, events } = reporting({
      pepper: { id: '2027-06', secret: 'u'.repeat(32) },
      previousPeppers: [plainPepper],
    });
    await apiKeys.verify(created.key);
    await apiKeys.verify(created.key);
    expect(events).toEqual([
      {
        type: 'apiKey.rehashed',
        metadata: { keyId: created.keyId, fromScheme: 'hmac-sha256', toScheme: 'hmac-sha256:2027-06' },
      },
    ]);
  });

  it('refuses an onEvent that is not a function at construction', () => {
    expect(() => store({ onEvent: 'audit' as never })).toThrow(InvalidOptionsError);
  });
});
