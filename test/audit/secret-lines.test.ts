// The lines a sample function writes about the secrets it reads at run time name each secret by its whole
// Secrets Manager ARN: the audit line of every fetch and the error line of a secret that cannot be read.
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { functionObservability } from '../../functions/shared/observability.js';
import { rotatingSecretReader } from '../../functions/shared/rotating-secret.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { captureStdout } from '../helpers/log-capture.js';
import { httpEvent, lambdaContext } from './fixtures.js';

// Before the function's logger is built: it reads its level then.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
const output = captureStdout();
const secretsManager = mockClient(SecretsManagerClient);

const signingSecretArn =
  'arn:aws:secretsmanager:eu-west-1:111122223333:secret:BookingsSigningSecretA1B2-XyZ123';
const linkSecretArn =
  'arn:aws:secretsmanager:eu-west-1:111122223333:secret:VerificationLinkSecretC3D4-AbC456';
const value = 'v'.repeat(48);

beforeEach(() => {
  secretsManager.reset();
  secretsManager
    .on(GetSecretValueCommand, { SecretId: linkSecretArn })
    .resolves({ SecretString: JSON.stringify({ current: value }) });
  // Cut short: not JSON, so the read fails `not_json`.
  secretsManager
    .on(GetSecretValueCommand, { SecretId: signingSecretArn })
    .resolves({ SecretString: `{"current":"${value}"` });
});

describe("the users function's secret lines", () => {
  const users = functionObservability('users');

  it('audits each fetch as secret.accessed with the secret named by its whole ARN and its version stage', async () => {
    await expect(rotatingSecretReader({ secretArn: linkSecretArn }, users.onEvent)(false)).resolves.toEqual({
      current: value,
      previous: undefined,
    });
    expect(output.audit().filter((line) => line.eventType === 'secret.accessed')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        metadata: { name: linkSecretArn, versionStage: 'AWSCURRENT', outcome: 'ok' },
      }),
    ]);
  });

  it("logs a secret it cannot read with the secret's whole ARN and the reason, never the value", async () => {
    const handler = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger: users.logger }))
      .handler(async () => rotatingSecretReader({ secretArn: signingSecretArn }, users.onEvent)(false));
    const response = (await handler(httpEvent(), lambdaContext())) as { statusCode: number };
    expect(response.statusCode).toBe(500);
    expect(output.json().find((line) => line.message === 'Request failed')).toMatchObject({
      service: 'users',
      error: {
        name: 'SecretAccessError',
        code: 'SECRET_UNAVAILABLE',
        message: `Secret ${signingSecretArn} (AWSCURRENT) is unavailable: not_json`,
        secretName: signingSecretArn,
        versionStage: 'AWSCURRENT',
        reason: 'not_json',
      },
    });
    expect(output.audit().find((line) => line.eventType === 'secret.accessed')?.metadata).toMatchObject({
      name: signingSecretArn,
    });
    expect(output.lines().join('\n')).not.toContain(value);
  });
});
