// The toolkit's one error model: a base error with a stable `code`, and HTTP-facing subclasses.

/** Stable machine-readable error codes. Renaming one is a breaking change. */
export type BulwarkErrorCode =
  | 'INVALID_OPTIONS'
  | 'VALIDATION_FAILED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'TOO_MANY_REQUESTS'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL';

export interface BulwarkErrorOptions {
  cause?: unknown;
}

/** Base class of every error the toolkit throws. */
export class BulwarkError extends Error {
  readonly code: BulwarkErrorCode;

  constructor(code: BulwarkErrorCode, message: string, options: BulwarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Options were missing, invalid or contradictory; thrown at construction, listing every problem. */
export class InvalidOptionsError extends BulwarkError {
  readonly problems: readonly string[];

  constructor(component: string, problems: readonly string[]) {
    super('INVALID_OPTIONS', `Invalid ${component} options: ${problems.join('; ')}`);
    this.problems = problems;
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
  headers?: Record<string, string>;
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
  readonly fields: readonly FieldProblem[];

  constructor(message: string, fields: readonly FieldProblem[] = [], options: HttpErrorOptions = {}) {
    super(400, 'VALIDATION_FAILED', message, options);
    this.fields = fields;
  }
}

export class UnauthorizedError extends HttpError {
  constructor(message = 'Authentication is required', options: HttpErrorOptions = {}) {
    super(401, 'UNAUTHORIZED', message, options);
  }
}

export class ForbiddenError extends HttpError {
  constructor(message = 'Access denied', options: HttpErrorOptions = {}) {
    super(403, 'FORBIDDEN', message, options);
  }
}

export class NotFoundError extends HttpError {
  constructor(message = 'Not found', options: HttpErrorOptions = {}) {
    super(404, 'NOT_FOUND', message, options);
  }
}

export class MethodNotAllowedError extends HttpError {
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
  constructor(message: string, options: HttpErrorOptions = {}) {
    super(409, 'CONFLICT', message, options);
  }
}

export class PayloadTooLargeError extends HttpError {
  constructor(limitBytes: number, options: HttpErrorOptions = {}) {
    super(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limitBytes} bytes`, options);
  }
}

export class UnsupportedMediaTypeError extends HttpError {
  constructor(expected: string, options: HttpErrorOptions = {}) {
    super(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${expected}`, options);
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

export class TooManyRequestsError extends HttpError {
  readonly retryAfterSec: number;

  constructor(retryAfterSec: number, message = 'Too many requests', options: HttpErrorOptions = {}) {
    super(429, 'TOO_MANY_REQUESTS', message, withRetryAfter(retryAfterSec, options));
    this.retryAfterSec = retryAfterSec;
  }
}

export class ServiceUnavailableError extends HttpError {
  readonly retryAfterSec: number | undefined;

  constructor(message = 'Service unavailable', retryAfterSec?: number, options: HttpErrorOptions = {}) {
    super(503, 'SERVICE_UNAVAILABLE', message, withRetryAfter(retryAfterSec, options));
    this.retryAfterSec = retryAfterSec;
  }
}
