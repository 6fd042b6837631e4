// Shared helpers for the encryption tests: a provider that counts its calls, an encryptor over one, bit flips, error capture.
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { GeneratedDataKey, KeyProvider } from '../../middleware/encryption/key-provider.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';

export interface CountingProvider extends KeyProvider {
  readonly calls: { generate: number; decrypt: number; index: number };
}

/** Wraps a provider (a fresh local one by default) and counts every call that would reach KMS. */
export function countingProvider(
  inner: KeyProvider = new LocalKeyProvider({ key: generateEncryptionKey() }),
) {
  const calls = { generate: 0, decrypt: 0, index: 0 };
  const provider: CountingProvider = {
    providerId: inner.providerId,
    currentKeyId: inner.currentKeyId,
    calls,
    generateDataKey: async (context): Promise<GeneratedDataKey> => {
      calls.generate += 1;
      return inner.generateDataKey(context);
    },
    decryptDataKey: async (key, context) => {
      calls.decrypt += 1;
      return inner.decryptDataKey(key, context);
    },
    deriveIndexKey: async (name) => {
      calls.index += 1;
      return inner.deriveIndexKey(name);
    },
  };
  return provider;
}

/** A copy of the bytes with one bit flipped at `index` (negative counts from the end). */
export function flipBit(value: unknown, index: number): Buffer {
  const copy = Buffer.from(value as Uint8Array);
  const at = index < 0 ? copy.length + index : index;
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error('Expected the promise to reject');
}

/** The error a function throws (fails the test when it returns). */
export function thrownBy(run: () => unknown): Error & Record<string, unknown> {
  try {
    run();
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error('Expected the call to throw');
}

/** An encryptor keyed by tenant over a fresh counting provider. */
export function newEncryptor(encoding: 'binary' | 'base64url' = 'binary'): Encryptor {
  return new Encryptor({ keyProvider: countingProvider(), keyContextFields: ['tenantId'], encoding });
}
