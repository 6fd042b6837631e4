// Turns a field's value into typed plaintext bytes and back; the type tag is encrypted with the value.
import { DecryptionError, EncryptionError } from '../errors.js';

/** What a field may hold: text, bytes, or JSON-safe data (numbers, booleans, plain objects, arrays). */
export type FieldValue = string | number | boolean | Uint8Array | JsonObject | JsonArray;
export type JsonValue = string | number | boolean | null | JsonObject | JsonArray;
export interface JsonObject {
  readonly [key: string]: JsonValue;
}
export type JsonArray = readonly JsonValue[];

const stringTag = 0x73; // 's'
const bytesTag = 0x62; // 'b'
const jsonTag = 0x6a; // 'j'
const maxJsonDepth = 32;

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Whether JSON.stringify then JSON.parse gives the same value back (no NaN, Date, Map, undefined, array
 * holes...). -0 passes and reads back as 0, as JSON and DynamoDB's numbers have it: refusing it would
 * fail a write over `Math.round(-0.4)`.
 */
function isJsonSafe(value: unknown, depth: number): boolean {
  if (depth > maxJsonDepth) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) {
    // Indexed, not every(), which skips holes: a hole reads as undefined and is refused, where JSON
    // would write it as null.
    for (let index = 0; index < value.length; index += 1) {
      if (!isJsonSafe(value[index], depth + 1)) return false;
    }
    return true;
  }
  if (typeof value === 'object' && isPlainObject(value)) {
    return Object.values(value).every((item) => isJsonSafe(item, depth + 1));
  }
  return false;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array that is not JSON-safe';
  if (typeof value === 'object') return `${value.constructor?.name ?? 'an object'} that is not JSON-safe`;
  if (typeof value === 'number') return 'a non-finite number';
  return `a ${typeof value}`;
}

function tooLarge(field: string, length: number, maxValueBytes: number): EncryptionError {
  return new EncryptionError(
    'value_too_large',
    `Field ${field} is ${length} bytes, over the ${maxValueBytes}-byte limit`,
    {
      field,
    },
  );
}

/**
 * The plaintext of a field: one type byte then the value's bytes. Anything that would not come back
 * identical (NaN, bigint, Date, class instances, functions, arrays with holes) is refused, never
 * stored half-typed; -0 reads back as 0.
 * The plaintext is written at offset `before` of a buffer with `after` more bytes to spare, so the
 * encryptor seals it in place inside the stored field instead of allocating and copying it again.
 */
export function encodeValue(
  value: unknown,
  field: string,
  maxValueBytes: number,
  before = 0,
  after = 0,
): Buffer {
  if (typeof value === 'string') {
    // UTF-8 would turn a lone surrogate into U+FFFD: the value would not come back as it was.
    if (!value.isWellFormed()) {
      throw new EncryptionError('unsupported_value', `Field ${field} holds a string with a lone surrogate`, {
        field,
      });
    }
    // The common case, written straight after the tag: one allocation.
    const length = Buffer.byteLength(value, 'utf8');
    if (length > maxValueBytes) throw tooLarge(field, length, maxValueBytes);
    const out = Buffer.allocUnsafe(before + 1 + length + after);
    out[before] = stringTag;
    out.write(value, before + 1, 'utf8');
    return out;
  }
  let tag: number;
  let body: Uint8Array;
  if (value instanceof Uint8Array) {
    tag = bytesTag;
    body = value;
  } else if (
    typeof value !== 'function' &&
    typeof value !== 'symbol' &&
    isJsonSafe(value, 0) &&
    value !== null
  ) {
    tag = jsonTag;
    body = Buffer.from(JSON.stringify(value), 'utf8');
  } else {
    throw new EncryptionError('unsupported_value', `Field ${field} holds ${describe(value)}`, { field });
  }
  try {
    if (body.length > maxValueBytes) throw tooLarge(field, body.length, maxValueBytes);
    const out = Buffer.allocUnsafe(before + 1 + body.length + after);
    out[before] = tag;
    out.set(body, before + 1);
    return out;
  } finally {
    // The JSON text is ours and may sit in Buffer's shared pool: leave no plaintext behind in it (the
    // copy in `out` is sealed over in place by the encryptor).
    if (tag === jsonTag) body.fill(0);
  }
}

export function decodeValue(plaintext: Buffer, field: string): FieldValue {
  switch (plaintext[0]) {
    case stringTag:
      // toString with a start offset: no view of the body is made just to decode it.
      return plaintext.toString('utf8', 1);
    case bytesTag:
      return new Uint8Array(plaintext.subarray(1));
    case jsonTag:
      return JSON.parse(plaintext.toString('utf8', 1)) as FieldValue;
    default:
      throw new DecryptionError('malformed', `Field ${field} has an unknown value type`, { field });
  }
}
