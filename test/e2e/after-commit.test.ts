// Work after a commit (emails, SMS codes, webhooks) against a DynamoDB that hangs: the stored change is answered
// with its success status before the invocation's deadline, and what was skipped is reported; limiters log as the function.
import { randomInt, randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { bookingDay } from '../helpers/booking-times.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { adminUser, randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';
import { type StallingDynamoDb, startStallingDynamoDb } from '../helpers/stalling-dynamodb.js';

const at = bookingDay(29);

// Before any function module loads: their loggers and metrics read these at cold start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
enableMetricsOutput();

let dynamoDb: StallingDynamoDb;
beforeAll(async () => {
  dynamoDb = await startStallingDynamoDb(inject('dynamoDbEndpoint'));
});
// Registered before the runtime's own hooks, so the proxy closes after the runtime has stopped.
afterAll(() => dynamoDb.close());
const api = useLocalRuntime({ as: adminUser, dynamoDbEndpoint: () => dynamoDb.endpoint });
const output = captureStdout();

/** What each stall hangs, by the JSON of the request: a phone number's SMS budget, the user's SMS code, webhook subscriptions. */
const smsBudget = (body: string) => body.includes('"RL#sms-number#');
const verificationEmailBudget = (body: string) => body.includes('"RL#verification-email#');
const phoneCodeItem = (body: string) => body.includes('"PHONE_CODE"');
const subscriberQuery = (body: string) => body.includes('"WH#SUB#');

const uniqueEmail = () => `after-commit-${randomUUID()}@example.com`;
/**
 * 415-557: a block no other test file registers. The suite's toolkit table holds each number's SMS budget,
 * which verification.test.ts spends in full on its numbers from 415-555.
 */
const mobileNumber = () => `+1415557${randomInt(1000, 10_000)}`;

type HttpHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<unknown>;

/** An API Gateway event for `routeKey` from a client address of its own (per-IP limits never meet). */
function apiEvent(
  routeKey: string,
  options: { path: string; body?: unknown; token?: string; correlationId: string },
): APIGatewayProxyEventV2 {
  const [method = 'GET'] = routeKey.split(' ');
  const event = httpEvent({
    method,
    path: options.path,
    routeKey,
    headers: {
      'x-correlation-id': options.correlationId,
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const id = /\/([^/]+)$/.exec(options.path)?.[1];
  return {
    ...event,
    ...(routeKey.endsWith('{id}') && id ? { pathParameters: { id } } : {}),
    requestContext: {
      ...event.requestContext,
      http: { ...event.requestContext.http, sourceIp: randomLoopbackAddress() },
    },
  };
}

/** Invokes as Lambda would with `remainingMs` left; says whether the answer came before that deadline. */
async function invoke(handler: HttpHandler, event: APIGatewayProxyEventV2, remainingMs: number) {
  const deadline = Date.now() + remainingMs;
  const response = (await handler(event, lambdaContext(remainingMs))) as APIGatewayProxyStructuredResultV2;
  return { response, beforeDeadline: Date.now() < deadline, body: JSON.parse(response.body ?? '{}') };
}

/** The function's log lines of one request, by its correlation id. */
const linesOf = (correlationId: string) =>
  output.json().filter((line) => line.correlation_id === correlationId);

/** Every value the function's metric lines gave `name` since the test started. */
const metricValues = (service: string, name: string) =>
  output
    .emf()
    .filter((line) => line.service === service && line[name] !== undefined)
    .map((line) => line[name]);

describe("the users function's own limiters", () => {
  it.each([
    {
      policy: 'sms-number',
      stall: smsBudget,
      // A registration with a phone spends a unit of the number's budget for its SMS code.
      request: async (correlationId: string) =>
        api.request('POST', '/users', {
          body: { email: uniqueEmail(), name: 'Dora', phone: mobileNumber() },
          headers: { 'x-correlation-id': correlationId },
        }),
      status: 201,
    },
    {
      policy: 'verification-email',
      stall: verificationEmailBudget,
      request: async (correlationId: string) => {
        // Registering spends nothing of this budget: only the request for the email again does.
        const user = await api.request('POST', '/users', { body: { email: uniqueEmail(), name: 'Eve' } });
        return api.request('POST', `/users/${(user.body as { id: string }).id}/verification-email`, {
          headers: { 'x-correlation-id': correlationId },
        });
      },
      status: 202,
    },
  ])(
    'log a $policy store outage as one JSON line with the request correlation id, and admit per instance',
    async ({ policy, stall, request, status }) => {
      const correlationId = `limiter-${policy}-${randomUUID()}`;
      const consoleWarn = vi.spyOn(console, 'warn');
      dynamoDb.stall(stall);
      const response = await request(correlationId).finally(() => dynamoDb.stall(undefined));
      expect(response.status).toBe(status);
      expect(dynamoDb.stalled()).toBeGreaterThan(0);
      // The function logger's one JSON line, not the limiter's default, the console (several lines, no correlation id).
      expect(consoleWarn).not.toHaveBeenCalled();
      const outage = output.lines().filter((line) => line.includes('Rate-limit store unavailable'));
      expect(outage).toHaveLength(1);
      expect(linesOf(correlationId)).toContainEqual(
        expect.objectContaining({
          level: 'WARN',
          service: 'users',
          message: 'Rate-limit store unavailable; counting per instance until it answers again',
          policy,
          reason: 'store_timeout',
        }),
      );
    },
  );
});

describe('work after the commit, past the invocation deadline', () => {
  it('answers a registration 201 before the deadline when its SMS code hangs, and reports the messages it skipped', async () => {
    const { handler } = await import('../../functions/users/handler.js');
    const register = (body: object, correlationId: string) =>
      apiEvent('POST /users', { path: '/users', body, correlationId });
    // This module's first invocation, unhindered: what a cold start loads is not the point here.
    const warm = await invoke(handler, register({ email: uniqueEmail(), name: 'Warm' }, 'warm-up'), 10_000);
    expect(warm.response.statusCode).toBe(201);

    const correlationId = `register-${randomUUID()}`;
    const email = uniqueEmail();
    output.clear();
    dynamoDb.stall((body) => phoneCodeItem(body) || subscriberQuery(body));
    const { response, beforeDeadline, body } = await invoke(
      handler,
      register({ email, name: 'Dora', phone: mobileNumber() }, correlationId),
      3000,
    ).finally(() => dynamoDb.stall(undefined));

    expect(response.statusCode).toBe(201);
    expect(beforeDeadline).toBe(true);
    expect(body).toMatchObject({ email, name: 'Dora' });
    expect((await api.request('GET', `/users/${body.id}`)).status).toBe(200);
    // What was given up, each said once, with the deadline as the cause.
    const skipped = linesOf(correlationId).filter((line) => line.level === 'ERROR');
    expect(skipped.map((line) => line.message)).toEqual([
      'Registration emails were not enqueued; the user is registered',
      'Webhooks for user.registered were not all enqueued; the change itself is committed',
    ]);
    for (const line of skipped) expect(line.error).toMatch(/^DeadlineExceededError: /);
    expect(
      output
        .audit()
        .filter((audit) => audit.correlationId === correlationId)
        .map((audit) => [audit.eventType, audit.outcome, audit.userId]),
    ).toEqual([
      ['email.enqueue_failed', 'error', body.id],
      ['webhook.enqueue_failed', 'error', body.id],
      ['http.request', 'success', undefined],
    ]);
    expect(metricValues('users', 'EmailEnqueueFailed')).toEqual([1]);
    expect(metricValues('users', 'WebhookEnqueueFailed')).toEqual([1]);
  });

  it('answers a booking 201 and its cancellation 200 before the deadline when the subscriber query hangs', async () => {
    const { handler } = await import('../../functions/bookings/handler.js');
    const token = await api.token(adminUser);
    const user = (await api.request('POST', '/users', { body: { email: uniqueEmail(), name: 'Bob' } }))
      .body as { id: string };
    const book = (roomId: string, correlationId: string) =>
      apiEvent('POST /bookings', {
        path: '/bookings',
        token,
        correlationId,
        body: { roomId, userId: user.id, start: at(9), end: at(10) },
      });
    const warm = await invoke(handler, book(`warm-${randomUUID()}`, 'warm-up'), 10_000);
    expect(warm.response.statusCode).toBe(201);

    const roomId = `orion-${randomUUID()}`;
    const created = `book-${randomUUID()}`;
    const cancelled = `cancel-${randomUUID()}`;
    output.clear();
    dynamoDb.stall(subscriberQuery);
    const creation = await invoke(handler, book(roomId, created), 3000);
    const cancellation = await invoke(
      handler,
      apiEvent('DELETE /bookings/{id}', {
        path: `/bookings/${creation.body.id}`,
        token,
        correlationId: cancelled,
      }),
      3000,
    ).finally(() => dynamoDb.stall(undefined));

    expect([creation.response.statusCode, creation.beforeDeadline]).toEqual([201, true]);
    expect(creation.body).toMatchObject({ roomId, userId: user.id, status: 'confirmed' });
    expect([cancellation.response.statusCode, cancellation.beforeDeadline]).toEqual([200, true]);
    expect(cancellation.body).toMatchObject({ id: creation.body.id, status: 'cancelled' });
    expect(
      ((await api.request('GET', `/bookings/${creation.body.id}`)).body as { status: string }).status,
    ).toBe('cancelled');
    for (const [correlationId, eventType] of [
      [created, 'booking.created'],
      [cancelled, 'booking.cancelled'],
    ] as const) {
      expect(linesOf(correlationId).filter((line) => line.level === 'ERROR')).toEqual([
        expect.objectContaining({
          message: `Webhooks for ${eventType} were not all enqueued; the change itself is committed`,
          userId: user.id,
          error: expect.stringMatching(/^DeadlineExceededError: /),
        }),
      ]);
    }
    expect(metricValues('bookings', 'WebhookEnqueueFailed')).toEqual([1, 1]);
  });
});
