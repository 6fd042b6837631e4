// The toolkit's one error model: a base error with a stable `code`, and HTTP-facing subclasses.

/** Stable machine-readable error codes. Renaming one is a breaking change. */
export type BulwarkErrorCode =
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT'
  | 'VALIDATION_FAILED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'INVALID_TOKEN'
  | 'INSUFFICIENT_SCOPE'
  /** A JWKS key store could not give the key a token names; `JwtVerifier` answers it with a 401 or a 503. */
  | 'KEY_LOOKUP_FAILED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_ACCEPTABLE'
  | 'CONFLICT'
  | 'GONE'
  | 'PRECONDITION_FAILED'
  /** An Idempotency-Key sent again with a request other than the one it was first used with. */
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'TOO_MANY_REQUESTS'
  /** A 4xx of another middleware (`@middy/util` createError) whose status has no code of its own. */
  | 'CLIENT_ERROR'
  | 'SERVICE_UNAVAILABLE'
  | 'CIRCUIT_OPEN'
  | 'DEPENDENCY_FAILED'
  /** A dependency failed and said when to come back (its `Retry-After`). */
  | 'DEPENDENCY_UNAVAILABLE'
  | 'DEPENDENCY_TIMEOUT'
  | 'DELIVERY_REJECTED'
  | 'INTERNAL'
  | 'ENCRYPTION_FAILED'
  | 'DECRYPTION_FAILED'
  | 'CONFIG_INVALID'
  | 'SECRET_UNAVAILABLE'
  | 'SSRF_BLOCKED'
  /** An HTTP middleware was given an event it does not read (ALB, SQS, EventBridge, a warmup ping, null). */
  | 'UNSUPPORTED_EVENT';

/**
 * The one status each code is answered with over HTTP. A problem's `type` is derived from its code, and
 * RFC 9457 has a type mean one thing with one title, so a code never spans two statuses: a problem whose
 * status is not its code's here (`CLIENT_ERROR`, any 4xx without a code of its own; an `HttpError` built
 * with another status) is rendered with `type: about:blank`, which says no more than its status. The
 * library's other codes are never answered as such (an `EncryptionError` is a 500 `INTERNAL`…).
 */
export const problemStatuses: Readonly<Partial<Record<BulwarkErrorCode, number>>> = {
  VALIDATION_FAILED: 400,
  SSRF_BLOCKED: 400,
  UNAUTHORIZED: 401,
  INVALID_TOKEN: 401,
  FORBIDDEN: 403,
  INSUFFICIENT_SCOPE: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  GONE: 410,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  /** A stored record that cannot be decrypted ({@link isUnreadableRecord}); a key service failure is not one. */
  DECRYPTION_FAILED: 500,
  DEPENDENCY_FAILED: 502,
  SERVICE_UNAVAILABLE: 503,
  CIRCUIT_OPEN: 503,
  DEPENDENCY_UNAVAILABLE: 503,
  DEPENDENCY_TIMEOUT: 504,
};

export interface BulwarkErrorOptions {
  cause?: unknown;
}

/**
 * Base class of every error the toolkit throws. Its `name` is the class name as written, also in a
 * minified bundle; a subclass of your own is named by `new.target.name`, so keep its name when you
 * minify (esbuild `keepNames`) if logs should show it. Each subclass declares the code it is always built
 * with (`instanceof InvalidOptionsError` types `code` as `'INVALID_OPTIONS'`). This class and
 * {@link HttpError} take any code, so a code alone does not tell the class: narrow with `instanceof`.
 */
export class BulwarkError extends Error {
  readonly code: BulwarkErrorCode;

  constructor(code: BulwarkErrorCode, message: string, options: BulwarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = toolkitErrorNames.get(new.target) ?? new.target.name;
  }
}

/**
 * Options were missing, invalid or contradictory; thrown at construction, listing every problem, or at
 * the first request when only it can tell (a middleware used before the authentication it needs).
 */
export class InvalidOptionsError extends BulwarkError {
  declare readonly code: 'INVALID_OPTIONS';
  readonly problems: readonly string[];

  constructor(component: string, problems: readonly string[]) {
    super('INVALID_OPTIONS', `Invalid ${component} options: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** A call received an argument it can never accept (an empty key, a cost that is not a positive integer). */
export class InvalidArgumentError extends BulwarkError {
  declare readonly code: 'INVALID_ARGUMENT';
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/**
 * Collects option problems and throws one {@link InvalidOptionsError} listing all of them.
 *
 * @example
 * const problems = [];
 * if (limit <= 0) problems.push('limit must be > 0');
 * assertNoProblems('rateLimit', problems);
 */
export function assertNoProblems(component: string, problems: readonly string[]): void {
  if (problems.length > 0) throw new InvalidOptionsError(component, problems);
}

export interface HttpErrorOptions extends BulwarkErrorOptions {
  /** Extra response headers (Allow, Retry-After, WWW-Authenticate...). */
  headers?: Record<string, string> | undefined;
}

/** An error that maps to an HTTP response; `expose` tells whether its message may reach the client. */
export class HttpError extends BulwarkError {
  readonly statusCode: number;
  readonly expose: boolean;
  readonly headers: Readonly<Record<string, string>>;

  constructor(statusCode: number, code: BulwarkErrorCode, message: string, options: HttpErrorOptions = {}) {
    super(code, message, options);
    this.statusCode = statusCode;
    this.expose = statusCode < 500;
    this.headers = options.headers ?? {};
  }
}

/** One problem with one input field, as listed in a problem+json `errors` member. */
export interface FieldProblem {
  /** Dotted path of the field, e.g. `body.start` or `query.limit`. */
  field: string;
  message: string;
}

export class ValidationError extends HttpError {
  declare readonly code: 'VALIDATION_FAILED';
  readonly fields: readonly FieldProblem[];

  constructor(message: string, fields: readonly FieldProblem[] = [], options: HttpErrorOptions = {}) {
    super(400, 'VALIDATION_FAILED', message, options);
    this.fields = fields;
  }
}

/** 401: no credential, or one of an unknown kind (a bad one is {@link InvalidTokenError}). */
export class UnauthorizedError extends HttpError {
  declare readonly code: 'UNAUTHORIZED';
  constructor(message = 'Authentication is required', options: HttpErrorOptions = {}) {
    super(401, 'UNAUTHORIZED', message, options);
  }
}

/** 403: the caller is known but may not do this (a role, a tenant, another's record). */
export class ForbiddenError extends HttpError {
  declare readonly code: 'FORBIDDEN';
  constructor(message = 'Access denied', options: HttpErrorOptions = {}) {
    super(403, 'FORBIDDEN', message, options);
  }
}

/** Why a presented credential was rejected; stable, safe to log and to count, never the credential itself. */
export type AuthFailureReason =
  | 'malformed'
  | 'bad_base64'
  | 'too_large'
  | 'alg_none'
  | 'alg_not_allowed'
  | 'missing_kid'
  | 'unknown_kid'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_client'
  | 'wrong_token_use'
  | 'wrong_token_type'
  | 'wrong_tenant'
  | 'missing_claim'
  | 'unknown_key'
  | 'revoked'
  | 'unknown_service'
  | 'timestamp_skew'
  | 'replayed';

/**
 * Whose a rejected credential is, as far as the verifier could tell: for the `auth.failure` audit line, never
 * for the answer (problem+json renders no part of it). Every field but `keyId` is set only when the
 * credential's secret or signature checked out (`verified`: an expired token, a revoked key presented with
 * its secret); of a credential that did not, only an API key's id is kept, its format (16 hex digits)
 * checked, as what the client wrote. Nothing is ever kept of an unverified token.
 */
export interface RejectedCredential {
  /** Whether its secret or signature checked out, so that the other fields are the issuer's or the store's. */
  readonly verified: boolean;
  /** The API key's id. */
  readonly keyId?: string | undefined;
  /** The API key's owner, as given to `ApiKeyStore.create`. */
  readonly owner?: string | undefined;
  /** The principal id the credential names: a token's `sub` (a machine's client id), a service's id. */
  readonly subject?: string | undefined;
  readonly clientId?: string | undefined;
  /** The token's issuer, one the verifier is configured with. */
  readonly issuer?: string | undefined;
  readonly tenantId?: string | undefined;
}

export interface InvalidTokenErrorOptions extends HttpErrorOptions {
  /** Whose the credential is, when known (see {@link RejectedCredential}). @default undefined */
  credential?: RejectedCredential | undefined;
}

/**
 * A credential was presented but is not acceptable (bad, expired, revoked, replayed): 401 with an
 * RFC 6750 `invalid_token` challenge. The message describes the problem, never the credential.
 */
export class InvalidTokenError extends HttpError {
  declare readonly code: 'INVALID_TOKEN';
  readonly reason: AuthFailureReason;
  /** Whose the credential is, for the audit line only; undefined when nothing of it can be trusted. */
  readonly credential: RejectedCredential | undefined;

  constructor(reason: AuthFailureReason, message: string, options: InvalidTokenErrorOptions = {}) {
    super(401, 'INVALID_TOKEN', message, {
      ...options,
      headers: {
        'WWW-Authenticate': `Bearer realm="bulwark", error="invalid_token", error_description="${message}"`,
        ...options.headers,
      },
    });
    this.reason = reason;
    this.credential = options.credential;
  }
}

/** The caller is authenticated but lacks scopes the route needs: 403 with an `insufficient_scope` challenge. */
export class InsufficientScopeError extends HttpError {
  declare readonly code: 'INSUFFICIENT_SCOPE';
  readonly requiredScopes: readonly string[];

  constructor(requiredScopes: readonly string[], options: HttpErrorOptions = {}) {
    super(403, 'INSUFFICIENT_SCOPE', `Requires scope ${requiredScopes.join(' ')}`, {
      ...options,
      headers: {
        'WWW-Authenticate': `Bearer realm="bulwark", error="insufficient_scope", scope="${requiredScopes.join(' ')}"`,
        ...options.headers,
      },
    });
    this.requiredScopes = requiredScopes;
  }
}

/** 404: no such resource (or none the caller may know of). */
export class NotFoundError extends HttpError {
  declare readonly code: 'NOT_FOUND';
  constructor(message = 'Not found', options: HttpErrorOptions = {}) {
    super(404, 'NOT_FOUND', message, options);
  }
}

/** 405, with `Allow` naming the methods the resource takes. */
export class MethodNotAllowedError extends HttpError {
  declare readonly code: 'METHOD_NOT_ALLOWED';
  readonly allow: readonly string[];

  constructor(allow: readonly string[], options: HttpErrorOptions = {}) {
    super(405, 'METHOD_NOT_ALLOWED', `Method not allowed; use ${allow.join(', ')}`, {
      ...options,
      headers: { ...options.headers, Allow: allow.join(', ') },
    });
    this.allow = allow;
  }
}

export class ConflictError extends HttpError {
  declare readonly code: 'CONFLICT';
  constructor(message: string, options: HttpErrorOptions = {}) {
    super(409, 'CONFLICT', message, options);
  }
}

/** The resource existed but is permanently unavailable: an expired link or code, a used-up one. */
export class GoneError extends HttpError {
  declare readonly code: 'GONE';
  constructor(message: string, options: HttpErrorOptions = {}) {
    super(410, 'GONE', message, options);
  }
}

/**
 * A condition the request sets (`If-Match`) is false, so its method was not applied: 412 (RFC 9110
 * §13.1.1). The client should read the resource's current state before it tries again.
 */
export class PreconditionFailedError extends HttpError {
  declare readonly code: 'PRECONDITION_FAILED';
  constructor(message: string, options: HttpErrorOptions = {}) {
    super(412, 'PRECONDITION_FAILED', message, options);
  }
}

/** 413: the body is longer than `limitBytes`. */
export class PayloadTooLargeError extends HttpError {
  declare readonly code: 'PAYLOAD_TOO_LARGE';
  constructor(limitBytes: number, options: HttpErrorOptions = {}) {
    super(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limitBytes} bytes`, options);
  }
}

/** 415: the body is not of the media type `expected` names. */
export class UnsupportedMediaTypeError extends HttpError {
  declare readonly code: 'UNSUPPORTED_MEDIA_TYPE';
  constructor(expected: string, options: HttpErrorOptions = {}) {
    super(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${expected}`, options);
  }
}

/**
 * The body came with a content coding (`Content-Encoding: gzip`…) the reader does not undo. A 415 like a
 * wrong media type, whose `Accept-Encoding: identity` says what a retry may send (RFC 9110 §15.5.16).
 */
export class UnsupportedContentEncodingError extends UnsupportedMediaTypeError {
  constructor(options: HttpErrorOptions = {}) {
    super('', { ...options, headers: { ...options.headers, 'Accept-Encoding': 'identity' } });
    this.message = 'Content-Encoding is not supported: send the body without one (identity)';
  }
}

/**
 * An Idempotency-Key came again with another request than the one it was first used with: 422, as
 * draft-ietf-httpapi-idempotency-key-header has it. The stored answer is not this request's to replay.
 */
export class IdempotencyKeyReusedError extends HttpError {
  declare readonly code: 'IDEMPOTENCY_KEY_REUSED';
  constructor(options: HttpErrorOptions = {}) {
    super(
      422,
      'IDEMPOTENCY_KEY_REUSED',
      'This idempotency key was already used with a different request',
      options,
    );
  }
}

/** Adds `Retry-After` (whole seconds, at least 1) to the headers of a throttling answer. */
function withRetryAfter(retryAfterSec: number | undefined, options: HttpErrorOptions): HttpErrorOptions {
  if (retryAfterSec === undefined) return options;
  return {
    ...options,
    headers: { ...options.headers, 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSec))) },
  };
}

/** 429, with `Retry-After` of `retryAfterSec` (at least 1, rounded up). */
export class TooManyRequestsError extends HttpError {
  declare readonly code: 'TOO_MANY_REQUESTS';
  readonly retryAfterSec: number;

  constructor(retryAfterSec: number, message = 'Too many requests', options: HttpErrorOptions = {}) {
    super(429, 'TOO_MANY_REQUESTS', message, withRetryAfter(retryAfterSec, options));
    this.retryAfterSec = retryAfterSec;
  }
}

export class ServiceUnavailableError extends HttpError {
  declare readonly code: 'SERVICE_UNAVAILABLE';
  readonly retryAfterSec: number | undefined;

  constructor(message = 'Service unavailable', retryAfterSec?: number, options: HttpErrorOptions = {}) {
    super(503, 'SERVICE_UNAVAILABLE', message, withRetryAfter(retryAfterSec, options));
    this.retryAfterSec = retryAfterSec;
  }
}

/** A circuit breaker is open (or its one half-open probe is in flight): the call was not made. */
export class CircuitOpenError extends HttpError {
  declare readonly code: 'CIRCUIT_OPEN';
  /** The circuit's name; for logs and metrics, never sent to the client. */
  readonly circuitName: string;
  readonly retryAfterSec: number;

  constructor(circuitName: string, retryAfterSec: number, options: HttpErrorOptions = {}) {
    super(503, 'CIRCUIT_OPEN', `Circuit ${circuitName} is open`, withRetryAfter(retryAfterSec, options));
    this.circuitName = circuitName;
    this.retryAfterSec = Math.max(1, Math.ceil(retryAfterSec));
  }
}

/** A guarded call ran past its timeout and was aborted; counts as a failure of the dependency. */
export class DependencyTimeoutError extends HttpError {
  declare readonly code: 'DEPENDENCY_TIMEOUT';
  readonly dependency: string;
  readonly timeoutMs: number;

  constructor(dependency: string, timeoutMs: number, options: HttpErrorOptions = {}) {
    super(504, 'DEPENDENCY_TIMEOUT', `${dependency} did not answer within ${timeoutMs} ms`, options);
    this.dependency = dependency;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The caller ran out of time, not the dependency: the call was cut short at the caller's deadline (the
 * time its Lambda has left), before the dependency's own timeout, or never made. A 504 like any timeout,
 * but circuit breakers do not count it: a Lambda short of time says nothing about the service it calls.
 */
export class DeadlineExceededError extends DependencyTimeoutError {
  /**
   * `options.message` replaces the wording about one dependency's call, for a deadline over work that
   * spans several (the work after a commit), where naming one would be a guess.
   */
  constructor(
    dependency: string,
    timeoutMs: number,
    options: HttpErrorOptions & { message?: string | undefined } = {},
  ) {
    const { message, ...httpOptions } = options;
    super(dependency, timeoutMs, httpOptions);
    this.message =
      message ??
      (timeoutMs > 0
        ? `${dependency} did not answer within the ${timeoutMs} ms the caller had left`
        : `${dependency} was not called: the caller had no time left`);
  }
}

/**
 * A dependency failed: network error or an answer that counts as a failure (5xx by default). 502
 * `DEPENDENCY_FAILED`, or 503 `DEPENDENCY_UNAVAILABLE` with `Retry-After` when the dependency said when to
 * come back (its own `Retry-After`).
 */
export class DependencyError extends HttpError {
  declare readonly code: 'DEPENDENCY_FAILED' | 'DEPENDENCY_UNAVAILABLE';
  readonly dependency: string;
  /** The dependency's HTTP status, when it answered. */
  readonly upstreamStatus: number | undefined;
  /** How long the dependency asked callers to wait, when it did. */
  readonly retryAfterSec: number | undefined;

  constructor(
    dependency: string,
    message: string,
    options: HttpErrorOptions & {
      upstreamStatus?: number | undefined;
      retryAfterSec?: number | undefined;
    } = {},
  ) {
    const { retryAfterSec } = options;
    const [status, code] =
      retryAfterSec === undefined
        ? ([502, 'DEPENDENCY_FAILED'] as const)
        : ([503, 'DEPENDENCY_UNAVAILABLE'] as const);
    super(status, code, message, withRetryAfter(retryAfterSec, options));
    this.dependency = dependency;
    this.upstreamStatus = options.upstreamStatus;
    this.retryAfterSec = retryAfterSec;
  }
}

/**
 * What a provider refused for good: the recipient's address (no such mailbox, an unknown domain), which
 * is the user's input and no fault of ours, or the message itself (its content, as SES `MessageRejected`
 * says without telling which), which may be.
 */
export type DeliveryRefusal = 'recipient' | 'message';

/**
 * A provider refused one message for good (an SMTP relay's 5xx to its recipient, SES `MessageRejected`):
 * sending it again would be refused the same way, and the refusal shows the provider is up, so circuit
 * breakers should not count it. Carries the provider's codes, never its text or the original error:
 * providers quote the recipient, which is personal data.
 */
export class DeliveryRejectedError extends BulwarkError {
  declare readonly code: 'DELIVERY_REJECTED';
  /** The transport that refused the message (`smtp`, `ses`). */
  readonly provider: string;
  /** The provider's error code or name (`EENVELOPE`, `MessageRejected`). */
  readonly providerCode: string;
  /** The SMTP reply code of a relay's refusal. */
  readonly responseCode: number | undefined;
  /** Whether the provider refused the recipient's address or the message. */
  readonly refused: DeliveryRefusal;

  constructor(
    provider: string,
    providerCode: string,
    options: { responseCode?: number | undefined; refused?: DeliveryRefusal | undefined } = {},
  ) {
    const reply = options.responseCode === undefined ? '' : ` ${options.responseCode}`;
    const refused = options.refused ?? 'message';
    super('DELIVERY_REJECTED', `${provider} refused the ${refused} for good (${providerCode}${reply})`);
    this.provider = provider;
    this.providerCode = providerCode;
    this.responseCode = options.responseCode;
    this.refused = refused;
  }
}

/** Why a value could not be encrypted; stable, safe to log and to count. */
export type EncryptionFailureReason =
  | 'unsupported_value'
  | 'value_too_large'
  | 'invalid_context'
  | 'already_encrypted'
  /** The key service could not answer now (outage, throttling): passing. */
  | 'key_unavailable'
  /** Anything but a passing failure of the key service (access denied, a disabled or deleted key, a refused request, a bug): ours. */
  | 'key_misconfigured';

/** Nothing was encrypted (the input is untouched); the message names the field, never its value. */
export class EncryptionError extends BulwarkError {
  declare readonly code: 'ENCRYPTION_FAILED';
  readonly reason: EncryptionFailureReason;
  /** Dotted path of the field concerned, when one is. */
  readonly field: string | undefined;

  constructor(
    reason: EncryptionFailureReason,
    message: string,
    options: BulwarkErrorOptions & { field?: string | undefined } = {},
  ) {
    super('ENCRYPTION_FAILED', message, options);
    this.reason = reason;
    this.field = options.field;
  }
}

/** Why a stored value could not be decrypted; stable, safe to log and to count. */
export type DecryptionFailureReason =
  | 'unknown_version'
  | 'truncated'
  | 'malformed'
  | 'missing_header'
  | 'key_mismatch'
  | 'key_not_allowed'
  | 'invalid_context'
  | 'authentication_failed'
  /** The key service could not answer now (outage, throttling): passing. */
  | 'key_unavailable'
  /** Anything but a passing failure of the key service (access denied, a disabled or deleted key, a refused request, a bug): ours. */
  | 'key_misconfigured'
  /** The item's own id differs from the key it is stored under: moved or tampered, so not decrypted. */
  | 'record_moved';

/** A value was tampered with, moved, malformed, or its key is unavailable; never returned as plaintext. */
export class DecryptionError extends BulwarkError {
  declare readonly code: 'DECRYPTION_FAILED';
  readonly reason: DecryptionFailureReason;
  /** Dotted path of the field concerned, when one is. */
  readonly field: string | undefined;

  constructor(
    reason: DecryptionFailureReason,
    message: string,
    options: BulwarkErrorOptions & { field?: string | undefined } = {},
  ) {
    super('DECRYPTION_FAILED', message, options);
    this.reason = reason;
    this.field = options.field;
  }
}

/**
 * Whether a decryption failed for something in the stored value itself (tampered, truncated, malformed,
 * moved, sealed under a key the provider does not hold), so that reading it again fails the same way; not
 * the key service failing (`key_unavailable`, `key_misconfigured`), which every record meets alike.
 */
export function isUnreadableRecord(error: unknown): error is DecryptionError {
  return (
    error instanceof DecryptionError &&
    error.reason !== 'key_unavailable' &&
    error.reason !== 'key_misconfigured'
  );
}

/** One missing or invalid configuration key; the message never contains the value. */
export interface ConfigProblem {
  readonly key: string;
  readonly message: string;
}

/** Configuration failed validation; lists every problem at once, by key name only. */
export class ConfigError extends BulwarkError {
  declare readonly code: 'CONFIG_INVALID';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options: BulwarkErrorOptions = {}) {
    super(
      'CONFIG_INVALID',
      `Invalid configuration: ${problems.map((problem) => `${problem.key} (${problem.message})`).join('; ')}`,
      options,
    );
    this.problems = problems;
  }
}

/** Why a secret could not be read; stable, safe to log. */
export type SecretFailureReason =
  | 'not_found'
  /** Secrets Manager could not answer now (outage, throttling, timeout): passing. */
  | 'unreachable'
  /** The secret cannot be read as configured (access denied, its KMS key unusable, deleted): ours, not passing. */
  | 'misconfigured'
  | 'not_json'
  | 'not_text'
  | 'not_rotating';

/** A secret could not be fetched or parsed; names the secret and version stage, never the value. */
export class SecretAccessError extends BulwarkError {
  declare readonly code: 'SECRET_UNAVAILABLE';
  readonly secretName: string;
  readonly versionStage: string;
  readonly reason: SecretFailureReason;

  constructor(
    secretName: string,
    versionStage: string,
    reason: SecretFailureReason,
    options: BulwarkErrorOptions = {},
  ) {
    super('SECRET_UNAVAILABLE', `Secret ${secretName} (${versionStage}) is unavailable: ${reason}`, options);
    this.secretName = secretName;
    this.versionStage = versionStage;
    this.reason = reason;
  }
}

/** Why a URL or an address was refused by the SSRF guard; stable, safe to log and to count. */
export type SsrfBlockReason =
  | 'invalid_url'
  | 'scheme_not_allowed'
  | 'credentials_in_url'
  | 'unresolvable'
  | 'invalid_address'
  | 'cloud_metadata'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'carrier_grade_nat'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'benchmarking'
  | 'documentation'
  | 'reserved';

/**
 * A URL was refused because fetching it could reach something other than the public internet
 * (server-side request forgery): 400. The message is safe for the API caller and never names an
 * address the caller did not write; `reason` and `address` are for logs.
 */
export class SsrfBlockedError extends HttpError {
  declare readonly code: 'SSRF_BLOCKED';
  readonly reason: SsrfBlockReason;
  /** The offending IP address (a literal or a DNS answer), when there is one. */
  readonly address: string | undefined;

  constructor(
    reason: SsrfBlockReason,
    message: string,
    options: HttpErrorOptions & { address?: string | undefined } = {},
  ) {
    super(400, 'SSRF_BLOCKED', message, options);
    this.reason = reason;
    this.address = options.address;
  }
}

/**
 * An HTTP middleware was invoked with an event it does not read: an Application Load Balancer event, a
 * non-HTTP one (SQS, EventBridge, a warmup ping) or no object at all. Thrown, never rendered: an answer
 * such as a 401 would end the invocation successfully, and an SQS event source mapping would delete the
 * batch. The message names the middleware and the kind of event, never a header value or the body.
 */
export class UnsupportedEventError extends BulwarkError {
  declare readonly code: 'UNSUPPORTED_EVENT';
  /** The middleware that refused the event (`authenticate`, `rateLimit`…). */
  readonly middleware: string;
  /** What the event looked like (`an aws:sqs event`, `an Application Load Balancer event`…). */
  readonly eventKind: string;

  constructor(middleware: string, eventKind: string) {
    super(
      'UNSUPPORTED_EVENT',
      `${middleware} reads API Gateway HTTP API (v2), REST API (v1) and Function URL events; got ${eventKind}`,
    );
    this.middleware = middleware;
    this.eventKind = eventKind;
  }
}

/**
 * The toolkit's error classes by name, written out because minifiers rename classes: a deployed bundle
 * would otherwise log `ra` where the source says `InvalidTokenError`.
 */
const toolkitErrorNames = new Map<abstract new (...args: never[]) => BulwarkError, string>([
  [BulwarkError, 'BulwarkError'],
  [InvalidOptionsError, 'InvalidOptionsError'],
  [InvalidArgumentError, 'InvalidArgumentError'],
  [HttpError, 'HttpError'],
  [ValidationError, 'ValidationError'],
  [UnauthorizedError, 'UnauthorizedError'],
  [ForbiddenError, 'ForbiddenError'],
  [InvalidTokenError, 'InvalidTokenError'],
  [InsufficientScopeError, 'InsufficientScopeError'],
  [NotFoundError, 'NotFoundError'],
  [MethodNotAllowedError, 'MethodNotAllowedError'],
  [ConflictError, 'ConflictError'],
  [GoneError, 'GoneError'],
  [PreconditionFailedError, 'PreconditionFailedError'],
  [IdempotencyKeyReusedError, 'IdempotencyKeyReusedError'],
  [PayloadTooLargeError, 'PayloadTooLargeError'],
  [UnsupportedMediaTypeError, 'UnsupportedMediaTypeError'],
  [UnsupportedContentEncodingError, 'UnsupportedContentEncodingError'],
  [TooManyRequestsError, 'TooManyRequestsError'],
  [ServiceUnavailableError, 'ServiceUnavailableError'],
  [CircuitOpenError, 'CircuitOpenError'],
  [DependencyTimeoutError, 'DependencyTimeoutError'],
  [DeadlineExceededError, 'DeadlineExceededError'],
  [DependencyError, 'DependencyError'],
  [DeliveryRejectedError, 'DeliveryRejectedError'],
  [EncryptionError, 'EncryptionError'],
  [DecryptionError, 'DecryptionError'],
  [ConfigError, 'ConfigError'],
  [SecretAccessError, 'SecretAccessError'],
  [SsrfBlockedError, 'SsrfBlockedError'],
  [UnsupportedEventError, 'UnsupportedEventError'],
]);
