// Bad options: every problem rejected at construction, in one InvalidOptionsError.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import {
  type CircuitBreakerOptions,
  circuitDefaults,
  resolveCircuitOptions,
} from '../../middleware/circuit-breaker/options.js';
import { InvalidOptionsError } from '../../middleware/errors.js';

const store = new MemoryCircuitStateStore();

function problemsOf(options: unknown): readonly string[] {
  try {
    new CircuitBreaker(options as CircuitBreakerOptions);
  } catch (error) {
    if (error instanceof InvalidOptionsError) return error.problems;
    throw error;
  }
  throw new Error('The options were accepted');
}

describe('CircuitBreaker options', () => {
  it('defaults to the seeds: 5 failures, 2 successes, 30 s timeout, 60 s reset, 1 s state cache', () => {
    expect(circuitDefaults).toEqual({
      failureThreshold: 5,
      successThreshold: 2,
      timeoutMs: 30_000,
      resetTimeoutMs: 60_000,
      stateTtlMs: 1000,
    });
  });

  it.each([
    [{}, 300_000],
    [{ timeoutMs: 3000 }, 30_000],
    [{ failureThreshold: 2, timeoutMs: 3000 }, 12_000],
    [{ timeoutMs: 100 }, 10_000],
    [{ failureThreshold: 1, timeoutMs: 2_000_000_000 }, 2_147_483_647],
  ])(
    'gives %o a window of 2 × failureThreshold × timeoutMs, 10 s at least (and at most 2^31 − 1 ms): %i ms',
    (settings, windowMs) => {
      expect(resolveCircuitOptions({ name: 'users', store, ...settings }).rollingWindowMs).toBe(windowMs);
    },
  );

  it('keeps a given window that holds failureThreshold timeouts', () => {
    const options = resolveCircuitOptions({ name: 'users', store, timeoutMs: 3000, rollingWindowMs: 15_000 });
    expect(options.rollingWindowMs).toBe(15_000);
  });

  it('refuses a window that cannot hold failureThreshold timeouts of one caller, naming both', () => {
    expect(problemsOf({ name: 'users', store, timeoutMs: 3000, rollingWindowMs: 10_000 })).toEqual([
      'rollingWindowMs (10000) must be at least failureThreshold × timeoutMs (5 × 3000 = 15000): a shorter ' +
        'window cannot hold failureThreshold timeouts of one caller, so a dependency that hangs could not ' +
        'open the circuit with one call at a time',
    ]);
    // The toolkit's 30 s timeout needs 150 s; the 10 s window the breaker had by default never held it.
    expect(problemsOf({ name: 'users', store, rollingWindowMs: 10_000 })).toEqual([
      expect.stringMatching(
        /^rollingWindowMs \(10000\) must be at least failureThreshold × timeoutMs \(5 × 30000 = 150000\)/,
      ),
    ]);
    // No window fits a threshold and timeout that long, given or not.
    expect(problemsOf({ name: 'users', store, failureThreshold: 10, timeoutMs: 300_000_000 })).toEqual([
      expect.stringMatching(/^rollingWindowMs \(2147483647\) must be at least .* = 3000000000\)/),
    ]);
  });

  it('reports a bad threshold or timeout once, not again as a window that cannot hold them', () => {
    expect(problemsOf({ name: 'users', store, timeoutMs: Number.NaN })).toHaveLength(1);
    expect(problemsOf({ name: 'users', store, failureThreshold: 0, rollingWindowMs: 10_000 })).toHaveLength(
      1,
    );
  });

  it('takes an explicit undefined as the default', () => {
    expect(() => new CircuitBreaker({ name: 'users', store, failureThreshold: undefined })).not.toThrow();
  });

  it('rejects an empty, blank, missing or overlong name', () => {
    expect(problemsOf({ name: '', store })).toEqual(['name must be a non-empty string']);
    expect(problemsOf({ name: '   ', store })).toEqual(['name must be a non-empty string']);
    expect(problemsOf({ store })).toEqual(['name must be a non-empty string']);
    expect(problemsOf({ name: 'x'.repeat(201), store })).toEqual(['name must be at most 200 characters']);
  });

  it.each([
    ['failureThreshold', 0],
    ['failureThreshold', -1],
    ['failureThreshold', 1.5],
    ['successThreshold', 0],
    ['successThreshold', Number.NaN],
  ])('rejects %s = %s', (field, value) => {
    expect(problemsOf({ name: 'users', store, [field]: value })).toEqual([
      `${field} must be an integer > 0 (got ${value})`,
    ]);
  });

  it.each([
    ['timeoutMs', -1],
    ['timeoutMs', 0],
    ['timeoutMs', Number.POSITIVE_INFINITY],
    ['timeoutMs', 2 ** 31],
    ['resetTimeoutMs', -5],
    ['rollingWindowMs', 0],
    ['stateTtlMs', -1],
  ])('rejects %s = %s', (field, value) => {
    const [problem] = problemsOf({ name: 'users', store, [field]: value });
    expect(problem).toMatch(new RegExp(`^${field} must be a number of milliseconds`));
  });

  it('accepts a stateTtlMs of 0 (read the store before every call)', () => {
    expect(() => new CircuitBreaker({ name: 'users', store, stateTtlMs: 0 })).not.toThrow();
  });

  it('rejects non-function hooks', () => {
    expect(problemsOf({ name: 'users', store, errorFilter: true, fallback: 'x', onEvent: 1 })).toEqual([
      'errorFilter must be a function',
      'fallback must be a function',
      'onEvent must be a function',
    ]);
  });

  it('needs exactly one of store and tableName, and a client only with tableName', () => {
    expect(problemsOf({ name: 'users' })).toEqual(['give exactly one of store and tableName']);
    expect(problemsOf({ name: 'users', store, tableName: 'bulwark-toolkit' })).toEqual([
      'give exactly one of store and tableName',
    ]);
    expect(problemsOf({ name: 'users', store, client: {} })).toEqual([
      'client goes with tableName, not with store',
    ]);
  });

  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['with a space', 'a b'],
    ['of 2 characters', 'ab'],
    ['of 256 characters', 'x'.repeat(256)],
  ])('refuses a tableName %s, which DynamoDB would refuse on every call', (_label, tableName) => {
    expect(problemsOf({ name: 'users', tableName })).toEqual([
      `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${JSON.stringify(tableName)})`,
    ]);
  });

  it('lists every problem at once, in one error that names the component', () => {
    let thrown: unknown;
    try {
      new CircuitBreaker({ name: '', store, failureThreshold: 0, successThreshold: -2, timeoutMs: -1 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidOptionsError);
    expect((thrown as InvalidOptionsError).problems).toHaveLength(4);
    expect((thrown as Error).message).toMatch(
      /^Invalid CircuitBreaker options: name must be a non-empty string; /,
    );
  });

  it('builds a DynamoDB store on the toolkit table when given a table name', () => {
    expect(() => new CircuitBreaker({ name: 'users', tableName: 'bulwark-toolkit' })).not.toThrow();
  });
});
