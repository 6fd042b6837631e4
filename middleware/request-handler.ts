// The HTTP handler every AWS SDK client of the toolkit uses: bounded, so an AWS outage never hangs a Lambda.
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { assertNoProblems } from './errors.js';
import { checkTimeLimit } from './time-limits.js';

export interface RequestTimeouts {
  /** Upper bound on one HTTP request (each SDK attempt). */
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
}

/**
 * A client factory's timeouts, defaulted (2 s per request, 1 s to connect) and checked: the handler
 * takes 0 for no bound at all, and past the timers' maximum every request times out at once.
 * Throws InvalidOptionsError naming `factory`.
 */
export function clientRequestTimeouts(factory: string, given: Partial<RequestTimeouts>): RequestTimeouts {
  const timeouts = {
    requestTimeoutMs: given.requestTimeoutMs ?? 2000,
    connectionTimeoutMs: given.connectionTimeoutMs ?? 1000,
  };
  const problems: string[] = [];
  checkTimeLimit(problems, 'requestTimeoutMs', timeouts.requestTimeoutMs);
  checkTimeLimit(problems, 'connectionTimeoutMs', timeouts.connectionTimeoutMs);
  assertNoProblems(factory, problems);
  return timeouts;
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
  agents: { readonly httpAgent?: HttpAgent; readonly httpsAgent?: HttpsAgent } = {},
): NodeHttpHandler {
  return new NodeHttpHandler({
    requestTimeout: timeouts.requestTimeoutMs,
    throwOnRequestTimeout: true,
    connectionTimeout: timeouts.connectionTimeoutMs,
    ...agents,
  });
}
