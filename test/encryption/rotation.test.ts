// The README's key rotation recipe, end to end through the sample functions' environment and encryptor.
import { afterAll, describe, expect, it } from 'vitest';
import { indexSecretCommand } from '../../bin/index-secret.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { type Encryptor, normalizeEmail } from '../../middleware/encryption/encryptor.js';
import { generateEncryptionKey } from '../../middleware/encryption/local-key-provider.js';
import { mockKms } from './fake-kms.js';
import { rejectionOf, thrownBy } from './helpers.js';

const tables = { APP_TABLE_NAME: 'app', TOOLKIT_TABLE_NAME: 'toolkit' };
const context = { tenantId: 'default', userId: 'u-1' };
const fields = ['email'] as const;
const user = { id: 'u-1', email: 'Ada@Example.com' };

/** The users function's encryptor, built from `variables` as its cold start builds it. */
const usersEncryptor = (variables: Record<string, string>) =>
  createFunctionEncryptor(readEnvironment({ ...tables, ...variables }, { blindIndexes: true }));

const emailIndexOf = (encryptor: Encryptor) =>
  encryptor.blindIndex(user.email, { name: 'user-email', normalize: normalizeEmail, scope: 'default' });

/**
 * Encrypts under `before`, re-encrypts under `during` (which still unwraps the old key), then reads
 * under `after` (which no longer has it); checks every step and that the blind index never moved.
 */
async function rotate(before: Encryptor, during: Encryptor, after: Encryptor) {
  const stored = await before.encryptFields(user, fields, context);
  const emailIndex = await emailIndexOf(before);

  expect(during.needsReencryption(stored)).toBe(true);
  const reencrypted = await during.reencryptFields(stored, fields, context);
  expect(during.needsReencryption(reencrypted)).toBe(false);
  expect(await emailIndexOf(during)).toBe(emailIndex);

  expect(await after.decryptFields(reencrypted, fields, context)).toEqual(user);
  // Re-encrypting was needed: without the old key, the record as first stored no longer opens.
  expect(await rejectionOf(after.decryptFields(stored, fields, context))).toMatchObject({
    reason: 'key_not_allowed',
  });
  expect(await emailIndexOf(after)).toBe(emailIndex);
}

describe('rotating ENCRYPTION_KEY', () => {
  const oldKey = generateEncryptionKey();
  const newKey = generateEncryptionKey();

  it('re-encrypts with the old key as ENCRYPTION_PREVIOUS_KEYS, and keeps blind indexes through ENCRYPTION_INDEX_KEY', async () => {
    await rotate(
      usersEncryptor({ ENCRYPTION_KEY: oldKey }),
      usersEncryptor({
        ENCRYPTION_KEY: newKey,
        ENCRYPTION_PREVIOUS_KEYS: oldKey,
        ENCRYPTION_INDEX_KEY: oldKey,
      }),
      usersEncryptor({ ENCRYPTION_KEY: newKey, ENCRYPTION_INDEX_KEY: oldKey }),
    );
  });

  it("keeps blind indexes through the old key's index secret, which leaves nothing configured that unwraps it", async () => {
    const indexSecret = indexSecretCommand([], { ENCRYPTION_KEY: oldKey });
    expect(indexSecret).toMatch(/^index:[A-Za-z0-9+/]{43}=$/);
    await rotate(
      usersEncryptor({ ENCRYPTION_KEY: oldKey }),
      usersEncryptor({
        ENCRYPTION_KEY: newKey,
        ENCRYPTION_PREVIOUS_KEYS: oldKey,
        ENCRYPTION_INDEX_KEY: indexSecret,
      }),
      usersEncryptor({ ENCRYPTION_KEY: newKey, ENCRYPTION_INDEX_KEY: indexSecret }),
    );
    // The secret's bytes are no wrapping key of the old records, even configured as one.
    const stored = await usersEncryptor({ ENCRYPTION_KEY: oldKey }).encryptFields(user, fields, context);
    const posing = usersEncryptor({ ENCRYPTION_KEY: indexSecret.slice('index:'.length) });
    expect(await rejectionOf(posing.decryptFields(stored, fields, context))).toMatchObject({
      reason: 'key_not_allowed',
    });
  });

  it('fails the cold start of a rotation that would move every blind index', () => {
    expect(() => usersEncryptor({ ENCRYPTION_KEY: newKey, ENCRYPTION_PREVIOUS_KEYS: oldKey })).toThrow(
      new Error(
        'Invalid function environment: ENCRYPTION_INDEX_KEY (required with ENCRYPTION_PREVIOUS_KEYS for blind indexes)',
      ),
    );
    // A function without blind indexes rotates without it.
    const webhooks = readEnvironment({ ...tables, ENCRYPTION_KEY: newKey, ENCRYPTION_PREVIOUS_KEYS: oldKey });
    expect(webhooks.encryption.previousLocalKeys).toEqual([oldKey]);
  });

  it('names a malformed previous or index key, never its value', () => {
    const thrown = thrownBy(() =>
      usersEncryptor({
        ENCRYPTION_KEY: newKey,
        ENCRYPTION_PREVIOUS_KEYS: `${oldKey},not-a-key`,
        ENCRYPTION_INDEX_KEY: 'short',
      }),
    );
    expect(thrown.message).toBe(
      'Invalid function environment: ENCRYPTION_PREVIOUS_KEYS, ENCRYPTION_INDEX_KEY',
    );
    expect(
      thrownBy(() => usersEncryptor({ ENCRYPTION_KEY: newKey, ENCRYPTION_INDEX_KEY: 'index:short' })).message,
    ).toBe('Invalid function environment: ENCRYPTION_INDEX_KEY');
  });
});

describe('moving KMS_KEY_ID to another KMS key', () => {
  const oldKeyId = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-00000000000a';
  const newKeyId = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-00000000000b';
  const indexKeyId = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-00000000000c';
  const olderKeyId = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-00000000000d';
  const { kms } = mockKms([oldKeyId, newKeyId, indexKeyId]);
  afterAll(() => kms.restore());

  it('re-encrypts with the old key as KMS_DECRYPT_KEY_IDS; the blind-index key does not change', async () => {
    const index = { KMS_BLIND_INDEX_KEY_ID: indexKeyId };
    await rotate(
      usersEncryptor({ KMS_KEY_ID: oldKeyId, ...index }),
      usersEncryptor({ KMS_KEY_ID: newKeyId, KMS_DECRYPT_KEY_IDS: `${oldKeyId},${olderKeyId}`, ...index }),
      usersEncryptor({ KMS_KEY_ID: newKeyId, ...index }),
    );
  });
});
