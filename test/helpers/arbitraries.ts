// Text for property tests: any UTF-16 unit, with the ones that trip up text handling drawn far more often than chance.
import fc from 'fast-check';

/**
 * Units a uniform draw over 65,536 would almost never give: lone surrogates, NUL and other controls,
 * line and paragraph separators, bidi controls, Unicode spaces, a BOM, and the ASCII that parsers
 * split on.
 */
const troublesomeUnits = [
  0x00, 0x09, 0x0a, 0x0d, 0x85, 0x9b, 0xa0, 0x1680, 0x2000, 0x200b, 0x2028, 0x2029, 0x202e, 0x2066, 0x3000,
  0xfeff, 0xfffd, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0x22, 0x25, 0x2e, 0x40, 0x5c,
].map((unit) => String.fromCharCode(unit));

/**
 * Text whose case mapping, normalisation or IDNA mapping is unusual: ẞ and İ change length when
 * case-mapped, K (Kelvin) and Å (Angstrom) are singletons NFC replaces, ﬀ and ǅ are compatibility and
 * title-case forms, Ⴀ is a capital IDNA refuses while it maps its lower case, U+0307 and U+A8C4 are
 * combining marks of different classes, and fullwidth letters and dots fold to ASCII under IDNA.
 */
const troublesomeText = [
  '😀',
  'ẞ',
  'ß',
  'İ',
  'K',
  'Å',
  'ﬀ',
  'ǅ',
  'Ω',
  'Ⴀ',
  '\u0307',
  '\ua8c4',
  'ｅ',
  '．',
  '＠',
  '。',
  'ü',
  'a',
  'A',
  '.',
  '@',
  '-',
  '%',
  'xn--',
];

/** One UTF-16 unit or short piece of text, troublesome ones weighted in. */
const piece = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
  fc.constantFrom(...troublesomeUnits),
  fc.constantFrom(...troublesomeText),
);

/** Any UTF-16 text of up to `maxPieces` pieces, lone surrogates included. */
export const anyText = (maxPieces = 40): fc.Arbitrary<string> =>
  fc.array(piece, { maxLength: maxPieces }).map((pieces) => pieces.join(''));

/** {@link anyText} with each lone surrogate replaced by U+FFFD, as text that went through UTF-8 would be. */
export const wellFormedText = (maxPieces = 40): fc.Arbitrary<string> =>
  anyText(maxPieces).map((text) => text.toWellFormed());
