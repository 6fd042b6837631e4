// Where `npm start` serves and keeps its data, and where `npm run token` looks, unless PORT and BULWARK_DATA_DIR say otherwise.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellWord } from '../../lib/shell-word.js';

export const defaultPort = 3000;
export const defaultDataDir = fileURLToPath(new URL('../../.bulwark', import.meta.url));

/**
 * Creates the data folder if it is missing, owner-only (0700, with any parents it needs: it will hold the
 * signing key, the encryption key and the outbox); one that exists keeps its mode. Whether it created it.
 */
export function createDataDir(dataDir: string): boolean {
  return mkdirSync(dataDir, { recursive: true, mode: 0o700 }) !== undefined;
}

/**
 * The `PORT=… BULWARK_DATA_DIR=… ` prefix that points a command pasted into another shell (`npm run token`)
 * at the runtime on `port` with its data in `dataDir`: the token's issuer names the port, and its key is in
 * the data folder. Empty for the defaults, so the usual case prints the plain command.
 */
export function runtimeEnvironmentPrefix({ port, dataDir }: { port: number; dataDir: string }): string {
  const assignments = [
    ...(port === defaultPort ? [] : [`PORT=${port}`]),
    ...(resolve(dataDir) === defaultDataDir ? [] : [`BULWARK_DATA_DIR=${shellWord(resolve(dataDir))}`]),
  ];
  return assignments.map((assignment) => `${assignment} `).join('');
}
