import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingsModel, startTimeProblem } from '../../functions/bookings/bookings-model.js';
import { UnsupportedEventError, ValidationError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { lambdaContext } from '../audit/fixtures.js';
import { bookingDay } from '../helpers/booking-times.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

// A human admin may call every route; test/auth covers who else may.
const api = useLocalRuntime({ as: adminUser });

interface Booking {
  id: string;
  roomId: string;
  userId: string;
  start: string;
  end: string;
  status: string;
}

interface ProblemBody {
  code: string;
  errors?: { field: string; message: string }[];
}

let userId: string;
const room = () => `room-${randomUUID()}`;
const at = bookingDay(7);

const book = (body: Record<string, unknown>) =>
  api.request('POST', '/bookings', { body: { userId, ...body } });

beforeAll(async () => {
  const created = await api.request('POST', '/users', {
    body: { email: `booker-${randomUUID()}@example.com`, name: 'Booker' },
  });
  userId = (created.body as { id: string }).id;
});

describe('bookings API', () => {
  it('creates a booking, answering 201 with its Location, and reads it back there', async () => {
    const roomId = room();
    const created = await book({ roomId, start: at(9), end: at(10, 30) });
    expect(created.status).toBe(201);
    const booking = created.body as Booking;
    expect(booking).toMatchObject({ roomId, userId, start: at(9), end: at(10, 30), status: 'confirmed' });
    expect(created.headers.get('location')).toBe(`/bookings/${booking.id}`);
    expect((await api.request('GET', created.headers.get('location') as string)).body).toEqual(booking);
  });

  it('normalises offsets to UTC', async () => {
    const created = await book({
      roomId: room(),
      start: at(11).replace('.000Z', '+02:00'),
      end: at(12).replace('.000Z', '+02:00'),
    });
    expect(created.status).toBe(201);
    expect((created.body as Booking).start).toBe(at(9));
  });

  it('rejects an overlapping booking with 409 and leaves the existing one and its slots untouched', async () => {
    const roomId = room();
    const existing = (await book({ roomId, start: at(9), end: at(11) })).body as Booking;

    const overlapping = await book({ roomId, start: at(10), end: at(12) });
    expect(overlapping.status).toBe(409);
    expect((overlapping.body as ProblemBody).code).toBe('CONFLICT');

    expect((await api.request('GET', `/bookings/${existing.id}`)).body).toEqual(existing);
    // The failed request claimed nothing: the free part of its period is still bookable.
    expect((await book({ roomId, start: at(11), end: at(12) })).status).toBe(201);
  });

  it('allows back-to-back bookings of one room and the same period in another room', async () => {
    const roomId = room();
    expect((await book({ roomId, start: at(9), end: at(10) })).status).toBe(201);
    expect((await book({ roomId, start: at(10), end: at(11) })).status).toBe(201);
    expect((await book({ roomId: room(), start: at(9), end: at(10) })).status).toBe(201);
  });

  it('lets exactly one of ten concurrent overlapping bookings succeed', async () => {
    const roomId = room();
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, index) => book({ roomId, start: at(8 + (index % 3)), end: at(11) })),
    );
    expect(responses.filter((response) => response.status === 201)).toHaveLength(1);
    expect(responses.filter((response) => response.status === 409)).toHaveLength(9);
  });

  it.each([
    ['end before start', { start: at(10), end: at(9) }, 'body.end'],
    ['end equal to start', { start: at(10), end: at(10) }, 'body.end'],
    ['longer than 8 hours', { start: at(8), end: at(16, 15) }, 'body.end'],
    ['an invalid date', { start: `${at(10).slice(0, 4)}-02-30T10:00:00Z`, end: at(11) }, 'body.start'],
    ['a date without time', { start: at(10).slice(0, 10), end: at(11) }, 'body.start'],
    ['a start off the 15-minute grid', { start: at(9, 10), end: at(11) }, 'body.start'],
    // A Date would drop the sub-millisecond digits and see 09:00 and 09:15 on the grid.
    [
      'instants finer than a millisecond',
      { start: at(9).replace('.000Z', '.0009Z'), end: at(9, 15).replace('.000Z', '.000999999Z') },
      'body.start',
    ],
  ])('rejects %s with 400 naming the field', async (_name, period, field) => {
    const response = await book({ roomId: room(), ...period });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors?.map((error) => error.field)).toContain(field);
  });

  // The offsets move these past the four-digit years that keep the list indexes in time order. Both are
  // also outside the booking horizon, so the message, not the field, shows the year check answered.
  it.each([
    ['after 9999', { start: '9999-12-31T23:00:00-14:00', end: '9999-12-31T23:45:00-14:00' }],
    ['before 0000', { start: '0000-01-01T00:00:00+14:00', end: '0000-01-01T01:00:00+14:00' }],
  ])('rejects an instant %s in UTC with 400 saying so', async (_name, period) => {
    const response = await book({ roomId: room(), ...period });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors).toContainEqual(
      expect.objectContaining({
        field: 'body.start',
        message: 'Must fall within the years 0000 to 9999 in UTC',
      }),
    );
  });

  describe('against the clock', () => {
    const minute = 60_000;
    const day = 86_400_000;
    /** The start of the 15-minute slot under way at the real time: the clock is pinned 7 minutes into it. */
    let slotUnderWay: number;
    const iso = (time: number) => new Date(time).toISOString();
    const period = (start: number) => ({ start: iso(start), end: iso(start + 60 * minute) });

    const pinClock = () => {
      slotUnderWay = Date.now() - (Date.now() % (15 * minute));
      // Only Date: the runtime's timers and sockets run as usual. Tokens issued before stay valid.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(slotUnderWay + 7 * minute);
    };
    afterEach(() => {
      vi.useRealTimers();
    });

    it('accepts the slot under way, begun 7 minutes ago', async () => {
      pinClock();
      expect((await book({ roomId: room(), ...period(slotUnderWay) })).status).toBe(201);
    });

    it('refuses the slot before it with 400 on body.start, storing nothing', async () => {
      pinClock();
      const roomId = room();
      const response = await book({ roomId, ...period(slotUnderWay - 15 * minute) });
      expect(response.status).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        {
          field: 'body.start',
          message: 'Must not be in the past: the earliest start is the current 15-minute slot',
        },
      ]);
      // Nothing claimed: the room is free from the refused start on.
      expect(
        (await book({ roomId, start: iso(slotUnderWay), end: iso(slotUnderWay + 45 * minute) })).status,
      ).toBe(201);
    });

    it('accepts a start 365 days ahead and refuses one a slot later with 400 on body.start', async () => {
      pinClock();
      const horizon = slotUnderWay + 365 * day;
      expect((await book({ roomId: room(), ...period(horizon) })).status).toBe(201);
      const response = await book({ roomId: room(), ...period(horizon + 15 * minute) });
      expect(response.status).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        { field: 'body.start', message: 'Must be at most 365 days ahead' },
      ]);
    });
  });

  it('accepts exactly 8 hours', async () => {
    expect((await book({ roomId: room(), start: at(8), end: at(16) })).status).toBe(201);
  });

  it('rejects a booking for an unknown user without claiming the room', async () => {
    const roomId = room();
    const response = await book({ roomId, userId: randomUUID(), start: at(9), end: at(10) });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors?.[0]?.field).toBe('body.userId');
    expect((await book({ roomId, start: at(9), end: at(10) })).status).toBe(201);
  });

  it('books nothing for a user deleted after the users service answered: the transaction checks the user too', async () => {
    const leaving = (
      await api.request('POST', '/users', {
        body: { email: `leaving-${randomUUID()}@example.com`, name: 'Leaving' },
      })
    ).body as { id: string };
    // The handler has asked the users service (the user existed); the deletion lands before the write.
    expect((await api.request('DELETE', `/admin/users/${leaving.id}`)).status).toBe(204);
    const bookings = new BookingsModel(
      createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') })),
      testTableNames.app,
    );
    const roomId = room();
    const refused = await bookings
      .create({ roomId, userId: leaving.id, start: new Date(at(9)), end: new Date(at(10)) })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toMatchObject({
      statusCode: 400,
      fields: [{ field: 'body.userId', message: 'No such user' }],
    });
    expect((await book({ roomId, start: at(9), end: at(10) })).status).toBe(201);
  });

  it('cancels a booking, freeing its slots, and refuses to cancel it twice', async () => {
    const roomId = room();
    const booking = (await book({ roomId, start: at(13), end: at(14) })).body as Booking;

    const cancelled = await api.request('DELETE', `/bookings/${booking.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id: booking.id, status: 'cancelled' });
    expect((await api.request('GET', `/bookings/${booking.id}`)).body).toMatchObject({ status: 'cancelled' });

    expect((await book({ roomId, start: at(13), end: at(14) })).status).toBe(201);
    expect((await api.request('DELETE', `/bookings/${booking.id}`)).status).toBe(409);
  });

  it('answers 404 for unknown bookings', async () => {
    expect((await api.request('GET', `/bookings/${randomUUID()}`)).status).toBe(404);
    expect((await api.request('DELETE', `/bookings/${randomUUID()}`)).status).toBe(404);
  });

  it('refuses a direct invoke without a request context by failing it, not answering it, when it lists another user', async () => {
    // The runtime started above set the function's environment; API Gateway would add requestContext.
    const { handler } = await import('../../functions/bookings/handler.js');
    const event = {
      version: '2.0',
      routeKey: 'GET /bookings',
      rawPath: '/bookings',
      rawQueryString: 'userId=someone-else',
      headers: { authorization: `Bearer ${await api.token({ sub: 'bare-event-user' })}` },
      queryStringParameters: { userId: 'someone-else' },
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2;
    await expect(handler(event, lambdaContext())).rejects.toThrow(UnsupportedEventError);
  });

  it("lists a user's bookings page by page with a cursor", async () => {
    const owner = (
      await api.request('POST', '/users', {
        body: { email: `lister-${randomUUID()}@example.com`, name: 'Lister' },
      })
    ).body as { id: string };
    const created: string[] = [];
    for (const hour of [9, 10, 11]) {
      const response = await api.request('POST', '/bookings', {
        body: { userId: owner.id, roomId: room(), start: at(hour), end: at(hour + 1) },
      });
      created.push((response.body as Booking).id);
    }
    const first = await api.request('GET', `/bookings?userId=${owner.id}&limit=2`);
    const firstPage = first.body as { items: Booking[]; nextCursor: string };
    expect(firstPage.items.map((booking) => booking.id)).toEqual(created.slice(0, 2));
    const second = await api.request(
      'GET',
      `/bookings?userId=${owner.id}&limit=2&cursor=${encodeURIComponent(firstPage.nextCursor)}`,
    );
    expect((second.body as { items: Booking[] }).items.map((booking) => booking.id)).toEqual(
      created.slice(2),
    );

    const all = await api.request('GET', '/bookings?limit=5');
    expect(all.status).toBe(200);
    expect((all.body as { items: Booking[] }).items.length).toBeGreaterThan(0);
    expect((await api.request('GET', '/bookings?cursor=not-a-cursor')).status).toBe(400);
    // 350 characters but 1,050 UTF-8 bytes: past DynamoDB's 1,024-byte sort key, refused before it is asked.
    const oversized = Buffer.from(
      JSON.stringify({ pk: 'BOOKING#x', sk: '€'.repeat(350), gsi1pk: 'BOOKING', gsi1sk: 'c' }),
    ).toString('base64url');
    const refused = await api.request('GET', `/bookings?cursor=${oversized}`);
    expect(refused.status).toBe(400);
    expect((refused.body as ProblemBody).errors?.[0]?.field).toBe('query.cursor');
  });
});

describe('startTimeProblem', () => {
  const now = new Date('2031-05-06T09:07:30Z');
  const problem = (start: string, horizonDays = 365) => startTimeProblem(new Date(start), now, horizonDays);

  it('allows the slot under way and any later one up to the horizon', () => {
    expect(problem('2031-05-06T09:00:00Z')).toBeUndefined();
    expect(problem('2031-05-06T09:15:00Z')).toBeUndefined();
    expect(problem('2031-05-08T09:00:00Z', 2)).toBeUndefined();
  });

  it('refuses an earlier slot, however recent', () => {
    expect(problem('2031-05-06T08:45:00Z')).toBe(
      'Must not be in the past: the earliest start is the current 15-minute slot',
    );
    expect(problem('1970-01-01T00:00:00Z')).toBeDefined();
  });

  it('refuses a start beyond the horizon, counted from now', () => {
    expect(problem('2031-05-08T09:15:00Z', 2)).toBe('Must be at most 2 days ahead');
    expect(problem('9999-12-31T09:00:00Z')).toBe('Must be at most 365 days ahead');
  });
});
