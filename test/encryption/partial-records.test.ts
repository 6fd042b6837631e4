// Reading part of a record: the header stays while any field still needs it, and a ciphertext is never sealed again.
import { describe, expect, it } from 'vitest';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { EncryptionContext } from '../../middleware/encryption/format.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError, EncryptionError, InvalidOptionsError } from '../../middleware/errors.js';
import { newEncryptor, rejectionOf } from './helpers.js';

const context: EncryptionContext = { tenantId: 't', userId: 'u1' };
const user = { id: 'u1', email: 'ada@example.com', phone: '+447700900123', name: 'Ada' };
const fields = ['email', 'phone'] as const;

/** The data-key header a record carries, which its type leaves out. */
const headerOf = (record: object): unknown => Reflect.get(record, '_dataKey');

/** A copy of the record without its data-key header. */
function withoutHeader<R extends object>(record: R): R {
  const copy = { ...record };
  Reflect.deleteProperty(copy, '_dataKey');
  return copy;
}

describe('decrypting part of a record', () => {
  it('keeps the header while other fields are still encrypted, and drops it with the last one', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);
    const partly = await encryptor.decryptFields(stored, ['email'], context);
    expect(partly.email).toBe('ada@example.com');
    expect(headerOf(partly)).toEqual(headerOf(stored));
    expect(await encryptor.decryptFields(partly, ['phone'], context)).toEqual(user);
    expect(await encryptor.decryptFields(stored, fields, context)).toEqual(user);
  });

  it('keeps the header of a record none of whose listed fields is present', async () => {
    const encryptor = newEncryptor();
    // As read back from a table, where any attribute may be listed.
    const stored: Record<string, unknown> = await encryptor.encryptFields(user, fields, context);
    const untouched = await encryptor.decryptFields(stored, ['ssn'], context);
    expect(untouched._dataKey).toEqual(stored._dataKey);
    expect(await encryptor.decryptFields(untouched, fields, context)).toEqual(user);
  });

  it('finds the remaining fields in nested objects and in base64url text', async () => {
    const encryptor = newEncryptor('base64url');
    const record = { id: 'u1', email: 'ada@example.com', address: { street: '1 Main St' } };
    const stored = await encryptor.encryptFields(record, ['email', 'address.street'], context);
    const partly = await encryptor.decryptFields(stored, ['email'], context);
    expect(headerOf(partly)).toBe(headerOf(stored));
    expect(await encryptor.decryptFields(partly, ['address.street'], context)).toEqual(record);
  });

  it('refuses to write back a partly decrypted record, so the field still encrypted is not lost', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);
    const partly = await encryptor.decryptFields(stored, ['email'], context);
    const error = await rejectionOf(encryptor.encryptFields({ ...partly, name: 'Ada L.' }, fields, context));
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error.reason).toBe('already_encrypted');
    expect(await encryptor.decryptFields(partly, ['phone'], context)).toEqual(user);
  });
});

describe('a value that is already a ciphertext', () => {
  it.each(['binary', 'base64url'] as const)(
    'is refused, not sealed again, even without its header (%s)',
    async (encoding) => {
      const encryptor = newEncryptor(encoding);
      const stored = await encryptor.encryptFields(user, fields, context);
      const error = await rejectionOf(encryptor.encryptFields(withoutHeader(stored), fields, context));
      expect(error).toBeInstanceOf(EncryptionError);
      expect(error).toMatchObject({ reason: 'already_encrypted', field: 'email' });
    },
  );

  it('is recognised by a reader that has only read the record', async () => {
    const keyProvider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const stored = await new Encryptor({ keyProvider }).encryptFields(user, fields, context);
    const reader = new Encryptor({ keyProvider });
    const partly = await reader.decryptFields(stored, ['email'], context);
    const error = await rejectionOf(reader.encryptFields(withoutHeader(partly), fields, context));
    expect(error).toMatchObject({ reason: 'already_encrypted', field: 'phone' });
  });

  it('is recognised under the last header read, however many headers were remembered since', async () => {
    const keyProvider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const stored = await new Encryptor({ keyProvider }).encryptFields(user, fields, context);
    const reader = new Encryptor({ keyProvider, keyContextFields: ['tenantId'], cache: { maxEntries: 2 } });
    await reader.decryptFields(stored, fields, context);
    // Two headers of its own fill its memory, then it reads the same record again.
    await reader.encryptFields(user, fields, { tenantId: 'b', userId: 'u2' });
    await reader.encryptFields(user, fields, { tenantId: 'c', userId: 'u3' });
    await reader.decryptFields(stored, fields, context);
    const error = await rejectionOf(reader.encryptFields(withoutHeader(stored), fields, context));
    expect(error).toMatchObject({ reason: 'already_encrypted', field: 'email' });
  });

  it('is recognised under the header it still writes, however many headers it read since', async () => {
    const keyProvider = new LocalKeyProvider({ key: generateEncryptionKey() });
    const encryptor = new Encryptor({
      keyProvider,
      keyContextFields: ['tenantId'],
      cache: { maxEntries: 2 },
    });
    await encryptor.encryptFields(user, fields, context);
    const other = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    for (const tenantId of ['b', 'c']) {
      const read = { tenantId, userId: 'u2' };
      await encryptor.decryptFields(await other.encryptFields(user, fields, read), fields, read);
    }
    // The data key of `context` is still cached, so this record carries the first header again.
    const stored = await encryptor.encryptFields(user, fields, context);
    const error = await rejectionOf(encryptor.encryptFields(withoutHeader(stored), fields, context));
    expect(error).toMatchObject({ reason: 'already_encrypted', field: 'email' });
  });

  it('does not catch bytes that merely start like a field', async () => {
    const encryptor = newEncryptor();
    await encryptor.encryptFields(user, fields, context);
    const blob = new Uint8Array(64).fill(7);
    blob[0] = 1;
    const stored = await encryptor.encryptFields({ blob }, ['blob'], context);
    expect(await encryptor.decryptFields(stored, ['blob'], context)).toEqual({ blob });
  });
});

describe('re-encrypting part of a record', () => {
  it('is refused, leaving every field readable, instead of stranding the fields left out', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);
    const error = await rejectionOf(encryptor.reencryptFields(stored, ['email'], context));
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error.reason).toBe('already_encrypted');
    expect(error.message).toContain('every encrypted field');
    expect(await encryptor.decryptFields(stored, fields, context)).toEqual(user);
  });

  it('re-encrypts when every encrypted field is listed', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);
    const again = await encryptor.reencryptFields(stored, fields, context);
    expect(headerOf(again)).toBeDefined();
    expect(await encryptor.decryptFields(again, fields, context)).toEqual(user);
  });
});

describe('adding a field to the encrypted list', () => {
  /** Written by a deploy that encrypted email only: phone is stored as given. */
  const writtenBefore = (encryptor: Encryptor) => encryptor.encryptFields(user, ['email'], context);

  it('refuses the older records by default, naming the field that is not encrypted', async () => {
    const encryptor = newEncryptor();
    const error = await rejectionOf(encryptor.decryptFields(await writtenBefore(encryptor), fields, context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error).toMatchObject({ reason: 'malformed', field: 'phone' });
  });

  it('reads older and newer records alike with acceptPlaintext, and migrates the older ones', async () => {
    const encryptor = newEncryptor();
    const older = await writtenBefore(encryptor);
    const newer = await encryptor.encryptFields(user, fields, context);
    const options = { acceptPlaintext: ['phone'] as const };
    expect(await encryptor.decryptFields(older, fields, context, options)).toEqual(user);
    expect(await encryptor.decryptFields(newer, fields, context, options)).toEqual(user);

    const migrated = await encryptor.reencryptFields(older, fields, context, options);
    expect(migrated.phone).not.toBe(user.phone);
    // Migrated, it needs the option no more.
    expect(await encryptor.decryptFields(migrated, fields, context)).toEqual(user);
  });

  it('reads a record written before any field was encrypted, which has no header', async () => {
    const encryptor = newEncryptor();
    const options = { acceptPlaintext: fields };
    expect(await encryptor.decryptFields(user, fields, context, options)).toEqual(user);
    const migrated = await encryptor.reencryptFields(user, fields, context, options);
    expect(await encryptor.decryptFields(migrated, fields, context)).toEqual(user);
  });

  it('takes a plaintext shaped like a ciphertext for what it is', async () => {
    const encryptor = newEncryptor('base64url');
    // 48 characters of base64url's alphabet from "Ab": the shape of a version 1 field.
    const record = { ...user, address: 'AbbeyRoadStudios-3-AbbeyRoad-London-NW8-9AY-UK-' };
    const older = await encryptor.encryptFields(record, fields, context);
    const all = [...fields, 'address'] as const;
    const options = { acceptPlaintext: ['address'] as const };
    expect(await encryptor.decryptFields(older, all, context, options)).toEqual(record);
    const migrated = await encryptor.reencryptFields(older, all, context, options);
    expect(migrated.address).not.toBe(record.address);
    expect(await encryptor.decryptFields(migrated, all, context)).toEqual(record);
  });

  it("still authenticates a value sealed under the record's data key in an accepted field", async () => {
    const encryptor = newEncryptor();
    const newer = await encryptor.encryptFields(user, fields, context);
    const other = await encryptor.encryptFields({ ...user, id: 'u2' }, fields, { ...context, userId: 'u2' });
    // Another user's ciphertext, moved in: not plaintext, so it is checked and refused.
    const tampered = { ...newer, phone: other.phone };
    const error = await rejectionOf(
      encryptor.decryptFields(tampered, fields, context, { acceptPlaintext: ['phone'] }),
    );
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('authentication_failed');
  });

  it('refuses an acceptPlaintext that is not a list of the fields asked for', async () => {
    const encryptor = newEncryptor();
    const older = await writtenBefore(encryptor);
    const notAList = await rejectionOf(
      encryptor.decryptFields(older, fields, context, { acceptPlaintext: 'phone' as never }),
    );
    expect(notAList).toBeInstanceOf(InvalidOptionsError);
    expect(notAList.message).toContain('acceptPlaintext must be an array of field paths');
  });

  it('refuses to accept plaintext in a field it was not asked to decrypt', async () => {
    const encryptor = newEncryptor();
    const error = await rejectionOf(
      encryptor.decryptFields(await writtenBefore(encryptor), ['email'], context, {
        acceptPlaintext: ['phone'] as never[],
      }),
    );
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toContain('acceptPlaintext names phone, which is not in fields');
  });
});
