import { describe, expect, it } from 'vitest';
import { parseMessageBody } from '../functions/shared/queue-messages.js';
import * as z from '../functions/shared/zod.js';

const schema = z.strictObject({ id: z.string(), data: z.strictObject({ name: z.string() }) });

describe('parseMessageBody', () => {
  it('counts the fields a strict object does not know and never names them: a producer may key a map by address', () => {
    const body = JSON.stringify({
      id: 'm-1',
      'ada@example.com': 1,
      'grace@example.com': 2,
      data: { name: 'Ada', '+15550100': 'x' },
    });
    const parsed = parseMessageBody(schema, body);
    expect(parsed).toEqual({
      ok: false,
      reason: 'Invalid message: data: 1 unknown field; (root): 2 unknown fields',
    });
  });

  it('keeps the path and message of every other issue', () => {
    expect(parseMessageBody(schema, JSON.stringify({ id: 1, data: {} }))).toEqual({
      ok: false,
      reason: 'Invalid message: id: Must be a string; data.name: Required',
    });
    expect(parseMessageBody(schema, 'not json')).toEqual({ ok: false, reason: 'Body is not JSON' });
  });
});
