// Where `npm start` serves and keeps its data, and where `npm run token` looks, unless PORT and BULWARK_DATA_DIR say otherwise.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellWord } from '../../lib/shell-word.js';

export const defaultPort = 3000;

/**
 * A start-up failure whose message says what is wrong and what to do (a damaged file in the data folder, the
 * embedded DynamoDB unable to open its store): `npm start` prints it as one line, not as a stack trace.
 */
export class LocalStartError extends Error {}

/** The start failure of a folder the runtime needs that is a file (EEXIST, ENOTDIR) at `path`. */
export const notAFolder = (path: string) =>
  new LocalStartError(`${path} is a file, not a folder; move it aside`);

/**
 * What `PORT` must be, if `value` is not that: a whole number up to 65535, where 0 (any free port, which
 * the banner then names) means something only to `npm start`, not to a command that must reach it.
 */
export function portProblem(value: string, { anyFreePort }: { anyFreePort: boolean }): string | undefined {
  const lowest = anyFreePort ? 0 : 1;
  // No leading zero: the port is also spelled into token issuers, where 03000 is not 3000.
  return /^(0|[1-9]\d{0,4})$/.test(value) && Number(value) >= lowest && Number(value) <= 65_535
    ? undefined
    : anyFreePort
      ? 'a whole number from 0 (any free port) to 65535, no leading zero'
      : "a whole number from 1 to 65535, no leading zero: the runtime's port (its banner's commands carry it)";
}
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
