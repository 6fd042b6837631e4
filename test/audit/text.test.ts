// Cutting text for logs, audit events and queue attributes: never between the two halves of a surrogate pair.
import { describe, expect, it } from 'vitest';
import { headOf, truncated } from '../../middleware/text.js';

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
