// Chooses the key provider from configuration: KMS when a key id is configured, the local key otherwise.
import type { KMSClient } from '@aws-sdk/client-kms';
import { assertNoProblems, InvalidOptionsError } from '../errors.js';
import type { SecurityEventListener } from '../events.js';
import { requireOptionsObject } from '../options.js';
import type { KeyProvider } from './key-provider.js';
import { KmsKeyProvider } from './kms-key-provider.js';
import { LocalKeyProvider } from './local-key-provider.js';

export interface KeyProviderConfig {
  /** KMS key for data keys (KMS_KEY_ID); when set, KMS is used. @default undefined */
  readonly kmsKeyId?: string | undefined;
  /**
   * Earlier KMS keys whose data keys may still be unwrapped after `kmsKeyId` moved to another key
   * (KMS_DECRYPT_KEY_IDS), each as `kmsKeyId` named it then: headers keep that name. KMS automatic
   * rotation keeps the key id and needs none.
   * @default []
   */
  readonly kmsDecryptKeyIds?: readonly string[] | undefined;
  /** HMAC_256 KMS key for blind indexes (KMS_BLIND_INDEX_KEY_ID). @default undefined */
  readonly blindIndexKeyId?: string | undefined;
  /** Base64 of 32 bytes (ENCRYPTION_KEY), used only when no KMS key is configured. @default undefined */
  readonly localKey?: string | undefined;
  /** Earlier local keys, for unwrapping only (ENCRYPTION_PREVIOUS_KEYS). @default [] */
  readonly previousLocalKeys?: readonly string[] | undefined;
  /**
   * The local key blind-index keys are derived from, or its index secret (`indexSecretOf`), which
   * cannot unwrap data keys (ENCRYPTION_INDEX_KEY). Rotating `localKey` leaves blind indexes as they are
   * only if this stays the key they were made with, or that key's index secret.
   * @default localKey
   */
  readonly localIndexKey?: string | undefined;
  /** Whether configuration says this is production; refuses the local key there. @default false */
  readonly production?: boolean | undefined;
  /** Accept the local key in production anyway. @default false */
  readonly allowLocalKeyInProduction?: boolean | undefined;
  /** @default createKmsClient(), made on the provider's first KMS call */
  readonly kmsClient?: KMSClient | undefined;
  /** Receives the provider's `kms.request` events. @default none */
  readonly onEvent?: SecurityEventListener | undefined;
}

/**
 * The KMS provider when `kmsKeyId` is set, else the local provider from `localKey` (refused in
 * production unless allowed), else an InvalidOptionsError naming both settings.
 *
 * @example
 * const keyProvider = createKeyProvider({
 *   kmsKeyId: env.KMS_KEY_ID,
 *   localKey: env.ENCRYPTION_KEY,
 *   production: env.BULWARK_STAGE === 'prod',
 * });
 */
export function createKeyProvider(config: KeyProviderConfig): KeyProvider {
  requireOptionsObject('keyProvider', config);
  if (config.kmsKeyId) {
    return inCallersNames(
      () =>
        new KmsKeyProvider({
          keyId: config.kmsKeyId as string,
          decryptKeyIds: config.kmsDecryptKeyIds ?? [],
          ...(config.blindIndexKeyId ? { blindIndexKeyId: config.blindIndexKeyId } : {}),
          ...(config.kmsClient ? { client: config.kmsClient } : {}),
          ...(config.onEvent ? { onEvent: config.onEvent } : {}),
        }),
    );
  }
  if (config.localKey === undefined || config.localKey === '') {
    assertNoProblems('keyProvider', ['configure a KMS key id (KMS_KEY_ID) or a local key (ENCRYPTION_KEY)']);
  }
  return inCallersNames(
    () =>
      new LocalKeyProvider({
        key: config.localKey as string,
        previousKeys: config.previousLocalKeys ?? [],
        ...(config.localIndexKey ? { indexKey: config.localIndexKey } : {}),
        production: config.production ?? false,
        allowInProduction: config.allowLocalKeyInProduction ?? false,
      }),
  );
}

/** The provider's option each `KeyProviderConfig` option is passed on as, and the caller's name for it. */
const callersNames: Readonly<Record<string, string>> = {
  keyId: 'kmsKeyId (KMS_KEY_ID)',
  decryptKeyIds: 'kmsDecryptKeyIds (KMS_DECRYPT_KEY_IDS)',
  blindIndexKeyId: 'blindIndexKeyId (KMS_BLIND_INDEX_KEY_ID)',
  key: 'localKey (ENCRYPTION_KEY)',
  previousKeys: 'previousLocalKeys (ENCRYPTION_PREVIOUS_KEYS)',
  indexKey: 'localIndexKey (ENCRYPTION_INDEX_KEY)',
};

/**
 * Builds a provider, reporting its option problems under the names the caller gave the options: a
 * problem naming `key` or `allowInProduction`, options the caller never passed, would send them looking.
 */
function inCallersNames(build: () => KeyProvider): KeyProvider {
  try {
    return build();
  } catch (error) {
    if (!(error instanceof InvalidOptionsError)) throw error;
    const problems = error.problems.map((problem) =>
      problem
        .replace(/^(\w+)(\[\d+\])?/, (whole, option: string, index = '') => {
          const name = callersNames[option];
          if (name === undefined) return whole;
          // previousLocalKeys[0] (ENCRYPTION_PREVIOUS_KEYS): the index belongs to the option, not the variable.
          const space = name.indexOf(' ');
          return `${name.slice(0, space)}${index}${name.slice(space)}`;
        })
        .replace('allowInProduction', 'allowLocalKeyInProduction: ALLOW_LOCAL_KEY_IN_PRODUCTION=true'),
    );
    throw new InvalidOptionsError('keyProvider', problems);
  }
}
