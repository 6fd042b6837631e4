// The local runtime's ENCRYPTION_KEY: generated once into the data folder (owner-only), fresh without one.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalStartError } from '../../bin/runtime/local-defaults.js';
import { encryptionKeyFileName, localEncryptionKey } from '../../bin/runtime/local-key.js';
import { encryptionKeyProblem } from '../../middleware/encryption/local-key-provider.js';

const folders: string[] = [];
function dataDir(): string {
  const folder = mkdtempSync(join(tmpdir(), 'bulwark-key-'));
  folders.push(folder);
  return folder;
}

afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

describe('localEncryptionKey', () => {
  it('generates a key into the data folder on first start, readable only by its owner, and reuses it', () => {
    const folder = dataDir();
    const key = localEncryptionKey(folder);
    expect(encryptionKeyProblem(key)).toBeUndefined();
    const file = join(folder, encryptionKeyFileName);
    expect(readFileSync(file, 'utf8').trim()).toBe(key);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(localEncryptionKey(folder)).toBe(key);
  });

  it('gives a fresh in-memory key when there is no data folder (tests)', () => {
    const key = localEncryptionKey(undefined);
    expect(encryptionKeyProblem(key)).toBeUndefined();
    expect(localEncryptionKey(undefined)).not.toBe(key);
  });

  it('refuses a malformed key file with a message naming the file, not the content, and the tables with it', () => {
    const folder = dataDir();
    writeFileSync(join(folder, encryptionKeyFileName), 'c2hvcnQ=\n');
    expect(() => localEncryptionKey(folder)).toThrow(
      new LocalStartError(
        `${join(folder, encryptionKeyFileName)} must be base64 of 32 bytes (got 5 bytes); put the right key back, ` +
          `or delete it together with ${join(folder, 'dynamodb')} (the data encrypted with it) to start ` +
          'with a new key and empty tables',
      ),
    );
    expect(readFileSync(join(folder, encryptionKeyFileName), 'utf8')).toBe('c2hvcnQ=\n');
  });

  it('makes no new key while the tables hold data encrypted with the missing one', () => {
    const folder = dataDir();
    mkdirSync(join(folder, 'dynamodb'));
    writeFileSync(join(folder, 'dynamodb', 'CURRENT'), 'MANIFEST-000002\n');
    expect(() => localEncryptionKey(folder)).toThrow(
      new LocalStartError(
        `${join(folder, encryptionKeyFileName)} is missing, and ${join(folder, 'dynamodb')} holds data encrypted ` +
          `with it; put the key back, or delete ${join(folder, 'dynamodb')} too to start with empty tables`,
      ),
    );
    expect(existsSync(join(folder, encryptionKeyFileName))).toBe(false);
  });
});
