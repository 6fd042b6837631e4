// The HTTP handler every AWS SDK client of the toolkit uses: bounded, so an AWS outage never hangs a Lambda.
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { assertNoProblems } from './errors.js';
import { definedOnly, shownValue } from './options.js';
import { checkTimeLimit } from './time-limits.js';

export interface RequestTimeouts {
  /** Upper bound on one HTTP request (each SDK attempt). */
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
}

/** A client's bounds: its timeouts and the SDK's attempts per call. */
export interface ClientRequestLimits extends RequestTimeouts {
  /** SDK attempts including the first. */
  readonly maxAttempts: number;
}

/**
 * A client factory's bounds, defaulted (2 s per request, 1 s to connect, 3 attempts) and checked: the
 * handler takes 0 for no bound at all, past the timers' maximum every request times out at once, and the
 * SDK quietly makes 1 attempt of any `maxAttempts` it cannot use. Throws one InvalidOptionsError naming
 * `factory` that also lists the factory's own `problems`.
 */
export function clientRequestLimits(
  factory: string,
  given: { readonly [K in keyof ClientRequestLimits]?: ClientRequestLimits[K] | undefined },
  problems: string[] = [],
): ClientRequestLimits {
  const limits = {
    requestTimeoutMs: given.requestTimeoutMs ?? 2000,
    connectionTimeoutMs: given.connectionTimeoutMs ?? 1000,
    maxAttempts: given.maxAttempts ?? 3,
  };
  checkTimeLimit(problems, 'requestTimeoutMs', limits.requestTimeoutMs);
  checkTimeLimit(problems, 'connectionTimeoutMs', limits.connectionTimeoutMs);
  if (!(Number.isSafeInteger(limits.maxAttempts) && limits.maxAttempts >= 1)) {
    problems.push(`maxAttempts must be an integer >= 1 (got ${shownValue(limits.maxAttempts)})`);
  }
  assertNoProblems(factory, problems);
  return limits;
}

/**
 * A NodeHttpHandler whose request timeout fails the request. Without `throwOnRequestTimeout` the SDK
 * only logs a warning when `requestTimeout` passes and keeps waiting, up to the socket's 15 minutes.
 *
 * @example
 * new KMSClient({ requestHandler: boundedRequestHandler({ requestTimeoutMs: 2000, connectionTimeoutMs: 1000 }) });
 */
export function boundedRequestHandler(
  timeouts: RequestTimeouts,
  agents: {
    /** @default the SDK's own keep-alive agent */
    readonly httpAgent?: HttpAgent | undefined;
    /** @default the SDK's own keep-alive agent */
    readonly httpsAgent?: HttpsAgent | undefined;
  } = {},
): NodeHttpHandler {
  return new NodeHttpHandler({
    requestTimeout: timeouts.requestTimeoutMs,
    throwOnRequestTimeout: true,
    connectionTimeout: timeouts.connectionTimeoutMs,
    ...definedOnly(agents),
  });
}
