// One signed webhook POST: Standard Webhooks headers, SSRF-checked connection, no redirects, bounded time.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { parseRetryAfter } from '../../middleware/circuit-breaker/guarded-fetch.js';
import type { SsrfGuard } from '../shared/ssrf-guard.js';

/** The endpoint answered, but not with a 2xx (a 3xx included: redirects are never followed). */
export class WebhookResponseError extends Error {
  constructor(
    readonly statusCode: number,
    /** From a 429 or 503's Retry-After, in seconds; undefined otherwise. */
    readonly retryAfterSec: number | undefined,
  ) {
    super(`Endpoint answered HTTP ${statusCode}`);
    this.name = 'WebhookResponseError';
  }
}

/** What a delivered POST reports. */
export interface PostOutcome {
  readonly statusCode: number;
  readonly durationMs: number;
}

/** The Standard Webhooks headers for one attempt; `timestamp` is the attempt's time, as the spec says. */
export interface SignedHeaders {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
}

/**
 * Signs `body` with each of the endpoint's `whsec_` secrets through the `standardwebhooks` library, so any
 * receiver verifying with the same library (or the spec) accepts it. Several secrets (the current one
 * first, then the one a rotation replaced) make one `v1,<signature>` each, separated by spaces, as the
 * spec allows for rotation: a receiver that knows any of them verifies.
 *
 * @example
 * const headers = signWebhook(['whsec_…'], 'msg_…', JSON.stringify(payload), new Date());
 */
export function signWebhook(
  secrets: readonly [string, ...string[]],
  webhookId: string,
  body: string,
  at: Date,
): SignedHeaders {
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((secret) => new Webhook(secret).sign(webhookId, at, body)).join(' '),
  };
}

/**
 * Keep-alive agents, one per scheme, so consecutive deliveries to one receiver reuse connections. A
 * warm worker meets many receivers, chosen by tenants, and many never close an idle connection (Go's
 * net/http by default): so few idle sockets are kept per receiver, and only for a few seconds, which
 * keeps the descriptors well inside Lambda's 1,024. Without these bounds a batch's 10 parallel POSTs left
 * 10 idle sockets per receiver for good: a review's warm worker reached EMFILE after about 100 receivers,
 * and its DynamoDB and SQS calls failed with the deliveries. No cap on sockets in all: Node counts idle
 * ones toward it and closes none to make room, so a new receiver's POST would wait for one to time out.
 */
const agentOptions = {
  keepAlive: true,
  maxSockets: 50,
  maxFreeSockets: 2,
  // Node destroys a free socket idle this long; a request in flight is bounded by its own signal.
  timeout: 5_000,
};
const agents = {
  'http:': new HttpAgent(agentOptions),
  'https:': new HttpsAgent(agentOptions),
};

/** How much of a response body is read (and thrown away) before the connection is dropped instead. */
const maxDrainBytes = 64 * 1024;

/** Reads and discards the body, so a keep-alive connection can be reused, up to a bound. */
function drain(response: IncomingMessage): void {
  let seen = 0;
  response.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > maxDrainBytes) response.destroy();
  });
  response.on('error', () => {});
  response.resume();
}

export interface PostWebhookOptions {
  readonly guard: SsrfGuard;
  /** Aborts the request (the circuit breaker's timeout, the Lambda's deadline). */
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
}

/**
 * POSTs `body` to `url` and resolves when the endpoint answers 2xx; rejects with
 * {@link WebhookResponseError} for any other status, with the SSRF guard's error when the address
 * is not allowed, or with the network or timeout error. The guard checks an IP literal here (Node
 * calls no `lookup` for one) and every resolved address at connect time through `lookup`, so the
 * address actually connected to is the one checked.
 */
export function postWebhook(
  url: URL,
  headers: Readonly<Record<string, string>>,
  body: string,
  options: PostWebhookOptions,
): Promise<PostOutcome> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) options.guard.assertAddressAllowed(host);
  const scheme = url.protocol === 'https:' ? 'https:' : 'http:';
  const request = scheme === 'https:' ? httpsRequest : httpRequest;
  const signal = options.signal
    ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)])
    : AbortSignal.timeout(options.timeoutMs);
  const started = performance.now();
  return new Promise<PostOutcome>((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: 'POST',
        agent: agents[scheme],
        lookup: options.guard.lookup,
        signal,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'Bulwark-Webhooks/1.0',
        },
      },
      (response) => {
        drain(response);
        const statusCode = response.statusCode ?? 0;
        const durationMs = Math.round(performance.now() - started);
        if (statusCode >= 200 && statusCode < 300) {
          resolve({ statusCode, durationMs });
          return;
        }
        const retryAfter = statusCode === 429 || statusCode === 503;
        const header = response.headers['retry-after'];
        reject(new WebhookResponseError(statusCode, retryAfter ? parseRetryAfter(header) : undefined));
      },
    );
    outgoing.on('error', (error) => reject(signal.aborted && signal.reason ? signal.reason : error));
    outgoing.end(body);
  });
}
