// callService: service-to-service HTTP calls, each service behind its own fleet-wide circuit breaker.
import { isValidCorrelationId } from '../audit/correlation.js';
import {
  assertNoProblems,
  DeadlineExceededError,
  DependencyError,
  DependencyTimeoutError,
  InvalidArgumentError,
  InvalidOptionsError,
} from '../errors.js';
import { isHeaderName } from '../http/response.js';
import { checkFunctionOption, requireOptionsObject } from '../options.js';
import { CircuitBreaker } from './circuit-breaker.js';
import {
  type defaultMaxResponseBytes,
  type GuardedRequestInit,
  guardedFetch,
  isServerError,
  type ResponseFailurePredicate,
} from './guarded-fetch.js';
import type { CircuitBreakerSettings, CircuitStoreChoice } from './options.js';

/** The request a signer signs: method, full URL (path and query) and the exact body. */
export interface OutgoingServiceRequest {
  readonly method: string;
  readonly url: URL;
  readonly body: string | undefined;
}

/**
 * Returns the headers that authenticate one outgoing request (service-auth signing). Called per
 * attempt, so every retry gets a fresh timestamp and nonce.
 */
export type RequestSigner = (
  request: OutgoingServiceRequest,
) => Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>;

export interface RetryOptions {
  /** Extra attempts after the first, for idempotent methods only (GET, HEAD, OPTIONS, PUT, DELETE). */
  readonly retries: number;
  /**
   * Upper bound of the first retry's delay; it doubles per retry ("full jitter": each delay is
   * random between 0 and the bound, so retrying instances spread out instead of arriving together).
   * @default 100
   */
  readonly baseDelayMs?: number | undefined;
  /** @default 2000 */
  readonly maxDelayMs?: number | undefined;
}

/**
 * A service call's own timeout unless the service names one: shorter than the breaker's general 30 s,
 * since a call from an API Lambda must end well inside the function's timeout for a hung service to
 * count against its circuit (a call the Lambda's deadline cuts short does not count).
 */
export const defaultServiceTimeoutMs = 3000;

/** One service's settings: its breaker's options (but its name, which is the service's) and how to call it. */
export interface ServiceOptions extends Omit<CircuitBreakerSettings<Response>, 'name'> {
  /** @default {@link defaultServiceTimeoutMs} (3000) */
  readonly timeoutMs?: number | undefined;
  /**
   * What relative URLs resolve against, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/`.
   * Relative paths are resolved under its path: `users/42`, not `/users/42`. A URL that resolves
   * outside it (another host, `//host/…`, `../`) is refused, so a signature never leaves the service.
   * @default none: URLs must be absolute
   */
  readonly baseUrl?: string | undefined;
  /** @default 5xx counts as a failure, 4xx does not */
  readonly isFailure?: ResponseFailurePredicate | undefined;
  /** @default no retries */
  readonly retry?: RetryOptions | undefined;
  /** This service's signer, or `false` for none. @default the client's `sign` */
  readonly sign?: RequestSigner | false | undefined;
  /** The largest answer read; a longer one is a failure (502). @default {@link defaultMaxResponseBytes} (1 MiB) */
  readonly maxResponseBytes?: number | undefined;
}

export type ServiceClientOptions<S extends string> = CircuitStoreChoice & {
  /** The services this client calls, by name; each gets the breaker `name` = the service name. */
  readonly services: Readonly<Record<S, ServiceOptions>>;
  /** Signs every request (unless a service says otherwise). @default none: requests go unsigned */
  readonly sign?: RequestSigner | undefined;
  /** @default 'x-correlation-id' */
  readonly correlationIdHeader?: string | undefined;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
} & Pick<CircuitBreakerSettings<Response>, 'onEvent' | 'logger'>;

/** A service call: a fetch `init` whose body is a string, plus per-call settings. */
export type ServiceCallInit = GuardedRequestInit & {
  /** Sent as the correlation id header, when `isValidCorrelationId` accepts it. @default none */
  readonly correlationId?: string | undefined;
  /**
   * A shorter timeout for each attempt, a finite number > 0 (else `InvalidArgumentError`); it counts
   * when it runs out. @default the service's timeoutMs
   */
  readonly timeoutMs?: number | undefined;
  /**
   * Epoch ms by which the call, retries included, must be over: the Lambda's deadline less a margin
   * (`serviceCalls` sets it). Each attempt is cut short at it, and none starts after it; running out
   * of it is a `DeadlineExceededError` (504) that does not count against the service. @default none
   */
  readonly deadline?: number | undefined;
};

/** Methods that may be sent twice with the effect of once (RFC 9110 §9.2.2). */
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

interface Service {
  readonly breaker: CircuitBreaker<Response>;
  readonly baseUrl: URL | undefined;
  readonly isFailure: ResponseFailurePredicate;
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly sign: RequestSigner | undefined;
  readonly maxResponseBytes: number | undefined;
}

function isPositiveInteger(value: number): boolean {
  return Number.isInteger(value) && value > 0;
}

function retryProblems(name: string, retry: RetryOptions | undefined): string[] {
  if (retry === undefined) return [];
  if (!isObject(retry)) return [`${name}: retry must be an object ({ retries, baseDelayMs?, maxDelayMs? })`];
  const problems: string[] = [];
  if (!Number.isInteger(retry.retries) || retry.retries < 0 || retry.retries > 10) {
    problems.push(`${name}: retry.retries must be an integer 0..10`);
  }
  for (const field of ['baseDelayMs', 'maxDelayMs'] as const) {
    const value = retry[field];
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      problems.push(`${name}: retry.${field} must be a number >= 0`);
    }
  }
  return problems;
}

function parseBaseUrl(name: string, service: ServiceOptions, problems: string[]): URL | undefined {
  if (!Object.hasOwn(service, 'baseUrl')) return undefined;
  const { baseUrl } = service;
  // Given but undefined is an unset environment variable, not a choice of absolute URLs: without the
  // base, no call would resolve and the guard keeping signatures on the service's host would be off.
  if (typeof baseUrl !== 'string') {
    problems.push(
      `${name}: baseUrl is ${baseUrl === undefined ? 'undefined (an unset environment variable?); leave it out to call absolute URLs' : 'not a string'}`,
    );
    return undefined;
  }
  try {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not http(s)');
    // A base without a trailing slash would have its last segment replaced by relative paths.
    if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
    return url;
  } catch {
    problems.push(`${name}: baseUrl must be an absolute http(s) URL`);
    return undefined;
  }
}

/** Full-jitter backoff: random in [0, min(max, base × 2^(retry − 1))]. */
function backoffMs(service: Service, retry: number): number {
  return Math.random() * Math.min(service.maxDelayMs, service.baseDelayMs * 2 ** (retry - 1));
}

/**
 * How long to wait before retry number `retry`: the jittered backoff, or longer when the service's
 * `Retry-After` asked for it; undefined (no retry) when that is past `maxDelayMs`.
 */
function retryDelayMs(service: Service, retry: number, error: unknown): number | undefined {
  const backoff = backoffMs(service, retry);
  const askedMs = error instanceof DependencyError ? (error.retryAfterSec ?? 0) * 1000 : 0;
  if (askedMs > service.maxDelayMs) return undefined;
  return Math.max(backoff, askedMs);
}

/** The URL a call goes to; one outside the service's base URL is refused before anything is sent. */
function resolveTarget(serviceName: string, url: string | URL, baseUrl: URL | undefined): URL {
  if (!baseUrl) return new URL(url);
  const target = new URL(url, baseUrl);
  if (target.origin !== baseUrl.origin || !target.pathname.startsWith(baseUrl.pathname)) {
    throw new InvalidArgumentError(`A call to ${serviceName} must stay under its baseUrl`);
  }
  return target;
}

function isRetryable(error: unknown, breakerName: string): boolean {
  return (
    (error instanceof DependencyError || error instanceof DependencyTimeoutError) &&
    !(error instanceof DeadlineExceededError) &&
    error.dependency === breakerName
  );
}

/**
 * Calls other services over HTTP, each through its own circuit breaker shared fleet-wide (so every
 * Lambda instance stops calling a dead service after `failureThreshold` failures in total), with
 * a timeout, optional retries of idempotent requests, service-auth signing and the correlation id.
 *
 * @example
 * const services = new ServiceClient({
 *   tableName: process.env.TOOLKIT_TABLE_NAME as string,
 *   services: { users: { baseUrl: process.env.USERS_API_URL as string, timeoutMs: 3000, retry: { retries: 1 } } },
 *   sign: signer,
 * });
 * const response = await services.callService('users', `users/${id}`, { correlationId });
 */
export class ServiceClient<S extends string> {
  /** Each service's breaker, by service name (for events, state and tests). */
  readonly breakers: Readonly<Record<S, CircuitBreaker<Response>>>;
  private readonly services: ReadonlyMap<string, Service>;
  private readonly fetch: typeof fetch | undefined;
  private readonly correlationIdHeader: string;

  constructor(options: ServiceClientOptions<S>) {
    requireOptionsObject('ServiceClient', options);
    const problems: string[] = [];
    const entries = isObject(options.services) ? Object.entries<ServiceOptions>(options.services) : [];
    if (entries.length === 0) problems.push('services must name at least one service');
    checkFunctionOption(problems, 'sign', options.sign);
    checkFunctionOption(problems, 'fetch', options.fetch);
    if (options.correlationIdHeader !== undefined && !isHeaderName(options.correlationIdHeader)) {
      problems.push('correlationIdHeader must be a header name');
    }
    const services = new Map<string, Service>();
    for (const [name, service] of entries) {
      if (!isObject(service)) {
        problems.push(`${name}: must be an object of service options`);
        continue;
      }
      const { baseUrl: _baseUrl, isFailure, retry, sign, maxResponseBytes, ...settings } = service;
      checkFunctionOption(problems, `${name}: isFailure`, isFailure);
      if (sign !== undefined && sign !== false && typeof sign !== 'function') {
        problems.push(`${name}: sign must be a function or false`);
      }
      const storeChoice: CircuitStoreChoice =
        options.store !== undefined
          ? { store: options.store }
          : { tableName: options.tableName, ...(options.client ? { client: options.client } : {}) };
      let breaker: CircuitBreaker<Response> | undefined;
      try {
        breaker = new CircuitBreaker<Response>({
          onEvent: options.onEvent,
          logger: options.logger,
          ...settings,
          // After the spread: `timeoutMs: undefined` would otherwise fall through to the breaker's 30 s.
          timeoutMs: settings.timeoutMs ?? defaultServiceTimeoutMs,
          name,
          ...storeChoice,
        });
      } catch (error) {
        if (!(error instanceof InvalidOptionsError)) throw error;
        problems.push(...error.problems.map((problem) => `${name}: ${problem}`));
      }
      const base = parseBaseUrl(name, service, problems);
      problems.push(...retryProblems(name, retry));
      if (maxResponseBytes !== undefined && !isPositiveInteger(maxResponseBytes)) {
        problems.push(`${name}: maxResponseBytes must be a positive integer`);
      }
      if (breaker) {
        services.set(name, {
          breaker,
          baseUrl: base,
          isFailure: isFailure ?? isServerError,
          retries: retry?.retries ?? 0,
          baseDelayMs: retry?.baseDelayMs ?? 100,
          maxDelayMs: retry?.maxDelayMs ?? 2000,
          sign: sign === false ? undefined : (sign ?? options.sign),
          maxResponseBytes,
        });
      }
    }
    assertNoProblems('ServiceClient', problems);
    this.services = services;
    this.breakers = Object.fromEntries(
      [...services].map(([name, service]) => [name, service.breaker]),
    ) as Record<S, CircuitBreaker<Response>>;
    this.fetch = options.fetch;
    this.correlationIdHeader = options.correlationIdHeader ?? 'x-correlation-id';
  }

  /**
   * Sends one request to a service through its breaker. Resolves with the (fully read) Response for
   * any answer that is not a failure, 4xx included; rejects with `CircuitOpenError` (503),
   * `DependencyTimeoutError` (504) or `DependencyError` (502) once retries, if any, are spent, or
   * with `DeadlineExceededError` (504) when the caller's deadline ends the call first.
   */
  async callService(serviceName: S, url: string | URL, init: ServiceCallInit = {}): Promise<Response> {
    const service = this.services.get(serviceName);
    if (!service) throw new TypeError(`Unknown service ${JSON.stringify(serviceName)}`);
    const target = resolveTarget(serviceName, url, service.baseUrl);
    const { correlationId, timeoutMs, deadline, ...request } = init;
    const method = (request.method ?? 'GET').toUpperCase();
    const attempts = idempotentMethods.has(method) ? 1 + service.retries : 1;
    for (let attempt = 1; ; attempt += 1) {
      const headers = new Headers(request.headers);
      // The rule correlationIds() accepts a caller's id by, whose characters cannot inject a header.
      if (isValidCorrelationId(correlationId)) {
        headers.set(this.correlationIdHeader, correlationId);
      }
      if (service.sign) {
        const signature = await service.sign({ method, url: target, body: request.body });
        for (const [name, value] of Object.entries(signature)) headers.set(name, value);
      }
      try {
        return await guardedFetch(
          service.breaker,
          target,
          { ...request, method, headers },
          {
            isFailure: service.isFailure,
            ...(this.fetch ? { fetch: this.fetch } : {}),
            timeoutMs,
            deadline,
            maxResponseBytes: service.maxResponseBytes,
          },
        );
      } catch (error) {
        if (attempt >= attempts || !isRetryable(error, service.breaker.name)) throw error;
        const delayMs = retryDelayMs(service, attempt, error);
        // A retry that could not start before the deadline would only trade this answer for a 504.
        if (delayMs === undefined || (deadline !== undefined && Date.now() + delayMs >= deadline))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }
}

/**
 * Creates a {@link ServiceClient}; create it once, at module scope.
 *
 * @example
 * const services = createServiceClient({ tableName, services: { users: { baseUrl: usersApiUrl } } });
 * await services.callService('users', `users/${encodeURIComponent(id)}`);
 */
export function createServiceClient<S extends string>(options: ServiceClientOptions<S>): ServiceClient<S> {
  return new ServiceClient(options);
}
