// Writes audit events as single JSON lines through a Powertools Logger, redacted, under the stable `audit` key.
import { Logger, LogLevelThreshold } from '@aws-lambda-powertools/logger';
import type { Principal } from '../auth/principal.js';
import { assertNoProblems } from '../errors.js';
import type { SecurityEvent } from '../events.js';
import { InvocationSlot } from '../invocation-store.js';
import { checkFunctionOption } from '../options.js';
import { escapedForLog } from '../text.js';
import { type AuditEvent, type AuditOutcome, securityEventOutcome } from './audit-event.js';
import { createRedactor, type RedactionOptions, type Redactor } from './redact.js';

/** The top-level key that marks a log line as an audit record (filter on it in Logs Insights). */
export const auditLogKey = 'audit';

/** The slice of a logger audit lines are written through; a Powertools Logger fits. */
export interface AuditLineWriter {
  info(input: { message: string; [key: string]: unknown }): void;
}

/** What a Powertools Logger offers besides `info`, to write an audit line when it is set above INFO. */
interface LeveledLineWriter extends AuditLineWriter {
  getLevelName(): string;
  setLogLevel(level: string): void;
}

/** Lambda's own levels (advanced logging controls) that drop an INFO line. */
const quieterThanInfo = new Set(['WARN', 'ERROR', 'FATAL', 'CRITICAL']);

function isLeveled(logger: AuditLineWriter): logger is LeveledLineWriter {
  const candidate = logger as Partial<LeveledLineWriter>;
  return typeof candidate.getLevelName === 'function' && typeof candidate.setLogLevel === 'function';
}

/**
 * Writes an audit line at INFO, also through a Powertools Logger set to WARN or above
 * (`POWERTOOLS_LOG_LEVEL=WARN`, common in production): its level is INFO for that one synchronous call,
 * so the line carries everything the logger's own lines do (context, keys, `cold_start`) and goes where
 * they go (a log buffer included). Lambda's own log level (`AWS_LAMBDA_LOG_LEVEL`, advanced logging
 * controls) above INFO still drops the line: Powertools obeys it.
 */
function writeLine(logger: AuditLineWriter, line: Parameters<AuditLineWriter['info']>[0]): void {
  // A Powertools Logger's numeric level: the common case, at INFO or below, costs this one read.
  const level = (logger as { level?: unknown }).level;
  if (
    typeof level !== 'number' ||
    level <= LogLevelThreshold.INFO ||
    level >= LogLevelThreshold.SILENT ||
    !isLeveled(logger) ||
    quieterThanInfo.has((process.env['AWS_LAMBDA_LOG_LEVEL'] ?? '').toUpperCase())
  ) {
    logger.info(line);
    return;
  }
  const name = logger.getLevelName();
  logger.setLogLevel('INFO');
  try {
    logger.info(line);
  } finally {
    logger.setLogLevel(name);
  }
}

export interface AuditLoggerOptions {
  /**
   * The Powertools Logger audit lines go through. Share the function's logger so audit lines carry its
   * Lambda context and correlation id. Lines are written at INFO, also through a logger set to WARN or
   * above (see {@link writeLine}); a SILENT one, or Lambda's own log level above INFO, drops them
   * (the sink still receives them).
   * @default a new Powertools Logger (service name from POWERTOOLS_SERVICE_NAME)
   */
  readonly logger?: AuditLineWriter | undefined;
  /** Called with every event after redaction (seed 002's `log_callback`); its errors are ignored. @default none */
  readonly sink?: ((event: AuditEvent) => void) | undefined;
  /** Write lines to the logger; `false` leaves only the sink (seed 002's `log_to_console`). @default true */
  readonly logToConsole?: boolean | undefined;
  /** Extra sensitive keys and size bounds for metadata and free-text fields. @default {} */
  readonly redaction?: RedactionOptions | undefined;
  /** The clock. @default () => new Date() */
  readonly now?: (() => Date) | undefined;
}

/** What is known about the request in flight; security events logged during it inherit these fields. */
export interface AuditRequestScope {
  readonly requestId?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly path?: string | undefined;
  readonly method?: string | undefined;
  readonly ipAddress?: string | undefined;
  readonly userAgent?: string | undefined;
  /** Read when an event is logged, because authentication sets the principal after the scope begins. */
  readonly principal?: (() => Principal | undefined) | undefined;
  /**
   * Whether the request is over although {@link AuditLogger.endRequest} was never called for it (Middy skips
   * every `after` when a middleware answers early without `respondEarly()`): from then on the scope is
   * dropped, so a later invocation's events do not inherit it.
   */
  readonly ended?: (() => boolean) | undefined;
}

/**
 * The fields a caller gives: any of the event's own (but its timestamp) and, optionally, the principal
 * and a reason; the rest (timestamp, request fields, principal fields) is filled in.
 */
export type AuditEventInput = Pick<AuditEvent, 'eventType'> & {
  readonly [K in Exclude<keyof AuditEvent, 'timestamp' | 'eventType'>]?: AuditEvent[K] | undefined;
} & {
  /** Fills userId, clientId, isM2M, authMethod and tenantId; explicit fields win. */
  readonly principal?: Principal | undefined;
  /** A short cause code, written as `metadata.reason`. */
  readonly reason?: string | undefined;
};

function validate(options: AuditLoggerOptions): void {
  const problems: string[] = [];
  if (options.logger !== undefined && typeof options.logger?.info !== 'function') {
    problems.push('logger must have an info() method (a Powertools Logger)');
  }
  checkFunctionOption(problems, 'sink', options.sink);
  checkFunctionOption(problems, 'now', options.now);
  // A null sink is none, as the writer reads it.
  if (options.logToConsole === false && (options.sink === undefined || options.sink === null)) {
    problems.push('logToConsole: false needs a sink, or audit events go nowhere');
  }
  assertNoProblems('AuditLogger', problems);
}

/**
 * Writes audit events: one JSON line each, `{ …Powertools keys, "audit": { …AuditEvent } }`, with
 * secrets redacted. Never throws: an audit failure must not fail the request it records.
 *
 * @example
 * const auditLogger = new AuditLogger({ logger });
 * auditLogger.logAdminAction('user.deleted', { targetUserId: id }, principal);
 * auditLogger.logAuthFailure('expired');
 */
export class AuditLogger {
  readonly redactor: Redactor;
  private readonly logger: AuditLineWriter;
  private readonly sink: ((event: AuditEvent) => void) | undefined;
  private readonly logToConsole: boolean;
  private readonly timestamp: () => string;
  private readonly scope = new InvocationSlot<AuditRequestScope>('audit.scope');

  constructor(options: AuditLoggerOptions = {}) {
    validate(options);
    this.redactor = createRedactor(options.redaction);
    this.logger = options.logger ?? new Logger();
    this.sink = options.sink;
    this.logToConsole = options.logToConsole ?? true;
    const now = options.now;
    this.timestamp = typeof now === 'function' ? () => now().toISOString() : currentTimestamp;
  }

  /**
   * Starts a request: events logged until {@link endRequest} inherit its fields. The scope belongs to
   * the invocation: where Lambda runs several at once in one process (Managed Instances), each sees its own.
   */
  beginRequest(scope: AuditRequestScope): void {
    this.scope.set(scope);
  }

  /** Ends a request; given its scope, only if no other request has begun since (local concurrent runs). */
  endRequest(scope?: AuditRequestScope): void {
    if (scope === undefined || this.scope.get() === scope) this.scope.set(undefined);
  }

  /**
   * Logs one event and returns it as written (redacted), or undefined if it could not be built. Its request
   * fields come from `scope`, by default the request in flight (see {@link beginRequest}); a caller that
   * holds its request's scope passes it, which stays right where invocations overlap on this logger without
   * the runtime's invocation store (tests, a host of your own).
   */
  log(input: AuditEventInput, scope?: AuditRequestScope): AuditEvent | undefined {
    let event: AuditEvent;
    try {
      event = this.build(input, scope ?? this.requestInFlight());
    } catch {
      return undefined;
    }
    if (this.logToConsole) {
      try {
        writeLine(this.logger, {
          message: `AUDIT ${event.eventType}`,
          // Powertools' own key too, so one filter on `correlation_id` finds the line whichever
          // logger wrote it: a queue worker's, whose messages each carry their own id, has none set.
          ...(event.correlationId === undefined ? {} : { correlation_id: event.correlationId }),
          [auditLogKey]: event,
        });
      } catch {
        // A broken log transport loses the line, not the request.
      }
    }
    if (this.sink) {
      try {
        this.sink(event);
      } catch {
        // Seed 002: the callback is best effort.
      }
    }
    return event;
  }

  /** A credential was verified. */
  logAuthSuccess(
    principal: Principal,
    metadata: Readonly<Record<string, unknown>> = {},
  ): AuditEvent | undefined {
    return this.log({ eventType: 'auth.success', outcome: 'success', principal, metadata });
  }

  /** A credential was missing or rejected; `reason` is a short code (`expired`, `bad_signature`). */
  logAuthFailure(reason: string, metadata: Readonly<Record<string, unknown>> = {}): AuditEvent | undefined {
    return this.log({ eventType: 'auth.failure', outcome: 'denied', metadata, reason });
  }

  /** An authenticated caller was refused (role, scope, permission, human-only). */
  logAccessDenied(
    principal: Principal | undefined,
    reason: string,
    metadata: Readonly<Record<string, unknown>> = {},
  ): AuditEvent | undefined {
    return this.log({
      eventType: 'access.denied',
      outcome: 'denied',
      principal,
      metadata,
      reason,
    });
  }

  /**
   * An administrator did something (seed 001's `log_admin_action`): `action` is a stable verb such
   * as `user.deleted`; `details` name the target, never its personal data. `outcome` is `unknown` for
   * an action whose write got no answer, so it may or may not have been made.
   */
  logAdminAction(
    action: string,
    details: Readonly<Record<string, unknown>> = {},
    principal?: Principal,
    outcome: AuditOutcome = 'success',
  ): AuditEvent | undefined {
    return this.log({
      eventType: 'admin.action',
      outcome,
      principal,
      metadata: { ...details, action },
    });
  }

  /** A secret was read (seed 004: audit of secret access); `secretName` is its name or ARN, never its value. */
  logSecretAccess(
    secretName: string,
    metadata: Readonly<Record<string, unknown>> = {},
  ): AuditEvent | undefined {
    return this.log({
      eventType: 'secret.accessed',
      outcome: 'success',
      metadata: { ...metadata, secretName },
    });
  }

  /** Any security event a capability reported through `onEvent`. */
  logSecurityEvent(event: SecurityEvent): AuditEvent | undefined {
    // Reporters mark an operation that did not do what was asked with metadata.outcome: `error` when it
    // threw (a secret read or KMS call), `failure` when it was refused (a revocation that found no key).
    const reported = event.metadata?.['outcome'];
    return this.log({
      eventType: event.type,
      outcome:
        reported === 'error' || reported === 'failure'
          ? reported
          : (securityEventOutcome[event.type] ?? 'success'),
      principal: event.principal,
      metadata: event.metadata,
      reason: event.reason,
      correlationId: event.correlationId,
    });
  }

  private requestInFlight(): AuditRequestScope | undefined {
    const scope = this.scope.get();
    if (!scope?.ended?.()) return scope;
    this.scope.set(undefined);
    return undefined;
  }

  private build(input: AuditEventInput, scope: AuditRequestScope | undefined): AuditEvent {
    const principal = input.principal ?? scope?.principal?.();
    const redactString = this.redactor.redactString;
    const metadata = this.redactor.redact(input.metadata ?? {}) as Record<string, unknown>;
    if (input.reason !== undefined) metadata['reason'] = redactString(String(input.reason));
    // One literal of fixed shape (fast to build and serialise); unknown fields stay undefined, which
    // JSON leaves out of the line.
    return {
      timestamp: this.timestamp(),
      eventType: input.eventType,
      outcome: input.outcome ?? 'success',
      userId: text(input.userId ?? principal?.id, redactString),
      clientId: text(input.clientId ?? principal?.clientId, redactString),
      isM2M: input.isM2M ?? principal?.isM2M ?? false,
      authMethod: text(input.authMethod ?? principal?.authMethod, redactString),
      tenantId: text(input.tenantId ?? principal?.tenantId, redactString),
      path: clientText(input.path ?? scope?.path, redactString),
      method: text(input.method ?? scope?.method, redactString),
      statusCode: input.statusCode,
      ipAddress: text(input.ipAddress ?? scope?.ipAddress, redactString),
      userAgent: clientText(input.userAgent ?? scope?.userAgent, redactString),
      requestId: text(input.requestId ?? scope?.requestId, redactString),
      correlationId: text(input.correlationId ?? scope?.correlationId, redactString),
      durationMs: input.durationMs,
      metadata,
    };
  }
}

/** The second {@link currentTimestamp} last formatted, and its ISO text up to the milliseconds. */
let formattedSecond = Number.NaN;
let formattedSecondPrefix = '';

/**
 * `new Date().toISOString()`, formatting the date and time once per second: toISOString costs about 1 µs
 * a call on Node 20, a third of what building an audit event costs, where Date.now() costs 0.05 µs.
 */
function currentTimestamp(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== formattedSecond) {
    // `2030-05-06T09:00:00.000Z` less `000Z`.
    formattedSecondPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    formattedSecond = second;
  }
  return `${formattedSecondPrefix}${String(now - second * 1000).padStart(3, '0')}Z`;
}

/** A free-text field, redacted and bounded, when it is known. */
function text(value: string | undefined, redactString: (value: string) => string): string | undefined {
  return value === undefined ? undefined : redactString(String(value));
}

/**
 * A field the request's client wrote (its path, its User-Agent), as {@link text}, with each
 * character that would reorder or split the line in a log viewer escaped first (see `escapedForLog`).
 */
function clientText(value: string | undefined, redactString: (value: string) => string): string | undefined {
  return value === undefined ? undefined : redactString(escapedForLog(String(value)));
}
