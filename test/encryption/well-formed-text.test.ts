// Strings that UTF-8 cannot carry as they are (a lone surrogate becomes U+FFFD) are refused, never altered.
import { describe, expect, it } from 'vitest';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { DecryptionError, EncryptionError, InvalidOptionsError } from '../../middleware/errors.js';
import { countingProvider, rejectionOf } from './helpers.js';

const loneSurrogate = 'ab\uD800cd';

describe('lone surrogates', () => {
  it('refuses a field value holding one before any key request, instead of storing U+FFFD', async () => {
    const keyProvider = countingProvider();
    const encryptor = new Encryptor({ keyProvider });
    const error = await rejectionOf(
      encryptor.encryptFields({ note: loneSurrogate }, ['note'], { tenantId: 't' }),
    );
    expect(error).toBeInstanceOf(EncryptionError);
    expect(error).toMatchObject({ reason: 'unsupported_value', field: 'note' });
    expect(keyProvider.calls.generate).toBe(0);
  });

  it('still round-trips a surrogate pair, and one inside JSON (which JSON escapes)', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const record = { emoji: 'a\uD83D\uDE00b', data: { text: loneSurrogate } };
    const stored = await encryptor.encryptFields(record, ['emoji', 'data'], { tenantId: 't' });
    expect(await encryptor.decryptFields(stored, ['emoji', 'data'], { tenantId: 't' })).toEqual(record);
  });

  it('refuses a context member holding one, so two contexts can never share one AAD', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const encryptError = await rejectionOf(
      encryptor.encryptFields({ note: 'x' }, ['note'], { tenantId: '\uD800' }),
    );
    expect(encryptError).toMatchObject({ reason: 'invalid_context' });
    const stored = await encryptor.encryptFields({ note: 'x' }, ['note'], { tenantId: '\uFFFD' });
    const decryptError = await rejectionOf(encryptor.decryptFields(stored, ['note'], { tenantId: '\uD800' }));
    expect(decryptError).toBeInstanceOf(DecryptionError);
    expect(decryptError).toMatchObject({ reason: 'invalid_context' });
    const nameError = await rejectionOf(encryptor.encryptFields({ note: 'x' }, ['note'], { '\uDC00': 't' }));
    expect(nameError).toMatchObject({ reason: 'invalid_context' });
  });

  it('refuses a field path holding one', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const field = 'note\uD800';
    const error = await rejectionOf(encryptor.encryptFields({ [field]: 'x' }, [field], { tenantId: 't' }));
    expect(error).toBeInstanceOf(InvalidOptionsError);
  });

  it('refuses a blind-index value or scope holding one, so it cannot collide with U+FFFD', async () => {
    const encryptor = new Encryptor({ keyProvider: countingProvider() });
    const valueError = await rejectionOf(encryptor.blindIndex('\uD800', { name: 'n' }));
    expect(valueError).toMatchObject({ reason: 'unsupported_value' });
    const normalizedError = await rejectionOf(
      encryptor.blindIndex('x', { name: 'n', normalize: () => '\uDFFF' }),
    );
    expect(normalizedError).toMatchObject({ reason: 'unsupported_value' });
    const scopeError = await rejectionOf(encryptor.blindIndex('x', { name: 'n', scope: '\uD800' }));
    expect(scopeError).toBeInstanceOf(InvalidOptionsError);
  });
});
