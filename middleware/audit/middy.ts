// Middy adapters: audit() writes one audit event per request; correlationIds() accepts, logs and returns the correlation id.
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { authenticationRan } from '../auth/context.js';
import type { Principal } from '../auth/principal.js';
import {
  registerCleanup,
  registerResponseCleanup,
  runCleanup,
  runResponseCleanupOnError,
} from '../cleanup.js';
import { assertNoProblems, InvalidOptionsError } from '../errors.js';
import {
  type ApiGatewayEvent,
  assertApiGatewayEvent,
  forDeclaredEvent,
  httpContextOf,
  methodOf,
  pathOf,
  routeOf,
  sourceIpOf,
} from '../http/request-event.js';
import { withHeadersAndCookies } from '../http/response.js';
import type { IdempotencyKeyContext } from '../idempotency.js';
import { idempotencyKeyHash } from '../idempotency-key-hash.js';
import { arrayOption, checkFunctionOption, definedOnly, shownValue } from '../options.js';
import { rateLimitRan } from '../rate-limit/ran.js';
import { outcomeForStatus } from './audit-event.js';
import { AuditLogger } from './audit-logger.js';
import {
  correlationIdHeader,
  headerValue,
  isValidCorrelationId,
  resolveCorrelationId,
} from './correlation.js';
import {
  type BodyCapture,
  normalizeResponse,
  statusOfError,
  summarizeRequest,
  summarizeResponse,
} from './request-summary.js';

type HttpRequest<C extends Context = Context> = Request<
  ApiGatewayEvent,
  APIGatewayProxyStructuredResultV2,
  Error,
  C
>;

/**
 * Where {@link passErrorToOuterAudit} leaves a nested pipeline's error: on the context it shares with the
 * request around it, not on `internal`, which `middy({ internal })` shares across invocations.
 */
const nestedErrorKey = Symbol('bulwark.audit.nestedError');

/** What other middlewares may have put on the context by the time the request ends. */
type ObservedContext = Context &
  IdempotencyKeyContext & {
    principal?: Principal | undefined;
    correlationId?: string | undefined;
    [nestedErrorKey]?: Error | undefined;
  };

/** The answers about an idempotency key (besides a replay): in progress elsewhere (409), reused with another request (422). */
const keyConflictStatuses = new Set([409, 422]);

export interface AuditOptions {
  /** Where the events go. */
  readonly auditLogger: AuditLogger;
  /** Paths (`rawPath`) never audited, e.g. `/health`; an entry ending in `*` is a prefix. @default [] */
  readonly excludePaths?: readonly string[] | undefined;
  /** Add the request body, redacted and cut, to the event. @default false */
  readonly logRequestBody?: boolean | undefined;
  /** Add the response body, redacted and cut, to the event. @default false */
  readonly logResponseBody?: boolean | undefined;
  /** Characters of a captured body kept after redaction. @default 2048 */
  readonly maxBodyLength?: number | undefined;
  /** JSON and form bodies up to this size are parsed so their keys can be redacted; larger ones are logged by size only. @default 65536 */
  readonly parseLimitBytes?: number | undefined;
  /** Monotonic clock in milliseconds, for durations. @default performance.now */
  readonly now?: (() => number) | undefined;
}

const auditDefaults = {
  excludePaths: [] as readonly string[],
  logRequestBody: false,
  logResponseBody: false,
  maxBodyLength: 2048,
  parseLimitBytes: 65_536,
  now: () => performance.now(),
};

const auditCleanup = 'bulwark.audit';

function validateAudit(options: AuditOptions): void {
  const problems: string[] = [];
  if (!(options?.auditLogger instanceof AuditLogger)) problems.push('auditLogger must be an AuditLogger');
  // definedOnly keeps a null over the default, and the path matcher or the clock would fail on it.
  const nullIsAbsent = false;
  for (const path of arrayOption(problems, 'excludePaths', options?.excludePaths, 'of paths', {
    nullIsAbsent,
  })) {
    if (typeof path !== 'string' || !path.startsWith('/')) {
      problems.push(`excludePaths entries must start with "/" (got ${shownValue(path)})`);
    }
  }
  checkFunctionOption(problems, 'now', options?.now, { nullIsAbsent });
  for (const name of ['maxBodyLength', 'parseLimitBytes'] as const) {
    const value = options?.[name];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      problems.push(`${name} must be a positive integer`);
    }
  }
  assertNoProblems('audit', problems);
}

/** A matcher over exact paths and `prefix*` entries, built once. */
function pathMatcher(paths: readonly string[]): (path: string) => boolean {
  const exact = new Set(paths.filter((path) => !path.endsWith('*')));
  const prefixes = paths.filter((path) => path.endsWith('*')).map((path) => path.slice(0, -1));
  return (path) => exact.has(path) || prefixes.some((prefix) => path.startsWith(prefix));
}

const round = (value: number) => Math.round(value * 100) / 100;

/**
 * Refuses a request that reached audit() after authentication or a rate limit ran on it: the requests
 * they refuse (401, 403, 429) end before audit() and would leave no audit line, and nothing would say so.
 * Both mark every request they let through, so a misordered pipeline fails (500, logged by
 * httpErrorHandler) on its first such request. Decided from the marks on this request, not from
 * `context.principal` or `context.rateLimit`: a context object handed in again still holds the last
 * request's, whichever pipeline it went through.
 */
function assertNoPolicyRanBefore(request: HttpRequest): void {
  const ran = [
    ...(authenticationRan(request) ? ['an authentication middleware'] : []),
    ...(rateLimitRan(request) ? ['rateLimit()'] : []),
  ];
  if (ran.length === 0) return;
  throw new InvalidOptionsError('audit', [
    `${ran.join(' and ')} ran before audit(), so the requests refused there (401, 403, 429) would have no audit line: put audit() before authenticate(), the guards and rateLimit()`,
  ]);
}

/**
 * Writes one `http.request` audit event per request with request and response summaries (method,
 * path, status, duration, principal, sizes, and bodies only when enabled, redacted and cut). Events
 * that other capabilities report during the request inherit its path, ip, request and correlation ids.
 *
 * Use it after `correlationIds()` and before `httpErrorHandler()`, so it sees the correlation id
 * and the final problem+json status, and before authentication, the guards and rate limits, so it
 * also records the requests they refuse: a request that reaches it after `authenticate()` or
 * `rateLimit()` is refused as a setup fault (an `InvalidOptionsError`, 500). A middleware that
 * answers early through `respondEarly()` still gets its answer audited.
 *
 * @example
 * middy(handler)
 *   .use(injectLambdaContext(logger, { resetKeys: true }))
 *   .use(correlationIds({ loggers: [logger] }))
 *   .use(captureMetrics(metrics))
 *   .use(audit({ auditLogger, excludePaths: ['/health'] }))
 *   .use(httpErrorHandler({ logger }));
 */
export function audit(
  options: AuditOptions,
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, Context> {
  validateAudit(options);
  const { auditLogger } = options;
  const settings = { ...auditDefaults, ...definedOnly(options) };
  const { now } = settings;
  const isExcluded = pathMatcher(settings.excludePaths);
  const capture: BodyCapture = {
    maxLength: settings.maxBodyLength,
    parseLimitBytes: settings.parseLimitBytes,
    redactor: auditLogger.redactor,
  };
  const requestCapture = settings.logRequestBody ? capture : undefined;
  const responseCapture = settings.logResponseBody ? capture : undefined;

  const auditBefore = (request: HttpRequest) => {
    assertApiGatewayEvent(request.event, 'audit');
    assertNoPolicyRanBefore(request);
    const { event } = request;
    const path = pathOf(event) ?? httpContextOf(event)?.path ?? '';
    if (isExcluded(path)) return;
    const startedAt = now();
    const context = request.context as ObservedContext;
    const header = headerValue(event.headers, correlationIdHeader);
    const correlationId = context.correlationId ?? (isValidCorrelationId(header) ? header : undefined);
    const scope = {
      requestId: event.requestContext?.requestId,
      correlationId,
      path,
      method: methodOf(event),
      ipAddress: sourceIpOf(event),
      userAgent: httpContextOf(event)?.userAgent ?? headerValue(event.headers, 'user-agent'),
      principal: () => context.principal,
      // Middy marks a request a middleware answered without respondEarly(): no cleanup of this one will run.
      ended: () => Object.hasOwn(request, 'earlyResponse'),
    };
    auditLogger.beginRequest(scope);
    // A Lambda context object can outlive the invocation (local runtimes, tests): no earlier error or
    // idempotency key stays (idempotency() sets this request's, on a route that has it).
    context[nestedErrorKey] = undefined;
    context.scopedIdempotencyKey = undefined;
    registerCleanup(request, auditCleanup, () => {
      const response = normalizeResponse(request.response);
      const error = (request.error ?? context[nestedErrorKey]) as
        | (Error & { code?: unknown })
        | null
        | undefined;
      // Neither answer nor error: Powertools runs its cleanup hook before it hands an idempotency
      // replay's stored answer to Middy, so the status is not known here and none is made up.
      const statusCode = response?.statusCode ?? (error ? statusOfError(error) : undefined);
      const answer = statusCode === undefined ? undefined : summarizeResponse(response, responseCapture);
      const scopedKey = context.scopedIdempotencyKey;
      // Hashed only where the key is what the line is about, never on every request with a key.
      const keyHash =
        scopedKey !== undefined && (answer?.replayed || keyConflictStatuses.has(statusCode ?? 0))
          ? idempotencyKeyHash(scopedKey)
          : undefined;
      auditLogger.log(
        {
          eventType: 'http.request',
          outcome: statusCode === undefined ? 'unknown' : outcomeForStatus(statusCode),
          statusCode,
          durationMs: round(now() - startedAt),
          principal: context.principal,
          correlationId: context.correlationId ?? correlationId,
          metadata: {
            routeKey: routeOf(event),
            request: summarizeRequest(event, requestCapture),
            ...(answer === undefined ? {} : { response: answer.response }),
            ...(answer?.replayed ? { replayed: true } : {}),
            ...(keyHash === undefined ? {} : { idempotencyKeyHash: keyHash }),
            ...(error
              ? { error: { name: error.name, ...(error.code === undefined ? {} : { code: error.code }) } }
              : {}),
            ...(header !== undefined && !isValidCorrelationId(header) ? { correlationIdRejected: true } : {}),
          },
        },
        // This request's own, not whichever began last on a logger shared without the invocation store.
        scope,
      );
      auditLogger.endRequest(scope);
    });
  };
  const auditAfterOrError = (request: HttpRequest) => runCleanup(request, auditCleanup);
  return forDeclaredEvent({ before: auditBefore, after: auditAfterOrError, onError: auditAfterOrError });
}

/**
 * For a Middy pipeline run inside another's handler (a route's own, in a dispatcher): hands the error
 * it ends with to the `audit` of the request around it, which sees only the answer the nested
 * `httpErrorHandler` renders, so its line still names the error (`metadata.error`). Use it right after
 * the nested pipeline's `httpErrorHandler`.
 *
 * @example
 * const route = middy().use(httpErrorHandler({ logger })).use(passErrorToOuterAudit()).handler(fn);
 * export const handler = middy((event: APIGatewayProxyEventV2, context: Context) => route(event, context))
 *   .use(audit({ auditLogger }))
 *   .use(httpErrorHandler({ logger }));
 */
export function passErrorToOuterAudit(): MiddlewareObj<
  unknown,
  APIGatewayProxyStructuredResultV2,
  Error,
  Context
> {
  const passErrorToOuterAuditOnError = (request: HttpRequest) => {
    (request.context as ObservedContext)[nestedErrorKey] = request.error ?? undefined;
  };
  return forDeclaredEvent({ onError: passErrorToOuterAuditOnError });
}

/** What {@link correlationIds} adds to the handler's context. */
export interface CorrelationContext {
  /** The request's correlation id: the caller's `x-correlation-id`, or a new UUID. */
  correlationId: string;
}

/** A logger that can carry the correlation id on every line; a Powertools Logger fits. */
export interface CorrelationLogger {
  setCorrelationId(value: unknown): void;
}

export interface CorrelationIdsOptions {
  /** Loggers that get the id as Powertools' `correlation_id` key on every line. @default [] */
  readonly loggers?: readonly CorrelationLogger[] | undefined;
  /** Return the id to the caller in the `x-correlation-id` response header. @default true */
  readonly returnHeader?: boolean | undefined;
  /** Makes an id when the request has none (or an unusable one). @default crypto.randomUUID */
  readonly generate?: (() => string) | undefined;
}

const correlationCleanup = 'bulwark.correlation';

/**
 * Accepts the caller's `x-correlation-id` (1–128 safe characters; anything else is replaced, which
 * blocks header and log injection) or generates one, puts it on `context.correlationId` and on every
 * line of the given loggers, and returns it on the response, early answers and errors included.
 *
 * @example
 * middy(handler)
 *   .use(correlationIds({ loggers: [logger] }))
 *   .handler(async (event, context) => {
 *     const user = await callService('users', url, { headers: correlationHeaders(context.correlationId) });
 *     return json(user.status, await user.json());
 *   });
 */
export function correlationIds(
  options: CorrelationIdsOptions = {},
): MiddlewareObj<unknown, APIGatewayProxyStructuredResultV2, Error, Context & CorrelationContext> {
  const problems: string[] = [];
  const givenLoggers = arrayOption(problems, 'loggers', options.loggers, 'of loggers, e.g. [logger]');
  if (givenLoggers.some((logger) => typeof (logger as CorrelationLogger)?.setCorrelationId !== 'function')) {
    problems.push('loggers must have setCorrelationId() (Powertools Loggers)');
  }
  // resolveCorrelationId's default generator replaces only undefined: a null would be called.
  checkFunctionOption(problems, 'generate', options.generate, { nullIsAbsent: false });
  assertNoProblems('correlationIds', problems);
  const loggers = givenLoggers as readonly CorrelationLogger[];
  const returnHeader = options.returnHeader ?? true;
  const generate = options.generate;

  const correlationIdsBefore = (request: HttpRequest<Context & CorrelationContext>) => {
    assertApiGatewayEvent(request.event, 'correlationIds');
    const { correlationId } = resolveCorrelationId(request.event.headers, generate);
    request.context.correlationId = correlationId;
    for (const logger of loggers) logger.setCorrelationId(correlationId);
    if (!returnHeader) return;
    registerResponseCleanup(request, correlationCleanup, (response) =>
      withHeadersAndCookies(response, { headers: { [correlationIdHeader]: correlationId } }),
    );
  };
  const correlationIdsAfter = (request: HttpRequest<Context & CorrelationContext>) =>
    runCleanup(request, correlationCleanup);
  const correlationIdsOnError = (request: HttpRequest<Context & CorrelationContext>) =>
    runResponseCleanupOnError(request, correlationCleanup);
  return forDeclaredEvent({
    before: correlationIdsBefore,
    after: correlationIdsAfter,
    onError: correlationIdsOnError,
  });
}
