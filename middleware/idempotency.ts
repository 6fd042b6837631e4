// Powertools idempotency for Middy handlers, with replays answered like every other response.
import { LOGGER_KEY, METRICS_KEY, TRACER_KEY } from '@aws-lambda-powertools/commons';
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyConfig,
  IdempotencyPersistenceLayerError,
  IdempotencyValidationError,
} from '@aws-lambda-powertools/idempotency';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import type { IdempotencyLambdaHandlerOptions } from '@aws-lambda-powertools/idempotency/types';
import { JMESPathError, JMESPathTypeError, search } from '@aws-lambda-powertools/jmespath';
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { normalizeResponse } from './audit/request-summary.js';
import { assertAuthenticationRan, authenticationRan, type OptionalAuthContext } from './auth/context.js';
import { principalKindOf } from './auth/principal.js';
import { respondEarly } from './cleanup.js';
import { underlyingDependencyFailure } from './dependency-failure.js';
import {
  assertNoProblems,
  ConflictError,
  type HttpError,
  IdempotencyKeyReusedError,
  InvalidOptionsError,
  ServiceUnavailableError,
  ValidationError,
} from './errors.js';
import { dependencyRetryAfterSec } from './http/problem.js';
import {
  type ApiGatewayEvent,
  assertApiGatewayEvent,
  forDeclaredEvent,
  pathOf,
  routeOf,
} from './http/request-event.js';
import { withHeadersAndCookies } from './http/response.js';
import { checkFunctionOption, checkMethodsOption, requireOptionsObject, shownValue } from './options.js';
import type { WarnLogger } from './rate-limit/rate-limiter.js';

/**
 * The client's key inside its scope (see {@link scopedKeyOf}): the caller, route and path that sent it,
 * then the key. Equal for a request and its retries, and for no other request.
 */
export type ScopedIdempotencyKey = readonly (string | null)[];

/** What {@link idempotency} adds to the handler's context. */
export interface IdempotencyKeyContext {
  /**
   * The request's key in its scope; undefined when it carries none (or idempotency is disabled). A
   * handler may name what it creates after it, so that a retry finds what the first request made even
   * when its record is gone: deleted with the 5xx of a write that landed but answered too late.
   */
  scopedIdempotencyKey?: ScopedIdempotencyKey | undefined;
}

/** What Powertools calls on a persistence store (a `BasePersistenceLayer` has them all). */
const persistenceStoreMethods = [
  'configure',
  'getRecord',
  'saveInProgress',
  'saveSuccess',
  'deleteRecord',
  'processExistingRecord',
];

/** The context `idempotency()` reads and adds to: the caller authentication put there, and the scoped key. */
export type IdempotentContext = Context & Partial<OptionalAuthContext> & IdempotencyKeyContext;

/** A request through `idempotency()`: `context.principal` is set by authentication before it, if at all. */
export type IdempotentRequest = Request<
  ApiGatewayEvent,
  APIGatewayProxyStructuredResultV2,
  Error,
  IdempotentContext
>;

/**
 * How an answer is kept in its idempotency record and given again from it, for an answer that holds what
 * the record must not (a secret kept encrypted elsewhere): the record keeps `toRecord`'s copy, and a
 * replay answers with what `fromRecord` makes of that copy.
 */
export interface StoredAnswer {
  /** What the record keeps of an answer the handler returned below 500 (only those are stored). */
  readonly toRecord: (
    answer: APIGatewayProxyStructuredResultV2,
    request: IdempotentRequest,
  ) => APIGatewayProxyStructuredResultV2 | Promise<APIGatewayProxyStructuredResultV2>;
  /**
   * The replay, made from what `toRecord` kept; an error it throws answers the replay instead, and the
   * record stays as it is.
   */
  readonly fromRecord: (
    kept: APIGatewayProxyStructuredResultV2,
    request: IdempotentRequest,
  ) => APIGatewayProxyStructuredResultV2 | Promise<APIGatewayProxyStructuredResultV2>;
}

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

/*
 * Both kept per request object, not on `request.internal`: Middy's `internal` option shares that across
 * invocations, so a request Powertools refused (a 409 or 422) would delete the record an earlier one left.
 */

/** Requests that hold their own in-progress record, the only one their errors may delete. */
const requestsWithOwnRecord = new WeakSet<object>();

/** Requests on an `anonymous` route whose key was scoped with no authentication run: none may run later either. */
const requestsScopedAnonymously = new WeakSet<object>();

/** Where the client's key is read when the config names no `eventKeyJmesPath`. */
const defaultKeyPath = 'headers."idempotency-key"';

/**
 * 1–255 visible ASCII characters (RFC 5234 VCHAR): no space, no control character, nothing a proxy or
 * a Unicode normalisation could turn into another caller's key, and never empty.
 */
const keyFormat = /^[\x21-\x7e]{1,255}$/;

/** The event field Powertools reads the scoped key from; a name API Gateway never sends. */
const scopedKeyField = 'bulwark.scopedIdempotencyKey';

/** The event field Powertools reads `payloadOf`'s payload from; a name API Gateway never sends. */
const payloadField = 'bulwark.idempotencyPayload';

/**
 * Marks a stored answer given again, so a client can tell a replay from a fresh answer; a handler that
 * answers a retry with what the first request made (see `scopedIdempotencyKey`) marks it so too.
 */
export const replayedHeader = { 'Idempotent-Replayed': 'true' } as const;

/**
 * Whether an error of a JMESPath search is the expression's fault (it does not parse, names an unknown
 * function or gives one the wrong number of arguments) rather than the request's data: a type error
 * (`powertools_json` of a missing body) says only that the request does not hold what the path selects.
 */
function isExpressionFault(error: unknown): boolean {
  return error instanceof JMESPathError && !(error instanceof JMESPathTypeError);
}

/**
 * `event` with a lower-case copy of every header name beside the name as sent. API Gateway v2 sends them
 * lower-cased; a REST API (v1) event keeps the client's case (`Idempotency-Key`), so the lower-case path
 * (`headers."idempotency-key"`, the only spelling `idempotency()` accepts) finds the header in both: a key
 * missed would run every retry again. Powertools hashes the payload from this event too, so its path
 * reads alike.
 */
function withLowerCaseHeaderNames(event: ApiGatewayEvent): ApiGatewayEvent {
  const headers: Record<string, string | undefined> | null | undefined = event.headers;
  if (!headers) return event;
  const missing = Object.entries(headers).filter(([name]) => !Object.hasOwn(headers, name.toLowerCase()));
  if (missing.length === 0) return event;
  const lowered = Object.fromEntries(missing.map(([name, value]) => [name.toLowerCase(), value]));
  return { ...event, headers: { ...headers, ...lowered } };
}

/**
 * What `path` selects in `event`; undefined when the request's data does not fit it. A type error is
 * the request's only over a body as API Gateway sends it (a string, or none): over a body a middleware
 * before this one has already parsed, `powertools_json(body)` fails on every request, a setup fault
 * that must stay a 500 rather than pass as requests without a key.
 */
function select(path: string, event: ApiGatewayEvent, config: IdempotencyConfig): unknown {
  try {
    return search(path, event, config.jmesPathOptions);
  } catch (error) {
    if (isExpressionFault(error)) throw error;
    const body: unknown = event.body;
    if (body !== undefined && body !== null && typeof body !== 'string') throw error;
    return undefined;
  }
}

/** The header names a path reads as `headers."…"` or `headers.name`. */
function headerNamesIn(path: string): string[] {
  return [...path.matchAll(/\bheaders\s*\.\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))/g)].map(
    (match) => match[1] ?? match[2] ?? '',
  );
}

/**
 * An expression that does not parse (or calls an unknown function on its way through an empty event),
 * refused at construction rather than failing every request. A function the empty event never reaches
 * is found only by the requests that do.
 */
function expressionProblems(config: IdempotencyConfig, paths: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  for (const [field, path] of Object.entries(paths)) {
    if (!path) continue;
    const named = headerNamesIn(path).find((name) => name !== name.toLowerCase());
    if (named !== undefined) {
      problems.push(
        `${field} ${JSON.stringify(path)}: write the header name in lower case (headers."${named.toLowerCase()}"): an HTTP API event carries only lower-case names, and a REST API event's are found in any case`,
      );
    }
    try {
      select(path, {} as ApiGatewayEvent, config);
    } catch (error) {
      problems.push(`${field} ${JSON.stringify(path)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * The client's key, checked before Powertools sees it: undefined when the request carries none (or
 * none where the path looks, such as a body that is not JSON), a 400 when it is not a string of
 * {@link keyFormat} or holds a comma. API Gateway joins the fields of a header sent twice with commas, so
 * keys `a` and `b` would arrive as `a,b`, a third key that replays what a request sending `a,b` stored.
 */
function clientKeyOf(event: ApiGatewayEvent, keyPath: string, config: IdempotencyConfig) {
  const selected = select(keyPath, event, config);
  if (selected === undefined || selected === null) return undefined;
  const field = keyFieldOf(keyPath);
  const malformed = () =>
    new ValidationError('The idempotency key must be a string of 1 to 255 visible ASCII characters', [
      { field, message: 'Must be 1 to 255 visible ASCII characters' },
    ]);
  if (typeof selected !== 'string') throw malformed();
  if (selected.includes(',')) {
    throw new ValidationError(
      'The idempotency key must not contain a comma, which joins the values of a header sent twice',
      [{ field, message: 'Must not contain a comma' }],
    );
  }
  if (!keyFormat.test(selected)) throw malformed();
  return selected;
}

/**
 * How a 400's `errors` names where the key is read: `header.<name>` for a header (the default
 * `header.idempotency-key`), else the path as configured.
 */
function keyFieldOf(keyPath: string): string {
  const [header] = headerNamesIn(keyPath);
  return header === undefined ? keyPath : `header.${header}`;
}

/**
 * What Powertools hashes into the record's key: the client's key inside its scope, the caller (tenant,
 * how it authenticated, whether it is a person or a machine, its id: all null for an anonymous caller, of
 * an optional-auth route or of an `anonymous` one), the route and the path. The same key from another
 * caller, on another route or path, is another request. A person's `sub` may equal a client-credentials
 * client's id, and both authenticate with a JWT: only the kind keeps one from replaying the other's answer.
 */
function scopedKeyOf(request: IdempotentRequest, key: string): ScopedIdempotencyKey {
  const principal = request.context.principal;
  return [
    principal?.tenantId ?? null,
    principal?.authMethod ?? null,
    principal === undefined ? null : principalKindOf(principal),
    principal?.id ?? null,
    routeOf(request.event) ?? null,
    pathOf(request.event) ?? null,
    key,
  ];
}

/**
 * The store failing for a passing reason (DynamoDB throttling, down, unreachable, slow) while the record
 * is looked up or locked: the handler has not run, so a retry is safe and the answer is a 503 with
 * Retry-After. Any other store failure (a missing table, a refused permission) stays ours: a 500.
 */
function storeOutage(error: unknown): HttpError | undefined {
  if (!(error instanceof IdempotencyPersistenceLayerError)) return undefined;
  if (underlyingDependencyFailure(error) === undefined) return undefined;
  return new ServiceUnavailableError('The idempotency store is unavailable', dependencyRetryAfterSec, {
    cause: error,
  });
}

/** What a client did wrong with its idempotency key, as the HTTP error it should see (undefined: ours). */
function clientError(error: unknown): HttpError | undefined {
  if (error instanceof IdempotencyAlreadyInProgressError) {
    return new ConflictError('A request with the same idempotency key is still in progress; retry shortly', {
      cause: error,
      headers: { 'Retry-After': '1' },
    });
  }
  if (error instanceof IdempotencyValidationError) {
    return new IdempotencyKeyReusedError({ cause: error });
  }
  return undefined;
}

/**
 * Powertools' `makeHandlerIdempotent` options, whether the route is public, and how the record keeps the
 * answer (as it is, unless `storedAnswer` says).
 */
export interface IdempotencyOptions<C extends IdempotentContext = IdempotentContext>
  extends IdempotencyLambdaHandlerOptions {
  readonly storedAnswer?: StoredAnswer | undefined;
  /**
   * What a retry must repeat for its key to replay, made from the request as the handler reads it (such
   * as `context.input` of a `validateInput()` before this middleware), in place of what
   * `payloadValidationJmesPath` selects from the raw event: a retry that writes the same request in
   * other bytes (an instant at another offset, a list in another order) then replays, where the raw body
   * would be 422. A JSON value; objects' keys are compared in any order, arrays' items in theirs, so
   * return a list whose order does not count sorted. Not together with `payloadValidationJmesPath`.
   */
  readonly payloadOf?:
    | ((request: Request<ApiGatewayEvent, APIGatewayProxyStructuredResultV2, Error, C>) => unknown)
    | undefined;
  /**
   * The route has no authentication: every caller shares the one anonymous scope, so its keys must be
   * unguessable (a UUID). Without it, a request that reaches idempotency() before any authentication
   * middleware is refused as a setup fault (500), since its key would be scoped to no caller and a stored
   * answer replayed to anyone; with it, a request that authentication reaches after idempotency() is
   * refused so, once its handler has run, and its answer is not stored.
   * @default false
   */
  readonly anonymous?: boolean | undefined;
  /**
   * Where a record that could not be released is logged (a warning: after the handler failed, deleting
   * its record failed too, the store throttling or down, so a retry gets 409 until the record's
   * in-progress expiry), and one that could not keep the handler's answer: a warning when the store
   * failed for a passing reason, an error (through `error` when the logger has one) when the answer can
   * never be stored (over DynamoDB's 400 KB item, a value it cannot marshal).
   * @default console
   */
  readonly logger?: (WarnLogger & { error?(message: string, ...extra: unknown[]): void }) | undefined;
}

/**
 * Refuses a request on an `anonymous` route that authentication reached after idempotency(): its key was
 * scoped to no caller, so the answer must not be stored for the next caller with the same key.
 */
function assertStillAnonymous(request: IdempotentRequest): void {
  if (!requestsScopedAnonymously.has(request) || !authenticationRan(request)) return;
  throw new InvalidOptionsError('idempotency', [
    'anonymous: true scoped the key to no caller, but an authentication middleware ran after idempotency(): put idempotency() after authenticate() and drop anonymous',
  ]);
}

/**
 * Powertools' `makeHandlerIdempotent` for HTTP handlers.
 * - A key counts only for the caller, route and path that used it (see {@link scopedKeyOf}), so it
 *   must run after authentication: a request it reaches first is a setup fault, an `InvalidOptionsError`
 *   (500) and never a replay, unless `anonymous: true` declares a public route. A key that is not a
 *   string of 1–255 visible ASCII characters is a 400.
 * - A replayed answer goes out through {@link respondEarly}, so it carries the correlation id,
 *   rate-limit headers and CSRF cookie, and its audit line has the stored status, like any other
 *   answer; `Idempotent-Replayed: true` tells it from a fresh one.
 * - A client's misuse of the key is a problem+json 4xx instead of a 500: the same key while the first
 *   request still runs is 409 (with `Retry-After`), the key reused with a different payload
 *   (`payloadValidationJmesPath`, or `payloadOf`) is 422, and no key with `throwOnNoIdempotencyKey` is 400.
 * - Only this request's own handler failing deletes the record, whether it throws or returns a 5xx
 *   (which is not stored); a refused copy leaves the running request's lock and the stored answer alone.
 * - The handler finds the key in its scope on `context.scopedIdempotencyKey`: a create that names its
 *   item after it finds, on a retry, what a request whose write landed but answered a 5xx made.
 *
 * Options are Powertools' own; `eventKeyJmesPath` selects the client's key (default: the
 * `Idempotency-Key` header). `storedAnswer` keeps out of the record what it must not hold, and puts it
 * back in a replay.
 *
 * Use it after `correlationIds()`, `audit()`, authentication and the other middlewares whose work a
 * replay needs.
 *
 * @example
 * // Records in the toolkit table, one partition key each (see ToolkitIdempotencyStore).
 * const persistenceStore = new ToolkitIdempotencyStore({
 *   name: 'bookings',
 *   tableName: process.env.TOOLKIT_TABLE_NAME as string,
 *   client: createDynamoDbClient(),
 * });
 * export const handler = middy()
 *   .use(correlationIds({ loggers: [logger] }))
 *   .use(audit({ auditLogger }))
 *   .use(httpErrorHandler({ logger }))
 *   .use(authenticate({ jwt: verifier }))
 *   .use(idempotency({
 *     persistenceStore,
 *     config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"', throwOnNoIdempotencyKey: true }),
 *   }))
 *   .handler(createBooking);
 */
export function idempotency<C extends IdempotentContext = IdempotentContext>(
  options: IdempotencyOptions<C>,
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, C> {
  requireOptionsObject('idempotency', options);
  const { anonymous = false, storedAnswer, logger = console, payloadOf, ...powertoolsOptions } = options;
  const config = options.config ?? new IdempotencyConfig({});
  const keyPath = config.eventKeyJmesPath || defaultKeyPath;
  // The caller's settings, but Powertools reads the key from the scoped copy of the event (below) and,
  // were it ever missing, would refuse rather than hash one key shared by every such request; and the
  // payload, with payloadOf, from the same copy.
  const powertoolsConfig = Object.assign(new IdempotencyConfig({}), config, {
    eventKeyJmesPath: `"${scopedKeyField}"`,
    throwOnNoIdempotencyKey: true,
    ...(payloadOf === undefined ? {} : { payloadValidationJmesPath: `"${payloadField}"` }),
  });
  const payloadPath = config.payloadValidationJmesPath;
  const problems = expressionProblems(config, {
    eventKeyJmesPath: keyPath,
    payloadValidationJmesPath: payloadPath,
  });
  checkFunctionOption(problems, 'payloadOf', payloadOf);
  if (payloadOf !== undefined && payloadPath) {
    problems.push('give payloadOf or config.payloadValidationJmesPath, not both: only one can be compared');
  }
  if (typeof anonymous !== 'boolean') {
    problems.push(`anonymous must be true or false (got ${shownValue(anonymous)})`);
  }
  // A storedAnswer or logger that fails when called would do so after the handler ran, in place of its answer.
  checkMethodsOption(problems, 'storedAnswer', storedAnswer, ['toRecord', 'fromRecord']);
  // Powertools calls these only once a request arrives, where a missing one would answer every request 500.
  if (options.persistenceStore === undefined || options.persistenceStore === null) {
    problems.push('persistenceStore is required');
  }
  checkMethodsOption(
    problems,
    'persistenceStore',
    options.persistenceStore,
    persistenceStoreMethods,
    'a ToolkitIdempotencyStore',
  );
  // The logger's default replaces only undefined: a null would be called on the handler's failure.
  checkMethodsOption(problems, 'logger', options.logger, ['warn'], 'a Powertools Logger', {
    nullIsAbsent: false,
  });
  checkFunctionOption(problems, 'logger.error', options.logger?.error);
  assertNoProblems('idempotency', problems);
  const powertools = makeHandlerIdempotent({ ...powertoolsOptions, config: powertoolsConfig });
  /**
   * Deletes the record of this request, whose handler failed, so a retry runs again. A store failure on
   * the way must not take the handler's own answer's place (a 503 with Retry-After would become a 500):
   * the record then stays in progress until the invocation's deadline, and a retry until then gets 409.
   */
  const releaseRecord = async (request: IdempotentRequest) => {
    try {
      await powertools.onError?.(request);
    } catch (error) {
      if (!(error instanceof IdempotencyPersistenceLayerError)) throw error;
      logger.warn(
        'Idempotency record not released after the handler failed; retries get 409 until it expires',
        {
          error,
        },
      );
    }
  };
  return forDeclaredEvent<APIGatewayProxyStructuredResultV2, C>({
    before: async (request) => {
      assertApiGatewayEvent(request.event, 'idempotency');
      // A context object handed in again (a test's, a custom runtime's) must not name the last request's key.
      request.context.scopedIdempotencyKey = undefined;
      // Checked whether or not idempotency is enabled, so a misordered pipeline fails where it is tried out.
      if (anonymous) {
        if (!authenticationRan(request)) requestsScopedAnonymously.add(request);
      } else {
        assertAuthenticationRan(
          request,
          'idempotency',
          'the key is scoped to the caller on context.principal',
          'pass anonymous: true on a public route',
        );
      }
      if (!config.isEnabled()) return undefined;
      const event = request.event;
      // What the key and payload paths, Bulwark's and Powertools', read: header names in either case.
      const searched = withLowerCaseHeaderNames(event);
      const key = clientKeyOf(searched, keyPath, config);
      if (key === undefined) {
        if (config.throwOnNoIdempotencyKey) {
          throw new ValidationError('The request carries no idempotency key', [
            { field: keyFieldOf(keyPath), message: 'Required' },
          ]);
        }
        return undefined;
      }
      // Powertools would fail to hash a payload its path cannot read and call that a store failure (500).
      if (payloadPath && select(payloadPath, searched, config) === undefined) {
        throw new ValidationError('The request body cannot be read for its idempotency payload check', [
          { field: 'body', message: 'Not what payloadValidationJmesPath reads' },
        ]);
      }
      // Powertools keeps the event it is handed for its `after` and `onError`; a copy carrying the
      // scoped key is the only one that ever sees it.
      const scopedKey = scopedKeyOf(request, key);
      request.context.scopedIdempotencyKey = scopedKey;
      const scopedEvent = {
        ...searched,
        [scopedKeyField]: scopedKey,
        ...(payloadOf === undefined ? {} : { [payloadField]: payloadOf(request) }),
      };
      request.event = scopedEvent;
      const restoreCleanups = holdPowertoolsCleanups(internalOf(request));
      let replay: unknown;
      try {
        replay = await powertools.before?.(request);
      } catch (error) {
        throw clientError(error) ?? storeOutage(error) ?? error;
      } finally {
        request.event = event;
        restoreCleanups();
      }
      if (replay !== undefined) {
        const answer = storedAnswer
          ? await storedAnswer.fromRecord(replay as APIGatewayProxyStructuredResultV2, request)
          : replay;
        return respondEarly(request, withHeadersAndCookies(answer, { headers: replayedHeader }));
      }
      requestsWithOwnRecord.add(request);
      return undefined;
    },
    after: async (request) => {
      if (!requestsWithOwnRecord.has(request)) return;
      // Thrown here, the handler's record is deleted (onError) rather than stored for another caller.
      assertStillAnonymous(request);
      // A 5xx is the handler failing, thrown or returned: the retry runs again rather than replay it.
      const status = normalizeResponse(request.response)?.statusCode ?? 200;
      if (status >= 500) {
        await releaseRecord(request);
        return;
      }
      // Powertools stores the request's response: for the record's copy, it holds that copy.
      const answer = request.response;
      if (storedAnswer && answer !== null && answer !== undefined)
        request.response = await storedAnswer.toRecord(answer, request);
      try {
        await powertools.after?.(request);
      } catch (error) {
        // The handler's work is done: a record that cannot keep its answer (one over DynamoDB's 400 KB
        // item, a store outage) must not turn that answer into a 500 whose retry does the work again anyway.
        if (!(error instanceof IdempotencyPersistenceLayerError)) throw error;
        // A passing store failure is a warning; an answer that can never be stored turns idempotency off
        // for every such answer of the route, which someone must hear about.
        const log =
          underlyingDependencyFailure(error) === undefined ? (logger.error ?? logger.warn) : logger.warn;
        log.call(
          logger,
          'Idempotency record not saved after the handler succeeded; a retry with the key runs the handler again',
          { error },
        );
        await releaseRecord(request);
      } finally {
        request.response = answer;
      }
    },
    // Powertools 2.35 deletes the record on any error, also one its own `before` threw: the in-progress
    // record of the request still running (a third copy then runs too), or the stored answer a 422
    // refused (aws-powertools/powertools-lambda-typescript#5675, fixed upstream, not yet released).
    onError: async (request) => {
      if (requestsWithOwnRecord.has(request)) await releaseRecord(request);
    },
  });
}
