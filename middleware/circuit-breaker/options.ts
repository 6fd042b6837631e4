// Circuit breaker options: their types and defaults, merged and validated once at construction.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { assertNoProblems } from '../errors.js';
import type { SecurityEventListener } from '../events.js';
import {
  checkFunctionOption,
  checkMethodsOption,
  definedOnly,
  requireOptionsObject,
  shownValue,
} from '../options.js';
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
  readonly failureThreshold?: number | undefined;
  /**
   * Consecutive successful half-open probes that close the circuit.
   * @default 2
   */
  readonly successThreshold?: number | undefined;
  /**
   * A call still running after this long is aborted (its AbortSignal fires), released with a
   * `DependencyTimeoutError`, and counted as a failure. Keep it below the Lambda timeout.
   * @default 30000
   */
  readonly timeoutMs?: number | undefined;
  /**
   * How long an open circuit fails fast before one instance of the fleet may probe the dependency.
   * @default 60000
   */
  readonly resetTimeoutMs?: number | undefined;
  /**
   * Length of the window failures are counted in while closed (windows are aligned to the epoch,
   * so every instance counts in the same one).
   * @default 10000
   */
  readonly rollingWindowMs?: number | undefined;
  /**
   * How long an instance trusts its cached copy of the shared state: the only DynamoDB request on
   * the success path is one read per this interval. 0 reads the store before every call.
   * @default 1000
   */
  readonly stateTtlMs?: number | undefined;
  /**
   * Returns true for an error that must NOT count as a failure (opossum's semantics): it is rethrown
   * to the caller, reported as a success, and skips the fallback, e.g. a 404 that is the caller's fault.
   * @default every error counts
   */
  readonly errorFilter?: ((error: unknown) => boolean) | undefined;
  /**
   * Produces the result instead of an error when the circuit rejects a call or a call fails;
   * it receives the `CircuitOpenError`, `DependencyTimeoutError` or the call's own error.
   * @default none: the error is thrown
   */
  readonly fallback?: ((error: unknown) => T | Promise<T>) | undefined;
  /**
   * Receives `circuit.opened`, `circuit.halfOpen`, `circuit.closed`, `circuit.rejected` and
   * `circuit.storeError` (the audit and metrics capability listens here).
   * @default none
   */
  readonly onEvent?: SecurityEventListener | undefined;
  /**
   * Where the breaker says that its store became unreachable, and reachable again.
   * @default console
   */
  readonly logger?: CircuitLogger | undefined;
}

/** Where the state lives: a store, or the toolkit table for a DynamoDB store. Exactly one. */
export type CircuitStoreChoice =
  | {
      /** The state store, e.g. a shared `DynamoDbCircuitStateStore`. */
      readonly store: CircuitStateStore;
      readonly tableName?: undefined;
      readonly client?: undefined;
    }
  | {
      /** The toolkit table; a `DynamoDbCircuitStateStore` is created on it. */
      readonly tableName: string;
      /** @default one shared client from `createDynamoDbClient()` */
      readonly client?: DynamoDBClient | undefined;
      readonly store?: undefined;
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

/**
 * What a breaker takes for an option left out (a service of createServiceClient times out at
 * defaultServiceTimeoutMs instead).
 */
export const circuitDefaults = {
  failureThreshold: 5,
  successThreshold: 2,
  timeoutMs: 30_000,
  resetTimeoutMs: 60_000,
  rollingWindowMs: 10_000,
  stateTtlMs: 1000,
} as const;

/** Longest circuit name: it is part of a DynamoDB key, and of every log line and metric. */
const maxNameLength = 200;

function positiveInteger(problems: string[], field: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0)
    problems.push(`${field} must be an integer > 0 (got ${shownValue(value)})`);
}

function duration(problems: string[], field: string, value: number, minimum: 0 | 1): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < minimum || value > maxTimerMs) {
    const bound = minimum === 0 ? '>= 0' : '> 0';
    problems.push(
      `${field} must be a number of milliseconds ${bound} and <= ${maxTimerMs} (got ${shownValue(value)})`,
    );
  }
}

/** The {@link CircuitStateStore} methods a breaker calls. */
const circuitStateStoreMethods = ['read', 'addFailure', 'replace'];

/** Merges the defaults and rejects invalid options with one error listing every problem. */
export function resolveCircuitOptions<T>(options: CircuitBreakerOptions<T>): ResolvedCircuitOptions<T> {
  requireOptionsObject('CircuitBreaker', options);
  const merged = { ...circuitDefaults, ...definedOnly(options) };
  const problems: string[] = [];
  const { name } = options;
  if (typeof name !== 'string' || name.trim().length === 0) {
    problems.push('name must be a non-empty string');
  } else if (name.length > maxNameLength) {
    problems.push(`name must be at most ${maxNameLength} characters`);
  }
  positiveInteger(problems, 'failureThreshold', merged.failureThreshold);
  positiveInteger(problems, 'successThreshold', merged.successThreshold);
  duration(problems, 'timeoutMs', merged.timeoutMs, 1);
  duration(problems, 'resetTimeoutMs', merged.resetTimeoutMs, 1);
  duration(problems, 'rollingWindowMs', merged.rollingWindowMs, 1);
  duration(problems, 'stateTtlMs', merged.stateTtlMs, 0);
  for (const field of ['errorFilter', 'fallback', 'onEvent'] as const) {
    checkFunctionOption(problems, field, options[field]);
  }
  checkMethodsOption(problems, 'logger', options.logger, ['warn', 'info'], 'a Powertools Logger');
  const hasStore = options.store !== undefined;
  const hasTable = options.tableName !== undefined;
  if (hasStore === hasTable) problems.push('give exactly one of store and tableName');
  // A store that fails when used would read as an outage of the service, and the breaker would open on it.
  checkMethodsOption(
    problems,
    'store',
    options.store,
    circuitStateStoreMethods,
    'a DynamoDbCircuitStateStore',
  );
  if (hasStore && options.client !== undefined) problems.push('client goes with tableName, not with store');
  if (hasTable) checkTableName(problems, options.tableName);
  assertNoProblems('CircuitBreaker', problems);
  return {
    name,
    failureThreshold: merged.failureThreshold,
    successThreshold: merged.successThreshold,
    timeoutMs: merged.timeoutMs,
    resetTimeoutMs: merged.resetTimeoutMs,
    rollingWindowMs: merged.rollingWindowMs,
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
