// Secrets in the rotation shape { current, previous }: given in the environment (local runs, tests) or
// read from Secrets Manager at run time (the stack), so a rotation reaches running functions without a deploy.
import { isUsableRotatingSecret, type RotatingSecret } from '../../middleware/auth/service-auth.js';
import { SecretAccessError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { lazySecretStore } from './secret-store.js';

/** Where a function finds one rotating secret. */
export type RotatingSecretSetting =
  | { readonly value: RotatingSecret }
  /**
   * A Secrets Manager secret holding the JSON, read when first needed and cached for 5 minutes; while
   * Secrets Manager is unreachable, the last value read stands in for up to an hour more (the store's defaults).
   */
  | { readonly secretArn: string };

/** Reads the secret; `refresh` after a value matched neither version (see SecretStore.getRotatingSecret). */
export type RotatingSecretReader = (refresh: boolean) => Promise<RotatingSecret>;

/**
 * A reader for one secret setting, through the function's {@link lazySecretStore}: nothing of Secrets
 * Manager loads before the first read.
 *
 * @example
 * const readSecret = rotatingSecretReader(
 *   { secretArn: process.env.VERIFICATION_LINK_SECRET_ARN as string },
 *   onEvent,
 * );
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
    if (!isUsableRotatingSecret(secret)) {
      throw new SecretAccessError(setting.secretArn, 'AWSCURRENT', 'not_rotating');
    }
    return secret;
  };
}
