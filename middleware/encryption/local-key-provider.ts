// The local key provider: a raw AES-256 wrapping key from ENCRYPTION_KEY, for local runs and tests.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { assertNoProblems, DecryptionError } from '../errors.js';
import { requireOptionsObject } from '../options.js';
import { canonicalContext, type EncryptionContext, ivBytes, tagBytes } from './format.js';
import type { GeneratedDataKey, KeyProvider, WrappedDataKey } from './key-provider.js';

/** The provider id a record header names when the local key wrapped its data key. */
export const localProviderId = 'local';
const keyBytes = 32;
const wrapLabel = 'bulwark/local-wrap/v1';
const indexSalt = Buffer.from('bulwark/blind-index/v1', 'utf8');
const base64Pattern = /^(?:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+)$/;

/**
 * Why a text is not a usable ENCRYPTION_KEY (base64 of exactly 32 bytes), or undefined when it is.
 * The answer never contains the text.
 *
 * @example
 * encryptionKeyProblem('abc'); // 'must be base64 of 32 bytes (got 2 bytes)'
 */
export function encryptionKeyProblem(text: string): string | undefined {
  if (!base64Pattern.test(text)) return 'is not base64';
  const length = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64').length;
  if (length !== keyBytes) return `must be base64 of ${keyBytes} bytes (got ${length} bytes)`;
  return undefined;
}

/** A new random ENCRYPTION_KEY: base64 of 32 bytes from the CSPRNG. */
export function generateEncryptionKey(): string {
  return randomBytes(keyBytes).toString('base64');
}

export interface LocalKeyProviderOptions {
  /** The wrapping key: base64 of 32 random bytes (ENCRYPTION_KEY), or the bytes. */
  readonly key: string | Uint8Array;
  /**
   * Earlier wrapping keys, accepted for unwrapping only, so records written before a key rotation stay
   * readable until re-encrypted.
   * @default []
   */
  readonly previousKeys?: readonly (string | Uint8Array)[] | undefined;
  /**
   * The key blind-index keys are derived from. Keep it unchanged when rotating {@link key}, so that
   * existing blind indexes stay valid.
   * @default the value of {@link key}
   */
  readonly indexKey?: string | Uint8Array | undefined;
  /**
   * Whether configuration says this is production. The local provider keeps its key in configuration,
   * not in an HSM, so it is refused there unless {@link allowInProduction} is set.
   * @default false
   */
  readonly production?: boolean | undefined;
  /**
   * Accept the local provider in production anyway (an explicit, reviewed decision).
   * @default false
   */
  readonly allowInProduction?: boolean | undefined;
}

interface WrappingKey {
  readonly keyId: string;
  readonly key: KeyObject;
}

function importKey(value: string | Uint8Array, label: string, problems: string[]): WrappingKey | undefined {
  let material: Buffer;
  if (typeof value === 'string') {
    const problem = encryptionKeyProblem(value);
    if (problem !== undefined) {
      problems.push(`${label} ${problem}`);
      return undefined;
    }
    material = Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64');
  } else if (value instanceof Uint8Array && value.length === keyBytes) {
    material = Buffer.from(value);
  } else {
    problems.push(`${label} must be ${keyBytes} bytes`);
    return undefined;
  }
  // A fingerprint, not the key: lets a header name its wrapping key and lets rotation find old keys.
  const fingerprint = createHash('sha256').update('bulwark/local-key-id').update(material).digest('hex');
  const wrapping = { keyId: `local:${fingerprint.slice(0, 16)}`, key: createSecretKey(material) };
  material.fill(0);
  return wrapping;
}

function wrapAad(keyId: string, keyContext: EncryptionContext): Buffer {
  return Buffer.from(`${wrapLabel}\n${keyId}\n${canonicalContext(keyContext, 'encrypt')}`, 'utf8');
}

/**
 * Wraps data keys with AES-256-GCM under a raw key, binding the key id and context as AAD, the way
 * the AWS Encryption SDK's raw AES keyring does. Keys are imported once, at construction.
 *
 * @example
 * const provider = new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' });
 */
export class LocalKeyProvider implements KeyProvider {
  readonly providerId = localProviderId;
  readonly currentKeyId: string;
  private readonly keys: ReadonlyMap<string, WrappingKey>;
  private readonly current: WrappingKey;
  private readonly indexKey: KeyObject;

  constructor(options: LocalKeyProviderOptions) {
    requireOptionsObject('LocalKeyProvider', options);
    const problems: string[] = [];
    if (options.production === true && options.allowInProduction !== true) {
      problems.push(
        'the local key provider is refused in production; configure a KMS key (or set allowInProduction)',
      );
    }
    const current = importKey(options.key, 'key', problems);
    // A lone key, a string, has no map() (a TypeError); unlike other options, the problem never shows it.
    const previousKeys = options.previousKeys ?? [];
    if (!Array.isArray(previousKeys)) problems.push('previousKeys must be an array of keys');
    const previous = (Array.isArray(previousKeys) ? previousKeys : []).map((key, index) =>
      importKey(key, `previousKeys[${index}]`, problems),
    );
    const indexKey =
      options.indexKey === undefined ? current : importKey(options.indexKey, 'indexKey', problems);
    assertNoProblems('LocalKeyProvider', problems);
    this.current = current as WrappingKey;
    this.indexKey = (indexKey as WrappingKey).key;
    this.currentKeyId = this.current.keyId;
    this.keys = new Map(
      [this.current, ...(previous as WrappingKey[])].map((wrapping) => [wrapping.keyId, wrapping]),
    );
  }

  async generateDataKey(keyContext: EncryptionContext): Promise<GeneratedDataKey> {
    const plaintext = randomBytes(keyBytes);
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(wrapAad(this.currentKeyId, keyContext));
    const wrapped = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { plaintext, keyId: this.currentKeyId, wrappedKey: wrapped };
  }

  async decryptDataKey(key: WrappedDataKey, keyContext: EncryptionContext): Promise<Uint8Array> {
    const wrapping = this.keys.get(key.keyId);
    if (!wrapping) {
      throw new DecryptionError(
        'key_not_allowed',
        'The data key is wrapped under a key this provider does not hold',
      );
    }
    const wrapped = Buffer.from(key.wrappedKey.buffer, key.wrappedKey.byteOffset, key.wrappedKey.byteLength);
    if (wrapped.length !== ivBytes + keyBytes + tagBytes) {
      throw new DecryptionError('malformed', 'The wrapped data key has the wrong length');
    }
    const decipher = createDecipheriv('aes-256-gcm', wrapping.key, wrapped.subarray(0, ivBytes));
    decipher.setAAD(wrapAad(key.keyId, keyContext));
    decipher.setAuthTag(wrapped.subarray(ivBytes + keyBytes));
    try {
      return Buffer.concat([
        decipher.update(wrapped.subarray(ivBytes, ivBytes + keyBytes)),
        decipher.final(),
      ]);
    } catch (error) {
      throw new DecryptionError('authentication_failed', 'The wrapped data key failed authentication', {
        cause: error,
      });
    }
  }

  /** HKDF-SHA256 of the index key with its own salt and the index name: never a data key. */
  async deriveIndexKey(name: string): Promise<Uint8Array> {
    return new Uint8Array(hkdfSync('sha256', this.indexKey, indexSalt, `index:${name}`, keyBytes));
  }
}
