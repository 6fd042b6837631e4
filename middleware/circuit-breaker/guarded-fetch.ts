// fetch through a circuit breaker: network errors, timeouts and failing statuses count; the answer is read in time.
import { DependencyError, InvalidArgumentError } from '../errors.js';
import { checkFunctionOption, shownValue } from '../options.js';
import type { CircuitBreaker } from './circuit-breaker.js';

/** Which answers count as a failure of the dependency. */
export type ResponseFailurePredicate = (response: Response) => boolean;

/** Server errors count; client errors (4xx) are the caller's problem, not the dependency's. */
export const isServerError: ResponseFailurePredicate = (response) => response.status >= 500;

/**
 * A request as guardedFetch sends it: the body, if any, is a string (what service calls carry).
 * Redirects are never followed (a 3xx is the answer): following one would send the request, and
 * any signature on it, to wherever the Location header points.
 */
export type GuardedRequestInit = Omit<RequestInit, 'signal' | 'body' | 'redirect'> & {
  readonly body?: string | undefined;
};

/** The largest answer guardedFetch reads unless told otherwise: 1 MiB. */
export const defaultMaxResponseBytes = 1_048_576;

/** The longest `Retry-After` passed on, a day: a longer one is cut to it, not ignored. */
const maxRetryAfterSec = 86_400;

/**
 * The HTTP date forms (RFC 9110 §5.6.7), each at the start of the value: IMF-fixdate
 * `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime
 * `Sun Nov  6 08:49:37 1994`. Only these reach Date.parse, which reads almost any text as some date
 * ("1.5" as 2001, "60," as 1960).
 */
const imfFixdate = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT/;
const rfc850Date = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT/;
const asctimeDate = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}/;
/** delta-seconds, with a decimal some servers send read as the next whole second. */
const deltaSeconds = /^\d+(\.\d+)?/;

/** The instant an HTTP date at the start of `text` names (asctime carries no zone: it is GMT), and its length. */
function leadingHttpDate(text: string): { time: number; length: number } | undefined {
  const zoned = imfFixdate.exec(text) ?? rfc850Date.exec(text);
  if (zoned) return { time: Date.parse(zoned[0]), length: zoned[0].length };
  const asctime = asctimeDate.exec(text);
  if (!asctime) return undefined;
  return { time: Date.parse(`${asctime[0]} GMT`), length: asctime[0].length };
}

/**
 * A `Retry-After` value in seconds: delta-seconds (a decimal rounded up) or an HTTP date (RFC 9110
 * §10.2.3), never negative, however large (Infinity for more digits than a number holds); undefined when
 * absent or unreadable. Headers.get joins repeated headers with ", ": the first value counts.
 *
 * @example
 * parseRetryAfter('120'); // 120
 * parseRetryAfter('5, 10'); // 5
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const endsFirstValue = (length: number) => /^\s*(,|$)/.test(text.slice(length));
  const seconds = deltaSeconds.exec(text);
  if (seconds) return endsFirstValue(seconds[0].length) ? Math.ceil(Number(seconds[0])) : undefined;
  const date = leadingHttpDate(text);
  if (!date || Number.isNaN(date.time) || !endsFirstValue(date.length)) return undefined;
  return Math.max(0, Math.ceil((date.time - now) / 1000));
}

/**
 * Seconds a response's `Retry-After` header asks to wait, 1 to a day: a longer wait is cut to a day,
 * so that the answer still says "not soon" and callService makes no retry. Undefined when there is
 * none or it cannot be read.
 *
 * @example
 * retryAfterSeconds(response.headers); // 30 for "Retry-After: 30"
 */
export function retryAfterSeconds(headers: Headers, now = Date.now()): number | undefined {
  const seconds = parseRetryAfter(headers.get('retry-after') ?? undefined, now);
  if (seconds === undefined) return undefined;
  return Math.min(maxRetryAfterSec, Math.max(1, seconds));
}

export interface GuardedFetchOptions {
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /** @default {@link isServerError}: 5xx counts, 4xx does not */
  readonly isFailure?: ResponseFailurePredicate | undefined;
  /**
   * A shorter timeout for this request, a finite number > 0 (else `InvalidArgumentError`); it counts
   * when it runs out. @default the breaker's timeoutMs
   */
  readonly timeoutMs?: number | undefined;
  /**
   * Epoch ms by which the caller needs its answer, e.g. the Lambda's deadline less a margin; running
   * out of it is a `DeadlineExceededError` (504) that does not count. @default none
   */
  readonly deadline?: number | undefined;
  /**
   * The largest answer body read, in bytes; a longer one is a `DependencyError` that counts (the
   * whole body is held in memory, so an unbounded one could exhaust the function's). @default 1 MiB
   */
  readonly maxResponseBytes?: number | undefined;
}

/** Reads the body, giving up as soon as it is longer than `maxBytes`. */
async function readBody(
  response: Response,
  maxBytes: number,
  dependency: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new DependencyError(dependency, `${dependency} answered more than ${maxBytes} bytes`, {
      upstreamStatus: response.status,
    });
  if (Number(response.headers.get('content-length')) > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (response.body) {
    // A reader, not for-await: the DOM lib's ReadableStream has no async iterator, and adopters may include it.
    const reader = response.body.getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      length += read.value.byteLength;
      if (length > maxBytes) {
        // Stops the download, as leaving a for-await would; the error to report is the size, not the cancel.
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(read.value);
    }
  }
  return Buffer.concat(chunks, length);
}

/**
 * `fetch` guarded by a breaker. A network error, an answer `isFailure` rejects or one longer than
 * `maxResponseBytes` becomes a {@link DependencyError} (502; 503 with `Retry-After` when the failing
 * answer said when to come back) and counts as a failure; past the breaker's timeout the request is
 * aborted with a `DependencyTimeoutError` (504); an open circuit rejects at once with a
 * `CircuitOpenError` (503). The body is read before the timeout ends, so the returned Response is
 * complete: a dependency that sends headers and then stalls is caught too. Redirects are not followed.
 *
 * @example
 * const users = new CircuitBreaker<Response>({ name: 'users', tableName, timeoutMs: 2000 });
 * const response = await guardedFetch(users, `${usersApi}/users/${id}`);
 */
export function guardedFetch(
  breaker: CircuitBreaker<Response>,
  url: string | URL,
  init: GuardedRequestInit = {},
  options: GuardedFetchOptions = {},
): Promise<Response> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const isFailure = options.isFailure ?? isServerError;
  const maxResponseBytes = options.maxResponseBytes ?? defaultMaxResponseBytes;
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < 1) {
    return Promise.reject(new InvalidArgumentError('maxResponseBytes must be a positive integer'));
  }
  const problems: string[] = [];
  if (typeof breaker?.execute !== 'function') {
    problems.push(`breaker must be a CircuitBreaker (got ${shownValue(breaker)})`);
  }
  // Called inside the breaker, their TypeError would count as the dependency failing and open the circuit.
  checkFunctionOption(problems, 'fetch', options.fetch);
  checkFunctionOption(problems, 'isFailure', options.isFailure);
  if (problems.length > 0) return Promise.reject(new InvalidArgumentError(problems.join('; ')));
  return breaker.execute(
    async ({ signal }) => {
      let response: Response;
      let body: Uint8Array<ArrayBuffer>;
      const { body: requestBody, ...requestInit } = init;
      try {
        response = await fetchImpl(url, {
          ...requestInit,
          ...(requestBody === undefined ? {} : { body: requestBody }),
          redirect: 'manual',
          signal,
        });
        body = await readBody(response, maxResponseBytes, breaker.name);
      } catch (error) {
        if (error instanceof DependencyError) throw error;
        // After a timeout the breaker has already answered; this rejection goes nowhere.
        throw new DependencyError(breaker.name, `${breaker.name} is unreachable`, { cause: error });
      }
      if (isFailure(response)) {
        throw new DependencyError(breaker.name, `${breaker.name} answered ${response.status}`, {
          upstreamStatus: response.status,
          retryAfterSec: retryAfterSeconds(response.headers),
        });
      }
      const bodyless = response.status === 204 || response.status === 304 || body.byteLength === 0;
      // The status text is left behind: the Response constructor refuses some that fetch accepts.
      return new Response(bodyless ? null : body, { status: response.status, headers: response.headers });
    },
    options.timeoutMs === undefined && options.deadline === undefined
      ? undefined
      : { timeoutMs: options.timeoutMs, deadline: options.deadline },
  );
}
