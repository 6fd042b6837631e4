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
      rollingWindowMs: 10_000,
      stateTtlMs: 1000,
    });
  });

  it('counts failures in 10 s windows whatever the timeout, and takes that default written out', () => {
    expect(resolveCircuitOptions({ name: 'geo', store, timeoutMs: 3000 }).rollingWindowMs).toBe(10_000);
    expect(resolveCircuitOptions({ name: 'geo', store, timeoutMs: 60_000 }).rollingWindowMs).toBe(10_000);
    // A window too short to hold failureThreshold timeouts of one caller is the caller's trade-off, not
    // an error (README): a longer one also lets a busy service's rare failures add up.
    expect(() => new CircuitBreaker({ name: 'geo', store, rollingWindowMs: 10_000 })).not.toThrow();
    expect(
      () => new CircuitBreaker({ name: 'geo', store, timeoutMs: 3000, rollingWindowMs: 1 }),
    ).not.toThrow();
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

  it('rejects a logger without warn() and info(), first called when the store becomes unreachable', () => {
    expect(problemsOf({ name: 'users', store, logger: { warn: () => {} } })).toEqual([
      'logger must have warn() and info() (a Powertools Logger fits)',
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
    ['empty', '', '""'],
    ['blank', '   ', '"   "'],
    ['with a space', 'a b', '"a b"'],
    ['of 2 characters', 'ab', '"ab"'],
    // Shown up to its 80th character: the message stays short.
    ['of 256 characters', 'x'.repeat(256), `"${'x'.repeat(80)}…"`],
  ])('refuses a tableName %s, which DynamoDB would refuse on every call', (_label, tableName, shown) => {
    expect(problemsOf({ name: 'users', tableName })).toEqual([
      `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${shown})`,
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
