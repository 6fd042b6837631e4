import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstRepeatedKey } from '../../middleware/http/repeated-keys.js';

/** `key` as a JSON string token with every UTF-16 unit escaped (`a` is `"\u0061"`). */
function fullyEscaped(key: string): string {
  let escaped = '';
  for (let index = 0; index < key.length; index++) {
    escaped += `\\u${key.charCodeAt(index).toString(16).padStart(4, '0')}`;
  }
  return `"${escaped}"`;
}

/** Any UTF-16 text, lone surrogates, quotes, backslashes and control characters included. */
const anyKey = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 16 })
  .map((units) => String.fromCharCode(...units));

describe('firstRepeatedKey', () => {
  it.each([
    ['{"a":1,"a":2}', ['a']],
    ['{"a":1,"b":{"c":1,"d":2,"c":3}}', ['b', 'c']],
    ['[0,{"x":1},[1,2,{"k":1,"k":1}]]', [2, 2, 'k']],
    ['{"a":1,"\\u0061":2}', ['a']],
    ['{"\\"":1,"\\u0022":2}', ['"']],
    ['{"a\\\\":1,"a\\u005c":2}', ['a\\']],
    ['{"":1,"":2}', ['']],
    ['{"__proto__":1,"__proto__":2}', ['__proto__']],
    [' { "a" : [ ] , "b" : { } , "a" : null } ', ['a']],
  ])('finds the repeated key of %s and the path to it', (text, path) => {
    expect(firstRepeatedKey(text)).toEqual(path);
  });

  it.each([
    '{"a":1,"A":2}',
    '[{"a":1},{"a":2}]',
    '{"a":{"a":{"a":1}},"b":{"a":2}}',
    '{"a":{},"b":[],"c":{"d":1}}',
    // A key written with escaped backslashes is another key than one with an escaped quote.
    '{"a\\\\":1,"a\\"":2}',
    // Braces, brackets, commas and quotes inside strings are text, not structure.
    '{"s":"{\\"a\\":1,\\"a\\":2}","t":"[,,]","a":"a"}',
    '{"a":"a","b":"a"}',
    '"a"',
    '[]',
    '1',
  ])('finds no repeated key in %s', (text) => {
    expect(firstRepeatedKey(text)).toBeUndefined();
  });

  it('reads nesting far deeper than the call stack without recursing', () => {
    const depth = 100_000;
    const arrays = `${'['.repeat(depth)}{"k":1,"k":2}${']'.repeat(depth)}`;
    const arraysPath = firstRepeatedKey(arrays);
    expect(arraysPath).toHaveLength(depth + 1);
    expect(arraysPath?.at(-1)).toBe('k');
    const objects = `${'{"a":'.repeat(depth)}{"k":1,"k":2}${'}'.repeat(depth)}`;
    expect(firstRepeatedKey(objects)).toEqual([...Array(depth).fill('a'), 'k']);
    expect(firstRepeatedKey(`${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`)).toBeUndefined();
  });

  it('finds none in any JSON text JSON.stringify writes, compact or indented', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        expect(firstRepeatedKey(JSON.stringify(value))).toBeUndefined();
        expect(firstRepeatedKey(JSON.stringify(value, null, 2))).toBeUndefined();
      }),
    );
  });

  it('finds any key repeated with its every character escaped, after any value', () => {
    fc.assert(
      fc.property(anyKey, fc.jsonValue({ maxDepth: 4 }), (key, value) => {
        const text = `{${JSON.stringify(key)}:0,"${key === 'x' ? 'y' : 'x'}":${JSON.stringify(value)},${fullyEscaped(key)}:1}`;
        expect((JSON.parse(text) as Record<string, unknown>)[key]).toBe(1);
        expect(firstRepeatedKey(text)).toEqual([key]);
      }),
    );
  });
});
