// Renders any thrown value as an RFC 9457 problem+json response; internals never reach the client.

import { STATUS_CODES } from 'node:http';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { dependencyFailure } from '../dependency-failure.js';
import {
  type BulwarkErrorCode,
  DecryptionError,
  EncryptionError,
  type FieldProblem,
  HttpError,
  isUnreadableRecord,
  problemStatuses,
  SecretAccessError,
  ValidationError,
} from '../errors.js';
import { replaceHeaders } from './response.js';

/** The media type of every problem answer (RFC 9457). */
export const problemContentType = 'application/problem+json';

/** The body of every error response (RFC 9457), plus Bulwark's stable `code` and the request id. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string | undefined;
  code: BulwarkErrorCode;
  requestId?: string | undefined;
  /** Per-field problems of a 400. */
  errors?: readonly FieldProblem[] | undefined;
}

export interface ProblemContext {
  /** The request path the problem occurred on. */
  instance?: string | undefined;
  requestId?: string | undefined;
}

/**
 * A rendered problem. `isServerFault`: an unexpected failure, logged as an error. `isDegraded`: a
 * deliberate 5xx (dependency down, circuit open, store unavailable), worth a warning, not an alarm.
 */
export interface RenderedProblem {
  response: APIGatewayProxyStructuredResultV2 & { statusCode: number; headers: Record<string, string> };
  problem: ProblemDetails;
  isServerFault: boolean;
  isDegraded: boolean;
}

/** What a client learns of a 5xx whose own message stays internal. */
const hiddenDetail: Readonly<Record<number, string>> = {
  502: 'A dependency failed',
  503: 'Service temporarily unavailable',
  504: 'A dependency did not answer in time',
};
const unexpectedDetail = 'An unexpected error occurred';
const functionTimeoutDetail = 'The request did not complete in time';
const unreadableRecordDetail = 'A stored record could not be decrypted';

/**
 * The wait asked of a client when an AWS dependency (DynamoDB, KMS, Secrets Manager…) could not answer: its
 * outages and throttling pass within seconds, and are answered as the JWKS and nonce store's are.
 */
export const dependencyRetryAfterSec = 5;

/**
 * A failure of a key or secret service that could not answer (KMS or Secrets Manager down or
 * throttling), not of the data or of our configuration: passing, so answered 503 with Retry-After.
 */
function isKeyServiceUnavailable(error: unknown): boolean {
  if (error instanceof SecretAccessError) return error.reason === 'unreachable';
  return (
    (error instanceof EncryptionError || error instanceof DecryptionError) &&
    error.reason === 'key_unavailable'
  );
}

const codeByStatus: Readonly<Record<number, BulwarkErrorCode>> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  409: 'CONFLICT',
  410: 'GONE',
  412: 'PRECONDITION_FAILED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  503: 'SERVICE_UNAVAILABLE',
};

/**
 * Errors from official Middy middlewares (`@middy/util` createError) and `http-errors` carry these
 * fields, `expose` always set. A bare `statusCode` is not enough: a third-party SDK's error carries
 * one too (a payment provider's 401 for *our* API key, with the key's tail in its message), and showing
 * it would tell the client its own credentials were refused while nothing reached the log.
 */
interface MiddyHttpErrorShape {
  statusCode: number;
  expose: boolean;
  message: string;
  headers?: Record<string, string> | undefined;
}

function isMiddyHttpError(error: unknown): error is MiddyHttpErrorShape {
  if (!(error instanceof Error)) return false;
  const { statusCode, expose } = error as Partial<MiddyHttpErrorShape>;
  return (
    typeof expose === 'boolean' &&
    typeof statusCode === 'number' &&
    Number.isInteger(statusCode) &&
    statusCode >= 400 &&
    statusCode <= 599
  );
}

/**
 * The error `@middy/core` rejects with when the handler is still running `timeoutEarlyInMillis` before the
 * Lambda's own timeout (on by default: 5 ms): a `TimeoutError` whose cause names the package. An SDK's
 * `TimeoutError` carries no such cause.
 */
function isMiddyEarlyTimeout(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'TimeoutError') return false;
  const { cause } = error as { cause?: unknown };
  return (
    typeof cause === 'object' && cause !== null && (cause as { package?: unknown }).package === '@middy/core'
  );
}

/** The problem `type` URI for a code: stable, so clients can switch on it. */
export function problemType(code: BulwarkErrorCode): string {
  return `urn:bulwark:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/**
 * A code's type where the status is the code's own ({@link problemStatuses}), else `about:blank`: RFC
 * 9457's type for a problem that means no more than its status, whose title is that status's phrase.
 */
function typeOf(code: BulwarkErrorCode, status: number): string {
  return problemStatuses[code] === status ? problemType(code) : 'about:blank';
}

function build(
  status: number,
  code: BulwarkErrorCode,
  detail: string,
  context: ProblemContext,
  headers: Record<string, string>,
  errors?: readonly FieldProblem[],
  deliberate = true,
): RenderedProblem {
  const problem: ProblemDetails = {
    type: typeOf(code, status),
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(context.instance === undefined ? {} : { instance: context.instance }),
    code,
    ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
  return {
    problem,
    isServerFault: status >= 500 && (!deliberate || status === 500),
    isDegraded: status > 500 && deliberate,
    response: {
      statusCode: status,
      headers: replaceHeaders(headers, { 'Content-Type': problemContentType, 'Cache-Control': 'no-store' }),
      body: JSON.stringify(problem),
    },
  };
}

/**
 * Turns a thrown value into a problem+json response. Toolkit errors and exposed Middy errors keep
 * their status and message; an encryption or decryption error for want of a key is a 503 with
 * Retry-After; a stored record that cannot be decrypted is a 500 `DECRYPTION_FAILED` that says so; a
 * raw error that is a dependency's passing failure ({@link dependencyFailure}: an AWS service
 * throttling, failing with a 5xx, unreachable or answering what the SDK cannot read) is a 503 with
 * Retry-After, or a 504 when it timed out; Middy's early timeout (the function out of time) is a 504;
 * anything else becomes a generic 500 whose detail stays in the log.
 */
export function renderProblem(error: unknown, context: ProblemContext = {}): RenderedProblem {
  if (error instanceof HttpError) {
    const detail = error.expose ? error.message : (hiddenDetail[error.statusCode] ?? unexpectedDetail);
    const fields = error instanceof ValidationError ? error.fields : undefined;
    return build(error.statusCode, error.code, detail, context, { ...error.headers }, fields);
  }
  if (isMiddyHttpError(error) && error.expose && error.statusCode < 500) {
    const code = codeByStatus[error.statusCode] ?? 'CLIENT_ERROR';
    return build(error.statusCode, code, error.message, context, { ...error.headers });
  }
  // A dependency that could not answer: its outages and throttling pass within seconds.
  const dependencyUnavailable = () =>
    build(503, 'SERVICE_UNAVAILABLE', hiddenDetail[503] as string, context, {
      'Retry-After': String(dependencyRetryAfterSec),
    });
  if (isKeyServiceUnavailable(error)) return dependencyUnavailable();
  // Not the client's fault and no retry mends it: said as such, so the caller need not guess at an outage.
  if (isUnreadableRecord(error)) {
    return build(500, 'DECRYPTION_FAILED', unreadableRecordDetail, context, {}, undefined, false);
  }
  if (isMiddyHttpError(error) && error.statusCode === 503) {
    return build(503, 'SERVICE_UNAVAILABLE', hiddenDetail[503] as string, context, { ...error.headers });
  }
  // The function ran out of time, as a DeadlineExceededError says when the toolkit's own deadline checks
  // find none left: the same 504, a degraded answer rather than a fault, and no Retry-After.
  if (isMiddyEarlyTimeout(error)) {
    return build(504, 'DEPENDENCY_TIMEOUT', functionTimeoutDetail, context, {});
  }
  const failure = dependencyFailure(error);
  if (failure?.kind === 'timeout') {
    // No Retry-After: how long the dependency stays slow is not known, as for a DependencyTimeoutError.
    return build(504, 'DEPENDENCY_TIMEOUT', hiddenDetail[504] as string, context, {});
  }
  if (failure) return dependencyUnavailable();
  return build(500, 'INTERNAL', unexpectedDetail, context, {}, undefined, false);
}
