// The function's one SecretStore (one cache for every secret it reads), loaded with its first read.
import type { SecretStore } from '../../middleware/config/secrets.js';
import type { SecurityEventListener } from '../../middleware/events.js';

let store: Promise<SecretStore> | undefined;

/**
 * The Secrets Manager client and Powertools Parameters load on the first call, so a function whose
 * secrets come from the environment, or that reads none on a given request, never pays for them at
 * cold start. The first caller's `onEvent` receives the `secret.accessed` events.
 */
export function lazySecretStore(onEvent?: SecurityEventListener): Promise<SecretStore> {
  store ??= import('../../middleware/config/secrets.js').then(
    ({ SecretStore }) => new SecretStore(onEvent ? { onEvent } : {}),
  );
  return store;
}
