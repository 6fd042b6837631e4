// Reading a stored item's attributes without making any up: a record written by hand, by an older or a
// newer version may lack an attribute or hold a value this version does not know.

import { BulwarkError } from '../../middleware/errors.js';

/**
 * A stored item lacks an attribute its reader needs, or holds a value this version does not know (a
 * status a newer version added). A 500 `INTERNAL`: the request cannot be answered from that record, and
 * answering with a made-up value would mislead. The message names the item's key and the attribute,
 * never a value, which may be personal data.
 */
export class StoredRecordError extends BulwarkError {
  readonly recordKey: string;
  readonly attribute: string;
  readonly problem: 'missing' | 'unknown';

  /** `expected` says what a `missing` attribute should have been. */
  constructor(
    item: Record<string, unknown>,
    attribute: string,
    problem: 'missing' | 'unknown',
    expected = 'a string',
  ) {
    const recordKey = `${String(item.pk)}/${String(item.sk)}`;
    super(
      'INTERNAL',
      problem === 'missing'
        ? `The stored record ${recordKey} has no ${attribute} (or not ${expected})`
        : `The stored record ${recordKey} holds a value of ${attribute} this version does not know`,
    );
    this.name = 'StoredRecordError';
    this.recordKey = recordKey;
    this.attribute = attribute;
    this.problem = problem;
  }
}

/** `item[attribute]`, a string the record cannot do without. */
export function requiredString(item: Record<string, unknown>, attribute: string): string {
  const value = item[attribute];
  if (typeof value !== 'string') throw new StoredRecordError(item, attribute, 'missing');
  return value;
}

/** `item[attribute]`, which must be one of `known`. */
export function oneOf<Value extends string>(
  item: Record<string, unknown>,
  attribute: string,
  known: readonly Value[],
): Value {
  const value = requiredString(item, attribute);
  if (!(known as readonly string[]).includes(value)) throw new StoredRecordError(item, attribute, 'unknown');
  return value as Value;
}
