// Properties of the field encryption over generated input: the stored format, the value codec, whole
// records through the Encryptor, and email normalisation for blind indexes.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withAsciiDomain } from '../../middleware/email-address.js';
import { Encryptor, normalizeEmail } from '../../middleware/encryption/encryptor.js';
import {
  canonicalContext,
  canonicalPick,
  decodeHeader,
  encodeHeader,
  pickContext,
} from '../../middleware/encryption/format.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { decodeValue, encodeValue } from '../../middleware/encryption/value-codec.js';
import { DecryptionError, EncryptionError } from '../../middleware/errors.js';
import { anyText, wellFormedText } from '../helpers/arbitraries.js';
import { rejectionOf } from './helpers.js';

const nonEmpty = (text: fc.Arbitrary<string>) => text.filter((value) => value.length > 0);

describe('the data-key header', () => {
  it('reads back every member it writes, or refuses to write them with EncryptionError', () => {
    fc.assert(
      fc.property(
        nonEmpty(wellFormedText(20)),
        nonEmpty(wellFormedText(40)),
        fc.array(wellFormedText(10), { maxLength: 5 }),
        fc.uint8Array({ minLength: 1, maxLength: 80 }),
        (providerId, keyId, keyContextNames, wrappedKey) => {
          let bytes: Buffer;
          try {
            bytes = encodeHeader({ providerId, keyId, keyContextNames, wrappedKey });
          } catch (error) {
            expect(error).toBeInstanceOf(EncryptionError);
            return;
          }
          const header = decodeHeader(bytes);
          expect({ ...header, wrappedKey: Buffer.from(header.wrappedKey) }).toEqual({
            providerId,
            keyId,
            keyContextNames,
            wrappedKey: Buffer.from(wrappedKey),
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('refuses any other bytes, a valid header changed or cut short included, with DecryptionError only', () => {
    const valid = encodeHeader({
      providerId: 'local',
      keyId: 'local:abc',
      keyContextNames: ['tenantId', 'userId'],
      wrappedKey: randomBytes(60),
    });
    const changed = fc
      .tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length))
      .map(([at, byte, length]) => {
        const copy = Buffer.from(valid);
        copy[at] = byte;
        return copy.subarray(0, length);
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)),
          changed,
        ),
        (bytes) => {
          try {
            decodeHeader(bytes);
          } catch (error) {
            expect(error).toBeInstanceOf(DecryptionError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('the canonical context', () => {
  // Names and values from pieces that could pass for each other's lengths and separators.
  const piece = fc
    .array(fc.constantFrom('a', '1', ':', '2', 'b', 'é', '😀'), { maxLength: 4 })
    .map((parts) => parts.join(''));
  const context = fc.dictionary(nonEmpty(piece), piece, { maxKeys: 4 });
  const membersOf = (value: Record<string, string>) => JSON.stringify(Object.entries(value).sort());

  it('is the same text for two contexts exactly when they hold the same members', () => {
    fc.assert(
      fc.property(context, context, (first, second) => {
        expect(canonicalContext(first, 'encrypt') === canonicalContext(second, 'encrypt')).toBe(
          membersOf(first) === membersOf(second),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('of some members, picked in place, is that of the sub-context holding just them', () => {
    fc.assert(
      fc.property(context, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), (value, chosen) => {
        const names = Object.keys(value)
          .filter((_, index) => chosen[index])
          .sort();
        expect(canonicalPick(value, names, 'encrypt')).toBe(
          canonicalContext(pickContext(value, names, 'encrypt'), 'encrypt'),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses anything but a record of well-formed strings with DecryptionError only', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.anything(), fc.dictionary(anyText(6), fc.oneof(anyText(6), fc.anything()))),
        (value) => {
          try {
            canonicalContext(value, 'decrypt');
          } catch (error) {
            expect(error).toBeInstanceOf(DecryptionError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

/** The value with every -0 in its numbers, arrays and plain objects as 0, which is what the codec stores. */
function withZeroForNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withZeroForNegativeZero);
  if (typeof value !== 'object' || value === null) return value;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  const copy: Record<string, unknown> = Object.create(prototype);
  for (const [key, item] of Object.entries(value)) {
    // defineProperty: an own `__proto__` key stays a key rather than setting the copy's prototype.
    Object.defineProperty(copy, key, {
      value: withZeroForNegativeZero(item),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

describe('the Encryptor', () => {
  const keyProvider = new LocalKeyProvider({ key: randomBytes(32).toString('base64') });
  const binary = new Encryptor({ keyProvider });
  const text = new Encryptor({ keyProvider, encoding: 'base64url', keyContextFields: ['tenantId'] });
  const value = fc.oneof(
    wellFormedText(20),
    fc.integer(),
    fc.boolean(),
    fc.uint8Array({ maxLength: 10 }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const record = fc.record({ a: value, b: fc.record({ c: value, d: value }), e: value });
  const context = fc.record({ tenantId: fc.constantFrom('t1', 't2'), userId: wellFormedText(6) });
  const fields = ['a', 'b.c', 'e'] as const;

  it('decrypts what it encrypted; another context, swapped fields or a flipped bit is a DecryptionError', async () => {
    await fc.assert(
      fc.asyncProperty(
        record,
        context,
        context,
        fc.boolean(),
        fc.nat(),
        async (input, sealedFor, other, asText, flip) => {
          let sealed: Record<string, unknown>;
          try {
            sealed = (await (asText ? text : binary).encryptFields(input, fields, sealedFor)) as Record<
              string,
              unknown
            >;
          } catch (error) {
            expect.fail(`refused a JSON-safe record: ${String(error)}`);
          }
          const encryptor = asText ? text : binary;
          // toEqual: fast-check's records have no prototype, the decrypted copy is a plain object.
          expect(await encryptor.decryptFields(sealed, fields, sealedFor)).toEqual(
            withZeroForNegativeZero(input),
          );
          if (JSON.stringify(other) !== JSON.stringify(sealedFor)) {
            expect(await rejectionOf(encryptor.decryptFields(sealed, fields, other))).toBeInstanceOf(
              DecryptionError,
            );
          }
          if (input.a !== null && input.e !== null) {
            const swapped: Record<string, unknown> = { ...sealed, a: sealed.e, e: sealed.a };
            expect(await rejectionOf(encryptor.decryptFields(swapped, fields, sealedFor))).toBeInstanceOf(
              DecryptionError,
            );
          }
          if (input.a !== null) {
            const bytes = asText
              ? Buffer.from(sealed.a as string, 'base64url')
              : Buffer.from(sealed.a as Uint8Array);
            const at = flip % bytes.length;
            bytes[at] = (bytes[at] as number) ^ (1 << (flip % 8));
            const tampered: Record<string, unknown> = {
              ...sealed,
              a: asText ? bytes.toString('base64url') : bytes,
            };
            expect(await rejectionOf(encryptor.decryptFields(tampered, fields, sealedFor))).toBeInstanceOf(
              DecryptionError,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gives canonically equivalent text one blind index, and each scope its own', async () => {
    await fc.assert(
      fc.asyncProperty(wellFormedText(20), async (input) => {
        const index = await binary.blindIndex(input, { name: 'note' });
        expect(await binary.blindIndex(input.normalize('NFD'), { name: 'note' })).toBe(index);
        expect(await binary.blindIndex(input, { name: 'note', scope: 's' })).not.toBe(index);
      }),
      { numRuns: 500 },
    );
  });
});

/** Domain labels from letters whose case, NFC or IDNA mapping is unusual, joined by any IDNA dot. */
const label = fc
  .array(fc.constantFrom(...'abz09-üößẞİКпри中国ＡｅΩﬀKႠⴀ', '\u0301', '\u0307', '\u200b', '\u00ad'), {
    minLength: 1,
    maxLength: 10,
  })
  .map((characters) => characters.join(''));
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('.', '。', '．'))
  .map(([labels, dot]) => labels.join(dot));
const address = fc.oneof(
  fc.tuple(fc.stringMatching(/^[A-Za-z0-9_'+.-]{1,12}$/), domain).map(([local, name]) => `${local}@${name}`),
  fc.tuple(anyText(10), domain).map(([local, name]) => `${local}@${name}`),
  anyText(30),
);

describe('normalizeEmail', () => {
  it('gives a form it maps to itself, so an address and its stored form share one index', () => {
    fc.assert(
      fc.property(address, (input) => {
        const normalised = normalizeEmail(input);
        expect(normalizeEmail(normalised)).toBe(normalised);
      }),
      { numRuns: 3000 },
    );
  });

  it('gives an address typed with a Unicode domain the index of its ASCII form', () => {
    fc.assert(
      fc.property(address, (input) => {
        expect(normalizeEmail(withAsciiDomain(input))).toBe(normalizeEmail(input));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('the value codec', () => {
  it('gives back exactly what it encodes, or refuses it with EncryptionError', () => {
    // JSON values (-0 among their numbers, read back as 0) for what it must take, anything else for what
    // it must refuse.
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.anything({
        withBoxedValues: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withTypedArray: true,
        withSparseArray: true,
        withObjectString: true,
      }),
    );
    fc.assert(
      fc.property(value, (input) => {
        let encoded: Buffer;
        try {
          encoded = encodeValue(input, 'field', 65_536);
        } catch (error) {
          expect(error).toBeInstanceOf(EncryptionError);
          return;
        }
        // Strict: a hole is not null or undefined, and only -0 may come back changed, as 0.
        expect(decodeValue(encoded, 'field')).toStrictEqual(withZeroForNegativeZero(input));
      }),
      { numRuns: 3000 },
    );
  });
});
