// The SMTP relay's credentials from the stack's SmtpCredentials secret, read before each email through the function's secret cache.
import { ConfigError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { lazySecretStore } from '../shared/secret-store.js';
import type { SmtpCredentials } from './transports.js';

/**
 * A reader of JSON `{ "username": "…", "password": "…" }` in a Secrets Manager secret, through the
 * function's {@link lazySecretStore} (cached 5 minutes), so a pair an operator replaced is picked up
 * without a deploy; `refresh` (the relay refused the cached pair) fetches the secret past the cache.
 *
 * @example
 * new SmtpEmailTransport({ host, port, credentials: smtpCredentialsReader(secretArn, onEvent) });
 */
export function smtpCredentialsReader(
  secretArn: string,
  onEvent?: SecurityEventListener,
): (refresh: boolean) => Promise<SmtpCredentials> {
  return async (refresh) => {
    const secrets = await lazySecretStore(onEvent);
    const { username, password } = await secrets.getJsonSecret(secretArn, { forceFetch: refresh });
    if (typeof username !== 'string' || !username || typeof password !== 'string' || !password) {
      // Names the secret, never its content.
      throw new ConfigError([
        {
          key: 'SMTP_CREDENTIALS_SECRET_ARN',
          message: `secret ${secretArn} must hold JSON { "username": "…", "password": "…" }`,
        },
      ]);
    }
    return { username, password };
  };
}
