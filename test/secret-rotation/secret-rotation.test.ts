// The rotation function's four steps against a mocked Secrets Manager: shapes, idempotency, refusals.
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  generatedSecretLength,
  isValidPendingValue,
  nextSecretValue,
  RotationError,
  type RotationStep,
  SecretRotator,
} from '../../functions/secret-rotation/secret-rotation.js';
import { captureStdout } from '../helpers/log-capture.js';

// The handler's lines are read below; its logger takes the level when the handler module first loads.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
const output = captureStdout();
const secretsManager = mockClient(SecretsManagerClient);
const secretId = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:bulwark-signing-AbCdEf';
const token = 'token-2';
const old = 'o'.repeat(48);
const fresh = 'n'.repeat(48);

function event(step: RotationStep, clientRequestToken = token) {
  return { SecretId: secretId, ClientRequestToken: clientRequestToken, Step: step };
}

/** The Lambda context of one invocation of the rotation function. */
function invocation(awsRequestId = 'rotation-invocation-1'): Context {
  return {
    awsRequestId,
    functionName: 'bulwark-secret-rotation',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:bulwark-secret-rotation',
    memoryLimitInMB: '128',
    getRemainingTimeInMillis: () => 30_000,
  } as Context;
}

/** The secret as DescribeSecret shows it: version-1 current, the token's version pending. */
function describeWith(stages: Record<string, string[]>, rotationEnabled = true): void {
  secretsManager
    .on(DescribeSecretCommand)
    .resolves({ RotationEnabled: rotationEnabled, VersionIdsToStages: stages });
}

function current(value: string): void {
  secretsManager.on(GetSecretValueCommand, { VersionStage: 'AWSCURRENT' }).resolves({ SecretString: value });
}

function pending(value: string | undefined): void {
  const command = secretsManager.on(GetSecretValueCommand, { VersionId: token, VersionStage: 'AWSPENDING' });
  if (value === undefined) {
    command.rejects(Object.assign(new Error('not found'), { name: 'ResourceNotFoundException' }));
  } else {
    command.resolves({ SecretString: value });
  }
}

const rotating = { 'version-1': ['AWSCURRENT'], [token]: ['AWSPENDING'] };
let rotator: SecretRotator;

beforeEach(() => {
  secretsManager.reset();
  rotator = new SecretRotator({ client: new SecretsManagerClient({}), generate: () => fresh });
});

afterEach(() => {
  secretsManager.reset();
});

describe('nextSecretValue', () => {
  it('keeps the signing shape, moving the current value to previous', () => {
    const next = nextSecretValue(JSON.stringify({ current: old, previous: 'p'.repeat(48) }), () => fresh);
    expect(JSON.parse(next)).toEqual({ current: fresh, previous: old });
    // The stack creates secrets as { current } alone; the first rotation adds previous.
    expect(JSON.parse(nextSecretValue(JSON.stringify({ current: old }), () => fresh))).toEqual({
      current: fresh,
      previous: old,
    });
  });

  it('replaces a plain secret with a new plain one', () => {
    expect(nextSecretValue(old, () => fresh)).toBe(fresh);
  });

  it.each([
    ['an extra key', { current: old, rotatedBy: 'operator' }],
    ['a current value under 32 characters', { current: 'short' }],
    ['a current value of whitespace', { current: ' '.repeat(48) }],
    ['no current', { previous: old }],
  ])('refuses a JSON current value with %s instead of turning it into a plain string', (_case, value) => {
    expect(() => nextSecretValue(JSON.stringify(value), () => fresh)).toThrow(RotationError);
  });

  it.each([
    ['its closing brace lost in a hand edit', `{"current":"${old}"`],
    ['whitespace before it', `  \n{"current":"${old}"}}`],
  ])('refuses a current value that opens like JSON but does not parse, %s', (_case, value) => {
    expect(() => nextSecretValue(value, () => fresh)).toThrow(
      'The current value starts with { but is not valid JSON',
    );
  });

  it(`generates ${generatedSecretLength} URL-safe characters by default, different each time`, () => {
    const [a, b] = [nextSecretValue(old), nextSecretValue(old)];
    expect(a).toMatch(new RegExp(`^[\\w-]{${generatedSecretLength}}$`));
    expect(a).not.toBe(b);
  });
});

describe('isValidPendingValue', () => {
  it('accepts a signing value with both sides and rejects one without previous', () => {
    const currentValue = JSON.stringify({ current: old });
    expect(isValidPendingValue(currentValue, JSON.stringify({ current: fresh, previous: old }))).toBe(true);
    expect(isValidPendingValue(currentValue, JSON.stringify({ current: fresh }))).toBe(false);
    expect(isValidPendingValue(currentValue, fresh)).toBe(false);
  });

  it('rejects a signing value that does not chain from the current one', () => {
    const currentValue = JSON.stringify({ current: old });
    const stale = 's'.repeat(48);
    // Made from an earlier current value: promoting it would drop the value in use.
    expect(isValidPendingValue(currentValue, JSON.stringify({ current: fresh, previous: stale }))).toBe(
      false,
    );
    expect(isValidPendingValue(currentValue, JSON.stringify({ current: old, previous: old }))).toBe(false);
  });

  it('refuses to judge a pending value against a JSON current value in another shape', () => {
    const currentValue = JSON.stringify({ current: old, rotatedBy: 'operator' });
    expect(() => isValidPendingValue(currentValue, fresh)).toThrow(RotationError);
  });

  it('rejects a plain value that is short or unchanged', () => {
    expect(isValidPendingValue(old, fresh)).toBe(true);
    expect(isValidPendingValue(old, 'short')).toBe(false);
    expect(isValidPendingValue(old, `short${' '.repeat(48)}`)).toBe(false);
    expect(isValidPendingValue(old, old)).toBe(false);
  });
});

describe('SecretRotator', () => {
  it('createSecret stores the next value under AWSPENDING with the request token', async () => {
    describeWith(rotating);
    current(JSON.stringify({ current: old }));
    pending(undefined);
    secretsManager.on(PutSecretValueCommand).resolves({});
    await expect(rotator.rotate(event('createSecret'))).resolves.toBe('done');
    expect(secretsManager.commandCalls(PutSecretValueCommand)[0]?.args[0].input).toEqual({
      SecretId: secretId,
      ClientRequestToken: token,
      SecretString: JSON.stringify({ current: fresh, previous: old }),
      VersionStages: ['AWSPENDING'],
    });
  });

  it('a retried createSecret keeps the value already stored for its token', async () => {
    describeWith(rotating);
    current(old);
    pending(fresh);
    await rotator.rotate(event('createSecret'));
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('a retried createSecret refuses a stored value made from a current value since replaced by hand', async () => {
    // A failed rotation left { n1, previous: v0 } pending; an operator then put { current: X }.
    const replaced = 'x'.repeat(48);
    describeWith(rotating);
    current(JSON.stringify({ current: replaced }));
    pending(JSON.stringify({ current: fresh, previous: old }));
    await expect(rotator.rotate(event('createSecret'))).rejects.toThrow(
      'The pending version does not follow from the current value and cannot be replaced',
    );
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('createSecret stores nothing when the current value is JSON in another shape', async () => {
    describeWith(rotating);
    current(JSON.stringify({ current: 'short' }));
    pending(undefined);
    await expect(rotator.rotate(event('createSecret'))).rejects.toThrow(RotationError);
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('createSecret and testSecret refuse a current value whose JSON was cut short, storing nothing', async () => {
    describeWith(rotating);
    current(`{"current":"${old}"`);
    pending(undefined);
    await expect(rotator.rotate(event('createSecret'))).rejects.toThrow(RotationError);
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
    pending(fresh);
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
  });

  it('setSecret changes nothing: the value lives only in Secrets Manager', async () => {
    describeWith(rotating);
    await expect(rotator.rotate(event('setSecret'))).resolves.toBe('done');
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
    expect(secretsManager.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
  });

  it('testSecret passes a well-formed pending value and fails a malformed one', async () => {
    describeWith(rotating);
    current(old);
    pending(fresh);
    await expect(rotator.rotate(event('testSecret'))).resolves.toBe('done');
    pending('short');
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
  });

  it('testSecret fails a signing value that would drop the current one', async () => {
    describeWith(rotating);
    current(JSON.stringify({ current: 'x'.repeat(48) }));
    pending(JSON.stringify({ current: fresh, previous: old }));
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
  });

  it('testSecret fails a plain value when the current value is JSON its readers parse', async () => {
    describeWith(rotating);
    current(JSON.stringify({ current: old, rotatedBy: 'operator' }));
    pending(fresh);
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
  });

  it('testSecret fails unless its own createSecret made the pending value: absent, or a copy of the current one', async () => {
    // What Secrets Manager's configuration test (RotateImmediatelyOnUpdate: false) could hand it:
    // lib/secret-rotation.ts therefore keeps rotating on schedule updates (README, CDK and deploy).
    describeWith(rotating);
    const signing = JSON.stringify({ current: old });
    current(signing);
    pending(undefined);
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
    pending(signing);
    await expect(rotator.rotate(event('testSecret'))).rejects.toThrow(RotationError);
  });

  it('finishSecret moves AWSCURRENT from the old version to the token', async () => {
    describeWith(rotating);
    secretsManager.on(UpdateSecretVersionStageCommand).resolves({});
    await rotator.rotate(event('finishSecret'));
    expect(secretsManager.commandCalls(UpdateSecretVersionStageCommand)[0]?.args[0].input).toEqual({
      SecretId: secretId,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: token,
      RemoveFromVersionId: 'version-1',
    });
  });

  it('skips every step once the token is already current (a retried finish)', async () => {
    describeWith({ 'version-1': ['AWSPREVIOUS'], [token]: ['AWSCURRENT', 'AWSPENDING'] });
    await expect(rotator.rotate(event('finishSecret'))).resolves.toBe('skipped');
    expect(secretsManager.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
  });

  it.each([
    ['rotation is not enabled', { ...rotating }, false, 'Rotation is not enabled on the secret'],
    [
      'the token is unknown',
      { 'version-1': ['AWSCURRENT'] },
      true,
      'The token is not a version of the secret',
    ],
    [
      'the token is not pending',
      { 'version-1': ['AWSCURRENT'], [token]: [] },
      true,
      'The token version is not AWSPENDING',
    ],
  ])('refuses to rotate when %s', async (_case, stages, enabled, message) => {
    describeWith(stages, enabled);
    await expect(rotator.rotate(event('createSecret'))).rejects.toThrow(message);
    expect(secretsManager.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });
});

describe('the rotation handler', () => {
  it('rejects an event that is not a rotation step, calling nothing', async () => {
    const { handler } = await import('../../functions/secret-rotation/handler.js');
    await expect(handler({ SecretId: secretId, Step: 'dropTables' }, invocation())).rejects.toThrow(
      'Not a Secrets Manager rotation event',
    );
    expect(secretsManager.calls()).toHaveLength(0);
  });

  it('runs one step and fails the invocation when the step fails', async () => {
    const { handler } = await import('../../functions/secret-rotation/handler.js');
    describeWith(rotating);
    await expect(handler(event('setSecret'), invocation())).resolves.toBeUndefined();
    describeWith(rotating, false);
    await expect(handler(event('setSecret'), invocation())).rejects.toThrow(RotationError);
  });

  it("names the secret by its whole ARN in a failed step's error line and in each secret.rotated audit line", async () => {
    const { handler } = await import('../../functions/secret-rotation/handler.js');
    describeWith(rotating);
    // A key added by hand: the value is JSON in another shape, so the rotation stops.
    current(JSON.stringify({ current: old, note: 'added by hand' }));
    pending(undefined);
    await expect(handler(event('createSecret'), invocation())).rejects.toThrow(RotationError);
    secretsManager.on(UpdateSecretVersionStageCommand).resolves({});
    await handler(event('finishSecret'), invocation());

    expect(output.json().find((line) => line.message === 'Rotation step failed')).toMatchObject({
      secretId,
      step: 'createSecret',
      error: expect.stringContaining(
        'RotationError: The current value is JSON but not { current, previous? }',
      ),
    });
    expect(output.audit().filter((line) => line.eventType === 'secret.rotated')).toEqual([
      expect.objectContaining({
        outcome: 'error',
        metadata: { secretId, step: 'createSecret', reason: 'RotationError' },
      }),
      expect.objectContaining({ outcome: 'success', metadata: { secretId } }),
    ]);
    expect(output.lines().join('\n')).not.toContain(old);
  });

  it("gives every line the invocation's Lambda context and the rotation's token, each invocation its own", async () => {
    const { handler } = await import('../../functions/secret-rotation/handler.js');
    secretsManager
      .on(DescribeSecretCommand)
      .rejects(Object.assign(new Error('Secrets Manager unreachable'), { name: 'InternalServiceError' }));
    await expect(handler(event('createSecret', 'token-a'), invocation('invocation-a'))).rejects.toThrow(
      'Secrets Manager unreachable',
    );
    describeWith({ 'version-1': ['AWSCURRENT'], 'token-b': ['AWSPENDING'] });
    await handler(event('setSecret', 'token-b'), invocation('invocation-b'));

    const lines = output.json().filter((line) => line.service === 'secret-rotation');
    const keysOf = (line: Record<string, unknown>) => ({
      message: line.message,
      function_request_id: line.function_request_id,
      function_name: line.function_name,
      rotation_version_id: line.rotation_version_id,
    });
    expect(lines.map(keysOf)).toEqual([
      {
        message: 'Rotation step failed',
        function_request_id: 'invocation-a',
        function_name: 'bulwark-secret-rotation',
        rotation_version_id: 'token-a',
      },
      {
        message: 'AUDIT secret.rotated',
        function_request_id: 'invocation-a',
        function_name: 'bulwark-secret-rotation',
        rotation_version_id: 'token-a',
      },
      {
        message: 'Rotation step',
        function_request_id: 'invocation-b',
        function_name: 'bulwark-secret-rotation',
        rotation_version_id: 'token-b',
      },
    ]);
  });
});
