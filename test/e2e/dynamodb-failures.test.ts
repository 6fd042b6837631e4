// The sample's routes while DynamoDB refuses their writes for load or hangs: answered as passing failures (503
// with Retry-After, 504, a warning), never as a 500 that pages like a bug, and at no cost to a register budget.
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { bookingDay } from '../helpers/booking-times.js';
import { cancelledTransaction } from '../helpers/dynamodb-proxy.js';
import { captureStdout } from '../helpers/log-capture.js';
import { type ApiResponse, adminUser, randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';
import { type Refusal, type ScriptedDynamoDb, startScriptedDynamoDb } from '../helpers/scripted-dynamodb.js';
import { type StallingDynamoDb, startStallingDynamoDb } from '../helpers/stalling-dynamodb.js';
import { startReceiver } from '../webhooks/helpers.js';

// Before any function module loads: their loggers read it at cold start.
process.env.POWERTOOLS_LOG_LEVEL = 'WARN';

let dynamoDb: ScriptedDynamoDb;
/** In front of `dynamoDb`: hangs the requests a test picks. */
let hanging: StallingDynamoDb;
beforeAll(async () => {
  dynamoDb = await startScriptedDynamoDb(inject('dynamoDbEndpoint'));
  hanging = await startStallingDynamoDb(dynamoDb.endpoint);
});
// Registered before the runtime's own hooks, so the proxies close after the runtime has stopped.
afterAll(async () => {
  await hanging.close();
  await dynamoDb.close();
});
const api = useLocalRuntime({ as: adminUser, dynamoDbEndpoint: () => hanging.endpoint });
const output = captureStdout();
const at = bookingDay(27);

const uniqueEmail = () => `dynamodb-failures-${randomUUID()}@example.com`;
const isTransaction = (operation: string) => operation === 'TransactWriteItems';

/** Runs `request` while every TransactWriteItems is answered `refusal`; how many were sent, and the answer. */
async function whileTransactionsRefused(refusal: Refusal, request: () => Promise<ApiResponse>) {
  const before = dynamoDb.seen.filter(({ operation }) => isTransaction(operation)).length;
  dynamoDb.refuse(isTransaction, refusal);
  const response = await request().finally(() => dynamoDb.refuse(undefined));
  const sent = dynamoDb.seen.filter(({ operation }) => isTransaction(operation)).length - before;
  return { response, sent };
}

/** The answer to a cancellation for throttling, and its one warning: no error line, nothing of the error shown. */
function expectThrottledAnswer(response: ApiResponse) {
  expect(response.status).toBe(503);
  expect(response.headers.get('retry-after')).toBe('5');
  expect(response.body).toMatchObject({
    code: 'SERVICE_UNAVAILABLE',
    detail: 'Service temporarily unavailable',
  });
  expect(response.text).not.toMatch(/cancel|Throughput|Transaction/i);
  const lines = output.json().filter((line) => line.level === 'ERROR' || line.level === 'WARN');
  expect(lines).toEqual([
    expect.objectContaining({
      level: 'WARN',
      message: 'Request degraded',
      failure: 'throttled',
      dependency: 'DynamoDB',
      errorName: 'TransactionCanceledException',
    }),
  ]);
}

const itemThrottled: Refusal = (body) =>
  cancelledTransaction(body, (index) => (index === 1 ? 'ThrottlingError' : 'None'));

describe('a transaction DynamoDB cancels because an item throttled', () => {
  /** A user and a booking of theirs, made once, inside a test: the output is captured there. */
  let made: Promise<{ userId: string; bookingId: string }> | undefined;
  const userAndBooking = () => {
    made ??= (async () => {
      const user = await api.request('POST', '/users', { body: { email: uniqueEmail(), name: 'Tess' } });
      const userId = (user.body as { id: string }).id;
      const booking = await api.request('POST', '/bookings', {
        body: { userId, roomId: `room-${randomUUID()}`, start: at(9), end: at(10) },
      });
      return { userId, bookingId: (booking.body as { id: string }).id };
    })();
    return made;
  };

  it.each([
    {
      route: 'POST /users',
      request: async () => api.request('POST', '/users', { body: { email: uniqueEmail(), name: 'Tess' } }),
    },
    {
      route: 'POST /bookings',
      request: async () =>
        api.request('POST', '/bookings', {
          headers: { 'idempotency-key': randomUUID() },
          body: {
            userId: (await userAndBooking()).userId,
            roomId: `room-${randomUUID()}`,
            start: at(11),
            end: at(12),
          },
        }),
    },
    {
      route: 'DELETE /bookings/{id}',
      request: async () => api.request('DELETE', `/bookings/${(await userAndBooking()).bookingId}`),
    },
  ])('answers $route 503 with Retry-After, logged as a warning', async ({ request }) => {
    await userAndBooking();
    output.clear();
    const { response, sent } = await whileTransactionsRefused(itemThrottled, request);
    expectThrottledAnswer(response);
    expect(sent).toBe(1);
  });

  it('answers POST /webhooks 503 with Retry-After, logged as a warning', async () => {
    const receiver = await startReceiver();
    const { response } = await whileTransactionsRefused(itemThrottled, () =>
      api.request('POST', '/webhooks', { body: { url: receiver.url, eventTypes: ['booking.created'] } }),
    ).finally(() => receiver.close());
    expectThrottledAnswer(response);
  });

  it('answers the same when another item of the transaction was in conflict', async () => {
    const { userId } = await userAndBooking();
    output.clear();
    const { response } = await whileTransactionsRefused(
      (body) =>
        cancelledTransaction(
          body,
          (index) => ['ProvisionedThroughputExceeded', 'TransactionConflict'][index] ?? 'None',
        ),
      () =>
        api.request('POST', '/bookings', {
          body: { userId, roomId: `room-${randomUUID()}`, start: at(13), end: at(14) },
        }),
    );
    expectThrottledAnswer(response);
  });

  it('still answers a failed condition as the model reads it, whatever else throttled: a taken email is a 409', async () => {
    const { response } = await whileTransactionsRefused(
      // The registration's second item is the email's claim.
      (body) =>
        cancelledTransaction(body, (index) => (index === 1 ? 'ConditionalCheckFailed' : 'ThrottlingError')),
      () => api.request('POST', '/users', { body: { email: uniqueEmail(), name: 'Tess' } }),
    );
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ code: 'CONFLICT' });
  });
});

describe("the register routes' limit (3 per 5 minutes per address)", () => {
  /** A registration from `sourceIp`, as API Gateway hands it to the users function, with its own correlation id. */
  function registration(sourceIp: string, correlationId: string): APIGatewayProxyEventV2 {
    const event = httpEvent({
      method: 'POST',
      path: '/users',
      headers: { 'content-type': 'application/json', 'x-correlation-id': correlationId },
      body: JSON.stringify({ email: uniqueEmail(), name: 'Tess' }),
    });
    return {
      ...event,
      requestContext: { ...event.requestContext, http: { ...event.requestContext.http, sourceIp } },
    };
  }

  it('gives back the unit of a registration answered 504 because the invocation ran out of time', async () => {
    const { handler } = await import('../../functions/users/handler.js');
    const register = async (correlationId: string, remainingMs: number) =>
      (await handler(
        registration(sourceIp, correlationId),
        lambdaContext(remainingMs),
      )) as APIGatewayProxyStructuredResultV2;
    const sourceIp = randomLoopbackAddress();
    // Two of the address's three units go to registrations that are stored.
    expect((await register(randomUUID(), 10_000)).statusCode).toBe(201);
    expect((await register(randomUUID(), 10_000)).statusCode).toBe(201);
    // The third's transaction hangs (and never lands: it carries its request's correlation id), past the
    // 1.5 s its invocation has.
    const hungId = randomUUID();
    hanging.stall((body) => body.includes('"TransactItems"') && body.includes(hungId));
    const timedOut = await register(hungId, 1500);
    expect(timedOut.statusCode).toBe(504);
    expect(JSON.parse(timedOut.body ?? '{}')).toMatchObject({
      code: 'DEPENDENCY_TIMEOUT',
      detail: 'The request did not complete in time',
    });
    // Answered by the route's own pipeline, whose limit admitted it (its last unit) and gave the unit back.
    expect(timedOut.headers).toMatchObject({ 'X-RateLimit-Remaining': '0' });
    // Its unit came back: the address registers once more.
    const retried = await register(randomUUID(), 10_000);
    expect(retried.statusCode).toBe(201);
    expect(retried.headers).toMatchObject({ 'X-RateLimit-Remaining': '0' });
    hanging.stall(undefined);
  });
});

describe('a 503 on a route whose limit has no unit left for the retry', () => {
  it("tells the client to come back when the limit admits it, not after the dependency's 5 s", async () => {
    const sourceIp = randomLoopbackAddress();
    // Everything but the rate limit's own items fails: the limit admits, the users table does not answer.
    dynamoDb.refuse((_operation, body) => !body.includes('"RL#'));
    const refused = await api
      .request('POST', `/users/${randomUUID()}/verify-phone`, { sourceIp, body: { code: '123456' } })
      .finally(() => dynamoDb.refuse(undefined));
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    // mfaVerify: 1 per 10 s per address, spent on this request.
    expect(refused.headers.get('ratelimit')).toBe('"mfaVerify";r=0;t=10');
    expect(refused.headers.get('retry-after')).toBe('10');
  });
});
