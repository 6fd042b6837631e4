// The one interface behind which KMS and the local raw-AES key wrap data keys and derive blind-index keys.
import type { EncryptionContext } from './format.js';

/** A fresh data key: its plaintext (used, then dropped) and its wrapped form (stored with the record). */
export interface GeneratedDataKey {
  /** 32 bytes of AES-256 key material; the encryptor zeroes this buffer once it has imported it. */
  readonly plaintext: Uint8Array;
  /** The key id the data key is wrapped under, as the provider will need it to unwrap. */
  readonly keyId: string;
  readonly wrappedKey: Uint8Array;
}

/** What a provider needs to unwrap a data key. */
export interface WrappedDataKey {
  readonly keyId: string;
  readonly wrappedKey: Uint8Array;
}

/**
 * Wraps and unwraps data keys under a master key, binding them to an encryption context.
 *
 * @example
 * const provider: KeyProvider = new KmsKeyProvider({ keyId: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab' });
 */
export interface KeyProvider {
  /** Stored in each header, e.g. `aws-kms` or `local`; a header from another provider is refused. */
  readonly providerId: string;
  /** The key new data keys are wrapped under. */
  readonly currentKeyId: string;
  /** Creates a data key bound to `keyContext` (wrapping it under the current key). */
  generateDataKey(keyContext: EncryptionContext): Promise<GeneratedDataKey>;
  /** Unwraps a data key; the same context must be given, and only keys this provider trusts are used. */
  decryptDataKey(key: WrappedDataKey, keyContext: EncryptionContext): Promise<Uint8Array>;
  /**
   * A 32-byte HMAC key for the blind index called `name`, derived separately from any data key, stable
   * for the life of the master key (so equal values keep equal indexes).
   */
  deriveIndexKey(name: string): Promise<Uint8Array>;
}

/** Failures already reported as a security event, so that one failure is one audit line. */
const reportedFailures = new WeakSet<object>();

/** Records that `error` has been reported (a provider's failed call, an encryptor's `decryption.failed`). */
export function markFailureReported(error: unknown): void {
  if (typeof error === 'object' && error !== null) reportedFailures.add(error);
}

/** Whether `error`, or the error it wraps, has been reported already. */
export function isFailureReported(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { cause } = error as { cause?: unknown };
  return (
    reportedFailures.has(error) ||
    (typeof cause === 'object' && cause !== null && reportedFailures.has(cause))
  );
}
