// The email worker's SMTP credentials reader over a mocked Secrets Manager: parsing, caching, refresh, bad content.
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { smtpCredentialsReader } from '../../functions/email-worker/smtp-credentials.js';
import { ConfigError } from '../../middleware/errors.js';

const secretsManager = mockClient(SecretsManagerClient);
afterEach(() => secretsManager.reset());

/** A secret of its own per test: the function's one SecretStore caches secrets by name across readers. */
const secretArnFor = (suffix: string) =>
  `arn:aws:secretsmanager:us-east-1:123456789012:secret:SmtpCredentials-${suffix}`;

describe('smtpCredentialsReader', () => {
  it('reads the pair once and serves it from the cache until asked to refresh', async () => {
    secretsManager
      .on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: JSON.stringify({ username: 'relay', password: 'first' }) })
      .resolves({ SecretString: JSON.stringify({ username: 'relay', password: 'second' }) });
    const secretArn = secretArnFor('cached');
    const read = smtpCredentialsReader(secretArn);
    expect(await read(false)).toEqual({ username: 'relay', password: 'first' });
    expect(await read(false)).toEqual({ username: 'relay', password: 'first' });
    expect(await read(true)).toEqual({ username: 'relay', password: 'second' });
    const calls = secretsManager.commandCalls(GetSecretValueCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.args[0].input.SecretId).toBe(secretArn);
  });

  it.each([
    ['a pair without a username', { password: 'generated' }],
    ['an empty password', { username: 'relay', password: '' }],
    ['a number for a password', { username: 'relay', password: 1234 }],
  ])('refuses %s, naming the secret and never its content', async (name, content) => {
    const secretArn = secretArnFor(name.replaceAll(' ', '-'));
    secretsManager.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(content) });
    const error = await smtpCredentialsReader(secretArn)(false).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      {
        key: 'SMTP_CREDENTIALS_SECRET_ARN',
        message: `secret ${secretArn} must hold JSON { "username": "…", "password": "…" }`,
      },
    ]);
    expect((error as Error).message).not.toContain('generated');
  });
});
