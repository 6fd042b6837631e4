// The audit record: seed 002's AuditEvent fields plus request, correlation, tenant, outcome and duration.
import type { SecurityEventType } from '../events.js';

/** `http.request` for the per-request record, a security event type, or an application's own type. */
export type AuditEventType = 'http.request' | SecurityEventType | (string & {});

/**
 * How it ended: `success`; `denied` when a security control refused it (401, 403, 429, CSRF,
 * replay); `failure` for other client errors; `error` for server faults and failed dependencies;
 * `unknown` when the answer was not visible to the audit (a Powertools idempotency replay), or when a
 * change's write was sent and its answer lost (it may have been made).
 */
export type AuditOutcome = 'success' | 'denied' | 'failure' | 'error' | 'unknown';

/** One audit record; written as the `audit` object of one JSON log line. */
export interface AuditEvent {
  /** When it happened, ISO-8601 in UTC. */
  readonly timestamp: string;
  readonly eventType: AuditEventType;
  readonly outcome: AuditOutcome;
  /** The user or service account (`Principal.id`). */
  readonly userId?: string | undefined;
  /** OAuth client id, for M2M callers. */
  readonly clientId?: string | undefined;
  readonly isM2M: boolean;
  /**
   * How the principal proved who it is (`Principal.authMethod`: `jwt`, `apiKey` or `service`). On the
   * `http.request` line it says all a separate `auth.success` line would, so that one can be left out.
   */
  readonly authMethod?: string | undefined;
  readonly tenantId?: string | undefined;
  readonly path?: string | undefined;
  readonly method?: string | undefined;
  readonly statusCode?: number | undefined;
  readonly ipAddress?: string | undefined;
  readonly userAgent?: string | undefined;
  /** API Gateway's request id (the `requestId` of problem+json answers). */
  readonly requestId?: string | undefined;
  /** The `x-correlation-id` that follows the request across services and queues. */
  readonly correlationId?: string | undefined;
  readonly durationMs?: number | undefined;
  /** Event-specific, redacted details (reason, action, sizes, resource ids). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/**
 * The middleware's audit lines of a request that went as it should: `http.request`, one per request, and
 * `auth.success`, one per authenticated request unless the listener leaves it out (`unaudited`). A query
 * after what is worth a look leaves them out.
 */
export const routineRequestEventTypes = ['http.request', 'auth.success'] as const satisfies readonly (
  | 'http.request'
  | SecurityEventType
)[];

/** The status codes with which a security control refuses a request. */
const deniedStatuses = new Set([401, 403, 429]);

/**
 * The outcome of an HTTP answer.
 *
 * @example
 * outcomeForStatus(201); // 'success'
 * outcomeForStatus(403); // 'denied'
 */
export function outcomeForStatus(statusCode: number): AuditOutcome {
  if (statusCode >= 500) return 'error';
  if (deniedStatuses.has(statusCode)) return 'denied';
  if (statusCode >= 400) return 'failure';
  return 'success';
}

/** The outcome each security event records; a `Record` so a new event type cannot be left out. */
export const securityEventOutcome: Readonly<Record<SecurityEventType, AuditOutcome>> = {
  'auth.success': 'success',
  'auth.failure': 'denied',
  'access.denied': 'denied',
  'apiKey.used': 'success',
  'apiKey.created': 'success',
  'apiKey.revoked': 'success',
  'apiKey.rehashed': 'success',
  'replay.rejected': 'denied',
  'csrf.rejected': 'denied',
  'rateLimit.hit': 'denied',
  'rateLimit.storeError': 'error',
  'circuit.opened': 'error',
  'circuit.halfOpen': 'success',
  'circuit.closed': 'success',
  'circuit.rejected': 'error',
  'circuit.storeError': 'error',
  'secret.accessed': 'success',
  'dataKey.cacheHit': 'success',
  'kms.request': 'success',
  'decryption.failed': 'failure',
  'admin.action': 'success',
};
