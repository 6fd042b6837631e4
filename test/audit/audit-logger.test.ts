import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger, auditLogKey } from '../../middleware/audit/audit-logger.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { captureStdout } from '../helpers/log-capture.js';
import { alice, lambdaContext } from './fixtures.js';

const output = captureStdout();
const fixedNow = () => new Date('2030-01-02T03:04:05.678Z');

function newLogger(options: ConstructorParameters<typeof AuditLogger>[0] = {}) {
  return new AuditLogger({
    logger: new Logger({ serviceName: 'users', logLevel: 'INFO' }),
    now: fixedNow,
    ...options,
  });
}

/** The fields seed 002 documents plus Bulwark's; each line must carry the ones that apply. */
const baseFields = ['timestamp', 'eventType', 'outcome', 'isM2M', 'metadata'];

describe('AuditLogger', () => {
  it('writes one JSON line per event, marked by the audit key, with the documented fields', () => {
    const auditLogger = newLogger();
    auditLogger.logAuthSuccess(alice, { method: 'jwt' });
    auditLogger.logAuthFailure('expired', { tokenUse: 'access' });
    auditLogger.logAccessDenied(alice, 'missing_role', { required: ['admin'] });
    auditLogger.logAdminAction('user.deleted', { targetUserId: 'user-bob' }, alice);
    auditLogger.logSecretAccess('bulwark/encryption-key', { versionStage: 'AWSCURRENT' });
    auditLogger.logSecurityEvent({
      type: 'rateLimit.hit',
      reason: 'over_limit',
      metadata: { policy: 'public' },
    });

    const lines = output.json();
    expect(lines).toHaveLength(6);
    for (const line of lines) {
      expect(line).toMatchObject({ level: 'INFO', service: 'users' });
      expect(line.message).toMatch(/^AUDIT /);
      expect(Object.keys(line[auditLogKey] as object)).toEqual(expect.arrayContaining(baseFields));
    }
    const events = output.audit();
    expect(events.map((event) => [event.eventType, event.outcome])).toEqual([
      ['auth.success', 'success'],
      ['auth.failure', 'denied'],
      ['access.denied', 'denied'],
      ['admin.action', 'success'],
      ['secret.accessed', 'success'],
      ['rateLimit.hit', 'denied'],
    ]);
    expect(events[0]).toEqual({
      timestamp: '2030-01-02T03:04:05.678Z',
      eventType: 'auth.success',
      outcome: 'success',
      userId: 'user-alice',
      clientId: 'web-client',
      isM2M: false,
      authMethod: 'jwt',
      tenantId: 'tenant-1',
      metadata: { method: 'jwt' },
    });
    expect(events[1]).toMatchObject({ isM2M: false, metadata: { reason: 'expired', tokenUse: 'access' } });
    expect(events[1]?.userId).toBeUndefined();
    expect(events[2]).toMatchObject({
      userId: 'user-alice',
      metadata: { reason: 'missing_role', required: ['admin'] },
    });
    expect(events[3]).toMatchObject({
      userId: 'user-alice',
      metadata: { action: 'user.deleted', targetUserId: 'user-bob' },
    });
    expect(events[4]?.metadata).toEqual({ secretName: 'bulwark/encryption-key', versionStage: 'AWSCURRENT' });
    expect(events[5]?.metadata).toEqual({ reason: 'over_limit', policy: 'public' });
    // Personal data of the principal never appears: only its ids.
    expect(output.lines().join('\n')).not.toContain('alice@example.com');
  });

  it('fills request fields from the request in flight and reads the principal when the event is logged', () => {
    const auditLogger = newLogger();
    let principal: Principal | undefined;
    const request = {
      requestId: 'req-1',
      correlationId: 'corr-1',
      path: '/bookings',
      method: 'POST',
      ipAddress: '203.0.113.9',
      userAgent: 'curl/8',
      principal: () => principal,
    };
    auditLogger.beginRequest(request);
    principal = alice;
    auditLogger.logSecurityEvent({ type: 'access.denied', reason: 'missing_scope' });
    // Another request's end leaves this one's scope alone.
    auditLogger.endRequest({ path: '/other' });
    expect(auditLogger.logAuthFailure('x')?.path).toBe('/bookings');
    // Its own end clears it.
    auditLogger.endRequest(request);
    auditLogger.logSecurityEvent({
      type: 'circuit.opened',
      reason: 'failures',
      metadata: { circuit: 'users' },
    });
    const [during, , after] = output.audit();
    expect(during).toMatchObject({
      requestId: 'req-1',
      correlationId: 'corr-1',
      path: '/bookings',
      method: 'POST',
      ipAddress: '203.0.113.9',
      userAgent: 'curl/8',
      userId: 'user-alice',
    });
    expect(after?.path).toBeUndefined();
    expect(after?.requestId).toBeUndefined();
    expect(after).toMatchObject({ outcome: 'error', metadata: { circuit: 'users', reason: 'failures' } });
  });

  it("puts an event's correlation id at the top level too, where Powertools puts the logger's", () => {
    const auditLogger = newLogger();
    auditLogger.beginRequest({ correlationId: 'request-1' });
    auditLogger.logSecurityEvent({ type: 'circuit.opened', reason: 'failure_threshold' });
    auditLogger.endRequest();
    // A queue worker's listener names the message the event happened for.
    auditLogger.logSecurityEvent({
      type: 'circuit.opened',
      reason: 'failure_threshold',
      correlationId: 'message-1',
    });
    auditLogger.log({ eventType: 'email.sent', correlationId: 'message-2' });
    auditLogger.log({ eventType: 'email.sent' });
    const lines = output.json();
    expect(lines.map((line) => [line.correlation_id, (line.audit as AuditEvent).correlationId])).toEqual([
      ['request-1', 'request-1'],
      ['message-1', 'message-1'],
      ['message-2', 'message-2'],
      [undefined, undefined],
    ]);
  });

  it.each(['WARN', 'ERROR', 'CRITICAL'] as const)(
    'writes its lines at INFO through a logger set to %s, with the logger’s context and keys, and leaves that logger as it was',
    (logLevel) => {
      // A warm invocation of an on-demand environment: the logger's second context says cold_start false.
      vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', 'on-demand');
      const logger = new Logger({ serviceName: 'users', logLevel });
      logger.addContext(lambdaContext());
      logger.addContext(lambdaContext());
      logger.appendKeys({ correlation_id: 'request-7', tenant: 'acme' });
      const auditLogger = new AuditLogger({ logger, now: fixedNow });
      try {
        auditLogger.logAuthFailure('expired');
      } finally {
        vi.unstubAllEnvs();
      }
      logger.info('an application line the level drops');
      const lines = output.json();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        level: 'INFO',
        message: 'AUDIT auth.failure',
        service: 'users',
        function_request_id: lambdaContext().awsRequestId,
        cold_start: false,
        correlation_id: 'request-7',
        tenant: 'acme',
      });
      expect(logger.getLevelName()).toBe(logLevel);
    },
  );

  it('stays silent through a SILENT logger, and when Lambda’s own log level is above INFO', () => {
    new AuditLogger({ logger: new Logger({ logLevel: 'SILENT' }) }).logAuthFailure('expired');
    vi.stubEnv('AWS_LAMBDA_LOG_LEVEL', 'WARN');
    try {
      // No INFO child: Powertools would drop its line and warn that INFO is below Lambda's level.
      new AuditLogger({ logger: new Logger({ logLevel: 'WARN' }) }).logAuthFailure('expired');
    } finally {
      vi.unstubAllEnvs();
    }
    expect(output.json()).toEqual([]);
  });

  it('marks a reported failure as an error whatever the event type', () => {
    const auditLogger = newLogger();
    auditLogger.logSecurityEvent({
      type: 'secret.accessed',
      reason: 'AccessDenied',
      metadata: { outcome: 'error' },
    });
    expect(output.audit()[0]?.outcome).toBe('error');
  });

  it('marks a reported refusal as a failure, and takes no other outcome from metadata', () => {
    const auditLogger = newLogger();
    auditLogger.logSecurityEvent({
      type: 'apiKey.revoked',
      reason: 'no_such_key',
      metadata: { keyId: '0011223344556677', outcome: 'failure' },
    });
    auditLogger.logSecurityEvent({ type: 'apiKey.revoked', metadata: { outcome: 'unknown' } });
    expect(output.audit().map((line) => line.outcome)).toEqual(['failure', 'success']);
  });

  it('writes the outcome an admin action is given: unknown for one whose write got no answer', () => {
    const auditLogger = newLogger();
    auditLogger.logAdminAction(
      'user.deleted',
      { targetUserId: 'user-bob', reason: 'store_timeout' },
      alice,
      'unknown',
    );
    expect(output.audit()).toEqual([
      expect.objectContaining({
        eventType: 'admin.action',
        outcome: 'unknown',
        userId: 'user-alice',
        metadata: { targetUserId: 'user-bob', reason: 'store_timeout', action: 'user.deleted' },
      }),
    ]);
  });

  it('redacts metadata and free-text fields before the line and the sink see them', () => {
    const seen: AuditEvent[] = [];
    const auditLogger = newLogger({ sink: (event) => seen.push(event), redaction: { keys: ['email'] } });
    auditLogger.log({
      eventType: 'custom.operation',
      userAgent: 'agent Bearer abc123',
      metadata: { credentials: { Password: 'pw-1', nested: [{ ACCESS_TOKEN: 'tk-1' }] }, email: 'a@b.c' },
    });
    const text = `${output.lines().join('\n')}${JSON.stringify(seen)}`;
    expect(text).not.toContain('pw-1');
    expect(text).not.toContain('tk-1');
    expect(text).not.toContain('abc123');
    expect(text).not.toContain('a@b.c');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual(output.audit()[0]);
  });

  it('sends events only to the sink when console logging is off', () => {
    const sink = vi.fn();
    const auditLogger = newLogger({ sink, logToConsole: false });
    auditLogger.logAuthFailure('missing');
    expect(sink).toHaveBeenCalledOnce();
    expect(output.json()).toEqual([]);
  });

  it('never throws, whatever its logger, sink or clock does', () => {
    const failing = new AuditLogger({
      logger: {
        info: () => {
          throw new Error('transport down');
        },
      },
      sink: () => {
        throw new Error('sink down');
      },
    });
    expect(failing.logAuthFailure('expired')).toMatchObject({ eventType: 'auth.failure' });
    const brokenClock = new AuditLogger({
      now: () => {
        throw new Error('clock');
      },
    });
    expect(brokenClock.logAuthFailure('expired')).toBeUndefined();
  });

  it('writes through its own Powertools Logger when none is given', () => {
    new AuditLogger({ now: fixedNow }).logAuthFailure('expired');
    // The default logger follows POWERTOOLS_LOG_LEVEL, which the test suite sets to SILENT.
    expect(output.audit()).toEqual([]);
  });

  it('rejects invalid options, listing every problem at once', () => {
    const attempt = () =>
      new AuditLogger({
        logger: {} as Logger,
        sink: 'nope' as never,
        now: 1 as never,
        logToConsole: false,
      });
    expect(attempt).toThrow(InvalidOptionsError);
    expect(attempt).toThrow(/logger.*sink.*now/);
    expect(() => new AuditLogger({ logToConsole: false })).toThrow(/needs a sink/);
    // A null sink is none, so it is no sink for lines kept off the console either.
    expect(() => new AuditLogger({ logToConsole: false, sink: null as never })).toThrow(
      new InvalidOptionsError('AuditLogger', [
        'logToConsole: false needs a sink, or audit events go nowhere',
      ]),
    );
  });

  it('stamps events with the current time as toISOString writes it, across second boundaries', () => {
    const written: AuditEvent[] = [];
    const auditLogger = new AuditLogger({ logToConsole: false, sink: (line) => written.push(line) });
    const instants = [
      '2030-05-06T09:00:59.007Z',
      '2030-05-06T09:00:59.070Z',
      '2030-05-06T09:00:59.999Z',
      '2030-05-06T09:01:00.000Z',
      '1969-12-31T23:59:59.001Z',
      '2030-05-06T09:01:00.700Z',
    ];
    vi.useFakeTimers();
    try {
      for (const instant of instants) {
        vi.setSystemTime(new Date(instant));
        auditLogger.logAuthFailure('expired');
      }
    } finally {
      vi.useRealTimers();
    }
    expect(written.map((event) => event.timestamp)).toEqual(instants);
  });

  it('takes a null clock as none, stamping lines with the time', () => {
    const written: AuditEvent[] = [];
    const auditLogger = new AuditLogger({
      logToConsole: false,
      sink: (line) => written.push(line),
      now: null as never,
    });
    const before = Date.now();
    auditLogger.logAuthFailure('expired');
    expect(Date.parse(written[0]?.timestamp ?? '')).toBeGreaterThanOrEqual(before - 1000);
  });
});
