// Secrets in the rotation shape { current, previous }: given in the environment (local runs, tests) or
// read from Secrets Manager at run time (the stack), so a rotation reaches running functions without a deploy.
import type { RotatingSecret } from '../../middleware/auth/service-auth.js';
import { SecretAccessError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { lazySecretStore } from './secret-store.js';

/** The shortest `current` or `previous` accepted, from the environment or from Secrets Manager. */
export const minRotatingSecretLength = 32;

/** Where a function finds one rotating secret. */
export type RotatingSecretSetting =
  | { readonly value: RotatingSecret }
  /** A Secrets Manager secret holding the JSON, read when first needed and cached for 5 minutes. */
  | { readonly secretArn: string };

/** Reads the secret; `refresh` after a value matched neither version (see SecretStore.getRotatingSecret). */
export type RotatingSecretReader = (refresh: boolean) => Promise<RotatingSecret>;

/**
 * A reader for one secret setting, through the function's {@link lazySecretStore}: nothing of Secrets
 * Manager loads before the first read.
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
    const secret = await (await lazySecretStore(onEvent)).getRotatingSecret(setting.secretArn, { refresh });
    // The same floor as the environment's form: an empty or short key (a value put by hand) would let
    // anyone compute the HMACs it protects.
    const tooShort = [secret.current, secret.previous].some(
      (value) => value !== undefined && value.length < minRotatingSecretLength,
    );
    if (tooShort) throw new SecretAccessError(setting.secretArn, 'AWSCURRENT', 'not_rotating');
    return secret;
  };
}
