// The floor an HMAC secret of rotation must clear: one definition for the verifiers, the sample's
// environment and the rotation function, free of dependencies so that each bundle can carry it.

/** The fewest characters other than whitespace a rotating HMAC secret's `current` or `previous` may hold. */
export const minRotatingSecretLength = 32;

/**
 * Whether one value can key an HMAC: at least 32 characters other than whitespace. Whitespace adds
 * nothing an attacker must guess, so 32 spaces, or a short secret padded with them, would let anyone
 * compute the HMACs as an empty one would.
 */
export function isUsableSecretValue(value: string): boolean {
  return value.replace(/\s/gu, '').length >= minRotatingSecretLength;
}
