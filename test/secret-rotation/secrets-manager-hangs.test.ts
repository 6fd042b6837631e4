// The rotation function against a Secrets Manager that never answers: the step fails with its error and audit
// lines well inside the function's 30 s, as its FailureAlarm's runbook expects. A file of its own: the handler
// module builds its client when first imported, and here that client must point at the silent endpoint.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { captureStdout } from '../helpers/log-capture.js';
import type { LoopbackServer } from '../helpers/loopback-server.js';
import { silentServer } from '../helpers/silent-server.js';

// The handler's lines are read below; its logger takes the level when the handler module first loads.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
const output = captureStdout();
const secretId = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:bulwark-signing-AbCdEf';
/** The function's timeout (lib/secret-rotation.ts). */
const functionTimeoutMs = 30_000;

let secretsManager: LoopbackServer;
beforeAll(async () => {
  secretsManager = await silentServer();
  vi.stubEnv('AWS_ENDPOINT_URL_SECRETS_MANAGER', secretsManager.endpoint);
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await secretsManager.close();
});

describe('the rotation handler when Secrets Manager hangs', () => {
  it('fails the step with "Rotation step failed" and its audit line long before the function times out', async () => {
    const { handler } = await import('../../functions/secret-rotation/handler.js');
    // Only the timers are faked, so the connection to the silent server is real; the clock is moved on in
    // small steps, each after a turn of real I/O, until the step settles or the function would have timed out.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let elapsedMs = 0;
    const context = {
      awsRequestId: 'rotation-invocation-1',
      functionName: 'bulwark-secret-rotation',
      getRemainingTimeInMillis: () => functionTimeoutMs - elapsedMs,
    };
    let outcome: unknown;
    const step = handler(
      { SecretId: secretId, ClientRequestToken: 'token-1', Step: 'createSecret' },
      context as never,
    ).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    void step.then((settled) => {
      outcome = settled;
    });
    try {
      while (outcome === undefined && elapsedMs < functionTimeoutMs) {
        await new Promise((resolve) => setImmediate(resolve));
        await vi.advanceTimersByTimeAsync(100);
        elapsedMs += 100;
      }
    } finally {
      vi.useRealTimers();
    }

    // Three attempts of 2 s each, and the SDK's backoff between them.
    expect(elapsedMs).toBeGreaterThanOrEqual(6000);
    expect(elapsedMs).toBeLessThan(functionTimeoutMs);
    expect(outcome).toMatchObject({ name: 'TimeoutError' });
    expect(output.json().find((line) => line.message === 'Rotation step failed')).toMatchObject({
      secretId,
      step: 'createSecret',
      error: expect.stringMatching(/^TimeoutError: /),
    });
    expect(output.audit().filter((line) => line.eventType === 'secret.rotated')).toEqual([
      expect.objectContaining({
        outcome: 'error',
        metadata: { secretId, step: 'createSecret', reason: 'TimeoutError' },
      }),
    ]);
  });
});
