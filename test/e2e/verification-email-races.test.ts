// A new verification link asked for, then the old one used before the new email goes out: the email worker,
// checking the user just before it sends, drops the new email instead of asking a verified address to confirm.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodedEml, emailsTo, until } from '../email-worker/helpers.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { type StallingDynamoDb, startStallingDynamoDb } from '../helpers/stalling-dynamodb.js';

// Before any function module loads: their loggers read it at cold start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

let dynamoDb: StallingDynamoDb;
beforeAll(async () => {
  dynamoDb = await startStallingDynamoDb(inject('dynamoDbEndpoint'));
});
// Registered before the runtime's own hooks, so the proxy closes after the runtime has stopped.
afterAll(() => dynamoDb.close());
// A failed user check is retried a second later, not the default 30.
const api = useLocalRuntime({ emailRetryBaseDelaySec: 1, dynamoDbEndpoint: () => dynamoDb.endpoint });
const output = captureStdout();

/** The email worker's read of `userId` before it sends (functions/shared/user-item.ts), and nothing else. */
const workerUserCheck = (userId: string) => (body: string) =>
  body.includes('"ProjectionExpression":"pk, expiresAt') && body.includes(`"USER#${userId}"`);

const sentTo = (email: string) => api.runtime().smtp.messages.filter((sent) => sent.to.includes(email));

describe('a verification email queued before the address was verified', () => {
  it('is not sent once the old link verified the address, and is audited as skipped, already verified', async () => {
    const email = `verify-race-${randomUUID()}@example.com`;
    const registered = await api.request('POST', '/users', { body: { email, name: 'Vera' } });
    expect(registered.status).toBe(201);
    const { id } = registered.body as { id: string };
    // The registration's welcome and verification emails.
    const link = (await emailsTo(api.runtime(), email, 2))
      .map((sent) => decodedEml(sent.raw))
      .join('\n')
      .match(new RegExp(`/users/${id}/verify\\?expires=\\d+&signature=[\\w-]{43}`))?.[0];
    expect(link).toBeDefined();

    // The worker's check of the user before it sends the new link hangs until the old link is used.
    dynamoDb.stall(workerUserCheck(id));
    const resend = { 'x-correlation-id': randomUUID() };
    expect((await api.request('POST', `/users/${id}/verification-email`, { headers: resend })).status).toBe(
      202,
    );
    await until(() => (dynamoDb.stalled() > 0 ? true : undefined));
    expect((await api.request('POST', link ?? '', {})).status).toBe(200);
    dynamoDb.stall(undefined);

    const outcome = await until(() =>
      output
        .audit()
        .find(
          (audit) =>
            audit.correlationId === resend['x-correlation-id'] &&
            (audit.eventType === 'email.sent' || audit.eventType === 'email.skipped'),
        ),
    );
    expect(outcome).toMatchObject({
      eventType: 'email.skipped',
      outcome: 'success',
      userId: id,
      metadata: { type: 'verification', reason: 'already_verified' },
    });
    expect(sentTo(email)).toHaveLength(2);
  });
});
