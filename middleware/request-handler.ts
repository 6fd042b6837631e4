// The HTTP handler every AWS SDK client of the toolkit uses: bounded, so an AWS outage never hangs a Lambda.
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export interface RequestTimeouts {
  /** Upper bound on one HTTP request (each SDK attempt). */
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
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
