// Secrets in the rotation shape { current, previous }: given in the environment (local runs, tests) or
// read from Secrets Manager at run time (the stack), so a rotation reaches running functions without a deploy.
import type { RotatingSecret } from '../../middleware/auth/service-auth.js';
import type { SecretStore } from '../../middleware/config/secrets.js';
import type { SecurityEventListener } from '../../middleware/events.js';

/** Where a function finds one rotating secret. */
export type RotatingSecretSetting =
  | { readonly value: RotatingSecret }
  /** A Secrets Manager secret holding the JSON, read when first needed and cached for 5 minutes. */
  | { readonly secretArn: string };

/** Reads the secret; `refresh` after a value matched neither version (see SecretStore.getRotatingSecret). */
export type RotatingSecretReader = (refresh: boolean) => Promise<RotatingSecret>;

let secretStore: Promise<SecretStore> | undefined;

/**
 * A reader for one secret setting. The Secrets Manager client and Powertools Parameters load on the
 * first read, so a function whose secrets come from the environment, or that reads none on a given
 * request, never pays for them at cold start.
 *
 * @example
 * const readSecret = rotatingSecretReader({ secretArn: process.env.VERIFICATION_LINK_SECRET_ARN }, onEvent);
 * const { current } = await readSecret(false);
 */
export function rotatingSecretReader(
  setting: RotatingSecretSetting,
  onEvent?: SecurityEventListener,
): RotatingSecretReader {
  if ('value' in setting) return async () => setting.value;
  return async (refresh) => {
    secretStore ??= import('../../middleware/config/secrets.js').then(
      ({ SecretStore }) => new SecretStore(onEvent ? { onEvent } : {}),
    );
    return (await secretStore).getRotatingSecret(setting.secretArn, { refresh });
  };
}
