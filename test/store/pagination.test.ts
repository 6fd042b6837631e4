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

describe('decodeCursor, shape', () => {
  const encodeAny = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const decodeAny = (value: unknown) => decodeCursor(encodeAny(value), [['pk', 'sk']], () => true);

  it('takes exactly the key attributes, each a non-empty string', () => {
    expect(decodeAny({ pk: 'A', sk: 'B' })).toEqual({ pk: 'A', sk: 'B' });
    for (const forged of [
      { pk: 'A' },
      { pk: 'A', sk: 'B', extra: 'C' },
      { pk: 'A', sk: '' },
      { pk: 'A', sk: 1 },
      { pk: 'A', sk: { S: 'B' } },
      JSON.parse('{"pk":"A","sk":"B","__proto__":"C"}'),
      ['A', 'B'],
      null,
      'pk',
    ]) {
      expect(() => decodeAny(forged), JSON.stringify(forged)).toThrow('Invalid cursor');
    }
    expect(() => decodeCursor('not base64 json', [['pk', 'sk']], () => true)).toThrow('Invalid cursor');
  });

  it('asks belongsToList only about a key of the right shape, and refuses what it refuses', () => {
    const asked: Record<string, string>[] = [];
    const belongsToList = (key: Record<string, string>) => {
      asked.push(key);
      return key.pk === 'MINE';
    };
    expect(() => decodeCursor(encodeAny({ pk: 'THEIRS', sk: 'x' }), [['pk', 'sk']], belongsToList)).toThrow(
      'Invalid cursor',
    );
    expect(() => decodeCursor(encodeAny({ pk: 'MINE' }), [['pk', 'sk']], belongsToList)).toThrow(
      'Invalid cursor',
    );
    expect(decodeCursor(encodeAny({ pk: 'MINE', sk: 'x' }), [['pk', 'sk']], belongsToList)).toEqual({
      pk: 'MINE',
      sk: 'x',
    });
    expect(asked).toEqual([
      { pk: 'THEIRS', sk: 'x' },
      { pk: 'MINE', sk: 'x' },
    ]);
  });
});
