// One typed hook through which every capability reports security and resilience events (audit + metrics consume it).
import type { Principal } from './auth/principal.js';

export type SecurityEventType =
  | 'auth.success'
  | 'auth.failure'
  | 'access.denied'
  | 'apiKey.used'
  | 'apiKey.created'
  | 'apiKey.revoked'
  | 'apiKey.rehashed'
  | 'replay.rejected'
  | 'csrf.rejected'
  | 'rateLimit.hit'
  | 'rateLimit.storeError'
  | 'circuit.opened'
  | 'circuit.halfOpen'
  | 'circuit.closed'
  | 'circuit.rejected'
  | 'circuit.storeError'
  | 'secret.accessed'
  | 'dataKey.cacheHit'
  | 'kms.request'
  | 'decryption.failed'
  | 'admin.action';

export interface SecurityEvent {
  readonly type: SecurityEventType;
  /** Short machine-readable cause, e.g. `expired`, `bad_signature`, `store_unreachable`. */
  readonly reason?: string | undefined;
  readonly principal?: Principal | undefined;
  /** Non-secret details (ids, names, counts); never a credential or personal data in clear. */
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
  /** How long the reported operation took (credential verification → the `AuthLatency` metric). */
  readonly durationMs?: number | undefined;
  /**
   * The request or queue message the event happened for, when the listener that reported it knows
   * (a queue worker's per-message listener); otherwise the audit line takes the request's.
   */
  readonly correlationId?: string | undefined;
}

/** Receives events synchronously; must not throw (a listener failure never fails a request). */
export type SecurityEventListener = (event: SecurityEvent) => void;

/** A listener that drops every event. */
export const ignoreEvents: SecurityEventListener = () => {};

/** Calls a listener, swallowing its errors: reporting must never break the request it reports on. */
export function emitEvent(listener: SecurityEventListener | undefined, event: SecurityEvent): void {
  if (!listener) return;
  try {
    listener(event);
  } catch {
    // A broken sink loses the event, not the request.
  }
}
