// The local runtime's auth: a dev issuer whose JWKS the runtime serves, and per-start service-signing secrets.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { LocalStartError } from './local-defaults.js';

/** Where the runtime serves the dev issuer's keys: `<issuer>/.well-known/jwks.json`, as Cognito does. */
export const jwksPath = '/.well-known/jwks.json';

/** The dev issuer's key file inside the data folder; `npm run token` reads the same file. */
export const devIssuerKeyFileName = 'dev-issuer-key.json';

export interface LocalAuth {
  readonly devIssuer: DevIssuer;
  /** Request-signing secrets of the services that call each other (`bookings` → `users`). */
  readonly serviceSecrets: Readonly<Record<string, { readonly current: string }>>;
  /** The functions' auth environment variables. */
  readonly environment: Readonly<Record<string, string>>;
}

/**
 * The auth setup of a runtime listening at `url`: tokens name `url` as their issuer, so functions
 * fetch its JWKS from `<url>/.well-known/jwks.json` over HTTP, the same remote-JWKS path as in AWS.
 * The key persists in `<dataDir>/dev-issuer-key.json` (so tokens survive restarts), or lives in memory.
 * `clientIds` restricts the client ids functions accept (tests of that check); any client otherwise.
 */
export function createLocalAuth(
  url: string,
  dataDir: string | undefined,
  clientIds?: readonly string[],
): LocalAuth {
  const keyFile = dataDir === undefined ? undefined : join(dataDir, devIssuerKeyFileName);
  let devIssuer: DevIssuer;
  try {
    devIssuer = new DevIssuer({ issuer: url, keyFile });
  } catch (error) {
    // A damaged key file: DevIssuer names it and says what to do, as `npm run token` prints it.
    if (!(error instanceof InvalidOptionsError)) throw error;
    throw new LocalStartError(error.problems.join('; '));
  }
  // Both ends of a signed call run in this process, so fresh secrets per start are all it needs.
  const serviceSecrets = { bookings: { current: randomBytes(32).toString('base64url') } };
  return {
    devIssuer,
    serviceSecrets,
    environment: {
      AUTH_ISSUER: devIssuer.issuer,
      // Any client (`*`) by default: the dev issuer is the only issuer and mints for any client id.
      AUTH_CLIENT_IDS: clientIds === undefined ? '*' : clientIds.join(','),
      AUTH_TOKEN_USE: 'access',
      SERVICE_SIGNING_SECRET_BOOKINGS: JSON.stringify(serviceSecrets.bookings),
    },
  };
}
