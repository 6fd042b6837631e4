import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseEmailMessage } from '../../functions/email-worker/messages.js';

describe('an email message whose text holds a lone surrogate', () => {
  it.each([
    ['a name', { type: 'welcome', data: { name: 'Ada \\ud800' } }, 'data.name'],
    [
      'an alert event',
      {
        type: 'security-alert',
        data: { name: 'Ada', event: 'x\\udc00', details: 'd', occurredAt: '2026-01-01T00:00:00Z' },
      },
      'data.event',
    ],
    [
      'alert details',
      {
        type: 'security-alert',
        data: { name: 'Ada', event: 'e', details: '\\ud83d', occurredAt: '2026-01-01T00:00:00Z' },
      },
      'data.details',
    ],
  ])('fails the schema in %s, naming the field', (_where, message, field) => {
    // JSON.stringify would write the escape doubled: the body holds JSON's own `\ud800` escape.
    const body = JSON.stringify({ id: randomUUID(), to: 'ada@example.com', ...message }).replaceAll(
      '\\\\u',
      '\\u',
    );
    expect(parseEmailMessage(body)).toEqual({
      ok: false,
      reason: `Invalid message: ${field}: Must not contain a lone surrogate (ill-formed UTF-16)`,
    });
  });

  it('passes with a whole surrogate pair (an emoji)', () => {
    const body = JSON.stringify({
      id: randomUUID(),
      type: 'welcome',
      to: 'ada@example.com',
      data: { name: 'Ada 😀' },
    });
    expect(parseEmailMessage(body).ok).toBe(true);
  });
});
