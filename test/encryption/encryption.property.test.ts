// Properties of the field encryption over generated input: the value codec, email normalisation for blind indexes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withAsciiDomain } from '../../middleware/email-address.js';
import { normalizeEmail } from '../../middleware/encryption/encryptor.js';
import { decodeValue, encodeValue } from '../../middleware/encryption/value-codec.js';
import { EncryptionError } from '../../middleware/errors.js';
import { anyText } from '../helpers/arbitraries.js';

/** Domain labels from letters whose case, NFC or IDNA mapping is unusual, joined by any IDNA dot. */
const label = fc
  .array(fc.constantFrom(...'abz09-üößẞİКпри中国ＡｅΩﬀKႠⴀ', '\u0301', '\u0307', '\u200b', '\u00ad'), {
    minLength: 1,
    maxLength: 10,
  })
  .map((characters) => characters.join(''));
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('.', '。', '．'))
  .map(([labels, dot]) => labels.join(dot));
const address = fc.oneof(
  fc.tuple(fc.stringMatching(/^[A-Za-z0-9_'+.-]{1,12}$/), domain).map(([local, name]) => `${local}@${name}`),
  fc.tuple(anyText(10), domain).map(([local, name]) => `${local}@${name}`),
  anyText(30),
);

describe('normalizeEmail', () => {
  it('gives a form it maps to itself, so an address and its stored form share one index', () => {
    fc.assert(
      fc.property(address, (input) => {
        const normalised = normalizeEmail(input);
        expect(normalizeEmail(normalised)).toBe(normalised);
      }),
      { numRuns: 3000 },
    );
  });

  it('gives an address typed with a Unicode domain the index of its ASCII form', () => {
    fc.assert(
      fc.property(address, (input) => {
        expect(normalizeEmail(withAsciiDomain(input))).toBe(normalizeEmail(input));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('the value codec', () => {
  it('gives back exactly what it encodes, or refuses it with EncryptionError', () => {
    // JSON values (-0 among their numbers) for what it must take, anything else for what it must refuse.
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.anything({
        withBoxedValues: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withTypedArray: true,
        withSparseArray: true,
        withObjectString: true,
      }),
    );
    fc.assert(
      fc.property(value, (input) => {
        let encoded: Buffer;
        try {
          encoded = encodeValue(input, 'field', 65_536);
        } catch (error) {
          expect(error).toBeInstanceOf(EncryptionError);
          return;
        }
        // Strict: -0 is not 0, a hole is not null or undefined.
        expect(decodeValue(encoded, 'field')).toStrictEqual(input);
      }),
      { numRuns: 3000 },
    );
  });
});
