// The envelope encryptor with the local provider: round trips, the stored format, tampering, bad input, caches.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type DataKeyCacheOptions,
  defaultSensitiveFields,
  Encryptor,
  type EncryptorOptions,
  normalizeEmail,
} from '../../middleware/encryption/encryptor.js';
import {
  decodeHeader,
  type EncryptionContext,
  encodeHeader,
  fieldOverheadBytes,
  keyRefOf,
} from '../../middleware/encryption/format.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { decodeValue } from '../../middleware/encryption/value-codec.js';
import {
  DecryptionError,
  EncryptionError,
  InvalidOptionsError,
  isUnreadableRecord,
} from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { countingProvider, flipBit, rejectionOf, thrownBy } from './helpers.js';

const context: EncryptionContext = { tenantId: 'acme', userId: 'u-1' };

function encryptorWith(options: Partial<EncryptorOptions> = {}) {
  const keyProvider = options.keyProvider ?? countingProvider();
  return new Encryptor({ ...options, keyProvider });
}

const sample = {
  id: 'u-1',
  name: 'Alice',
  password_hash: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
  email: 'alice@example.com',
  phone: '+14155552671',
  credit_card: '4111111111111111',
  ssn: '078-05-1120',
  api_key: 'bwk_live_5f2b1c',
  secret: 'correct horse battery staple',
};

afterEach(() => {
  vi.useRealTimers();
});

/** Encrypts at 0, one second before `ageMs` and at `ageMs`: the key is reused, then renewed. */
async function expectDataKeyRenewedAt(cache: DataKeyCacheOptions, ageMs: number): Promise<void> {
  vi.useFakeTimers();
  const keyProvider = countingProvider();
  const encryptor = new Encryptor({ keyProvider, cache });
  await encryptor.encryptFields(sample, ['email'], context);
  vi.advanceTimersByTime(ageMs - 1_000);
  await encryptor.encryptFields(sample, ['email'], context);
  expect(keyProvider.calls.generate).toBe(1);
  vi.advanceTimersByTime(1_000);
  await encryptor.encryptFields(sample, ['email'], context);
  expect(keyProvider.calls.generate).toBe(2);
}

describe('Encryptor round trips', () => {
  it('encrypts and decrypts every default sensitive field, leaving the others in clear', async () => {
    const encryptor = encryptorWith();
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      sample,
      defaultSensitiveFields,
      context,
    );
    for (const field of defaultSensitiveFields) {
      expect(stored[field]).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(stored[field] as Uint8Array).includes(sample[field])).toBe(false);
    }
    expect(stored).toMatchObject({ id: 'u-1', name: 'Alice' });
    expect(stored._dataKey).toBeInstanceOf(Uint8Array);
    expect(await encryptor.decryptFields(stored, defaultSensitiveFields, context)).toEqual(sample);
  });

  it.each([
    ['an empty string', ''],
    ['a unicode string', 'Zoë 🐝 — 東京'],
    ['an integer', 42],
    ['a negative float', -12.5],
    ['zero', 0],
    ['true', true],
    ['false', false],
    ['bytes', new Uint8Array([0, 1, 2, 255])],
    ['a JSON object', { street: '1 Main St', zip: '12345', tags: ['a', null, 3] }],
    ['a JSON array', [1, 'two', { three: 3 }]],
    ['an empty object', {}],
  ])('round-trips %s with its type', async (_name, value) => {
    const encryptor = encryptorWith();
    const stored = await encryptor.encryptFields({ value }, ['value'], context);
    const restored = await encryptor.decryptFields(stored, ['value'], context);
    expect(restored.value).toEqual(value);
    expect(typeof restored.value).toBe(typeof value);
  });

  it('encrypts nested paths and never changes the caller’s record', async () => {
    const encryptor = encryptorWith();
    const record = {
      id: 'r',
      profile: { contact: { email: 'a@b.co', city: 'Oslo' }, ssn: '1' },
      other: { x: 1 },
    };
    const snapshot = structuredClone(record);
    const stored = await encryptor.encryptFields(record, ['profile.contact.email', 'profile.ssn'], context);
    expect(record).toEqual(snapshot);
    const profile = stored.profile as { contact: Record<string, unknown>; ssn: unknown };
    expect(profile.contact.email).toBeInstanceOf(Uint8Array);
    expect(profile.contact.city).toBe('Oslo');
    expect(profile.ssn).toBeInstanceOf(Uint8Array);
    expect(stored.other).toBe(record.other);
    const restored = await encryptor.decryptFields(stored, ['profile.contact.email', 'profile.ssn'], context);
    expect(restored).toEqual(record);
  });

  it('skips absent and null fields, and a record with nothing to encrypt gets no header', async () => {
    const encryptor = encryptorWith();
    const record: Record<string, unknown> = { id: 'x', email: null };
    const stored = await encryptor.encryptFields(record, ['email', 'phone', 'a.b'], context);
    expect(stored).toEqual({ id: 'x', email: null });
    expect(await encryptor.decryptFields(stored, ['email', 'phone'], context)).toEqual({
      id: 'x',
      email: null,
    });
    const headerOnly: Record<string, unknown> = { id: 'x', _dataKey: new Uint8Array([1]) };
    expect(await encryptor.decryptFields(headerOnly, ['email'], context)).toEqual({ id: 'x' });
  });

  it('returns base64url strings when asked, and decrypts either encoding', async () => {
    const binary = encryptorWith();
    const text = encryptorWith({
      keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }),
      encoding: 'base64url',
    });
    const stored: Record<string, unknown> = await text.encryptFields({ email: 'a@b.co' }, ['email'], context);
    expect(stored.email).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(stored._dataKey).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(JSON.parse(JSON.stringify(stored))).toEqual(stored);
    expect(await text.decryptFields(stored, ['email'], context)).toEqual({ email: 'a@b.co' });
    const fromBinary = await binary.encryptFields({ email: 'a@b.co' }, ['email'], context);
    expect(await binary.decryptFields(fromBinary, ['email'], context)).toEqual({ email: 'a@b.co' });
  });

  it('uses a fresh IV per value, so equal values never give equal ciphertexts', async () => {
    const encryptor = encryptorWith();
    const first = await encryptor.encryptFields({ a: 'same', b: 'same' }, ['a', 'b'], context);
    const second = await encryptor.encryptFields({ a: 'same' }, ['a'], context);
    expect(Buffer.from(first.a as Uint8Array).equals(Buffer.from(first.b as Uint8Array))).toBe(false);
    expect(Buffer.from(first.a as Uint8Array).equals(Buffer.from(second.a as Uint8Array))).toBe(false);
  });
});

describe('the stored format', () => {
  it('adds 34 bytes per field: version, key reference, IV, type tag and GCM tag', async () => {
    const encryptor = encryptorWith();
    const value = 'x'.repeat(32);
    const stored = await encryptor.encryptFields({ a: value, b: value }, ['a', 'b'], context);
    expect(fieldOverheadBytes).toBe(34);
    expect((stored.a as Uint8Array).length).toBe(32 + 34);
    expect((stored.b as Uint8Array).length).toBe(32 + 34);
  });

  it('stores one header per record that names the provider, key, bound context members and wrapped key', async () => {
    const keyProvider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const encryptor = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      sample,
      defaultSensitiveFields,
      context,
    );
    const headerBytes = Buffer.from(stored._dataKey as Uint8Array);
    const header = decodeHeader(headerBytes);
    expect(header).toMatchObject({
      providerId: 'local',
      keyId: keyProvider.currentKeyId,
      keyContextNames: ['tenantId'],
    });
    expect(header.wrappedKey.length).toBe(60);
    for (const field of defaultSensitiveFields) {
      const bytes = Buffer.from(stored[field] as Uint8Array);
      expect(bytes[0]).toBe(1);
      expect(bytes.subarray(1, 5).equals(keyRefOf(headerBytes))).toBe(true);
    }
  });

  it('writes the header under a configurable attribute name', async () => {
    const encryptor = encryptorWith({ headerField: 'dk' });
    expect(encryptor.headerField).toBe('dk');
    const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], context);
    expect(Object.keys(stored).sort()).toEqual(['dk', 'email']);
  });

  it('tells which context members it binds to new data keys, sorted and once each', () => {
    expect(encryptorWith({ keyContextFields: ['tenantId', 'purpose', 'tenantId'] }).keyContextFields).toEqual(
      ['purpose', 'tenantId'],
    );
    expect(encryptorWith().keyContextFields).toBeUndefined();
  });
});

describe('tampering and moved values', () => {
  async function storedSample(options: Partial<EncryptorOptions> = {}) {
    const encryptor = encryptorWith(options);
    // The stored format, which these tests tamper with, as an untyped item.
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      sample,
      ['email', 'phone'],
      context,
    );
    return { encryptor, stored };
  }

  const fieldRegions: [string, (length: number) => number][] = [
    ['the version byte', () => 0],
    ['the key reference', () => 2],
    ['the IV', () => 7],
    ['the ciphertext', () => 20],
    ['the type tag', () => 17],
    ['the GCM tag', (length) => length - 3],
  ];

  it.each(fieldRegions)('rejects one bit flipped in %s', async (_region, offsetOf) => {
    const { encryptor, stored } = await storedSample();
    const email = stored.email as Uint8Array;
    const tampered: Record<string, unknown> = { ...stored, email: flipBit(email, offsetOf(email.length)) };
    const error = await rejectionOf(encryptor.decryptFields(tampered, ['email', 'phone'], context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.code).toBe('DECRYPTION_FAILED');
    expect(error.field).toBe('email');
    expect(error.message).not.toContain(sample.email);
  });

  it('rejects one bit flipped in the wrapped data key', async () => {
    const { encryptor, stored } = await storedSample();
    const tampered: Record<string, unknown> = { ...stored, _dataKey: flipBit(stored._dataKey, -5) };
    const error = await rejectionOf(encryptor.decryptFields(tampered, ['email'], context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('key_mismatch');
  });

  it('rejects a tampered wrapped key even when every key reference is forged to match it', async () => {
    const { encryptor, stored } = await storedSample();
    const header = flipBit(stored._dataKey, -5);
    const ref = keyRefOf(header);
    const forge = (value: unknown) => {
      const copy = Buffer.from(value as Uint8Array);
      ref.copy(copy, 1);
      return copy;
    };
    const forged = { ...stored, _dataKey: header, email: forge(stored.email), phone: forge(stored.phone) };
    const error = await rejectionOf(encryptor.decryptFields(forged, ['email', 'phone'], context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('authentication_failed');
  });

  it('rejects one bit flipped in the header’s key id or bound context names', async () => {
    const { encryptor, stored } = await storedSample({ keyContextFields: ['tenantId'] });
    for (const offset of [3, 12, 26]) {
      const tampered: Record<string, unknown> = { ...stored, _dataKey: flipBit(stored._dataKey, offset) };
      const error = await rejectionOf(encryptor.decryptFields(tampered, ['email'], context));
      expect(error).toBeInstanceOf(DecryptionError);
    }
  });

  it('rejects a value moved to another field of the same record', async () => {
    const { encryptor, stored } = await storedSample();
    const swapped = { ...stored, email: stored.phone, phone: stored.email };
    const error = await rejectionOf(encryptor.decryptFields(swapped, ['email', 'phone'], context));
    expect(error.reason).toBe('authentication_failed');
  });

  it('rejects a value moved to another record of the same tenant (same data key)', async () => {
    const encryptor = encryptorWith({ keyContextFields: ['tenantId'] });
    const alice: Record<string, unknown> = await encryptor.encryptFields({ email: 'alice@x.io' }, ['email'], {
      tenantId: 't',
      userId: 'a',
    });
    const bob: Record<string, unknown> = await encryptor.encryptFields({ email: 'bob@x.io' }, ['email'], {
      tenantId: 't',
      userId: 'b',
    });
    expect(Buffer.from(alice._dataKey as Uint8Array).equals(Buffer.from(bob._dataKey as Uint8Array))).toBe(
      true,
    );
    const moved = { ...bob, email: alice.email };
    const error = await rejectionOf(
      encryptor.decryptFields(moved, ['email'], { tenantId: 't', userId: 'b' }),
    );
    expect(error.reason).toBe('authentication_failed');
  });

  it('rejects a value moved to a record with its own data key, before any key request', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const alice = await encryptor.encryptFields({ email: 'alice@x.io' }, ['email'], { userId: 'a' });
    const bob = await encryptor.encryptFields({ email: 'bob@x.io' }, ['email'], { userId: 'b' });
    const reader = new Encryptor({ keyProvider });
    const error = await rejectionOf(
      reader.decryptFields({ ...bob, email: alice.email }, ['email'], { userId: 'b' }),
    );
    expect(error.reason).toBe('key_mismatch');
    expect(keyProvider.calls.decrypt).toBe(0);
  });

  it('rejects the right value read under the wrong record id', async () => {
    const { encryptor, stored } = await storedSample();
    const error = await rejectionOf(
      encryptor.decryptFields(stored, ['email'], { ...context, userId: 'u-2' }),
    );
    expect(error.reason).toBe('authentication_failed');
  });

  it('rejects the right value read under another tenant, at the data key', async () => {
    const keyProvider = countingProvider();
    const writer = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    const stored = await writer.encryptFields(sample, ['email'], context);
    const reader = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    const error = await rejectionOf(
      reader.decryptFields(stored, ['email'], { ...context, tenantId: 'evil' }),
    );
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('authentication_failed');
  });

  it('rejects a context that lacks a member the data key is bound to', async () => {
    const { encryptor, stored } = await storedSample({ keyContextFields: ['tenantId'] });
    const error = await rejectionOf(encryptor.decryptFields(stored, ['email'], { userId: 'u-1' }));
    expect(error.reason).toBe('invalid_context');
  });

  it('rejects a header from another key provider', async () => {
    const { stored } = await storedSample();
    const other = new Encryptor({
      keyProvider: { ...countingProvider(), providerId: 'aws-kms' },
    });
    const error = await rejectionOf(other.decryptFields(stored, ['email'], context));
    expect(error.reason).toBe('key_not_allowed');
  });

  it('rejects a record with encrypted fields but no header', async () => {
    const { encryptor, stored } = await storedSample();
    const { _dataKey: _, ...headless } = stored;
    const error = await rejectionOf(encryptor.decryptFields(headless, ['email'], context));
    expect(error.reason).toBe('missing_header');
  });
});

describe('bad stored input', () => {
  async function stored() {
    const encryptor = encryptorWith();
    const record: Record<string, unknown> = await encryptor.encryptFields(sample, ['email'], context);
    return { encryptor, record };
  }

  it('rejects a plaintext value where a ciphertext belongs, never returning it as is', async () => {
    const { encryptor, record } = await stored();
    for (const value of ['alice@example.com', 42, { a: 1 }, true]) {
      const error = await rejectionOf(
        encryptor.decryptFields({ ...record, email: value }, ['email'], context),
      );
      expect(error).toBeInstanceOf(DecryptionError);
      expect(error.reason).toBe('malformed');
      expect(error.message).not.toContain('alice');
    }
  });

  it.each([
    ['empty', 0],
    ['cut after the version byte', 1],
    ['cut inside the IV', 10],
    ['cut inside the tag', 33],
  ])('rejects a truncated field (%s)', async (_name, length) => {
    const { encryptor, record } = await stored();
    const cut = Buffer.from(record.email as Uint8Array).subarray(0, length);
    const error = await rejectionOf(encryptor.decryptFields({ ...record, email: cut }, ['email'], context));
    expect(error.reason).toBe('truncated');
  });

  it('rejects a field shortened by one byte (the tag no longer authenticates)', async () => {
    const { encryptor, record } = await stored();
    const cut = Buffer.from(record.email as Uint8Array).subarray(0, (record.email as Uint8Array).length - 1);
    const error = await rejectionOf(encryptor.decryptFields({ ...record, email: cut }, ['email'], context));
    expect(error).toBeInstanceOf(DecryptionError);
  });

  it('rejects unknown field and header format versions', async () => {
    const { encryptor, record } = await stored();
    const field = Buffer.from(record.email as Uint8Array);
    field[0] = 2;
    const fieldError = await rejectionOf(
      encryptor.decryptFields({ ...record, email: field }, ['email'], context),
    );
    expect(fieldError.reason).toBe('unknown_version');
    const header = Buffer.from(record._dataKey as Uint8Array);
    header[0] = 9;
    const newer: Record<string, unknown> = { ...record, _dataKey: header };
    const headerError = await rejectionOf(encryptor.decryptFields(newer, ['email'], context));
    expect(headerError.reason).toBe('unknown_version');
    expect(() => encryptor.needsReencryption({ _dataKey: header })).toThrow(DecryptionError);
  });

  it('rejects a truncated, padded, empty-membered or non-binary header', async () => {
    const { encryptor, record } = await stored();
    const header = Buffer.from(record._dataKey as Uint8Array);
    const cases: [unknown, string][] = [
      [header.subarray(0, header.length - 1), 'truncated'],
      [header.subarray(0, 3), 'truncated'],
      [Buffer.concat([header, Buffer.from([0])]), 'malformed'],
      [Buffer.from([1, 0, 0, 0, 0, 0, 0]), 'malformed'],
      ['not base64url!', 'malformed'],
      [12345, 'malformed'],
    ];
    for (const [value, reason] of cases) {
      const malformed: Record<string, unknown> = { ...record, _dataKey: value };
      const error = await rejectionOf(encryptor.decryptFields(malformed, ['email'], context));
      expect(error.reason).toBe(reason);
    }
  });

  it('rejects a record that is not an object', async () => {
    const encryptor = encryptorWith();
    const error = await rejectionOf(
      encryptor.decryptFields(null as unknown as Record<string, unknown>, ['email'], context),
    );
    expect(error.reason).toBe('malformed');
  });

  it('refuses a header-type value whose type tag is unknown', () => {
    expect(() => decodeValue(Buffer.from([0x7a, 1, 2]), 'f')).toThrow(DecryptionError);
  });
});

describe('bad values to encrypt', () => {
  class Money {
    constructor(readonly cents: number) {}
  }

  it.each([
    ['a bigint', 10n],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a Date', new Date(0)],
    ['a Map', new Map([['a', 1]])],
    ['a class instance', new Money(5)],
    ['an object holding undefined', { a: undefined }],
    ['an array holding a function', [() => 1]],
    ['bytes nested in an object', { raw: new Uint8Array([1]) }],
    // JSON writes a hole as null: it would come back changed.
    ['an array with a hole', Object.assign(new Array(3), { 0: 1, 2: 3 })],
    ['an array of holes only', new Array(2)],
    ['an array with a hole in an object', { list: Object.assign(new Array(2), { 1: 'x' }) }],
  ])('refuses %s with a typed error and no key request', async (_name, value) => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const error = await rejectionOf(encryptor.encryptFields({ id: 'r', value }, ['value'], context));
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error).toMatchObject({ code: 'ENCRYPTION_FAILED', reason: 'unsupported_value', field: 'value' });
    expect(keyProvider.calls.generate).toBe(0);
  });

  it('takes -0 and reads it back as 0, as JSON does, rather than fail a write over Math.round(-0.4)', async () => {
    const encryptor = encryptorWith();
    const record = { value: Math.round(-0.4), nested: { balance: -0 } };
    const sealed = await encryptor.encryptFields(record, ['value', 'nested'], context);
    const opened = await encryptor.decryptFields(sealed, ['value', 'nested'], context);
    expect(Object.is(opened.value, 0)).toBe(true);
    expect(opened.nested).toStrictEqual({ balance: 0 });
  });

  it('refuses JSON nested deeper than 32 levels', async () => {
    let deep: unknown = 'leaf';
    for (let level = 0; level < 40; level += 1) deep = { deep };
    const error = await rejectionOf(encryptorWith().encryptFields({ deep }, ['deep'], context));
    expect(error.reason).toBe('unsupported_value');
  });

  it('refuses an oversize value, naming the field and sizes but not the value, and encrypts nothing', async () => {
    const encryptor = encryptorWith({ maxValueBytes: 1024 });
    const record = { email: 'a@b.co', bio: 'z'.repeat(1025) };
    const error = await rejectionOf(encryptor.encryptFields(record, ['email', 'bio'], context));
    expect(error).toMatchObject({ reason: 'value_too_large', field: 'bio' });
    expect(error.message).toContain('1025 bytes');
    expect(error.message).not.toContain('zzzz');
    expect(record.email).toBe('a@b.co');
  });

  it('refuses a record that already carries a header (no double encryption)', async () => {
    const encryptor = encryptorWith();
    const stored = await encryptor.encryptFields(sample, ['email'], context);
    const error = await rejectionOf(encryptor.encryptFields(stored, ['email'], context));
    expect(error.reason).toBe('already_encrypted');
  });

  it.each([
    ['not an object', 'acme'],
    ['a number member', { tenantId: 7 }],
    ['an empty key', { '': 'x' }],
    ['an oversized value', { tenantId: 'x'.repeat(1025) }],
    ['too many members', Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`k${index}`, 'v']))],
  ])('refuses a context that is %s', async (_name, badContext) => {
    const error = await rejectionOf(
      encryptorWith().encryptFields(sample, ['email'], badContext as unknown as EncryptionContext),
    );
    expect(error).toMatchObject({ reason: 'invalid_context' });
    const decryptError = await rejectionOf(
      encryptorWith().decryptFields(sample, ['email'], badContext as unknown as EncryptionContext),
    );
    expect(decryptError).toBeInstanceOf(DecryptionError);
  });

  it('refuses a context that lacks a key-context member', async () => {
    const encryptor = encryptorWith({ keyContextFields: ['tenantId'] });
    const error = await rejectionOf(encryptor.encryptFields(sample, ['email'], { userId: 'u' }));
    expect(error.reason).toBe('invalid_context');
  });

  it('refuses records that are not objects and field lists that are not dotted paths', async () => {
    const encryptor = encryptorWith();
    expect(
      (await rejectionOf(encryptor.encryptFields([] as unknown as Record<string, unknown>, ['a'], context)))
        .reason,
    ).toBe('unsupported_value');
    const record: Record<string, unknown> = sample;
    const bad = await rejectionOf(
      encryptor.encryptFields(
        record,
        ['', 'a..b', '__proto__.x', '_dataKey', 7 as unknown as string],
        context,
      ),
    );
    expect(bad).toBeInstanceOf(InvalidOptionsError);
    expect((bad as unknown as InvalidOptionsError).problems).toHaveLength(5);
    const notArray = await rejectionOf(
      encryptor.encryptFields(record, 'email' as unknown as string[], context),
    );
    expect(notArray).toBeInstanceOf(InvalidOptionsError);
  });
});

describe('data-key caching', () => {
  it('generates one data key per key context and reuses it (10,000 encryptions, one request)', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    for (let index = 0; index < 10_000; index += 1) {
      await encryptor.encryptFields({ email: `u${index}@x.io` }, ['email'], {
        tenantId: 't',
        userId: `u${index}`,
      });
    }
    expect(keyProvider.calls.generate).toBe(1);
    await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], { tenantId: 'other', userId: 'u' });
    expect(keyProvider.calls.generate).toBe(2);
  });

  it('coalesces concurrent misses for one context into a single request', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const stored = await Promise.all(
      Array.from({ length: 100 }, () => encryptor.encryptFields({ email: 'a@b.co' }, ['email'], context)),
    );
    expect(keyProvider.calls.generate).toBe(1);
    const reader = new Encryptor({ keyProvider });
    await Promise.all(stored.map((record) => reader.decryptFields(record, ['email'], context)));
    expect(keyProvider.calls.decrypt).toBe(1);
  });

  it('renews the data key after maxAgeMs', async () => {
    await expectDataKeyRenewedAt({ maxAgeMs: 60_000 }, 60_000);
  });

  it('renews the data key after maxMessages values, counting every field of a record', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider, cache: { maxMessages: 5 } });
    await encryptor.encryptFields(sample, ['email', 'phone'], context);
    await encryptor.encryptFields(sample, ['email', 'phone'], context);
    expect(keyProvider.calls.generate).toBe(1);
    const third = await encryptor.encryptFields(sample, ['email', 'phone'], context);
    expect(keyProvider.calls.generate).toBe(2);
    expect(await encryptor.decryptFields(third, ['email', 'phone'], context)).toEqual(sample);
  });

  it('refuses a field list longer than maxMessages, since a record’s values share one data key', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider, cache: { maxMessages: 2 } });
    const fields = ['email', 'phone', 'ssn'] as const;
    const error = await rejectionOf(encryptor.encryptFields(sample, fields, context));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toContain('cache.maxMessages (2)');
    const emailOnly: Record<string, unknown> = { email: 'a@b.co' };
    expect(await rejectionOf(encryptor.encryptFields(emailOnly, fields, context))).toBeInstanceOf(
      InvalidOptionsError,
    );
    expect(keyProvider.calls.generate).toBe(0);
    await encryptor.encryptFields(sample, ['email', 'phone'], context);
    expect(keyProvider.calls.generate).toBe(1);
  });

  it('keeps at most maxEntries data keys, dropping the least recently used', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider, cache: { maxEntries: 2 } });
    const contextOf = (userId: string) => ({ userId });
    await encryptor.encryptFields(sample, ['email'], contextOf('a'));
    await encryptor.encryptFields(sample, ['email'], contextOf('b'));
    await encryptor.encryptFields(sample, ['email'], contextOf('a'));
    await encryptor.encryptFields(sample, ['email'], contextOf('c'));
    expect(keyProvider.calls.generate).toBe(3);
    await encryptor.encryptFields(sample, ['email'], contextOf('a'));
    expect(keyProvider.calls.generate).toBe(3);
    await encryptor.encryptFields(sample, ['email'], contextOf('b'));
    expect(keyProvider.calls.generate).toBe(4);
  });

  it('keeps the headers it reads by recent use, so a busy record is not unwrapped again', async () => {
    const keyProvider = countingProvider();
    const writer = new Encryptor({ keyProvider });
    const records = new Map<string, Record<string, unknown>>();
    for (const userId of ['a', 'b', 'c']) {
      records.set(userId, await writer.encryptFields(sample, ['email'], { userId }));
    }
    const reader = new Encryptor({ keyProvider, cache: { maxEntries: 2 } });
    for (const userId of ['a', 'b', 'a', 'c', 'a']) {
      await reader.decryptFields(records.get(userId) as Record<string, unknown>, ['email'], { userId });
    }
    expect(keyProvider.calls.decrypt).toBe(3);
  });

  it('caches nothing when maxAgeMs is 0', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider, cache: { maxAgeMs: 0 } });
    const stored = await encryptor.encryptFields(sample, ['email'], context);
    await encryptor.encryptFields(sample, ['email'], context);
    await encryptor.decryptFields(stored, ['email'], context);
    await encryptor.decryptFields(stored, ['email'], context);
    expect(keyProvider.calls).toMatchObject({ generate: 2, decrypt: 2 });
  });

  it('reads back what it wrote without unwrapping, and forgets everything on clearCaches', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const stored = await encryptor.encryptFields(sample, ['email'], context);
    await encryptor.decryptFields(stored, ['email'], context);
    expect(keyProvider.calls.decrypt).toBe(0);
    encryptor.clearCaches();
    await encryptor.decryptFields(stored, ['email'], context);
    expect(keyProvider.calls.decrypt).toBe(1);
  });

  it('retries after a failed request instead of caching the failure', async () => {
    const inner = countingProvider();
    let failures = 1;
    const flaky = {
      ...inner,
      generateDataKey: async (keyContext: EncryptionContext) => {
        if (failures-- > 0) throw new Error('socket hang up');
        return inner.generateDataKey(keyContext);
      },
    };
    const encryptor = new Encryptor({ keyProvider: flaky });
    const error = await rejectionOf(encryptor.encryptFields(sample, ['email'], context));
    expect(error).toMatchObject({ code: 'ENCRYPTION_FAILED', reason: 'key_unavailable' });
    expect(error.cause).toBeInstanceOf(Error);
    const stored = await encryptor.encryptFields(sample, ['email'], context);
    expect(await encryptor.decryptFields(stored, ['email'], context)).toEqual(sample);
  });

  it('reports cache hits as dataKey.cacheHit events', async () => {
    const events: SecurityEvent[] = [];
    const encryptor = encryptorWith({ onEvent: (event) => events.push(event) });
    const stored = await encryptor.encryptFields(sample, ['email'], context);
    await encryptor.encryptFields(sample, ['email'], context);
    await encryptor.decryptFields(stored, ['email'], context);
    expect(events).toEqual([
      { type: 'dataKey.cacheHit', metadata: { operation: 'encrypt', providerId: 'local' } },
      { type: 'dataKey.cacheHit', metadata: { operation: 'decrypt', providerId: 'local' } },
    ]);
  });

  it('turns an unexpected unwrap failure into a typed DecryptionError', async () => {
    const inner = countingProvider();
    const broken = {
      ...inner,
      decryptDataKey: async () => {
        throw new Error('boom');
      },
    };
    const stored = await new Encryptor({ keyProvider: inner }).encryptFields(sample, ['email'], context);
    const error = await rejectionOf(
      new Encryptor({ keyProvider: broken }).decryptFields(stored, ['email'], context),
    );
    expect(error).toMatchObject({ code: 'DECRYPTION_FAILED', reason: 'key_unavailable' });
  });

  it("keeps a provider's typed reason for an unwrap it refuses, so a refused context is no outage", async () => {
    const inner = countingProvider();
    const stored = await new Encryptor({ keyProvider: inner }).encryptFields(sample, ['email'], context);
    for (const reason of ['invalid_context', 'key_misconfigured'] as const) {
      const refusing = {
        ...inner,
        decryptDataKey: async () => {
          throw new EncryptionError(reason, 'refused');
        },
      };
      const error = await rejectionOf(
        new Encryptor({ keyProvider: refusing }).decryptFields(stored, ['email'], context),
      );
      expect(error).toBeInstanceOf(DecryptionError);
      expect(error.reason).toBe(reason);
    }
  });

  it.each([[['toString']], [['constructor']], [['__proto__']], [['tenantId', 'hasOwnProperty']]])(
    'refuses a forged header whose key context names %j, which the context only inherits',
    async (names) => {
      const encryptor = new Encryptor({
        keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }),
        keyContextFields: ['tenantId'],
      });
      const stored: Record<string, unknown> = await encryptor.encryptFields(sample, ['email'], context);
      // A table writer rewrites the header's names and fixes the field's key reference to match it.
      const forgedHeader = encodeHeader({
        ...decodeHeader(Buffer.from(stored._dataKey as Uint8Array)),
        keyContextNames: names,
      });
      const email = Buffer.from(stored.email as Uint8Array);
      keyRefOf(forgedHeader).copy(email, 1);
      const error = await rejectionOf(
        encryptor.decryptFields({ ...stored, _dataKey: forgedHeader, email }, ['email'], context),
      );
      expect(error).toBeInstanceOf(DecryptionError);
      expect(error.reason).toBe('invalid_context');
      expect(isUnreadableRecord(error)).toBe(true);
    },
  );
});

describe('key rotation', () => {
  it('re-encrypts a record from a retired local key to the current one', async () => {
    const oldKey = generateEncryptionKey();
    const newKey = generateEncryptionKey();
    const before = new Encryptor({ keyProvider: new LocalKeyProvider({ key: oldKey }) });
    const stored = await before.encryptFields(sample, ['email', 'phone'], context);

    const after = new Encryptor({
      keyProvider: new LocalKeyProvider({ key: newKey, previousKeys: [oldKey] }),
    });
    expect(after.needsReencryption(stored)).toBe(true);
    expect(await after.decryptFields(stored, ['email', 'phone'], context)).toEqual(sample);
    const rotated = await after.reencryptFields(stored, ['email', 'phone'], context);
    expect(after.needsReencryption(rotated)).toBe(false);
    expect(after.needsReencryption({ id: 'plain' })).toBe(false);

    const newOnly = new Encryptor({ keyProvider: new LocalKeyProvider({ key: newKey }) });
    expect(await newOnly.decryptFields(rotated, ['email', 'phone'], context)).toEqual(sample);
    const error = await rejectionOf(newOnly.decryptFields(stored, ['email'], context));
    expect(error.reason).toBe('key_not_allowed');
  });
});

describe('blind indexes', () => {
  const email = { name: 'user-email', normalize: normalizeEmail };

  it('gives equal indexes for equal normalised values and different ones otherwise', async () => {
    const encryptor = encryptorWith();
    const index = await encryptor.blindIndex('Alice@Example.com ', email);
    expect(index).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(await encryptor.blindIndex('alice@example.com', email)).toBe(index);
    expect(await encryptor.blindIndex('bob@example.com', email)).not.toBe(index);
    expect(index).not.toContain('alice');
  });

  it('keeps the index of an ASCII address and gives an IDN domain the index of its ASCII form', async () => {
    // Indexes stored before IDN domains were converted: computed with the normaliser as it was then.
    const encryptor = new Encryptor({
      keyProvider: new LocalKeyProvider({ key: Buffer.alloc(32, 7).toString('base64') }),
    });
    expect(await encryptor.blindIndex('Alice@Example.com ', email)).toBe('LEDlCMk_l1HGnSBby0IphA');
    expect(await encryptor.blindIndex('bob@xn--bcher-kva.de', email)).toBe('tTcbWZucuS-efL0DX4d4kg');
    expect(await encryptor.blindIndex('Bob@Bücher.DE', email)).toBe('tTcbWZucuS-efL0DX4d4kg');
    expect(normalizeEmail(' BOB@例え.jp')).toBe('bob@xn--r8jz45g.jp');
    // IDNA maps ẞ to ss but keeps ß: lower-casing before it would index FAẞ.de as faß.de.
    expect(normalizeEmail('bob@FAẞ.de')).toBe('bob@fass.de');
    expect(normalizeEmail('bob@faß.de')).toBe('bob@xn--fa-hia.de');
    for (const ascii of ['Alice@Example.com ', "o'hara+tag@Sub.Example.CO.uk", 'no-at-sign', 'a@b@c.de']) {
      expect(normalizeEmail(ascii)).toBe(ascii.trim().normalize('NFC').toLowerCase());
    }
  });

  it.each([
    ['  Alice.Smith+Tag@Example.COM\n', 'alice.smith+tag@example.com'],
    ['ÜNÏCODE@Bücher.DE', 'ünïcode@xn--bcher-kva.de'],
    ['U\u0308nI\u0308code@Bu\u0308cher.DE', 'ünïcode@xn--bcher-kva.de'],
    // Greek capital sigma lower-cases to the final form at the end of a word.
    ['ΟΔΥΣΣΕΥΣ@Ελληνικά.gr', 'οδυσσευς@xn--hxargifdar.gr'],
    ['İstanbul@örnek.com.tr', 'i\u0307stanbul@xn--rnek-4qa.com.tr'],
    ['ǅemal@EXAMPLE.org', 'ǆemal@example.org'],
    ['user@例え。ＪＰ', 'user@xn--r8jz45g.jp'],
    ['ＡＢＣ@ＥＸＡＭＰＬＥ．com', 'ａｂｃ@example.com'],
    ['jörg@FAẞ.de', 'jörg@fass.de'],
    ['a@b@c.de', 'a@b@c.de'],
  ])('keeps the normalised form, so the stored index, of %j', (address, normalised) => {
    expect(normalizeEmail(address)).toBe(normalised);
  });

  it.each([
    // IDNA refuses the capital Georgian letter and maps its lower case.
    ['x@Ⴀ.com', 'x@xn--rkj.com'],
    ['x@ⴀ.com', 'x@xn--rkj.com'],
    // İ lower-cases to i and U+0307, which NFC orders before the combining mark U+A8C4 (class 9 < 230).
    ['İ\ua8c4@a', 'i\ua8c4\u0307@a'],
  ])('normalises %j to a form that normalises to itself', (address, normalised) => {
    expect(normalizeEmail(address)).toBe(normalised);
    expect(normalizeEmail(normalised)).toBe(normalised);
  });

  it('separates index names and scopes, and truncates to the bytes asked for', async () => {
    const encryptor = encryptorWith();
    const base = await encryptor.blindIndex('a@b.co', email);
    expect(await encryptor.blindIndex('a@b.co', { ...email, name: 'billing-email' })).not.toBe(base);
    expect(await encryptor.blindIndex('a@b.co', { ...email, scope: 'tenant-2' })).not.toBe(base);
    // Tenant ids of one shape have one length: the scope's bytes, not only its length, must tell them apart.
    expect(await encryptor.blindIndex('a@b.co', { ...email, scope: 'tenant-1' })).not.toBe(
      await encryptor.blindIndex('a@b.co', { ...email, scope: 'tenant-2' }),
    );
    expect(
      Buffer.from(await encryptor.blindIndex('a@b.co', { ...email, bytes: 8 }), 'base64url'),
    ).toHaveLength(8);
    expect(
      Buffer.from(await encryptor.blindIndex('a@b.co', { ...email, bytes: 32 }), 'base64url'),
    ).toHaveLength(32);
  });

  it('normalises with NFC by default', async () => {
    const encryptor = encryptorWith();
    const composed = await encryptor.blindIndex('Zo\u00eb', { name: 'n' });
    expect(await encryptor.blindIndex('Zoe\u0308', { name: 'n' })).toBe(composed);
  });

  it('is stable for one master key, differs across master keys, and derives its key once per name', async () => {
    const key = generateEncryptionKey();
    const keyProvider = countingProvider(new LocalKeyProvider({ key }));
    const first = new Encryptor({ keyProvider });
    const index = await first.blindIndex('a@b.co', email);
    await first.blindIndex('c@d.co', email);
    expect(keyProvider.calls.index).toBe(1);
    expect(
      await new Encryptor({ keyProvider: new LocalKeyProvider({ key }) }).blindIndex('a@b.co', email),
    ).toBe(index);
    expect(await encryptorWith().blindIndex('a@b.co', email)).not.toBe(index);
  });

  it('is derived apart from the data keys: warming it never generates a data key', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    await encryptor.warm({ blindIndexes: ['user-email'], contexts: [context] });
    expect(keyProvider.calls).toEqual({ generate: 1, decrypt: 0, index: 1 });
    await encryptor.warm({});
  });

  it('refuses a non-string or oversize value and bad options with typed errors', async () => {
    const encryptor = encryptorWith({ maxValueBytes: 16 });
    expect((await rejectionOf(encryptor.blindIndex(42 as unknown as string, email))).reason).toBe(
      'unsupported_value',
    );
    expect((await rejectionOf(encryptor.blindIndex('x'.repeat(17), email))).reason).toBe('value_too_large');
    const badNormalize = { name: 'n', normalize: () => 5 as unknown as string };
    expect((await rejectionOf(encryptor.blindIndex('x', badNormalize))).reason).toBe('unsupported_value');
    const badOptions = await rejectionOf(
      encryptor.blindIndex('x', { name: 'no spaces', bytes: 4, scope: 'x'.repeat(2000) }),
    );
    expect(badOptions).toBeInstanceOf(InvalidOptionsError);
    expect((badOptions as unknown as InvalidOptionsError).problems).toHaveLength(3);
    const notAFunction = await rejectionOf(
      encryptor.blindIndex('x', { name: 'n', normalize: 'NFC' as never }),
    );
    expect(notAFunction).toEqual(new InvalidOptionsError('blindIndex', ['normalize must be a function']));
  });

  it('retries a failed key derivation and wraps unknown failures', async () => {
    const inner = countingProvider();
    let failures = 1;
    const flaky = {
      ...inner,
      deriveIndexKey: async (name: string) => {
        if (failures-- > 0) throw new Error('network');
        return inner.deriveIndexKey(name);
      },
    };
    const encryptor = new Encryptor({ keyProvider: flaky });
    expect((await rejectionOf(encryptor.blindIndex('a', email))).reason).toBe('key_unavailable');
    expect(await encryptor.blindIndex('a', email)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('keeps at most 256 derived index keys', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    for (let index = 0; index < 257; index += 1) await encryptor.blindIndex('v', { name: `n${index}` });
    await encryptor.blindIndex('v', { name: 'n0' });
    expect(keyProvider.calls.index).toBe(258);
  });
});

describe('Encryptor options', () => {
  it('rejects every invalid option at construction in one InvalidOptionsError', () => {
    const error = thrownBy(
      () =>
        new Encryptor({
          keyProvider: {} as LocalKeyProvider,
          keyContextFields: [''],
          headerField: 'a.b',
          encoding: 'hex' as 'binary',
          maxValueBytes: 0,
          cache: { maxAgeMs: -1, maxMessages: 0, maxEntries: 0 },
        }),
    );
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as unknown as InvalidOptionsError).problems).toHaveLength(8);
  });

  it('rejects an onEvent that is not a function, whose events would be lost without a word', () => {
    expect(() => new Encryptor({ keyProvider: countingProvider(), onEvent: 'audit' as never })).toThrow(
      new InvalidOptionsError('Encryptor', ['onEvent must be a function']),
    );
  });

  // Cache limits often come from configuration that may be unset: `{ maxAgeMs: config.dataKeyMaxAgeMs }`.
  it.each<[string, DataKeyCacheOptions]>([
    ['maxAgeMs', { maxAgeMs: undefined }],
    ['maxMessages', { maxMessages: undefined }],
    ['maxEntries', { maxEntries: undefined }],
  ])('keeps the default cache.%s when it is given as undefined', async (_name, cache) => {
    await expectDataKeyRenewedAt(cache, 300_000);
  });
});
