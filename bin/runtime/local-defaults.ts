// Where `npm start` serves and keeps its data, and where `npm run token` looks, unless PORT and BULWARK_DATA_DIR say otherwise.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellWord } from '../../lib/shell-word.js';

export const defaultPort = 3000;
export const defaultDataDir = fileURLToPath(new URL('../../.bulwark', import.meta.url));

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
