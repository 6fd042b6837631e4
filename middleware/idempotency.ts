// Powertools idempotency for Middy handlers, with replays answered like every other response.
import { LOGGER_KEY, METRICS_KEY, TRACER_KEY } from '@aws-lambda-powertools/commons';
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyKeyError,
  IdempotencyValidationError,
} from '@aws-lambda-powertools/idempotency';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import type { IdempotencyLambdaHandlerOptions } from '@aws-lambda-powertools/idempotency/types';
import type { MiddlewareObj, Request } from '@middy/core';
import { respondEarly } from './cleanup.js';
import { ConflictError, HttpError, ValidationError } from './errors.js';

/** The keys Powertools' `cleanupMiddlewares` calls that a replay must only reach once it has its answer. */
const powertoolsCleanupKeys = [TRACER_KEY, METRICS_KEY, LOGGER_KEY] as const;

/**
 * Takes the Powertools cleanups off the request while Powertools looks up a stored answer: on a replay
 * it runs them before it hands that answer to Middy, so the audit line could not see the status and no
 * header could be added. Returns the function that puts them back.
 */
function holdPowertoolsCleanups(internal: Record<string, unknown>): () => void {
  const held = new Map<string, unknown>();
  for (const key of powertoolsCleanupKeys) {
    if (!Object.hasOwn(internal, key)) continue;
    held.set(key, internal[key]);
    delete internal[key];
  }
  return () => {
    for (const [key, cleanup] of held) internal[key] = cleanup;
  };
}

function internalOf(request: Request): Record<string, unknown> {
  return request.internal as Record<string, unknown>;
}

/** Set once this request holds its own in-progress record, the only one its errors may delete. */
const handlerRanKey = 'bulwark.idempotency.handlerRan';

/** What a client did wrong with its idempotency key, as the HTTP error it should see (undefined: ours). */
function clientError(error: unknown): HttpError | undefined {
  if (error instanceof IdempotencyAlreadyInProgressError) {
    return new ConflictError('A request with the same idempotency key is still in progress; retry shortly', {
      cause: error,
      headers: { 'Retry-After': '1' },
    });
  }
  if (error instanceof IdempotencyValidationError) {
    return new HttpError(
      422,
      'VALIDATION_FAILED',
      'This idempotency key was already used with a different request',
      {
        cause: error,
      },
    );
  }
  // Powertools wraps a missing key in the persistence error of the save that needed it.
  if (
    error instanceof IdempotencyKeyError ||
    (error instanceof Error && error.cause instanceof IdempotencyKeyError)
  ) {
    return new ValidationError('The request carries no idempotency key', [], { cause: error });
  }
  return undefined;
}

/**
 * Powertools' `makeHandlerIdempotent`, with three changes for HTTP handlers.
 * - A replayed answer goes out through {@link respondEarly}, so it carries the correlation id,
 *   rate-limit headers and CSRF cookie, and its audit line has the stored status, like any other answer.
 * - A client's misuse of the key is a problem+json 4xx instead of a 500: the same key while the first
 *   request still runs is 409 (with `Retry-After`), the key reused with a different payload
 *   (`payloadValidationJmesPath`) is 422, and no key with `throwOnNoIdempotencyKey` is 400.
 * - Only an error of this request's own handler deletes the record; a refused copy leaves the running
 *   request's lock and the stored answer alone.
 *
 * Options are Powertools' own.
 *
 * Use it after `correlationIds()`, `audit()` and the other middlewares whose work a replay needs.
 *
 * @example
 * const persistenceStore = new DynamoDBPersistenceLayer({ tableName: process.env.TOOLKIT_TABLE_NAME });
 * export const handler = middy()
 *   .use(correlationIds({ loggers: [logger] }))
 *   .use(audit({ auditLogger }))
 *   .use(httpErrorHandler({ logger }))
 *   .use(idempotency({
 *     persistenceStore,
 *     config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"', throwOnNoIdempotencyKey: true }),
 *   }))
 *   .handler(createBooking);
 */
export function idempotency(options: IdempotencyLambdaHandlerOptions): MiddlewareObj {
  const powertools = makeHandlerIdempotent(options);
  return {
    before: async (request) => {
      const restoreCleanups = holdPowertoolsCleanups(internalOf(request));
      let replay: unknown;
      try {
        replay = await powertools.before?.(request);
      } catch (error) {
        throw clientError(error) ?? error;
      } finally {
        restoreCleanups();
      }
      if (replay !== undefined) return respondEarly(request, replay);
      internalOf(request)[handlerRanKey] = true;
      return undefined;
    },
    after: (request) => powertools.after?.(request),
    // Powertools 2.35 deletes the record on any error, also one its own `before` threw: the in-progress
    // record of the request still running (a third copy then runs too), or the stored answer a 422
    // refused (aws-powertools/powertools-lambda-typescript#5675, fixed upstream, not yet released).
    onError: async (request) => {
      if (internalOf(request)[handlerRanKey] === true) await powertools.onError?.(request);
    },
  };
}
