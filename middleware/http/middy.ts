// Middy adapters for the HTTP core: problem+json error rendering and typed input validation.
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { redact } from '../audit/redact.js';
import { runRegisteredCleanups } from '../cleanup.js';
import { type DependencyFailure, underlyingDependencyFailure } from '../dependency-failure.js';
import { assertNoProblems, UnsupportedEventError } from '../errors.js';
import { checkFunctionOption, checkMethodsOption, shownValue } from '../options.js';
import { type InputSchemas, type ParseInputOptions, parseInput, type ValidatedInput } from './input.js';
import { renderProblem } from './problem.js';
import {
  type ApiGatewayEvent,
  assertApiGatewayEvent,
  forDeclaredEvent,
  problemInstanceOf,
} from './request-event.js';

/** The slice of a logger the error handler needs; a Powertools Logger fits. */
export interface ErrorLogger {
  error(message: string, ...extra: unknown[]): void;
  /** For deliberate 5xx answers (dependency down, circuit open); `error` is used when absent. */
  warn?(message: string, ...extra: unknown[]): void;
}

export interface HttpErrorHandlerOptions {
  /** Where server faults are logged with their full detail. @default console */
  readonly logger?: ErrorLogger | undefined;
}

/**
 * What on-call filters a degraded answer's log line by: which dependency failed, how, and its error's
 * name and code (never its message, which can quote the request).
 */
function failureFields(failure: DependencyFailure | undefined): Record<string, string> {
  if (!failure) return {};
  const { kind, dependency, errorName, errorCode } = failure;
  return {
    failure: kind,
    ...(dependency === undefined ? {} : { dependency }),
    errorName,
    ...(errorCode === undefined ? {} : { errorCode }),
  };
}

/**
 * Renders every error as `application/problem+json` (RFC 9457), then runs the cleanups still pending
 * (correlation id, rate-limit headers, CSRF cookie, audit), so their headers reach the rendered answer
 * wherever this sits in `.use()`. Use it after the official middlewares that add headers
 * (`@middy/http-cors`, `@middy/http-security-headers`): Middy runs `onError` in reverse order, and theirs
 * only edit an answer that exists. Use it after `audit` too, which otherwise logs the error's own status,
 * and before the policy middlewares. An {@link UnsupportedEventError} (an ALB, SQS or EventBridge event
 * reaching an HTTP middleware) is not rendered: it propagates, and the invocation fails.
 *
 * @example
 * export const handler = middy(fn).use(httpCors()).use(httpErrorHandler({ logger })).use(authenticate({ jwt }));
 */
export function httpErrorHandler(
  options: HttpErrorHandlerOptions = {},
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2> {
  // Checked now: a logger that fails at the first error would throw in place of its answer, and lose it.
  const problems: string[] = [];
  checkMethodsOption(problems, 'logger', options.logger, ['error'], 'a Powertools Logger');
  checkFunctionOption(problems, 'logger.warn', options.logger?.warn);
  assertNoProblems('httpErrorHandler', problems);
  const logger = options.logger ?? console;
  const render = (request: Request<ApiGatewayEvent, APIGatewayProxyStructuredResultV2>) => {
    const { response, isServerFault, isDegraded } = renderProblem(request.error, {
      instance: problemInstanceOf(request.event),
      requestId: request.event?.requestContext?.requestId,
    });
    // Redacted here, whatever the logger: an error message or cause can carry a token or a password.
    if (isServerFault) logger.error('Request failed', { error: redact(request.error) });
    else if (isDegraded)
      (logger.warn ?? logger.error).call(logger, 'Request degraded', {
        // The raw AWS error answered 503/504, or the one behind a toolkit 503 (KMS, the nonce store…).
        ...failureFields(underlyingDependencyFailure(request.error)),
        error: redact(request.error),
      });
    request.response = response;
  };
  const httpErrorHandlerOnError = async (
    request: Request<ApiGatewayEvent, APIGatewayProxyStructuredResultV2>,
  ) => {
    // An event no HTTP middleware reads is not answered: the invocation fails, so an SQS batch is
    // retried (then dead-lettered) rather than deleted, and an EventBridge event is retried.
    const isUnsupportedEvent = request.error instanceof UnsupportedEventError;
    if (!isUnsupportedEvent && request.response?.statusCode === undefined) render(request);
    // Middlewares used before this one run their onError after it; those used after it already ran
    // theirs, and a cleanup that adds to the response waited for this answer.
    await runRegisteredCleanups(request);
  };
  return forDeclaredEvent({ onError: httpErrorHandlerOnError });
}

/** What {@link validateInput} adds to the handler's context. */
export interface InputContext<S extends InputSchemas> {
  input: ValidatedInput<S>;
}

/**
 * Validates the JSON body, query string and path parameters and puts the typed result on
 * `context.input`; any problem answers 400 (415 for a non-JSON body, 413 when too large).
 *
 * @example
 * middy<APIGatewayProxyEventV2>()
 *   .use(validateInput({ body: z.strictObject({ name: z.string() }) }))
 *   .handler(async (event, context) => json(201, { hello: context.input.body.name }));
 */
export function validateInput<S extends InputSchemas>(
  // A misspelt part beside a valid one (`{ body, qury }`) escapes the excess-property check of an inferred S.
  schemas: S & Record<Exclude<keyof S, keyof InputSchemas>, never>,
  options: ParseInputOptions = {},
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, Context & InputContext<S>> {
  const problems: string[] = [];
  if (typeof schemas !== 'object' || schemas === null) {
    problems.push('schemas must be an object of body, query and path schemas');
  } else {
    for (const part of ['body', 'query', 'path'] as const) {
      const schema = schemas[part];
      if (schema !== undefined && typeof schema?.['~standard']?.validate !== 'function') {
        problems.push(`${part} must be a Standard Schema (zod, valibot, arktype...)`);
      }
    }
    // A misspelt part (`bdy`) would validate nothing and let every request through unchecked.
    for (const part of Object.keys(schemas)) {
      if (part === 'maxBodyBytes') {
        problems.push(
          'maxBodyBytes is an option: give it in the second argument, validateInput(schemas, { maxBodyBytes })',
        );
      } else if (!['body', 'query', 'path'].includes(part)) {
        problems.push(`${part} is not a part of the request: give body, query or path`);
      }
    }
  }
  const { maxBodyBytes } = options;
  if (maxBodyBytes !== undefined && !(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes >= 1)) {
    problems.push(`maxBodyBytes must be an integer of bytes >= 1 (got ${shownValue(maxBodyBytes)})`);
  }
  assertNoProblems('validateInput', problems);
  const validateInputBefore = async (
    request: Request<ApiGatewayEvent, APIGatewayProxyStructuredResultV2, Error, Context & InputContext<S>>,
  ) => {
    assertApiGatewayEvent(request.event, 'validateInput');
    request.context.input = await parseInput(schemas, request.event, options);
  };
  return forDeclaredEvent({ before: validateInputBefore });
}
