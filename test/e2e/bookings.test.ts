import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingsModel, startTimeProblem } from '../../functions/bookings/bookings-model.js';
import { bookingKey, slotKey } from '../../functions/shared/keys.js';
import { UnsupportedEventError, ValidationError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { lambdaContext } from '../audit/fixtures.js';
import { until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import { type Receiver, registerEndpoint, startReceiver } from '../webhooks/helpers.js';

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
  detail?: string;
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

  it('refuses a room id with a capital with 400 naming the rule, so a room has one spelling and one booking an hour', async () => {
    const roomId = room();
    expect((await book({ roomId, start: at(9), end: at(10) })).status).toBe(201);
    for (const spelling of [`R${roomId.slice(1)}`, roomId.toUpperCase()]) {
      const response = await book({ roomId: spelling, start: at(9), end: at(10) });
      expect(response.status, spelling).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        {
          field: 'body.roomId',
          message:
            'Must be 1-64 lower-case letters, digits, - or _: a room has one spelling (atlas, not Atlas)',
        },
      ]);
    }
    expect((await book({ roomId, start: at(9), end: at(10) })).status).toBe(409);
  });

  it('gives one rule for a room id, listed with the other fields a body breaks', async () => {
    const rule =
      'Must be 1-64 lower-case letters, digits, - or _: a room has one spelling (atlas, not Atlas)';
    const empty = await book({ roomId: '', start: at(9), end: at(10) });
    expect(empty.status).toBe(400);
    expect((empty.body as ProblemBody).errors).toEqual([{ field: 'body.roomId', message: rule }]);
    const capitalAndMisaligned = await book({ roomId: 'Atlas', start: at(9, 5), end: at(10) });
    expect(capitalAndMisaligned.status).toBe(400);
    expect(capitalAndMisaligned.body).toMatchObject({ detail: 'Invalid request: body.start, body.roomId' });
    expect((capitalAndMisaligned.body as ProblemBody).errors).toEqual([
      { field: 'body.start', message: 'Must be on a 15-minute boundary' },
      { field: 'body.roomId', message: rule },
    ]);
    const capitalAndNoStart = await book({ roomId: 'Atlas', start: 'nope', end: at(10) });
    expect((capitalAndNoStart.body as ProblemBody).errors).toContainEqual({
      field: 'body.roomId',
      message: rule,
    });
  });

  it('reads and cancels a booking stored with a capital in its room id before the rule, freeing its slots', async () => {
    const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
    const bookings = new BookingsModel(documents, testTableNames.app);
    const roomId = `Room-${randomUUID()}`;
    const stored = await bookings.create({ roomId, userId, start: new Date(at(9)), end: new Date(at(10)) });
    const read = await api.request('GET', `/bookings/${stored.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: stored.id, roomId, status: 'confirmed' });
    const cancelled = await api.request('DELETE', `/bookings/${stored.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id: stored.id, roomId, status: 'cancelled' });
    const slotItems = await Promise.all(
      [0, 15, 30, 45].map((minute) =>
        documents.send(
          new GetCommand({ TableName: testTableNames.app, Key: slotKey(roomId, new Date(at(9, minute))) }),
        ),
      ),
    );
    expect(slotItems.map(({ Item }) => Item)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('lets one of ten overlapping bookings, sent back to back through the runtime, succeed', async () => {
    // The runtime runs one bookings invocation at a time, so these arrive one after another; the race
    // itself, on separate instances at once, is in test/e2e/model-races.test.ts.
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

  it('says a date-time without an offset needs one', async () => {
    const response = await book({ roomId: room(), start: at(9).replace('.000Z', ''), end: at(10) });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors).toEqual([
      { field: 'body.start', message: 'Must be an ISO 8601 date-time with an offset (Z or +02:00)' },
    ]);
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

  it('cancels a booking, freeing its slots; a repeat answers 200 with the booking unchanged', async () => {
    const roomId = room();
    const booking = (await book({ roomId, start: at(13), end: at(14) })).body as Booking;

    const cancelled = await api.request('DELETE', `/bookings/${booking.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toEqual({ ...booking, status: 'cancelled', cancelledAt: expect.any(String) });
    expect((await api.request('GET', `/bookings/${booking.id}`)).body).toEqual(cancelled.body);

    expect((await book({ roomId, start: at(13), end: at(14) })).status).toBe(201);
    const repeated = await api.request('DELETE', `/bookings/${booking.id}`);
    expect(repeated.status).toBe(200);
    expect(repeated.text).toBe(cancelled.text);
    expect((await api.request('GET', `/bookings/${booking.id}`)).body).toEqual(cancelled.body);
  });

  it('cancels nothing under If-None-Match: *, which is false for a booking that exists', async () => {
    const booking = (await book({ roomId: room(), start: at(15), end: at(16) })).body as Booking;
    const refused = await api.request('DELETE', `/bookings/${booking.id}`, {
      headers: { 'if-none-match': '*' },
    });
    expect(refused.status).toBe(412);
    expect(refused.body).toMatchObject({ code: 'PRECONDITION_FAILED' });
    expect((await api.request('GET', `/bookings/${booking.id}`)).body).toEqual(booking);
  });

  it('publishes booking.cancelled once however often the cancel is repeated', async () => {
    const booker = (
      await api.request('POST', '/users', {
        body: { email: `canceller-${randomUUID()}@example.com`, name: 'Canceller' },
      })
    ).body as { id: string };
    const token = await api.token({ sub: booker.id });
    const receiver = await startReceiver();
    try {
      await registerEndpoint(api, token, receiver.url, ['booking.cancelled']);
      const cancelledIds = () =>
        receiver.received
          .map((webhook) => JSON.parse(webhook.body) as { type: string; data: { id: string } })
          .filter((webhook) => webhook.type === 'booking.cancelled')
          .map((webhook) => webhook.data.id);
      const bookFor = async () =>
        (await book({ userId: booker.id, roomId: room(), start: at(15), end: at(16) })).body as Booking;
      const booking = await bookFor();
      for (let attempt = 0; attempt < 3; attempt += 1) {
        expect((await api.request('DELETE', `/bookings/${booking.id}`, { token })).status).toBe(200);
      }
      // A later booking's event arrives behind any a repeat would have published.
      const later = await bookFor();
      expect((await api.request('DELETE', `/bookings/${later.id}`, { token })).status).toBe(200);
      await until(() => (cancelledIds().includes(later.id) ? true : undefined), 30_000);
      expect(cancelledIds().filter((id) => id === booking.id)).toHaveLength(1);
    } finally {
      await receiver.close();
    }
  });

  it('answers a cancel that lost the race to another as a repeat: the first cancel stands, nothing more is written', async () => {
    const bookings = new BookingsModel(
      createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') })),
      testTableNames.app,
    );
    const created = (await book({ roomId: room(), start: at(17), end: at(18) })).body as Booking;
    const stored = await bookings.get(created.id);
    // Its booking.created went out with the create's answer.
    expect(stored).toEqual({ booking: created, pendingEvents: [] });
    // Both read the booking confirmed; the second's transaction finds it cancelled.
    const first = await bookings.cancel(stored, new Date('2030-01-01T00:00:00Z'));
    const second = await bookings.cancel(stored, new Date('2030-01-02T00:00:00Z'));
    expect(first).toEqual({
      booking: { ...created, status: 'cancelled', cancelledAt: '2030-01-01T00:00:00.000Z' },
      pendingEvents: ['booking.cancelled'],
      cancelledNow: true,
    });
    // Still pending, as no handler published it: the repeat is told so.
    expect(second).toEqual({ ...first, cancelledNow: false });
    expect((await api.request('GET', `/bookings/${created.id}`)).body).toEqual(first.booking);
  });

  it('still answers 409, changing nothing, when a slot of the booking is not held by it', async () => {
    const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
    const roomId = room();
    const booking = (await book({ roomId, start: at(19), end: at(20) })).body as Booking;
    await documents.send(
      new DeleteCommand({ TableName: testTableNames.app, Key: slotKey(roomId, new Date(at(19, 30))) }),
    );
    const refused = await api.request('DELETE', `/bookings/${booking.id}`);
    expect(refused.status).toBe(409);
    expect((refused.body as ProblemBody).detail).toBe(
      `Booking ${booking.id} could not be cancelled: one of its slots is not held by it`,
    );
    expect((await api.request('GET', `/bookings/${booking.id}`)).body).toEqual(booking);
  });

  it('gives slot items a TTL a day past their slot, and cancels a booking whose ended slots TTL deleted', async () => {
    const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
    const bookings = new BookingsModel(documents, testTableNames.app);
    const roomId = room();
    const booking = (await book({ roomId, start: at(21), end: at(22) })).body as Booking;
    const slotStartsOfBooking = [0, 15, 30, 45].map((minute) => new Date(at(21, minute)));
    const slotItems = () =>
      Promise.all(
        slotStartsOfBooking.map(async (slotStart) => {
          const { Item } = await documents.send(
            new GetCommand({ TableName: testTableNames.app, Key: slotKey(roomId, slotStart) }),
          );
          return Item;
        }),
      );
    expect((await slotItems()).map((item) => item?.expiresAt)).toEqual(
      slotStartsOfBooking.map((slotStart) => (slotStart.getTime() + 15 * 60_000) / 1000 + 86_400),
    );
    // At the second its last slot item expires (the second TTL and isExpired count as expired), TTL deleted it.
    await documents.send(
      new DeleteCommand({ TableName: testTableNames.app, Key: slotKey(roomId, new Date(at(21, 45))) }),
    );
    const later = new Date(Date.parse(at(22)) + 86_400_000);
    const cancelled = await bookings.cancel(await bookings.get(booking.id), later);
    expect(cancelled).toMatchObject({ booking: { status: 'cancelled' }, cancelledNow: true });
    expect(await slotItems()).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('lists from an instant on with ?from=, reading none before it, and refuses a cursor from before it', async () => {
    const owner = (
      await api.request('POST', '/users', {
        body: { email: `from-${randomUUID()}@example.com`, name: 'From Owner' },
      })
    ).body as { id: string };
    const day = bookingDay(8);
    const made: Booking[] = [];
    for (const hour of [9, 11, 13]) {
      const created = await api.request('POST', '/bookings', {
        body: { userId: owner.id, roomId: room(), start: day(hour), end: day(hour, 30) },
      });
      made.push(created.body as Booking);
    }
    const list = (query: string) => api.request('GET', `/bookings?userId=${owner.id}&${query}`);
    const page = (response: { body: unknown }) => response.body as { items: Booking[]; nextCursor?: string };

    // The instant itself is included; its offset form does not matter.
    const fromEleven = await list(`from=${encodeURIComponent(day(11).replace('Z', '+00:00'))}`);
    expect(fromEleven.status).toBe(200);
    expect(page(fromEleven).items.map((booking) => booking.id)).toEqual([made[1]?.id, made[2]?.id]);
    const first = page(await list(`from=${day(11)}&limit=1`));
    expect(first.items.map((booking) => booking.id)).toEqual([made[1]?.id]);
    const second = page(await list(`from=${day(11)}&limit=1&cursor=${first.nextCursor}`));
    expect(second.items.map((booking) => booking.id)).toEqual([made[2]?.id]);

    // A cursor of the whole list, at the 09:00 booking: DynamoDB would refuse it as a start key.
    const before = page(await list('limit=1'));
    expect(before.items.map((booking) => booking.id)).toEqual([made[0]?.id]);
    const refused = await list(`from=${day(11)}&cursor=${before.nextCursor}`);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({
      errors: [{ field: 'query.cursor', message: 'Not a cursor from this list' }],
    });

    const malformed = await list('from=tomorrow');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({
      errors: [
        { field: 'query.from', message: 'Must be an ISO 8601 date-time with an offset (Z or +02:00)' },
      ],
    });
  });

  it('refuses ?from= whose + was sent unencoded, arriving as a space, with a 400 that says to send %2B', async () => {
    const elevenInParis = `${at(0).slice(0, 10)}T11:00:00+02:00`;
    for (const spelling of [elevenInParis, elevenInParis.replace('+', '.000+')]) {
      const response = await api.request('GET', `/bookings?userId=${userId}&from=${spelling}`);
      expect(response.status, spelling).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        {
          field: 'query.from',
          message:
            'Must be an ISO 8601 date-time with an offset (Z or +02:00); in a query string send the + of an offset as %2B, since an unencoded + arrives as a space',
        },
      ]);
    }
    const encoded = await api.request(
      'GET',
      `/bookings?userId=${userId}&from=${encodeURIComponent(elevenInParis)}`,
    );
    expect(encoded.status).toBe(200);
  });

  it('refuses a query parameter the list does not know with 400 naming it, instead of listing everybody’s', async () => {
    const response = await api.request('GET', `/bookings?user_id=${userId}&limit=5&sort=start`);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: 'Invalid request: query.user_id, query.sort',
      errors: [
        { field: 'query.user_id', message: 'Unknown field' },
        { field: 'query.sort', message: 'Unknown field' },
      ],
    });
    expect((await api.request('GET', `/bookings?userId=${userId}&limit=5`)).status).toBe(200);
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

describe('retrying a booking with an Idempotency-Key', () => {
  const retryAt = bookingDay(9);
  const toolkitDocuments = createDocumentClient(
    createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }),
  );
  const receivers: Receiver[] = [];
  afterAll(async () => {
    await Promise.all(receivers.map((receiver) => receiver.close()));
  });

  /** A registered user of their own and a token acting as them (bookings for themselves only). */
  async function newBooker() {
    const created = await api.request('POST', '/users', {
      body: { email: `retry-${randomUUID()}@example.com`, name: 'Retrying Booker' },
    });
    const id = (created.body as { id: string }).id;
    return { id, token: await api.token({ sub: id }) };
  }

  function bookWithKey(token: string, key: string | undefined, body: Record<string, unknown>) {
    return api.request('POST', '/bookings', {
      token,
      body,
      ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
    });
  }

  async function bookingIdsOf(bookerId: string): Promise<string[]> {
    const listed = await api.request('GET', `/bookings?userId=${bookerId}&limit=100`);
    expect(listed.status).toBe(200);
    return (listed.body as { items: Booking[] }).items.map((booking) => booking.id);
  }

  /** The ids of the bookings whose booking.created reached `receiver`, one entry per delivery. */
  const createdDeliveries = (receiver: Receiver) =>
    receiver.received
      .map((webhook) => JSON.parse(webhook.body) as { type: string; data: { id: string } })
      .filter((webhook) => webhook.type === 'booking.created')
      .map((webhook) => webhook.data.id);

  it('replays a booking of the slot under way after that slot has begun, where a new one is refused', async () => {
    const minute = 60_000;
    const slotUnderWay = Date.now() - (Date.now() % (15 * minute));
    const booker = await newBooker();
    const key = randomUUID();
    const body = {
      roomId: room(),
      userId: booker.id,
      start: new Date(slotUnderWay).toISOString(),
      end: new Date(slotUnderWay + 30 * minute).toISOString(),
    };
    // Only Date is faked: the runtime's timers and sockets run as usual.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(slotUnderWay + 14 * minute);
      const first = await bookWithKey(booker.token, key, body);
      expect(first.status).toBe(201);
      // The retry comes after the slot it booked has passed into the past.
      vi.setSystemTime(slotUnderWay + 16 * minute);
      const retry = await bookWithKey(booker.token, key, body);
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.text).toBe(first.text);
      const fresh = await bookWithKey(booker.token, randomUUID(), { ...body, roomId: room() });
      expect(fresh.status).toBe(400);
      expect((fresh.body as ProblemBody).errors).toEqual([
        {
          field: 'body.start',
          message: 'Must not be in the past: the earliest start is the current 15-minute slot',
        },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers the same key and body with the booking it made: one booking, one booking.created', async () => {
    const booker = await newBooker();
    const receiver = await startReceiver();
    receivers.push(receiver);
    await registerEndpoint(api, booker.token, receiver.url, ['booking.created']);
    const key = randomUUID();
    const body = { roomId: room(), userId: booker.id, start: retryAt(9), end: retryAt(10) };

    const first = await bookWithKey(booker.token, key, body);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const booking = first.body as Booking;
    await until(() => (createdDeliveries(receiver).includes(booking.id) ? true : undefined), 30_000);

    const retry = await bookWithKey(booker.token, key, body);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('location')).toBe(`/bookings/${booking.id}`);
    expect(await bookingIdsOf(booker.id)).toEqual([booking.id]);
    // Kept in the toolkit table beside the other functions' records, for an hour.
    const records = await idempotencyRecordsOf(toolkitDocuments, 'bookings');
    const kept = records.filter((record) => JSON.stringify(record).includes(booking.id));
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ status: 'COMPLETED', pk: `IDEM#bookings#${kept[0]?.sk}` });
    expect(kept[0]?.expiresAt).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
    expect(kept[0]?.expiresAt).toBeGreaterThan(Math.floor(Date.now() / 1000) + 3500);

    // A later booking's event arrives behind any the retry would have published.
    const later = (await bookWithKey(booker.token, undefined, { ...body, roomId: room() })).body as Booking;
    await until(() => (createdDeliveries(receiver).includes(later.id) ? true : undefined), 30_000);
    expect(createdDeliveries(receiver).filter((id) => id === booking.id)).toHaveLength(1);
  });

  it('refuses an Idempotency-Key sent twice, which arrives joined by a comma, so it never stands for a third key', async () => {
    const booker = await newBooker();
    const body = { roomId: room(), userId: booker.id, start: retryAt(13), end: retryAt(14) };
    const [first, second] = [randomUUID(), randomUUID()];
    const refusal = {
      status: 400,
      code: 'VALIDATION_FAILED',
      detail: 'The idempotency key must not contain a comma, which joins the values of a header sent twice',
    };
    const twice = await api.request('POST', '/bookings', {
      token: booker.token,
      body,
      headers: { 'idempotency-key': [first, second] },
    });
    expect(twice.body).toMatchObject(refusal);
    expect((await bookWithKey(booker.token, `${first},${second}`, body)).body).toMatchObject(refusal);
    expect(await bookingIdsOf(booker.id)).toEqual([]);
  });

  /** Stands for the record's hour passing: deletes the Idempotency-Key record that holds `bookingId`'s answer. */
  async function expireRecordOf(bookingId: string) {
    const records = await idempotencyRecordsOf(toolkitDocuments, 'bookings');
    const kept = records.filter((record) => JSON.stringify(record).includes(bookingId));
    expect(kept).toHaveLength(1);
    await toolkitDocuments.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: { pk: kept[0]?.pk, sk: kept[0]?.sk } }),
    );
  }

  /** `instant` (ISO in UTC) written at +01:00: the same instant in other bytes. */
  const atPlusOne = (instant: string) =>
    new Date(Date.parse(instant) + 3_600_000).toISOString().replace('Z', '+01:00');

  it.each(['in UTC', 'at +01:00'])(
    'judges a retry by its instants, not their offset, while the record lasts and after it: first sent %s',
    async (firstOffset) => {
      const booker = await newBooker();
      const key = randomUUID();
      const inUtc = { roomId: room(), userId: booker.id, start: retryAt(17), end: retryAt(18) };
      const atOffset = { ...inUtc, start: atPlusOne(inUtc.start), end: atPlusOne(inUtc.end) };
      const [sentFirst, sentAgain] = firstOffset === 'in UTC' ? [inUtc, atOffset] : [atOffset, inUtc];
      const first = await bookWithKey(booker.token, key, sentFirst);
      expect(first.status).toBe(201);
      const booking = first.body as Booking;
      expect(booking).toMatchObject({ start: inUtc.start, end: inUtc.end });

      const expectReplayed = async (body: Record<string, unknown>) => {
        const retry = await bookWithKey(booker.token, key, body);
        expect(retry.status).toBe(201);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.text).toBe(first.text);
      };
      const expectRefused = async () => {
        const other = await bookWithKey(booker.token, key, { ...inUtc, end: retryAt(19) });
        expect(other.status).toBe(422);
        expect((other.body as ProblemBody).code).toBe('IDEMPOTENCY_KEY_REUSED');
      };
      // While the record lasts.
      await expectReplayed(sentAgain);
      await expectReplayed(sentFirst);
      await expectRefused();
      // After it, each body compared with the booking the key made (each replay stores a record anew).
      for (const body of [sentAgain, sentFirst]) {
        await expireRecordOf(booking.id);
        await expectReplayed(body);
      }
      await expireRecordOf(booking.id);
      await expectRefused();
      expect(await bookingIdsOf(booker.id)).toEqual([booking.id]);
    },
  );

  it('replays a booking stored with a capital in its room id before the rule, where a new one is refused', async () => {
    const booker = await newBooker();
    const key = randomUUID();
    const body = { roomId: room(), userId: booker.id, start: retryAt(15), end: retryAt(16) };
    const first = await bookWithKey(booker.token, key, body);
    expect(first.status).toBe(201);
    const booking = first.body as Booking;
    // As an earlier version stored it: the room id as the client wrote it, the key's record gone.
    const olderRoomId = `R${body.roomId.slice(1)}`;
    await toolkitDocuments.send(
      new UpdateCommand({
        TableName: testTableNames.app,
        Key: bookingKey(booking.id),
        UpdateExpression: 'SET roomId = :roomId',
        ExpressionAttributeValues: { ':roomId': olderRoomId },
      }),
    );
    await expireRecordOf(booking.id);

    const retry = await bookWithKey(booker.token, key, { ...body, roomId: olderRoomId });
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body).toEqual({ ...booking, roomId: olderRoomId });
    expect(retry.headers.get('location')).toBe(`/bookings/${booking.id}`);

    const fresh = await bookWithKey(booker.token, randomUUID(), { ...body, roomId: `R${room().slice(1)}` });
    expect(fresh.status).toBe(400);
    expect(fresh.body).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: 'Invalid request: body.roomId',
      errors: [
        {
          field: 'body.roomId',
          message:
            'Must be 1-64 lower-case letters, digits, - or _: a room has one spelling (atlas, not Atlas)',
        },
      ],
    });
    expect(await bookingIdsOf(booker.id)).toEqual([booking.id]);
  });

  it('answers 422 to the same key with another body, and books nothing more', async () => {
    const booker = await newBooker();
    const key = randomUUID();
    const body = { roomId: room(), userId: booker.id, start: retryAt(11), end: retryAt(12) };
    const first = await bookWithKey(booker.token, key, body);
    expect(first.status).toBe(201);

    const other = await bookWithKey(booker.token, key, { ...body, roomId: room() });
    expect(other.status).toBe(422);
    expect(other.headers.get('content-type')).toBe('application/problem+json');
    expect(other.body).toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
      detail: 'This idempotency key was already used with a different request',
    });
    expect(await bookingIdsOf(booker.id)).toEqual([(first.body as Booking).id]);
    // The stored answer is still there for the real retry.
    expect((await bookWithKey(booker.token, key, body)).text).toBe(first.text);
  });

  it('makes one booking of five requests with the same key sent back to back through the runtime, replayed to the other four', async () => {
    // The runtime runs one bookings invocation at a time, so each request finds the one before it finished;
    // a request meeting another still in progress (409, Retry-After) is held in test/http/idempotency.test.ts
    // ("answers 409 with Retry-After while the first request with the key still runs").
    const booker = await newBooker();
    const key = randomUUID();
    const body = { roomId: room(), userId: booker.id, start: retryAt(13), end: retryAt(14) };
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => bookWithKey(booker.token, key, body)),
    );
    const ids = await bookingIdsOf(booker.id);
    expect(ids).toHaveLength(1);
    for (const response of responses) {
      expect(response.status).toBe(201);
      expect((response.body as Booking).id).toBe(ids[0]);
    }
    const replayed = responses.filter((response) => response.headers.get('idempotent-replayed') === 'true');
    expect(replayed).toHaveLength(4);
  });

  it("never replays a key to another caller: theirs books anew, the admin's meets the room's conflict", async () => {
    const owner = await newBooker();
    const other = await newBooker();
    const key = randomUUID();
    const body = { roomId: room(), userId: owner.id, start: retryAt(15), end: retryAt(16) };
    const owners = await bookWithKey(owner.token, key, body);
    expect(owners.status).toBe(201);

    // Another body under the same key: not the owner's 422 either, a booking of the other's own.
    const others = await bookWithKey(other.token, key, { ...body, roomId: room(), userId: other.id });
    expect(others.status).toBe(201);
    expect(others.headers.get('idempotent-replayed')).toBeNull();
    expect((others.body as Booking).id).not.toBe((owners.body as Booking).id);
    expect(await bookingIdsOf(other.id)).toEqual([(others.body as Booking).id]);

    // The very same request from an admin is a new booking of the owner's room, which is taken.
    const admins = await api.request('POST', '/bookings', { body, headers: { 'idempotency-key': key } });
    expect(admins.status).toBe(409);
    expect(admins.headers.get('idempotent-replayed')).toBeNull();
    expect((admins.body as ProblemBody).detail).toMatch(/already booked/);
    expect(await bookingIdsOf(owner.id)).toEqual([(owners.body as Booking).id]);
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
