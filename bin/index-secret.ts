// `npm run -s index-secret`: prints the index secret of the local key in ENCRYPTION_KEY, for ENCRYPTION_INDEX_KEY.
import { indexSecretOf } from '../middleware/encryption/local-key-provider.js';
import { HelpRequested, isCommand, runCommand } from './command.js';

const usage = `Usage:
  ENCRYPTION_KEY=<the key the blind indexes were made with> npm run -s index-secret

Prints that key's index secret ("index:" and base64 of 32 bytes). As ENCRYPTION_INDEX_KEY it gives
the blind indexes the key gave, and cannot unwrap data keys, so a rotation can drop the key itself.
The key is read from the environment, not the command line, to keep it out of shell history.
`;

/** The index secret the command prints for its arguments and environment; throws with what to fix. */
export function indexSecretCommand(args: readonly string[], env: NodeJS.ProcessEnv): string {
  if (args.includes('--help') || args.includes('-h')) throw new HelpRequested(usage);
  if (args.length > 0) throw new Error(`index-secret takes no arguments\n\n${usage}`);
  const key = env.ENCRYPTION_KEY;
  if (key === undefined || key === '') throw new Error(`ENCRYPTION_KEY is not set\n\n${usage}`);
  return indexSecretOf(key);
}

// Run as a command (not when a test imports it).
if (isCommand(import.meta.url)) {
  await runCommand(async () => {
    console.log(indexSecretCommand(process.argv.slice(2), process.env));
  });
}
