// Time limits the toolkit hands to Node's timers (setTimeout, AbortSignal.timeout()), checked once, the same way everywhere.
import { shownValue } from './options.js';

/** setTimeout's largest delay, AbortSignal.timeout()'s too; a longer one fires after 1 ms. */
export const maxTimerMs = 2_147_483_647;

/**
 * Adds a problem to `problems` unless `value` is a whole number of milliseconds 1..{@link maxTimerMs}:
 * AbortSignal.timeout() throws for a fraction, 0 fails every call at once or turns the bound off, and
 * past the maximum the timer fires after 1 ms. Returns whether `value` is usable.
 *
 * @example
 * const problems: string[] = [];
 * checkTimeLimit(problems, 'timeoutMs', options.timeoutMs ?? 3000);
 * assertNoProblems('JwksKeyStore', problems);
 */
export function checkTimeLimit(problems: string[], field: string, value: number): boolean {
  if (Number.isInteger(value) && value >= 1 && value <= maxTimerMs) return true;
  problems.push(`${field} must be an integer of milliseconds 1..${maxTimerMs} (got ${shownValue(value)})`);
  return false;
}
