// The SMTP relay's credentials from the stack's SmtpCredentials secret, read with the first email and cached like every secret.
import type { SecretStore } from '../../middleware/config/secrets.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import type { SmtpCredentials } from './transports.js';

/**
 * A reader of JSON `{ "username": "…", "password": "…" }` in a Secrets Manager secret. The client and
 * Powertools Parameters load on the first read; `refresh` (the relay refused the cached pair) fetches
 * the secret again, so a pair an operator replaced is picked up without a deploy.
 *
 * @example
 * new SmtpEmailTransport({ host, port, credentials: smtpCredentialsReader(secretArn, onEvent) });
 */
export function smtpCredentialsReader(
  secretArn: string,
  onEvent?: SecurityEventListener,
): (refresh: boolean) => Promise<SmtpCredentials> {
  let secrets: Promise<SecretStore> | undefined;
  return async (refresh) => {
    secrets ??= import('../../middleware/config/secrets.js').then(
      ({ SecretStore }) => new SecretStore(onEvent ? { onEvent } : {}),
    );
    const { username, password } = await (await secrets).getJsonSecret(secretArn, { forceFetch: refresh });
    if (typeof username !== 'string' || !username || typeof password !== 'string' || !password) {
      // Names the secret, never its content.
      throw new Error(`Secret ${secretArn} must hold JSON { "username": "…", "password": "…" }`);
    }
    return { username, password };
  };
}
