// The local runtime's ENCRYPTION_KEY: kept in the data folder (created once, owner-only), or fresh in memory.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  encryptionKeyProblem,
  generateEncryptionKey,
} from '../../middleware/encryption/local-key-provider.js';
import { LocalStartError, notAFolder } from './local-defaults.js';

export const encryptionKeyFileName = 'encryption-key';

/**
 * The key the functions encrypt with locally: `<dataDir>/encryption-key`, generated on first start
 * (mode 0600) so data persisted under `.bulwark/` stays readable across restarts; a fresh key when
 * there is no data folder (tests: data lives in memory, so must the key). Read before the embedded
 * DynamoDB starts: a missing key is generated only while `<dataDir>/dynamodb` holds no data, which a new
 * key could not read.
 */
export function localEncryptionKey(dataDir: string | undefined): string {
  if (dataDir === undefined) return generateEncryptionKey();
  const file = join(dataDir, encryptionKeyFileName);
  const tables = join(dataDir, 'dynamodb');
  if (!existsSync(file)) {
    if (existsSync(tables) && storeEntries(tables).length > 0) {
      throw new LocalStartError(
        `${file} is missing, and ${tables} holds data encrypted with it; put the key back, ` +
          `or delete ${tables} too to start with empty tables`,
      );
    }
    // 'wx' fails rather than overwrite a key another process created meanwhile.
    writeFileSync(file, `${generateEncryptionKey()}\n`, { mode: 0o600, flag: 'wx' });
  }
  const key = readKeyFile(file).trim();
  const problem = encryptionKeyProblem(key);
  if (problem !== undefined) {
    throw new LocalStartError(
      `${file} ${problem}; put the right key back, or delete it together with ${tables} (the data ` +
        'encrypted with it) to start with a new key and empty tables',
    );
  }
  return key;
}

/** What the embedded DynamoDB's folder holds; one line naming it if it is a file. */
function storeEntries(tables: string): string[] {
  try {
    return readdirSync(tables);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
    // As the embedded DynamoDB says of it when the key is there.
    throw notAFolder(tables);
  }
}

/** The key file's text; one line naming it if it is a folder. */
function readKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
    throw new LocalStartError(`${file} is a folder, not a key file; move it aside`);
  }
}
