// `npm run token`: prints a token from the local dev issuer (key in .bulwark/); `npm start`'s functions accept its access tokens.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DevIssuer, type DevTokenOptions } from '../middleware/auth/dev-issuer.js';
import { HelpRequested, isCommand, runCommand } from './command.js';
import { devIssuerKeyFileName } from './runtime/local-auth.js';
import { createDataDir, defaultDataDir, defaultPort, portProblem } from './runtime/local-defaults.js';

const usage = `Usage:
  npm run -s token -- --sub alice [--roles admin,auditor] [--scope bookings/read] [--tenant t1] [--email a@b.c]
  npm run -s token -- --m2m --client-id svc-bookings --scope bookings/write [--scope bookings/read]

Options:
  --sub <id>            the user (sub and username)                       default dev-user
  --roles <a,b>         roles (cognito:groups)
  --scope <s>           a scope; repeat it, or separate with spaces or commas
  --tenant <id>         tenant (custom:tenant_id)
  --email <address>     email claim
  --m2m                 a client-credentials (machine) token
  --client-id <id>      the client                            default bulwark-local, or svc-local with --m2m
  --expires-in <sec>    lifetime in seconds                                 default 3600
  --id-token            a Cognito id token instead of an access token (npm start's functions,
                        like the deployed stack's with Cognito, accept access tokens only)
  --issuer <url>        the runtime's URL                    default http://127.0.0.1:$PORT (3000)
`;

function list(values: readonly string[] | string | undefined): string[] {
  const items = typeof values === 'string' ? [values] : (values ?? []);
  return items.flatMap((value) => value.split(/[\s,]+/)).filter((value) => value.length > 0);
}

/** The port the issuer names: `PORT`'s, checked, since a token naming no port the runtime serves on is refused. */
function runtimePort(): string {
  const port = process.env.PORT;
  if (port === undefined) return String(defaultPort);
  const problem = portProblem(port, { anyFreePort: false });
  if (problem !== undefined)
    throw new Error(`PORT must be ${problem} (got ${JSON.stringify(port)}), or give --issuer`);
  return port;
}

/** The token options a command line asks for; throws with the usage text when it is wrong. */
export function parseTokenArguments(args: readonly string[]): { issuer: string; token: DevTokenOptions } {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    options: {
      sub: { type: 'string' },
      roles: { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
      tenant: { type: 'string' },
      email: { type: 'string' },
      m2m: { type: 'boolean', default: false },
      'client-id': { type: 'string' },
      'expires-in': { type: 'string' },
      'id-token': { type: 'boolean', default: false },
      issuer: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) throw new HelpRequested(usage);
  const expiresInSec = values['expires-in'] === undefined ? 3600 : Number(values['expires-in']);
  if (!Number.isInteger(expiresInSec) || expiresInSec <= 0)
    throw new Error(`--expires-in must be whole seconds\n\n${usage}`);
  if (values.m2m && values.sub !== undefined) throw new Error(`--sub makes no sense with --m2m\n\n${usage}`);
  return {
    issuer: values.issuer ?? `http://127.0.0.1:${runtimePort()}`,
    token: {
      m2m: values.m2m,
      roles: list(values.roles),
      scopes: list(values.scope),
      expiresInSec,
      tokenUse: values['id-token'] ? 'id' : 'access',
      ...(values.sub === undefined ? {} : { sub: values.sub }),
      ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
      ...(values.email === undefined ? {} : { email: values.email }),
      ...(values['client-id'] === undefined ? {} : { clientId: values['client-id'] }),
    },
  };
}

/**
 * Mints one token with the key in `dataDir` (created there if `npm start` has not run yet), and says
 * whether it created the folder too (0700, as `npm start` does).
 */
export async function mintFromCommandLine(
  args: readonly string[],
  dataDir: string,
): Promise<{ token: string; createdDataDir: boolean }> {
  const { issuer, token } = parseTokenArguments(args);
  const createdDataDir = createDataDir(dataDir);
  const devIssuer = new DevIssuer({ issuer, keyFile: join(dataDir, devIssuerKeyFileName) });
  return { token: await devIssuer.mint(token), createdDataDir };
}

// Run as a command (not when a test imports it): print the token alone, so $(npm run -s token ...) captures it.
if (isCommand(import.meta.url)) {
  const dataDir = resolve(process.env.BULWARK_DATA_DIR ?? defaultDataDir);
  // A reader gone before the token is written (a pasted `token … | …` whose right side is no command) is
  // not a crash: say so, as one line, and fail.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    console.error('npm run token: the output closed before the token was written');
    process.exit(1);
  });
  await runCommand(async () => {
    const { token, createdDataDir } = await mintFromCommandLine(process.argv.slice(2), dataDir);
    // On stderr: stdout is the token alone. A mistyped BULWARK_DATA_DIR (or none, beside a runtime started
    // with one) lands here, and its tokens would then be refused as signed with an unknown key.
    if (createdDataDir) {
      console.error(
        `npm run token: created ${dataDir} with a new signing key; a runtime started on another data folder ` +
          'does not accept this token (give npm run token the BULWARK_DATA_DIR of the runtime)',
      );
    }
    console.log(token);
  });
}
