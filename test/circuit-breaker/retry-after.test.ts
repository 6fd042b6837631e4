// Retry-After as servers send it: delta-seconds, HTTP dates in all three forms, repeated headers, and the
// text Date.parse would otherwise read as some date.
import { describe, expect, it } from 'vitest';
import { parseRetryAfter, retryAfterSeconds } from '../../middleware/circuit-breaker/guarded-fetch.js';

const now = Date.parse('2030-01-01T00:00:00Z');

describe('parseRetryAfter', () => {
  it('reads delta-seconds, however large', () => {
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('99999999999', now)).toBe(99_999_999_999);
    expect(parseRetryAfter('9'.repeat(400), now)).toBe(Number.POSITIVE_INFINITY);
  });

  it('reads a decimal as the next whole second, not as a date', () => {
    expect(parseRetryAfter('1.5', now)).toBe(2);
    expect(parseRetryAfter('30.0', now)).toBe(30);
  });

  it('reads the first of comma-joined values (a header sent twice, as Headers.get joins it)', () => {
    expect(parseRetryAfter('60,', now)).toBe(60);
    expect(parseRetryAfter('5, 10', now)).toBe(5);
    expect(parseRetryAfter('120, 120', now)).toBe(120);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:01:30 GMT, Tue, 01 Jan 2030 00:05:00 GMT', now)).toBe(90);
  });

  it('reads the three HTTP date forms as GMT, a past date as 0', () => {
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:01:30 GMT', now)).toBe(90);
    expect(parseRetryAfter('Tuesday, 01-Jan-30 00:01:30 GMT', now)).toBe(90);
    expect(parseRetryAfter('Tue Jan  1 00:01:30 2030', now)).toBe(90);
    expect(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
  });

  it('ignores anything else, which Date.parse would read as some date', () => {
    for (const text of ['soon', '-1', '1e3', '120 seconds', '2031-01-01', 'Tue, 01 Jan 2030', '', ',5']) {
      expect(parseRetryAfter(text, now), text).toBeUndefined();
    }
    expect(parseRetryAfter('Tue, 99 Jan 2030 00:01:30 GMT', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('retryAfterSeconds', () => {
  it('takes the first of two Retry-After headers', () => {
    const headers = new Headers([
      ['retry-after', '5'],
      ['retry-after', '10'],
    ]);
    expect(headers.get('retry-after')).toBe('5, 10');
    expect(retryAfterSeconds(headers, now)).toBe(5);
  });
});
