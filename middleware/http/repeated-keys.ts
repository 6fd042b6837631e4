// Finds a key repeated within one object of a JSON text, which JSON.parse accepts silently (the last value wins).

/** An object or array the scan is inside, and where in it: the key read last, or the element's index. */
interface OpenValue {
  readonly isObject: boolean;
  /**
   * The object's keys before its last one, made at its second key: most objects have one key or none,
   * and a Set for each made the scan cost as much as JSON.parse.
   */
  earlierKeys: Set<string> | undefined;
  /** Whether the object has had a key: `step` starts as `''`, which is a key too. */
  hasKey: boolean;
  step: string | number;
}

const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;

/** The index of the quote that closes the string opened at `start`: the first one not escaped. */
function closingQuote(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === backslash) backslashes++;
    // An odd run escapes the quote; an even one is escaped backslashes before it.
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * The path (keys and array indices from the top) of the first key an object of `text` names twice,
 * compared as JSON.parse reads them (`"a"` and `"\u0061"` are one key); undefined when none is. A
 * gateway, firewall or signer that keeps the first value of a repeated key sees another request than a
 * handler given the last one, which is what JSON.parse keeps.
 *
 * `text` must be JSON that JSON.parse accepted: the scan only follows strings and brackets, and does not
 * check the grammar. One pass over the text, with an explicit stack rather than recursion, so nesting as
 * deep as JSON.parse takes (hundreds of thousands of levels) cannot overflow the call stack.
 *
 * @example
 * firstRepeatedKey('{"a":[{"b":1,"b":2}]}'); // ['a', 0, 'b']
 */
export function firstRepeatedKey(text: string): (string | number)[] | undefined {
  const open: OpenValue[] = [];
  // Set after `{` and after a `,` inside an object: the next string there is a key.
  let atKey = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (char === quote) {
      const end = closingQuote(text, index);
      const inside = open[open.length - 1];
      if (atKey && inside?.isObject) {
        const token = text.slice(index + 1, end);
        const key = token.includes('\\') ? (JSON.parse(text.slice(index, end + 1)) as string) : token;
        if (inside.hasKey) {
          inside.earlierKeys ??= new Set();
          inside.earlierKeys.add(inside.step as string);
          if (inside.earlierKeys.has(key)) {
            inside.step = key;
            return open.map((value) => value.step);
          }
        }
        inside.step = key;
        inside.hasKey = true;
        atKey = false;
      }
      index = end;
    } else if (char === openBrace) {
      open.push({ isObject: true, earlierKeys: undefined, hasKey: false, step: '' });
      atKey = true;
    } else if (char === openBracket) {
      open.push({ isObject: false, earlierKeys: undefined, hasKey: false, step: 0 });
      atKey = false;
    } else if (char === closeBrace || char === closeBracket) {
      open.pop();
      atKey = false;
    } else if (char === comma) {
      const inside = open[open.length - 1] as OpenValue;
      if (inside.isObject) atKey = true;
      else inside.step = (inside.step as number) + 1;
    }
  }
  return undefined;
}
