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

/** ASCII whitespace and printable characters: bytes that are typed text, not drawn at random. */
const isAsciiText = (byte: number) => (byte >= 0x09 && byte <= 0x0d) || (byte >= 0x20 && byte <= 0x7e);

/**
 * Whether a secret given as bytes can key an HMAC by the rule for text, when the bytes are ASCII text
 * (`new TextEncoder().encode(process.env.SECRET)`, jose's own idiom): 32 spaces are as blank as bytes
 * as they are as a string. Random bytes are ASCII text with odds below 1 in 10^12, and pass.
 */
export function isUsableSecretBytes(bytes: Uint8Array): boolean {
  return !bytes.every(isAsciiText) || isUsableSecretValue(Buffer.from(bytes).toString('latin1'));
}
