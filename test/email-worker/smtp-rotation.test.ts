// An operator rotating the SMTP relay's pair while the email worker runs: a real SMTP server with AUTH, the
// credentials read through the function's secret store over a mocked Secrets Manager, the provider breaker
// on the test toolkit table.
import type { AddressInfo } from 'node:net';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { smtpCredentialsReader } from '../../functions/email-worker/smtp-credentials.js';
import { type SmtpCredentials, SmtpEmailTransport } from '../../functions/email-worker/transports.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { freezeAtFailureWindowStart } from '../helpers/failure-window.js';
import { testEmail as email, testProviderBreaker } from './helpers.js';

const secretsManager = mockClient(SecretsManagerClient);
const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });

const pairA: SmtpCredentials = { username: 'relay-user', password: 'pair-a-password' };
const pairB: SmtpCredentials = { username: 'relay-user', password: 'pair-b-password' };

/** The secret store's cache time (SecretStore's default maxAgeSec), past which a stored pair is read. */
const secretCacheMs = 300_000;

let server: SMTPServer;
let port: number;
/** The passwords the relay accepts now: a test plays the provider issuing and revoking pairs. */
let validPasswords = new Set<string>();
/** Every login the relay saw, in order, and whether it accepted it. */
let logins: { password: string; accepted: boolean }[] = [];
/** What the SmtpCredentials secret holds now. */
let stored: SmtpCredentials = pairA;

beforeAll(async () => {
  server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    // Loopback only: the transport skips STARTTLS for 127.0.0.1.
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    onAuth(auth, _session, callback) {
      const password = auth.password ?? '';
      const accepted = validPasswords.has(password);
      logins.push({ password, accepted });
      if (accepted) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback());
    },
    logger: false,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  logins = [];
  stored = pairA;
  validPasswords = new Set([pairA.password]);
  secretsManager.on(GetSecretValueCommand).callsFake(async () => ({ SecretString: JSON.stringify(stored) }));
  // The failure window starts now and the secret cache runs on this clock: tests move it by hand.
  freezeAtFailureWindowStart();
});
afterEach(() => {
  vi.useRealTimers();
  secretsManager.reset();
});

/**
 * A transport as the email worker builds it, reading a secret of its own (the function's one store
 * caches secrets by name), and a breaker whose failures are recorded.
 */
function emailWorkerSmtp(secretSuffix: string) {
  const transport = new SmtpEmailTransport({
    host: '127.0.0.1',
    port,
    credentials: smtpCredentialsReader(
      `arn:aws:secretsmanager:us-east-1:123456789012:secret:SmtpCredentials-${secretSuffix}`,
    ),
  });
  const breaker = testProviderBreaker(dynamoDb, 'email-smtp-rotation');
  const counted: unknown[] = [];
  breaker.on('failure', (error) => counted.push(error));
  const sendBatch = (size: number) =>
    Promise.allSettled(
      Array.from({ length: size }, () => breaker.execute(({ signal }) => transport.send(email, signal))),
    );
  return { transport, breaker, counted, sendBatch };
}

describe('an SMTP credential rotation', () => {
  it('moves to the new pair once the cache time is over, so revoking the old one then fails nothing', async () => {
    const { transport, breaker, counted, sendBatch } = emailWorkerSmtp('overlap');
    await transport.send(email);
    // The operator stores pair B while the provider still accepts A, and waits out the cache time.
    stored = pairB;
    validPasswords = new Set([pairA.password, pairB.password]);
    await transport.send(email);
    expect(logins.at(-1)).toEqual({ password: pairA.password, accepted: true });
    vi.setSystemTime(Date.now() + secretCacheMs);
    await transport.send(email);
    expect(logins.at(-1)).toEqual({ password: pairB.password, accepted: true });

    validPasswords = new Set([pairB.password]);
    const results = await sendBatch(10);
    transport.close();
    expect(results.map((result) => result.status)).toEqual(Array(10).fill('fulfilled'));
    expect(logins.filter((login) => !login.accepted)).toEqual([]);
    expect(counted).toEqual([]);
    expect(breaker.state).toBe('CLOSED');
  });

  it('re-reads the secret when the old pair is revoked within the cache time, and the batch still sends', async () => {
    const { transport, breaker, counted, sendBatch } = emailWorkerSmtp('early-revocation');
    await transport.send(email);
    stored = pairB;
    validPasswords = new Set([pairB.password]);
    const results = await sendBatch(10);
    expect(results.map((result) => result.status)).toEqual(Array(10).fill('fulfilled'));
    // Refusals retried with the fresh pair are the provider's answer to a pair we no longer hold.
    expect(counted).toEqual([]);
    expect(breaker.state).toBe('CLOSED');
    expect(logins.filter((login) => !login.accepted).map((login) => login.password)).toEqual(
      Array(10).fill(pairA.password),
    );
    // The refused sends share one fetch, which also refreshes the cache for the sends that follow.
    expect(secretsManager.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    logins = [];
    await transport.send(email);
    transport.close();
    expect(logins).toEqual([{ password: pairB.password, accepted: true }]);
  });

  it('counts a refusal toward the breaker when the stored pair is the refused one, until the circuit opens', async () => {
    const { transport, breaker, counted } = emailWorkerSmtp('revoked-before-stored');
    await transport.send(email);
    // The wrong order: the provider revokes A before the operator stores B.
    validPasswords = new Set([pairB.password]);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await expect(breaker.execute(({ signal }) => transport.send(email, signal))).rejects.toMatchObject({
        code: 'EAUTH',
      });
    }
    transport.close();
    expect(counted).toHaveLength(5);
    expect(breaker.state).toBe('OPEN');
    // Each refusal fetched the secret again: the initial read and one per failed send.
    expect(secretsManager.commandCalls(GetSecretValueCommand)).toHaveLength(6);
  });
});
