// The sample through the local runtime: bookings checks users over signed HTTP, degrades and recovers.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { isFailingLocally, localFailVariable } from '../../bin/runtime/local-failures.js';
import { type LocalRuntime, startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import { assertUserExists, usersCircuit } from '../../functions/bookings/users-service.js';
import { DependencyError } from '../../middleware/errors.js';
import { bookingDay } from '../helpers/booking-times.js';
import { testTableNames } from '../helpers/tables.js';

let runtime: LocalRuntime;
let token: string;
let userId: string;

// A toolkit table of its own: the `users` circuit this file opens must not reach other files' runtimes.
const tableNames = { app: testTableNames.app, toolkit: `bulwark-toolkit-cb-${randomUUID().slice(0, 8)}` };

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function request(
  method: string,
  path: string,
  body?: unknown,
  bearer: string | null = token,
): Promise<Answer> {
  const response = await fetch(`${runtime.url}${path}`, {
    method,
    headers: {
      ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

let hour = 0;
const bookingHour = bookingDay(13);
/** A booking request for a fresh slot: each call books the next hour in a room of its own. */
function book(forUser = userId): Promise<Answer> {
  hour += 1;
  const start = new Date(bookingHour(hour));
  const end = new Date(start.getTime() + 3_600_000);
  return request('POST', '/bookings', {
    roomId: `room-${randomUUID()}`,
    userId: forUser,
    start: start.toISOString(),
    end: end.toISOString(),
  });
}

beforeAll(async () => {
  runtime = await startLocalRuntime({
    port: 0,
    dynamoDbEndpoint: inject('dynamoDbEndpoint'),
    tableNames,
    // The suite's one key: users written here must stay readable to every other file's admin listing.
    encryptionKey: inject('encryptionKey'),
    // The shared app table: a sweep here would publish the events other files leave pending on purpose.
    bookingEventSweep: false,
  });
  token = await runtime.auth.devIssuer.mint({ sub: 'cb-sample', roles: ['admin'] });
  const created = await request('POST', '/users', {
    email: `cb-${randomUUID()}@example.com`,
    name: 'Breaker',
  });
  userId = String(created.body.id);
});

afterEach(() => {
  delete process.env[localFailVariable];
  vi.useRealTimers();
});

afterAll(async () => {
  await runtime?.stop();
});

describe('POST /bookings and the users service', () => {
  it('books after the users service, called over HTTP with a signed request, confirms the user', async () => {
    expect((await book()).status).toBe(201);
    // The users route takes no anonymous caller: the bookings function's call got through signed.
    expect((await request('GET', `/users/${userId}`, undefined, null)).status).toBe(401);
  });

  it('answers 400 on body.userId when the users service does not know the user, and books nothing', async () => {
    const answer = await book(randomUUID());
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      code: 'VALIDATION_FAILED',
      errors: [{ field: 'body.userId', message: 'No such user' }],
    });
  });

  it('fails fast with 503 and Retry-After once users is down, and recovers on its own once it is back', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now());
    process.env[localFailVariable] = 'users';
    expect((await request('GET', `/users/${userId}`)).status).toBe(503);

    const answers: Answer[] = [];
    for (let attempt = 0; attempt < 8; attempt += 1) answers.push(await book());
    const failed = answers.filter((answer) => answer.status === 502);
    const rejected = answers.filter((answer) => answer.status === 503);
    // Each booking tries users twice (one retry); the fifth failed call opens the circuit.
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThanOrEqual(usersCircuit.failureThreshold);
    expect(failed.length + rejected.length).toBe(answers.length);
    expect(answers.at(-1)?.status).toBe(503);
    for (const answer of rejected) {
      expect(answer.headers.get('content-type')).toBe('application/problem+json');
      expect(answer.body).toMatchObject({ code: 'CIRCUIT_OPEN', status: 503 });
      const retryAfter = Number(answer.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(usersCircuit.resetTimeoutMs / 1000);
    }

    // Users is back, but the circuit stays open until its reset timeout has passed.
    delete process.env[localFailVariable];
    expect((await book()).status).toBe(503);
    vi.setSystemTime(Date.now() + usersCircuit.resetTimeoutMs);
    // Two successful probes close it again; bookings then flow as before.
    for (let attempt = 0; attempt < usersCircuit.successThreshold + 2; attempt += 1) {
      expect((await book()).status).toBe(201);
    }
  });
});

describe('assertUserExists', () => {
  it('passes a 429 from users on as 503 with its Retry-After, and other failures as 502', async () => {
    const answering =
      (status: number, headers: Record<string, string> = {}) =>
      async () =>
        new Response(null, { status, headers });
    const throttled = await assertUserExists(answering(429, { 'retry-after': '7' }), 'u-1').catch((e) => e);
    expect(throttled).toBeInstanceOf(DependencyError);
    expect(throttled).toMatchObject({
      statusCode: 503,
      code: 'DEPENDENCY_UNAVAILABLE',
      upstreamStatus: 429,
      headers: { 'Retry-After': '7' },
    });
    const refused = await assertUserExists(answering(401), 'u-1').catch((e) => e);
    expect(refused).toMatchObject({
      statusCode: 502,
      code: 'DEPENDENCY_FAILED',
      upstreamStatus: 401,
      headers: {},
    });
  });
});

describe('the local failure switch', () => {
  it('names functions by a comma-separated list, read from the environment it is given', () => {
    expect(isFailingLocally('users', { [localFailVariable]: 'users' })).toBe(true);
    expect(isFailingLocally('users', { [localFailVariable]: 'bookings, users' })).toBe(true);
    expect(isFailingLocally('users', { [localFailVariable]: 'usersx' })).toBe(false);
    expect(isFailingLocally('users', {})).toBe(false);
  });
});
