// How option problems show what they got (middleware/options.ts): briefly, never an object's values, never half a character.
import { describe, expect, it } from 'vitest';
import { checkMethodsOption, shownValue } from '../middleware/options.js';

describe('shownValue', () => {
  it('names up to 8 keys of a plain object, and marks only a ninth and later as left out', () => {
    const keys = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'secret']));
    expect(shownValue(keys(8))).toBe('an object with keys k0, k1, k2, k3, k4, k5, k6, k7');
    expect(shownValue(keys(9))).toBe('an object with keys k0, k1, k2, k3, k4, k5, k6, k7, …');
    expect(shownValue(keys(9))).not.toContain('secret');
  });

  it('quotes a key holding a comma or a line break, so the list of keys reads as one', () => {
    expect(shownValue({ 'a,b': 1, 'line\nbreak': 2, plain: 3 })).toBe(
      'an object with keys "a,b", "line\\nbreak", plain',
    );
  });

  it('cuts a long string after 80 characters, never inside a surrogate pair', () => {
    expect(shownValue('x'.repeat(80))).toBe(JSON.stringify('x'.repeat(80)));
    const emojiAt80 = `${'x'.repeat(79)}\u{1F600}tail`;
    const shown = shownValue(emojiAt80);
    expect(shown).toBe(`"${'x'.repeat(79)}…"`);
    expect(shown.isWellFormed()).toBe(true);
  });
});

describe('checkMethodsOption', () => {
  it('takes a function carrying the methods asked for (a class with static ones), as a double may be', () => {
    const functionDouble = Object.assign(() => undefined, { verify: () => undefined });
    const problems: string[] = [];
    checkMethodsOption(problems, 'jwt', functionDouble, ['verify']);
    checkMethodsOption(problems, 'jwt', { verify: 'not a function' }, ['verify'], 'a JwtVerifier');
    expect(problems).toEqual(['jwt must have verify() (a JwtVerifier fits)']);
  });
});
