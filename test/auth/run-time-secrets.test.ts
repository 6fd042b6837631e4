// The sample functions' secrets read at run time: environment forms, the shared reader, signing and
// verifying across a rotation, and verification links after a rotation.
import { randomUUID } from 'node:crypto';
import {
  GetSecretValueCommand,
  InternalServiceError,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { readEnvironment } from '../../functions/shared/environment.js';
import { type RotatingSecretReader, rotatingSecretReader } from '../../functions/shared/rotating-secret.js';
import { serviceSigner } from '../../functions/shared/route-auth.js';
import {
  createVerificationLink,
  rotatingVerificationLinkProblem,
} from '../../functions/shared/verification-link.js';
import { DynamoDbNonceStore, ServiceRequestVerifier } from '../../middleware/auth/service-auth.js';
import { SecretAccessError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testTableNames } from '../helpers/tables.js';

const secretsManager = mockClient(SecretsManagerClient);
const secretArn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:BookingsSigningSecret-AbCdEf';
const first = 'a'.repeat(40);
const second = 'b'.repeat(40);
/** The secret as the rotation function keeps it. */
let stored: { current: string; previous?: string };

beforeEach(() => {
  stored = { current: first };
  secretsManager.reset();
  secretsManager
    .on(GetSecretValueCommand, { SecretId: secretArn })
    .callsFake(async () => ({ SecretString: JSON.stringify(stored) }));
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
});

const fetches = () => secretsManager.commandCalls(GetSecretValueCommand).length;

describe('signing secrets in the function environment', () => {
  it('takes a value (local runs) or an ARN read at run time (the stack), one per service', () => {
    const value = JSON.stringify({ current: first });
    expect(
      readEnvironment({ ...process.env, SERVICE_SIGNING_SECRET_BOOKINGS: value }).auth.serviceSecrets,
    ).toEqual({ bookings: { value: { current: first } } });
    expect(
      readEnvironment({ ...process.env, SERVICE_SIGNING_SECRET_ARN_BOOKINGS: secretArn }).auth.serviceSecrets,
    ).toEqual({ bookings: { secretArn } });
    expect(() =>
      readEnvironment({
        ...process.env,
        SERVICE_SIGNING_SECRET_BOOKINGS: value,
        SERVICE_SIGNING_SECRET_ARN_BOOKINGS: secretArn,
      }),
    ).toThrow(/SERVICE_SIGNING_SECRET_/);
    expect(() =>
      readEnvironment({ ...process.env, SERVICE_SIGNING_SECRET_ARN_BOOKINGS: 'BookingsSigningSecret' }),
    ).toThrow('Invalid function environment: SERVICE_SIGNING_SECRET_ARN_BOOKINGS');
  });

  it('refuses a value whose current or previous is 32 characters of whitespace, or short and padded', () => {
    for (const weak of [
      { current: ' '.repeat(32) },
      { current: `${'\t'.repeat(20)}${' '.repeat(20)}` },
      { current: first, previous: `short${' '.repeat(40)}` },
    ]) {
      expect(() =>
        readEnvironment({ ...process.env, SERVICE_SIGNING_SECRET_BOOKINGS: JSON.stringify(weak) }),
      ).toThrow('Invalid function environment: SERVICE_SIGNING_SECRET_BOOKINGS');
    }
  });
});

describe('rotatingSecretReader', () => {
  it('returns a value setting as it is, with no Secrets Manager call', async () => {
    const read = rotatingSecretReader({ value: { current: first } });
    expect(await read(true)).toEqual({ current: first });
    expect(fetches()).toBe(0);
  });

  it('reads an ARN setting once, caches it, and reports the fetch by name only', async () => {
    const events: SecurityEvent[] = [];
    const read = rotatingSecretReader({ secretArn }, (event) => events.push(event));
    vi.useFakeTimers();
    // The module keeps one store for the function: move past any cache an earlier test left.
    vi.setSystemTime(Date.now() + 3600_000);
    expect(await read(false)).toEqual({ current: first, previous: undefined });
    expect(await read(false)).toEqual({ current: first, previous: undefined });
    expect(fetches()).toBe(1);
    expect(JSON.stringify(events)).not.toContain(first);
  });

  it("keeps a secret through a Secrets Manager outage past its 5-minute cache, for the store's default hour", async () => {
    // A secret of its own: the function's one store keeps what it read for the other tests.
    const outageArn = `${secretArn}-outage`;
    secretsManager
      .on(GetSecretValueCommand, { SecretId: outageArn })
      .resolves({ SecretString: JSON.stringify({ current: first }) });
    vi.useFakeTimers();
    const read = rotatingSecretReader({ secretArn: outageArn });
    expect(await read(false)).toEqual({ current: first, previous: undefined });
    secretsManager
      .on(GetSecretValueCommand, { SecretId: outageArn })
      .rejects(new InternalServiceError({ message: 'An error occurred on the server side', $metadata: {} }));
    vi.advanceTimersByTime(301_000);
    expect(await read(false)).toEqual({ current: first, previous: undefined });
    // A mismatch's refresh, failing too, answers with the same versions instead of a 503.
    expect(await read(true)).toEqual({ current: first, previous: undefined });
    vi.advanceTimersByTime(3600_000);
    await expect(read(false)).rejects.toMatchObject({ reason: 'unreachable' });
  });

  it('refuses a secret whose current or previous value has fewer than 32 characters besides whitespace', async () => {
    // Secrets of their own: the function's one store keeps what it read for the other tests.
    const weakValues = [
      { current: '' },
      { current: first, previous: 'short' },
      { current: ' '.repeat(32) },
      { current: first, previous: `short${'\n'.repeat(40)}` },
    ];
    for (const [index, weak] of weakValues.entries()) {
      const weakArn = `${secretArn}-weak-${index}`;
      secretsManager
        .on(GetSecretValueCommand, { SecretId: weakArn })
        .resolves({ SecretString: JSON.stringify(weak) });
      const error = await rotatingSecretReader({ secretArn: weakArn })(false).catch(
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(SecretAccessError);
      expect(error).toMatchObject({ reason: 'not_rotating' });
    }
  });
});

describe('service signing across a rotation, secrets read at run time', () => {
  const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));

  it('bookings signs with the current secret and users accepts it before and after a rotation', async () => {
    vi.stubEnv('SERVICE_SIGNING_SECRET_ARN_BOOKINGS', secretArn);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 2 * 3600_000);
    const sign = serviceSigner('bookings');
    const verifier = new ServiceRequestVerifier({
      services: { bookings: { source: rotatingSecretReader({ secretArn }) } },
      nonceStore: new DynamoDbNonceStore({ client: documents, tableName: testTableNames.toolkit }),
    });
    const nonceStore = new DynamoDbNonceStore({ client: documents, tableName: testTableNames.toolkit });
    const call = async (by = verifier) => {
      const url = `/users/${randomUUID()}`;
      const headers = await sign?.({ method: 'GET', url });
      return by.verify({
        method: 'GET',
        path: url,
        rawQueryString: '',
        body: Buffer.alloc(0),
        headers: Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      });
    };
    await expect(call()).resolves.toMatchObject({ id: 'bookings', authMethod: 'service' });
    stored = { current: second, previous: first };
    // Both sides still hold the old secret from the cache: bookings signs with it, users accepts it.
    await expect(call()).resolves.toMatchObject({ id: 'bookings' });
    // Five minutes on, both read the rotated secret; no deploy was involved.
    vi.setSystemTime(Date.now() + 301_000);
    await expect(call()).resolves.toMatchObject({ id: 'bookings' });
    const onlySecond = new ServiceRequestVerifier({
      services: { bookings: { current: second } },
      nonceStore,
    });
    await expect(call(onlySecond)).resolves.toMatchObject({ id: 'bookings' });
    expect(
      secretsManager
        .commandCalls(GetSecretValueCommand)
        .every((call) => call.args[0].input.SecretId === secretArn),
    ).toBe(true);
  });
});

describe('verification links across a rotation', () => {
  const userId = 'user-1';
  const linkFor = (secret: string) => {
    const url = new URL(createVerificationLink({ baseUrl: 'https://app.example.com', userId, secret }).url);
    return {
      userId,
      expires: url.searchParams.get('expires') ?? '',
      signature: url.searchParams.get('signature') ?? '',
    };
  };

  /** A reader that serves a cached version until asked to refresh, as the SecretStore does. */
  function cachedReader(): { read: RotatingSecretReader; refreshes: () => number } {
    let cached = { ...stored };
    let refreshes = 0;
    return {
      read: async (refresh) => {
        if (refresh) {
          refreshes += 1;
          cached = { ...stored };
        }
        return cached;
      },
      refreshes: () => refreshes,
    };
  }

  it('accepts links of the current and previous secret without re-reading it', async () => {
    stored = { current: second, previous: first };
    const reader = cachedReader();
    expect(await rotatingVerificationLinkProblem(reader.read, linkFor(second))).toBeUndefined();
    expect(await rotatingVerificationLinkProblem(reader.read, linkFor(first))).toBeUndefined();
    expect(reader.refreshes()).toBe(0);
  });

  it('accepts a link signed after a rotation this container has not read yet, by reading it once', async () => {
    const reader = cachedReader();
    stored = { current: second, previous: first };
    expect(await rotatingVerificationLinkProblem(reader.read, linkFor(second))).toBeUndefined();
    expect(reader.refreshes()).toBe(1);
  });

  it('refuses a forged or malformed link, and any link where no secret is configured', async () => {
    const reader = cachedReader();
    expect(await rotatingVerificationLinkProblem(reader.read, linkFor('f'.repeat(40)))).toBe('bad_signature');
    expect(await rotatingVerificationLinkProblem(reader.read, { ...linkFor(first), expires: 'soon' })).toBe(
      'malformed',
    );
    expect(reader.refreshes()).toBe(1);
    expect(await rotatingVerificationLinkProblem(undefined, linkFor(first))).toBe('bad_signature');
  });
});
