// The local key provider: ENCRYPTION_KEY parsing, production refusal, wrapping, rotation; and provider selection.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createKeyProvider } from '../../middleware/encryption/create-key-provider.js';
import { createKmsClient, KmsKeyProvider } from '../../middleware/encryption/kms-key-provider.js';
import {
  encryptionKeyProblem,
  generateEncryptionKey,
  indexKeyProblem,
  indexSecretOf,
  LocalKeyProvider,
} from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError, InvalidArgumentError, InvalidOptionsError } from '../../middleware/errors.js';
import { rejectionOf, thrownBy } from './helpers.js';

const keyContext = { tenantId: 'acme' };

describe('ENCRYPTION_KEY parsing', () => {
  it('generates base64 of 32 random bytes', () => {
    const key = generateEncryptionKey();
    expect(key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(encryptionKeyProblem(key)).toBeUndefined();
    expect(generateEncryptionKey()).not.toBe(key);
  });

  it('accepts standard and URL-safe base64, padded or not', () => {
    const bytes = randomBytes(32);
    for (const text of [
      bytes.toString('base64'),
      bytes.toString('base64').replace(/=+$/, ''),
      bytes.toString('base64url'),
    ]) {
      expect(encryptionKeyProblem(text)).toBeUndefined();
    }
  });

  it.each([
    ['31 bytes', randomBytes(31).toString('base64'), 'must be base64 of 32 bytes (got 31 bytes)'],
    ['33 bytes', randomBytes(33).toString('base64'), 'must be base64 of 32 bytes (got 33 bytes)'],
    ['64 bytes of hex', randomBytes(32).toString('hex'), 'must be base64 of 32 bytes (got 48 bytes)'],
    ['empty', '', 'is not base64'],
    ['not base64', 'this is not a key!', 'is not base64'],
    ['a key with a trailing newline', `${generateEncryptionKey()}\n`, 'is not base64'],
    ['a key with spaces', `  ${generateEncryptionKey()}`, 'is not base64'],
  ])('rejects %s with a clear reason that never contains the key', (_name, text, reason) => {
    expect(encryptionKeyProblem(text)).toBe(reason);
    const error = thrownBy(() => new LocalKeyProvider({ key: text }));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(`Invalid LocalKeyProvider options: key ${reason}`);
    if (text.trim().length > 0) expect(error.message).not.toContain(text.trim());
  });

  it('accepts the key as 32 raw bytes and refuses any other length', () => {
    expect(new LocalKeyProvider({ key: randomBytes(32) }).currentKeyId).toMatch(/^local:[0-9a-f]{16}$/);
    expect(() => new LocalKeyProvider({ key: randomBytes(16) })).toThrow('key must be 32 bytes');
  });

  it('lists every bad key at once, including previous and index keys', () => {
    const error = thrownBy(
      () =>
        new LocalKeyProvider({
          key: 'bad',
          previousKeys: ['also bad', generateEncryptionKey()],
          indexKey: 'x',
        }),
    ) as unknown as InvalidOptionsError;
    expect(error.problems).toEqual([
      'key must be base64 of 32 bytes (got 2 bytes)',
      'previousKeys[0] is not base64',
      'indexKey must be base64 of 32 bytes (got 0 bytes)',
    ]);
  });

  it('refuses previousKeys given as one key, without showing the key', () => {
    const previous = generateEncryptionKey();
    const error = thrownBy(
      () => new LocalKeyProvider({ key: generateEncryptionKey(), previousKeys: previous as never }),
    ) as unknown as InvalidOptionsError;
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.problems).toEqual(['previousKeys must be an array of keys']);
    expect(error.message).not.toContain(previous);
  });
});

describe('LocalKeyProvider in production', () => {
  it('is refused when configuration says production', () => {
    const error = thrownBy(() => new LocalKeyProvider({ key: generateEncryptionKey(), production: true }));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toMatch(/refused in production/);
  });

  it('is accepted in production only when explicitly allowed', () => {
    const provider = new LocalKeyProvider({
      key: generateEncryptionKey(),
      production: true,
      allowInProduction: true,
    });
    expect(provider.providerId).toBe('local');
  });
});

describe('LocalKeyProvider wrapping', () => {
  it('wraps a fresh 32-byte data key and unwraps it under the same context', async () => {
    const provider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const generated = await provider.generateDataKey(keyContext);
    expect(generated.plaintext).toHaveLength(32);
    expect(generated.wrappedKey).toHaveLength(60);
    expect(generated.keyId).toBe(provider.currentKeyId);
    const plaintext = Buffer.from(generated.plaintext);
    expect(Buffer.from(await provider.decryptDataKey(generated, keyContext)).equals(plaintext)).toBe(true);
  });

  it('refuses another context, a tampered or resized wrapped key, and an unknown key id', async () => {
    const provider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const generated = await provider.generateDataKey(keyContext);
    const wrongContext = await rejectionOf(provider.decryptDataKey(generated, { tenantId: 'other' }));
    expect(wrongContext).toMatchObject({ reason: 'authentication_failed' });
    const tampered = Buffer.from(generated.wrappedKey);
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    expect(
      await rejectionOf(provider.decryptDataKey({ ...generated, wrappedKey: tampered }, keyContext)),
    ).toMatchObject({
      reason: 'authentication_failed',
    });
    const resized = await rejectionOf(
      provider.decryptDataKey({ ...generated, wrappedKey: tampered.subarray(1) }, keyContext),
    );
    expect(resized).toMatchObject({ reason: 'malformed' });
    const unknown = await rejectionOf(
      provider.decryptDataKey({ ...generated, keyId: 'local:0000' }, keyContext),
    );
    expect(unknown).toBeInstanceOf(DecryptionError);
    expect(unknown).toMatchObject({ reason: 'key_not_allowed' });
  });

  it('unwraps keys of a previous wrapping key after rotation', async () => {
    const oldKey = generateEncryptionKey();
    const before = new LocalKeyProvider({ key: oldKey });
    const generated = await before.generateDataKey(keyContext);
    const plaintext = Buffer.from(generated.plaintext);
    const after = new LocalKeyProvider({ key: generateEncryptionKey(), previousKeys: [oldKey] });
    expect(after.currentKeyId).not.toBe(before.currentKeyId);
    expect(Buffer.from(await after.decryptDataKey(generated, keyContext)).equals(plaintext)).toBe(true);
  });

  it('derives blind-index keys per name, apart from the wrapping key, kept across rotation via indexKey', async () => {
    const key = generateEncryptionKey();
    const provider = new LocalKeyProvider({ key });
    const email = Buffer.from(await provider.deriveIndexKey('user-email'));
    expect(email).toHaveLength(32);
    expect(email.equals(Buffer.from(key, 'base64'))).toBe(false);
    expect(Buffer.from(await provider.deriveIndexKey('user-phone')).equals(email)).toBe(false);
    const rotated = new LocalKeyProvider({
      key: generateEncryptionKey(),
      previousKeys: [key],
      indexKey: key,
    });
    expect(Buffer.from(await rotated.deriveIndexKey('user-email')).equals(email)).toBe(true);
  });
});

describe('index secrets', () => {
  it("gives the key's blind-index keys to a provider that holds no way to unwrap the key's data keys", async () => {
    const key = generateEncryptionKey();
    const original = new LocalKeyProvider({ key });
    const generated = await original.generateDataKey(keyContext);
    const rotated = new LocalKeyProvider({ key: generateEncryptionKey(), indexKey: indexSecretOf(key) });
    for (const name of ['user-email', 'sms-number']) {
      expect(Buffer.from(await rotated.deriveIndexKey(name))).toEqual(
        Buffer.from(await original.deriveIndexKey(name)),
      );
    }
    expect(await rejectionOf(rotated.decryptDataKey(generated, keyContext))).toMatchObject({
      reason: 'key_not_allowed',
    });
    // Blind-index keys made before index secrets existed, pinned: the secret changes none of them.
    const fixed = Buffer.alloc(32, 7).toString('base64');
    expect(Buffer.from(await new LocalKeyProvider({ key: fixed }).deriveIndexKey('n')).toString('hex')).toBe(
      Buffer.from(
        await new LocalKeyProvider({
          key: generateEncryptionKey(),
          indexKey: indexSecretOf(fixed),
        }).deriveIndexKey('n'),
      ).toString('hex'),
    );
  });

  it('tells a usable index key or secret from anything else, never showing the text', () => {
    const key = generateEncryptionKey();
    expect(indexKeyProblem(key)).toBeUndefined();
    expect(indexKeyProblem(indexSecretOf(key))).toBeUndefined();
    expect(indexKeyProblem('index:abc')).toBe(
      'is an index secret whose part after "index:" must be base64 of 32 bytes (got 2 bytes)',
    );
    expect(indexKeyProblem('abc')).toBe('must be base64 of 32 bytes (got 2 bytes)');
    expect(
      (thrownBy(() => new LocalKeyProvider({ key, indexKey: 'index:abc' })) as unknown as InvalidOptionsError)
        .problems,
    ).toEqual([
      'indexKey is an index secret whose part after "index:" must be base64 of 32 bytes (got 2 bytes)',
    ]);
    // A secret is no key: it cannot be configured as one.
    expect(() => new LocalKeyProvider({ key: indexSecretOf(key) })).toThrow(InvalidOptionsError);
    expect(() => indexSecretOf('abc')).toThrow(InvalidArgumentError);
  });
});

describe('createKeyProvider', () => {
  it('selects KMS when a KMS key id is configured, even with a local key present', () => {
    const kmsKeyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-1111-4b5e-9f00-000000000001';
    const provider = createKeyProvider({
      kmsKeyId,
      blindIndexKeyId: 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-3333-4b5e-9f00-000000000003',
      localKey: generateEncryptionKey(),
      onEvent: () => {},
    });
    expect(provider).toBeInstanceOf(KmsKeyProvider);
    expect(provider.currentKeyId).toBe(kmsKeyId);
    const withClient = createKeyProvider({ kmsKeyId, kmsClient: createKmsClient() });
    expect(withClient).toBeInstanceOf(KmsKeyProvider);
  });

  it('selects the local key otherwise', () => {
    expect(createKeyProvider({ localKey: generateEncryptionKey() })).toBeInstanceOf(LocalKeyProvider);
  });

  it('refuses the local key in production unless allowed', () => {
    expect(() => createKeyProvider({ localKey: generateEncryptionKey(), production: true })).toThrow(
      InvalidOptionsError,
    );
    const allowed = createKeyProvider({
      localKey: generateEncryptionKey(),
      production: true,
      allowLocalKeyInProduction: true,
    });
    expect(allowed).toBeInstanceOf(LocalKeyProvider);
  });

  it('names in its problems the options and variables the caller set, not the provider’s own', () => {
    const key = generateEncryptionKey();
    expect(() => createKeyProvider({ localKey: key, production: true })).toThrow(
      new InvalidOptionsError('keyProvider', [
        'the local key provider is refused in production; configure a KMS key (or set allowLocalKeyInProduction: ALLOW_LOCAL_KEY_IN_PRODUCTION=true)',
      ]),
    );
    expect(() =>
      createKeyProvider({ localKey: 'short', previousLocalKeys: [key, 'bad'], localIndexKey: 'bad' }),
    ).toThrow(
      new InvalidOptionsError('keyProvider', [
        'localKey (ENCRYPTION_KEY) must be base64 of 32 bytes (got 3 bytes)',
        'previousLocalKeys[1] (ENCRYPTION_PREVIOUS_KEYS) must be base64 of 32 bytes (got 2 bytes)',
        'localIndexKey (ENCRYPTION_INDEX_KEY) must be base64 of 32 bytes (got 2 bytes)',
      ]),
    );
    expect(() => createKeyProvider({ localKey: key, previousLocalKeys: key as never })).toThrow(
      new InvalidOptionsError('keyProvider', [
        'previousLocalKeys (ENCRYPTION_PREVIOUS_KEYS) must be an array of keys',
      ]),
    );
    const arnOnly = 'an alias can be pointed at another key, a key ARN never changes';
    expect(() => createKeyProvider({ kmsKeyId: 'k', kmsDecryptKeyIds: [''], blindIndexKeyId: ' ' })).toThrow(
      new InvalidOptionsError('keyProvider', [
        `kmsKeyId (KMS_KEY_ID) must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>): ${arnOnly}`,
        'kmsDecryptKeyIds (KMS_DECRYPT_KEY_IDS) must be key ARNs, or the alias or key id an older header names',
        `blindIndexKeyId (KMS_BLIND_INDEX_KEY_ID) must be a key ARN: ${arnOnly}`,
      ]),
    );
  });

  it('names both settings when neither is configured', () => {
    expect(() => createKeyProvider({})).toThrow(/KMS_KEY_ID.*ENCRYPTION_KEY/);
    expect(() => createKeyProvider({ localKey: '' })).toThrow(InvalidOptionsError);
  });
});
