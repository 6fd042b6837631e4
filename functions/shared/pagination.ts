// Opaque, validated cursors for DynamoDB pagination.
import { ValidationError } from '../../middleware/errors.js';
import * as z from './zod.js';

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** The attributes of a table's or an index's key, as its ExclusiveStartKey carries them. */
export type KeyNames = readonly [partitionKey: string, sortKey: string];

/** A key value no longer than DynamoDB takes, which counts UTF-8 bytes (350 × `€` is 1,050), not characters. */
const keyValue = (maxBytes: number) =>
  z.string().check(
    z.minLength(1),
    z.refine((value) => Buffer.byteLength(value, 'utf8') <= maxBytes, `At most ${maxBytes} bytes`),
  );
const partitionKeyValue = keyValue(2048);
const sortKeyValue = keyValue(1024);

/** Page size shared by every list route. */
/** A page size as written in a query string: decimal digits only (no `0x10`, `1e2` or spaces), 1 to 100. */
export const pageLimitSchema = z._default(
  z.pipe(
    z.string().check(z.regex(/^0*(?:[1-9][0-9]?|100)$/, 'Must be a whole number from 1 to 100')),
    z.transform((digits: string) => Number(digits)),
  ),
  20,
);

export function encodeCursor(lastEvaluatedKey: Record<string, unknown> | undefined): string | undefined {
  if (!lastEvaluatedKey) return undefined;
  return Buffer.from(JSON.stringify(lastEvaluatedKey), 'utf8').toString('base64url');
}

function invalidCursor(): ValidationError {
  return new ValidationError('Invalid cursor', [
    { field: 'query.cursor', message: 'Not a cursor from this list' },
  ]);
}

/**
 * Decodes a cursor into an ExclusiveStartKey with exactly the key attributes of the table and of the
 * index queried (`keys`), each a string within DynamoDB's size for its kind of key (2,048 bytes for a
 * partition key, 1,024 for a sort key), so a forged cursor can only move within the same index.
 * `belongsToList` must accept the key: every list reads one partition, so a cursor from another list
 * (another owner's, another endpoint's, another entity's) neither reads a different partition nor
 * reaches DynamoDB, which would refuse it with a 500.
 */
export function decodeCursor(
  cursor: string | undefined,
  keys: readonly KeyNames[],
  belongsToList: (key: Record<string, string>) => boolean,
): Record<string, string> | undefined {
  if (cursor === undefined) return undefined;
  const schema = z.strictObject(
    Object.fromEntries(
      keys.flatMap(([partitionKey, sortKey]) => [
        [partitionKey, partitionKeyValue],
        [sortKey, sortKeyValue],
      ]),
    ),
  );
  let key: Record<string, string>;
  try {
    key = schema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))) as Record<
      string,
      string
    >;
  } catch {
    throw invalidCursor();
  }
  if (!belongsToList(key)) throw invalidCursor();
  return key;
}
