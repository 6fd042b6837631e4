// Middy adapter for the limiter: picks the key, consumes, answers 429, and puts the RateLimit headers on responses.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { assertAuthenticationRan } from '../auth/context.js';
import type { Principal } from '../auth/principal.js';
import {
  registerCleanup,
  registerResponseCleanup,
  runCleanup,
  runResponseCleanupOnError,
} from '../cleanup.js';
import {
  assertNoProblems,
  InvalidArgumentError,
  InvalidOptionsError,
  TooManyRequestsError,
} from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import {
  type ApiGatewayEvent,
  assertApiGatewayEvent,
  forDeclaredEvent,
  routeOf,
} from '../http/request-event.js';
import { withHeadersAndCookies } from '../http/response.js';
import { checkFunctionOption, requireOptionsObject, shownValue } from '../options.js';
import {
  type ClientIpOptions,
  clientIpOf,
  isKeyedByPrincipal,
  type RateLimitKeyBy,
  type RateLimitRequest,
  rateLimitKeyKinds,
  rateLimitKeyOf,
} from './client-key.js';
import type { CounterStore } from './counter-store.js';
import { defaultCounterStore } from './dynamodb-counter-store.js';
import { type PolicyOutcome, rateLimitHeaders, strictestOutcome } from './headers.js';
import {
  policyProblems,
  type RateLimitPolicy,
  type RateLimitPolicyInput,
  resolvePolicy,
  scalePolicy,
} from './policy.js';
import { markRateLimitRan } from './ran.js';
import {
  type FailMode,
  RateLimiter,
  type RateLimitResult,
  rateLimiterOptionProblems,
  rateLimitHitEvent,
  type WarnLogger,
} from './rate-limiter.js';

/** What {@link rateLimit} adds to the handler's context: the strictest answer of the limits applied so far. */
export interface RateLimitContext {
  rateLimit: RateLimitResult & { readonly policy: string };
}

/** How a request this limiter admitted ended, for {@link RateLimitCommonOptions.refundWhen}. */
export interface RateLimitEnding {
  /** An HTTP API (v2), Function URL or REST API (v1) event: narrow it to read a field of one version. */
  readonly event: ApiGatewayEvent;
  /** The answer the client gets: the handler's, one given early, or an error as `httpErrorHandler` rendered it. */
  readonly response: APIGatewayProxyStructuredResultV2;
  /** What was thrown, when the answer is a rendered error; otherwise undefined. */
  readonly error: unknown;
}

interface RateLimitCommonOptions {
  /** A preset name (`'register'`, `'authenticated'`…) or `{ name?, limit, windowSec }`. */
  readonly policy: RateLimitPolicyInput;
  /**
   * Trust-based adjustment: a multiplier of the limit for this caller (2 → twice the quota for a
   * high-trust client). Must return a finite number > 0. Return a few tiers, not a continuous score:
   * each distinct limit keeps a limiter of its own, with its local cache of up to `localCacheSize`
   * callers, for the container's life (2,000 distinct multipliers grew a warm instance's heap by
   * 25 MB over 80,000 callers). @default every caller gets 1
   */
  readonly trust?: ((principal: Principal | undefined, request: RateLimitRequest) => number) | undefined;
  /** Units one request consumes. @default 1 */
  readonly cost?: number | undefined;
  /** @default 'open' — DynamoDB down: per-instance in-memory limiting; 'closed' answers 503 with Retry-After */
  readonly failMode?: FailMode | undefined;
  /** Proxies in front of API Gateway whose X-Forwarded-For entries are trusted. @default 0 (header ignored) */
  readonly trustedProxyCount?: number | undefined;
  /** IPv6 clients are counted per prefix of this length. @default 64 */
  readonly ipv6PrefixLength?: number | undefined;
  /** After a store failure, seconds before the store is tried again. @default 5 */
  readonly outageBackoffSec?: number | undefined;
  /** Keys each limiter instance remembers. @default 10000 */
  readonly localCacheSize?: number | undefined;
  /** Keys the hash naming each caller's item, so an item names no IP address (see RateLimiter). @default none */
  readonly keyHashSecret?: string | Uint8Array | undefined;
  /** How long units a busy key reserves ahead of demand stay usable; 0 turns leases off (see RateLimiter). @default 100 */
  readonly leaseMs?: number | undefined;
  /**
   * Gives the units back (`RateLimiter.refund`) when this returns true for how an admitted request ended:
   * for an answer that told the client to come back because something of ours failed (a 503 while a queue
   * or table is down), so that a client honouring `Retry-After` is not refused once it recovers. Return
   * true only for failures the client cannot provoke: never for a 4xx, nor for a 503 that a host the client
   * named can cause (a webhook URL whose DNS fails), or every such request is free. A predicate that
   * throws refunds nothing. @default nothing is given back
   */
  readonly refundWhen?: ((ending: RateLimitEnding) => boolean) | undefined;
  /** Receives `rateLimit.hit` and `rateLimit.storeError`. @default none */
  readonly onEvent?: SecurityEventListener | undefined;
  /** Where store failures are logged. @default console */
  readonly logger?: WarnLogger | undefined;
}

type KeyChoice =
  | {
      /** What the limit is counted per; an array combines them. @default 'ip' */
      readonly keyBy?: RateLimitKeyBy | readonly RateLimitKeyBy[] | undefined;
      readonly identify?: undefined;
    }
  | {
      /** A custom key; `undefined` or `''` counts the request per client IP. */
      readonly identify: (request: RateLimitRequest) => string | undefined;
      readonly keyBy?: undefined;
    };

type StoreChoice =
  | {
      /** The toolkit table (created by the stack; never created at run time). */
      readonly tableName: string;
      /** @default createDynamoDbClient({ requestTimeoutMs: 1000, connectionTimeoutMs: 500, maxAttempts: 2 }) */
      readonly client?: DynamoDBClient | undefined;
      readonly store?: undefined;
    }
  | { readonly store: CounterStore; readonly tableName?: undefined; readonly client?: undefined };

export type RateLimitOptions = RateLimitCommonOptions & KeyChoice & StoreChoice;

type RateLimitMiddlewareRequest = Request<
  ApiGatewayEvent,
  APIGatewayProxyStructuredResultV2,
  Error,
  Context & RateLimitContext
>;

/**
 * The limits applied to each request, collected so stacked limiters answer with one set of headers. Kept
 * per request object, not on `request.internal`, which Middy's `internal` option shares across invocations:
 * every caller would be answered with the strictest outcome of all earlier ones.
 */
const outcomesByRequest = new WeakMap<object, PolicyOutcome[]>();
/**
 * A 429 that no limit here gave (a handler's own rule, such as a per-user resend interval): the limits'
 * headers beside it would show budget left and tell the client to retry at once, against its Retry-After.
 */
function refusedByAnotherRule(response: unknown, outcomes: readonly PolicyOutcome[]): boolean {
  return (
    (response as Partial<APIGatewayProxyStructuredResultV2> | null | undefined)?.statusCode === 429 &&
    outcomes.every((outcome) => outcome.result.allowed)
  );
}

/** One cleanup for all stacked limiters: it puts the headers of every limit applied on the answer. */
const rateLimitCleanup = 'bulwark.rateLimit';
/** Each middleware's refund has a cleanup name of its own: stacked limiters each give back their own units. */
let refundCleanupCount = 0;

/**
 * Per request, for each limiter (by its refund cleanup's name) that admitted it and kept its units: whole
 * seconds until the same request would be admitted again. Kept beside the outcomes, which every limiter
 * of the request shares, since only each limiter knows its cost and whether it gave its units back.
 */
const readmissionWaitsByRequest = new WeakMap<object, Map<string, number>>();

function readmissionWaitsOf(request: object): Map<string, number> {
  let waits = readmissionWaitsByRequest.get(request);
  if (waits === undefined) {
    waits = new Map();
    readmissionWaitsByRequest.set(request, waits);
  }
  return waits;
}

/**
 * Whole seconds until `cost` units fit again after an admission that left `result.remaining`: 0 while they
 * do, else the next unit's refill and one emission interval for each further unit missing.
 */
function readmissionWaitSec(result: RateLimitResult, policy: RateLimitPolicy, cost: number): number {
  const missing = cost - result.remaining;
  if (missing <= 0) return 0;
  return Math.ceil(result.refillInSec + ((missing - 1) * policy.windowSec) / policy.limit);
}

/**
 * A 503's `Retry-After` raised to the longest wait `waits` holds, when that is longer: a client that waits
 * as the dependency's answer tells it would otherwise be refused by the limit that admitted it. An
 * HTTP-date, another status or a 503 without one is left alone.
 */
function retryAfterAtReadmission(
  response: unknown,
  waits: ReadonlyMap<string, number>,
): Record<string, string> {
  const { statusCode, headers } = (response ?? {}) as Partial<APIGatewayProxyStructuredResultV2>;
  if (statusCode !== 503 || !headers) return {};
  const given = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
  if (given === undefined || !/^\d+$/.test(String(given).trim())) return {};
  const longest = Math.max(0, ...waits.values());
  return longest > Number(String(given).trim()) ? { 'Retry-After': String(longest) } : {};
}

function outcomesOf(request: object): PolicyOutcome[] {
  let outcomes = outcomesByRequest.get(request);
  if (outcomes === undefined) {
    outcomes = [];
    outcomesByRequest.set(request, outcomes);
  }
  return outcomes;
}

function middlewareProblems(options: RateLimitOptions): string[] {
  const problems = rateLimiterOptionProblems(options as Parameters<typeof rateLimiterOptionProblems>[0]);
  const { keyBy, identify, trust, cost, trustedProxyCount, ipv6PrefixLength } = options;
  if (keyBy !== undefined && identify !== undefined) problems.push('give either keyBy or identify, not both');
  const kinds: readonly unknown[] = Array.isArray(keyBy) ? keyBy : keyBy === undefined ? ['ip'] : [keyBy];
  const unknownKinds = kinds.filter((kind) => !rateLimitKeyKinds.includes(kind as RateLimitKeyBy));
  if (kinds.length === 0 || unknownKinds.length > 0) {
    problems.push(`keyBy must be one or more of ${rateLimitKeyKinds.join(', ')} (got ${shownValue(keyBy)})`);
  }
  checkFunctionOption(problems, 'identify', identify);
  checkFunctionOption(problems, 'trust', trust);
  checkFunctionOption(problems, 'refundWhen', options.refundWhen);
  if (cost !== undefined && !(Number.isSafeInteger(cost) && cost >= 1)) {
    problems.push(`cost must be a positive integer (got ${shownValue(cost)})`);
  } else if (cost !== undefined && policyProblems(options.policy).length === 0) {
    const { limit } = resolvePolicy(options.policy);
    if (cost > limit) problems.push(`cost ${cost} exceeds the policy limit ${limit}`);
  }
  if (
    trustedProxyCount !== undefined &&
    !(Number.isSafeInteger(trustedProxyCount) && trustedProxyCount >= 0)
  ) {
    problems.push(`trustedProxyCount must be an integer >= 0 (got ${shownValue(trustedProxyCount)})`);
  }
  if (
    ipv6PrefixLength !== undefined &&
    !(Number.isSafeInteger(ipv6PrefixLength) && ipv6PrefixLength >= 1 && ipv6PrefixLength <= 128)
  ) {
    problems.push(`ipv6PrefixLength must be an integer in 1..128 (got ${shownValue(ipv6PrefixLength)})`);
  }
  return problems;
}

/**
 * Limits requests per client IP, principal, API key, tenant or route, shared by every Lambda
 * instance through the toolkit table. Over the limit it answers 429 problem+json with
 * `Retry-After`; every response to a request it admitted or refused carries `RateLimit-Policy`,
 * `RateLimit` and the legacy `X-RateLimit-*` headers (early answers and errors rendered by
 * `httpErrorHandler` included), and a 503's `Retry-After` is raised to the wait before a retry would be
 * admitted when that is longer. Stack several (per IP, then per user): the strictest answer wins; one
 * middleware `.use()`d twice fails every request as a setup fault (an `InvalidOptionsError`). Put
 * per-principal limits (`user`, `clientId`, `apiKey`, `tenant`) after authentication, so
 * `context.principal` is set: used before it, or without it, such a limit fails every request as a setup
 * fault (an `InvalidOptionsError`, which `httpErrorHandler` answers with a 500 and logs) rather than count
 * every caller per address. `refundWhen` gives an admitted request's units back when it ended in a failure
 * of ours that the client is told to retry (none by default).
 *
 * @example
 * middy<APIGatewayProxyEventV2>()
 *   .use(httpErrorHandler())
 *   .use(rateLimit({ policy: 'login', keyBy: 'ip', tableName: 'bulwark-toolkit', client }))
 *   .handler(async (_event, context) => json(200, { remaining: context.rateLimit.remaining }));
 *
 * // On a route whose 503s are all ours (no host the client names): retrying after Retry-After costs nothing.
 * rateLimit({ policy: 'register', tableName, client, refundWhen: ({ response }) => response.statusCode === 503 });
 */
export function rateLimit(
  options: RateLimitOptions,
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, Context & RateLimitContext> {
  requireOptionsObject('rateLimit', options);
  assertNoProblems('rateLimit', middlewareProblems(options));
  const policy = resolvePolicy(options.policy, 'rateLimit');
  const cost = options.cost ?? 1;
  const keyBy: readonly RateLimitKeyBy[] = Array.isArray(options.keyBy)
    ? options.keyBy
    : [(options.keyBy as RateLimitKeyBy | undefined) ?? 'ip'];
  const ipOptions: ClientIpOptions = {
    trustedProxyCount: options.trustedProxyCount ?? 0,
    ipv6PrefixLength: options.ipv6PrefixLength ?? 64,
  };
  const store = options.store ?? defaultCounterStore(options);
  // One limiter per distinct effective limit (however many multipliers trust returns), made on first
  // use and kept for the container's life.
  const limiters = new Map<number, RateLimiter>();
  const limiterFor = (multiplier: number): RateLimiter => {
    const scaled = scalePolicy(policy, multiplier, cost);
    let limiter = limiters.get(scaled.limit);
    if (!limiter) {
      limiter = new RateLimiter({
        policy: scaled,
        store,
        failMode: options.failMode ?? 'open',
        ...(options.outageBackoffSec === undefined ? {} : { outageBackoffSec: options.outageBackoffSec }),
        ...(options.localCacheSize === undefined ? {} : { localCacheSize: options.localCacheSize }),
        ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
        ...(options.keyHashSecret === undefined ? {} : { keyHashSecret: options.keyHashSecret }),
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      });
      limiters.set(scaled.limit, limiter);
    }
    return limiter;
  };
  limiterFor(1);

  const { refundWhen } = options;
  refundCleanupCount += 1;
  const refundCleanup = `bulwark.rateLimit.refund.${refundCleanupCount}`;

  // Before authentication every caller would fall back to its address: users behind one share a budget.
  const keyedByPrincipal = !options.identify && isKeyedByPrincipal(keyBy);
  // Middy runs a middleware `.use()`d twice twice; Middy gives each invocation a request object of its own.
  const requestsLimited = new WeakSet<object>();

  const rateLimitBefore = async (request: RateLimitMiddlewareRequest): Promise<void> => {
    assertApiGatewayEvent(request.event, 'rateLimit');
    // A setup fault, refused as loudly as a limit used before authentication: run again it would charge
    // the request twice and advertise its policy twice, and a second limit meant here would be missing.
    if (requestsLimited.has(request)) {
      throw new InvalidOptionsError('rateLimit', [
        'this rateLimit() ran twice on one request: .use() it once, and create one rateLimit() per limit to stack several',
      ]);
    }
    requestsLimited.add(request);
    markRateLimitRan(request);
    if (keyedByPrincipal) {
      assertAuthenticationRan(
        request,
        'rateLimit',
        `keyBy ${keyBy.join('+')} counts per caller on context.principal`,
        'key it by ip or route alone on a route without authentication',
      );
    }
    // Read structurally: an IP or route limit may run before authentication, or on a public route.
    const principal = (request.context as Partial<{ principal: Principal }>).principal;
    const limitRequest: RateLimitRequest = {
      event: request.event,
      principal,
      clientIp: clientIpOf(request.event, ipOptions),
    };
    const { key, kinds } = options.identify
      ? { key: options.identify(limitRequest) || `ip:${limitRequest.clientIp}`, kinds: undefined }
      : rateLimitKeyOf(keyBy, limitRequest);
    const multiplier = options.trust ? options.trust(principal, limitRequest) : 1;
    if (!(typeof multiplier === 'number' && Number.isFinite(multiplier) && multiplier > 0)) {
      throw new InvalidArgumentError(`trust must return a finite number > 0 (got ${shownValue(multiplier)})`);
    }
    const limiter = limiterFor(multiplier);
    const outcomes = outcomesOf(request);
    const readmissionWaits = readmissionWaitsOf(request);
    if (outcomes.length === 0) {
      // Runs after every limiter's refund (cleanups run last registered first), so the waits are final.
      registerResponseCleanup(request, rateLimitCleanup, (response) =>
        outcomes.length > 0 && !refusedByAnotherRule(response, outcomes)
          ? withHeadersAndCookies(response, {
              headers: {
                ...rateLimitHeaders(outcomes),
                ...retryAfterAtReadmission(response, readmissionWaits),
              },
            })
          : response,
      );
    }
    const result = await limiter.consume(key, cost);
    outcomes.push({ policy: limiter.policy, result });
    const strictest = strictestOutcome(outcomes) as PolicyOutcome;
    request.context.rateLimit = { ...strictest.result, policy: strictest.policy.name };
    if (result.allowed) {
      readmissionWaits.set(refundCleanup, readmissionWaitSec(result, limiter.policy, cost));
      if (refundWhen) {
        // Decided on the final answer: httpErrorHandler runs this once it has rendered an error.
        registerCleanup(request, refundCleanup, async (ended) => {
          const response = ended.response as APIGatewayProxyStructuredResultV2 | undefined;
          if (typeof response !== 'object' || response === null) return;
          if (refundWhen({ event: request.event, response, error: ended.error ?? undefined })) {
            await limiter.refund(key, result, cost);
            // The units are back: this limit admits the retry at once.
            readmissionWaits.delete(refundCleanup);
          }
        });
      }
      return;
    }
    emitEvent(
      options.onEvent,
      rateLimitHitEvent(
        limiter.policy.name,
        result,
        // The kinds the key was made of: an anonymous caller of an optional-auth route counts per address.
        { routeKey: routeOf(request.event), keyBy: kinds === undefined ? 'custom' : kinds.join('+') },
        principal,
      ),
    );
    throw new TooManyRequestsError(
      result.retryAfterSec,
      `Rate limit exceeded for policy ${limiter.policy.name}; retry in ${result.retryAfterSec} s`,
      { headers: rateLimitHeaders(outcomes) },
    );
  };

  const rateLimitAfter = async (request: RateLimitMiddlewareRequest) => {
    await runCleanup(request, refundCleanup);
    await runCleanup(request, rateLimitCleanup);
  };

  // Errors are rendered by httpErrorHandler alone, which then runs this pending cleanup, so the headers
  // reach every problem wherever the two sit. Rendering here as well would show an answer only to the
  // onErrors between the two (CORS, security headers): their headers would depend on a limiter running.
  const rateLimitOnError = async (request: RateLimitMiddlewareRequest) => {
    await runResponseCleanupOnError(request, refundCleanup);
    await runResponseCleanupOnError(request, rateLimitCleanup);
  };

  return forDeclaredEvent({ before: rateLimitBefore, after: rateLimitAfter, onError: rateLimitOnError });
}
