// README, "Envelope encryption", Keys: the key provider chosen from configuration, and the local key.
import {
  createKeyProvider,
  Encryptor,
  generateEncryptionKey,
  LocalKeyProvider,
} from '../../../middleware/index.js';

// KMS when KMS_KEY_ID is set, else the local ENCRYPTION_KEY (refused where production is true, unless
// allowLocalKeyInProduction); neither is an InvalidOptionsError naming both
const keyProvider = createKeyProvider({
  kmsKeyId: process.env.KMS_KEY_ID,
  kmsDecryptKeyIds: process.env.KMS_DECRYPT_KEY_IDS?.split(','),
  blindIndexKeyId: process.env.KMS_BLIND_INDEX_KEY_ID,
  localKey: process.env.ENCRYPTION_KEY,
  previousLocalKeys: process.env.ENCRYPTION_PREVIOUS_KEYS?.split(','),
  localIndexKey: process.env.ENCRYPTION_INDEX_KEY,
  production: process.env.BULWARK_STAGE === 'prod',
  allowLocalKeyInProduction: process.env.ALLOW_LOCAL_KEY_IN_PRODUCTION === 'true',
});
export const encryptor = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });

// Tests: the local provider on a fresh key, base64 of 32 random bytes (as npm start makes .bulwark/encryption-key)
export const testEncryptor = new Encryptor({
  keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }),
});
