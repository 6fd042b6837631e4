// What the repository's small commands (bin/token.ts, bin/recount-webhook-owners.ts) share: --help, exit codes.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Thrown for `--help`: the usage text is the answer, not an error. */
export class HelpRequested extends Error {}

/** Whether the module at `moduleUrl` was started as the command (not imported, say by a test). */
export function isCommand(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(resolve(process.argv[1])).href;
}

/**
 * Runs a command's work: a {@link HelpRequested} prints its usage text and exits 0, any other error prints
 * its message alone (no stack: the message says what to fix) and exits 1.
 */
export async function runCommand(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (error instanceof HelpRequested) {
      console.log(error.message);
      process.exit(0);
    }
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
