// The per-user phone-code limits (one code a minute, five while the code item lives) refuse with 429 as the
// rate limits do, and report it as they do: a rateLimit.hit audit line naming the limit, and RateLimited.
import { randomInt, randomUUID } from 'node:crypto';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { expect, inject, it } from 'vitest';
import { phoneCodeKey } from '../../functions/shared/keys.js';
import { phoneCodeMaxIssued } from '../../functions/users/users-model.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

// Before any function module loads: their loggers and metrics read it at cold start, and audit lines are INFO.
enableMetricsOutput();
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));

/** A user registered with a phone number: registering sent its first code. */
async function userWithPhone(): Promise<string> {
  const created = await api.request('POST', '/users', {
    body: {
      email: `phone-limits-${randomUUID()}@example.com`,
      name: 'Pat',
      phone: `+1415555${String(randomInt(1000, 10_000))}`,
    },
  });
  expect(created.status).toBe(201);
  return (created.body as { id: string }).id;
}

/** A new code for `userId`, with the audit lines and RateLimited values of its request. */
async function requestCode(userId: string) {
  const correlationId = randomUUID();
  output.clear();
  const response = await api.request('POST', `/users/${userId}/phone-code`, {
    token: null,
    headers: { 'x-correlation-id': correlationId },
  });
  const audit = output.audit().filter((event) => event.correlationId === correlationId);
  const rateLimited = output
    .emf()
    .filter((line) => line.service === 'users' && line.RateLimited !== undefined)
    .map((line) => line.RateLimited);
  return { response, audit, rateLimited };
}

it.each([
  {
    limit: 'a code a minute',
    prepare: async () => {},
    metadata: { policy: 'phone-code-interval', limit: 1 },
    detail: 'A code was sent less than a minute ago',
  },
  {
    limit: 'five codes while the code item lives',
    prepare: (userId: string) =>
      documents.send(
        new UpdateCommand({
          TableName: testTableNames.app,
          Key: phoneCodeKey(userId),
          UpdateExpression: 'SET issuedCount = :count',
          ExpressionAttributeValues: { ':count': phoneCodeMaxIssued },
        }),
      ),
    metadata: { policy: 'phone-code-issued', limit: phoneCodeMaxIssued },
    detail: 'Too many codes were sent to this user; try again later',
  },
])(
  'reports the refusal of $limit as a rateLimit.hit, counted in RateLimited',
  async ({ prepare, metadata, detail }) => {
    const userId = await userWithPhone();
    await prepare(userId);
    const { response, audit, rateLimited } = await requestCode(userId);
    expect(response.status).toBe(429);
    expect(response.body).toMatchObject({ detail });
    expect(audit.map((event) => [event.eventType, event.outcome])).toEqual([
      ['rateLimit.hit', 'denied'],
      ['http.request', 'denied'],
    ]);
    expect(audit[0]?.metadata).toEqual({ ...metadata, keyBy: 'user', source: 'store', reason: 'over_limit' });
    expect(rateLimited).toEqual([1]);
  },
);

it('reports nothing of the kind for a code it sends', async () => {
  const userId = await userWithPhone();
  // The code sent at registration is more than a minute old.
  await documents.send(
    new UpdateCommand({
      TableName: testTableNames.app,
      Key: phoneCodeKey(userId),
      UpdateExpression: 'SET issuedAt = :then',
      ExpressionAttributeValues: { ':then': new Date(Date.now() - 61_000).toISOString() },
    }),
  );
  const { response, audit, rateLimited } = await requestCode(userId);
  expect(response.status).toBe(202);
  expect(audit.map((event) => event.eventType)).toEqual(['user.phone_code_sent', 'http.request']);
  expect(rateLimited).toEqual([]);
});
