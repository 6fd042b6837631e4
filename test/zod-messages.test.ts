import { describe, expect, it } from 'vitest';
import * as z from '../functions/shared/zod.js';

/** Each issue of `value` against `schema` as `path: message`. */
function messagesOf(schema: z.ZodMiniType, value: unknown): string[] {
  const issues = z.safeParse(schema, value).error?.issues ?? [];
  return issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe("the sample's zod messages", () => {
  it('name the limit or the accepted values in the voice of the hand-written ones', () => {
    const schema = z.object({
      name: z.string().check(z.maxLength(100)),
      code: z.string().check(z.minLength(1)),
      pin: z.string().check(z.minLength(4)),
      phone: z.string(),
      tags: z.array(z.enum(['booking.created', 'booking.cancelled'])),
      rooms: z.array(z.string()).check(z.maxLength(2)),
      count: z.number().check(z.maximum(10)),
      list: z.array(z.string()),
    });
    const value = {
      name: 'x'.repeat(101),
      code: '',
      pin: '12',
      phone: null,
      tags: ['booking.nope'],
      rooms: ['a', 'b', 'c'],
      count: 11,
      list: {},
    };
    expect(messagesOf(schema, value)).toEqual([
      'name: Must be at most 100 characters',
      'code: Must not be empty',
      'pin: Must be at least 4 characters',
      'phone: Must be a string',
      'tags.0: Must be one of booking.created, booking.cancelled',
      'rooms: Must have at most 2 items',
      'count: Must be at most 10',
      'list: Must be an array',
    ]);
  });

  it('say Required of a value not given, and keep a message the schema gives', () => {
    const schema = z.object({
      name: z.string(),
      id: z.string().check(z.maxLength(3, 'Must be 1-3 letters')),
    });
    expect(messagesOf(schema, { id: 'abcd' })).toEqual(['name: Required', 'id: Must be 1-3 letters']);
  });
});
