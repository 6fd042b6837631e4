import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../functions/shared/pagination.js';

const cursorOf = (key: Record<string, string>) => encodeCursor(key) as string;
const decode = (key: Record<string, string>) =>
  decodeCursor(
    cursorOf(key),
    [
      ['pk', 'sk'],
      ['gsi1pk', 'gsi1sk'],
    ],
    () => true,
  );
const key = { pk: 'BOOKING#b1', sk: 'BOOKING', gsi1pk: 'BOOKING', gsi1sk: '2030-01-07T09:00:00.000Z#b1' };

describe('decodeCursor', () => {
  it('holds each key value to DynamoDB’s size in UTF-8 bytes: 1,024 for a sort key, 2,048 for a partition key', () => {
    // 341 × `€` (3 bytes each) and a 1-byte letter: 341 characters, 1,024 bytes.
    const sortKeyAtLimit = `${'€'.repeat(341)}a`;
    expect(decode({ ...key, sk: sortKeyAtLimit })).toEqual({ ...key, sk: sortKeyAtLimit });
    expect(decode({ ...key, gsi1sk: sortKeyAtLimit })).toEqual({ ...key, gsi1sk: sortKeyAtLimit });
    const partitionKeyAtLimit = `${'€'.repeat(682)}ab`;
    expect(decode({ ...key, pk: partitionKeyAtLimit })).toEqual({ ...key, pk: partitionKeyAtLimit });

    for (const tooLong of [
      { ...key, sk: '€'.repeat(350) },
      { ...key, gsi1sk: `${sortKeyAtLimit}a` },
      { ...key, pk: `${partitionKeyAtLimit}a` },
      { ...key, gsi1pk: `${partitionKeyAtLimit}a` },
    ]) {
      expect(() => decode(tooLong)).toThrow('Invalid cursor');
    }
  });
});
