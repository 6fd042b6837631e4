// The circuit breaker: CLOSED / OPEN / HALF_OPEN shared by every instance through a state store.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { storeFailureReason } from '../dependency-failure.js';
import {
  CircuitOpenError,
  DeadlineExceededError,
  DependencyTimeoutError,
  InvalidArgumentError,
} from '../errors.js';
import { emitEvent, type SecurityEventListener, type SecurityEventType } from '../events.js';
import { inCurrentInvocation } from '../invocation-store.js';
import { checkFunctionOption, shownValue } from '../options.js';
import { toEpochSeconds } from '../store/tables.js';
import { Deadline, DeadlineQueue } from './deadlines.js';
import { MemoryCircuitStateStore } from './memory-store.js';
import { type CircuitBreakerOptions, type ResolvedCircuitOptions, resolveCircuitOptions } from './options.js';
import { type CircuitRecord, CircuitState, type CircuitStateName, initialRecord } from './state.js';

/**
 * The breaker's own events, named and shaped as opossum's so that listeners carry over. Each
 * transition is emitted by the one instance whose write made it, not by every instance that sees it.
 */
export type CircuitBreakerEvents<T> = {
  open: [];
  halfOpen: [resetTimeoutMs: number];
  close: [];
  reject: [error: CircuitOpenError];
  timeout: [error: DependencyTimeoutError, latencyMs: number];
  failure: [error: unknown, latencyMs: number];
  /** A result, or an error the errorFilter excused (as opossum does). */
  success: [result: T | unknown, latencyMs: number];
  fallback: [result: T, error: unknown];
};

/** What a guarded action receives. */
export interface GuardedCall {
  /**
   * Aborted when the call times out, also when first read after that: pass it on (to fetch, the AWS
   * SDK...) so the work stops too. Created on first read or at the timeout: an AbortSignal costs
   * microseconds, more than the rest of the call.
   */
  readonly signal: AbortSignal;
}

/** The action a breaker guards. */
export type GuardedAction<T> = (call: GuardedCall) => PromiseLike<T> | T;

export interface ExecuteOptions {
  /**
   * A shorter timeout for this call only, a finite number > 0; like the breaker's own, it counts when
   * it runs out. For the time the caller has left, give `deadline` instead. @default the breaker's timeoutMs
   */
  readonly timeoutMs?: number | undefined;
  /**
   * Epoch ms by which the caller needs its answer, e.g. the Lambda's deadline less a margin. A call
   * it cuts short, or that comes after it, fails with `DeadlineExceededError` (504), which neither
   * counts nor goes to the fallback. No store request holds the call past it either: a state read or
   * probe lease still pending then ends the call with that error, and a failure still being counted
   * or a probe's outcome still being written finishes in the background. @default none
   */
  readonly deadline?: number | undefined;
  /**
   * Receives the events this call causes (its rejection, the circuit opening, half-opening or closing
   * on its outcome, a store failure it meets) instead of the breaker's `onEvent`: a listener that adds
   * what the breaker cannot know, such as the correlation id of the message the call is made for.
   * @default the breaker's onEvent
   */
  readonly onEvent?: SecurityEventListener | undefined;
}

/** Extra time a half-open probe lease lasts beyond the call's own timeout, for the store writes around it. */
const leaseMarginMs = 1000;

/** How long local state records are kept: well past any window or reset timeout. */
const retentionMs = 24 * 60 * 60 * 1000;

/** Attempts at deciding a call when other instances keep winning the races for the probe lease. */
const maxDecisionRounds = 3;

/** What the calls of one breaker share, built once per breaker so that a call allocates nothing more. */
interface CallSite<T> {
  readonly name: string;
  readonly queue: DeadlineQueue;
  readonly events: EventEmitter<CircuitBreakerEvents<T>>;
  /**
   * Counts a closed-state failure and produces the call's outcome (the error, or the fallback's
   * result), by the caller's deadline at the latest.
   */
  readonly closedFailure: (call: PendingCall<T>, error: unknown) => Promise<T>;
  /**
   * Whether Lambda may run several invocations at once in this process (Managed Instances set
   * `AWS_LAMBDA_MAX_CONCURRENCY`): each call then keeps its async context for its timeout.
   */
  readonly concurrentInvocations: boolean;
}

/**
 * One call in flight: settles once, with the action's outcome or the timeout, whichever is first.
 * A closed-state call (`generation` set) settles the caller's promise itself, success and failure
 * handling included, so the hot path costs one promise rather than a chain of them.
 */
class PendingCall<T> extends Deadline implements GuardedCall {
  private controller: AbortController | undefined;
  private settled = false;
  /**
   * The timeout, run in the caller's invocation. The breaker's one timer fires in the invocation of the
   * call that armed it, so without this a timeout would be reported (events, audit and log lines) in
   * another's. Made only where invocations run concurrently.
   */
  private readonly expireInCallersInvocation: (() => void) | undefined;

  constructor(
    private readonly site: CallSite<T>,
    readonly startedAt: number,
    private readonly timeoutMs: number,
    /** Epoch ms by which the caller needs its answer; Infinity when it gave none. */
    readonly callerDeadline: number,
    /** The closed generation the call runs under; undefined for a half-open probe. */
    readonly generation: number | undefined,
    /** Where the events a closed-state call's failure causes go (the circuit opening). */
    readonly onEvent: SecurityEventListener | undefined,
    private readonly resolve: (value: T) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    super(Math.min(startedAt + timeoutMs, callerDeadline));
    this.expireInCallersInvocation = site.concurrentInvocations
      ? inCurrentInvocation(() => this.expireNow())
      : undefined;
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  // Plain methods, called from closures: arrow-function class fields cost ~0.7 µs per call here.
  succeed(value: T): void {
    if (this.settled) return;
    this.settled = true;
    this.site.queue.remove(this);
    const { events } = this.site;
    // Skip the clock read when nobody listens: it is a measurable share of the closed-state cost.
    if (this.generation !== undefined && events.listenerCount('success') > 0) {
      events.emit('success', value, Date.now() - this.startedAt);
    }
    this.resolve(value);
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.site.queue.remove(this);
    this.settleFailure(error);
  }

  expire(): void {
    if (this.settled) return;
    if (this.expireInCallersInvocation) this.expireInCallersInvocation();
    else this.expireNow();
  }

  private expireNow(): void {
    this.settled = true;
    // The caller's deadline came first: running out is the caller's, not the dependency's.
    const error =
      this.callerDeadline < this.startedAt + this.timeoutMs
        ? new DeadlineExceededError(this.site.name, this.deadline - this.startedAt)
        : new DependencyTimeoutError(this.site.name, this.timeoutMs);
    // Created here if the action has not read it yet: one that reads it later, after an await that
    // outlasted the timeout, must get an aborted signal, not a fresh one that never fires.
    this.controller ??= new AbortController();
    this.controller.abort(error);
    this.settleFailure(error);
  }

  private settleFailure(error: unknown): void {
    if (this.generation === undefined) this.reject(error);
    else this.site.closedFailure(this, error).then(this.resolve, this.reject);
  }
}

/**
 * A circuit breaker whose state every Lambda instance shares through DynamoDB (the toolkit table,
 * `CB#<name>`). While CLOSED a success writes nothing and the state is re-read at most once per
 * `stateTtlMs`; each failure counts atomically toward the fleet-wide window count (one UpdateItem, two
 * for the first failure of a window), and the instance whose count reaches `failureThreshold` opens
 * the circuit with a conditional write. OPEN fails fast with
 * {@link CircuitOpenError} (503, Retry-After) or the fallback; once `resetTimeoutMs` has passed, the
 * first instance to take the half-open lease probes, alone across the fleet, and `successThreshold`
 * consecutive successes close the circuit while any failure reopens it. Half-open is computed from
 * the stored open time when a call arrives: no timers, since a Lambda process is frozen between calls.
 * If the store is unreachable the breaker carries on with the same rules on local state, and no store
 * request holds a call past the caller's deadline.
 *
 * @example
 * const breaker = new CircuitBreaker<Response>({
 *   name: 'users',
 *   tableName: process.env.TOOLKIT_TABLE_NAME as string,
 * });
 * const response = await breaker.execute(({ signal }) => fetch(url, { signal }));
 */
export class CircuitBreaker<T = unknown> extends EventEmitter<CircuitBreakerEvents<T>> {
  readonly name: string;
  private readonly options: ResolvedCircuitOptions<T>;
  /** Holds this instance's state while the shared store is unreachable. */
  private readonly local = new MemoryCircuitStateStore();
  private readonly deadlines = new DeadlineQueue();
  /** Identifies this instance's probe leases in the shared record. */
  private readonly instanceId = randomUUID();
  private probeCount = 0;
  /** This instance's copy of the shared record, trusted until `validUntil`. */
  private record: CircuitRecord = initialRecord;
  /** Counts records remembered, so a read that started before a write cannot replace what it wrote. */
  private recordsRemembered = 0;
  private validUntil = 0;
  /** Deciding on local state: the shared store failed and has not answered since. */
  private usingLocal = false;
  /** When the shared store may next be tried, in the background, while on local state. */
  private nextStoreProbe = 0;
  private storeProbe: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly site: CallSite<T>;
  private warnedOfShortBudget = false;

  constructor(options: CircuitBreakerOptions<T>) {
    super();
    this.options = resolveCircuitOptions(options);
    this.name = this.options.name;
    this.site = {
      name: this.name,
      queue: this.deadlines,
      events: this,
      closedFailure: (call, error) =>
        this.closedFailure(error, call.startedAt, call.generation ?? 0, call.callerDeadline, call.onEvent),
      concurrentInvocations: 'AWS_LAMBDA_MAX_CONCURRENCY' in process.env,
    };
  }

  /** The state this instance last saw; at most `stateTtlMs` behind the fleet's, or local while the store is down. */
  get state(): CircuitStateName {
    return this.record.state;
  }

  /**
   * How long a call may run unless it asks for less: what a caller with a deadline must have left for a
   * call to finish, not be cut short by it.
   */
  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** Whether the breaker is deciding on local state because its store is unreachable. */
  get isUsingLocalState(): boolean {
    return this.usingLocal;
  }

  /**
   * Warns, once per instance, when callers give calls no more than `availableMs`, which is not longer
   * than `timeoutMs`: a dependency that hangs is then always cut by the caller's deadline, which never
   * counts, so the circuit cannot open for it. `serviceCalls` checks the Lambda's time on every request.
   */
  checkTimeBudget(availableMs: number): void {
    if (this.warnedOfShortBudget || availableMs > this.options.timeoutMs) return;
    this.warnedOfShortBudget = true;
    this.options.logger.warn(
      'Circuit timeoutMs is not shorter than the time calls are given: a hung dependency is cut by the deadline, which does not count, so this circuit cannot open for it; set timeoutMs below the function timeout less the margin',
      { circuit: this.name, timeoutMs: this.options.timeoutMs, availableMs: Math.round(availableMs) },
    );
  }

  /**
   * Runs `action` through the circuit. Resolves with its result; rejects with its error, with a
   * {@link DependencyTimeoutError} after `timeoutMs`, or with a {@link CircuitOpenError} when the
   * circuit is open, unless a fallback supplies a result instead; with a
   * {@link DeadlineExceededError}, and no fallback, once the caller's `deadline` has passed.
   */
  execute(action: GuardedAction<T>, options?: ExecuteOptions): Promise<T> {
    const now = Date.now();
    const timeoutMs = options === undefined ? this.options.timeoutMs : this.timeoutFor(options);
    const deadline = options?.deadline ?? Number.POSITIVE_INFINITY;
    if (Number.isNaN(timeoutMs)) {
      return Promise.reject(
        new InvalidArgumentError(
          `timeoutMs must be a finite number of milliseconds > 0 (got ${shownValue(options?.timeoutMs)}); for the time the caller has left, give a deadline`,
        ),
      );
    }
    if (typeof deadline !== 'number' || Number.isNaN(deadline)) {
      return Promise.reject(
        new InvalidArgumentError(
          `deadline must be a number of epoch milliseconds (got ${shownValue(deadline)})`,
        ),
      );
    }
    // The breaker's own listener was checked when it was built; a call's, only now.
    const argumentProblems: string[] = [];
    checkFunctionOption(argumentProblems, 'onEvent', options?.onEvent);
    if (argumentProblems.length > 0)
      return Promise.reject(new InvalidArgumentError(argumentProblems.join('; ')));
    const onEvent = options?.onEvent ?? this.options.onEvent;
    if (deadline <= now) return Promise.reject(new DeadlineExceededError(this.name, 0));
    // The hot path: closed and fresh, so no store request, no await, and nothing written on success.
    if (now < this.validUntil && this.record.state === CircuitState.closed) {
      return this.runClosed(action, now, timeoutMs, deadline, this.record.generation, onEvent);
    }
    return this.decide(action, now, timeoutMs, deadline, onEvent);
  }

  /**
   * A per-call timeout can only shorten the breaker's; NaN when it is not a finite number > 0. Zero or
   * less is refused rather than run: the call would time out at once and count against a healthy
   * dependency, opening the circuit for the whole fleet.
   */
  private timeoutFor(options: ExecuteOptions): number {
    const requested = options.timeoutMs;
    if (requested === undefined) return this.options.timeoutMs;
    if (!Number.isFinite(requested) || requested <= 0) return Number.NaN;
    return Math.min(this.options.timeoutMs, requested);
  }

  private async decide(
    action: GuardedAction<T>,
    now: number,
    timeoutMs: number,
    deadline: number,
    onEvent: SecurityEventListener | undefined,
  ): Promise<T> {
    if (now >= this.validUntil && (await beforeDeadline(this.refresh(now), deadline)) === outOfTime) {
      throw new DeadlineExceededError(this.name, 0);
    }
    for (let round = 0; round < maxDecisionRounds; round += 1) {
      const record = this.record;
      const at = Date.now();
      // The store's answers took the caller's last moments: no call to start, and no probe to take.
      if (deadline <= at) throw new DeadlineExceededError(this.name, 0);
      if (record.state === CircuitState.closed)
        return this.runClosed(action, at, timeoutMs, deadline, record.generation, onEvent);
      if (at < this.probeDueAt(record)) return this.rejectCall(record, at, onEvent);
      const leasing = this.takeProbeLease(record, at, onEvent);
      const lease = await beforeDeadline(leasing, deadline);
      if (lease === outOfTime) {
        // A lease taken after the caller left would block the fleet's probing until it expired.
        void leasing.then((taken) => taken && this.releaseProbeLease(taken, onEvent));
        throw new DeadlineExceededError(this.name, 0);
      }
      if (lease) return this.runProbe(action, timeoutMs, deadline, lease, onEvent);
    }
    return this.rejectCall(this.record, Date.now(), onEvent);
  }

  /** OPEN: when the reset timeout has passed. HALF_OPEN: when nobody holds a live probe lease. */
  private probeDueAt(record: CircuitRecord): number {
    return record.state === CircuitState.open
      ? record.openedAt + this.options.resetTimeoutMs
      : record.probeLeaseUntil;
  }

  private runClosed(
    action: GuardedAction<T>,
    startedAt: number,
    timeoutMs: number,
    deadline: number,
    generation: number,
    onEvent: SecurityEventListener | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.start(
        new PendingCall<T>(this.site, startedAt, timeoutMs, deadline, generation, onEvent, resolve, reject),
        action,
      );
    });
  }

  /** A half-open probe's call: the promise settles with the action's outcome or the timeout, nothing more. */
  private attempt(
    action: GuardedAction<T>,
    startedAt: number,
    timeoutMs: number,
    deadline: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.start(
        new PendingCall<T>(this.site, startedAt, timeoutMs, deadline, undefined, undefined, resolve, reject),
        action,
      );
    });
  }

  /** Arms the call's timeout and runs the action. No named closures per call: tsx wraps each in a costly helper. */
  private start(call: PendingCall<T>, action: GuardedAction<T>): void {
    this.deadlines.add(call);
    let result: PromiseLike<T> | T;
    try {
      result = action(call);
    } catch (error) {
      call.fail(error);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => call.succeed(value),
        (error: unknown) => call.fail(error),
      );
    } else {
      call.succeed(result);
    }
  }

  private async closedFailure(
    error: unknown,
    startedAt: number,
    generation: number,
    deadline: number,
    onEvent: SecurityEventListener | undefined,
  ): Promise<T> {
    if (!this.countsAsFailure(error, Date.now() - startedAt)) throw error;
    await beforeDeadline(this.countFailure(generation, onEvent), deadline);
    return this.fallbackOr(error);
  }

  /**
   * Emits timeout/failure, or success for an error the filter excuses (which then does not count).
   * The caller's own deadline says nothing about the dependency: it counts as neither.
   */
  private countsAsFailure(error: unknown, latencyMs: number): boolean {
    if (error instanceof DeadlineExceededError) return false;
    if (error instanceof DependencyTimeoutError && error.dependency === this.name) {
      this.emit('timeout', error, latencyMs);
    }
    if (this.options.errorFilter?.(error)) {
      this.emit('success', error, latencyMs);
      return false;
    }
    this.emit('failure', error, latencyMs);
    return true;
  }

  private async countFailure(generation: number, onEvent: SecurityEventListener | undefined): Promise<void> {
    const { rollingWindowMs } = this.options;
    // Two rounds: a failure seen against an older generation counts once more toward the current one.
    for (let round = 0; round < 2; round += 1) {
      const now = Date.now();
      const windowStart = now - (now % rollingWindowMs);
      const failure = { generation, windowStart, expiresAt: this.expiresAt(now) };
      const record = await this.withStore(now, (store) => store.addFailure(this.name, failure, now), onEvent);
      this.rememberWritten(record, now);
      if (record.state !== CircuitState.closed) return;
      if (record.generation === generation) {
        if (record.failures >= this.options.failureThreshold)
          await this.open(record, 'failure_threshold', onEvent);
        return;
      }
      generation = record.generation;
    }
  }

  /** CLOSED → OPEN or HALF_OPEN → OPEN; only the instance whose conditional write lands reports it. */
  private async open(
    from: CircuitRecord,
    reason: string,
    onEvent: SecurityEventListener | undefined,
  ): Promise<void> {
    const now = Date.now();
    const next: CircuitRecord = {
      ...initialRecord,
      state: CircuitState.open,
      generation: from.generation + 1,
      openedAt: now,
    };
    const { applied, record } = await this.replace(from, next, now, onEvent);
    this.rememberWritten(record, now);
    if (!applied) return;
    this.emit('open');
    this.report(onEvent, 'circuit.opened', reason, {
      generation: next.generation,
      failures: from.failures,
      retryAfterSec: Math.ceil(this.options.resetTimeoutMs / 1000),
    });
  }

  /** OPEN (reset timeout passed) or HALF_OPEN (no live lease) → HALF_OPEN with this instance's lease. */
  private async takeProbeLease(
    from: CircuitRecord,
    now: number,
    onEvent: SecurityEventListener | undefined,
  ): Promise<CircuitRecord | undefined> {
    this.probeCount += 1;
    const next: CircuitRecord = {
      ...initialRecord,
      state: CircuitState.halfOpen,
      generation: from.generation + 1,
      openedAt: from.openedAt,
      probeOwner: `${this.instanceId}#${this.probeCount}`,
      probeLeaseUntil: now + this.options.timeoutMs + leaseMarginMs,
      successes: from.state === CircuitState.halfOpen ? from.successes : 0,
    };
    const { applied, record } = await this.replace(from, next, now, onEvent);
    this.rememberWritten(record, now);
    if (!applied) return undefined;
    if (from.state === CircuitState.open) {
      this.emit('halfOpen', this.options.resetTimeoutMs);
      this.report(onEvent, 'circuit.halfOpen', 'reset_timeout_elapsed', { generation: next.generation });
    }
    return next;
  }

  private async runProbe(
    action: GuardedAction<T>,
    timeoutMs: number,
    deadline: number,
    lease: CircuitRecord,
    onEvent: SecurityEventListener | undefined,
  ): Promise<T> {
    const startedAt = Date.now();
    let value: T;
    try {
      value = await this.attempt(action, startedAt, timeoutMs, deadline);
    } catch (error) {
      if (error instanceof DeadlineExceededError) {
        // The caller has no time left to wait for it: the lease is given back in the background.
        void this.releaseProbeLease(lease, onEvent);
        throw error;
      }
      if (this.countsAsFailure(error, Date.now() - startedAt)) {
        await beforeDeadline(this.open(lease, 'probe_failed', onEvent), deadline);
        return this.fallbackOr(error);
      }
      // The dependency answered (with an error the filter excuses): that is a sign of life.
      await beforeDeadline(this.probeSucceeded(lease, onEvent), deadline);
      throw error;
    }
    this.emit('success', value, Date.now() - startedAt);
    await beforeDeadline(this.probeSucceeded(lease, onEvent), deadline);
    return value;
  }

  /** Releases the lease with one more success, or closes the circuit at `successThreshold`. */
  private async probeSucceeded(
    lease: CircuitRecord,
    onEvent: SecurityEventListener | undefined,
  ): Promise<void> {
    const now = Date.now();
    const successes = lease.successes + 1;
    const closes = successes >= this.options.successThreshold;
    const next: CircuitRecord = closes
      ? { ...initialRecord, generation: lease.generation + 1 }
      : {
          ...initialRecord,
          state: CircuitState.halfOpen,
          generation: lease.generation + 1,
          openedAt: lease.openedAt,
          successes,
        };
    // Not applied means this lease expired and another instance took over the probing: it decides.
    const { applied, record } = await this.replace(lease, next, now, onEvent);
    this.rememberWritten(record, now);
    if (applied && closes) {
      this.emit('close');
      this.report(onEvent, 'circuit.closed', 'probes_succeeded', { generation: next.generation, successes });
    }
  }

  /**
   * A probe the caller's deadline cut short proved nothing: the lease is given back, so that the next
   * call probes at once instead of waiting for the lease to expire.
   */
  private async releaseProbeLease(
    lease: CircuitRecord,
    onEvent: SecurityEventListener | undefined,
  ): Promise<void> {
    const now = Date.now();
    const next: CircuitRecord = {
      ...initialRecord,
      state: CircuitState.halfOpen,
      generation: lease.generation + 1,
      openedAt: lease.openedAt,
      successes: lease.successes,
    };
    const { record } = await this.replace(lease, next, now, onEvent);
    this.rememberWritten(record, now);
  }

  private rejectCall(
    record: CircuitRecord,
    now: number,
    onEvent: SecurityEventListener | undefined,
  ): Promise<T> {
    const isOpen = record.state === CircuitState.open;
    // While a probe is in flight the answer is usually a moment away: ask for a retry in a second.
    const retryAfterSec = isOpen ? Math.max(1, Math.ceil((this.probeDueAt(record) - now) / 1000)) : 1;
    const error = new CircuitOpenError(this.name, retryAfterSec);
    this.emit('reject', error);
    this.report(onEvent, 'circuit.rejected', isOpen ? 'open' : 'probe_in_flight', { retryAfterSec });
    return this.fallbackOr(error);
  }

  private async fallbackOr(error: unknown): Promise<T> {
    const { fallback } = this.options;
    if (!fallback) throw error;
    const result = await fallback(error);
    this.emit('fallback', result, error);
    return result;
  }

  /**
   * Re-reads the shared record; concurrent calls of this instance share one read. A record this
   * instance wrote while the read was in flight is newer than what the read saw, so it is kept.
   */
  private refresh(now: number): Promise<void> {
    const rememberedBefore = this.recordsRemembered;
    // Shared by the calls of the moment: a store failure it meets is none of theirs in particular.
    this.refreshing ??= this.withStore(now, (store) => store.read(this.name, now), this.options.onEvent)
      .then((record) => {
        if (this.recordsRemembered === rememberedBefore) this.remember(record, now);
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  private replace(
    from: CircuitRecord,
    next: CircuitRecord,
    now: number,
    onEvent: SecurityEventListener | undefined,
  ) {
    return this.withStore(
      now,
      (store) => store.replace(this.name, from.generation, next, this.expiresAt(now), now),
      onEvent,
    );
  }

  /**
   * Runs a store operation on the shared store or, while it is unreachable, on local state: the
   * breaker never fails calls because its own store is down, and once it knows the store is down no
   * call waits for it either. Only the call that finds the store down waits, for at most the
   * store's request timeout (a refused connection fails at once) and never past its own deadline
   * (see {@link beforeDeadline}).
   */
  private async withStore<R>(
    now: number,
    operation: (store: ResolvedCircuitOptions<T>['store']) => Promise<R>,
    onEvent: SecurityEventListener | undefined,
  ): Promise<R> {
    if (this.usingLocal) {
      this.probeStore(now);
      return operation(this.local);
    }
    try {
      return await operation(this.options.store);
    } catch (error) {
      this.storeFailed(now, error, onEvent);
      return operation(this.local);
    }
  }

  private storeFailed(now: number, error: unknown, onEvent: SecurityEventListener | undefined): void {
    // Calls in flight when the store went down each fail here; the first one already switched over.
    if (this.usingLocal) return;
    this.nextStoreProbe = now + Math.max(this.options.stateTtlMs, 1000);
    // Local state starts from the last shared state seen, so an open circuit stays open.
    this.local.seed(this.name, this.record, this.expiresAt(now));
    this.usingLocal = true;
    const errorName = error instanceof Error ? error.name : typeof error;
    const reason = storeFailureReason(error);
    this.report(onEvent, 'circuit.storeError', reason, { error: errorName });
    this.options.logger.warn('Circuit state store failed; deciding on local state', {
      circuit: this.name,
      reason,
      error: errorName,
    });
  }

  /**
   * While on local state, reads the shared record in the background once per `stateTtlMs` (at least
   * a second); when that succeeds the breaker adopts it and is back on shared state. Calls never
   * wait for it.
   */
  private probeStore(now: number): void {
    if (now < this.nextStoreProbe || this.storeProbe) return;
    this.nextStoreProbe = now + Math.max(this.options.stateTtlMs, 1000);
    this.storeProbe = this.options.store
      .read(this.name, now)
      .then(
        (record) => {
          this.usingLocal = false;
          this.remember(record, Date.now());
          this.options.logger.info('Circuit state store reachable again; using shared state', {
            circuit: this.name,
          });
        },
        (error: unknown) => {
          this.report(this.options.onEvent, 'circuit.storeError', storeFailureReason(error), {
            error: error instanceof Error ? error.name : typeof error,
          });
        },
      )
      .finally(() => {
        this.storeProbe = undefined;
      });
  }

  /**
   * Remembers what a write of this instance answered, unless a record of a later generation is already
   * remembered: calls run concurrently, and a failure counted before the circuit opened can answer
   * after the opening did. Every state change bumps the generation; reads are not held to this, since a
   * circuit whose record expired starts again at generation 0.
   */
  private rememberWritten(record: CircuitRecord, now: number): void {
    if (record.generation < this.record.generation) return;
    this.remember(record, now);
  }

  private remember(record: CircuitRecord, now: number): void {
    this.recordsRemembered += 1;
    this.record = record;
    this.validUntil = now + this.options.stateTtlMs;
  }

  private expiresAt(now: number): number {
    return toEpochSeconds(now + this.options.resetTimeoutMs + this.options.rollingWindowMs + retentionMs);
  }

  private report(
    onEvent: SecurityEventListener | undefined,
    type: SecurityEventType,
    reason: string,
    metadata: Record<string, unknown>,
  ): void {
    emitEvent(onEvent, {
      type,
      reason,
      metadata: { circuit: this.name, local: this.usingLocal, ...metadata },
    });
  }
}

/** What {@link beforeDeadline} gives when the caller's deadline comes first. */
const outOfTime = Symbol('outOfTime');

/**
 * `work`'s result, or {@link outOfTime} once `deadline` has passed: a store request must not hold
 * the caller's answer past it. The work is not aborted but finishes in the background, bounded by
 * the store's own request timeout; a failure then switches to local state as any store failure does.
 * Aborting it would not do: the caller running out of time says nothing about the store, a state
 * read is shared by the calls of the moment, and a write cut off mid-flight may have landed all the
 * same (a failure counted, a lease taken) without this instance knowing.
 */
function beforeDeadline<R>(work: Promise<R>, deadline: number): Promise<R | typeof outOfTime> {
  if (deadline === Number.POSITIVE_INFINITY) return work;
  const leftMs = deadline - Date.now();
  if (leftMs <= 0) return Promise.resolve(outOfTime);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeUp = new Promise<typeof outOfTime>((resolve) => {
    timer = setTimeout(resolve, leftMs, outOfTime);
    timer.unref?.();
  });
  return Promise.race([work, timeUp]).finally(() => clearTimeout(timer));
}

function isThenable<T>(value: PromiseLike<T> | T): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}
