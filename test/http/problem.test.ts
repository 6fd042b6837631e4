import { mkdtempSync, rmSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import {
  assertNoProblems,
  CircuitOpenError,
  ConflictError,
  DeadlineExceededError,
  DecryptionError,
  DependencyError,
  DependencyTimeoutError,
  EncryptionError,
  ForbiddenError,
  GoneError,
  HttpError,
  IdempotencyKeyReusedError,
  InsufficientScopeError,
  InvalidOptionsError,
  InvalidTokenError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  problemStatuses,
  SecretAccessError,
  ServiceUnavailableError,
  SsrfBlockedError,
  TooManyRequestsError,
  UnauthorizedError,
  UnsupportedContentEncodingError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../../middleware/errors.js';
import { problemType, renderProblem } from '../../middleware/http/problem.js';

const bodyOf = (error: unknown) =>
  JSON.parse(renderProblem(error, { instance: '/x', requestId: 'r1' }).response.body as string);

describe('problem+json rendering', () => {
  it('renders a toolkit error with RFC 9457 members, its code and the request id', () => {
    const { response, isServerFault } = renderProblem(new ConflictError('Taken'), {
      instance: '/users',
      requestId: 'r1',
    });
    expect(isServerFault).toBe(false);
    expect(response.statusCode).toBe(409);
    expect(response.headers['Content-Type']).toBe('application/problem+json');
    expect(JSON.parse(response.body as string)).toEqual({
      type: 'urn:bulwark:problem:conflict',
      title: 'Conflict',
      status: 409,
      detail: 'Taken',
      instance: '/users',
      code: 'CONFLICT',
      requestId: 'r1',
    });
  });

  it('lists field problems of a validation error', () => {
    const error = new ValidationError('Invalid', [{ field: 'body.email', message: 'Required' }]);
    expect(bodyOf(error).errors).toEqual([{ field: 'body.email', message: 'Required' }]);
  });

  it('carries Allow, Retry-After and WWW-Authenticate headers', () => {
    expect(renderProblem(new MethodNotAllowedError(['GET', 'POST'])).response.headers.Allow).toBe(
      'GET, POST',
    );
    expect(renderProblem(new TooManyRequestsError(1.2)).response.headers['Retry-After']).toBe('2');
    expect(renderProblem(new ServiceUnavailableError('Down', 0.1)).response.headers['Retry-After']).toBe('1');
    expect(renderProblem(new ServiceUnavailableError()).response.headers['Retry-After']).toBeUndefined();
    const challenge = new UnauthorizedError(undefined, { headers: { 'WWW-Authenticate': 'Bearer' } });
    expect(renderProblem(challenge).response.headers['WWW-Authenticate']).toBe('Bearer');
  });

  it('hides the message of an unknown error behind a generic 500', () => {
    const { response, isServerFault } = renderProblem(new Error('connection string postgres://secret'));
    expect(isServerFault).toBe(true);
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('secret');
    expect(JSON.parse(response.body as string)).toMatchObject({
      code: 'INTERNAL',
      detail: 'An unexpected error occurred',
    });
    expect(renderProblem('a thrown string').response.statusCode).toBe(500);
  });

  it('hides the message of a 5xx toolkit error behind a status-specific detail', () => {
    expect(bodyOf(new HttpError(502, 'INTERNAL', 'upstream said secret')).detail).toBe('A dependency failed');
    expect(bodyOf(new HttpError(504, 'INTERNAL', 'upstream x')).detail).toBe(
      'A dependency did not answer in time',
    );
    expect(bodyOf(new HttpError(507, 'INTERNAL', 'disk x')).detail).toBe('An unexpected error occurred');
  });

  it('treats a deliberate 503 as degraded service, not a server fault', () => {
    const rendered = renderProblem(new ServiceUnavailableError('Store down', 3));
    expect(rendered).toMatchObject({ isServerFault: false, isDegraded: true });
    expect(JSON.parse(rendered.response.body as string).detail).toBe('Service temporarily unavailable');
    expect(renderProblem(new HttpError(500, 'INTERNAL', 'x'))).toMatchObject({
      isServerFault: true,
      isDegraded: false,
    });
    expect(renderProblem(new Error('x'))).toMatchObject({ isServerFault: true, isDegraded: false });
  });

  it('answers a key service outage (key_unavailable) with 503 and Retry-After, hiding its message', () => {
    for (const error of [
      new EncryptionError('key_unavailable', 'KMS GenerateDataKey failed (ThrottlingException)'),
      new DecryptionError('key_unavailable', 'KMS Decrypt failed (KMSInternalException)'),
    ]) {
      const rendered = renderProblem(error);
      expect(rendered).toMatchObject({ isServerFault: false, isDegraded: true });
      expect(rendered.response.statusCode).toBe(503);
      expect(rendered.response.headers['Retry-After']).toBe('5');
      expect(rendered.response.body).not.toContain('KMS');
      expect(JSON.parse(rendered.response.body as string)).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        detail: 'Service temporarily unavailable',
      });
    }
  });

  it('answers Secrets Manager out of reach with 503 and Retry-After; a missing, misconfigured or malformed secret is a 500', () => {
    const unreachable = renderProblem(new SecretAccessError('arn:secret', 'AWSCURRENT', 'unreachable'));
    expect(unreachable).toMatchObject({ isServerFault: false, isDegraded: true });
    expect(unreachable.response.statusCode).toBe(503);
    expect(unreachable.response.headers['Retry-After']).toBe('5');
    expect(unreachable.response.body).not.toContain('arn:secret');
    for (const reason of ['not_found', 'misconfigured', 'not_json', 'not_rotating'] as const) {
      const rendered = renderProblem(new SecretAccessError('arn:secret', 'AWSCURRENT', reason));
      expect(rendered).toMatchObject({ isServerFault: true });
      expect(rendered.response.statusCode).toBe(500);
    }
  });

  it('keeps every other encryption or decryption failure a 500 server fault', () => {
    for (const error of [
      new EncryptionError('unsupported_value', 'Field x holds a bigint'),
      new DecryptionError('authentication_failed', 'Field x failed authentication'),
      new DecryptionError('key_not_allowed', 'The data key is wrapped under a KMS key that is not trusted'),
      new EncryptionError('key_misconfigured', 'KMS GenerateDataKey failed (AccessDeniedException)'),
      new DecryptionError('key_misconfigured', 'KMS Decrypt failed (DisabledException)'),
    ]) {
      const rendered = renderProblem(error);
      expect(rendered).toMatchObject({ isServerFault: true, isDegraded: false });
      expect(rendered.response.statusCode).toBe(500);
      expect(rendered.response.headers['Retry-After']).toBeUndefined();
    }
  });

  it('answers a stored record that cannot be decrypted with 500 DECRYPTION_FAILED saying so, and a misconfigured key with INTERNAL', () => {
    for (const reason of ['authentication_failed', 'key_not_allowed', 'malformed', 'record_moved'] as const) {
      const rendered = renderProblem(new DecryptionError(reason, 'Field x of USER#1 failed'));
      expect(rendered).toMatchObject({ isServerFault: true, isDegraded: false });
      expect(JSON.parse(rendered.response.body as string)).toEqual({
        type: 'urn:bulwark:problem:decryption-failed',
        title: 'Internal Server Error',
        status: 500,
        detail: 'A stored record could not be decrypted',
        code: 'DECRYPTION_FAILED',
      });
    }
    expect(
      bodyOf(new DecryptionError('key_misconfigured', 'KMS Decrypt failed (DisabledException)')),
    ).toMatchObject({
      code: 'INTERNAL',
      detail: 'An unexpected error occurred',
    });
  });

  it('renders exposed errors from official Middy middlewares with their status', () => {
    const middyError = Object.assign(new Error('Unsupported Media Type'), { statusCode: 415, expose: true });
    expect(bodyOf(middyError)).toMatchObject({
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      detail: 'Unsupported Media Type',
    });
    // @middy/http-content-negotiation's answer to an Accept it cannot serve.
    const notAcceptable = Object.assign(
      new Error('Unsupported MediaType. Acceptable values: application/json'),
      {
        statusCode: 406,
        expose: true,
      },
    );
    expect(bodyOf(notAcceptable)).toMatchObject({
      status: 406,
      title: 'Not Acceptable',
      code: 'NOT_ACCEPTABLE',
      type: 'urn:bulwark:problem:not-acceptable',
    });
    const gone = Object.assign(new Error('Gone'), { statusCode: 410, expose: true });
    expect(bodyOf(gone)).toMatchObject({ status: 410, code: 'GONE' });
    const precondition = Object.assign(new Error('Precondition Failed'), { statusCode: 412, expose: true });
    expect(bodyOf(precondition)).toMatchObject({ status: 412, code: 'PRECONDITION_FAILED' });
    // A status with no code of its own is a client error, never a validation failure it was not; its type
    // says no more than its status, since one type spans them all.
    for (const statusCode of [408, 418, 422, 451]) {
      const unmapped = Object.assign(new Error('Refused'), { statusCode, expose: true });
      expect(bodyOf(unmapped)).toMatchObject({
        status: statusCode,
        code: 'CLIENT_ERROR',
        type: 'about:blank',
        title: STATUS_CODES[statusCode],
      });
    }
    const unavailable = Object.assign(new Error('pool exhausted'), { statusCode: 503, expose: false });
    expect(bodyOf(unavailable)).toMatchObject({ status: 503, detail: 'Service temporarily unavailable' });
    const hidden = Object.assign(new Error('internal'), { statusCode: 400, expose: false });
    expect(bodyOf(hidden).status).toBe(500);
  });

  it('shows no error that does not say it may be shown: a third-party SDK error with a statusCode is a 500', () => {
    // Shaped as a payment provider's SDK error: its 401 is about our API key, not the client's credentials.
    const foreign = Object.assign(new Error('Invalid API Key provided: sk_live_****4xYz'), {
      statusCode: 401,
      type: 'StripeAuthenticationError',
    });
    const rendered = renderProblem(foreign);
    expect(rendered.isServerFault).toBe(true);
    expect(JSON.parse(rendered.response.body as string)).toMatchObject({
      status: 500,
      code: 'INTERNAL',
      detail: 'An unexpected error occurred',
    });
    expect(rendered.response.body).not.toContain('sk_live');
  });

  it('gives every code a stable type URI', () => {
    expect(problemType('TOO_MANY_REQUESTS')).toBe('urn:bulwark:problem:too-many-requests');
  });
});

describe('problem types', () => {
  /** One of each HttpError class errors.ts exports, each in every status it can take. */
  const httpErrors = (): HttpError[] => [
    new ValidationError('Invalid'),
    new UnauthorizedError(),
    new ForbiddenError(),
    new InvalidTokenError('expired', 'Token expired'),
    new InsufficientScopeError(['users/read']),
    new NotFoundError(),
    new MethodNotAllowedError(['GET']),
    new ConflictError('Taken'),
    new GoneError('Expired'),
    new PreconditionFailedError('Stale'),
    new PayloadTooLargeError(8192),
    new UnsupportedMediaTypeError('application/json'),
    new UnsupportedContentEncodingError(),
    new IdempotencyKeyReusedError(),
    new TooManyRequestsError(1),
    new ServiceUnavailableError(),
    new ServiceUnavailableError('Down', 5),
    new CircuitOpenError('users', 5),
    new DependencyTimeoutError('users', 100),
    new DeadlineExceededError('users', 0),
    new DependencyError('users', 'users answered 500', { upstreamStatus: 500 }),
    new DependencyError('users', 'users answered 429', { upstreamStatus: 429, retryAfterSec: 7 }),
    new SsrfBlockedError('private', 'Refused'),
  ];

  it('lists every HttpError class errors.ts exports', async () => {
    const source = await import('../../middleware/errors.js');
    const classes = Object.entries(source).filter(
      ([, value]) => typeof value === 'function' && value.prototype instanceof HttpError,
    );
    expect([...new Set(httpErrors().map((error) => error.name))].sort()).toEqual(
      classes.map(([name]) => name).sort(),
    );
  });

  it('gives each HttpError class the one status its code has', () => {
    for (const error of httpErrors()) {
      expect([error.name, error.code, error.statusCode]).toEqual([
        error.name,
        error.code,
        problemStatuses[error.code],
      ]);
    }
  });

  it('answers one problem type with one status and one title, whatever is thrown', () => {
    const sdkError = (name: string, httpStatusCode: number) =>
      Object.assign(new Error('refused'), { name, $metadata: { httpStatusCode } });
    const thrown: unknown[] = [
      ...httpErrors(),
      // Errors of Middy's middlewares, of every status they may carry.
      ...Array.from({ length: 200 }, (_, index) => 400 + index).flatMap((statusCode) =>
        [true, false].map((expose) => Object.assign(new Error('Middy'), { statusCode, expose })),
      ),
      new HttpError(502, 'INTERNAL', 'built with a status its code does not have'),
      new HttpError(422, 'VALIDATION_FAILED', 'built with a status its code does not have'),
      new EncryptionError('key_unavailable', 'KMS down'),
      new DecryptionError('authentication_failed', 'Field x failed authentication'),
      new SecretAccessError('arn:secret', 'AWSCURRENT', 'unreachable'),
      sdkError('ThrottlingException', 400),
      sdkError('InternalServerError', 500),
      sdkError('TimeoutError', 0),
      // Middy's early timeout, as @middy/core throws it.
      Object.assign(
        new Error('[AbortError]: The operation was aborted.', { cause: { package: '@middy/core' } }),
        {
          name: 'TimeoutError',
        },
      ),
      new Error('a bug'),
    ];
    const answers = new Map<string, Set<string>>();
    const codes = new Set<string>();
    for (const error of thrown) {
      const { type, status, title, code } = bodyOf(error);
      expect(title).toBe(STATUS_CODES[status] ?? 'Error');
      answers.set(type, (answers.get(type) ?? new Set()).add(`${status} ${title}`));
      if (type !== 'about:blank') codes.add(code);
    }
    answers.delete('about:blank');
    expect([...answers].filter(([, statuses]) => statuses.size > 1)).toEqual([]);
    // Every code of the registry was answered above, each with its own type.
    expect([...codes].sort()).toEqual(Object.keys(problemStatuses).sort());
    for (const [code, status] of Object.entries(problemStatuses)) {
      expect(answers.get(problemType(code as keyof typeof problemStatuses))).toEqual(
        new Set([`${status} ${STATUS_CODES[status as number]}`]),
      );
    }
  });
});

describe('error classes', () => {
  it('set name, code, status and cause', () => {
    const cause = new Error('root');
    const error = new ForbiddenError('No', { cause });
    expect(error).toBeInstanceOf(HttpError);
    expect(error.name).toBe('ForbiddenError');
    expect(error.code).toBe('FORBIDDEN');
    expect(error.statusCode).toBe(403);
    expect(error.expose).toBe(true);
    expect(error.cause).toBe(cause);
  });

  it('keep their names in a minified bundle, as the functions deploy them, and a subclass of yours keeps its own', async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'bulwark-errors-'));
    try {
      await build({
        entryPoints: [join(import.meta.dirname, '../../middleware/errors.ts')],
        bundle: true,
        minify: true,
        format: 'esm',
        platform: 'node',
        outfile: join(outdir, 'errors.mjs'),
        logLevel: 'error',
      });
      const minified = (await import(pathToFileURL(join(outdir, 'errors.mjs')).href)) as Record<
        string,
        unknown
      >;
      const classes = Object.values(minified).filter(
        (value): value is new (...args: unknown[]) => Error =>
          typeof value === 'function' && value.prototype instanceof Error,
      );
      const source = await import('../../middleware/errors.js');
      const exportedClasses = Object.entries(source).filter(
        ([, value]) => typeof value === 'function' && (value === Error || value.prototype instanceof Error),
      );
      expect(classes).toHaveLength(exportedClasses.length);
      // The base constructor names the error; running it with each class as new.target needs no class's own arguments.
      const [base] = classes.filter((value) => Object.getPrototypeOf(value) === Error);
      if (!base) throw new Error('no base error class in the bundle');
      const names = classes.map((errorClass) => Reflect.construct(base, ['INTERNAL', 'm'], errorClass).name);
      expect(names.sort()).toEqual(exportedClasses.map(([name]) => name).sort());
      class RefundFailedError extends (base as new (code: string, message: string) => Error) {}
      expect(new RefundFailedError('INTERNAL', 'm').name).toBe('RefundFailedError');
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  it('list every option problem in one error', () => {
    expect(() => assertNoProblems('limiter', ['limit must be > 0', 'window must be > 0'])).toThrow(
      'Invalid limiter options: limit must be > 0; window must be > 0',
    );
    expect(() => assertNoProblems('limiter', [])).not.toThrow();
    const error = new InvalidOptionsError('x', ['a']);
    expect(error.problems).toEqual(['a']);
  });
});
