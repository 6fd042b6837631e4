// Opaque, validated cursors for DynamoDB pagination, checked without a schema library: the booking event
// sweeper loads the bookings model, which pages, and no schema library.
import { ValidationError } from '../../middleware/errors.js';

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** The attributes of a table's or an index's key, as its ExclusiveStartKey carries them. */
export type KeyNames = readonly [partitionKey: string, sortKey: string];

/** A key value no longer than DynamoDB takes, which counts UTF-8 bytes (350 × `€` is 1,050), not characters. */
const isKeyValue = (value: unknown, maxBytes: number): value is string =>
  typeof value === 'string' && value.length > 0 && Buffer.byteLength(value, 'utf8') <= maxBytes;
const maxPartitionKeyBytes = 2048;
const maxSortKeyBytes = 1024;

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
  const expected = new Map(
    keys.flatMap(([partitionKey, sortKey]) => [
      [partitionKey, maxPartitionKeyBytes],
      [sortKey, maxSortKeyBytes],
    ]),
  );
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!isExactKey(key, expected)) throw invalidCursor();
  if (!belongsToList(key)) throw invalidCursor();
  return key;
}

/** Whether `value` is an object with exactly the `expected` attributes, each a key value within its size. */
function isExactKey(value: unknown, expected: ReadonlyMap<string, number>): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return (
    entries.length === expected.size &&
    entries.every(([name, attribute]) => {
      const maxBytes = expected.get(name);
      return maxBytes !== undefined && isKeyValue(attribute, maxBytes);
    })
  );
}
