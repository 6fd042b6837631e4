// A refused decryption or a failed KMS call is one audit line through the default listener, bulk reads included.
import { DecryptCommand } from '@aws-sdk/client-kms';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { KmsKeyProvider } from '../../middleware/encryption/kms-key-provider.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { DecryptionError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { mockKms } from './fake-kms.js';
import { flipBit, rejectionOf } from './helpers.js';

const keyId = 'arn:aws:kms:us-east-1:111122223333:key/0c7a4d2e-1111-4b5e-9f00-000000000001';
const untrustedKeyId = 'arn:aws:kms:us-east-1:999999999999:key/0c7a4d2e-9999-4b5e-9f00-000000000009';
const { kms, reset } = mockKms([keyId, untrustedKeyId]);

const email = 'alice@example.com';
const contextOf = (userId: string) => ({ tenantId: 'acme', userId });

/** The default listener (kms.request and dataKey.cacheHit unaudited) writing into `lines`. */
function auditedListener(lines: AuditEvent[]): SecurityEventListener {
  const auditLogger = new AuditLogger({ logToConsole: false, sink: (line) => lines.push(line) });
  return createSecurityEventListener({ auditLogger });
}

function kmsEncryptor(options: {
  keyId?: string;
  onEvent?: SecurityEventListener;
  providerEvents?: boolean;
}) {
  const onEvent = options.onEvent;
  const keyProvider = new KmsKeyProvider({
    keyId: options.keyId ?? keyId,
    ...(onEvent && options.providerEvents !== false ? { onEvent } : {}),
  });
  return new Encryptor({ keyProvider, keyContextFields: ['tenantId'], ...(onEvent ? { onEvent } : {}) });
}

function localEncryptor(onEvent?: SecurityEventListener, key = generateEncryptionKey()) {
  return new Encryptor({
    keyProvider: new LocalKeyProvider({ key }),
    keyContextFields: ['tenantId'],
    encoding: 'base64url',
    ...(onEvent ? { onEvent } : {}),
  });
}

/** What a line says about the failure, and that it names no context value or field value. */
function failureOf(line: AuditEvent | undefined) {
  const text = JSON.stringify(line);
  expect(text).not.toContain('acme');
  expect(text).not.toContain(email);
  return { eventType: line?.eventType, outcome: line?.outcome, metadata: line?.metadata };
}

beforeEach(() => {
  reset();
});

describe('failed KMS calls', () => {
  it.each([
    ['a changed key policy', 'AccessDeniedException', contextOf('u-1'), 'key_misconfigured'],
    [
      'a record read under another tenant',
      'InvalidCiphertextException',
      { tenantId: 'other', userId: 'u-1' },
      'authentication_failed',
    ],
  ] as const)(
    'writes one kms.request line for %s, and no decryption.failed',
    async (_, kmsError, context, reason) => {
      const stored = await kmsEncryptor({}).encryptFields({ email }, ['email'], contextOf('u-1'));
      if (kmsError === 'AccessDeniedException') {
        kms.on(DecryptCommand).rejects(Object.assign(new Error('not authorized'), { name: kmsError }));
      }
      const lines: AuditEvent[] = [];
      const reader = kmsEncryptor({ onEvent: auditedListener(lines) });
      expect(await rejectionOf(reader.decryptFields(stored, ['email'], context))).toMatchObject({ reason });
      expect(lines.map(failureOf)).toEqual([
        {
          eventType: 'kms.request',
          outcome: 'error',
          metadata: {
            operation: 'Decrypt',
            keyId,
            contextFields: ['tenantId'],
            outcome: 'error',
            reason: kmsError,
          },
        },
      ]);
    },
  );

  it('leaves a successful KMS call unaudited', async () => {
    const lines: AuditEvent[] = [];
    const encryptor = kmsEncryptor({ onEvent: auditedListener(lines) });
    const stored = await encryptor.encryptFields({ email }, ['email'], contextOf('u-1'));
    await kmsEncryptor({ onEvent: auditedListener(lines) }).decryptFields(
      stored,
      ['email'],
      contextOf('u-1'),
    );
    expect(lines).toEqual([]);
  });

  it('writes decryption.failed instead when the key provider reports to no listener', async () => {
    const stored = await kmsEncryptor({}).encryptFields({ email }, ['email'], contextOf('u-1'));
    kms
      .on(DecryptCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    const lines: AuditEvent[] = [];
    const reader = kmsEncryptor({ onEvent: auditedListener(lines), providerEvents: false });
    await rejectionOf(reader.decryptFields(stored, ['email'], contextOf('u-1')));
    expect(lines.map(failureOf)).toEqual([
      {
        eventType: 'decryption.failed',
        outcome: 'error',
        metadata: {
          providerId: 'aws-kms',
          keyId,
          keyContextFields: ['tenantId'],
          contextFields: ['tenantId', 'userId'],
          outcome: 'error',
          reason: 'key_misconfigured',
        },
      },
    ]);
  });
});

describe('decryption.failed', () => {
  it('reports a header naming a KMS key that is not trusted (no KMS call is made)', async () => {
    const forged = await kmsEncryptor({ keyId: untrustedKeyId }).encryptFields(
      { email },
      ['email'],
      contextOf('u-1'),
    );
    const lines: AuditEvent[] = [];
    const reader = kmsEncryptor({ onEvent: auditedListener(lines) });
    expect(await rejectionOf(reader.decryptFields(forged, ['email'], contextOf('u-1')))).toMatchObject({
      reason: 'key_not_allowed',
    });
    expect(kms.commandCalls(DecryptCommand)).toHaveLength(0);
    expect(lines.map(failureOf)).toEqual([
      {
        eventType: 'decryption.failed',
        outcome: 'failure',
        metadata: {
          providerId: 'aws-kms',
          keyId: untrustedKeyId,
          keyContextFields: ['tenantId'],
          contextFields: ['tenantId', 'userId'],
          reason: 'key_not_allowed',
        },
      },
    ]);
  });

  it('reports a field that fails AES-GCM authentication, naming the field, once', async () => {
    const lines: AuditEvent[] = [];
    const encryptor = localEncryptor(auditedListener(lines));
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      { email },
      ['email'],
      contextOf('u-1'),
    );
    const tampered = { ...stored, email: flipBit(Buffer.from(stored.email as string, 'base64url'), -1) };
    const error = await rejectionOf(encryptor.decryptFields(tampered, ['email'], contextOf('u-1')));
    expect(error).toBeInstanceOf(DecryptionError);
    expect(lines.map(failureOf)).toEqual([
      {
        eventType: 'decryption.failed',
        outcome: 'failure',
        metadata: {
          field: 'email',
          providerId: 'local',
          keyId: expect.stringMatching(/^local:[0-9a-f]{16}$/),
          keyContextFields: ['tenantId'],
          contextFields: ['tenantId', 'userId'],
          reason: 'authentication_failed',
        },
      },
    ]);
  });

  it('reports a record read under another tenant’s context (the local key unwrap refuses it)', async () => {
    const lines: AuditEvent[] = [];
    const encryptor = localEncryptor(auditedListener(lines));
    const stored = await encryptor.encryptFields({ email }, ['email'], contextOf('u-1'));
    encryptor.clearCaches();
    const error = await rejectionOf(
      encryptor.decryptFields(stored, ['email'], { tenantId: 'other', userId: 'u-1' }),
    );
    expect(error).toMatchObject({ reason: 'authentication_failed' });
    expect(lines.map((line) => [line.eventType, line.metadata.reason, line.metadata.field])).toEqual([
      ['decryption.failed', 'authentication_failed', undefined],
    ]);
  });

  it('reports nothing for records that decrypt', async () => {
    const lines: AuditEvent[] = [];
    const encryptor = localEncryptor(auditedListener(lines));
    const stored = await encryptor.encryptFields({ email }, ['email'], contextOf('u-1'));
    encryptor.clearCaches();
    expect(await encryptor.decryptFields(stored, ['email'], contextOf('u-1'))).toEqual({ email });
    expect(lines).toEqual([]);
  });
});

describe('bulk reads', () => {
  const userIds = Array.from({ length: 100 }, (_, index) => `u-${index}`);

  it('writes one line for the one tampered record of a page of 100', async () => {
    const lines: AuditEvent[] = [];
    const encryptor = localEncryptor(auditedListener(lines));
    const stored: Record<string, unknown>[] = await Promise.all(
      userIds.map((id) => encryptor.encryptFields({ id, email }, ['email'], contextOf(id))),
    );
    const victim = stored[42] as Record<string, unknown>;
    stored[42] = { ...victim, email: flipBit(Buffer.from(victim.email as string, 'base64url'), -1) };
    const results = await Promise.allSettled(
      stored.map((record, index) =>
        encryptor.decryptFields(record, ['email'], contextOf(userIds[index] as string)),
      ),
    );
    expect(results.filter((result) => result.status === 'rejected')).toHaveLength(1);
    expect(lines.map((line) => [line.eventType, line.metadata.reason])).toEqual([
      ['decryption.failed', 'authentication_failed'],
    ]);
  });

  it('writes one line when the page’s shared data key cannot be unwrapped, not one per record', async () => {
    const writer = kmsEncryptor({});
    const stored = await Promise.all(
      userIds.map((id) => writer.encryptFields({ id, email }, ['email'], contextOf(id))),
    );
    for (const providerEvents of [true, false]) {
      // A fresh error each round, as the SDK throws: one already reported would not be reported again.
      const denied = Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });
      kms.on(DecryptCommand).rejects(denied);
      const lines: AuditEvent[] = [];
      const reader = kmsEncryptor({ onEvent: auditedListener(lines), providerEvents });
      const results = await Promise.allSettled(
        stored.map((record, index) =>
          reader.decryptFields(record, ['email'], contextOf(userIds[index] as string)),
        ),
      );
      expect(results.every((result) => result.status === 'rejected')).toBe(true);
      expect(lines.map((line) => [line.eventType, line.metadata.reason])).toEqual([
        providerEvents
          ? ['kms.request', 'AccessDeniedException']
          : ['decryption.failed', 'key_misconfigured'],
      ]);
    }
  });
});
