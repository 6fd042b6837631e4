// Opaque, validated cursors for DynamoDB pagination.
import { ValidationError } from '../../middleware/errors.js';
import * as z from './zod.js';

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

const keyValue = z.string().check(z.minLength(1), z.maxLength(1024));

/** Page size shared by every list route. */
export const pageLimitSchema = z._default(z.coerce.number().check(z.int(), z.minimum(1), z.maximum(100)), 20);

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
 * Decodes a cursor into an ExclusiveStartKey with exactly the index's key attributes, each a string,
 * so a forged cursor can only move within the same index. `belongsToList` must accept the key: every
 * list reads one partition, so a cursor from another list (another owner's, another endpoint's, another
 * entity's) neither reads a different partition nor reaches DynamoDB, which would refuse it with a 500.
 */
export function decodeCursor(
  cursor: string | undefined,
  keyNames: readonly string[],
  belongsToList: (key: Record<string, string>) => boolean,
): Record<string, string> | undefined {
  if (cursor === undefined) return undefined;
  const schema = z.strictObject(Object.fromEntries(keyNames.map((name) => [name, keyValue])));
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
