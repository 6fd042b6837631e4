// Properties of the field encryption over generated input: email normalisation for blind indexes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withAsciiDomain } from '../../middleware/email-address.js';
import { normalizeEmail } from '../../middleware/encryption/encryptor.js';
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
