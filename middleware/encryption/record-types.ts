// The types of records before and after field encryption: which fields a list may name, and what they hold.
import type { FieldValue } from './value-codec.js';

declare const plaintextType: unique symbol;

/**
 * A field as `encryptFields` stores it: bytes (or base64url text with `encoding: 'base64url'`), typed by
 * the value sealed in it, which `decryptFields` gives back. Only ever made by `encryptFields`; an item
 * read from a table is typed by its reader, e.g. as an {@link EncryptedRecord}.
 */
export type EncryptedField<T = FieldValue> = (Uint8Array | string) & { readonly [plaintextType]: T };

/** Values whose members are not fields: a path stops at them. */
type Leaf =
  | readonly unknown[]
  | Uint8Array
  | Date
  | ((...args: never[]) => unknown)
  | EncryptedField<unknown>;

/** Path depths still to search: 6 levels of nesting below the record. */
type Deeper = [never, 0, 1, 2, 3, 4, 5];

/**
 * The dotted paths of `R`'s fields (`email`, `address.street`), as `encryptFields` and `decryptFields`
 * take them. A record typed with an index signature (`Record<string, unknown>`) takes any path.
 */
export type FieldPathOf<R, Depth extends number = 6> = [Depth] extends [never]
  ? never
  : R extends Leaf
    ? never
    : R extends object
      ? {
          [K in keyof R & string]:
            | K
            | (NonNullable<R[K]> extends Leaf
                ? never
                : `${K}.${FieldPathOf<NonNullable<R[K]>, Deeper[Depth]>}`);
        }[keyof R & string]
      : never;

/** The paths of `F` below the key `K`, without it. */
type PathsBelow<F extends string, K extends string> = F extends `${K}.${infer Rest}` ? Rest : never;

type Operation = 'encrypt' | 'decrypt';

/** A field's value after the operation; absent and null values are skipped, so they stay as they were. */
type FieldAfter<V, O extends Operation> = O extends 'encrypt'
  ? EncryptedField<Exclude<V, null | undefined>> | Extract<V, null | undefined>
  : Opened<V>;

/**
 * What decrypting a value of type `V` gives: the type sealed in an {@link EncryptedField}; any value
 * a field can hold when the stored type does not say (bytes, text, unknown).
 */
type Opened<V> = 0 extends 1 & V
  ? // biome-ignore lint/suspicious/noExplicitAny: a record typed `any` stays `any`.
    any
  : unknown extends V
    ? FieldValue | null | undefined
    : OpenedMember<V>;

type OpenedMember<V> = V extends EncryptedField<infer T> ? T : V extends null | undefined ? V : FieldValue;

/** `R` with the fields at paths `F` as the operation leaves them; every other member as it was. */
type WithFields<R, F extends string, O extends Operation> = string extends F
  ? // A field list typed only as strings could have named any member.
    { [K in keyof R]: unknown }
  : {
      [K in keyof R]: string extends K
        ? R[K]
        : K extends F
          ? FieldAfter<R[K], O>
          : K extends string
            ? WithNestedFields<R[K], PathsBelow<F, K>, O>
            : R[K];
    };

type WithNestedFields<V, F extends string, O extends Operation> = [F] extends [never]
  ? V
  : V extends Leaf
    ? V
    : V extends object
      ? WithFields<V, F, O>
      : V;

/**
 * What `encryptFields(record, fields)` returns for a record of type `R`: each field at a path of `F`
 * an {@link EncryptedField} of its value (absent and null ones unchanged). The data-key header it adds
 * is not in the type. Reading an item back from a table, type it as this to decrypt it typed.
 *
 * @example
 * type StoredUser = EncryptedRecord<User, 'email' | 'phone'>;
 */
export type EncryptedRecord<R, F extends string> = WithFields<R, F, 'encrypt'>;

/** What `decryptFields(record, fields)` returns for a record of type `R`: the fields at paths of `F` decrypted. */
export type DecryptedRecord<R, F extends string> = WithFields<R, F, 'decrypt'>;
