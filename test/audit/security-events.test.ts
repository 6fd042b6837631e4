import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it } from 'vitest';
import { securityEventOutcome } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { createSecurityEventListener, securityEventMetrics } from '../../middleware/audit/security-events.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { emitEvent, type SecurityEvent, type SecurityEventType } from '../../middleware/events.js';
import { metricCatalog, metricNamespace } from '../../middleware/metrics/catalog.js';
import { createMetrics } from '../../middleware/metrics/record.js';
import { captureStdout, emfProblems, enableMetricsOutput } from '../helpers/log-capture.js';
import { alice, reportingService } from './fixtures.js';

enableMetricsOutput();
const output = captureStdout();

function listener() {
  const auditLogger = new AuditLogger({ logger: new Logger({ serviceName: 'users', logLevel: 'INFO' }) });
  const metrics = createMetrics({ serviceName: 'users' });
  return { metrics, onEvent: createSecurityEventListener({ auditLogger, metrics }) };
}

/** One example of each event, as the capabilities report them. */
const examples: Record<SecurityEventType, { event: SecurityEvent; metric?: string; audited: boolean }> = {
  'auth.success': {
    event: { type: 'auth.success', principal: alice, durationMs: 4.2 },
    metric: 'AuthSuccess',
    audited: true,
  },
  'auth.failure': {
    event: { type: 'auth.failure', reason: 'expired', durationMs: 1.5 },
    metric: 'AuthFailure',
    audited: true,
  },
  'access.denied': {
    event: { type: 'access.denied', reason: 'missing_scope', principal: reportingService },
    metric: 'AccessDenied',
    audited: true,
  },
  'apiKey.used': { event: { type: 'apiKey.used', metadata: { keyId: 'k-1' } }, audited: true },
  'apiKey.created': {
    event: { type: 'apiKey.created', metadata: { keyId: 'k-1', owner: 'alice', scopes: ['bookings/read'] } },
    audited: true,
  },
  'apiKey.revoked': { event: { type: 'apiKey.revoked', metadata: { keyId: 'k-1' } }, audited: true },
  'apiKey.rehashed': {
    event: {
      type: 'apiKey.rehashed',
      metadata: { keyId: 'k-1', fromScheme: 'sha256', toScheme: 'hmac-sha256:p1' },
    },
    audited: true,
  },
  'replay.rejected': {
    event: { type: 'replay.rejected', reason: 'nonce_reused' },
    metric: 'ReplayRejected',
    audited: true,
  },
  'csrf.rejected': {
    event: { type: 'csrf.rejected', reason: 'token_mismatch' },
    metric: 'CsrfRejected',
    audited: true,
  },
  'rateLimit.hit': {
    event: { type: 'rateLimit.hit', metadata: { policy: 'public' } },
    metric: 'RateLimited',
    audited: true,
  },
  'rateLimit.storeError': {
    event: { type: 'rateLimit.storeError', reason: 'timeout' },
    metric: 'RateLimitStoreError',
    audited: true,
  },
  'circuit.opened': {
    event: { type: 'circuit.opened', metadata: { circuit: 'users' } },
    metric: 'CircuitOpened',
    audited: true,
  },
  'circuit.halfOpen': { event: { type: 'circuit.halfOpen', metadata: { circuit: 'users' } }, audited: true },
  'circuit.closed': { event: { type: 'circuit.closed', metadata: { circuit: 'users' } }, audited: true },
  'circuit.rejected': {
    event: { type: 'circuit.rejected', metadata: { circuit: 'users' } },
    metric: 'CircuitRejected',
    audited: true,
  },
  'circuit.storeError': {
    event: { type: 'circuit.storeError', metadata: { circuit: 'users' } },
    metric: 'CircuitStoreError',
    audited: true,
  },
  'secret.accessed': {
    event: { type: 'secret.accessed', metadata: { name: 'db', outcome: 'ok' } },
    audited: true,
  },
  'dataKey.cacheHit': { event: { type: 'dataKey.cacheHit' }, metric: 'DataKeyCacheHit', audited: false },
  'kms.request': {
    event: { type: 'kms.request', metadata: { operation: 'Decrypt' } },
    metric: 'KmsRequest',
    audited: false,
  },
  'decryption.failed': {
    event: {
      type: 'decryption.failed',
      reason: 'authentication_failed',
      metadata: { field: 'email', keyId: 'local:0123456789abcdef', contextFields: ['tenantId', 'userId'] },
    },
    audited: true,
  },
  'admin.action': {
    event: { type: 'admin.action', principal: alice, metadata: { action: 'user.deleted' } },
    audited: true,
  },
};

describe('createSecurityEventListener()', () => {
  it.each(Object.entries(examples))(
    'turns %s into its audit line and its catalog metric',
    (type, example) => {
      const { metrics, onEvent } = listener();
      emitEvent(onEvent, example.event);
      metrics.publishStoredMetrics();
      const audit = output.audit();
      if (example.audited) {
        expect(audit).toHaveLength(1);
        expect(audit[0]).toMatchObject({
          eventType: type,
          outcome: securityEventOutcome[type as SecurityEventType],
        });
        if (example.event.principal) expect(audit[0]?.userId).toBe(example.event.principal.id);
        if (example.event.reason) expect(audit[0]?.metadata.reason).toBe(example.event.reason);
      } else {
        expect(audit).toEqual([]);
      }
      const lines = output.emf();
      for (const line of lines) expect(emfProblems(line, metricCatalog, metricNamespace)).toEqual([]);
      const names = lines.flatMap((line) =>
        line._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((m) => m.Name)),
      );
      expect(names.filter((name) => name !== 'AuthLatency')).toEqual(example.metric ? [example.metric] : []);
    },
  );

  it('labels failures by reason and circuits by name, and records verification latency', () => {
    const { metrics, onEvent } = listener();
    onEvent({ type: 'auth.failure', reason: 'bad signature!' });
    onEvent({ type: 'auth.failure', metadata: { reason: 'expired', durationMs: 3 } });
    onEvent({ type: 'auth.failure' });
    onEvent({ type: 'circuit.opened', metadata: { circuit: 'users' } });
    onEvent({ type: 'circuit.rejected' });
    onEvent({ type: 'auth.success', durationMs: -1 });
    metrics.publishStoredMetrics();
    const lines = output.emf();
    expect(lines.filter((l) => l.AuthFailure !== undefined).map((l) => l.reason)).toEqual([
      'bad_signature_',
      'expired',
      'unknown',
    ]);
    expect(
      lines
        .filter((l) => l.CircuitOpened !== undefined || l.CircuitRejected !== undefined)
        .map((l) => l.circuit),
    ).toEqual(['users', 'unknown']);
    const buffered = lines.find((l) => l.AuthSuccess !== undefined);
    expect(buffered?.AuthLatency).toBe(3);
  });

  it('works with only an audit logger or only metrics, and never throws', () => {
    const auditOnly = createSecurityEventListener({
      auditLogger: new AuditLogger({ logger: new Logger({ logLevel: 'INFO' }) }),
    });
    auditOnly({ type: 'rateLimit.hit' });
    expect(output.audit()).toHaveLength(1);
    const broken = createSecurityEventListener({
      metrics: {
        addMetric: () => {
          throw new Error('metrics down');
        },
      } as never,
    });
    expect(() => broken({ type: 'rateLimit.hit' })).not.toThrow();
    expect(Object.keys(securityEventMetrics).sort()).toEqual(Object.keys(securityEventOutcome).sort());
  });

  it('rejects invalid options, listing every problem at once', () => {
    expect(() => createSecurityEventListener({})).toThrow(InvalidOptionsError);
    expect(() => createSecurityEventListener({ auditLogger: {} as never, metrics: {} as never })).toThrow(
      /auditLogger.*metrics/,
    );
  });

  it('writes a failed KMS call even though kms.request is unaudited by default, and still counts each call', () => {
    const { metrics, onEvent } = listener();
    const keyId = 'arn:aws:kms:us-east-1:111122223333:key/trusted';
    onEvent({ type: 'kms.request', metadata: { operation: 'Decrypt', keyId, outcome: 'ok' } });
    onEvent({
      type: 'kms.request',
      reason: 'AccessDeniedException',
      metadata: { operation: 'Decrypt', keyId, contextFields: ['tenantId'], outcome: 'error' },
    });
    metrics.publishStoredMetrics();
    expect(output.audit()).toEqual([
      expect.objectContaining({
        eventType: 'kms.request',
        outcome: 'error',
        metadata: {
          operation: 'Decrypt',
          keyId,
          contextFields: ['tenantId'],
          outcome: 'error',
          reason: 'AccessDeniedException',
        },
      }),
    ]);
    expect(output.emf().map((line) => line.KmsRequest)).toEqual([[1, 1]]);
  });

  it('writes an unaudited event its reporter marked refused (outcome failure) as it writes one that threw', () => {
    const { onEvent } = listener();
    onEvent({
      type: 'kms.request',
      reason: 'NotAllowed',
      metadata: { operation: 'Decrypt', outcome: 'failure' },
    });
    onEvent({ type: 'kms.request', metadata: { operation: 'Decrypt', outcome: 'ok' } });
    expect(output.audit()).toEqual([
      expect.objectContaining({ eventType: 'kms.request', outcome: 'failure' }),
    ]);
  });

  it('takes unaudited as a Set too, and a null one as left out (the default types)', () => {
    const auditedTypes = (unaudited: unknown) => {
      const written: string[] = [];
      const auditLogger = new AuditLogger({
        sink: (line) => written.push(line.eventType),
        logToConsole: false,
      });
      const onEvent = createSecurityEventListener({ auditLogger, unaudited: unaudited as never });
      for (const type of ['kms.request', 'rateLimit.hit'] as const) onEvent({ type });
      return written;
    };
    expect(auditedTypes(new Set(['rateLimit.hit']))).toEqual(['kms.request']);
    expect(auditedTypes(null)).toEqual(['rateLimit.hit']);
    expect(() => auditedTypes(new Set(['kms.requests']))).toThrow(
      new InvalidOptionsError('createSecurityEventListener', [
        `unaudited entries must be event types such as 'kms.request' (got "kms.requests")`,
      ]),
    );
  });

  it('refuses unaudited given as one type, or naming a type no event has', () => {
    const auditLogger = new AuditLogger({ sink: () => {}, logToConsole: false });
    expect(() => createSecurityEventListener({ auditLogger, unaudited: 'kms.request' as never })).toThrow(
      new InvalidOptionsError('createSecurityEventListener', [
        'unaudited must be an array or a Set of event types (got "kms.request")',
      ]),
    );
    expect(() => createSecurityEventListener({ auditLogger, unaudited: ['kms.requests' as never] })).toThrow(
      new InvalidOptionsError('createSecurityEventListener', [
        `unaudited entries must be event types such as 'kms.request' (got "kms.requests")`,
      ]),
    );
  });
});
