// Freezes Date at the start of a circuit breaker failure window, for tests that count failures in a row.
import { vi } from 'vitest';
import { circuitDefaults } from '../../middleware/circuit-breaker/options.js';

/**
 * Failure windows are aligned to the epoch, so two failures a few milliseconds apart can fall on either
 * side of a boundary and each count alone; a test expecting them to add up pins Date to a window's start
 * (undo with `vi.useRealTimers()`). Only Date is faked: timers and I/O run as usual.
 */
export function freezeAtFailureWindowStart(windowMs: number = circuitDefaults.rollingWindowMs): void {
  const now = Date.now();
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(now - (now % windowMs) + windowMs);
}
