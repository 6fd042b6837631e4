// Tells a passing failure of an AWS dependency (throttling, outage, network, timeout, unreadable reply) from our own faults.

/**
 * How a dependency failed, when the failure is its own and passing: `throttled` (it refused for load),
 * `unavailable` (a 5xx, or an error the service marks retryable), `unreachable` (no connection, or one
 * dropped), `timeout` (no answer in time), `bad_reply` (an answer the SDK could not read).
 */
export type DependencyFailureKind = 'throttled' | 'unavailable' | 'unreachable' | 'timeout' | 'bad_reply';

/** A passing failure of a dependency, described by what is safe to log: never the error's message. */
export interface DependencyFailure {
  readonly kind: DependencyFailureKind;
  /** The AWS service whose client failed (`DynamoDB`, `KMS`), when the client was named with {@link nameAwsDependency}. */
  readonly dependency: string | undefined;
  /** The error's name (`ProvisionedThroughputExceededException`, `TimeoutError`). */
  readonly errorName: string;
  /** Node's system error code (`ECONNREFUSED`), when the failure is the network's. */
  readonly errorCode: string | undefined;
}

/**
 * Error names AWS services give a request refused for load, whatever the HTTP status (DynamoDB's are
 * 400s). `LimitExceededException` is left out: several services use it for a quota that no wait lifts.
 */
const throttlingErrorNames = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  // SQS and SNS on an encrypted queue or topic: KMS refused their data-key request for load.
  'KmsThrottled',
  'KMSThrottlingException',
  // DynamoDB: another transaction is still writing an item of this one's; the SDK retries it as throttling.
  'TransactionInProgressException',
]);

/**
 * CancellationReasons codes of a DynamoDB transaction cancelled for load (a hot partition, an index
 * still scaling). The SDK does not retry such a cancellation.
 */
const throttlingCancellationCodes = new Set(['ThrottlingError', 'ProvisionedThroughputExceeded']);
/**
 * Codes that may stand beside them in a cancellation that is still only a passing one: an item that was
 * fine, or one another transaction was writing. Any other (a failed condition, a validation error) is the
 * caller's to read or ours to fix.
 */
const passingCancellationCodes = new Set(['None', 'TransactionConflict', ...throttlingCancellationCodes]);

/**
 * Node system error codes of a connection that could not be made or was lost. They come first: the SDK's
 * HTTP handler renames a reset or broken pipe `TimeoutError` although nothing timed out.
 */
const networkErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * `TimeoutError`: the SDK's HTTP handler gave up (connection or request timeout); the others: services' own.
 * Counted only on an error that came through an SDK client (it carries `$metadata`): Middy names its own
 * early timeout `TimeoutError` too, and a function that ran out of time is ours, not a dependency's.
 */
const timeoutErrorNames = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);

/**
 * `AbortSignal.timeout()`'s reason once its time has passed: a DOMException named TimeoutError, which fetch
 * rejects with and a toolkit store throws when its bound cuts an SDK call. Middy's early timeout, a plain
 * Error of that name, is the function's own; a deadline of ours aborts with a DeadlineExceededError.
 */
function isTimeBoundReason(value: unknown): boolean {
  return value instanceof DOMException && value.name === 'TimeoutError';
}

/** The fields by which the AWS SDK (v3) and Node describe a failed call. */
interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  /** Who the service blames, from the error's model: `client` or `server`. */
  $fault?: unknown;
  /** Set on errors the service models as retryable; `throttling: true` on throttling ones. */
  $retryable?: { throttling?: unknown } | undefined;
  /** Set by the SDK on every error of a call (`attempts`); `httpStatusCode` once the service answered. */
  $metadata?: { httpStatusCode?: unknown } | undefined;
  /** The raw answer, on every error thrown while reading one (a modelled error, or a body that did not parse). */
  $response?: unknown;
  /** DynamoDB's TransactionCanceledException: one reason per item of the transaction, in order. */
  CancellationReasons?: unknown;
  /** The SDK's AbortError: the call's AbortSignal's reason, when its HTTP handler saw the abort. */
  cause?: unknown;
}

/** A transaction DynamoDB cancelled for throttling alone: one of its items throttled, none failed otherwise. */
function isThrottledCancellation(error: SdkErrorShape): boolean {
  const reasons = error.CancellationReasons;
  if (error.name !== 'TransactionCanceledException' || !Array.isArray(reasons)) return false;
  const codes = reasons.map((reason: { Code?: unknown } | null | undefined) => String(reason?.Code));
  return (
    codes.some((code) => throttlingCancellationCodes.has(code)) &&
    codes.every((code) => passingCancellationCodes.has(code))
  );
}

function kindOf(error: SdkErrorShape): DependencyFailureKind | undefined {
  const { name, code, $fault, $retryable } = error;
  const status = error.$metadata?.httpStatusCode;
  if (typeof code === 'string' && networkErrorCodes.has(code)) return 'unreachable';
  const fromSdk = typeof error.$metadata === 'object' && error.$metadata !== null;
  if (
    code === 'ETIMEDOUT' ||
    (fromSdk && typeof name === 'string' && timeoutErrorNames.has(name)) ||
    isTimeBoundReason(error) ||
    (name === 'AbortError' && isTimeBoundReason(error.cause))
  ) {
    return 'timeout';
  }
  if (
    (typeof name === 'string' && throttlingErrorNames.has(name)) ||
    isThrottledCancellation(error) ||
    status === 429 ||
    ($retryable !== undefined && $retryable?.throttling === true)
  ) {
    return 'throttled';
  }
  if ($fault === 'server' || $retryable !== undefined || (typeof status === 'number' && status >= 500)) {
    return 'unavailable';
  }
  // Read but not understood, and not a modelled error (those carry `$fault`): a success or an answer
  // without a status that the SDK could not parse, say a proxy's page. A 4xx that did not parse is
  // more likely ours (a wrong endpoint, a refused signature), so it stays a fault of ours.
  if ('$response' in error && $fault === undefined && !(typeof status === 'number' && status >= 400)) {
    return 'bad_reply';
  }
  return undefined;
}

/** Errors thrown through a client named with {@link nameAwsDependency}, and that client's service. */
const dependencyOfError = new WeakMap<object, string>();

/**
 * What passing failure of a dependency `error` is, or undefined when it is not one: a modelled client
 * error (`ValidationException`, `ConditionalCheckFailedException`, `AccessDeniedException`,
 * `ResourceNotFoundException`), a programming error or anything else unrecognised is ours to fix. A
 * DynamoDB transaction cancelled because an item throttled (reasons `ThrottlingError` or
 * `ProvisionedThroughputExceeded`, the others `None` or `TransactionConflict`) is `throttled`; one with a
 * failed condition is not: the caller reads which item failed. An `AbortSignal.timeout()` that ran out is a
 * `timeout`, whether its reason is thrown (fetch, the circuit store) or is the `cause` of the SDK's
 * AbortError; any other AbortError is ours. Otherwise only the error itself is read, not its `cause`: an
 * error wrapped by our own code is that code's to map.
 *
 * @example
 * dependencyFailure(new ProvisionedThroughputExceededException({ $metadata: {}, message: 'Rate exceeded' }));
 * // { kind: 'throttled', errorName: 'ProvisionedThroughputExceededException', … }
 */
export function dependencyFailure(error: unknown): DependencyFailure | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const shape = error as SdkErrorShape;
  const kind = kindOf(shape);
  if (kind === undefined) return undefined;
  return {
    kind,
    dependency: dependencyOfError.get(error),
    errorName: typeof shape.name === 'string' ? shape.name : 'Error',
    errorCode: typeof shape.code === 'string' ? shape.code : undefined,
  };
}

/**
 * The dependency failure behind `error`: its own, or that of an error in its `cause` chain (a 503 the
 * toolkit threw because KMS or the nonce store failed), for logs. Undefined when none is.
 */
export function underlyingDependencyFailure(error: unknown): DependencyFailure | undefined {
  let current = error;
  // A few links suffice; a cause cycle must not loop.
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const failure = dependencyFailure(current);
    if (failure) return failure;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A short machine-readable cause for a failure of a toolkit store (rate limits, circuit state), for events
 * and logs: `store_` and the kind of {@link dependencyFailure} (`store_throttled`, `store_timeout`,
 * `store_unreachable`…), or `store_error` for a failure that is not a dependency's passing one.
 */
export function storeFailureReason(error: unknown): string {
  return `store_${dependencyFailure(error)?.kind ?? 'error'}`;
}

/**
 * How long to leave a dependency alone after `failuresInARow` (≥ 1) passing failures of it: 1 s, doubling
 * with each further one, never more than `maxMs`, so a blip costs a second and a lasting outage one try
 * per `maxMs`.
 *
 * @example
 * retryBackoffMs(1, 30_000); // 1000
 * retryBackoffMs(7, 30_000); // 30000 (64 s capped)
 */
export function retryBackoffMs(failuresInARow: number, maxMs: number): number {
  return Math.min(1000 * 2 ** (failuresInARow - 1), maxMs);
}

/** The slice of an AWS SDK (v3) client that {@link nameAwsDependency} needs. */
export interface NameableAwsClient {
  readonly config: { readonly serviceId?: string | undefined };
  readonly middlewareStack: {
    add(
      middleware: (
        next: (args: never) => Promise<unknown>,
        context: object,
      ) => (args: never) => Promise<unknown>,
      options: { step: 'initialize'; name: string },
    ): void;
  };
}

/**
 * Records, for every error a call through `client` throws, which service it came from, so an error
 * rendered or logged later names it (`dependency: 'DynamoDB'`): a network error or timeout carries no
 * trace of its service. The toolkit's client factories do this; call it on clients you create.
 *
 * @example
 * const sqs = new SQSClient({});
 * nameAwsDependency(sqs); // errors of its calls name 'SQS'
 */
export function nameAwsDependency(client: NameableAwsClient, name = client.config.serviceId ?? 'AWS'): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (typeof error === 'object' && error !== null) dependencyOfError.set(error, name);
        throw error;
      }
    },
    // The outermost step: it sees the error the call ends with, after the SDK's retries.
    { step: 'initialize', name: 'bulwarkNameAwsDependency' },
  );
}
