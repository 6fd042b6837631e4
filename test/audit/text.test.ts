// Cutting text for logs, audit events and queue attributes: never between the two halves of a surrogate pair;
// escaping what a log viewer would act on.
import { describe, expect, it } from 'vitest';
import { escapedForLog, headOf, truncated } from '../../middleware/text.js';

const emoji = '\u{1F600}';

describe('headOf', () => {
  it('drops the first half of a surrogate pair the cut would split', () => {
    expect(headOf(`ab${emoji}c`, 3)).toBe('ab');
  });

  it('keeps a whole surrogate pair that ends exactly at the cut', () => {
    expect(headOf(`ab${emoji}c`, 4)).toBe(`ab${emoji}`);
  });

  it('cuts at the length when the last kept unit is U+D7FF, the code point just below the surrogates', () => {
    expect(headOf('ab\uD7FFc', 3)).toBe('ab\uD7FF');
  });

  it('returns text no longer than the length as it is', () => {
    expect(headOf(`ab${emoji}`, 4)).toBe(`ab${emoji}`);
  });
});

describe('truncated', () => {
  it('counts the characters dropped after a surrogate pair kept whole', () => {
    expect(truncated(`${'a'.repeat(8)}${emoji}tail`, 10)).toBe(
      `${'a'.repeat(8)}${emoji}…[truncated 4 chars]`,
    );
  });
});

describe('escapedForLog', () => {
  it.each([
    ['a C0 control', 'a\u001B[31mb', 'a\\u{1B}[31mb'],
    ['DEL', 'a\u007Fb', 'a\\u{7F}b'],
    ['a C1 control', 'a\u0085b\u009B', 'a\\u{85}b\\u{9B}'],
    ['a bidi override', 'abc\u202Efdp.exe', 'abc\\u{202E}fdp.exe'],
    ['a bidi isolate and a mark', '\u2067x\u200E', '\\u{2067}x\\u{200E}'],
    ['the line and paragraph separators', 'a\u2028b\u2029', 'a\\u{2028}b\\u{2029}'],
  ])('writes %s as its code point', (_what, text, escaped) => {
    expect(escapedForLog(text)).toBe(escaped);
  });

  it('leaves text without them as it is, other non-ASCII and astral characters too', () => {
    for (const text of ['/bookings/abc', 'Mozilla/5.0 (X11)', `café ${emoji} 中国`, 'a\\u{202E}b', '']) {
      expect(escapedForLog(text)).toBe(text);
    }
  });
});
