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
