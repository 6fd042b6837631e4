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

/**
 * The reference: a recursive-descent reading of JSON text JSON.parse accepted, giving the path of the
 * first key an object names twice, in text order, with keys compared as JSON.parse decodes them.
 */
function repeatedKeyByDescent(text: string): (string | number)[] | undefined {
  let at = 0;
  const skipSpace = () => {
    while (' \t\n\r'.includes(text.charAt(at)) && at < text.length) at++;
  };
  const readString = (): string => {
    const start = at++;
    while (text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    at++;
    return JSON.parse(text.slice(start, at)) as string;
  };
  const readValue = (path: (string | number)[]): (string | number)[] | undefined => {
    skipSpace();
    if (text[at] === '"') {
      readString();
      return undefined;
    }
    if (text[at] === '{' || text[at] === '[') {
      const isObject = text[at++] === '{';
      const seen = new Set<string>();
      skipSpace();
      for (let index = 0; text[at] !== (isObject ? '}' : ']'); index++) {
        let step: string | number = index;
        if (isObject) {
          skipSpace();
          step = readString();
          if (seen.has(step)) return [...path, step];
          seen.add(step);
          skipSpace();
          at++; // the colon
        }
        const found = readValue([...path, step]);
        if (found) return found;
        skipSpace();
        if (text[at] === ',') at++;
      }
      at++;
      return undefined;
    }
    while (at < text.length && !',]} \t\n\r'.includes(text.charAt(at))) at++;
    return undefined;
  };
  return readValue([]);
}

/** JSON text with keys that repeat, escaped or not, at any depth, and strings holding what the scan looks for. */
const repeatingJson: fc.Arbitrary<string> = fc.letrec<{ value: string; object: string; array: string }>(
  (tie) => {
    const key = fc.oneof(
      fc.constantFrom('a', 'b', '', '"', '\\', 'a"', '{', '}', '[', ',', ':'),
      fc.string({ maxLength: 3 }),
    );
    const space = fc.constantFrom('', ' ', '\n', '\t ');
    return {
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('1', 'true', 'null', '"x,{}[]"', '"\\\\"', '"\\""'),
        tie('object'),
        tie('array'),
      ),
      object: fc
        .array(fc.tuple(key, fc.boolean(), tie('value'), space, space), { maxLength: 4 })
        .map(
          (members) =>
            `{${members.map(([name, escaped, value, before, after]) => `${before}${escaped ? fullyEscaped(name) : JSON.stringify(name)}${after}:${before}${value}${after}`).join(',')}}`,
        ),
      array: fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(' , ')}]`),
    };
  },
).value;

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

  it('finds the repeated key a recursive-descent reading finds, in generated JSON', () => {
    fc.assert(
      fc.property(repeatingJson, (text) => {
        JSON.parse(text);
        expect(firstRepeatedKey(text)).toEqual(repeatedKeyByDescent(text));
      }),
      { numRuns: 3000 },
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
