// SecretStore through aws-sdk-client-mock: caching, version stages, rotation with dual acceptance, audit events.
import {
  DecryptionFailure,
  GetSecretValueCommand,
  type GetSecretValueCommandInput,
  InternalServiceError,
  InvalidParameterException,
  InvalidRequestException,
  ResourceNotFoundException,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { configureSecretStore, getSecret, SecretStore } from '../../middleware/config/secrets.js';
import { InvalidOptionsError, SecretAccessError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { renderProblem } from '../../middleware/http/problem.js';

const secretsManager = mockClient(SecretsManagerClient);

/** Versions by stage, as Secrets Manager would hold them; a rotation moves AWSCURRENT to AWSPREVIOUS. */
let versions: Record<string, string | Uint8Array>;

function rotate(next: string): void {
  versions = { AWSPREVIOUS: versions.AWSCURRENT as string, AWSCURRENT: next };
}

/** While set, every call ends as this answer does (an outage: an error, or a promise that hangs). */
let outage: (() => Promise<never>) | undefined;

/** While set, the next call for that version stage answers what it holds when asked, but only once `until` resolves. */
let slowAnswer: { readonly versionStage: string; readonly until: Promise<void> } | undefined;

beforeEach(() => {
  versions = { AWSCURRENT: 'secret-v1' };
  outage = undefined;
  slowAnswer = undefined;
  secretsManager.reset();
  secretsManager.on(GetSecretValueCommand).callsFake(async (input: GetSecretValueCommandInput) => {
    if (outage) return outage();
    if (input.SecretId !== 'webhook-key' && input.SecretId !== 'binary-key') {
      throw new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: {},
      });
    }
    const versionStage = input.VersionStage ?? 'AWSCURRENT';
    const value = versions[versionStage];
    if (slowAnswer?.versionStage === versionStage) {
      const { until } = slowAnswer;
      slowAnswer = undefined;
      await until;
    }
    if (value === undefined) {
      throw new ResourceNotFoundException({ message: 'No version with that staging label', $metadata: {} });
    }
    return typeof value === 'string' ? { SecretString: value } : { SecretBinary: value };
  });
});

afterEach(() => {
  vi.useRealTimers();
});

const fetches = () => secretsManager.commandCalls(GetSecretValueCommand).length;

describe('SecretStore.getSecret', () => {
  it('reads AWSCURRENT and serves it from the cache until maxAge passes', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(1);
    expect(secretsManager.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toEqual({
      SecretId: 'webhook-key',
      VersionStage: 'AWSCURRENT',
    });
    rotate('secret-v2');
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(fetches()).toBe(2);
  });

  it('gives each caller a value no older than its own maxAgeSec, whoever filled the cache', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 30 });
    // A caller content with 5 minutes fills the cache; Powertools keeps the value for those 5 minutes.
    expect(await store.getSecret('webhook-key', { maxAgeSec: 300 })).toBe('secret-v1');
    rotate('secret-v2');
    vi.advanceTimersByTime(10_000);
    expect(await store.getSecret('webhook-key', { maxAgeSec: 60 })).toBe('secret-v1');
    expect(fetches()).toBe(1);
    vi.advanceTimersByTime(110_000);
    // 2 minutes on: past the store's 30 s and a 60 s caller's, still inside the first caller's 5 minutes.
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(await store.getSecret('webhook-key', { maxAgeSec: 300 })).toBe('secret-v2');
    expect(fetches()).toBe(2);
  });

  it('makes one request for concurrent first reads of a secret', async () => {
    const store = new SecretStore();
    const values = await Promise.all(Array.from({ length: 10 }, () => store.getSecret('webhook-key')));
    expect(values).toEqual(Array(10).fill('secret-v1'));
    expect(fetches()).toBe(1);
    const rotating = await Promise.all(
      Array.from({ length: 5 }, () => store.getSecretVersions('webhook-key')),
    );
    expect(rotating[4]).toEqual({ current: 'secret-v1', previous: undefined });
    expect(fetches()).toBe(2);
  });

  it('caches each version stage apart (Powertools 2.35 keys its cache by name only)', async () => {
    rotate('secret-v2');
    const store = new SecretStore();
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(await store.getSecret('webhook-key', { versionStage: 'AWSPREVIOUS' })).toBe('secret-v1');
    expect(await store.getSecret('webhook-key', { versionStage: 'AWSPREVIOUS' })).toBe('secret-v1');
    expect(fetches()).toBe(2);
  });

  it('re-reads on forceFetch', async () => {
    const store = new SecretStore();
    await store.getSecret('webhook-key');
    rotate('secret-v2');
    expect(await store.getSecret('webhook-key', { forceFetch: true })).toBe('secret-v2');
  });

  it('reports each fetch with the name and version stage, never the value', async () => {
    const events: SecurityEvent[] = [];
    const store = new SecretStore({ onEvent: (event) => events.push(event) });
    await store.getSecret('webhook-key');
    await store.getSecret('webhook-key');
    await store.getSecret('missing').catch(() => undefined);
    expect(events).toEqual([
      {
        type: 'secret.accessed',
        metadata: { name: 'webhook-key', versionStage: 'AWSCURRENT', outcome: 'ok' },
      },
      {
        type: 'secret.accessed',
        reason: 'ResourceNotFoundException',
        metadata: { name: 'missing', versionStage: 'AWSCURRENT', outcome: 'error' },
      },
    ]);
    expect(JSON.stringify(events)).not.toContain('secret-v1');
  });

  it('fails with typed reasons: not found, misconfigured, not text', async () => {
    const store = new SecretStore();
    await expect(store.getSecret('missing')).rejects.toMatchObject({
      name: 'SecretAccessError',
      code: 'SECRET_UNAVAILABLE',
      reason: 'not_found',
      secretName: 'missing',
      versionStage: 'AWSCURRENT',
    });
    versions = { AWSCURRENT: new Uint8Array([1, 2, 3]) };
    await expect(store.getSecret('binary-key')).rejects.toMatchObject({ reason: 'not_text' });
    secretsManager
      .on(GetSecretValueCommand)
      .rejects(new DecryptionFailure({ message: 'kms', $metadata: {} }));
    await expect(store.getSecret('webhook-key', { forceFetch: true })).rejects.toMatchObject({
      reason: 'misconfigured',
    });
  });

  it.each([
    new SecretsManagerServiceException({
      name: 'AccessDeniedException',
      message: 'not authorized to perform: secretsmanager:GetSecretValue',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    }),
    new DecryptionFailure({
      message: "Secrets Manager can't decrypt the protected secret text",
      $metadata: {},
    }),
    new InvalidRequestException({ message: 'the secret was marked for deletion', $metadata: {} }),
    new InvalidParameterException({ message: 'invalid VersionStage', $metadata: {} }),
    // Credentials the service does not know, and a fault of ours: no retry helps either.
    new SecretsManagerServiceException({
      name: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    }),
    new TypeError('Cannot read properties of undefined'),
  ])('fails with misconfigured, a 500 server fault, when Secrets Manager answers $name', async (refusal) => {
    secretsManager.on(GetSecretValueCommand).rejects(refusal);
    const error = await new SecretStore().getSecret('webhook-key').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ reason: 'misconfigured' });
    const rendered = renderProblem(error);
    expect(rendered).toMatchObject({ isServerFault: true, isDegraded: false });
    expect(rendered.response.statusCode).toBe(500);
    expect(rendered.response.headers['Retry-After']).toBeUndefined();
  });

  it.each([
    new SecretsManagerServiceException({
      name: 'ThrottlingException',
      message: 'Rate exceeded',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    }),
    new InternalServiceError({ message: 'An error occurred on the server side', $metadata: {} }),
    // The SDK's retry step gives every error of a call `$metadata`, a timeout of its HTTP handler too.
    Object.assign(new Error('connect ETIMEDOUT'), { name: 'TimeoutError', $metadata: { attempts: 3 } }),
    Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
  ])(
    'stays unreachable, a 503 with Retry-After, when Secrets Manager fails with $message',
    async (failure) => {
      secretsManager.on(GetSecretValueCommand).rejects(failure);
      const error = await new SecretStore().getSecret('webhook-key').catch((caught: unknown) => caught);
      expect(error).toMatchObject({ reason: 'unreachable' });
      const rendered = renderProblem(error);
      expect(rendered).toMatchObject({ isServerFault: false, isDegraded: true });
      expect(rendered.response.statusCode).toBe(503);
      expect(rendered.response.headers['Retry-After']).toBe('5');
    },
  );

  it('parses JSON secrets and refuses other text without quoting it', async () => {
    versions = { AWSCURRENT: '{"API_TOKEN":"t0ken-value"}' };
    const store = new SecretStore();
    expect(await store.getJsonSecret('webhook-key')).toEqual({ API_TOKEN: 't0ken-value' });
    for (const text of ['not json at all: hunter2', '[1,2]', 'null']) {
      versions = { AWSCURRENT: text };
      const error = await store
        .getJsonSecret('webhook-key', { forceFetch: true })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SecretAccessError);
      expect(error).toMatchObject({ reason: 'not_json' });
      expect(String(error)).not.toContain('hunter2');
    }
  });
});

describe('rotation with dual acceptance', () => {
  it('returns both versions, the previous one absent before the first rotation', async () => {
    const store = new SecretStore();
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    rotate('secret-v2');
    store.clearCache();
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v2',
      previous: 'secret-v1',
    });
  });

  it('reads AWSPREVIOUS only when the current version does not match, so it needs nothing else while AWSPREVIOUS fails', async () => {
    rotate('secret-v2');
    secretsManager
      .on(GetSecretValueCommand, { VersionStage: 'AWSPREVIOUS' })
      .rejects(new InternalServiceError({ message: 'An error occurred on the server side', $metadata: {} }));
    const store = new SecretStore();
    const checks = Array.from({ length: 5 }, () =>
      store.matchVersion('webhook-key', (secret) => secret === 'secret-v2'),
    );
    expect(await Promise.all(checks)).toEqual(Array(5).fill('AWSCURRENT'));
    expect(fetches()).toBe(1);
    // A value made with the previous version cannot be told from a forged one while it cannot be read.
    await expect(store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).rejects.toMatchObject(
      {
        reason: 'unreachable',
        versionStage: 'AWSPREVIOUS',
      },
    );
  });

  it('caches the absence of a previous version as long as a value, so a secret never rotated is read once per stage', async () => {
    vi.useFakeTimers();
    const events: SecurityEvent[] = [];
    const store = new SecretStore({ maxAgeSec: 60, onEvent: (event) => events.push(event) });
    for (let call = 0; call < 100; call += 1) {
      expect(await store.getSecretVersions('webhook-key')).toEqual({
        current: 'secret-v1',
        previous: undefined,
      });
    }
    expect(fetches()).toBe(2);
    expect(events).toHaveLength(2);
    rotate('secret-v2');
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    expect(fetches()).toBe(2);
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v2',
      previous: 'secret-v1',
    });
    expect(fetches()).toBe(4);
  });

  it('does not hide a failure to read the previous version', async () => {
    secretsManager.on(GetSecretValueCommand, { VersionStage: 'AWSPREVIOUS' }).rejects(
      new SecretsManagerServiceException({
        name: 'ThrottlingException',
        message: 'Rate exceeded',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await expect(new SecretStore().getSecretVersions('webhook-key')).rejects.toMatchObject({
      reason: 'unreachable',
    });
  });

  it('accepts a value made with the previous version while a rotation settles', async () => {
    rotate('secret-v2');
    const store = new SecretStore();
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v2')).toBe('AWSCURRENT');
    expect(await store.matchVersion('webhook-key', async (secret) => secret === 'secret-v1')).toBe(
      'AWSPREVIOUS',
    );
    expect(await store.matchVersion('webhook-key', () => false)).toBeUndefined();
    // The type says the same, so a caller's switch on the stage is checked for typos.
    expectTypeOf(store.matchVersion).returns.resolves.toEqualTypeOf<
      'AWSCURRENT' | 'AWSPREVIOUS' | undefined
    >();
  });

  it('re-reads a rotated secret once when nothing matches, rate-limited against bad requests', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ refreshOnMismatchSec: 30 });
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).toBe('AWSCURRENT');
    rotate('secret-v2');
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v2')).toBe('AWSCURRENT');
    const afterRefresh = fetches();
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'forged')).toBeUndefined();
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'forged')).toBeUndefined();
    expect(fetches()).toBe(afterRefresh);
    rotate('secret-v3');
    vi.advanceTimersByTime(31_000);
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v3')).toBe('AWSCURRENT');
  });

  it('finds a value of the newly previous version after a refresh, though its absence was cached', async () => {
    const store = new SecretStore({ refreshOnMismatchSec: 0 });
    expect((await store.getSecretVersions('webhook-key')).previous).toBeUndefined();
    versions = { AWSCURRENT: 'secret-v3', AWSPREVIOUS: 'secret-v2' };
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v2')).toBe('AWSPREVIOUS');
    const afterRefresh = fetches();
    expect((await store.getSecretVersions('webhook-key')).previous).toBe('secret-v2');
    expect(fetches()).toBe(afterRefresh);
  });
});

describe("getRotatingSecret: the rotation function's { current, previous } shape", () => {
  const useStored = (value: string) =>
    secretsManager.on(GetSecretValueCommand, { SecretId: 'rotating-key' }).resolves({ SecretString: value });

  it('returns both values, previous absent before the first rotation, cached until maxAge', async () => {
    vi.useFakeTimers();
    useStored(JSON.stringify({ current: 'secret-v1' }));
    const store = new SecretStore({ maxAgeSec: 60 });
    expect(await store.getRotatingSecret('rotating-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    useStored(JSON.stringify({ current: 'secret-v2', previous: 'secret-v1' }));
    expect(await store.getRotatingSecret('rotating-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    vi.advanceTimersByTime(61_000);
    expect(await store.getRotatingSecret('rotating-key')).toEqual({
      current: 'secret-v2',
      previous: 'secret-v1',
    });
    expect(fetches()).toBe(2);
  });

  it('re-reads on refresh at most once per refreshOnMismatchSec', async () => {
    vi.useFakeTimers();
    useStored(JSON.stringify({ current: 'secret-v1' }));
    const store = new SecretStore({ refreshOnMismatchSec: 30 });
    await store.getRotatingSecret('rotating-key');
    useStored(JSON.stringify({ current: 'secret-v2', previous: 'secret-v1' }));
    expect((await store.getRotatingSecret('rotating-key', { refresh: true })).current).toBe('secret-v2');
    useStored(JSON.stringify({ current: 'secret-v3', previous: 'secret-v2' }));
    expect((await store.getRotatingSecret('rotating-key', { refresh: true })).current).toBe('secret-v2');
    expect(fetches()).toBe(2);
    vi.advanceTimersByTime(30_000);
    expect((await store.getRotatingSecret('rotating-key', { refresh: true })).current).toBe('secret-v3');
  });

  it.each([
    ['no current', JSON.stringify({ previous: 'secret-v1' })],
    ['a non-string current', JSON.stringify({ current: 42 })],
    ['a non-string previous', JSON.stringify({ current: 'secret-v2', previous: ['secret-v1'] })],
  ])('refuses a secret with %s as not_rotating, without quoting it', async (_label, value) => {
    useStored(value);
    const error = await new SecretStore()
      .getRotatingSecret('rotating-key')
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SecretAccessError);
    expect(error).toMatchObject({ reason: 'not_rotating', secretName: 'rotating-key' });
    expect(String((error as Error).message)).not.toContain('secret-v');
  });
});

/** The event of a read of `webhook-key` answered with its value from `ageSec` ago. */
function staleRead(
  staleReason: 'fetch_failed' | 'retry_backoff',
  ageSec: number,
  versionStage = 'AWSCURRENT',
): SecurityEvent {
  return {
    type: 'secret.accessed',
    reason: 'unreachable',
    metadata: { name: 'webhook-key', versionStage, outcome: 'stale', staleReason, ageSec },
  };
}

/**
 * Starts `ask` with Secrets Manager's answer for `versionStage` held back, then rotates the secret and
 * clears the cache while it waits (an emergency rotation); returns that read and the release of its answer.
 */
async function clearWhileFetching<T>(
  store: SecretStore,
  versionStage: string,
  ask: () => Promise<T>,
): Promise<{ readonly askedBefore: Promise<T>; readonly answer: () => void }> {
  let answer: () => void = () => {};
  slowAnswer = { versionStage, until: new Promise((resolve) => (answer = resolve)) };
  const askedBefore = ask();
  await vi.advanceTimersByTimeAsync(0);
  rotate('secret-v2');
  store.clearCache();
  return { askedBefore, answer };
}

describe('stale-if-error: the last good value while Secrets Manager is unreachable', () => {
  const serverError = () =>
    new InternalServiceError({ message: 'An error occurred on the server side', $metadata: {} });
  const failWith = (error: Error) => {
    outage = () => Promise.reject(error);
  };

  it('serves the last value up to staleIfErrorSec past maxAge, reported as stale, then fails with unreachable', async () => {
    vi.useFakeTimers();
    const events: SecurityEvent[] = [];
    const store = new SecretStore({
      maxAgeSec: 60,
      staleIfErrorSec: 600,
      onEvent: (event) => events.push(event),
    });
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
    expect(events.at(-1)).toEqual(staleRead('fetch_failed', 61));
    expect(JSON.stringify(events)).not.toContain('secret-v1');
    vi.advanceTimersByTime(598_000);
    // 659 s after the fetch: inside maxAge + staleIfErrorSec.
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    vi.advanceTimersByTime(3000);
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({
      name: 'SecretAccessError',
      reason: 'unreachable',
    });
  });

  it('fails with unreachable at maxAge when staleIfErrorSec is 0', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60, staleIfErrorSec: 0 });
    await store.getSecret('webhook-key');
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason: 'unreachable' });
  });

  it('with staleIfErrorSec 0 still answers a reader within its own maxAge when a shorter one expired the cache', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300, staleIfErrorSec: 0 });
    await store.getSecret('webhook-key', { maxAgeSec: 10 });
    failWith(serverError());
    vi.advanceTimersByTime(11_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    await expect(store.getSecret('webhook-key', { maxAgeSec: 10 })).rejects.toMatchObject({
      reason: 'unreachable',
    });
  });

  it('defaults to an hour past maxAge', async () => {
    vi.useFakeTimers();
    const store = new SecretStore();
    await store.getSecret('webhook-key');
    failWith(serverError());
    vi.advanceTimersByTime((300 + 3600) * 1000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    vi.advanceTimersByTime(31_000);
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason: 'unreachable' });
  });

  it.each([
    ['not_found', new ResourceNotFoundException({ message: 'deleted', $metadata: {} })],
    ['misconfigured', new DecryptionFailure({ message: 'kms', $metadata: {} })],
    [
      'misconfigured',
      new InvalidRequestException({ message: 'the secret was marked for deletion', $metadata: {} }),
    ],
  ])('never serves a secret stale once Secrets Manager answers %s (%s)', async (reason, refusal) => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    await store.getSecret('webhook-key');
    failWith(refusal);
    vi.advanceTimersByTime(61_000);
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason });
    // An outage right after does not bring the refused value back.
    failWith(serverError());
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason: 'unreachable' });
  });

  it('fails with unreachable for a secret never fetched (a cold start during an outage), at once while it backs off', async () => {
    vi.useFakeTimers();
    const store = new SecretStore();
    await store.getSecret('webhook-key');
    failWith(serverError());
    const callsBefore = fetches();
    await expect(store.getSecret('binary-key')).rejects.toMatchObject({ reason: 'unreachable' });
    expect(fetches()).toBe(callsBefore + 1);
    // Nothing to stand in: the next read fails without waiting out another failing fetch.
    await expect(store.getSecret('binary-key')).rejects.toMatchObject({ reason: 'unreachable' });
    expect(fetches()).toBe(callsBefore + 1);
    vi.advanceTimersByTime(1000);
    await expect(store.getSecret('binary-key')).rejects.toMatchObject({ reason: 'unreachable' });
    expect(fetches()).toBe(callsBefore + 2);
  });

  it('backs off after a failed fetch: no call while it lasts, one after it, doubling', async () => {
    vi.useFakeTimers();
    const events: SecurityEvent[] = [];
    const store = new SecretStore({ maxAgeSec: 60, onEvent: (event) => events.push(event) });
    await store.getSecret('webhook-key');
    failWith(
      new SecretsManagerServiceException({
        name: 'ThrottlingException',
        message: 'Rate exceeded',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
    for (let read = 0; read < 5; read += 1) expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
    vi.advanceTimersByTime(1000);
    await store.getSecret('webhook-key');
    expect(fetches()).toBe(3);
    // The second failure waits 2 s.
    vi.advanceTimersByTime(1000);
    await store.getSecret('webhook-key');
    expect(fetches()).toBe(3);
    vi.advanceTimersByTime(1000);
    await store.getSecret('webhook-key');
    expect(fetches()).toBe(4);
    // 4 s, 8 s, 16 s, then never more than 30 s between tries.
    for (const waitMs of [4000, 8000, 16_000, 30_000, 30_000]) {
      vi.advanceTimersByTime(waitMs - 1);
      await store.getSecret('webhook-key');
      const before = fetches();
      vi.advanceTimersByTime(1);
      await store.getSecret('webhook-key');
      expect(fetches(), `after waiting ${waitMs} ms`).toBe(before + 1);
    }
  });

  it('holds the backoff for a read whose maxAge has not run out when a shorter-maxAge caller filled the cache', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300 });
    // Powertools keeps this value 10 s, though readers with the store's 300 s would use it longer.
    await store.getSecret('webhook-key', { maxAgeSec: 10 });
    failWith(serverError());
    vi.advanceTimersByTime(20_000);
    for (let read = 0; read < 10; read += 1) expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
    vi.advanceTimersByTime(1000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(3);
  });

  it('reports the first read served stale after each failed fetch, not every one', async () => {
    vi.useFakeTimers();
    const events: SecurityEvent[] = [];
    const store = new SecretStore({ maxAgeSec: 60, onEvent: (event) => events.push(event) });
    await store.getSecret('webhook-key');
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    const staleEvents = () => events.filter((event) => event.metadata?.outcome === 'stale');
    // Concurrent reads share the failed fetch, then many more come during its backoff.
    await Promise.all(Array.from({ length: 5 }, () => store.getSecret('webhook-key')));
    vi.advanceTimersByTime(500);
    for (let read = 0; read < 1000; read += 1) await store.getSecret('webhook-key');
    expect(fetches()).toBe(2);
    expect(staleEvents()).toEqual([staleRead('fetch_failed', 61)]);
    // The next failed fetch, 1 s on, is reported once again.
    vi.advanceTimersByTime(500);
    for (let read = 0; read < 100; read += 1) await store.getSecret('webhook-key');
    expect(fetches()).toBe(3);
    expect(staleEvents()).toHaveLength(2);
    expect(staleEvents()[1]?.metadata).toMatchObject({ staleReason: 'fetch_failed', ageSec: 62 });
  });

  it('reports stale reads per version stage', async () => {
    vi.useFakeTimers();
    rotate('secret-v2');
    const events: SecurityEvent[] = [];
    const store = new SecretStore({ maxAgeSec: 60, onEvent: (event) => events.push(event) });
    await store.getSecretVersions('webhook-key');
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    for (let read = 0; read < 10; read += 1) {
      expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).toBe('AWSPREVIOUS');
    }
    expect(
      events
        .filter((event) => event.metadata?.outcome === 'stale')
        .map((event) => event.metadata?.versionStage),
    ).toEqual(['AWSCURRENT', 'AWSPREVIOUS']);
  });

  it('reports a read served stale during the backoff when the failed fetch served none', async () => {
    vi.useFakeTimers();
    const events: SecurityEvent[] = [];
    const store = new SecretStore({
      maxAgeSec: 300,
      staleIfErrorSec: 60,
      onEvent: (event) => events.push(event),
    });
    await store.getSecret('webhook-key', { maxAgeSec: 10 });
    failWith(serverError());
    vi.advanceTimersByTime(80_000);
    // Too old for this caller's maxAge and stale-if-error: its failed fetch serves nothing stale.
    await expect(store.getSecret('webhook-key', { maxAgeSec: 10 })).rejects.toMatchObject({
      reason: 'unreachable',
    });
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
    expect(events.filter((event) => event.metadata?.outcome === 'stale')).toEqual([
      staleRead('retry_backoff', 80),
    ]);
  });

  it('makes concurrent reads share one hanging fetch, then answers from the stale value without waiting', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    await store.getSecret('webhook-key');
    let timeOut: (error: Error) => void = () => {};
    const hanging = new Promise<never>((_resolve, reject) => {
      timeOut = reject;
    });
    outage = () => hanging;
    vi.advanceTimersByTime(61_000);
    const reads = Promise.all(Array.from({ length: 5 }, () => store.getSecret('webhook-key')));
    await vi.advanceTimersByTimeAsync(0);
    expect(fetches()).toBe(2);
    // The SDK's request timeout ends the hang.
    timeOut(
      Object.assign(new Error('request timed out'), { name: 'TimeoutError', $metadata: { attempts: 3 } }),
    );
    expect(await reads).toEqual(Array(5).fill('secret-v1'));
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    expect(fetches()).toBe(2);
  });

  it('replaces the stale value once Secrets Manager answers again', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    await store.getSecret('webhook-key');
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    outage = undefined;
    rotate('secret-v2');
    vi.advanceTimersByTime(1000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(fetches()).toBe(3);
    // The next outage falls back on the new value, and its backoff starts again at 1 s.
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    vi.advanceTimersByTime(1000);
    await store.getSecret('webhook-key');
    expect(fetches()).toBe(5);
  });

  it('keeps dual acceptance through an outage; a forced refresh that fails serves the stale versions, rate-limited', async () => {
    vi.useFakeTimers();
    rotate('secret-v2');
    const store = new SecretStore({ maxAgeSec: 60, refreshOnMismatchSec: 30 });
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).toBe('AWSPREVIOUS');
    expect(fetches()).toBe(2);
    failWith(serverError());
    // A mismatch forces a refresh of both versions, which fails: the stale versions answer it, no 503.
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'forged')).toBeUndefined();
    expect(fetches()).toBe(4);
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'forged')).toBeUndefined();
    expect(fetches()).toBe(4);
    vi.advanceTimersByTime(61_000);
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).toBe('AWSPREVIOUS');
  });

  it('refuses the versions when Secrets Manager refuses AWSPREVIOUS, rather than take a known absence for it', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    expect((await store.getSecretVersions('webhook-key')).previous).toBeUndefined();
    secretsManager.on(GetSecretValueCommand, { VersionStage: 'AWSPREVIOUS' }).rejects(
      new SecretsManagerServiceException({
        name: 'AccessDeniedException',
        message: 'not authorized to perform: secretsmanager:GetSecretValue',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    vi.advanceTimersByTime(61_000);
    await expect(store.getSecretVersions('webhook-key')).rejects.toMatchObject({
      reason: 'misconfigured',
      versionStage: 'AWSPREVIOUS',
    });
  });

  it('keeps a secret never rotated without a previous version through an outage', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 60 });
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    failWith(serverError());
    vi.advanceTimersByTime(61_000);
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    expect(fetches()).toBe(4);
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    expect(fetches()).toBe(4);
  });

  it("serves the rotation function's shape stale, on a refresh too", async () => {
    vi.useFakeTimers();
    versions = { AWSCURRENT: JSON.stringify({ current: 'secret-v1' }) };
    const store = new SecretStore({ maxAgeSec: 60 });
    await store.getRotatingSecret('webhook-key');
    failWith(serverError());
    expect(await store.getRotatingSecret('webhook-key', { refresh: true })).toEqual({
      current: 'secret-v1',
      previous: undefined,
    });
    vi.advanceTimersByTime(301_000);
    expect((await store.getRotatingSecret('webhook-key')).current).toBe('secret-v1');
  });

  it('clearCache leaves a fetch under way behind: a read after it fetches anew, and the earlier answer is not kept', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300 });
    const { askedBefore, answer } = await clearWhileFetching(store, 'AWSCURRENT', () =>
      store.getSecret('webhook-key'),
    );
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    answer();
    expect(await askedBefore).toBe('secret-v1');
    expect(fetches()).toBe(2);
    vi.advanceTimersByTime(60_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
    expect(fetches()).toBe(2);
    // Nor does the earlier answer stand in during an outage.
    failWith(serverError());
    vi.advanceTimersByTime(241_000);
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
  });

  it('clearCache leaves behind a fetch under way that finds no previous version', async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300 });
    const { askedBefore, answer } = await clearWhileFetching(store, 'AWSPREVIOUS', () =>
      store.getSecretVersions('webhook-key'),
    );
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v2',
      previous: 'secret-v1',
    });
    answer();
    expect((await askedBefore).previous).toBeUndefined();
    expect(await store.getSecretVersions('webhook-key')).toEqual({
      current: 'secret-v2',
      previous: 'secret-v1',
    });
  });

  it('forgets stale values on clearCache', async () => {
    const store = new SecretStore();
    await store.getSecret('webhook-key');
    failWith(serverError());
    store.clearCache();
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason: 'unreachable' });
  });
});

describe("Secrets Manager's refusal ends a cached secret at once", () => {
  const accessDenied = () =>
    new SecretsManagerServiceException({
      name: 'AccessDeniedException',
      message: 'not authorized to perform secretsmanager:GetSecretValue',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });

  it.each([
    ['not_found', () => new ResourceNotFoundException({ message: 'deleted', $metadata: {} })],
    ['misconfigured', accessDenied],
    [
      'misconfigured',
      () => new InvalidRequestException({ message: 'the secret was marked for deletion', $metadata: {} }),
    ],
  ])('fails the next cached read too once a forced read is answered %s', async (reason, refusal) => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300 });
    expect(await store.getSecret('webhook-key')).toBe('secret-v1');
    vi.advanceTimersByTime(10_000);
    outage = () => Promise.reject(refusal());
    await expect(store.getSecret('webhook-key', { forceFetch: true })).rejects.toMatchObject({ reason });
    // Well inside maxAge, yet the value Powertools cached must not answer any more.
    await expect(store.getSecret('webhook-key')).rejects.toMatchObject({ reason });
    outage = undefined;
    rotate('secret-v2');
    expect(await store.getSecret('webhook-key')).toBe('secret-v2');
  });

  it("stops matching a deleted secret's value once matchVersion's refresh finds it deleted", async () => {
    vi.useFakeTimers();
    const store = new SecretStore({ maxAgeSec: 300, refreshOnMismatchSec: 30 });
    expect(await store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).toBe('AWSCURRENT');
    vi.advanceTimersByTime(40_000);
    versions = {};
    await expect(store.matchVersion('webhook-key', (secret) => secret === 'forged')).rejects.toMatchObject({
      reason: 'not_found',
    });
    await expect(store.matchVersion('webhook-key', (secret) => secret === 'secret-v1')).rejects.toMatchObject(
      { reason: 'not_found' },
    );
  });
});

describe('getSecret and the default store', () => {
  it('reads through a module-level store that configureSecretStore replaces', async () => {
    expect(await getSecret('webhook-key')).toBe('secret-v1');
    const events: SecurityEvent[] = [];
    const store = configureSecretStore({ onEvent: (event) => events.push(event) });
    expect(store).toBeInstanceOf(SecretStore);
    rotate('secret-v2');
    expect(await getSecret('webhook-key', { versionStage: 'AWSPREVIOUS' })).toBe('secret-v1');
    expect(events).toHaveLength(1);
  });

  it('rejects invalid options at construction', () => {
    expect(() => new SecretStore({ maxAgeSec: -1, refreshOnMismatchSec: Number.NaN })).toThrow(
      InvalidOptionsError,
    );
    expect(() => new SecretStore({ staleIfErrorSec: -1 })).toThrow('staleIfErrorSec must be >= 0');
    expect(() => new SecretStore({ onEvent: 'audit' as never })).toThrow(
      new InvalidOptionsError('SecretStore', ['onEvent must be a function']),
    );
  });
});
