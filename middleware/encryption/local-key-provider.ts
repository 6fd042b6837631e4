// The local key provider: a raw AES-256 wrapping key from ENCRYPTION_KEY, for local runs and tests.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { assertNoProblems, DecryptionError, InvalidArgumentError } from '../errors.js';
import { requireOptionsObject } from '../options.js';
import { canonicalContext, type EncryptionContext, ivBytes, tagBytes } from './format.js';
import type { GeneratedDataKey, KeyProvider, WrappedDataKey } from './key-provider.js';

/** The provider id a record header names when the local key wrapped its data key. */
export const localProviderId = 'local';
const keyBytes = 32;
const wrapLabel = 'bulwark/local-wrap/v1';
const indexSalt = Buffer.from('bulwark/blind-index/v1', 'utf8');
const base64Pattern = /^(?:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+)$/;
/** HKDF-Expand's counter for its first (and, for 32 bytes, only) block. */
const hkdfFirstBlock = Buffer.from([1]);
/** Marks an index secret ({@link indexSecretOf}) apart from a key: base64 never holds a colon. */
const indexSecretPrefix = 'index:';

function decodeBase64(text: string): Buffer {
  return Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
}

/**
 * Why a text is not a usable ENCRYPTION_KEY (base64 of exactly 32 bytes), or undefined when it is.
 * The answer never contains the text.
 *
 * @example
 * encryptionKeyProblem('abc'); // 'must be base64 of 32 bytes (got 2 bytes)'
 */
export function encryptionKeyProblem(text: string): string | undefined {
  if (!base64Pattern.test(text)) return 'is not base64';
  const length = decodeBase64(text).length;
  if (length !== keyBytes) return `must be base64 of ${keyBytes} bytes (got ${length} bytes)`;
  return undefined;
}

/**
 * Why a text is not a usable ENCRYPTION_INDEX_KEY (a key, as {@link encryptionKeyProblem} asks, or an
 * index secret as {@link indexSecretOf} prints it), or undefined when it is. The answer never contains
 * the text.
 */
export function indexKeyProblem(text: string): string | undefined {
  if (!text.startsWith(indexSecretPrefix)) return encryptionKeyProblem(text);
  const problem = encryptionKeyProblem(text.slice(indexSecretPrefix.length));
  return problem === undefined ? undefined : `is an index secret whose part after "index:" ${problem}`;
}

/**
 * The first step of HKDF-SHA256 (extract) of a key under the blind-index salt: what every blind-index
 * key of that key is expanded from, and nothing else. HMAC is one-way, so this cannot give back the key.
 */
function indexRootOf(keyMaterial: Buffer): Buffer {
  return createHmac('sha256', indexSalt).update(keyMaterial).digest();
}

/**
 * The index secret of a local key: `index:` and base64 of what its blind-index keys are derived from.
 * As `indexKey` (ENCRYPTION_INDEX_KEY) it gives every blind index the key gave, yet cannot unwrap a
 * data key, so a rotation can keep the indexes and still retire the key completely.
 *
 * @example
 * indexSecretOf(process.env.ENCRYPTION_KEY ?? ''); // 'index:q9V…='
 */
export function indexSecretOf(key: string): string {
  const problem = encryptionKeyProblem(key);
  if (problem !== undefined) {
    throw new InvalidArgumentError(`indexSecretOf: the key ${problem}`);
  }
  const material = decodeBase64(key);
  const secret = `${indexSecretPrefix}${indexRootOf(material).toString('base64')}`;
  material.fill(0);
  return secret;
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
   * The key blind-index keys are derived from, or its index secret ({@link indexSecretOf}), which gives
   * the same blind indexes and cannot unwrap data keys. Keep the indexes it gives unchanged when rotating
   * {@link key}, so that existing blind indexes stay valid.
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
  /** What blind-index keys are expanded from when this key is also the index key. */
  readonly indexRoot: Buffer;
}

function importKey(value: string | Uint8Array, label: string, problems: string[]): WrappingKey | undefined {
  let material: Buffer;
  if (typeof value === 'string') {
    const problem = encryptionKeyProblem(value);
    if (problem !== undefined) {
      problems.push(`${label} ${problem}`);
      return undefined;
    }
    material = decodeBase64(value);
  } else if (value instanceof Uint8Array && value.length === keyBytes) {
    material = Buffer.from(value);
  } else {
    problems.push(`${label} must be ${keyBytes} bytes`);
    return undefined;
  }
  // A fingerprint, not the key: lets a header name its wrapping key and lets rotation find old keys.
  const fingerprint = createHash('sha256').update('bulwark/local-key-id').update(material).digest('hex');
  const wrapping = {
    keyId: `local:${fingerprint.slice(0, 16)}`,
    key: createSecretKey(material),
    indexRoot: indexRootOf(material),
  };
  material.fill(0);
  return wrapping;
}

/** The index root `indexKey` names: a key's, or the one an index secret holds. */
function importIndexRoot(value: string | Uint8Array, problems: string[]): Buffer | undefined {
  if (typeof value === 'string' && value.startsWith(indexSecretPrefix)) {
    const problem = indexKeyProblem(value);
    if (problem === undefined) return decodeBase64(value.slice(indexSecretPrefix.length));
    problems.push(`indexKey ${problem}`);
    return undefined;
  }
  return importKey(value, 'indexKey', problems)?.indexRoot;
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
  private readonly indexRoot: KeyObject;

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
    const indexRoot =
      options.indexKey === undefined ? current?.indexRoot : importIndexRoot(options.indexKey, problems);
    assertNoProblems('LocalKeyProvider', problems);
    this.current = current as WrappingKey;
    this.indexRoot = createSecretKey(indexRoot as Buffer);
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

  /**
   * HKDF-SHA256 of the index key with its own salt and the index name: never a data key. The extract
   * step is done once, at construction (the index root), so this is HKDF's expand of one 32-byte block.
   */
  async deriveIndexKey(name: string): Promise<Uint8Array> {
    return new Uint8Array(
      createHmac('sha256', this.indexRoot).update(`index:${name}`, 'utf8').update(hkdfFirstBlock).digest(),
    );
  }
}
