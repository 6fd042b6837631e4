// Field lists: what a path may hold, and lists whose paths would clash.
import { describe, expect, it } from 'vitest';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { EncryptionContext } from '../../middleware/encryption/format.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { countingProvider, rejectionOf } from './helpers.js';

const context: EncryptionContext = { tenantId: 'acme', userId: 'u-1' };

describe('field paths with control characters', () => {
  it('refuses a path holding NUL or another control character', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    for (const field of ['email\u0000phone', 'email\nphone', 'email\u007f']) {
      const error = await rejectionOf(encryptor.encryptFields({ [field]: 'x' }, [field], context));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error.message).toContain('control character');
    }
  });

  it('is never served the parsed list of another list that joins to the same text', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    await encryptor.encryptFields(
      { email: 'ada@example.com', phone: '+447700900123' },
      ['email', 'phone'],
      context,
    );
    const error = await rejectionOf(
      encryptor.encryptFields({ 'email\u0000phone': 'ada@example.com' }, ['email\u0000phone'], context),
    );
    expect(error).toBeInstanceOf(InvalidOptionsError);
  });
});

describe('overlapping field paths', () => {
  it('refuses a list where one path lies inside another, before any key request', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const record = { id: 'u-1', profile: { phone: '+447700900123', city: 'London' } };
    for (const fields of [['profile', 'profile.phone'] as const, ['profile.phone', 'profile'] as const]) {
      const error = await rejectionOf(encryptor.encryptFields(record, fields, context));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error.message).toContain('profile and profile.phone overlap');
      expect(await rejectionOf(encryptor.decryptFields(record, fields, context))).toBeInstanceOf(
        InvalidOptionsError,
      );
    }
    expect(keyProvider.calls.generate).toBe(0);
  });

  it('compares whole segments: a path that only starts with the same letters is its own value', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const record = { profile: { city: 'London' }, profileName: 'ada', profiles: { a: 'b' } };
    const fields = ['profile.city', 'profileName', 'profiles'] as const;
    const stored = await encryptor.encryptFields(record, fields, context);
    expect(await encryptor.decryptFields(stored, fields, context)).toEqual(record);
  });

  it('refuses a path inside the data-key header attribute', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const record: Record<string, unknown> = { email: 'a@b.co' };
    const error = await rejectionOf(encryptor.encryptFields(record, ['_dataKey.x'], context));
    expect(error).toBeInstanceOf(InvalidOptionsError);
  });
});
