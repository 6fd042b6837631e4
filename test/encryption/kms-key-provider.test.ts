// The KMS provider through aws-sdk-client-mock: request counts, pinned keys and contexts, outages, rotation.
import { randomUUID } from 'node:crypto';
import {
  DecryptCommand,
  GenerateDataKeyCommand,
  GenerateMacCommand,
  KMSClient,
  KMSInternalException,
} from '@aws-sdk/client-kms';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { webhookSecretKeyContextFields } from '../../functions/shared/key-purposes.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { createKeyProvider } from '../../middleware/encryption/create-key-provider.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { decodeHeader, keyRefOf } from '../../middleware/encryption/format.js';
import type { KeyProvider } from '../../middleware/encryption/key-provider.js';
import {
  createKmsClient,
  KmsKeyProvider,
  kmsProviderId,
} from '../../middleware/encryption/kms-key-provider.js';
import { EncryptionError, InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import { mockKms } from './fake-kms.js';
import { flipBit, rejectionOf, thrownBy } from './helpers.js';

const keyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-1111-4b5e-9f00-000000000001';
const nextKeyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-2222-4b5e-9f00-000000000002';
const macKeyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-3333-4b5e-9f00-000000000003';
const { kms, reset } = mockKms([keyId, nextKeyId, macKeyId]);

const tenant = { tenantId: 'acme' };
const contextOf = (userId: string) => ({ ...tenant, userId });

function encryptorFor(
  options: { keyId?: string; decryptKeyIds?: string[]; onEvent?: (event: SecurityEvent) => void } = {},
) {
  const keyProvider = new KmsKeyProvider({
    keyId: options.keyId ?? keyId,
    blindIndexKeyId: macKeyId,
    ...(options.decryptKeyIds ? { decryptKeyIds: options.decryptKeyIds } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
  return new Encryptor({
    keyProvider,
    keyContextFields: ['tenantId'],
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
}

beforeEach(() => {
  reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('KMS request counts', () => {
  it('costs one GenerateDataKey per maxAge for 10,000 encryptions under one context', async () => {
    vi.useFakeTimers();
    const encryptor = encryptorFor();
    for (let index = 0; index < 10_000; index += 1) {
      await encryptor.encryptFields({ email: `user${index}@example.com` }, ['email'], contextOf(`u${index}`));
    }
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(1);
    expect(kms.commandCalls(GenerateDataKeyCommand)[0]?.args[0].input).toEqual({
      KeyId: keyId,
      KeySpec: 'AES_256',
      EncryptionContext: tenant,
    });
    vi.advanceTimersByTime(300_000);
    for (let index = 0; index < 100; index += 1) {
      await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], contextOf(`v${index}`));
    }
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(2);
  });

  it('costs one Decrypt, pinned to the key and context, for 10,000 values under one data key', async () => {
    const writer = encryptorFor();
    const fields = Array.from({ length: 10 }, (_, index) => `f${index}`);
    const records = await Promise.all(
      Array.from({ length: 1_000 }, (_, index) =>
        writer.encryptFields(
          Object.fromEntries(fields.map((field) => [field, `${field}-${index}`])),
          fields,
          contextOf(`u${index}`),
        ),
      ),
    );
    const reader = encryptorFor();
    const decrypted = await Promise.all(
      records.map((record, index) => reader.decryptFields(record, fields, contextOf(`u${index}`))),
    );
    expect(decrypted[999]?.f9).toBe('f9-999');
    expect(kms.commandCalls(DecryptCommand)).toHaveLength(1);
    const input = kms.commandCalls(DecryptCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      KeyId: keyId,
      EncryptionContext: tenant,
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    });
  });

  it('coalesces a cold instance’s concurrent misses into one GenerateDataKey', async () => {
    const encryptor = encryptorFor();
    await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        encryptor.encryptFields({ email: 'a@b.co' }, ['email'], contextOf(`u${index}`)),
      ),
    );
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(1);
  });

  it('reports each KMS request as a kms.request event with its latency, never a key', async () => {
    const events: SecurityEvent[] = [];
    const encryptor = encryptorFor({ onEvent: (event) => events.push(event) });
    const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], contextOf('v'));
    await encryptorFor({ onEvent: (event) => events.push(event) }).decryptFields(
      stored,
      ['email'],
      contextOf('u'),
    );
    const kmsEvents = events.filter((event) => event.type === 'kms.request');
    expect(kmsEvents.map((event) => event.metadata)).toEqual([
      { operation: 'GenerateDataKey', keyId, outcome: 'ok' },
      { operation: 'Decrypt', keyId, outcome: 'ok' },
    ]);
    for (const event of kmsEvents) expect(event.durationMs).toBeGreaterThanOrEqual(0);
    expect(events.filter((event) => event.type === 'dataKey.cacheHit')).toHaveLength(1);
  });
});

describe('KMS failures', () => {
  it('fails a write with a clear error when KMS is unavailable, leaving the record untouched', async () => {
    kms.on(GenerateDataKeyCommand).rejects(new KMSInternalException({ message: 'internal', $metadata: {} }));
    const events: SecurityEvent[] = [];
    const encryptor = encryptorFor({ onEvent: (event) => events.push(event) });
    const record = { id: 'u', email: 'a@b.co', phone: '+14155552671' };
    const error = await rejectionOf(encryptor.encryptFields(record, ['email', 'phone'], contextOf('u')));
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error).toMatchObject({ code: 'ENCRYPTION_FAILED', reason: 'key_unavailable' });
    expect(error.message).toBe('KMS GenerateDataKey failed (KMSInternalException)');
    expect(record).toEqual({ id: 'u', email: 'a@b.co', phone: '+14155552671' });
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'kms.request',
        reason: 'KMSInternalException',
        metadata: expect.objectContaining({ outcome: 'error' }),
      }),
    );
  });

  it.each([
    'AccessDeniedException',
    'DisabledException',
    'KMSInvalidStateException',
    'NotFoundException',
    'InvalidKeyUsageException',
    // A request KMS refused, a grant token it does not know, credentials it does not know.
    'ValidationException',
    'InvalidGrantTokenException',
    'UnrecognizedClientException',
  ])('fails with key_misconfigured, not a passing outage, when KMS answers %s', async (name) => {
    const stored = await encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    const refusal = Object.assign(new Error(`KMS says ${name}`), { name });
    kms.on(GenerateDataKeyCommand).rejects(refusal);
    kms.on(DecryptCommand).rejects(refusal);
    kms.on(GenerateMacCommand).rejects(refusal);
    const fresh = encryptorFor();
    for (const failed of [
      fresh.encryptFields({ email: 'a@b.co' }, ['email'], contextOf('v')),
      fresh.decryptFields(stored, ['email'], contextOf('u')),
      fresh.blindIndex('a@b.co', { name: `misconfigured-${name}` }),
    ]) {
      expect(await rejectionOf(failed)).toMatchObject({ reason: 'key_misconfigured' });
    }
  });

  it('fails a read with key_unavailable when KMS cannot answer', async () => {
    const stored = await encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    kms.on(DecryptCommand).rejects(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }));
    const error = await rejectionOf(encryptorFor().decryptFields(stored, ['email'], contextOf('u')));
    expect(error).toMatchObject({ code: 'DECRYPTION_FAILED', reason: 'key_unavailable' });
  });

  it('refuses an empty answer from KMS', async () => {
    kms.on(GenerateDataKeyCommand).resolves({ KeyId: keyId });
    expect(await rejectionOf(encryptorFor().encryptFields({ a: 'x' }, ['a'], contextOf('u')))).toMatchObject({
      reason: 'key_unavailable',
    });
    reset();
    const stored = await encryptorFor().encryptFields({ a: 'x' }, ['a'], contextOf('u'));
    kms.on(DecryptCommand).resolves({ KeyId: keyId });
    expect(await rejectionOf(encryptorFor().decryptFields(stored, ['a'], contextOf('u')))).toMatchObject({
      reason: 'key_unavailable',
    });
  });

  it('reports a tampered wrapped key (key references forged to match) as an authentication failure', async () => {
    const stored: Record<string, unknown> = await encryptorFor().encryptFields(
      { email: 'a@b.co' },
      ['email'],
      contextOf('u'),
    );
    const header = flipBit(stored._dataKey, -20);
    const email = Buffer.from(stored.email as Uint8Array);
    keyRefOf(header).copy(email, 1);
    const error = await rejectionOf(
      encryptorFor().decryptFields({ email, _dataKey: header }, ['email'], contextOf('u')),
    );
    expect(error).toMatchObject({ code: 'DECRYPTION_FAILED', reason: 'authentication_failed' });
    expect(error.message).toBe('KMS refused the wrapped data key (InvalidCiphertextException)');
  });

  it('sends the reader’s tenant to KMS, which refuses a record of another tenant', async () => {
    const stored = await encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    const error = await rejectionOf(
      encryptorFor().decryptFields(stored, ['email'], { tenantId: 'other', userId: 'u' }),
    );
    expect(error).toMatchObject({ reason: 'authentication_failed' });
    expect(kms.commandCalls(DecryptCommand)[0]?.args[0].input.EncryptionContext).toEqual({
      tenantId: 'other',
    });
  });

  it('never asks KMS to use a key it does not trust', async () => {
    const stored = await encryptorFor({ keyId: nextKeyId }).encryptFields({ a: 'x' }, ['a'], contextOf('u'));
    const error = await rejectionOf(encryptorFor().decryptFields(stored, ['a'], contextOf('u')));
    expect(error).toMatchObject({ reason: 'key_not_allowed' });
    expect(kms.commandCalls(DecryptCommand)).toHaveLength(0);
  });
});

describe('KMS key rotation', () => {
  it('keeps reading data keys of the previous KMS key and re-encrypts them under the new one', async () => {
    const stored = await encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    const rotated = encryptorFor({ keyId: nextKeyId, decryptKeyIds: [keyId] });
    expect(rotated.needsReencryption(stored)).toBe(true);
    const reencrypted = await rotated.reencryptFields(stored, ['email'], contextOf('u'));
    expect(rotated.needsReencryption(reencrypted)).toBe(false);
    expect(kms.commandCalls(DecryptCommand)[0]?.args[0].input.KeyId).toBe(keyId);
    expect(kms.commandCalls(GenerateDataKeyCommand).at(-1)?.args[0].input.KeyId).toBe(nextKeyId);
    expect(
      await encryptorFor({ keyId: nextKeyId }).decryptFields(reencrypted, ['email'], contextOf('u')),
    ).toEqual({
      email: 'a@b.co',
    });
  });

  it('stores the key ARN KMS answers in the header, and refuses an answer for another key', async () => {
    const stored: Record<string, unknown> = await encryptorFor().encryptFields(
      { email: 'a@b.co' },
      ['email'],
      contextOf('u'),
    );
    expect(decodeHeader(Buffer.from(stored._dataKey as Uint8Array)).keyId).toBe(keyId);
    kms.on(GenerateDataKeyCommand).resolves({
      Plaintext: new Uint8Array(32),
      CiphertextBlob: new Uint8Array([1, 2, 3]),
      KeyId: nextKeyId,
    });
    const error = await rejectionOf(
      encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u')),
    );
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error).toMatchObject({ reason: 'key_misconfigured' });
  });

  it('needs no re-encryption after automatic rotation, which keeps the key id', async () => {
    const stored = await encryptorFor().encryptFields({ email: 'a@b.co' }, ['email'], contextOf('u'));
    expect(encryptorFor().needsReencryption(stored)).toBe(false);
  });
});

describe('KMS blind-index keys', () => {
  it('derives each index key once with GenerateMac under the HMAC key', async () => {
    const encryptor = encryptorFor();
    const first = await encryptor.blindIndex('a@b.co', { name: 'user-email' });
    expect(await encryptor.blindIndex('a@b.co', { name: 'user-email' })).toBe(first);
    expect(await encryptorFor().blindIndex('a@b.co', { name: 'user-email' })).toBe(first);
    const calls = kms.commandCalls(GenerateMacCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.args[0].input).toMatchObject({ KeyId: macKeyId, MacAlgorithm: 'HMAC_SHA_256' });
    expect(Buffer.from(calls[0]?.args[0].input.Message as Uint8Array).toString()).toBe(
      'bulwark/blind-index/v1/user-email',
    );
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(0);
  });

  it('fails clearly without an HMAC key or when GenerateMac fails', async () => {
    const noMac = new Encryptor({ keyProvider: new KmsKeyProvider({ keyId }) });
    expect(await rejectionOf(noMac.blindIndex('a', { name: 'n' }))).toMatchObject({
      reason: 'key_misconfigured',
    });
    kms
      .on(GenerateMacCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: {} }));
    const error = await rejectionOf(encryptorFor().blindIndex('a', { name: 'n' }));
    expect(error).toMatchObject({
      reason: 'key_unavailable',
      message: 'KMS GenerateMac failed (ThrottlingException)',
    });
    // A fault of ours (here a TypeError) is not a passing outage of KMS.
    kms.on(GenerateMacCommand).rejects(new TypeError('Cannot read properties of undefined'));
    expect(await rejectionOf(encryptorFor().blindIndex('a', { name: 'o' }))).toMatchObject({
      reason: 'key_misconfigured',
      message: 'KMS GenerateMac failed (TypeError)',
    });
    kms.on(GenerateMacCommand).resolves({ Mac: new Uint8Array(3) });
    expect(await rejectionOf(encryptorFor().blindIndex('a', { name: 'm' }))).toMatchObject({
      reason: 'key_unavailable',
    });
  });
});

describe('KmsKeyProvider options', () => {
  it('rejects every invalid option at once', () => {
    const error = thrownBy(
      () => new KmsKeyProvider({ keyId: '', decryptKeyIds: [''], blindIndexKeyId: '' }),
    ) as unknown as InvalidOptionsError;
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.problems).toHaveLength(3);
  });

  it('rejects an onEvent that is not a function, whose kms.request events would be lost', () => {
    expect(() => new KmsKeyProvider({ keyId, onEvent: 'audit' as never })).toThrow(
      new InvalidOptionsError('KmsKeyProvider', ['onEvent must be a function']),
    );
  });

  it.each([
    ['an alias name', 'alias/bulwark-data'],
    ['an alias ARN', 'arn:aws:kms:us-east-1:111122223333:alias/bulwark-data'],
    ['a bare key id', '0c7a4d2e-1111-4b5e-9f00-000000000001'],
  ])(
    'refuses %s for keyId and blindIndexKeyId: an alias can be retargeted, a key ARN never changes',
    (_name, id) => {
      for (const options of [{ keyId: id }, { keyId, blindIndexKeyId: id }]) {
        const error = thrownBy(() => new KmsKeyProvider(options));
        expect(error).toBeInstanceOf(InvalidOptionsError);
        expect(error.message).toContain('key ARN');
      }
    },
  );

  it('reads records whose header names the alias keyId had before ARNs were required', async () => {
    const legacy = 'alias/bulwark-data';
    const dataKey = new Uint8Array(32).fill(7);
    // A record as an older release wrote it: its header names the alias keyId was then.
    const olderRelease: KeyProvider = {
      providerId: kmsProviderId,
      currentKeyId: legacy,
      generateDataKey: async () => ({
        plaintext: dataKey.slice(),
        keyId: legacy,
        wrappedKey: new Uint8Array([9, 9, 9]),
      }),
      decryptDataKey: async () => dataKey.slice(),
      deriveIndexKey: async () => dataKey.slice(),
    };
    const older = await new Encryptor({ keyProvider: olderRelease }).encryptFields(
      { email: 'a@b.co' },
      ['email'],
      contextOf('u'),
    );
    kms.on(DecryptCommand, { KeyId: legacy }).resolves({ Plaintext: dataKey.slice(), KeyId: keyId });
    const reader = new Encryptor({ keyProvider: new KmsKeyProvider({ keyId, decryptKeyIds: [legacy] }) });
    expect(await reader.decryptFields(older, ['email'], contextOf('u'))).toMatchObject({ email: 'a@b.co' });
    expect(await rejectionOf(encryptorFor().decryptFields(older, ['email'], contextOf('u')))).toMatchObject({
      reason: 'key_not_allowed',
    });
    expect(() => new KmsKeyProvider({ keyId, decryptKeyIds: ['not a key name!'] })).toThrow(
      InvalidOptionsError,
    );
  });

  it('refuses decryptKeyIds given as one string (KMS_DECRYPT_KEY_IDS as read), naming the option', () => {
    const earlierKeyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-1111-4b5e-9f00-000000000002';
    const problem = `decryptKeyIds must be an array of key ARNs (got "${earlierKeyId}")`;
    expect(() => new KmsKeyProvider({ keyId, decryptKeyIds: earlierKeyId as never })).toThrow(
      new InvalidOptionsError('KmsKeyProvider', [problem]),
    );
    expect(() => createKeyProvider({ kmsKeyId: keyId, kmsDecryptKeyIds: earlierKeyId as never })).toThrow(
      new InvalidOptionsError('keyProvider', [
        `kmsDecryptKeyIds (KMS_DECRYPT_KEY_IDS) must be an array of key ARNs (got "${earlierKeyId}")`,
      ]),
    );
  });

  it('accepts key ARNs of every partition, multi-Region keys included', () => {
    for (const arn of [
      'arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      'arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab',
    ]) {
      expect(new KmsKeyProvider({ keyId: arn, decryptKeyIds: [keyId] }).currentKeyId).toBe(arn);
    }
  });

  it('refuses client timeouts that would leave a call unbounded or time every call out at once', () => {
    expect(() => createKmsClient({ requestTimeoutMs: 2 ** 31, connectionTimeoutMs: 0 })).toThrow(
      new InvalidOptionsError('createKmsClient', [
        'requestTimeoutMs must be an integer of milliseconds 1..2147483647 (got 2147483648)',
        'connectionTimeoutMs must be an integer of milliseconds 1..2147483647 (got 0)',
      ]),
    );
  });

  it('refuses maxAttempts the SDK would quietly turn into one attempt', () => {
    for (const maxAttempts of [0, -1, Number.NaN, 1.5]) {
      expect(() => createKmsClient({ maxAttempts })).toThrow(
        new InvalidOptionsError('createKmsClient', [
          `maxAttempts must be an integer >= 1 (got ${maxAttempts})`,
        ]),
      );
    }
  });

  it('creates a client with bounded timeouts once, or uses the one given', async () => {
    const client = createKmsClient({
      region: 'eu-west-1',
      endpoint: 'https://kms.example.test',
      maxAttempts: 2,
    });
    expect(client).toBeInstanceOf(KMSClient);
    expect(await client.config.region()).toBe('eu-west-1');
    expect(await client.config.maxAttempts()).toBe(2);
    expect(createKmsClient()).toBeInstanceOf(KMSClient);
    const provider = new KmsKeyProvider({ keyId, client });
    await provider.generateDataKey(tenant);
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(1);
  });
});

describe("the sample functions' KMS encryption contexts", () => {
  const environment = readEnvironment(
    {
      APP_TABLE_NAME: testTableNames.app,
      TOOLKIT_TABLE_NAME: testTableNames.toolkit,
      KMS_KEY_ID: keyId,
      KMS_BLIND_INDEX_KEY_ID: macKeyId,
    },
    { blindIndexes: true },
  );
  const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
  /** A cold start of the webhooks function's store (its encryptor: no data key cached). */
  const webhooksStore = () =>
    new WebhookStore({
      documentClient,
      tableName: testTableNames.toolkit,
      encryptor: createFunctionEncryptor(environment, undefined, webhookSecretKeyContextFields),
    });

  it("asks for webhook secrets' data keys with their purpose, which the webhooks function's grant requires, and for users' without", async () => {
    const tenantId = `kms-${randomUUID()}`;
    const { endpoint, secret } = await webhooksStore().createEndpoint(testPrincipal({ tenantId }), {
      url: 'https://hooks.example.com/h',
      eventTypes: ['booking.created'],
    });
    // A registration's replay on another instance, then the worker's tenant-bound encryptor.
    const replaying = webhooksStore();
    const stored = await replaying.getEndpoint(endpoint.id);
    expect(stored && (await replaying.signingSecret(stored))).toBe(secret);
    const tenantBound = createFunctionEncryptor(environment);
    const worker = new WebhookStore({
      documentClient,
      tableName: testTableNames.toolkit,
      encryptor: tenantBound,
    });
    expect(stored && (await worker.signingSecret(stored))).toBe(secret);

    const users = new UsersModel(documentClient, testTableNames.app, tenantBound, tenantId);
    const user = await users.register({ email: `kms-${randomUUID()}@example.com`, name: 'Ada' });
    const reader = new UsersModel(
      documentClient,
      testTableNames.app,
      createFunctionEncryptor(environment),
      tenantId,
    );
    expect((await reader.get(user.id)).email).toBe(user.email);

    const signingSecrets = { purpose: 'webhook-signing-secret', tenantId };
    const generated = kms.commandCalls(GenerateDataKeyCommand).map((call) => call.args[0].input);
    const decrypted = kms.commandCalls(DecryptCommand).map((call) => call.args[0].input);
    expect(generated.map((input) => input.EncryptionContext)).toEqual([signingSecrets, { tenantId }]);
    expect(decrypted.map((input) => input.EncryptionContext)).toEqual([
      signingSecrets,
      signingSecrets,
      { tenantId },
    ]);
  });
});
