// Envelope field encryption: one data key per record, AES-256-GCM per field, field and context bound as AAD.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomFillSync,
} from 'node:crypto';
import { withAsciiDomain } from '../email-address.js';
import {
  assertNoProblems,
  DecryptionError,
  EncryptionError,
  type EncryptionFailureReason,
  isUnreadableRecord,
} from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import {
  arrayOption,
  checkFunctionOption,
  definedOnly,
  type Resolved,
  requireOptionsObject,
  shownValue,
} from '../options.js';
import {
  canonicalContext,
  canonicalPick,
  checkField,
  type DataKeyHeader,
  decodeHeader,
  type EncryptionContext,
  encodeHeader,
  fieldAad,
  fieldPrefix,
  fieldPrefixBytes,
  ivBytes,
  keyRefOf,
  ownMember,
  pickContext,
  storedFieldPrefix,
  tagBytes,
} from './format.js';
import { type Acquired, KeyCache } from './key-cache.js';
import { isFailureReported, type KeyProvider, markFailureReported } from './key-provider.js';
import {
  copyRecord,
  copyRecordWithout,
  type FieldPath,
  isRecord,
  parsePaths,
  readPath,
  writePaths,
} from './paths.js';
import type { DecryptedRecord, EncryptedRecord, FieldPathOf } from './record-types.js';
import { decodeValue, encodeValue } from './value-codec.js';

/** Seed 001's default sensitive fields. */
export const defaultSensitiveFields = [
  'password_hash',
  'email',
  'phone',
  'credit_card',
  'ssn',
  'api_key',
  'secret',
] as const;

export interface DataKeyCacheOptions {
  /** How long a data key (and an unwrapped one) is reused, in ms; 0 turns caching off. @default 300000 (5 min) */
  readonly maxAgeMs?: number | undefined;
  /**
   * How many values one data key may encrypt before a new one is generated. AES-GCM with random
   * 96-bit IVs stays far below the 2^32 NIST bound at this default. A field list longer than this is
   * refused: a record's values share one data key.
   * @default 1000000
   */
  readonly maxMessages?: number | undefined;
  /** Data keys (and unwrapped keys) kept, each cache; least recently used evicted first. @default 1000 */
  readonly maxEntries?: number | undefined;
}

export interface EncryptorOptions {
  /** Wraps and unwraps data keys: `KmsKeyProvider` in AWS, `LocalKeyProvider` locally. */
  readonly keyProvider: KeyProvider;
  /**
   * The context members bound to the data key itself (the KMS encryption context) and so the data-key
   * cache key; every member of the context is always bound to each value as AAD. Naming only
   * `tenantId` gives one data key per tenant per maxAge instead of one per record.
   * @default every member of the context
   */
  readonly keyContextFields?: readonly string[] | undefined;
  /** Record attribute that holds the record's wrapped data key. @default '_dataKey' */
  readonly headerField?: string | undefined;
  /**
   * How encrypted values are returned: `binary` (Uint8Array, a DynamoDB B attribute, the compact
   * default) or `base64url` strings for JSON transports. Decryption accepts both.
   * @default 'binary'
   */
  readonly encoding?: 'binary' | 'base64url' | undefined;
  /** Largest plaintext per field, in bytes (DynamoDB items stop at 400 KB). @default 65536 */
  readonly maxValueBytes?: number | undefined;
  /** Data-key cache limits. @default { maxAgeMs: 300000, maxMessages: 1000000, maxEntries: 1000 } */
  readonly cache?: DataKeyCacheOptions | undefined;
  /**
   * Receives `dataKey.cacheHit` and `decryption.failed` events (the provider reports `kms.request`).
   * @default none
   */
  readonly onEvent?: SecurityEventListener | undefined;
}

export interface BlindIndexOptions {
  /** Which index this is (e.g. `user-email`); each name gets its own derived key. */
  readonly name: string;
  /** Canonicalises the value first, e.g. lower-casing an email. @default NFC normalisation */
  readonly normalize?: ((value: string) => string) | undefined;
  /** Separates equal values of different scopes (e.g. tenants), so indexes do not correlate across them. @default '' */
  readonly scope?: string | undefined;
  /** Bytes of HMAC-SHA256 kept; fewer means more false matches and less leaked. @default 16 */
  readonly bytes?: number | undefined;
}

/** How {@link Encryptor.decryptFields} and {@link Encryptor.reencryptFields} read a record. */
export interface DecryptFieldsOptions<F extends string = string> {
  /**
   * Listed fields that records written before they joined the encrypted list hold as given: a value not
   * sealed under the record's own data key (by its key reference) is returned as it is instead of refused.
   * For the time it takes to migrate those records (see `reencryptFields`) after adding a field to the
   * list; while it is given, whoever can write the table can put any value of their own in these fields.
   * A value sealed under the record's data key is decrypted and must authenticate, as always. @default []
   */
  readonly acceptPlaintext?: readonly F[] | undefined;
}

export interface WarmOptions {
  /** Contexts to generate data keys for now (only their key-context members matter). @default [] */
  readonly contexts?: readonly EncryptionContext[] | undefined;
  /** Blind-index names to derive keys for now. @default [] */
  readonly blindIndexes?: readonly string[] | undefined;
}

/** A header as parsed once: its members, the prefix its fields carry, and its cache identity. */
interface ParsedHeader {
  /** A private copy of the header's bytes (the caller's buffer may change after we parsed it). */
  readonly bytes: Buffer;
  readonly header: DataKeyHeader;
  /** Version byte + key reference: the first bytes of every field under this header's data key. */
  readonly prefix: Buffer;
  /** The prefix as latin1 text, as {@link storedFieldPrefix} gives it. */
  readonly prefixText: string;
  /** A short id for this header within this encryptor, used in the unwrapped-key cache key. */
  readonly id: number;
  /** The key-context values of the last unwrap, and its cache key: a repeat builds no new string. */
  lastKeyValues: readonly string[] | undefined;
  lastCacheKey: string;
}

/**
 * The last context an encryptor was given, as its own copy of the member names and values (in the
 * caller's key order) with the canonical form and its UTF-8 bytes. A record's encrypt and decrypt, or
 * a run of records under one context, compare the members instead of serialising them again.
 */
interface ContextMemo {
  readonly names: readonly string[];
  readonly values: readonly string[];
  readonly canonical: string;
  readonly bytes: Buffer;
  /**
   * The AADs built under this context for the fields of one data key (`aadPrefix`), by field path:
   * reading back a record just written, or rewriting one, builds none again. At most
   * {@link maxMemoAads} of at most {@link maxMemoAadBytes} each; never leaves the encryptor (setAAD
   * copies it).
   */
  aadPrefix: Buffer | undefined;
  readonly aadPaths: FieldPath[];
  readonly aads: Buffer[];
}

const maxMemoAads = 32;
const maxMemoAadBytes = 2048;

/** The data-key cache key of the last encryption, by its key-context values (see {@link ContextMemo}). */
interface KeyContextMemo {
  readonly values: readonly string[];
  readonly cacheKey: string;
}

/**
 * Random IVs come from a pool refilled from the CSPRNG 1024 IVs (12 KiB) at a time: one call per pool
 * instead of per value (a randomFillSync call costs microseconds whatever its size, as much as the
 * rest of sealing a small field). Every IV is still 96 fresh random bits, each handed out once.
 */
const ivPool = Buffer.allocUnsafe(ivBytes * 1024);
let ivPoolOffset = ivPool.length;

/** Writes the next IV at `offset` of `target`, byte by byte: no view of the pool is made per IV. */
function nextIv(target: Buffer, offset: number): void {
  if (ivPoolOffset === ivPool.length) {
    randomFillSync(ivPool);
    ivPoolOffset = 0;
  }
  for (let index = 0; index < ivBytes; index += 1)
    target[offset + index] = ivPool[ivPoolOffset + index] as number;
  ivPoolOffset += ivBytes;
}

/** Where a field's parts start: version + key reference, then the IV, then the sealed value. */
const ivStart = fieldPrefixBytes;
const sealedStart = fieldPrefixBytes + ivBytes;

function newContextMemo(names: readonly string[], values: readonly string[], canonical: string): ContextMemo {
  const bytes = Buffer.from(canonical, 'utf8');
  return { names, values, canonical, bytes, aadPrefix: undefined, aadPaths: [], aads: [] };
}

/** The AAD of the field at `path` under the data key `prefix` names and the memo's context. */
function aadOf(memo: ContextMemo, prefix: Buffer, path: FieldPath): Buffer {
  if (memo.aadPrefix !== prefix) {
    memo.aadPrefix = prefix;
    memo.aadPaths.length = 0;
    memo.aads.length = 0;
  }
  const index = memo.aadPaths.indexOf(path);
  if (index >= 0) return memo.aads[index] as Buffer;
  const aad = fieldAad(prefix, path.bytes, memo.bytes);
  if (memo.aads.length < maxMemoAads && aad.length <= maxMemoAadBytes) {
    memo.aadPaths.push(path);
    memo.aads.push(aad);
  }
  return aad;
}

/** The reasons an EncryptionError and a DecryptionError both have, with the same meaning. */
function isSharedReason(
  reason: EncryptionFailureReason,
): reason is 'invalid_context' | 'key_unavailable' | 'key_misconfigured' {
  return reason === 'invalid_context' || reason === 'key_unavailable' || reason === 'key_misconfigured';
}

/** Whether `values` are the members `names` of `context`, in order. */
function sameMembers(
  context: EncryptionContext,
  names: readonly string[],
  values: readonly string[],
): boolean {
  for (let index = 0; index < names.length; index += 1) {
    if (ownMember(context, names[index] as string) !== values[index]) return false;
  }
  return true;
}

/** A cached data key ready to encrypt with. */
interface ActiveDataKey {
  readonly key: KeyObject;
  /** The header every record under this key carries (handed out, so not the parsed header's own copy). */
  readonly header: Buffer;
  /** The same header parsed: its prefix starts every field under this key. */
  readonly parsed: ParsedHeader;
}

type ResolvedOptions = Resolved<Omit<EncryptorOptions, 'keyContextFields' | 'onEvent' | 'cache'>> & {
  readonly keyContextFields: readonly string[] | undefined;
  readonly onEvent: SecurityEventListener | undefined;
  readonly cache: Resolved<DataKeyCacheOptions>;
};

const defaults = {
  headerField: '_dataKey',
  encoding: 'binary',
  maxValueBytes: 65_536,
  cache: { maxAgeMs: 300_000, maxMessages: 1_000_000, maxEntries: 1000 },
} as const;

const indexNamePattern = /^[A-Za-z0-9._:-]{1,64}$/;
const base64UrlPattern = /^[A-Za-z0-9_-]*$/;
const maxIndexKeys = 256;

function isInteger(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/**
 * Every problem with warm-up options. `provideEncryptor` checks them when it is built: the warm-up it
 * starts is not awaited, and its failure would be lost with nothing warmed.
 */
export function warmOptionProblems(options: WarmOptions): string[] {
  const problems: string[] = [];
  if (typeof options !== 'object' || options === null) {
    return [`warm must be an object (got ${shownValue(options)})`];
  }
  for (const context of arrayOption(problems, 'warm.contexts', options.contexts, 'of encryption contexts')) {
    if (typeof context !== 'object' || context === null || Array.isArray(context)) {
      problems.push(`warm.contexts entries must be objects (got ${shownValue(context)})`);
    }
  }
  const { blindIndexes } = options;
  for (const name of arrayOption(problems, 'warm.blindIndexes', blindIndexes, 'of blind-index names')) {
    if (typeof name !== 'string' || !indexNamePattern.test(name)) {
      problems.push(
        `warm.blindIndexes entries must be 1-64 letters, digits, . _ : or - (got ${shownValue(name)})`,
      );
    }
  }
  return problems;
}

function resolveOptions(options: EncryptorOptions): ResolvedOptions {
  requireOptionsObject('Encryptor', options);
  const problems: string[] = [];
  const provider = options.keyProvider as Partial<KeyProvider> | undefined;
  if (
    typeof provider?.generateDataKey !== 'function' ||
    typeof provider.decryptDataKey !== 'function' ||
    typeof provider.deriveIndexKey !== 'function'
  ) {
    problems.push('keyProvider must implement KeyProvider');
  }
  const cache = { ...defaults.cache, ...definedOnly(options.cache) };
  const resolved: ResolvedOptions = {
    keyProvider: options.keyProvider,
    keyContextFields: options.keyContextFields,
    headerField: options.headerField ?? defaults.headerField,
    encoding: options.encoding ?? defaults.encoding,
    maxValueBytes: options.maxValueBytes ?? defaults.maxValueBytes,
    cache,
    onEvent: options.onEvent,
  };
  if (
    resolved.keyContextFields !== undefined &&
    (!Array.isArray(resolved.keyContextFields) ||
      resolved.keyContextFields.some((name) => typeof name !== 'string' || name.length === 0))
  ) {
    problems.push('keyContextFields must be an array of non-empty names');
  }
  if (typeof resolved.headerField !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(resolved.headerField)) {
    problems.push('headerField must be 1-64 letters, digits, _ or -');
  }
  if (resolved.encoding !== 'binary' && resolved.encoding !== 'base64url') {
    problems.push("encoding must be 'binary' or 'base64url'");
  }
  if (!isInteger(resolved.maxValueBytes, 1, 400 * 1024)) {
    problems.push('maxValueBytes must be an integer from 1 to 409600');
  }
  if (!isInteger(cache.maxAgeMs, 0, 86_400_000)) problems.push('cache.maxAgeMs must be 0-86400000');
  if (!isInteger(cache.maxMessages, 1, 2 ** 32)) problems.push('cache.maxMessages must be 1-2^32');
  if (!isInteger(cache.maxEntries, 1, 1_000_000)) problems.push('cache.maxEntries must be 1-1000000');
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  assertNoProblems('Encryptor', problems);
  return resolved;
}

function assertRecord(
  record: unknown,
  failure: 'encrypt' | 'decrypt',
): asserts record is Record<string, unknown> {
  if (typeof record === 'object' && record !== null && !Array.isArray(record)) return;
  const message = 'The record must be an object';
  throw failure === 'encrypt'
    ? new EncryptionError('unsupported_value', message)
    : new DecryptionError('malformed', message);
}

/** Deepest nesting searched for fields under a header: DynamoDB's own limit. */
const maxRecordDepth = 32;

/**
 * How many values of `object` and the objects nested in it (but `skip`, the header) are stored fields
 * whose version and key reference are `prefix`. A record nested deeper than DynamoDB allows counts as
 * holding any number of them, so its header is never dropped for want of looking.
 */
function countFieldsUnder(
  object: Record<string, unknown>,
  prefix: string,
  skip: string | undefined,
  depth: number,
): number {
  if (depth > maxRecordDepth) return Number.POSITIVE_INFINITY;
  let count = 0;
  for (const key of Object.keys(object)) {
    if (key === skip) continue;
    const value = object[key];
    if (isRecord(value)) count += countFieldsUnder(value, prefix, undefined, depth + 1);
    else if (storedFieldPrefix(value) === prefix) count += 1;
  }
  return count;
}

/** Stored bytes of an encrypted value or header: a Uint8Array, or a base64url string. */
function storedBytes(value: unknown, what: string, field: string | undefined): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string' && base64UrlPattern.test(value)) return Buffer.from(value, 'base64url');
  throw new DecryptionError('malformed', `${what} is not an encrypted value`, field ? { field } : {});
}

/** What a field sealed under a record's data key starts with (see {@link storedFieldPrefix}), from its header. */
function headerFieldPrefix(headerValue: unknown): string {
  return fieldPrefix(keyRefOf(storedBytes(headerValue, 'The data-key header', undefined))).toString('latin1');
}

/**
 * Encrypts and decrypts the sensitive fields of records under envelope keys. Create one per function,
 * at module scope: its caches make steady-state encryption free of KMS calls.
 *
 * @example
 * const encryptor = new Encryptor({ keyProvider: new KmsKeyProvider({ keyId: process.env.KMS_KEY_ID ?? '' }) });
 * const item = await encryptor.encryptFields(user, ['email', 'phone'], { tenantId, userId: user.id });
 * const user2 = await encryptor.decryptFields(item, ['email', 'phone'], { tenantId, userId: user.id });
 */
export class Encryptor {
  private readonly options: ResolvedOptions;
  private readonly provider: KeyProvider;
  private readonly dataKeys: KeyCache<ActiveDataKey>;
  private readonly unwrappedKeys: KeyCache<KeyObject>;
  private readonly indexKeys = new Map<string, Promise<KeyObject>>();
  /** Parsed headers by their bytes (as latin1 text, an exact and cheap Map key). */
  private readonly headers = new Map<string, ParsedHeader>();
  private nextHeaderId = 0;
  /**
   * The field prefixes of the headers in {@link headers}: a value to encrypt that starts with one is a
   * ciphertext of ours. Refusing only these, not every value shaped like a field, spares binary values
   * that merely start with byte 1.
   */
  private readonly knownFieldPrefixes = new Set<string>();
  /** The last header parsed or made: a record read after it was written skips the header Map. */
  private lastHeader: ParsedHeader | undefined;
  private lastContext: ContextMemo = newContextMemo([], [], '');
  private lastKeyContext: KeyContextMemo | undefined;
  /** keyContextFields, sorted as the canonical form and the header list them. */
  private readonly keyContextNames: readonly string[] | undefined;
  private readonly headerPath: FieldPath;

  constructor(options: EncryptorOptions) {
    this.options = resolveOptions(options);
    this.provider = this.options.keyProvider;
    this.dataKeys = new KeyCache(this.options.cache);
    this.unwrappedKeys = new KeyCache({ ...this.options.cache, maxMessages: Number.POSITIVE_INFINITY });
    this.keyContextNames = this.options.keyContextFields
      ? [...new Set(this.options.keyContextFields)].sort()
      : undefined;
    const headerField = this.options.headerField;
    this.headerPath = { path: headerField, segments: [headerField], bytes: Buffer.from(headerField) };
  }

  /** The attribute holding each record's data-key header. */
  get headerField(): string {
    return this.options.headerField;
  }

  /** The context members bound to each new data key, sorted; undefined when every member is. */
  get keyContextFields(): readonly string[] | undefined {
    return this.keyContextNames;
  }

  /**
   * A copy of `record` whose listed fields (dotted paths; absent and null ones are skipped) are
   * encrypted, plus the record's data-key header. All fields are encoded before any key is requested,
   * so a bad value or an unavailable key throws with nothing half-encrypted. The paths must be fields of
   * the record's type; each becomes an `EncryptedField` of its value's type.
   */
  async encryptFields<R extends object, F extends FieldPathOf<R>>(
    record: R,
    fields: readonly F[],
    context: EncryptionContext,
  ): Promise<EncryptedRecord<R, F>> {
    assertRecord(record, 'encrypt');
    const paths = parsePaths('encryptFields', fields, this.options.headerField);
    // A record's values share its one data key, so a longer list could never stay within the limit.
    // Checked on the list, not on the values present, so that it fails in the first test, not on some record.
    if (paths.length > this.options.cache.maxMessages) {
      assertNoProblems('encryptFields', [
        `${paths.length} fields exceed cache.maxMessages (${this.options.cache.maxMessages}), the values one data key may encrypt`,
      ]);
    }
    const contextMemo = this.contextOf(context, 'encrypt');
    if (Object.hasOwn(record, this.options.headerField)) {
      throw new EncryptionError('already_encrypted', 'The record already carries a data-key header');
    }
    // Each present value is encoded straight into the buffer its stored field will be, the plaintext
    // after room for version, key reference and IV, and room for the tag after it.
    const present: FieldPath[] = [];
    const sealed: Buffer[] = [];
    let dataKey: ActiveDataKey;
    try {
      for (const path of paths) {
        const value = readPath(record, path);
        if (value === undefined || value === null) continue;
        // A field's ciphertext sealed again could only ever be decrypted back to that ciphertext, whose
        // own header is gone: the value would be lost.
        if (this.isKnownField(value)) {
          throw new EncryptionError('already_encrypted', `Field ${path.path} already holds a ciphertext`, {
            field: path.path,
          });
        }
        present.push(path);
        sealed.push(encodeValue(value, path.path, this.options.maxValueBytes, sealedStart, tagBytes));
      }
      if (present.length === 0) return { ...record } as EncryptedRecord<R, F>;
      dataKey =
        this.cachedDataKey(context, contextMemo.canonical, present.length) ??
        (await this.dataKeyFor(context, contextMemo.canonical, present.length).value);
      this.keepRemembered(dataKey.parsed);
    } catch (error) {
      // Nothing was sealed: leave no plaintext behind in Buffer's shared pool.
      for (const field of sealed) field.fill(0);
      throw error;
    }
    const writes: { path: FieldPath; value: unknown }[] = [];
    for (let index = 0; index < present.length; index += 1) {
      const path = present[index] as FieldPath;
      const field = sealed[index] as Buffer;
      this.sealField(dataKey, aadOf(contextMemo, dataKey.parsed.prefix, path), field);
      writes.push({ path, value: this.output(field) });
    }
    writes.push({ path: this.headerPath, value: this.output(dataKey.header) });
    return writePaths(record, writes) as EncryptedRecord<R, F>;
  }

  /**
   * A copy of `record` with the listed fields decrypted. The header is removed once no field sealed
   * under it remains; after a partial list it stays, for the fields still encrypted. Any tampering, a
   * value moved from another field, record or tenant, or a wrong context throws a DecryptionError.
   * Typed from the record: each listed field as the type it was encrypted from, the others unchanged.
   * Each failure is reported once, as a `decryption.failed` event (see {@link reportDecryptionFailure}).
   */
  async decryptFields<R extends object, F extends FieldPathOf<R>>(
    record: R,
    fields: readonly F[],
    context: EncryptionContext,
    options?: DecryptFieldsOptions<F>,
  ): Promise<DecryptedRecord<R, F>> {
    // One try around the whole read rather than a wrapping call: no extra promise on the hot path.
    try {
      assertRecord(record, 'decrypt');
      const paths = parsePaths('decryptFields', fields, this.options.headerField);
      const plaintextAccepted = options?.acceptPlaintext
        ? this.plaintextPaths(paths, options.acceptPlaintext)
        : undefined;
      const contextMemo = this.contextOf(context, 'decrypt');
      const headerField = this.options.headerField;
      const headerValue = record[headerField];
      // What a value sealed under this record's data key starts with; only given acceptPlaintext.
      const sealedPrefix =
        plaintextAccepted === undefined || headerValue === undefined
          ? undefined
          : headerFieldPrefix(headerValue);
      const present: FieldPath[] = [];
      const stored: unknown[] = [];
      for (const path of paths) {
        const value = readPath(record, path);
        if (value === undefined || value === null) continue;
        // Written before the field joined the list: it stays as it is. Told apart from a ciphertext by the
        // record's own key reference, not by shape: a plaintext may look like any ciphertext but this one.
        if (
          plaintextAccepted?.has(path.path) &&
          (sealedPrefix === undefined || storedFieldPrefix(value) !== sealedPrefix)
        ) {
          continue;
        }
        present.push(path);
        stored.push(value);
      }
      if (present.length === 0) {
        if (headerValue === undefined) return copyRecord(record) as DecryptedRecord<R, F>;
        const keepHeader = countFieldsUnder(record, headerFieldPrefix(headerValue), headerField, 0) > 0;
        const copy = keepHeader ? copyRecord(record) : copyRecordWithout(record, headerField);
        return copy as DecryptedRecord<R, F>;
      }
      if (headerValue === undefined) {
        throw new DecryptionError('missing_header', 'The record has encrypted fields but no data-key header');
      }
      const parsed = this.parseHeader(storedBytes(headerValue, 'The data-key header', undefined));
      // Cheap checks on every field first: garbage never costs a KMS request.
      const sealed: Buffer[] = [];
      for (let index = 0; index < present.length; index += 1) {
        const path = present[index] as FieldPath;
        const bytes = storedBytes(stored[index], `Field ${path.path}`, path.path);
        checkField(bytes, parsed.prefix, path.path);
        sealed.push(bytes);
      }
      const key = this.cachedUnwrapped(parsed, context) ?? (await this.unwrap(parsed, context).value);
      const writes: { path: FieldPath; value: unknown }[] = [];
      for (let index = 0; index < present.length; index += 1) {
        const path = present[index] as FieldPath;
        const bytes = sealed[index] as Buffer;
        const tagStart = bytes.length - tagBytes;
        const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(ivStart, sealedStart));
        decipher.setAAD(aadOf(contextMemo, parsed.prefix, path));
        decipher.setAuthTag(bytes.subarray(tagStart));
        let plaintext: Buffer;
        try {
          plaintext = decipher.update(bytes.subarray(sealedStart, tagStart));
          decipher.final();
        } catch (error) {
          throw new DecryptionError('authentication_failed', `Field ${path.path} failed authentication`, {
            field: path.path,
            cause: error,
          });
        }
        writes.push({ path, value: decodeValue(plaintext, path.path) });
      }
      // Every listed field passed checkField, so each counts here: more means some were not listed.
      const keepHeader = countFieldsUnder(record, parsed.prefixText, headerField, 0) > present.length;
      const rest = keepHeader ? copyRecord(record) : copyRecordWithout(record, headerField);
      return writePaths(rest, writes, false) as DecryptedRecord<R, F>;
    } catch (error) {
      this.reportDecryptionFailure(error, record, context);
      throw error;
    }
  }

  /**
   * Decrypts with whatever key wrapped the record and encrypts again under the current key (rotation).
   * `fields` must list every encrypted field: a record has one header, so a field left out would stay
   * under a data key the new header no longer names. With `acceptPlaintext`, it also migrates a record
   * written before those fields joined the list: their values are encrypted with the rest.
   */
  async reencryptFields<R extends object, F extends FieldPathOf<R>>(
    record: R,
    fields: readonly F[],
    context: EncryptionContext,
    options?: DecryptFieldsOptions<F>,
  ): Promise<EncryptedRecord<DecryptedRecord<R, F>, F>> {
    // Typed loosely inside: the record is decrypted and encrypted at the same paths.
    const plain: Record<string, unknown> = await this.decryptFields(
      record as Record<string, unknown>,
      fields,
      context,
      options as DecryptFieldsOptions,
    );
    if (Object.hasOwn(plain, this.options.headerField)) {
      throw new EncryptionError(
        'already_encrypted',
        'reencryptFields must list every encrypted field: others remain under the record’s data key',
      );
    }
    return this.encryptFields(plain, fields, context) as Promise<EncryptedRecord<DecryptedRecord<R, F>, F>>;
  }

  /** The paths of `accepted`, each of which must be one of `paths`. */
  private plaintextPaths(paths: readonly FieldPath[], accepted: unknown): ReadonlySet<string> {
    if (!Array.isArray(accepted)) {
      assertNoProblems('decryptFields', ['acceptPlaintext must be an array of field paths']);
    }
    const listed = new Set(paths.map((path) => path.path));
    const acceptedPaths = parsePaths('decryptFields', accepted, this.options.headerField);
    const unlisted = acceptedPaths.filter((path) => !listed.has(path.path));
    assertNoProblems(
      'decryptFields',
      unlisted.map((path) => `acceptPlaintext names ${path.path}, which is not in fields`),
    );
    return new Set(acceptedPaths.map((path) => path.path));
  }

  /** Whether the record's data key is wrapped under another provider or key than the current one. */
  needsReencryption(record: object): boolean {
    assertRecord(record, 'decrypt');
    const value = record[this.options.headerField];
    if (value === undefined) return false;
    const { header } = this.parseHeader(storedBytes(value, 'The data-key header', undefined));
    return header.providerId !== this.provider.providerId || header.keyId !== this.provider.currentKeyId;
  }

  /**
   * A deterministic, truncated HMAC-SHA256 of the normalised value under a key derived for this index
   * (never a data key): store it next to the encrypted value and look records up by equality.
   * It reveals which records share a value, nothing more.
   *
   * @example
   * const emailIndex = await encryptor.blindIndex(email, { name: 'user-email', normalize: normalizeEmail });
   */
  async blindIndex(value: string, options: BlindIndexOptions): Promise<string> {
    const bytes = options.bytes ?? 16;
    const scope = options.scope ?? '';
    const problems: string[] = [];
    if (typeof options.name !== 'string' || !indexNamePattern.test(options.name)) {
      problems.push('name must be 1-64 letters, digits, . _ : or -');
    }
    if (!isInteger(bytes, 8, 32)) problems.push('bytes must be an integer from 8 to 32');
    // Scope and value are hashed as UTF-8, where a lone surrogate becomes U+FFFD: distinct inputs would collide.
    if (typeof scope !== 'string' || scope.length > 1024 || !scope.isWellFormed())
      problems.push('scope must be a well-formed string of at most 1024 characters');
    checkFunctionOption(problems, 'normalize', options.normalize);
    assertNoProblems('blindIndex', problems);
    if (typeof value !== 'string') {
      throw new EncryptionError(
        'unsupported_value',
        `The value for blind index ${options.name} is not a string`,
      );
    }
    const normalized = options.normalize ? options.normalize(value) : value.normalize('NFC');
    if (typeof normalized !== 'string') {
      throw new EncryptionError(
        'unsupported_value',
        `normalize for blind index ${options.name} did not return a string`,
      );
    }
    if (!normalized.isWellFormed()) {
      throw new EncryptionError(
        'unsupported_value',
        `The value for blind index ${options.name} holds a lone surrogate`,
      );
    }
    const message = Buffer.from(normalized, 'utf8');
    if (message.length > this.options.maxValueBytes) {
      throw new EncryptionError('value_too_large', `The value for blind index ${options.name} is too large`);
    }
    const key = await this.indexKey(options.name);
    const scopeBytes = Buffer.from(scope, 'utf8');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(scopeBytes.length);
    return createHmac('sha256', key)
      .update(length)
      .update(scopeBytes)
      .update(message)
      .digest()
      .subarray(0, bytes)
      .toString('base64url');
  }

  /** Fetches data keys and blind-index keys ahead of need (a cold instance's first request waits less). */
  async warm(options: WarmOptions): Promise<void> {
    assertNoProblems('warm', warmOptionProblems(options));
    await Promise.all([
      ...(options.contexts ?? []).map(
        (context) => this.dataKeyFor(context, canonicalContext(context, 'encrypt'), 0).value,
      ),
      ...(options.blindIndexes ?? []).map((name) => this.indexKey(name)),
    ]);
  }

  /** Forgets every cached key (tests; or after revoking access). */
  clearCaches(): void {
    this.dataKeys.clear();
    this.unwrappedKeys.clear();
    this.indexKeys.clear();
    this.headers.clear();
    this.knownFieldPrefixes.clear();
    this.lastHeader = undefined;
    this.lastKeyContext = undefined;
  }

  private output(bytes: Buffer): Buffer | string {
    return this.options.encoding === 'binary' ? bytes : bytes.toString('base64url');
  }

  /**
   * The context's canonical form and bytes. The same members and values as last time (in the same key
   * order) reuse the last ones: comparing a few strings costs less than serialising and encoding them.
   * Otherwise the context is validated and serialised in full.
   */
  private contextOf(context: EncryptionContext, failure: 'encrypt' | 'decrypt'): ContextMemo {
    const last = this.lastContext;
    if (typeof context === 'object' && context !== null && !Array.isArray(context)) {
      const names = Object.keys(context);
      if (names.length === last.names.length) {
        let same = true;
        for (let index = 0; index < names.length && same; index += 1) {
          same = names[index] === last.names[index] && context[names[index] as string] === last.values[index];
        }
        if (same) return last;
      }
    }
    const canonical = canonicalContext(context, failure);
    const names = Object.keys(context);
    const memo = newContextMemo(
      names,
      names.map((name) => context[name] as string),
      canonical,
    );
    this.lastContext = memo;
    return memo;
  }

  /** A header parsed once per distinct header: records sharing a data key share the work. */
  private parseHeader(bytes: Buffer): ParsedHeader {
    const last = this.lastHeader;
    if (last?.bytes.equals(bytes)) {
      this.keepRemembered(last);
      return last;
    }
    const key = bytes.toString('latin1');
    const known = this.headers.get(key);
    if (known !== undefined) {
      // Moved to the newest end, so the header forgotten when full is the least recently used one.
      this.headers.delete(key);
      this.headers.set(key, known);
    }
    const parsed = known ?? this.rememberHeader(bytes, decodeHeader(bytes), keyRefOf(bytes));
    this.lastHeader = parsed;
    return parsed;
  }

  private rememberHeader(bytes: Buffer, header: DataKeyHeader, keyRef: Buffer): ParsedHeader {
    const prefix = fieldPrefix(keyRef);
    const parsed: ParsedHeader = {
      bytes: Buffer.from(bytes),
      header,
      prefix,
      prefixText: prefix.toString('latin1'),
      id: this.nextHeaderId++,
      lastKeyValues: undefined,
      lastCacheKey: '',
    };
    this.remember(parsed);
    return parsed;
  }

  /** Adds a header to those remembered, forgetting the least recently used (and its field prefix) when full. */
  private remember(parsed: ParsedHeader): void {
    if (this.headers.size >= this.options.cache.maxEntries) {
      const [oldestKey, oldest] = this.headers.entries().next().value as [string, ParsedHeader];
      this.headers.delete(oldestKey);
      this.knownFieldPrefixes.delete(oldest.prefixText);
    }
    this.headers.set(parsed.bytes.toString('latin1'), parsed);
    this.knownFieldPrefixes.add(parsed.prefixText);
  }

  /**
   * Remembers again a header in use that was forgotten since it was parsed or made (the last header
   * read, a cached data key's header), so encryptFields keeps refusing the ciphertexts under it.
   */
  private keepRemembered(parsed: ParsedHeader): void {
    if (!this.knownFieldPrefixes.has(parsed.prefixText)) this.remember(parsed);
  }

  /** Whether `value` is a stored field under a header this encryptor has read or written. */
  private isKnownField(value: unknown): boolean {
    const prefix = storedFieldPrefix(value);
    return prefix !== undefined && this.knownFieldPrefixes.has(prefix);
  }

  private reportHit(operation: 'encrypt' | 'decrypt'): void {
    // Checked here so that without a listener no event object is made on the hot path.
    if (this.options.onEvent === undefined) return;
    emitEvent(this.options.onEvent, {
      type: 'dataKey.cacheHit',
      metadata: { operation, providerId: this.provider.providerId },
    });
  }

  /**
   * A refused decryption is a security decision (tampering, a record moved to another tenant or field, a
   * key no longer trusted), so it is reported as one `decryption.failed` event: the reason, the field, the
   * header's provider and key and the names (never the values) of the context members. Once per failure:
   * the records waiting on one failed unwrap share its error, and a failure the key provider reported
   * itself (a failed KMS Decrypt, as a `kms.request` naming KMS's error) is not reported again.
   * `decryptFields` calls it; call it for a record refused before it is decrypted (the sample's
   * `record_moved`), so that refusal is reported the same way. Anything but a DecryptionError is ignored.
   *
   * @example
   * const moved = new DecryptionError('record_moved', 'The item carries another id');
   * encryptor.reportDecryptionFailure(moved, item, { tenantId, userId });
   * throw moved;
   */
  reportDecryptionFailure(error: unknown, record?: unknown, context?: unknown): void {
    const onEvent = this.options.onEvent;
    if (onEvent === undefined || !(error instanceof DecryptionError) || isFailureReported(error)) return;
    markFailureReported(error);
    const header = this.storedHeaderOf(record);
    emitEvent(onEvent, {
      type: 'decryption.failed',
      reason: error.reason,
      metadata: {
        ...(error.field === undefined ? {} : { field: error.field }),
        providerId: header?.providerId ?? this.provider.providerId,
        ...(header === undefined ? {} : { keyId: header.keyId, keyContextFields: header.keyContextNames }),
        contextFields: isRecord(context) ? Object.keys(context).sort() : [],
        // The key service failing is not the record's doing: an error, as a failed KMS call is.
        ...(isUnreadableRecord(error) ? {} : { outcome: 'error' }),
      },
    });
  }

  /** The record's header, when it has one that parses. */
  private storedHeaderOf(record: unknown): DataKeyHeader | undefined {
    if (!isRecord(record) || record[this.options.headerField] === undefined) return undefined;
    try {
      return this.parseHeader(storedBytes(record[this.options.headerField], 'The data-key header', undefined))
        .header;
    } catch {
      return undefined;
    }
  }

  /** The data-key cache key: the canonical form of the key-context members. */
  private dataKeyCacheKey(context: EncryptionContext, canonical: string): string {
    const names = this.keyContextNames;
    if (names === undefined) return canonical;
    const last = this.lastKeyContext;
    if (last !== undefined && sameMembers(context, names, last.values)) return last.cacheKey;
    const cacheKey = canonicalPick(context, names, 'encrypt');
    this.lastKeyContext = { values: names.map((name) => context[name] as string), cacheKey };
    return cacheKey;
  }

  /** The hot path of {@link dataKeyFor}: a settled cached data key with room for `messages`, if any. */
  private cachedDataKey(
    context: EncryptionContext,
    canonical: string,
    messages: number,
  ): ActiveDataKey | undefined {
    const dataKey = this.dataKeys.take(this.dataKeyCacheKey(context, canonical), messages, Date.now());
    if (dataKey !== undefined) this.reportHit('encrypt');
    return dataKey;
  }

  /** `canonical` is the whole context's canonical form; the data key is bound to its key-context part. */
  private dataKeyFor(
    context: EncryptionContext,
    canonical: string,
    messages: number,
  ): Acquired<ActiveDataKey> {
    const names = this.keyContextNames;
    // The provider's key never changes within an encryptor, so the key context alone keys the cache.
    const cacheKey = this.dataKeyCacheKey(context, canonical);
    const acquired = this.dataKeys.acquire(cacheKey, messages, () =>
      this.generate(names === undefined ? context : pickContext(context, names, 'encrypt'), cacheKey),
    );
    if (acquired.hit) this.reportHit('encrypt');
    return acquired;
  }

  private async generate(keyContext: EncryptionContext, keyCanonical: string): Promise<ActiveDataKey> {
    let generated: Awaited<ReturnType<KeyProvider['generateDataKey']>>;
    try {
      generated = await this.provider.generateDataKey(keyContext);
    } catch (error) {
      if (error instanceof EncryptionError) throw error;
      throw new EncryptionError('key_unavailable', 'The key provider could not supply a data key', {
        cause: error,
      });
    }
    const keyContextNames = Object.keys(keyContext).sort();
    const header = encodeHeader({
      providerId: this.provider.providerId,
      keyId: generated.keyId,
      keyContextNames,
      wrappedKey: generated.wrappedKey,
    });
    // Imported from the provider's own buffer: a Buffer.from copy would sit in Node's shared pool,
    // which nothing zeroes. The KeyObject holds its own copy, so the provider's is zeroed at once.
    const key = createSecretKey(generated.plaintext);
    generated.plaintext.fill(0);
    const keyRef = keyRefOf(header);
    // Whoever wrote a record on this instance can read it back without a Decrypt request.
    const parsed = this.rememberHeader(header, decodeHeader(header), keyRef);
    this.unwrappedKeys.prime(`${parsed.id}\n${keyCanonical}`, key);
    return { key, header, parsed };
  }

  /**
   * Seals the plaintext that `field` holds after its IV slot (see {@link encryptFields}) in place:
   * writes version, key reference and a fresh IV before it, the ciphertext over it, the tag after it.
   */
  private sealField(dataKey: ActiveDataKey, aad: Buffer, field: Buffer): void {
    const tagStart = field.length - tagBytes;
    field.set(dataKey.parsed.prefix, 0);
    nextIv(field, ivStart);
    const cipher = createCipheriv('aes-256-gcm', dataKey.key, field.subarray(ivStart, sealedStart));
    cipher.setAAD(aad);
    field.set(cipher.update(field.subarray(sealedStart, tagStart)), sealedStart);
    // GCM is a stream mode: final() returns nothing, it only computes the tag.
    cipher.final();
    field.set(cipher.getAuthTag(), tagStart);
  }

  /** The unwrapped-key cache key: this header and the canonical form of its key-context members. */
  private unwrapCacheKey(parsed: ParsedHeader, context: EncryptionContext): string {
    const names = parsed.header.keyContextNames;
    const last = parsed.lastKeyValues;
    if (last !== undefined && sameMembers(context, names, last)) return parsed.lastCacheKey;
    const cacheKey = `${parsed.id}\n${canonicalPick(context, names, 'decrypt')}`;
    parsed.lastKeyValues = names.map((name) => context[name] as string);
    parsed.lastCacheKey = cacheKey;
    return cacheKey;
  }

  /** The hot path of {@link unwrap}: the settled unwrapped key of this header and context, if cached. */
  private cachedUnwrapped(parsed: ParsedHeader, context: EncryptionContext): KeyObject | undefined {
    if (parsed.header.providerId !== this.provider.providerId) return undefined;
    const key = this.unwrappedKeys.take(this.unwrapCacheKey(parsed, context), 0, Date.now());
    if (key !== undefined) this.reportHit('decrypt');
    return key;
  }

  private unwrap(parsed: ParsedHeader, context: EncryptionContext): Acquired<KeyObject> {
    const { header } = parsed;
    if (header.providerId !== this.provider.providerId) {
      throw new DecryptionError(
        'key_not_allowed',
        `The data key was wrapped by another key provider (${header.providerId})`,
      );
    }
    const cacheKey = this.unwrapCacheKey(parsed, context);
    const acquired = this.unwrappedKeys.acquire(cacheKey, 0, async () => {
      const keyContext = pickContext(context, header.keyContextNames, 'decrypt');
      let plaintext: Uint8Array;
      try {
        plaintext = await this.provider.decryptDataKey(header, keyContext);
      } catch (error) {
        if (error instanceof DecryptionError) throw error;
        // A provider's typed reason stands: a context it refuses comes from the stored record (its
        // header's key-context names), so it is unreadable, not a key-service outage to retry.
        if (error instanceof EncryptionError && isSharedReason(error.reason)) {
          throw new DecryptionError(error.reason, error.message, { cause: error });
        }
        throw new DecryptionError('key_unavailable', 'The key provider could not unwrap the data key', {
          cause: error,
        });
      }
      // As in generate: no copy in the shared pool, and the provider's buffer zeroed once imported.
      const key = createSecretKey(plaintext);
      plaintext.fill(0);
      return key;
    });
    if (acquired.hit) this.reportHit('decrypt');
    return acquired;
  }

  private indexKey(name: string): Promise<KeyObject> {
    let key = this.indexKeys.get(name);
    if (key === undefined) {
      key = (async () => {
        try {
          return createSecretKey(await this.provider.deriveIndexKey(name));
        } catch (error) {
          if (error instanceof EncryptionError) throw error;
          throw new EncryptionError(
            'key_unavailable',
            'The key provider could not derive a blind-index key',
            {
              cause: error,
            },
          );
        }
      })();
      const pending = key;
      pending.catch(() => {
        if (this.indexKeys.get(name) === pending) this.indexKeys.delete(name);
      });
      if (this.indexKeys.size >= maxIndexKeys)
        this.indexKeys.delete(this.indexKeys.keys().next().value as string);
      this.indexKeys.set(name, key);
    }
    return key;
  }
}

/**
 * Seed-style normaliser for email blind indexes: trimmed, NFC, the domain in ASCII (IDNA), lower case, so
 * `bob@bücher.de` and `bob@xn--bcher-kva.de` give one index. An ASCII domain gives the index it always had.
 * IDNA maps the domain before anything is lower-cased, as the address check does: lower case first would
 * turn `FAẞ.de` (IDNA: `fass.de`) into `faß.de`, another domain. Its result normalises to itself: lower
 * case can undo NFC (`İ` before a combining mark) and make a domain IDNA refused mappable (Georgian `Ⴀ`
 * is refused, its lower case `ⴀ` is not), so NFC and IDNA are applied once more after it. For an address
 * whose lower case is already NFC with its domain in ASCII, that is every address the sample accepts,
 * they change nothing.
 */
export function normalizeEmail(value: string): string {
  return withAsciiDomain(withAsciiDomain(value.trim().normalize('NFC')).toLowerCase().normalize('NFC'));
}
