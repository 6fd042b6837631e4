// The limiter core: GCRA over a counter store, a local view that spares the store, and the store-outage fallback.
import { createHash, createHmac, createSecretKey, type KeyObject, randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { isUsableSecretBytes, isUsableSecretValue } from '../auth/hmac-secret.js';
import type { Principal } from '../auth/principal.js';
import { storeFailureReason } from '../dependency-failure.js';
import { assertNoProblems, InvalidArgumentError, ServiceUnavailableError } from '../errors.js';
import { emitEvent, type SecurityEvent, type SecurityEventListener } from '../events.js';
import { checkFunctionOption, checkMethodsOption, requireOptionsObject, shownValue } from '../options.js';
import { checkTableName } from '../store/tables.js';
import { type CounterStore, MemoryCounterStore, type StoredTat, type TatAdvance } from './counter-store.js';
import { defaultCounterStore } from './dynamodb-counter-store.js';
import {
  type GcraParameters,
  gcraParameters,
  policyProblems,
  type RateLimitPolicy,
  type RateLimitPolicyInput,
  resolvePolicy,
} from './policy.js';

/** What a limiter does when its store fails: admit through a per-instance limiter, or refuse with 503. */
export type FailMode = 'open' | 'closed';

/**
 * Where an answer came from: the shared store, this instance's knowledge that the key is over its
 * limit, units this instance reserved in the store ahead of demand (a lease), or the outage fallback.
 */
export type RateLimitSource = 'store' | 'local' | 'lease' | 'fallback';

/** The answer to one {@link RateLimiter.consume}. */
export interface RateLimitResult {
  readonly allowed: boolean;
  /** The policy's limit (after any trust multiplier). */
  readonly limit: number;
  /** Units that could still be consumed right now. */
  readonly remaining: number;
  /** Epoch milliseconds at which the full limit is available again. */
  readonly resetAt: number;
  /** Whole seconds until this request's cost would fit; 0 when allowed. */
  readonly retryAfterSec: number;
  /** Whole seconds until one more unit refills: at most `remaining` more are admitted before then. */
  readonly refillInSec: number;
  readonly source: RateLimitSource;
}

/** The slice of a logger the limiter needs; a Powertools Logger fits. */
export interface WarnLogger {
  warn(message: string, ...extra: unknown[]): void;
}

interface RateLimiterCommonOptions {
  /** A preset name (`'register'`) or `{ name?, limit, windowSec }`. */
  readonly policy: RateLimitPolicyInput;
  /** @default 'open' — a per-instance in-memory limiter at the same policy answers while the store is down */
  readonly failMode?: FailMode | undefined;
  /** After a store failure, how long to stay on the fallback (or keep answering 503) before trying the store again. @default 5 */
  readonly outageBackoffSec?: number | undefined;
  /** Keys whose state this instance remembers (and the fallback's capacity). @default 10000 */
  readonly localCacheSize?: number | undefined;
  /**
   * A secret that keys the hash naming each caller's item (HMAC-SHA256 instead of SHA-256): at least 32
   * characters besides whitespace, or 32 bytes. Without one, an item counted per IPv4 address is found
   * again by hashing every address, so the table and its backups hold the address, pseudonymised.
   * Setting or changing it starts every caller afresh, as renaming the policy does.
   * @default none (plain SHA-256)
   */
  readonly keyHashSecret?: string | Uint8Array | undefined;
  /**
   * How long units reserved ahead of demand stay usable. A key that refills at least one unit in this
   * time and that this instance keeps receiving requests for reserves, with its next write, what this
   * instance is likely to use in that time, and admits those requests without a store request. 0 turns
   * leases off: then every admission is one store write. @default 100
   */
  readonly leaseMs?: number | undefined;
  /** Receives `rateLimit.storeError` events. @default none */
  readonly onEvent?: SecurityEventListener | undefined;
  /** Where store failures are logged. @default console */
  readonly logger?: WarnLogger | undefined;
}

/** Options of {@link RateLimiter}: the toolkit table (the real store), or any other {@link CounterStore}. */
export type RateLimiterOptions = RateLimiterCommonOptions &
  (
    | {
        /** The toolkit table; it must exist with TTL on `expiresAt` (the stack creates it). */
        readonly tableName: string;
        /** @default createDynamoDbClient({ requestTimeoutMs: 1000, connectionTimeoutMs: 500, maxAttempts: 2 }) */
        readonly client?: DynamoDBClient | undefined;
        readonly store?: undefined;
      }
    | { readonly store: CounterStore; readonly tableName?: undefined; readonly client?: undefined }
  );

interface KeyState {
  /** The newest stored TAT this instance has seen (epoch µs); `undefined` when unknown or idle. */
  tatUs: number | undefined;
  /** Cost of this instance's writes to the key that have not answered yet. */
  inflightCost: number;
  /** Requests waiting for those writes before deciding. */
  waiters: Array<() => void>;
  /** Units reserved in the store (already inside `tatUs`) that this instance may still admit on its own. */
  leasedUnits: number;
  /** When they lapse (epoch µs): admitting one later could break the documented bound. */
  leaseEndsUs: number;
  /** This instance's last successful write for the key (epoch µs): the start of the demand sample. */
  sampleStartUs: number;
  /** Units this instance admitted for the key since `sampleStartUs`. */
  sampleUnits: number;
}

const failModes: readonly FailMode[] = ['open', 'closed'];
/** The {@link CounterStore} methods a limiter calls. */
const counterStoreMethods = ['write', 'read', 'delete', 'deleteAll'];
/** Longest lease: beyond it the bound's extra term (one lease of units) stops being small. */
export const maxLeaseMs = 10_000;
// A write only fails again when another writer changed the item in between; four attempts need three such races.
const maxWriteAttempts = 4;

const unpairedSurrogateMarker = Buffer.of(0xff);
/** Write answers can arrive out of order, and a key's TAT only grows: keep the newest seen. */
const newest = (known: number | undefined, seen: number): number =>
  known === undefined || seen > known ? seen : known;

/**
 * The `rateLimit.hit` security event for a refused request, as the middleware emits it; for code that
 * calls {@link RateLimiter.consume} itself and wants its refusals audited and counted the same way.
 *
 * @example
 * const result = await limiter.consume(key);
 * if (!result.allowed) emitEvent(onEvent, rateLimitHitEvent(limiter.policy.name, result, { keyBy: 'phone' }));
 */
export function rateLimitHitEvent(
  policyName: string,
  result: Pick<RateLimitResult, 'limit' | 'source'>,
  metadata: Readonly<Record<string, unknown>> = {},
  principal?: Principal,
): SecurityEvent {
  return {
    type: 'rateLimit.hit',
    reason: result.source === 'local' ? 'known_over_limit' : 'over_limit',
    ...(principal ? { principal } : {}),
    metadata: { policy: policyName, limit: result.limit, ...metadata, source: result.source },
  };
}

/** Every problem with limiter options; the `rateLimit` middleware folds these into its own single error. */
export function rateLimiterOptionProblems(options: RateLimiterOptions): string[] {
  const problems = policyProblems(options.policy);
  const hasStore = options.store !== undefined;
  const hasTable = options.tableName !== undefined || options.client !== undefined;
  if (hasStore && hasTable) problems.push('give either store or tableName/client, not both');
  // A store that fails when used would read as an outage, and failMode 'open' would hide it by counting per instance.
  checkMethodsOption(problems, 'store', options.store, counterStoreMethods, 'a DynamoDbCounterStore');
  if (!hasStore && options.tableName === undefined) {
    problems.push('tableName must name the toolkit table (or give a store)');
  } else if (!hasStore) {
    checkTableName(problems, options.tableName);
  }
  if (options.failMode !== undefined && !failModes.includes(options.failMode)) {
    problems.push(`failMode must be 'open' or 'closed' (got ${shownValue(options.failMode)})`);
  }
  const backoff = options.outageBackoffSec;
  if (backoff !== undefined && !(typeof backoff === 'number' && backoff >= 0 && Number.isFinite(backoff))) {
    problems.push(`outageBackoffSec must be a finite number >= 0 (got ${shownValue(backoff)})`);
  }
  const leaseMs = options.leaseMs;
  if (leaseMs !== undefined && !(typeof leaseMs === 'number' && leaseMs >= 0 && leaseMs <= maxLeaseMs)) {
    problems.push(
      `leaseMs must be a number of milliseconds in 0..${maxLeaseMs} (got ${shownValue(leaseMs)})`,
    );
  }
  checkMethodsOption(problems, 'logger', options.logger, ['warn'], 'a Powertools Logger');
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  const secret = options.keyHashSecret;
  if (secret !== undefined && secret !== null) {
    const usable =
      typeof secret === 'string'
        ? isUsableSecretValue(secret)
        : secret instanceof Uint8Array && secret.length >= 32 && isUsableSecretBytes(secret);
    // Never shown: it is a secret.
    if (!usable)
      problems.push('keyHashSecret must be at least 32 characters besides whitespace, or 32 bytes');
  }
  const cacheSize = options.localCacheSize;
  // The open fallback counts in a store of this size: at 0 it would forget every count and admit all.
  if (cacheSize !== undefined && !(Number.isSafeInteger(cacheSize) && cacheSize >= 1)) {
    problems.push(`localCacheSize must be an integer >= 1 (got ${shownValue(cacheSize)})`);
  }
  return problems;
}

/**
 * A rate limiter shared by every instance that uses the same store: GCRA (the generic cell rate
 * algorithm), whose whole state per key is one number, the theoretical arrival time (TAT). A request
 * of cost n at time now is admitted iff max(TAT, now) + n·T ≤ now + limit·T, where T = window / limit;
 * admitting it moves TAT to max(TAT, now) + n·T. Each admission is one conditional UpdateItem, so
 * admission stays exact however many instances race. An instance that has seen a key over its limit
 * answers locally, without the store, until a unit refills.
 *
 * For keys that refill faster than `leaseMs`, an instance that keeps receiving requests for a key
 * reserves, in the same single write, the units it is likely to need over the next `leaseMs` (at most
 * what the key refills in that time, and never more than half of what the key has left) and admits
 * them itself until they lapse. Reservations are GCRA admissions like any other, so the fleet still
 * cannot reserve more than the limit; an admission may come up to `leaseMs` after its reservation,
 * which widens the bound by at most one lease (⌊leaseMs / T⌋ units).
 *
 * @example
 * const limiter = new RateLimiter({ policy: 'login', tableName: 'bulwark-toolkit', client });
 * const result = await limiter.consume(`ip:${sourceIp}`);
 * if (!result.allowed) throw new TooManyRequestsError(result.retryAfterSec);
 */
export class RateLimiter {
  readonly policy: RateLimitPolicy;
  readonly failMode: FailMode;
  readonly #gcra: GcraParameters;
  readonly #store: CounterStore;
  readonly #prefix: string;
  readonly #keyHashSecret: KeyObject | undefined;
  readonly #states = new Map<string, KeyState>();
  readonly #cacheSize: number;
  readonly #backoffMs: number;
  readonly #leaseUs: number;
  /** Most units one lease may hold: what the key refills in `leaseMs`; 0 when it refills slower. */
  readonly #maxLeaseUnits: number;
  readonly #fallback: RateLimiter | undefined;
  readonly #onEvent: SecurityEventListener | undefined;
  readonly #logger: WarnLogger;
  #storeDownUntil = 0;
  #lastFailure: unknown;

  constructor(options: RateLimiterOptions) {
    requireOptionsObject('RateLimiter', options);
    assertNoProblems('RateLimiter', rateLimiterOptionProblems(options));
    this.policy = resolvePolicy(options.policy, 'RateLimiter');
    this.failMode = options.failMode ?? 'open';
    this.#gcra = gcraParameters(this.policy);
    this.#prefix = `RL#${this.policy.name}#`;
    // Imported once (a copy, so the caller's bytes may change afterwards), not at every hash.
    const secret = options.keyHashSecret ?? undefined;
    this.#keyHashSecret =
      secret === undefined
        ? undefined
        : typeof secret === 'string'
          ? createSecretKey(secret, 'utf8')
          : createSecretKey(secret);
    this.#cacheSize = options.localCacheSize ?? 10_000;
    this.#backoffMs = (options.outageBackoffSec ?? 5) * 1000;
    this.#leaseUs = Math.round((options.leaseMs ?? 100) * 1000);
    this.#maxLeaseUnits = Math.floor(this.#leaseUs / this.#gcra.intervalUs);
    this.#onEvent = options.onEvent;
    this.#logger = options.logger ?? console;
    this.#store = options.store ?? defaultCounterStore(options);
    this.#fallback =
      this.failMode === 'open'
        ? new RateLimiter({
            policy: this.policy,
            store: new MemoryCounterStore({ maxKeys: this.#cacheSize }),
            failMode: 'closed',
            localCacheSize: this.#cacheSize,
            // Each instance counts on its own here: nothing is shared that a lease would save.
            leaseMs: 0,
          })
        : undefined;
  }

  /**
   * The storage key of a caller key: `RL#<policy>#<SHA-256, base64url>` (HMAC-SHA256 under
   * `keyHashSecret` when given), the same size for any key.
   */
  storageKeyOf(key: string): string {
    const digest =
      this.#keyHashSecret === undefined ? createHash('sha256') : createHmac('sha256', this.#keyHashSecret);
    if (key.isWellFormed()) {
      digest.update(key);
    } else {
      // UTF-8 writes every unpaired surrogate as U+FFFD (`x\ud800`, `x\udfff` and `x\ufffd` would share a
      // counter), so such a key is hashed as its UTF-16 code units behind 0xFF, a byte no UTF-8 holds.
      digest.update(unpairedSurrogateMarker).update(key, 'utf16le');
    }
    return `${this.#prefix}${digest.digest('base64url')}`;
  }

  /**
   * Takes `cost` units for `key` if they are available.
   *
   * @example
   * const { allowed, remaining, retryAfterSec } = await limiter.consume('user:42', 2);
   */
  async consume(key: string, cost = 1): Promise<RateLimitResult> {
    this.#assertKey(key);
    this.#assertCost(cost);
    if (Date.now() < this.#storeDownUntil) return this.#degraded(key, cost);
    return this.#consumeShared(key, cost);
  }

  /**
   * Gives back `cost` units that {@link consume} admitted for `key` when what they paid for did not happen
   * (the SMS was never sent), so they count against nothing; `admitted` is that consume's answer, which
   * says where the units were taken. Units from the shared store go back there: the key's TAT moves back
   * by cost·T in one conditional write that applies only while the key is busy in this policy's window (a
   * key that is already idle, or that another window counts since the policy changed, has nothing to give
   * back). Units the per-instance fallback gave during an outage go back to it, never
   * to the store, which did not pay for them. Never refund more than was consumed; a refund can return
   * units that would have refilled meanwhile, which only matters for a key that went idle and busy again
   * in between. Each refund carries an id the store keeps, so the client's retry of a write that landed
   * but was answered late gives nothing back twice (unless another refund of the key landed in between;
   * see `TatAdvance.refundId`). A store failure is reported like consume's (`rateLimit.storeError`) and
   * leaves the units spent, as does a refund of store units while the store is known to be down (no
   * request is made).
   * Refunding a refused consume is an {@link InvalidArgumentError}.
   *
   * @example
   * const admitted = await limiter.consume(key);
   * if (admitted.allowed && !(await trySend())) await limiter.refund(key, admitted);
   */
  async refund(key: string, admitted: Pick<RateLimitResult, 'allowed' | 'source'>, cost = 1): Promise<void> {
    this.#assertKey(key);
    this.#assertCost(cost);
    if (!admitted?.allowed) {
      throw new InvalidArgumentError('refund needs the answer of a consume that was allowed');
    }
    if (admitted.source === 'fallback') {
      // To the fallback, these were units of its own store.
      await this.#fallback?.refund(key, { allowed: true, source: 'store' }, cost);
      return;
    }
    // The store is known to be down: a write would only wait for the failure, so the units stay spent.
    if (Date.now() < this.#storeDownUntil) return;
    const storageKey = this.storageKeyOf(key);
    const { intervalUs, capacityUs } = this.#gcra;
    const nowUs = Date.now() * 1000;
    try {
      const outcome = await this.#store.write(storageKey, {
        mode: 'busy',
        nowUs,
        windowSec: this.policy.windowSec,
        thresholdUs: nowUs + capacityUs,
        incrementUs: -cost * intervalUs,
        expiresAtSec: Math.ceil((nowUs + capacityUs) / 1_000_000),
        refundId: randomUUID(),
      });
      // The one write that lowers a TAT: what this instance saw before is no longer the newest.
      if (outcome.applied) this.#remember(storageKey, outcome.tatUs);
    } catch (error) {
      this.#reportFailure(error, 'refund');
    }
  }

  /**
   * Units `key` could consume right now, read from the store (one GetItem).
   *
   * @example
   * await limiter.getRemaining('user:42'); // 500 for an unused key under the authenticated preset
   */
  async getRemaining(key: string): Promise<number> {
    this.#assertKey(key);
    if (Date.now() < this.#storeDownUntil) return this.#degradedRemaining(key);
    const storageKey = this.storageKeyOf(key);
    const nowUs = Date.now() * 1000;
    try {
      const stored = await this.#store.read(storageKey, nowUs);
      // Only what the store itself holds in this policy's terms goes into the local view: another TAT is
      // answered converted, and converted in the store by the key's next consume (see #inPolicyTerms).
      this.#remember(
        storageKey,
        stored !== undefined && this.#isInPolicyTerms(stored, nowUs) ? stored.tatUs : undefined,
      );
      const tatUs = stored === undefined ? nowUs : this.#inPolicyTerms(stored, nowUs);
      return this.#outcome(true, tatUs, nowUs, 1, 'store').remaining;
    } catch (error) {
      this.#reportFailure(error, 'getRemaining');
      return this.#degradedRemaining(key);
    }
  }

  /**
   * Forgets `key`: its next request here, or on any instance that reads the store, starts from a full
   * limit. An instance that has already refused the key from memory keeps refusing it until one unit
   * would have refilled (at most the policy's interval T), as it asks the store nothing meanwhile.
   */
  async reset(key: string): Promise<void> {
    this.#assertKey(key);
    const storageKey = this.storageKeyOf(key);
    this.#states.delete(storageKey);
    await this.#fallback?.reset(key);
    await this.#store.delete(storageKey);
  }

  /** Forgets every key of this policy (and only this policy); resolves to how many stored keys went. */
  async clearAll(): Promise<number> {
    this.#states.clear();
    await this.#fallback?.clearAll();
    return this.#store.deleteAll(this.#prefix);
  }

  #assertKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0) {
      throw new InvalidArgumentError('key must be a non-empty string');
    }
  }

  #assertCost(cost: number): void {
    if (!Number.isSafeInteger(cost) || cost < 1) {
      throw new InvalidArgumentError(`cost must be a positive integer (got ${shownValue(cost)})`);
    }
    if (cost > this.#gcra.limit) {
      throw new InvalidArgumentError(
        `cost ${cost} exceeds the limit ${this.#gcra.limit}; it could never be admitted`,
      );
    }
  }

  #stateOf(storageKey: string): KeyState {
    const state = this.#states.get(storageKey);
    if (state) return state;
    const created: KeyState = {
      tatUs: undefined,
      inflightCost: 0,
      waiters: [],
      leasedUnits: 0,
      leaseEndsUs: 0,
      sampleStartUs: 0,
      sampleUnits: 0,
    };
    this.#states.set(storageKey, created);
    return created;
  }

  #remember(storageKey: string, tatUs: number | undefined): void {
    if (tatUs === undefined && !this.#states.has(storageKey)) return;
    this.#stateOf(storageKey).tatUs = tatUs;
    this.#trim();
  }

  /** Keeps the local view within its size: the oldest idle keys go first. */
  #trim(): void {
    if (this.#states.size <= this.#cacheSize) return;
    for (const [storageKey, state] of this.#states) {
      if (this.#states.size <= this.#cacheSize) return;
      if (state.inflightCost === 0) this.#states.delete(storageKey);
    }
  }

  /** Units still available according to what this instance last saw (the limit when it knows nothing). */
  #knownRemaining(tatUs: number | undefined, nowUs: number): number {
    if (tatUs === undefined || tatUs <= nowUs) return this.#gcra.limit;
    return Math.floor((nowUs + this.#gcra.capacityUs - tatUs) / this.#gcra.intervalUs);
  }

  async #consumeShared(key: string, cost: number): Promise<RateLimitResult> {
    const storageKey = this.storageKeyOf(key);
    const state = this.#stateOf(storageKey);
    const { limit, intervalUs } = this.#gcra;
    let nowUs = 0;
    for (;;) {
      // A write this request waited on may have just failed: the store is left alone from then on.
      if (Date.now() < this.#storeDownUntil) return this.#degraded(key, cost);
      nowUs = Date.now() * 1000;
      if (state.leasedUnits >= cost && nowUs < state.leaseEndsUs) {
        state.leasedUnits -= cost;
        state.sampleUnits += cost;
        // The units this instance still holds are as good as free to it: report them as remaining.
        const heldTatUs = (state.tatUs ?? nowUs) - state.leasedUnits * intervalUs;
        return this.#outcome(true, heldTatUs, nowUs, cost, 'lease');
      }
      const thresholdUs = nowUs + (limit - cost) * intervalUs;
      // Known over the limit: answered here, at no store cost, until enough refills for this cost.
      if (state.tatUs !== undefined && state.tatUs > thresholdUs) {
        return this.#outcome(false, state.tatUs, nowUs, cost, 'local');
      }
      // This instance has writes to the key in flight. If it believes the key idle (or knows nothing),
      // those writes are about to settle its state: wait for them rather than guess. If it knows the
      // key busy, go ahead only when what is left after them covers this cost; otherwise wait for
      // their answers instead of sending a write the store would most likely refuse (a flood's
      // rejections then cost nothing, and a refill is claimed by one write, not by every waiter).
      const idle = state.tatUs === undefined || state.tatUs <= nowUs;
      const headroom = this.#knownRemaining(state.tatUs, nowUs) - state.inflightCost;
      // The wait ends: every write settles within the client's timeouts, and a request that has to
      // wait sends nothing, so once the writes ahead of it have answered it decides or writes itself.
      if (state.inflightCost === 0 || (!idle && headroom >= cost)) break;
      await new Promise<void>((resolve) => state.waiters.push(resolve));
    }
    state.inflightCost += cost;
    try {
      return await this.#write(storageKey, state, cost, nowUs);
    } catch (error) {
      // Reported before the waiters wake, so they see the outage and go to the fallback too.
      this.#reportFailure(error, 'consume');
      return this.#degraded(key, cost);
    } finally {
      state.inflightCost -= cost;
      for (const wake of state.waiters.splice(0)) wake();
      this.#trim();
    }
  }

  /**
   * Units to reserve beyond `cost` with this write. The sample is what this instance admitted for the
   * key since its last write; a lease holds at most that many (so it grows one step per write) and at
   * most half of the arrivals the sample's rate predicts over one lease lifetime, so that requests
   * arriving at random still use most leased units before they lapse: an instance that sees a key once
   * per lease lifetime or less never leases. Only one leasing write per key is in flight, so a lease
   * never overlaps another.
   */
  #leaseSize(state: KeyState, nowUs: number, cost: number): number {
    // `inflightCost` includes this write's own cost: anything more is another write in flight.
    if (this.#maxLeaseUnits === 0 || state.inflightCost > cost || state.sampleUnits === 0) return 0;
    const elapsedUs = nowUs - state.sampleStartUs;
    const expectedPerLease =
      elapsedUs > 0 ? (state.sampleUnits * this.#leaseUs) / elapsedUs : Number.POSITIVE_INFINITY;
    // Half of what the key has left at most, so a lease never takes the last units other instances need.
    // Sized from what this instance last saw; the write's condition holds it to what the store has.
    const spare = Math.floor((this.#knownRemaining(state.tatUs, nowUs) - cost) / 2);
    return Math.max(
      0,
      Math.min(this.#maxLeaseUnits, state.sampleUnits, Math.floor(expectedPerLease / 2), spare),
    );
  }

  async #write(storageKey: string, state: KeyState, cost: number, nowUs: number): Promise<RateLimitResult> {
    const { limit, intervalUs, capacityUs } = this.#gcra;
    const thresholdUs = nowUs + (limit - cost) * intervalUs;
    // No write can leave TAT beyond now + capacity, so the item is stale (and TTL may delete it) after that.
    const expiresAtSec = Math.ceil((nowUs + capacityUs) / 1_000_000);
    const { windowSec } = this.policy;
    // Guess the branch from what this instance last saw; a wrong guess costs one more request.
    let mode: TatAdvance['mode'] = state.tatUs !== undefined && state.tatUs > nowUs ? 'busy' : 'fresh';
    for (let attempt = 0; attempt < maxWriteAttempts; attempt += 1) {
      const lease = this.#leaseSize(state, nowUs, cost);
      const outcome = await this.#store.write(storageKey, {
        mode,
        nowUs,
        windowSec,
        // Room for the cost and twice the lease: the lease is then at most half of what the key has left
        // beyond the cost, however stale this instance's view was (an idle key has all of its limit left).
        thresholdUs: thresholdUs - 2 * lease * intervalUs,
        incrementUs: (cost + lease) * intervalUs,
        expiresAtSec,
      });
      if (outcome.applied) {
        state.tatUs = newest(state.tatUs, outcome.tatUs);
        state.sampleStartUs = nowUs;
        state.sampleUnits = cost;
        // A new lease replaces what is left of the last one (too little for this cost, or lapsed); a write
        // without one leaves a lease that another write took meanwhile in place.
        if (lease > 0) {
          state.leasedUnits = lease;
          state.leaseEndsUs = nowUs + this.#leaseUs;
        }
        return this.#outcome(true, outcome.tatUs - lease * intervalUs, nowUs, cost, 'store');
      }
      if (!outcome.known && mode === 'fresh') {
        // `fresh` fails only on a live TAT after now, which is exactly when `busy` applies.
        mode = 'busy';
        continue;
      }
      const stored = outcome.known ? outcome.stored : await this.#store.read(storageKey, nowUs);
      let tatUs = stored?.tatUs;
      if (stored !== undefined && !this.#isInPolicyTerms(stored, nowUs)) {
        // Counted in another window (or past this policy's whole budget): converted in the store before
        // anything is decided on it, so every instance of this policy, and this one's local view, goes on
        // from the same converted TAT.
        tatUs = this.#inPolicyTerms(stored, nowUs);
        const rebase = await this.#store.write(storageKey, {
          mode: 'rebase',
          nowUs,
          windowSec,
          from: stored,
          tatUs,
          expiresAtSec,
        });
        // Another writer changed the key meanwhile (most likely converting it too): learn it again.
        if (!rebase.applied) {
          mode = 'busy';
          continue;
        }
        // What the store holds now, though lower than a TAT this instance may have seen before the change.
        state.tatUs = tatUs;
      } else {
        // A stored TAT only grows until the key is reset, expires or changes window; no TAT at all is news to keep.
        state.tatUs = tatUs === undefined ? undefined : newest(state.tatUs, tatUs);
      }
      if (tatUs !== undefined && tatUs > thresholdUs) {
        return this.#outcome(false, tatUs, nowUs, cost, 'store');
      }
      // The request itself fits; the next attempt sizes any lease from the TAT just learned.
      mode = tatUs !== undefined && tatUs > nowUs ? 'busy' : 'fresh';
    }
    // Other writers changed the key between every attempt. Admitting without a successful
    // conditional write could exceed the limit, so refuse, as if it were just over.
    return this.#outcome(false, thresholdUs + intervalUs, nowUs, cost, 'store');
  }

  /**
   * A live stored TAT in this policy's terms. The storage key carries the policy's name, not its numbers,
   * so a deploy that changes a named policy finds its keys' TATs in place. After a limit change they still
   * mean what they meant: TAT − now is the time used, the same share of the same window. After a window
   * change they would not: half of a 100-per-hour budget (TAT 30 min ahead) would refuse a 10-per-minute
   * caller for 29 minutes, and half of a minute's would leave 99 of 100 per hour. Of the choices (keep the
   * TAT, cap it at this policy's capacity, restart the key, or carry the share over), carrying the share
   * over is the one a limit change already makes, so a caller sees the same rule whichever number changed:
   * half of the hour's budget used is half of the minute's. The share is taken when the key is first
   * written in the new window, and refills at the new rate from then on. An item written before the window
   * was stored is read in this window, capped at its capacity: never more than its whole budget used.
   */
  #inPolicyTerms(stored: StoredTat, nowUs: number): number {
    if (this.#isInPolicyTerms(stored, nowUs)) return stored.tatUs;
    const { windowSec } = this.policy;
    const aheadUs = stored.tatUs - nowUs;
    // Divided first: ahead (up to 366 days in µs) times a window in seconds would pass 2^53.
    const scaledUs =
      stored.windowSec === undefined || stored.windowSec === windowSec
        ? aheadUs
        : Math.ceil((aheadUs / stored.windowSec) * windowSec);
    return nowUs + Math.min(scaledUs, this.#gcra.capacityUs);
  }

  /**
   * Whether a stored TAT already means what this policy means: idle, or counted in its window and within
   * its whole budget. No write of this version leaves a TAT past now + capacity, but an instance of an
   * earlier version keeps adding to an item a window change has relabelled, in steps of its old window.
   */
  #isInPolicyTerms(stored: StoredTat, nowUs: number): boolean {
    return (
      stored.tatUs <= nowUs ||
      (stored.windowSec === this.policy.windowSec && stored.tatUs <= nowUs + this.#gcra.capacityUs)
    );
  }

  #outcome(
    allowed: boolean,
    tatUs: number,
    nowUs: number,
    cost: number,
    source: RateLimitSource,
  ): RateLimitResult {
    const { limit, intervalUs, capacityUs } = this.#gcra;
    const effectiveTat = Math.max(tatUs, nowUs);
    const headroomUs = nowUs + capacityUs - effectiveTat;
    const remaining = Math.min(limit, Math.max(0, Math.floor(headroomUs / intervalUs)));
    const nextUnitUs = (remaining + 1) * intervalUs - headroomUs;
    const waitUs = allowed ? 0 : tatUs - (nowUs + (limit - cost) * intervalUs);
    return {
      allowed,
      limit,
      remaining,
      resetAt: Math.ceil(effectiveTat / 1000),
      retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil(waitUs / 1_000_000)),
      refillInSec: Math.max(1, Math.ceil(nextUnitUs / 1_000_000)),
      source,
    };
  }

  /** Starts an outage window; writes that were already in flight when it began add nothing to report. */
  #reportFailure(error: unknown, operation: string): void {
    if (Date.now() < this.#storeDownUntil) return;
    this.#storeDownUntil = Date.now() + this.#backoffMs;
    const reason = storeFailureReason(error);
    emitEvent(this.#onEvent, {
      type: 'rateLimit.storeError',
      reason,
      metadata: { policy: this.policy.name, failMode: this.failMode, operation },
    });
    this.#logger.warn(
      this.failMode === 'open'
        ? 'Rate-limit store unavailable; counting per instance until it answers again'
        : 'Rate-limit store unavailable; refusing requests until it answers again',
      { policy: this.policy.name, reason, retryInMs: this.#backoffMs, error },
    );
    this.#lastFailure = error;
  }

  #unavailable(): ServiceUnavailableError {
    const retryAfterSec = Math.max(1, Math.ceil((this.#storeDownUntil - Date.now()) / 1000));
    return new ServiceUnavailableError('Rate limiting is temporarily unavailable', retryAfterSec, {
      cause: this.#lastFailure,
    });
  }

  async #degraded(key: string, cost: number): Promise<RateLimitResult> {
    if (!this.#fallback) throw this.#unavailable();
    return { ...(await this.#fallback.consume(key, cost)), source: 'fallback' };
  }

  async #degradedRemaining(key: string): Promise<number> {
    if (!this.#fallback) throw this.#unavailable();
    return this.#fallback.getRemaining(key);
  }
}
