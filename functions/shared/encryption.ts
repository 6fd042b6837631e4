// The sample functions' encryptor: KMS when a key id is configured, the local key otherwise.
import { createKeyProvider } from '../../middleware/encryption/create-key-provider.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import type { FunctionEnvironment } from './environment.js';

/**
 * One encryptor per function, built at cold start. Data keys are bound to `keyContextFields` of the
 * context, the tenant by default (one KMS GenerateDataKey per tenant per 5 minutes); each value is
 * bound to its whole context as AAD. Decryption follows the names each record's header lists, so
 * these fields matter only to what the function seals.
 */
export function createFunctionEncryptor(
  environment: FunctionEnvironment,
  onEvent?: SecurityEventListener,
  keyContextFields: readonly string[] = ['tenantId'],
): Encryptor {
  return new Encryptor({
    keyProvider: createKeyProvider({ ...environment.encryption, ...(onEvent ? { onEvent } : {}) }),
    keyContextFields,
    ...(onEvent ? { onEvent } : {}),
  });
}
