// The encryptor's reused per-call work (last context, last header, last key context) never serves stale data.
import { describe, expect, it, vi } from 'vitest';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { canonicalContext, type EncryptionContext } from '../../middleware/encryption/format.js';
import type { KeyProvider } from '../../middleware/encryption/key-provider.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError } from '../../middleware/errors.js';
import { countingProvider, rejectionOf } from './helpers.js';

/** A record stored by an earlier release (format v1), with the fixed key below: it must stay readable. */
const goldenKey = 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=';
const goldenRecord = {
  id: 'u-1',
  email: 'ASy3rtk41vmdNzAZIGMdDci4dZ3L44zawm0l6q4xl5aMQsqJ844vYDnMVaRk7ofroQFP',
  profile: {
    phone: 'ASy3rtnFvAc92dLWdj4096ymPicG9ukFUtS8sRcXdX8udyE1vUPiNHP60-apGqo',
    age: 'ASy3rtln2zVLV4SVWQzKt5C177pgp2r-zIVIvE8Yr9JKr1zN',
  },
  avatar: 'ASy3rtnzeZU2oNmacDQnD4iuXg8ADhkmTrLPLsxzo8LsCDc3OA',
  _dataKey:
    'AQVsb2NhbAAWbG9jYWw6YzRlZDUxOTU5YTUyMmUzMQEIdGVuYW50SWQAPJyXpCheEeA6dzxt14PduV9aUv3LyETPHdO1FAN1r2SU9_cTTmu4w8RKdh56JwbKbJsaiNd_LIq2y2GSTw',
};
const goldenFields = ['email', 'profile.phone', 'profile.age', 'avatar'] as const;

function localEncryptor() {
  return new Encryptor({ keyProvider: countingProvider(), keyContextFields: ['tenantId'] });
}

describe('format v1 compatibility', () => {
  it('decrypts a record stored by an earlier release', async () => {
    const encryptor = new Encryptor({
      keyProvider: new LocalKeyProvider({ key: goldenKey }),
      keyContextFields: ['tenantId'],
    });
    const plain = await encryptor.decryptFields(goldenRecord, goldenFields, {
      tenantId: 'acme',
      userId: 'u-1',
    });
    expect(plain).toEqual({
      id: 'u-1',
      email: 'alice@example.com',
      profile: { phone: '+441234567890', age: 42 },
      avatar: new Uint8Array([1, 2, 3]),
    });
  });

  it('still refuses that record under another user’s context', async () => {
    const encryptor = new Encryptor({ keyProvider: new LocalKeyProvider({ key: goldenKey }) });
    const error = await rejectionOf(
      encryptor.decryptFields(goldenRecord, goldenFields, { tenantId: 'acme', userId: 'u-2' }),
    );
    expect(error).toBeInstanceOf(DecryptionError);
  });
});

describe('the canonical context', () => {
  it('is the same whatever the members’ order, so either order decrypts what the other encrypted', async () => {
    const forward = { a: '1', b: '2', c: '3', tenantId: 'acme' };
    const backward = { tenantId: 'acme', c: '3', b: '2', a: '1' };
    expect(canonicalContext(backward, 'encrypt')).toBe(canonicalContext(forward, 'encrypt'));
    expect(canonicalContext({ b: '2', a: '1', c: '3' }, 'encrypt')).toBe('1:a1:11:b1:21:c1:3');
    const encryptor = localEncryptor();
    const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], backward);
    expect(await encryptor.decryptFields(stored, ['email'], forward)).toEqual({ email: 'a@b.co' });
  });
});

describe('reusing the last context', () => {
  it('notices a context object changed in place between calls', async () => {
    const encryptor = localEncryptor();
    const context: Record<string, string> = { tenantId: 'acme', userId: 'u-1' };
    const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], context);
    context.userId = 'u-2';
    const error = await rejectionOf(encryptor.decryptFields(stored, ['email'], context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('authentication_failed');
    context.userId = 'u-1';
    expect(await encryptor.decryptFields(stored, ['email'], context)).toEqual({ email: 'a@b.co' });
  });

  it('notices a member added, removed or renamed, not only a changed value', async () => {
    const encryptor = localEncryptor();
    const context = { tenantId: 'acme', userId: 'u-1' };
    const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], context);
    const others: EncryptionContext[] = [
      { tenantId: 'acme', userId: 'u-1', table: 'users' },
      { tenantId: 'acme' },
      { tenantId: 'acme', userID: 'u-1' },
    ];
    for (const other of others) {
      expect(await rejectionOf(encryptor.decryptFields(stored, ['email'], other))).toBeInstanceOf(
        DecryptionError,
      );
    }
    expect(await encryptor.decryptFields(stored, ['email'], { ...context })).toEqual({ email: 'a@b.co' });
  });

  it('still validates a context that differs from the last one', async () => {
    const encryptor = localEncryptor();
    await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], { tenantId: 'acme' });
    const bad = { tenantId: 7 } as unknown as EncryptionContext;
    const error = await rejectionOf(encryptor.encryptFields({ email: 'a@b.co' }, ['email'], bad));
    expect(error.reason).toBe('invalid_context');
  });

  it('binds each tenant’s records to its own data key when tenants alternate', async () => {
    const provider = countingProvider();
    const encryptor = new Encryptor({ keyProvider: provider, keyContextFields: ['tenantId'] });
    const tenants = ['acme', 'globex', 'acme', 'globex'];
    const stored: Record<string, unknown>[] = [];
    for (const [index, tenantId] of tenants.entries()) {
      stored.push(
        await encryptor.encryptFields({ n: `v${index}` }, ['n'], { tenantId, userId: `u-${index}` }),
      );
    }
    expect(provider.calls.generate).toBe(2);
    expect(stored[0]?._dataKey).toEqual(stored[2]?._dataKey);
    expect(stored[1]?._dataKey).not.toEqual(stored[0]?._dataKey);
    const contexts = tenants.map((tenantId, index) => ({ tenantId, userId: `u-${index}` }));
    for (const [index, context] of contexts.entries()) {
      expect(await encryptor.decryptFields(stored[index] as Record<string, unknown>, ['n'], context)).toEqual(
        {
          n: `v${index}`,
        },
      );
    }
    // Written here, so read here without a Decrypt request.
    expect(provider.calls.decrypt).toBe(0);
    for (const [index, context] of contexts.entries()) {
      const other = { ...context, tenantId: context.tenantId === 'acme' ? 'globex' : 'acme' };
      const error = await rejectionOf(
        encryptor.decryptFields(stored[index] as Record<string, unknown>, ['n'], other),
      );
      expect(error).toBeInstanceOf(DecryptionError);
    }
    // Each wrong tenant reaches the provider, which refuses: the cached key of the right one is not used.
    expect(provider.calls.decrypt).toBe(4);
  });
});

describe('reusing the last header', () => {
  it('notices the header buffer changed in place after it was read', async () => {
    const encryptor = localEncryptor();
    const context = { tenantId: 'acme', userId: 'u-1' };
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      { email: 'a@b.co' },
      ['email'],
      context,
    );
    const header = Buffer.from(stored._dataKey as Uint8Array);
    const record: Record<string, unknown> = { ...stored, _dataKey: header };
    expect(await encryptor.decryptFields(record, ['email'], context)).toEqual({ email: 'a@b.co' });
    header[header.length - 5] = (header[header.length - 5] as number) ^ 0x01;
    const error = await rejectionOf(encryptor.decryptFields(record, ['email'], context));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(error.reason).toBe('key_mismatch');
  });

  it('reads records of two data keys in turn, each under its own key', async () => {
    const provider = countingProvider();
    const writer = new Encryptor({ keyProvider: provider, keyContextFields: ['tenantId'] });
    const first = await writer.encryptFields({ n: 'one' }, ['n'], { tenantId: 'acme' });
    const second = await writer.encryptFields({ n: 'two' }, ['n'], { tenantId: 'globex' });
    const reader = new Encryptor({ keyProvider: provider, keyContextFields: ['tenantId'] });
    for (let round = 0; round < 2; round += 1) {
      expect(await reader.decryptFields(first, ['n'], { tenantId: 'acme' })).toEqual({ n: 'one' });
      expect(await reader.decryptFields(second, ['n'], { tenantId: 'globex' })).toEqual({ n: 'two' });
    }
    expect(provider.calls.decrypt).toBe(2);
    const mixed = { ...first, n: second.n };
    const error = await rejectionOf(reader.decryptFields(mixed, ['n'], { tenantId: 'acme' }));
    expect(error.reason).toBe('key_mismatch');
  });

  it('asks the provider again for a header seen before once the caches are cleared', async () => {
    const provider = countingProvider();
    const encryptor = new Encryptor({ keyProvider: provider });
    const context = { tenantId: 'acme' };
    const stored = await encryptor.encryptFields({ n: 'one' }, ['n'], context);
    encryptor.clearCaches();
    for (let round = 0; round < 3; round += 1) {
      expect(await encryptor.decryptFields(stored, ['n'], context)).toEqual({ n: 'one' });
    }
    expect(provider.calls.decrypt).toBe(1);
  });
});

describe('copying records', () => {
  it('keeps symbol-keyed members when encrypting, as a spread copy would, and leaves the input unchanged', async () => {
    const encryptor = localEncryptor();
    const tag = Symbol('tag');
    const record = { email: 'a@b.co', [tag]: 'kept' };
    const context = { tenantId: 'acme' };
    const stored = await encryptor.encryptFields(record, ['email'], context);
    expect(stored[tag]).toBe('kept');
    expect(record.email).toBe('a@b.co');
    expect(await encryptor.decryptFields(stored, ['email'], context)).toEqual({ email: 'a@b.co' });
  });

  it('copies an own __proto__ member as data, never as the copy’s prototype', async () => {
    const encryptor = localEncryptor();
    const tag = Symbol('tag');
    const record = { ...JSON.parse('{"__proto__": {"polluted": true}, "email": "a@b.co"}'), [tag]: 'kept' };
    const context = { tenantId: 'acme' };
    const stored = await encryptor.encryptFields(record, ['email'], context);
    expect(Object.getPrototypeOf(stored)).toBe(Object.prototype);
    expect(Object.hasOwn(stored, '__proto__')).toBe(true);
    expect(stored[tag as unknown as string]).toBe('kept');
    const plain = await encryptor.decryptFields(stored, ['email'], context);
    expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
    expect(Object.hasOwn(plain, '__proto__')).toBe(true);
    expect(plain.email).toBe('a@b.co');
    expect((plain as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('leaves out a non-enumerable symbol, as a spread copy would', async () => {
    const encryptor = localEncryptor();
    const hidden = Symbol('hidden');
    const record = Object.defineProperty({ email: 'a@b.co' }, hidden, { value: 'x', enumerable: false });
    const stored = await encryptor.encryptFields(record, ['email'], { tenantId: 'acme' });
    expect(Object.getOwnPropertySymbols(stored)).toEqual([]);
    const withProto = Object.defineProperty(JSON.parse('{"__proto__": 1, "email": "a@b.co"}'), hidden, {
      value: 'x',
      enumerable: false,
    });
    const storedWithProto = await encryptor.encryptFields(withProto, ['email'], { tenantId: 'acme' });
    expect(Object.getOwnPropertySymbols(storedWithProto)).toEqual([]);
  });
});

describe('plaintext left behind', () => {
  const failingProvider = () => {
    const inner = countingProvider();
    return { ...inner, generateDataKey: async () => Promise.reject(new Error('KMS down')) };
  };

  it('zeroes the buffers that held the plaintext when no data key can be had', async () => {
    const encryptor = new Encryptor({ keyProvider: failingProvider() });
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe');
    const from = vi.spyOn(Buffer, 'from');
    try {
      const error = await rejectionOf(
        encryptor.encryptFields(
          { email: 'secret@example.com', profile: { city: 'Secretville' } },
          ['email', 'profile'],
          { tenantId: 'acme' },
        ),
      );
      expect(error.reason).toBe('key_unavailable');
      const buffers = [...allocUnsafe.mock.results, ...from.mock.results].map(
        (result) => result.value as Buffer,
      );
      expect(buffers.length).toBeGreaterThan(0);
      for (const buffer of buffers) {
        expect(buffer.includes('secret@example.com')).toBe(false);
        expect(buffer.includes('Secretville')).toBe(false);
      }
    } finally {
      allocUnsafe.mockRestore();
      from.mockRestore();
    }
  });

  /**
   * Starts a new shared Buffer pool and returns it: from here on, every buffer Node takes from the pool
   * lies in it, as long as it has room (checked afterwards), and not in an older one no test can see.
   */
  function freshBufferPool(): ArrayBufferLike {
    const current = Buffer.allocUnsafe(1).buffer;
    let probe = Buffer.allocUnsafe(64);
    while (probe.buffer === current) probe = Buffer.allocUnsafe(64);
    return probe.buffer;
  }

  it("leaves no copy of a data key in Node's shared Buffer pool when generating or unwrapping one", async () => {
    const inner = countingProvider();
    const handedOver: Uint8Array[] = [];
    // Copies of each data key in memory of their own (a new Uint8Array is never pooled), taken before
    // the encryptor zeroes the provider's buffer.
    const dataKeys: Uint8Array[] = [];
    const handOver = (plaintext: Uint8Array) => {
      handedOver.push(plaintext);
      dataKeys.push(new Uint8Array(plaintext));
      return plaintext;
    };
    const provider: KeyProvider = {
      ...inner,
      generateDataKey: async (context) => {
        const generated = await inner.generateDataKey(context);
        handOver(generated.plaintext);
        return generated;
      },
      decryptDataKey: async (key, context) => handOver(await inner.decryptDataKey(key, context)),
    };
    const writer = new Encryptor({ keyProvider: provider });
    // A second instance has no key cached: it unwraps the data key the first generated.
    const reader = new Encryptor({ keyProvider: provider });
    const pool = freshBufferPool();
    const stored = await writer.encryptFields({ id: 'u-1', email: 'a@example.com' }, ['email'], {
      tenantId: 'acme',
    });
    await expect(reader.decryptFields(stored, ['email'], { tenantId: 'acme' })).resolves.toMatchObject({
      email: 'a@example.com',
    });
    expect(inner.calls).toMatchObject({ generate: 1, decrypt: 1 });
    expect(dataKeys.map((key) => key.length)).toEqual([32, 32]);
    // Still the same pool: every buffer taken from the pool meanwhile is in it.
    expect(Buffer.allocUnsafe(1).buffer).toBe(pool);
    const pooled = Buffer.from(pool);
    for (const key of dataKeys) expect(pooled.indexOf(key)).toBe(-1);
    // The provider's own buffers are zeroed, as the KeyProvider interface says.
    for (const key of handedOver) expect(key.every((byte) => byte === 0)).toBe(true);
  });

  it('overwrites the plaintext with the ciphertext when sealing', async () => {
    const encryptor = localEncryptor();
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe');
    try {
      const stored = await encryptor.encryptFields({ email: 'secret@example.com' }, ['email'], {
        tenantId: 'acme',
      });
      const buffers = allocUnsafe.mock.results.map((result) => result.value as Buffer);
      expect(buffers).toContain(stored.email);
      for (const buffer of buffers) expect(buffer.includes('secret@example.com')).toBe(false);
    } finally {
      allocUnsafe.mockRestore();
    }
  });
});
