// A create whose DynamoDB transaction lands while every answer to it comes too late (504, which deletes the
// Idempotency-Key's record), then sent again with the same key: the retry gets what the first request made.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingIdTakenError, BookingsModel, bookingIdFor } from '../../functions/bookings/bookings-model.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import {
  type StallingDynamoDb,
  type StallRule,
  startStallingDynamoDb,
} from '../helpers/stalling-dynamodb.js';
import { testTableNames } from '../helpers/tables.js';
import { type Receiver, registerEndpoint, startReceiver } from '../webhooks/helpers.js';

let dynamoDb: StallingDynamoDb;
let receiver: Receiver;
beforeAll(async () => {
  dynamoDb = await startStallingDynamoDb(inject('dynamoDbEndpoint'));
  receiver = await startReceiver();
});
// Registered before the runtime's own hooks, so the proxy closes after the runtime has stopped.
afterAll(async () => {
  await receiver.close();
  await dynamoDb.close();
});
const api = useLocalRuntime({ as: adminUser, dynamoDbEndpoint: () => dynamoDb.endpoint });

/** The transactions that create a booking, and an endpoint (with its owner's count): picked by their items' keys. */
const bookingTransaction: StallRule = (body) =>
  body.includes('"TransactItems"') && body.includes('"BOOKING#');
const registrationTransaction: StallRule = (body) =>
  body.includes('"TransactItems"') && body.includes('"ENDPOINT_COUNT"');

/** Every SDK attempt at a create long enough to time out. */
const lateCommitTimeout = 60_000;

/** Sends `request` while the transaction `rule` picks lands but is never answered; expects its 504. */
async function commitLate<T extends { status: number }>(rule: StallRule, request: () => Promise<T>) {
  const stalledBefore = dynamoDb.stalled();
  dynamoDb.stall(rule, { applied: true });
  const answer = await request().finally(() => dynamoDb.stall(undefined));
  expect(answer.status).toBe(504);
  expect(dynamoDb.stalled()).toBeGreaterThan(stalledBefore);
  return answer;
}

const room = () => `room-${randomUUID()}`;
const at = bookingDay(12);

interface Booking {
  id: string;
  roomId: string;
  userId: string;
  start: string;
  end: string;
  status: string;
}

describe('a booking whose transaction landed after its 504, sent again with its Idempotency-Key', () => {
  /** A registered user of their own and a token acting as them. */
  async function newBooker() {
    const created = await api.request('POST', '/users', {
      body: { email: `late-${randomUUID()}@example.com`, name: 'Late Booker' },
    });
    const id = (created.body as { id: string }).id;
    return { id, token: await api.token({ sub: id }) };
  }

  const bookWithKey = (token: string, key: string, body: Record<string, unknown>) =>
    api.request('POST', '/bookings', { token, body, headers: { 'idempotency-key': key } });

  async function bookingsOf(bookerId: string): Promise<Booking[]> {
    const listed = await api.request('GET', `/bookings?userId=${bookerId}&limit=100`);
    expect(listed.status).toBe(200);
    return (listed.body as { items: Booking[] }).items;
  }

  /** The ids of the bookings whose booking.created reached the receiver, one entry per delivery. */
  const createdDeliveries = () =>
    receiver.received
      .map((webhook) => JSON.parse(webhook.body) as { type: string; data: { id: string } })
      .filter((webhook) => webhook.type === 'booking.created')
      .map((webhook) => webhook.data.id);

  it('meets its own id at the store: BookingIdTakenError, not the room conflict its own slots meet', async () => {
    const booker = await newBooker();
    const bookings = new BookingsModel(
      createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') })),
      testTableNames.app,
    );
    const id = bookingIdFor([null, 'jwt', 'person', booker.id, 'POST /bookings', '/bookings', randomUUID()]);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const input = { id, roomId: room(), userId: booker.id, start: new Date(at(15)), end: new Date(at(16)) };
    expect((await bookings.create(input)).id).toBe(id);
    const again = await bookings.create(input).catch((error: unknown) => error);
    expect(again).toBeInstanceOf(BookingIdTakenError);
    expect(again).toMatchObject({ bookingId: id, statusCode: 409, message: `Booking ${id} already exists` });
  });

  it(
    'gets the booking it made, with its 201 and Location, and its booking.created once',
    async () => {
      const booker = await newBooker();
      await registerEndpoint(api, booker.token, receiver.url, ['booking.created']);
      const key = randomUUID();
      const body = { roomId: room(), userId: booker.id, start: at(9), end: at(10) };
      await commitLate(bookingTransaction, () => bookWithKey(booker.token, key, body));
      const [made] = await bookingsOf(booker.id);

      const retry = await bookWithKey(booker.token, key, body);
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('location')).toBe(`/bookings/${made?.id}`);
      expect(retry.body).toEqual(made);
      expect(made).toMatchObject({ ...body, status: 'confirmed' });
      // The first request never got to publish: the retry does.
      await until(() => (createdDeliveries().includes(made?.id as string) ? true : undefined), 30_000);

      // Stored now: a third send is the record's replay, the same answer, with nothing published again.
      const third = await bookWithKey(booker.token, key, body);
      expect(third.headers.get('idempotent-replayed')).toBe('true');
      expect(third.text).toBe(retry.text);
      const later = await api.request('POST', '/bookings', {
        token: booker.token,
        body: { ...body, roomId: room() },
      });
      const laterId = (later.body as Booking).id;
      await until(() => (createdDeliveries().includes(laterId) ? true : undefined), 30_000);
      expect(createdDeliveries().filter((id) => id === made?.id)).toHaveLength(1);
      expect((await bookingsOf(booker.id)).map((booking) => booking.id).sort()).toEqual(
        [made?.id, laterId].sort(),
      );
    },
    lateCommitTimeout,
  );

  it(
    'answers 422 to the key with another body, and books nothing more',
    async () => {
      const booker = await newBooker();
      const key = randomUUID();
      const body = { roomId: room(), userId: booker.id, start: at(11), end: at(12) };
      await commitLate(bookingTransaction, () => bookWithKey(booker.token, key, body));
      const [made] = await bookingsOf(booker.id);

      const other = await bookWithKey(booker.token, key, { ...body, roomId: room() });
      expect(other.status).toBe(422);
      expect(other.headers.get('content-type')).toBe('application/problem+json');
      expect(other.body).toMatchObject({
        status: 422,
        code: 'IDEMPOTENCY_KEY_REUSED',
        type: 'urn:bulwark:problem:idempotency-key-reused',
        detail: 'This idempotency key was already used with a different request',
      });
      expect(await bookingsOf(booker.id)).toEqual([made]);
      // The same body still gets its booking.
      expect((await bookWithKey(booker.token, key, body)).body).toEqual(made);
    },
    lateCommitTimeout,
  );

  it(
    'gets the booking once its slot has begun, where a new booking of that start is refused',
    async () => {
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
      // Only Date is faked: the runtime's timers and sockets, and so the SDK's timeouts, run as usual.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(slotUnderWay + 14 * minute);
        await commitLate(bookingTransaction, () => bookWithKey(booker.token, key, body));
        vi.setSystemTime(slotUnderWay + 16 * minute);
        const retry = await bookWithKey(booker.token, key, body);
        expect(retry.status).toBe(201);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.body).toMatchObject({ ...body, status: 'confirmed' });
        const fresh = await bookWithKey(booker.token, randomUUID(), { ...body, roomId: room() });
        expect(fresh.status).toBe(400);
      } finally {
        vi.useRealTimers();
      }
      expect(await bookingsOf(booker.id)).toHaveLength(1);
    },
    lateCommitTimeout,
  );
});

describe('a registration whose transaction landed after its 504, sent again with its Idempotency-Key', () => {
  const registration = { url: 'https://1.1.1.1/hooks', eventTypes: ['booking.created', 'booking.cancelled'] };

  const register = (token: string, key: string, body: unknown = registration) =>
    api.request('POST', '/webhooks', { token, body, headers: { 'idempotency-key': key } });

  async function endpointsOf(token: string): Promise<{ id: string }[]> {
    const listed = await api.request('GET', '/webhooks?limit=100', { token });
    expect(listed.status).toBe(200);
    return (listed.body as { items: { id: string }[] }).items;
  }

  it(
    'gets the endpoint it made with its secret, and registers no second',
    async () => {
      const token = await api.token({ sub: `late-${randomUUID()}` });
      const key = randomUUID();
      await commitLate(registrationTransaction, () => register(token, key));
      const [made] = await endpointsOf(token);

      const retry = await register(token, key);
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('location')).toBe(`/webhooks/${made?.id}`);
      expect(retry.body).toMatchObject({ ...registration, id: made?.id, status: 'enabled' });
      expect((retry.body as { secret: string }).secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      // Stored now: the record's replay reads the same secret from the endpoint.
      expect((await register(token, key)).text).toBe(retry.text);
      expect(await endpointsOf(token)).toEqual([made]);
    },
    lateCommitTimeout,
  );

  it(
    'answers 422 to the key with another body, and registers nothing more',
    async () => {
      const token = await api.token({ sub: `late-${randomUUID()}` });
      const key = randomUUID();
      await commitLate(registrationTransaction, () => register(token, key));
      const made = await endpointsOf(token);

      const other = await register(token, key, { ...registration, eventTypes: ['booking.created'] });
      expect(other.status).toBe(422);
      expect(other.body).toMatchObject({
        status: 422,
        code: 'IDEMPOTENCY_KEY_REUSED',
        type: 'urn:bulwark:problem:idempotency-key-reused',
        detail: 'This idempotency key was already used with a different request',
      });
      expect(other.text).not.toContain('whsec_');
      expect(await endpointsOf(token)).toEqual(made);
    },
    lateCommitTimeout,
  );

  it(
    'answers 409 naming the endpoint, without its secret, past the hour a replay would have shown it',
    async () => {
      const sub = `late-${randomUUID()}`;
      const key = randomUUID();
      await commitLate(registrationTransaction, async () => register(await api.token({ sub }), key));
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 61 * 60_000);
        // Minted in the faked hour, so that it is valid then.
        const token = await api.token({ sub });
        const [made] = await endpointsOf(token);
        const retry = await register(token, key);
        expect(retry.status).toBe(409);
        expect(retry.headers.get('content-type')).toBe('application/problem+json');
        expect((retry.body as { detail: string }).detail).toMatch(
          new RegExp(
            `^Webhook endpoint ${made?.id} was registered with this Idempotency-Key at .+; its signing secret is shown again only within 60 minutes of registering\\. To get a new secret, delete the endpoint and register again with a new key$`,
          ),
        );
        expect(retry.text).not.toContain('whsec_');
        expect(await endpointsOf(token)).toEqual([made]);
      } finally {
        vi.useRealTimers();
      }
    },
    lateCommitTimeout,
  );
});

describe('a registration whose transaction landed after its 504, its endpoint deleted, sent again with its Idempotency-Key', () => {
  it(
    'answers 409: the endpoint it made was deleted, and no endpoint gets its id again',
    async () => {
      const token = await api.token({ sub: `late-${randomUUID()}` });
      const key = randomUUID();
      const body = { url: 'https://1.1.1.1/hooks', eventTypes: ['booking.created'] };
      const register = () =>
        api.request('POST', '/webhooks', { token, body, headers: { 'idempotency-key': key } });
      await commitLate(registrationTransaction, register);
      const listed = await api.request('GET', '/webhooks', { token });
      const [made] = (listed.body as { items: { id: string }[] }).items;
      expect((await api.request('DELETE', `/webhooks/${made?.id}`, { token })).status).toBe(204);

      const retry = await register();
      expect(retry.status).toBe(409);
      expect(retry.headers.get('content-type')).toBe('application/problem+json');
      expect((retry.body as { detail: string }).detail).toBe(
        `Webhook endpoint ${made?.id}, which a registration with this Idempotency-Key made, was deleted; register with a new Idempotency-Key`,
      );
      expect((await api.request('GET', `/webhooks/${made?.id}`, { token })).status).toBe(404);
      const after = await api.request('GET', '/webhooks', { token });
      expect((after.body as { items: unknown[] }).items).toEqual([]);
    },
    lateCommitTimeout,
  );
});

describe('a create with an Idempotency-Key that is answered in time', () => {
  it('reads nothing more than one without a key: only its transaction names the booking or the endpoint', async () => {
    const seen: string[] = [];
    dynamoDb.stall((body) => {
      seen.push(body);
      return false;
    });
    try {
      const user = await api.request('POST', '/users', {
        body: { email: `late-${randomUUID()}@example.com`, name: 'On Time' },
      });
      const userId = (user.body as { id: string }).id;
      const booked = await api.request('POST', '/bookings', {
        body: { roomId: room(), userId, start: at(13), end: at(14) },
        headers: { 'idempotency-key': randomUUID() },
      });
      expect(booked.status).toBe(201);
      const bookingId = (booked.body as Booking).id;
      expect(seen.filter((body) => body.includes(`BOOKING#${bookingId}`))).toHaveLength(1);

      const token = await api.token({ sub: `on-time-${randomUUID()}` });
      const registered = await api.request('POST', '/webhooks', {
        token,
        body: { url: 'https://1.1.1.1/hooks', eventTypes: ['booking.created'] },
        headers: { 'idempotency-key': randomUUID() },
      });
      expect(registered.status).toBe(201);
      const endpointId = (registered.body as { id: string }).id;
      expect(seen.filter((body) => body.includes(`WH#${endpointId}"`))).toHaveLength(1);
    } finally {
      dynamoDb.stall(undefined);
    }
  });
});
