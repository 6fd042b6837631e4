// The local runtime's ENCRYPTION_KEY: kept in the data folder (created once, owner-only), or fresh in memory.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  encryptionKeyProblem,
  generateEncryptionKey,
} from '../../middleware/encryption/local-key-provider.js';

export const encryptionKeyFileName = 'encryption-key';

/**
 * The key the functions encrypt with locally: `<dataDir>/encryption-key`, generated on first start
 * (mode 0600) so data persisted under `.bulwark/` stays readable across restarts; a fresh key when
 * there is no data folder (tests: data lives in memory, so must the key).
 */
export function localEncryptionKey(dataDir: string | undefined): string {
  if (dataDir === undefined) return generateEncryptionKey();
  const file = join(dataDir, encryptionKeyFileName);
  if (!existsSync(file)) {
    // 'wx' fails rather than overwrite a key another process created meanwhile.
    writeFileSync(file, `${generateEncryptionKey()}\n`, { mode: 0o600, flag: 'wx' });
  }
  const key = readFileSync(file, 'utf8').trim();
  const problem = encryptionKeyProblem(key);
  if (problem !== undefined) throw new Error(`${file} ${problem}; delete it to generate a new key`);
  return key;
}
