// The types encryptFields and decryptFields give records: checked by tsc (these files are part of the project), and run.
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { EncryptionContext } from '../../middleware/encryption/format.js';
import type { EncryptedField, EncryptedRecord } from '../../middleware/encryption/record-types.js';
import type { FieldValue } from '../../middleware/encryption/value-codec.js';
import { newEncryptor } from './helpers.js';

interface User {
  id: string;
  email: string;
  phone?: string;
  address: { street: string; city: string };
}

const context: EncryptionContext = { tenantId: 't', userId: 'u1' };
const user: User = {
  id: 'u1',
  email: 'ada@example.com',
  phone: '+447700900123',
  address: { street: '1 Main St', city: 'London' },
};
const fields = ['email', 'phone', 'address.street'] as const;

describe('record types', () => {
  it('types each listed field of the stored record as an encrypted value of its type', async () => {
    const stored = await newEncryptor().encryptFields(user, fields, context);

    expectTypeOf(stored.email).toEqualTypeOf<EncryptedField<string>>();
    expectTypeOf(stored.phone).toEqualTypeOf<EncryptedField<string> | undefined>();
    expectTypeOf(stored.address.street).toEqualTypeOf<EncryptedField<string>>();
    expectTypeOf(stored.address.city).toEqualTypeOf<string>();
    expect(stored.email).toBeInstanceOf(Uint8Array);
    expect(stored.address).toEqual({ street: expect.any(Uint8Array), city: 'London' });
  });

  it('gives the record its own type back once every encrypted field is decrypted', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);

    const plain = await encryptor.decryptFields(stored, fields, context);

    expectTypeOf(plain).toEqualTypeOf<{
      id: string;
      email: string;
      phone?: string;
      address: { street: string; city: string };
    }>();
    const typed: User = plain;
    expect(typed).toEqual(user);
  });

  it('leaves a field the list does not name typed as still encrypted, never as its value', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);

    const partly = await encryptor.decryptFields(stored, ['email'], context);

    expectTypeOf(partly.email).toEqualTypeOf<string>();
    expectTypeOf(partly.phone).toEqualTypeOf<EncryptedField<string> | undefined>();
    // @ts-expect-error phone is still a ciphertext, not text
    const phone: string | undefined = partly.phone;
    // @ts-expect-error nor is the partly decrypted record a User
    const notUser: User = partly;
    expect(phone).toBeInstanceOf(Uint8Array);
    expect(notUser.phone).toBe(phone);
    expect(partly.email).toBe(user.email);
  });

  it('refuses a misspelt field, and a type asserted in place of the record’s own', async () => {
    const encryptor = newEncryptor();
    const stored = await encryptor.encryptFields(user, fields, context);

    // @ts-expect-error 'phnoe' is no field of the record
    const misspelt = await encryptor.decryptFields(stored, ['email', 'phnoe'], context);
    // @ts-expect-error the result's type follows from the record and the list, not from a type argument
    const asserted = await encryptor.decryptFields<User>(stored, ['email'], context);
    // @ts-expect-error 'emial' is no field of the record either
    await encryptor.encryptFields(user, ['emial'], context);

    // At run time the misspelt field is skipped, so phone stays encrypted, as its type says.
    expect(misspelt.phone).toBeInstanceOf(Uint8Array);
    expect(asserted.phone).toBeInstanceOf(Uint8Array);
  });

  it('decrypts an item read back, typed as the record encryptFields wrote, to the record', async () => {
    const encryptor = newEncryptor('base64url');
    const written = await encryptor.encryptFields(user, fields, context);

    const item: EncryptedRecord<User, (typeof fields)[number]> = JSON.parse(JSON.stringify(written));
    const read: User = await encryptor.decryptFields(item, fields, context);

    expect(read).toEqual(user);
  });

  it('types a field of an untyped item as any value a field can hold', async () => {
    const encryptor = newEncryptor();
    const item: { secret: unknown; [attribute: string]: unknown } = await encryptor.encryptFields(
      { secret: 's3cret' },
      ['secret'],
      context,
    );

    const { secret } = await encryptor.decryptFields(item, ['secret'], context);

    expectTypeOf(secret).toEqualTypeOf<FieldValue | null | undefined>();
    expect(secret).toBe('s3cret');
  });
});
