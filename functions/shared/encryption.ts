// The sample functions' encryptor: KMS when a key id is configured, the local key otherwise.
import { createKeyProvider } from '../../middleware/encryption/create-key-provider.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import type { FunctionEnvironment } from './environment.js';

/**
 * One encryptor per function, built at cold start. Data keys are bound to the tenant (one KMS
 * GenerateDataKey per tenant per 5 minutes); each value is bound to its whole context as AAD.
 */
export function createFunctionEncryptor(
  environment: FunctionEnvironment,
  onEvent?: SecurityEventListener,
): Encryptor {
  return new Encryptor({
    keyProvider: createKeyProvider({ ...environment.encryption, ...(onEvent ? { onEvent } : {}) }),
    keyContextFields: ['tenantId'],
    ...(onEvent ? { onEvent } : {}),
  });
}
