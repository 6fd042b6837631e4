// The AWS KMS key provider: GenerateDataKey and Decrypt with the key pinned and the context bound.
import { DecryptCommand, GenerateDataKeyCommand, GenerateMacCommand, KMSClient } from '@aws-sdk/client-kms';
import { dependencyFailure, nameAwsDependency } from '../dependency-failure.js';
import { assertNoProblems, DecryptionError, EncryptionError } from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import { arrayOption, checkFunctionOption, requireOptionsObject } from '../options.js';
import { boundedRequestHandler, clientRequestLimits } from '../request-handler.js';
import type { EncryptionContext } from './format.js';
import {
  type GeneratedDataKey,
  type KeyProvider,
  markFailureReported,
  type WrappedDataKey,
} from './key-provider.js';

/** The provider id a record header names when KMS wrapped its data key. */
export const kmsProviderId = 'aws-kms';

/** KMS errors that mean "this ciphertext or context is wrong", as opposed to "KMS cannot answer now". */
const rejectedCiphertext = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

const indexKeyMessagePrefix = 'bulwark/blind-index/v1/';

/**
 * A KMS key ARN (`arn:<partition>:kms:<region>:<account>:key/<key id>`): the one name of a key that
 * never changes. An alias can be pointed at another key, after which Decrypt with it fails on every
 * record, trust and needsReencryption can no longer tell keys apart, and GenerateMac gives other blind
 * indexes; resolving aliases would cost a DescribeKey call and permission per cold start, and records
 * under the alias's earlier key would still need that key's ARN listed.
 */
const keyArnPattern = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

function isKeyArn(value: unknown): boolean {
  return typeof value === 'string' && keyArnPattern.test(value);
}

/**
 * Any name KMS resolves to a key: a key ARN, an alias (name or ARN) or a bare key id. Headers written
 * before key ARNs were required carry the name `keyId` had then, so decryption may still trust it.
 */
const kmsKeyNamePattern =
  /^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)\/|alias\/)?[A-Za-z0-9/_-]+$/;

function isKmsKeyName(value: unknown): boolean {
  return typeof value === 'string' && kmsKeyNamePattern.test(value);
}

export interface KmsClientOptions {
  /** @default AWS_REGION from the Lambda environment */
  readonly region?: string | undefined;
  /** Endpoint URL override (VPC endpoint, a local emulator). @default the AWS regional endpoint */
  readonly endpoint?: string | undefined;
  /** Upper bound on one HTTP request, so a KMS outage never hangs a Lambda. @default 2000 */
  readonly requestTimeoutMs?: number | undefined;
  /** @default 1000 */
  readonly connectionTimeoutMs?: number | undefined;
  /** SDK attempts including the first. @default 3 */
  readonly maxAttempts?: number | undefined;
}

/**
 * A KMS client with bounded timeouts; create it once, at module scope.
 *
 * @example
 * const kms = createKmsClient();
 */
export function createKmsClient(options: KmsClientOptions = {}): KMSClient {
  const limits = clientRequestLimits('createKmsClient', options);
  const client = new KMSClient({
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: limits.maxAttempts,
    requestHandler: boundedRequestHandler(limits),
  });
  nameAwsDependency(client);
  return client;
}

export interface KmsKeyProviderOptions {
  /** The key ARN of the symmetric KMS key new data keys are generated under; an alias is refused. */
  readonly keyId: string;
  /**
   * Key ARNs of other KMS keys whose data keys may still be unwrapped (after moving to a new key); every
   * Decrypt pins the header's key name, and only these and {@link keyId} are accepted. For records
   * written while `keyId` could be an alias or a bare key id, list that name as it was: KMS then decrypts
   * with whatever key the alias names now.
   * @default []
   */
  readonly decryptKeyIds?: readonly string[] | undefined;
  /**
   * The key ARN of an HMAC_256 KMS key from which blind-index keys are derived with GenerateMac (the root
   * secret never leaves KMS). Without it, {@link KmsKeyProvider.deriveIndexKey} fails.
   * @default undefined
   */
  readonly blindIndexKeyId?: string | undefined;
  /** @default createKmsClient(), made on the first KMS call (a cold start that never encrypts builds none) */
  readonly client?: KMSClient | undefined;
  /**
   * Receives a `kms.request` event per KMS call (operation, key id, outcome, and the encryption context's
   * member names, never its values). A failed Decrypt reported here is not reported again by the
   * encryptor as `decryption.failed`: give both the same listener. @default none
   */
  readonly onEvent?: SecurityEventListener | undefined;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

/**
 * `key_unavailable` only for KMS's own passing failure (throttling, a 5xx, no connection, a timeout), which a
 * retry may get past; anything else (lost permission, a disabled key or one pending deletion, a wrong key
 * type, a request KMS refused, bad credentials, a bug) is not answered as a passing outage.
 */
function unusableKeyReason(error: unknown): 'key_unavailable' | 'key_misconfigured' {
  return dependencyFailure(error) === undefined ? 'key_misconfigured' : 'key_unavailable';
}

/**
 * Envelope keys from AWS KMS, named by key ARN. Automatic key rotation is transparent: KMS keeps every
 * earlier key material under the same key ARN and the ciphertext blob names the one it used. Moving to
 * another key is a new keyId with the old ARN in decryptKeyIds, then reencryptFields.
 *
 * @example
 * const provider = new KmsKeyProvider({ keyId: process.env.KMS_KEY_ID ?? '', onEvent });
 */
export class KmsKeyProvider implements KeyProvider {
  readonly providerId = kmsProviderId;
  readonly currentKeyId: string;
  /** The given client, or the default one once the first KMS call made it. */
  #kms: KMSClient | undefined;
  private readonly trustedKeyIds: ReadonlySet<string>;
  private readonly blindIndexKeyId: string | undefined;
  private readonly onEvent: SecurityEventListener | undefined;

  constructor(options: KmsKeyProviderOptions) {
    requireOptionsObject('KmsKeyProvider', options);
    const problems: string[] = [];
    const arnOnly = 'an alias can be pointed at another key, a key ARN never changes';
    if (!isKeyArn(options.keyId)) {
      problems.push(`keyId must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>): ${arnOnly}`);
    }
    const decryptKeyIds = arrayOption(problems, 'decryptKeyIds', options.decryptKeyIds, 'of key ARNs');
    if (!decryptKeyIds.every(isKmsKeyName)) {
      problems.push('decryptKeyIds must be key ARNs, or the alias or key id an older header names');
    }
    if (options.blindIndexKeyId !== undefined && !isKeyArn(options.blindIndexKeyId)) {
      problems.push(`blindIndexKeyId must be a key ARN: ${arnOnly}`);
    }
    checkFunctionOption(problems, 'onEvent', options.onEvent);
    assertNoProblems('KmsKeyProvider', problems);
    this.currentKeyId = options.keyId;
    this.trustedKeyIds = new Set([options.keyId, ...(options.decryptKeyIds ?? [])]);
    this.blindIndexKeyId = options.blindIndexKeyId;
    this.#kms = options.client;
    this.onEvent = options.onEvent;
  }

  private get client(): KMSClient {
    this.#kms ??= createKmsClient();
    return this.#kms;
  }

  private async call<T>(
    operation: string,
    keyId: string,
    keyContext: EncryptionContext | undefined,
    send: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    try {
      const output = await send();
      emitEvent(this.onEvent, {
        type: 'kms.request',
        metadata: { operation, keyId, outcome: 'ok' },
        durationMs: performance.now() - started,
      });
      return output;
    } catch (error) {
      // The names say which context KMS refused (a record moved to another tenant, say); values could be personal.
      const contextFields = keyContext === undefined ? {} : { contextFields: Object.keys(keyContext).sort() };
      emitEvent(this.onEvent, {
        type: 'kms.request',
        reason: errorName(error),
        metadata: { operation, keyId, ...contextFields, outcome: 'error' },
        durationMs: performance.now() - started,
      });
      if (this.onEvent !== undefined) markFailureReported(error);
      throw error;
    }
  }

  async generateDataKey(keyContext: EncryptionContext): Promise<GeneratedDataKey> {
    let output: {
      Plaintext?: Uint8Array | undefined;
      CiphertextBlob?: Uint8Array | undefined;
      KeyId?: string | undefined;
    };
    try {
      output = await this.call('GenerateDataKey', this.currentKeyId, keyContext, () =>
        this.client.send(
          new GenerateDataKeyCommand({
            KeyId: this.currentKeyId,
            KeySpec: 'AES_256',
            EncryptionContext: { ...keyContext },
          }),
        ),
      );
    } catch (error) {
      throw new EncryptionError(
        unusableKeyReason(error),
        `KMS GenerateDataKey failed (${errorName(error)})`,
        {
          cause: error,
        },
      );
    }
    if (output.Plaintext?.length !== 32 || !output.CiphertextBlob?.length) {
      throw new EncryptionError('key_unavailable', 'KMS GenerateDataKey returned no usable data key');
    }
    // The header keeps the key KMS says it used, and only a key this provider trusts can be read back.
    if (output.KeyId !== this.currentKeyId) {
      throw new EncryptionError(
        'key_misconfigured',
        'KMS GenerateDataKey answered for another key than asked',
      );
    }
    return { plaintext: output.Plaintext, keyId: output.KeyId, wrappedKey: output.CiphertextBlob };
  }

  async decryptDataKey(key: WrappedDataKey, keyContext: EncryptionContext): Promise<Uint8Array> {
    // Pinning the key ARN means a forged header cannot make us ask KMS to use some other key.
    if (!this.trustedKeyIds.has(key.keyId)) {
      throw new DecryptionError(
        'key_not_allowed',
        'The data key is wrapped under a KMS key that is not trusted',
      );
    }
    let plaintext: Uint8Array | undefined;
    try {
      ({ Plaintext: plaintext } = await this.call('Decrypt', key.keyId, keyContext, () =>
        this.client.send(
          new DecryptCommand({
            KeyId: key.keyId,
            CiphertextBlob: key.wrappedKey,
            EncryptionContext: { ...keyContext },
            EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
          }),
        ),
      ));
    } catch (error) {
      const name = errorName(error);
      throw rejectedCiphertext.has(name)
        ? new DecryptionError('authentication_failed', `KMS refused the wrapped data key (${name})`, {
            cause: error,
          })
        : new DecryptionError(unusableKeyReason(error), `KMS Decrypt failed (${name})`, { cause: error });
    }
    if (plaintext?.length !== 32) {
      throw new DecryptionError('key_unavailable', 'KMS Decrypt returned no usable data key');
    }
    return plaintext;
  }

  /** GenerateMac of a fixed, per-index message under the HMAC key: stable, and never a data key. */
  async deriveIndexKey(name: string): Promise<Uint8Array> {
    const keyId = this.blindIndexKeyId;
    if (keyId === undefined) {
      throw new EncryptionError(
        'key_misconfigured',
        'Blind indexes need blindIndexKeyId (an HMAC_256 KMS key) on the KMS key provider',
      );
    }
    let mac: Uint8Array | undefined;
    try {
      ({ Mac: mac } = await this.call('GenerateMac', keyId, undefined, () =>
        this.client.send(
          new GenerateMacCommand({
            KeyId: keyId,
            MacAlgorithm: 'HMAC_SHA_256',
            Message: Buffer.from(`${indexKeyMessagePrefix}${name}`, 'utf8'),
          }),
        ),
      ));
    } catch (error) {
      throw new EncryptionError(unusableKeyReason(error), `KMS GenerateMac failed (${errorName(error)})`, {
        cause: error,
      });
    }
    if (mac?.length !== 32) {
      throw new EncryptionError('key_unavailable', 'KMS GenerateMac returned no 32-byte MAC');
    }
    return mac;
  }
}
