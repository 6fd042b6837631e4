// Circuit breaker options: their types and defaults, merged and validated once at construction.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { assertNoProblems } from '../errors.js';
import type { SecurityEventListener } from '../events.js';
import { definedOnly } from '../options.js';
import { checkTableName } from '../store/tables.js';
import { maxTimerMs } from '../time-limits.js';
import { DynamoDbCircuitStateStore } from './dynamodb-store.js';
import type { CircuitStateStore } from './state.js';

/** The slice of a logger the breaker needs; a Powertools Logger fits. */
export interface CircuitLogger {
  warn(message: string, ...extra: unknown[]): void;
  info(message: string, ...extra: unknown[]): void;
}

export interface CircuitBreakerSettings<T> {
  /** The circuit's name: every instance with this name (on one store) shares one state. Required. */
  readonly name: string;
  /**
   * Failures, counted fleet-wide in one epoch-aligned window (`rollingWindowMs`), that open a closed circuit.
   * @default 5
   */
  readonly failureThreshold?: number;
  /**
   * Consecutive successful half-open probes that close the circuit.
   * @default 2
   */
  readonly successThreshold?: number;
  /**
   * A call still running after this long is aborted (its AbortSignal fires), released with a
   * `DependencyTimeoutError`, and counted as a failure. Keep it below the Lambda timeout.
   * @default 30000
   */
  readonly timeoutMs?: number;
  /**
   * How long an open circuit fails fast before one instance of the fleet may probe the dependency.
   * @default 60000
   */
  readonly resetTimeoutMs?: number;
  /**
   * Length of the window failures are counted in while closed (windows are aligned to the epoch,
   * so every instance counts in the same one). At least `failureThreshold × timeoutMs`, else
   * `InvalidOptionsError`: a shorter window cannot hold `failureThreshold` timeouts of one caller, so
   * a dependency that hangs could open the circuit only through concurrent calls.
   * @default 2 × failureThreshold × timeoutMs, at least 10000 (see {@link defaultRollingWindowMs})
   */
  readonly rollingWindowMs?: number;
  /**
   * How long an instance trusts its cached copy of the shared state: the only DynamoDB request on
   * the success path is one read per this interval. 0 reads the store before every call.
   * @default 1000
   */
  readonly stateTtlMs?: number;
  /**
   * Returns true for an error that must NOT count as a failure (opossum's semantics): it is rethrown
   * to the caller, reported as a success, and skips the fallback, e.g. a 404 that is the caller's fault.
   * @default every error counts
   */
  readonly errorFilter?: (error: unknown) => boolean;
  /**
   * Produces the result instead of an error when the circuit rejects a call or a call fails;
   * it receives the `CircuitOpenError`, `DependencyTimeoutError` or the call's own error.
   * @default none: the error is thrown
   */
  readonly fallback?: (error: unknown) => T | Promise<T>;
  /**
   * Receives `circuit.opened`, `circuit.halfOpen`, `circuit.closed`, `circuit.rejected` and
   * `circuit.storeError` (the audit and metrics capability listens here).
   * @default none
   */
  readonly onEvent?: SecurityEventListener;
  /**
   * Where the breaker says that its store became unreachable, and reachable again.
   * @default console
   */
  readonly logger?: CircuitLogger;
}

/** Where the state lives: a store, or the toolkit table for a DynamoDB store. Exactly one. */
export type CircuitStoreChoice =
  | {
      /** The state store, e.g. a shared `DynamoDbCircuitStateStore`. */
      readonly store: CircuitStateStore;
      readonly tableName?: never;
      readonly client?: never;
    }
  | {
      /** The toolkit table; a `DynamoDbCircuitStateStore` is created on it. */
      readonly tableName: string;
      /** @default one shared client from `createDynamoDbClient()` */
      readonly client?: DynamoDBClient;
      readonly store?: never;
    };

export type CircuitBreakerOptions<T = unknown> = CircuitBreakerSettings<T> & CircuitStoreChoice;

/** Options with every default applied. */
export interface ResolvedCircuitOptions<T> {
  readonly name: string;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly timeoutMs: number;
  readonly resetTimeoutMs: number;
  readonly rollingWindowMs: number;
  readonly stateTtlMs: number;
  readonly errorFilter: ((error: unknown) => boolean) | undefined;
  readonly fallback: ((error: unknown) => T | Promise<T>) | undefined;
  readonly onEvent: SecurityEventListener | undefined;
  readonly logger: CircuitLogger;
  readonly store: CircuitStateStore;
}

export const circuitDefaults = {
  failureThreshold: 5,
  successThreshold: 2,
  timeoutMs: 30_000,
  resetTimeoutMs: 60_000,
  stateTtlMs: 1000,
} as const;

/** The shortest failure window a breaker gets by default, whatever its timeout. */
export const minimumDefaultRollingWindowMs = 10_000;

/**
 * The failure window of a breaker given none: twice the time `failureThreshold` back-to-back timeouts
 * take, and at least {@link minimumDefaultRollingWindowMs}. Windows are aligned to the epoch, so one
 * caller's run of timeouts is cut at a boundary, and each of its calls starts a little after the last
 * timed out (the failure's count, a retry's backoff, the client's turnaround): with up to `timeoutMs`
 * between them, every whole window still holds `failureThreshold` of them, and a dependency that only
 * ever times out opens the circuit within the first whole window, even with one caller at a time.
 */
export function defaultRollingWindowMs(failureThreshold: number, timeoutMs: number): number {
  return Math.min(maxTimerMs, Math.max(minimumDefaultRollingWindowMs, 2 * failureThreshold * timeoutMs));
}

/** Longest circuit name: it is part of a DynamoDB key, and of every log line and metric. */
const maxNameLength = 200;

/** Adds a problem unless `value` is an integer > 0; returns whether it is one. */
function positiveInteger(problems: string[], field: string, value: number): boolean {
  if (Number.isInteger(value) && value > 0) return true;
  problems.push(`${field} must be an integer > 0 (got ${value})`);
  return false;
}

/** Adds a problem unless `value` is a number of milliseconds in range; returns whether it is one. */
function duration(problems: string[], field: string, value: number, minimum: 0 | 1): boolean {
  if (typeof value === 'number' && Number.isFinite(value) && value >= minimum && value <= maxTimerMs)
    return true;
  const bound = minimum === 0 ? '>= 0' : '> 0';
  problems.push(`${field} must be a number of milliseconds ${bound} and <= ${maxTimerMs} (got ${value})`);
  return false;
}

/** Merges the defaults and rejects invalid options with one error listing every problem. */
export function resolveCircuitOptions<T>(options: CircuitBreakerOptions<T>): ResolvedCircuitOptions<T> {
  const merged = { ...circuitDefaults, ...definedOnly(options) };
  const problems: string[] = [];
  const { name } = options;
  if (typeof name !== 'string' || name.trim().length === 0) {
    problems.push('name must be a non-empty string');
  } else if (name.length > maxNameLength) {
    problems.push(`name must be at most ${maxNameLength} characters`);
  }
  const { failureThreshold, timeoutMs } = merged;
  const thresholdValid = positiveInteger(problems, 'failureThreshold', failureThreshold);
  positiveInteger(problems, 'successThreshold', merged.successThreshold);
  const timeoutValid = duration(problems, 'timeoutMs', timeoutMs, 1);
  duration(problems, 'resetTimeoutMs', merged.resetTimeoutMs, 1);
  const givenWindowMs = merged.rollingWindowMs;
  const windowValid = givenWindowMs === undefined || duration(problems, 'rollingWindowMs', givenWindowMs, 1);
  const rollingWindowMs = givenWindowMs ?? defaultRollingWindowMs(failureThreshold, timeoutMs);
  duration(problems, 'stateTtlMs', merged.stateTtlMs, 0);
  if (thresholdValid && timeoutValid && windowValid && rollingWindowMs < failureThreshold * timeoutMs) {
    problems.push(
      `rollingWindowMs (${rollingWindowMs}) must be at least failureThreshold × timeoutMs ` +
        `(${failureThreshold} × ${timeoutMs} = ${failureThreshold * timeoutMs}): a shorter window cannot hold ` +
        'failureThreshold timeouts of one caller, so a dependency that hangs could not open the circuit with one call at a time',
    );
  }
  for (const field of ['errorFilter', 'fallback', 'onEvent'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'function') {
      problems.push(`${field} must be a function`);
    }
  }
  const hasStore = options.store !== undefined;
  const hasTable = options.tableName !== undefined;
  if (hasStore === hasTable) problems.push('give exactly one of store and tableName');
  if (hasStore && options.client !== undefined) problems.push('client goes with tableName, not with store');
  if (hasTable) checkTableName(problems, options.tableName);
  assertNoProblems('CircuitBreaker', problems);
  return {
    name,
    failureThreshold: merged.failureThreshold,
    successThreshold: merged.successThreshold,
    timeoutMs: merged.timeoutMs,
    resetTimeoutMs: merged.resetTimeoutMs,
    rollingWindowMs,
    stateTtlMs: merged.stateTtlMs,
    errorFilter: options.errorFilter,
    fallback: options.fallback,
    onEvent: options.onEvent,
    logger: options.logger ?? console,
    store:
      options.store ??
      new DynamoDbCircuitStateStore({
        tableName: options.tableName as string,
        ...(options.client ? { client: options.client } : {}),
      }),
  };
}
