// A user deletion (DELETE /admin/users/{id}) that fails after some of the user's webhook endpoints were
// deleted: the retry skips them, so the failed attempt's own user.deleted line (outcome failure or error)
// names them, with the admin who deleted them. DynamoDB is a scripted proxy that refuses the writes picked.
import { randomUUID } from 'node:crypto';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { cancelledTransaction, dynamoDbError } from '../helpers/dynamodb-proxy.js';
import { captureStdout } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { type PickRule, type ScriptedDynamoDb, startScriptedDynamoDb } from '../helpers/scripted-dynamodb.js';
import { registerEndpoint } from './helpers.js';

// Before any function module loads: their loggers read it at cold start, and audit lines are INFO.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

let dynamoDb: ScriptedDynamoDb;
beforeAll(async () => {
  dynamoDb = await startScriptedDynamoDb(inject('dynamoDbEndpoint'));
});
// Registered before the runtime's own hooks, so the proxy closes after the runtime has stopped.
afterAll(async () => dynamoDb.close());
const api = useLocalRuntime({ as: adminUser, dynamoDbEndpoint: () => dynamoDb.endpoint });
const output = captureStdout();

/** The transaction that deletes the user (its item is conditioned on the user's id). */
const userDeletion: PickRule = (operation, body) =>
  operation === 'TransactWriteItems' && body.includes('userId = :id');
/** A transaction that removes a webhook endpoint. */
const endpointRemoval: PickRule = (operation, body) =>
  operation === 'TransactWriteItems' && body.includes('"WH#ep_');
const accessDenied = () =>
  dynamoDbError(400, 'AccessDeniedException', 'not authorized (refused by the test)');

/** A registered user with `count` webhook endpoints of theirs. */
async function userWithEndpoints(count: number): Promise<{ userId: string; endpointIds: string[] }> {
  const created = await api.request('POST', '/users', {
    body: { email: `deletion-audit-${randomUUID()}@example.com`, name: 'Hook Owner' },
  });
  expect(created.status).toBe(201);
  const userId = (created.body as { id: string }).id;
  const token = await api.token({ sub: userId });
  const endpointIds: string[] = [];
  for (let n = 0; n < count; n += 1) {
    endpointIds.push((await registerEndpoint(api, token, `http://127.0.0.1:9/hook-${n}`)).id);
  }
  return { userId, endpointIds };
}

/** The first DELETE while `rule`'s writes are refused with `refusal`, then the retry with none refused. */
async function deleteRefusedThenRetried(
  userId: string,
  rule: PickRule,
  refusal: Parameters<ScriptedDynamoDb['refuse']>[1],
) {
  dynamoDb.refuse(rule, refusal);
  const first = await api
    .request('DELETE', `/admin/users/${userId}`)
    .finally(() => dynamoDb.refuse(undefined));
  const retry = await api.request('DELETE', `/admin/users/${userId}`);
  const lines = output
    .audit()
    .filter((event) => event.eventType === 'admin.action' && event.metadata['targetUserId'] === userId);
  return { first, retry, lines };
}

const byAdmin = { userId: adminUser.sub };

it.each([
  ['a grant missing: 500', accessDenied, 500, 'error', 'AccessDeniedException'],
  [
    'the user deleted or lapsed meanwhile: 404',
    (body: string) =>
      cancelledTransaction(body, (index) => (index === 0 ? 'ConditionalCheckFailed' : 'None')),
    404,
    'failure',
    'NOT_FOUND',
  ],
])(
  'names the deleted endpoints when the user delete is then refused (%s)',
  async (_case, refusal, status, outcome, reason) => {
    const { userId, endpointIds } = await userWithEndpoints(2);
    const { first, retry, lines } = await deleteRefusedThenRetried(userId, userDeletion, refusal);
    expect(first.status).toBe(status);
    expect(retry.status).toBe(204);
    expect(lines).toEqual([
      expect.objectContaining({
        ...byAdmin,
        outcome,
        metadata: {
          action: 'user.deleted',
          targetUserId: userId,
          deletedEndpointCount: 2,
          deletedEndpointIds: expect.arrayContaining(endpointIds),
          reason,
        },
      }),
      // The retry found them gone: its own line rightly names none.
      expect.objectContaining({
        ...byAdmin,
        outcome: 'success',
        metadata: {
          action: 'user.deleted',
          targetUserId: userId,
          deletedEndpointCount: 0,
          deletedEndpointIds: [],
        },
      }),
    ]);
  },
);

it('names the endpoints deleted before one of them failed, and the retry names the rest', async () => {
  const { userId, endpointIds } = await userWithEndpoints(2);
  let removals = 0;
  const secondRemoval: PickRule = (operation, body) => endpointRemoval(operation, body) && ++removals > 1;
  const { first, retry, lines } = await deleteRefusedThenRetried(userId, secondRemoval, accessDenied);
  expect(first.status).toBe(500);
  expect(retry.status).toBe(204);
  expect(lines).toEqual([
    expect.objectContaining({
      ...byAdmin,
      outcome: 'error',
      metadata: expect.objectContaining({ deletedEndpointCount: 1, reason: 'AccessDeniedException' }),
    }),
    expect.objectContaining({
      ...byAdmin,
      outcome: 'success',
      metadata: expect.objectContaining({ deletedEndpointCount: 1 }),
    }),
  ]);
  const named = lines.flatMap((line) => line.metadata['deletedEndpointIds'] as string[]);
  expect(named.sort()).toEqual([...endpointIds].sort());
});

it("names the endpoints deleted before the owner's count turned out to hold one more (409)", async () => {
  const { userId, endpointIds } = await userWithEndpoints(1);
  // An endpoint registered a moment ago: counted (strongly consistent), not yet in the owner index.
  const { dynamoDbEndpoint, tableNames } = api.runtime();
  await createDocumentClient(createDynamoDbClient({ endpoint: dynamoDbEndpoint })).send(
    new PutCommand({
      TableName: tableNames.toolkit,
      Item: { pk: `WH#OWNER#default#${userId}`, sk: 'ENDPOINT_COUNT', count: 2 },
    }),
  );
  const refused = await api.request('DELETE', `/admin/users/${userId}`);
  expect(refused.status).toBe(409);
  const lines = output
    .audit()
    .filter((event) => event.eventType === 'admin.action' && event.metadata['targetUserId'] === userId);
  expect(lines).toEqual([
    expect.objectContaining({
      ...byAdmin,
      outcome: 'failure',
      metadata: {
        action: 'user.deleted',
        targetUserId: userId,
        deletedEndpointCount: 1,
        deletedEndpointIds: endpointIds,
        reason: 'CONFLICT',
      },
    }),
  ]);
});

it('writes no user.deleted line for a refused delete that deleted nothing', async () => {
  const { userId } = await userWithEndpoints(0);
  dynamoDb.refuse(userDeletion, accessDenied);
  const refused = await api
    .request('DELETE', `/admin/users/${userId}`)
    .finally(() => dynamoDb.refuse(undefined));
  expect(refused.status).toBe(500);
  const lines = output.audit().filter((event) => event.eventType === 'admin.action');
  expect(lines.filter((event) => event.metadata['targetUserId'] === userId)).toEqual([]);
});

it('writes the unknown line, before the answer, when an endpoint removal is sent and never answered', async () => {
  const { userId, endpointIds } = await userWithEndpoints(2);
  const unanswered = endpointIds[1] as string;
  const hold = dynamoDb.hold(
    (operation, body) => operation === 'TransactWriteItems' && body.includes(`"WH#${unanswered}"`),
  );
  const first = await api.request('DELETE', `/admin/users/${userId}`);
  const linesAtTheAnswer = output
    .audit()
    .filter((event) => event.eventType === 'admin.action' && event.metadata['targetUserId'] === userId);
  hold.release();
  expect(first.status).toBeGreaterThanOrEqual(503);
  expect(linesAtTheAnswer).toEqual([
    expect.objectContaining({
      outcome: 'unknown',
      ...byAdmin,
      metadata: expect.objectContaining({
        action: 'user.deleted',
        reason: expect.stringMatching(/^(store_|deadline)/),
      }),
    }),
  ]);
  expect(linesAtTheAnswer[0]?.metadata['deletedEndpointIds']).not.toContain(unanswered);
  expect((await api.request('DELETE', `/admin/users/${userId}`)).status).toBe(204);
}, 30_000);
