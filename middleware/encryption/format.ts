// The stored formats: a record's data-key header and each encrypted field, versioned and length-checked.
import { createHash } from 'node:crypto';
import { DecryptionError, EncryptionError } from '../errors.js';

/**
 * A non-secret encryption context: string keys and values bound to every value as AAD (and, for the
 * key-context subset, to the data key itself). Typical members: `tenantId`, `table`, a record id.
 */
export type EncryptionContext = Readonly<Record<string, string>>;

/** Leading byte of a field value in format version 1. */
export const fieldFormatV1 = 0x01;
/** Leading byte of a data-key header in format version 1. */
export const headerFormatV1 = 0x01;

export const keyRefBytes = 4;
export const ivBytes = 12;
export const tagBytes = 16;
/** Version byte + key reference: the part of a field that precedes the IV and is bound as AAD. */
export const fieldPrefixBytes = 1 + keyRefBytes;
/** Bytes a field adds to its value: version, key reference, IV, type tag and GCM tag. */
export const fieldOverheadBytes = fieldPrefixBytes + ivBytes + 1 + tagBytes;

const maxContextEntries = 16;
const maxContextKeyLength = 128;
const maxContextValueLength = 1024;

/** A parsed data-key header: which provider and key wrapped the record's data key, and under what context. */
export interface DataKeyHeader {
  readonly providerId: string;
  readonly keyId: string;
  /** Names of the context members bound to the data key (the provider's encryption context). */
  readonly keyContextNames: readonly string[];
  readonly wrappedKey: Uint8Array;
}

function contextFailure(problem: string, failure: 'encrypt' | 'decrypt'): Error {
  const message = `Invalid encryption context: ${problem}`;
  return failure === 'encrypt'
    ? new EncryptionError('invalid_context', message)
    : new DecryptionError('invalid_context', message);
}

/**
 * Sorts a context's (at most 16) member names in place, in the code-unit order of the default sort: an
 * insertion sort, because Array.prototype.sort's set-up costs more than sorting two or three names.
 */
function sortNames(names: string[]): void {
  for (let index = 1; index < names.length; index += 1) {
    const name = names[index] as string;
    let at = index - 1;
    while (at >= 0 && (names[at] as string) > name) {
      names[at + 1] = names[at] as string;
      at -= 1;
    }
    names[at + 1] = name;
  }
}

/**
 * The context's canonical form: members sorted by name, each written `<length>:<name><length>:<value>`
 * (lengths in UTF-16 code units), so equal contexts give equal text whatever their key order and no
 * two contexts give the same text. Throws the given error kind unless the context is strings only.
 */
export function canonicalContext(context: unknown, failure: 'encrypt' | 'decrypt'): string {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) {
    throw contextFailure('the encryption context must be an object of strings', failure);
  }
  const names = Object.keys(context);
  if (names.length > maxContextEntries) {
    throw contextFailure(`the encryption context has more than ${maxContextEntries} members`, failure);
  }
  if (names.length > 1) sortNames(names);
  let canonical = '';
  for (const name of names) {
    const value: unknown = (context as Record<string, unknown>)[name];
    if (name.length === 0 || name.length > maxContextKeyLength) {
      throw contextFailure('an encryption context key is empty or too long', failure);
    }
    if (typeof value !== 'string')
      throw contextFailure(`encryption context member ${name} is not a string`, failure);
    if (value.length > maxContextValueLength) {
      throw contextFailure(`encryption context member ${name} is too long`, failure);
    }
    // The AAD and KMS take the context as UTF-8, where a lone surrogate becomes U+FFFD: two contexts
    // would be one.
    if (!name.isWellFormed() || !value.isWellFormed()) {
      throw contextFailure('an encryption context member holds a lone surrogate', failure);
    }
    canonical += `${name.length}:${name}${value.length}:${value}`;
  }
  return canonical;
}

/**
 * The canonical form of just the members named by `names` (sorted, as {@link canonicalContext} writes
 * them), without building the sub-context: the data-key cache key on every call.
 */
export function canonicalPick(
  context: EncryptionContext,
  sortedNames: readonly string[],
  failure: 'encrypt' | 'decrypt',
): string {
  let canonical = '';
  for (const name of sortedNames) {
    const value = ownMember(context, name);
    if (value === undefined) throw missingMember(name, failure);
    canonical += `${name.length}:${name}${value.length}:${value}`;
  }
  return canonical;
}

/**
 * The context's own member `name`, never one it inherits: the names come from a stored header, and a
 * forged one naming `toString` or `constructor` must read as missing, not as a function.
 */
export function ownMember(context: EncryptionContext, name: string): string | undefined {
  return Object.hasOwn(context, name) ? context[name] : undefined;
}

function missingMember(name: string, failure: 'encrypt' | 'decrypt'): Error {
  const message = `The encryption context lacks ${name}, which the data key is bound to`;
  return failure === 'encrypt'
    ? new EncryptionError('invalid_context', message)
    : new DecryptionError('invalid_context', message);
}

/** The members of `context` named by `names`; a missing member is an error of the given kind. */
export function pickContext(
  context: EncryptionContext,
  names: readonly string[],
  failure: 'encrypt' | 'decrypt',
): EncryptionContext {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = ownMember(context, name);
    if (value === undefined) throw missingMember(name, failure);
    picked[name] = value;
  }
  return picked;
}

function writeUint16(target: Buffer, offset: number, value: number): number {
  target.writeUInt16BE(value, offset);
  return offset + 2;
}

/**
 * Header v1: `01 | u8 len providerId | u16 len keyId | u8 count, (u8 len name)* | u16 len wrappedKey`.
 * One per record, however many fields the record encrypts.
 */
export function encodeHeader(header: DataKeyHeader): Buffer {
  const provider = Buffer.from(header.providerId, 'utf8');
  const keyId = Buffer.from(header.keyId, 'utf8');
  const names = header.keyContextNames.map((name) => Buffer.from(name, 'utf8'));
  if (
    provider.length > 0xff ||
    keyId.length > 0xffff ||
    names.length > 0xff ||
    names.some((name) => name.length > 0xff) ||
    header.wrappedKey.length > 0xffff
  ) {
    throw new EncryptionError('invalid_context', 'The data-key header does not fit format version 1');
  }
  const size =
    1 + 1 + provider.length + 2 + keyId.length + 1 + names.reduce((sum, name) => sum + 1 + name.length, 0);
  const out = Buffer.alloc(size + 2 + header.wrappedKey.length);
  let offset = out.writeUInt8(headerFormatV1, 0);
  offset = out.writeUInt8(provider.length, offset);
  offset += provider.copy(out, offset);
  offset = writeUint16(out, offset, keyId.length);
  offset += keyId.copy(out, offset);
  offset = out.writeUInt8(names.length, offset);
  for (const name of names) {
    offset = out.writeUInt8(name.length, offset);
    offset += name.copy(out, offset);
  }
  offset = writeUint16(out, offset, header.wrappedKey.length);
  out.set(header.wrappedKey, offset);
  return out;
}

/** A bounds-checked reader: running past the end is a truncated value, never an out-of-range read. */
class Reader {
  private offset = 0;

  constructor(private readonly bytes: Buffer) {}

  private need(count: number): void {
    if (this.offset + count > this.bytes.length) {
      throw new DecryptionError('truncated', 'The data-key header is truncated');
    }
  }

  uint8(): number {
    this.need(1);
    const value = this.bytes.readUInt8(this.offset);
    this.offset += 1;
    return value;
  }

  uint16(): number {
    this.need(2);
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  take(count: number): Buffer {
    this.need(count);
    const slice = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }

  get atEnd(): boolean {
    return this.offset === this.bytes.length;
  }
}

export function decodeHeader(bytes: Buffer): DataKeyHeader {
  const reader = new Reader(bytes);
  const version = reader.uint8();
  if (version !== headerFormatV1) {
    throw new DecryptionError('unknown_version', `Unknown data-key header format version ${version}`);
  }
  const providerId = reader.take(reader.uint8()).toString('utf8');
  const keyId = reader.take(reader.uint16()).toString('utf8');
  const nameCount = reader.uint8();
  const keyContextNames: string[] = [];
  for (let index = 0; index < nameCount; index += 1) {
    keyContextNames.push(reader.take(reader.uint8()).toString('utf8'));
  }
  const wrappedKey = reader.take(reader.uint16());
  if (!reader.atEnd) throw new DecryptionError('malformed', 'The data-key header has trailing bytes');
  if (providerId.length === 0 || keyId.length === 0 || wrappedKey.length === 0) {
    throw new DecryptionError('malformed', 'The data-key header has an empty member');
  }
  return { providerId, keyId, keyContextNames, wrappedKey };
}

/** The 4-byte reference by which fields name their record's header: the start of its SHA-256. */
export function keyRefOf(headerBytes: Uint8Array): Buffer {
  return createHash('sha256').update(headerBytes).digest().subarray(0, keyRefBytes);
}

/** Version byte + key reference: the first bytes of every field under the data key `keyRef` names. */
export function fieldPrefix(keyRef: Uint8Array): Buffer {
  const prefix = Buffer.alloc(fieldPrefixBytes);
  prefix.writeUInt8(fieldFormatV1, 0);
  prefix.set(keyRef, 1);
  return prefix;
}

/**
 * Checks a stored field v1, `01 | keyRef(4) | IV(12) | ciphertext(n + 1: type tag + value) | GCM tag(16)`:
 * its version, its length, and that it names the record's data key (its first bytes equal `prefix`).
 * Allocates nothing: the caller takes the IV, ciphertext and tag as views at the fixed offsets.
 */
export function checkField(bytes: Buffer, prefix: Buffer, field: string): void {
  if (bytes.length === 0) throw new DecryptionError('truncated', `Field ${field} is empty`, { field });
  const version = bytes[0] as number;
  if (version !== fieldFormatV1) {
    throw new DecryptionError('unknown_version', `Field ${field} has unknown format version ${version}`, {
      field,
    });
  }
  if (bytes.length < fieldOverheadBytes) {
    throw new DecryptionError('truncated', `Field ${field} is truncated`, { field });
  }
  for (let index = 1; index < fieldPrefixBytes; index += 1) {
    if (bytes[index] !== prefix[index]) {
      throw new DecryptionError(
        'key_mismatch',
        `Field ${field} was not encrypted under this record's data key`,
        {
          field,
        },
      );
    }
  }
}

/** The shortest base64url text of a stored field: {@link fieldOverheadBytes} bytes. */
const minFieldTextLength = Math.ceil((fieldOverheadBytes * 4) / 3);
/** Base64url `A`: the first character of any text whose first byte is below 4, as the version byte is. */
const base64UrlA = 0x41;

/**
 * The version byte and key reference a value starts with (as latin1 text) when it is long enough and
 * versioned as a stored field v1, binary or base64url; undefined when it cannot be one. Only a
 * candidate: it is a field when the key reference is that of a header the caller knows.
 */
export function storedFieldPrefix(value: unknown): string | undefined {
  if (value instanceof Uint8Array) {
    if (value.length < fieldOverheadBytes || value[0] !== fieldFormatV1) return undefined;
    return Buffer.from(value.buffer, value.byteOffset, fieldPrefixBytes).toString('latin1');
  }
  if (typeof value === 'string' && value.length >= minFieldTextLength && value.charCodeAt(0) === base64UrlA) {
    // Eight characters are six bytes: the version byte and key reference, whole.
    const start = Buffer.from(value.slice(0, 8), 'base64url');
    return start[0] === fieldFormatV1 ? start.toString('latin1', 0, fieldPrefixBytes) : undefined;
  }
  return undefined;
}

/**
 * The additional authenticated data of one field: its prefix (version + key reference), its path
 * (u16 length + UTF-8) and the canonical context (UTF-8). A ciphertext moved to another field, record
 * or tenant fails authentication. Built with TypedArray#set: no intermediate views.
 */
export function fieldAad(prefix: Buffer, path: Buffer, context: Buffer): Buffer {
  const aad = Buffer.allocUnsafe(fieldPrefixBytes + 2 + path.length + context.length);
  aad.set(prefix, 0);
  aad[fieldPrefixBytes] = path.length >>> 8;
  aad[fieldPrefixBytes + 1] = path.length & 0xff;
  aad.set(path, fieldPrefixBytes + 2);
  aad.set(context, fieldPrefixBytes + 2 + path.length);
  return aad;
}
