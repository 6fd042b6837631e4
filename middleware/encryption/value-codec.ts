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

/** Whether JSON.stringify then JSON.parse gives the same value back (no NaN, Date, Map, undefined...). */
function isJsonSafe(value: unknown, depth: number): boolean {
  if (depth > maxJsonDepth) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJsonSafe(item, depth + 1));
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
 * identical (NaN, bigint, Date, class instances, functions) is refused, never stored half-typed.
 */
export function encodeValue(value: unknown, field: string, maxValueBytes: number): Buffer {
  if (typeof value === 'string') {
    // The common case, written straight after the tag: one allocation.
    const length = Buffer.byteLength(value, 'utf8');
    if (length > maxValueBytes) throw tooLarge(field, length, maxValueBytes);
    const plaintext = Buffer.allocUnsafe(length + 1);
    plaintext[0] = stringTag;
    plaintext.write(value, 1, 'utf8');
    return plaintext;
  }
  let tag: number;
  let body: Buffer;
  if (value instanceof Uint8Array) {
    tag = bytesTag;
    body = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
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
  if (body.length > maxValueBytes) throw tooLarge(field, body.length, maxValueBytes);
  const plaintext = Buffer.allocUnsafe(body.length + 1);
  plaintext[0] = tag;
  body.copy(plaintext, 1);
  return plaintext;
}

export function decodeValue(plaintext: Buffer, field: string): FieldValue {
  const body = plaintext.subarray(1);
  switch (plaintext[0]) {
    case stringTag:
      return body.toString('utf8');
    case bytesTag:
      return new Uint8Array(body);
    case jsonTag:
      return JSON.parse(body.toString('utf8')) as FieldValue;
    default:
      throw new DecryptionError('malformed', `Field ${field} has an unknown value type`, { field });
  }
}
