// A create whose DynamoDB transaction lands while every answer to it comes too late (504, which deletes the
// Idempotency-Key's record), then sent again with the same key: the retry gets what the first request made.
// And a user registration whose transaction lands so, sent again: its retry's 409 queues the emails the
// first never did. And a phone code whose write lands so: it is sent all the same. And an audited change
// (an email verified, a user deleted, a webhook endpoint enabled) whose write lands so: its audit line is
// written, its outcome `unknown`, and the retry, which finds the change made, writes none; one whose read
// before the write gets no answer wrote nothing, and writes no line.
import { randomInt, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingIdTakenError, BookingsModel, bookingIdFor } from '../../functions/bookings/bookings-model.js';
import { phoneCodeKey, userKey } from '../../functions/shared/keys.js';
import { webhookIdFor } from '../../functions/shared/webhook-ids.js';
import {
  createDocumentClient,
  createDynamoDbClient,
  type DynamoDbClientOptions,
} from '../../middleware/store/client.js';
import { decodedEml, emailsTo, until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import {
  type StallingDynamoDb,
  type StallRule,
  startStallingDynamoDb,
} from '../helpers/stalling-dynamodb.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deliveriesOf,
  type Receiver,
  registerEndpoint,
  registeringWebhookStore,
  startReceiver,
} from '../webhooks/helpers.js';

// Before any function module loads: their loggers read it at cold start, and audit lines are INFO.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

/**
 * Each late commit waits out every SDK attempt at it. The functions' clients keep their three attempts
 * but time each out after this, not the deployed 2 s: the file's eight late commits took 48 s of it.
 */
const { functionAttemptTimeoutMs } = vi.hoisted(() => ({ functionAttemptTimeoutMs: 750 }));
vi.mock('../../middleware/store/client.js', async (importOriginal) => {
  const store = await importOriginal<typeof import('../../middleware/store/client.js')>();
  return {
    ...store,
    createDynamoDbClient: (options: DynamoDbClientOptions = {}) =>
      store.createDynamoDbClient({ requestTimeoutMs: functionAttemptTimeoutMs, ...options }),
  };
});

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
const output = captureStdout();

/** The transactions that create a booking, and an endpoint (with its owner's count): picked by their items' keys. */
const bookingTransaction: StallRule = (body) =>
  body.includes('"TransactItems"') && body.includes('"BOOKING#') && !body.includes('":cancelled"');
/** The transaction that cancels a booking (and frees its slots). */
const cancelTransaction: StallRule = (body) =>
  body.includes('"TransactItems"') && body.includes('"BOOKING#') && body.includes('":cancelled"');
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

/** Sends `request` while the requests `rule` picks never reach DynamoDB nor get an answer; resolves with its answer. */
async function neverAnswered<T extends { status: number }>(rule: StallRule, request: () => Promise<T>) {
  const stalledBefore = dynamoDb.stalled();
  dynamoDb.stall(rule);
  const answer = await request().finally(() => dynamoDb.stall(undefined));
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

/** The suite's DynamoDB itself, not the proxy: what the functions stored, read without stalls. */
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));

/** The booking item's `pendingEvents` as stored: a Set, or undefined once none is pending. */
async function storedPendingEvents(bookingId: string): Promise<unknown> {
  const { Item } = await documents.send(
    new GetCommand({
      TableName: testTableNames.app,
      Key: { pk: `BOOKING#${bookingId}`, sk: 'BOOKING' },
      ConsistentRead: true,
    }),
  );
  return Item?.pendingEvents;
}

/** A registered user of their own and a token acting as them. */
async function newBooker() {
  const created = await api.request('POST', '/users', {
    body: { email: `late-${randomUUID()}@example.com`, name: 'Late Booker' },
  });
  const id = (created.body as { id: string }).id;
  return { id, token: await api.token({ sub: id }) };
}

/** The webhooks of `type` that reached the receiver: one entry per POST, with its booking's id. */
const deliveriesOfType = (type: string) =>
  receiver.received
    .map((webhook) => ({
      ...(JSON.parse(webhook.body) as { type: string; data: { id: string } }),
      webhookId: webhook.headers['webhook-id'],
    }))
    .filter((webhook) => webhook.type === type);

/** The ids of the bookings whose `type` event reached the receiver, one entry per POST. */
const deliveredIds = (type: string) => deliveriesOfType(type).map((webhook) => webhook.data.id);

/** Waits until `bookingId`'s `type` event has reached the receiver. */
const deliveredFor = (type: string, bookingId: string) =>
  until(() => (deliveredIds(type).includes(bookingId) ? true : undefined), 30_000);

const bookWithKey = (token: string, key: string, body: Record<string, unknown>) =>
  api.request('POST', '/bookings', { token, body, headers: { 'idempotency-key': key } });

describe('a booking whose transaction landed after its 504, sent again with its Idempotency-Key', () => {
  async function bookingsOf(bookerId: string): Promise<Booking[]> {
    const listed = await api.request('GET', `/bookings?userId=${bookerId}&limit=100`);
    expect(listed.status).toBe(200);
    return (listed.body as { items: Booking[] }).items;
  }

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
      const endpoint = await registerEndpoint(api, booker.token, receiver.url, ['booking.created']);
      const key = randomUUID();
      const body = { roomId: room(), userId: booker.id, start: at(9), end: at(10) };
      await commitLate(bookingTransaction, () => bookWithKey(booker.token, key, body));
      const [made] = await bookingsOf(booker.id);
      const madeId = made?.id as string;
      expect(await storedPendingEvents(madeId)).toEqual(new Set(['booking.created']));

      const retry = await bookWithKey(booker.token, key, body);
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('location')).toBe(`/bookings/${made?.id}`);
      expect(retry.body).toEqual(made);
      expect(made).toMatchObject({ ...body, status: 'confirmed' });
      // The first request never got to publish: the retry does, and marks it published.
      await deliveredFor('booking.created', madeId);
      expect(await storedPendingEvents(madeId)).toBeUndefined();

      // Stored now: a third send is the record's replay, the same answer, with nothing published again.
      const third = await bookWithKey(booker.token, key, body);
      expect(third.headers.get('idempotent-replayed')).toBe('true');
      expect(third.text).toBe(retry.text);
      const later = await api.request('POST', '/bookings', {
        token: booker.token,
        body: { ...body, roomId: room() },
      });
      const laterId = (later.body as Booking).id;
      await deliveredFor('booking.created', laterId);
      expect(
        deliveriesOfType('booking.created')
          .filter((webhook) => webhook.data.id === madeId)
          .map((webhook) => webhook.webhookId),
      ).toEqual([webhookIdFor(`booking.created/${madeId}`, endpoint.id)]);
      expect((await bookingsOf(booker.id)).map((booking) => booking.id).sort()).toEqual(
        [made?.id, laterId].sort(),
      );
    },
    lateCommitTimeout,
  );

  it(
    'answers 422 to the key with another room, start, end or user, and books nothing more',
    async () => {
      // An admin may book for anyone, so the same caller can send the key with another user. One late
      // commit serves every variant: each takes the SDK's three timed-out attempts.
      const admin = await api.token(adminUser);
      const booker = await newBooker();
      const otherUser = await newBooker();
      const key = randomUUID();
      const body = { roomId: room(), userId: booker.id, start: at(13), end: at(14) };
      await commitLate(bookingTransaction, () => bookWithKey(admin, key, body));
      const [made] = await bookingsOf(booker.id);
      expect(made).toMatchObject({ ...body, status: 'confirmed' });

      const otherRoom = await bookWithKey(admin, key, { ...body, roomId: room() });
      expect(otherRoom.status).toBe(422);
      expect(otherRoom.headers.get('content-type')).toBe('application/problem+json');
      expect(otherRoom.body).toMatchObject({
        status: 422,
        code: 'IDEMPOTENCY_KEY_REUSED',
        type: 'urn:bulwark:problem:idempotency-key-reused',
        detail: 'This idempotency key was already used with a different request',
      });
      for (const other of [
        { ...body, end: at(15) },
        { ...body, start: at(12) },
        { ...body, userId: otherUser.id },
      ]) {
        const answer = await bookWithKey(admin, key, other);
        expect(answer.status).toBe(422);
        expect((answer.body as { code: string }).code).toBe('IDEMPOTENCY_KEY_REUSED');
      }
      expect(await bookingsOf(booker.id)).toEqual([made]);
      expect(await bookingsOf(otherUser.id)).toEqual([]);
      // The same body still gets its booking.
      expect((await bookWithKey(admin, key, body)).body).toEqual(made);
    },
    lateCommitTimeout,
  );

  it(
    'gets its booking as cancelled once it was cancelled meanwhile, and publishes no booking.created for it',
    async () => {
      const booker = await newBooker();
      await registerEndpoint(api, booker.token, receiver.url, ['booking.created', 'booking.cancelled']);
      const key = randomUUID();
      const body = { roomId: room(), userId: booker.id, start: at(9), end: at(10) };
      await commitLate(bookingTransaction, () => bookWithKey(booker.token, key, body));
      const [made] = await bookingsOf(booker.id);
      const madeId = made?.id as string;
      const cancelled = await cancel(booker, madeId);
      expect(cancelled.status).toBe(200);
      await deliveredFor('booking.cancelled', madeId);

      const retry = await bookWithKey(booker.token, key, body);
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('location')).toBe(`/bookings/${madeId}`);
      expect(retry.body).toEqual(cancelled.body);
      expect(retry.body).toMatchObject({ ...body, status: 'cancelled' });
      // A booking.created after its booking.cancelled would tell subscribers a cancelled booking is on.
      await cancelLaterBooking(booker);
      expect(deliveredIds('booking.created')).not.toContain(madeId);
      expect(deliveredIds('booking.cancelled').filter((id) => id === madeId)).toHaveLength(1);
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

/** A booking of the booker's own, made without a key and answered in time. */
async function bookFor(booker: { id: string; token: string }, start: string, end: string): Promise<Booking> {
  const booked = await api.request('POST', '/bookings', {
    token: booker.token,
    body: { roomId: room(), userId: booker.id, start, end },
  });
  expect(booked.status).toBe(201);
  return booked.body as Booking;
}

const cancel = (booker: { token: string }, bookingId: string) =>
  api.request('DELETE', `/bookings/${bookingId}`, { token: booker.token });

/**
 * Cancels a later booking of the booker's and waits for its booking.cancelled: the queue is worked in
 * order, so any event published before it has arrived by then too.
 */
async function cancelLaterBooking(booker: { id: string; token: string }) {
  const later = await bookFor(booker, at(17), at(18));
  expect((await cancel(booker, later.id)).status).toBe(200);
  await deliveredFor('booking.cancelled', later.id);
}

describe('a cancel whose transaction landed after its 504, sent again', () => {
  it(
    'publishes booking.cancelled on the retry, once, and answers the booking without what is kept beside it',
    async () => {
      const booker = await newBooker();
      const endpoint = await registerEndpoint(api, booker.token, receiver.url, ['booking.cancelled']);
      const booking = await bookFor(booker, at(9), at(10));
      // booking.created had no subscriber: published all the same, so it is no longer pending.
      expect(await storedPendingEvents(booking.id)).toBeUndefined();
      await commitLate(cancelTransaction, () => cancel(booker, booking.id));
      expect(await storedPendingEvents(booking.id)).toEqual(new Set(['booking.cancelled']));

      const retry = await cancel(booker, booking.id);
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual({ ...booking, status: 'cancelled', cancelledAt: expect.any(String) });
      expect((await api.request('GET', `/bookings/${booking.id}`)).text).toBe(retry.text);
      await deliveredFor('booking.cancelled', booking.id);
      expect(await storedPendingEvents(booking.id)).toBeUndefined();

      // Published now: a third DELETE publishes nothing more.
      expect((await cancel(booker, booking.id)).text).toBe(retry.text);
      await cancelLaterBooking(booker);
      const delivered = deliveriesOfType('booking.cancelled').filter(
        (webhook) => webhook.data.id === booking.id,
      );
      expect(delivered).toEqual([
        {
          type: 'booking.cancelled',
          timestamp: (retry.body as { cancelledAt: string }).cancelledAt,
          data: retry.body,
          webhookId: webhookIdFor(`booking.cancelled/${booking.id}`, endpoint.id),
        },
      ]);
    },
    lateCommitTimeout,
  );
});

describe("a booking's events when its requests are answered in time", () => {
  /** Records the body of every DynamoDB request `request` makes, stalling those `stalled` picks. */
  async function requestsOf<T>(request: () => Promise<T>, stalled: StallRule = () => false) {
    const seen: string[] = [];
    dynamoDb.stall((body) => {
      seen.push(body);
      return stalled(body);
    });
    const answer = await request().finally(() => dynamoDb.stall(undefined));
    return { answer, seen };
  }

  /** A query for the subscribers of `type`: the first thing publishing it does. */
  const subscriberQuery =
    (type: string): StallRule =>
    (body) =>
      body.includes('"WH#SUB#') && body.includes(`#${type}"`);

  /** Stands for the hour passing: deletes the Idempotency-Key record that holds the booking's answer. */
  async function expireRecordOf(bookingId: string) {
    const records = await idempotencyRecordsOf(documents, 'bookings');
    const kept = records.filter((record) => JSON.stringify(record).includes(bookingId));
    expect(kept).toHaveLength(1);
    await documents.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: { pk: kept[0]?.pk, sk: kept[0]?.sk } }),
    );
  }

  it('sends no second booking.created for a booking sent again with its key after its record expired', async () => {
    const booker = await newBooker();
    await registerEndpoint(api, booker.token, receiver.url, ['booking.created', 'booking.cancelled']);
    const key = randomUUID();
    const body = { roomId: room(), userId: booker.id, start: at(11), end: at(12) };
    const first = await bookWithKey(booker.token, key, body);
    expect(first.status).toBe(201);
    const booking = first.body as Booking;
    await deliveredFor('booking.created', booking.id);
    expect(await storedPendingEvents(booking.id)).toBeUndefined();
    await expireRecordOf(booking.id);

    const { answer: again, seen } = await requestsOf(() => bookWithKey(booker.token, key, body));
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('location')).toBe(`/bookings/${booking.id}`);
    expect(again.text).toBe(first.text);
    // Nothing was pending, so nothing was published: not even the subscribers were looked up.
    expect(seen.filter(subscriberQuery('booking.created'))).toEqual([]);
    await cancelLaterBooking(booker);
    expect(deliveredIds('booking.created').filter((id) => id === booking.id)).toHaveLength(1);
  });

  it('publishes nothing and writes nothing on a repeated DELETE of a booking whose cancel was answered', async () => {
    const booker = await newBooker();
    const booking = await bookFor(booker, at(13), at(14));
    const cancelled = await cancel(booker, booking.id);
    expect(cancelled.status).toBe(200);
    expect(await storedPendingEvents(booking.id)).toBeUndefined();

    const { answer: repeated, seen } = await requestsOf(() => cancel(booker, booking.id));
    expect(repeated.text).toBe(cancelled.text);
    expect(seen.filter(subscriberQuery('booking.cancelled'))).toEqual([]);
    // The one request that names the booking is its read.
    expect(seen.filter((body) => body.includes(`BOOKING#${booking.id}`))).toEqual([
      expect.stringContaining('"ConsistentRead":true'),
    ]);
  });

  it(
    'keeps booking.cancelled pending when publishing it failed, and publishes it on the repeated DELETE',
    async () => {
      const booker = await newBooker();
      await registerEndpoint(api, booker.token, receiver.url, ['booking.cancelled']);
      const booking = await bookFor(booker, at(15), at(16));
      // Its subscribers cannot be looked up: the fan-out gives up at the deadline and reports it.
      const { answer: cancelled } = await requestsOf(
        () => cancel(booker, booking.id),
        subscriberQuery('booking.cancelled'),
      );
      expect(cancelled.status).toBe(200);
      expect(await storedPendingEvents(booking.id)).toEqual(new Set(['booking.cancelled']));

      const repeated = await cancel(booker, booking.id);
      expect(repeated.text).toBe(cancelled.text);
      await deliveredFor('booking.cancelled', booking.id);
      expect(await storedPendingEvents(booking.id)).toBeUndefined();
      await cancelLaterBooking(booker);
      expect(deliveredIds('booking.cancelled').filter((id) => id === booking.id)).toHaveLength(1);
    },
    lateCommitTimeout,
  );

  it(
    'sends an event published again after its mark was lost with the same webhook-id, and delivers it once',
    async () => {
      const booker = await newBooker();
      const endpoint = await registerEndpoint(api, booker.token, receiver.url, ['booking.cancelled']);
      const booking = await bookFor(booker, at(19), at(20));
      const webhookId = webhookIdFor(`booking.cancelled/${booking.id}`, endpoint.id);
      // Published, but the write that marks it so never gets an answer.
      const { answer: cancelled } = await requestsOf(
        () => cancel(booker, booking.id),
        (body) => body.includes('DELETE pendingEvents'),
      );
      expect(cancelled.status).toBe(200);
      expect(await storedPendingEvents(booking.id)).toEqual(new Set(['booking.cancelled']));
      await deliveredFor('booking.cancelled', booking.id);
      const delivered = async () =>
        (await deliveriesOf(api, booker.token, endpoint.id)).filter(
          (delivery) => delivery.webhookId === webhookId,
        );
      await until(async () => ((await delivered())[0]?.status === 'delivered' ? true : undefined), 30_000);

      // The repeat publishes it again, the same message: the worker takes it for a copy of the first.
      const { answer: repeated, seen } = await requestsOf(() => cancel(booker, booking.id));
      expect(repeated.text).toBe(cancelled.text);
      expect(seen.filter(subscriberQuery('booking.cancelled'))).not.toEqual([]);
      expect(await storedPendingEvents(booking.id)).toBeUndefined();
      await cancelLaterBooking(booker);
      expect(
        deliveriesOfType('booking.cancelled')
          .filter((webhook) => webhook.data.id === booking.id)
          .map((webhook) => webhook.webhookId),
      ).toEqual([webhookId]);
      expect(await delivered()).toEqual([
        expect.objectContaining({ status: 'delivered', attempts: [expect.objectContaining({ attempt: 1 })] }),
      ]);
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
      // The first request stopped before its audit line; the retry wrote its own line, the replay none.
      const ours = (eventType: string) =>
        output
          .audit()
          .filter((audit) => audit.eventType === eventType && audit.metadata.endpointId === made?.id);
      expect(ours('webhook.endpoint_created')).toEqual([]);
      expect(ours('webhook.endpoint_creation_replayed')).toEqual([
        expect.objectContaining({
          outcome: 'success',
          metadata: {
            endpointId: made?.id,
            eventTypes: registration.eventTypes,
            ownerKind: 'user',
            createdAt: (retry.body as { createdAt: string }).createdAt,
          },
        }),
      ]);
    },
    lateCommitTimeout,
  );

  it(
    'answers 422 to the key with another body, and past the hour a replay would have shown the secret, 409 naming the endpoint without it',
    async () => {
      // One late commit serves both: each takes the SDK's three timed-out attempts.
      const sub = `late-${randomUUID()}`;
      const token = await api.token({ sub });
      const key = randomUUID();
      await commitLate(registrationTransaction, () => register(token, key));
      const made = await endpointsOf(token);

      for (const otherBody of [
        { ...registration, eventTypes: ['booking.created'] },
        { ...registration, url: 'https://1.0.0.1/hooks' },
      ]) {
        const other = await register(token, key, otherBody);
        expect(other.status).toBe(422);
        expect(other.body).toMatchObject({
          status: 422,
          code: 'IDEMPOTENCY_KEY_REUSED',
          type: 'urn:bulwark:problem:idempotency-key-reused',
          detail: 'This idempotency key was already used with a different request',
        });
        expect(other.text).not.toContain('whsec_');
      }
      expect(await endpointsOf(token)).toEqual(made);

      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 61 * 60_000);
        // Minted in the faked hour, so that it is valid then.
        const laterToken = await api.token({ sub });
        const [endpoint] = made;
        const retry = await register(laterToken, key);
        expect(retry.status).toBe(409);
        expect(retry.headers.get('content-type')).toBe('application/problem+json');
        expect((retry.body as { detail: string }).detail).toMatch(
          new RegExp(
            `^Webhook endpoint ${endpoint?.id} was registered with this Idempotency-Key at .+; its signing secret is shown again only within 60 minutes of registering\\. To get a new secret, rotate it \\(POST /webhooks/${endpoint?.id}/secret\\)$`,
          ),
        );
        expect(retry.text).not.toContain('whsec_');
        expect(await endpointsOf(laterToken)).toEqual(made);
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
  it('reads nothing more than one without a key: only its writes name the booking or the endpoint', async () => {
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
      // Its transaction, then the one write that marks its booking.created published and takes the
      // booking off the pending-events index.
      const namingBooking = seen.filter((body) => body.includes(`BOOKING#${bookingId}`));
      expect(namingBooking).toEqual([
        expect.stringContaining('"TransactItems"'),
        expect.stringContaining(
          '"DELETE pendingEvents :settled REMOVE gsi3pk, gsi3sk, pendingCorrelationId"',
        ),
      ]);

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

/** The codes of the SMS sent to `phone` so far, read from the worker's outbox, oldest first. */
function smsCodesTo(phone: string): string[] {
  const dir = api.runtime().smsOutboxDir;
  return readdirSync(dir)
    .filter((file) => file.endsWith('.sms.txt'))
    .sort()
    .map((name) => readFileSync(join(dir, name), 'utf8'))
    .filter((content) => content.startsWith(`To: ${phone}\n`))
    .map((content) => /code is (\d{6})\./.exec(content)?.[1] ?? '');
}

/** Waits until `count` SMS have been sent to `phone`, and gives their codes. */
const smsCodesArrived = (phone: string, count: number) =>
  until(() => {
    const codes = smsCodesTo(phone);
    return codes.length >= count ? codes : undefined;
  }, 30_000);

describe('a phone code whose write landed while every answer to it came too late', () => {
  it(
    'is sent all the same: 202, and the code the SMS carries verifies the phone',
    async () => {
      const phone = `+1415555${String(randomInt(1000, 10_000))}`;
      const registered = await api.request('POST', '/users', {
        token: null,
        body: { email: `late-${randomUUID()}@example.com`, name: 'Late Coder', phone },
      });
      expect(registered.status).toBe(201);
      const userId = (registered.body as { id: string }).id;
      await smsCodesArrived(phone, 1);
      // The minute between two codes has passed since the registration's.
      await documents.send(
        new UpdateCommand({
          TableName: testTableNames.app,
          Key: phoneCodeKey(userId),
          UpdateExpression: 'SET issuedAt = :minuteAgo',
          ExpressionAttributeValues: { ':minuteAgo': new Date(Date.now() - 61_000).toISOString() },
        }),
      );

      const stalledBefore = dynamoDb.stalled();
      dynamoDb.stall((body) => body.includes('"TransactItems"') && body.includes('"PHONE_CODE"'), {
        applied: true,
      });
      const requested = await api
        .request('POST', `/users/${userId}/phone-code`, { token: null })
        .finally(() => dynamoDb.stall(undefined));
      expect(dynamoDb.stalled()).toBeGreaterThan(stalledBefore);
      expect(requested.status).toBe(202);

      const [, sent] = await smsCodesArrived(phone, 2);
      const verified = await api.request('POST', `/users/${userId}/verify-phone`, {
        token: null,
        body: { code: sent },
      });
      expect(verified.status).toBe(200);
      expect(verified.body).toMatchObject({ id: userId, phoneVerified: true });
    },
    lateCommitTimeout,
  );
});

/** The verification link (path and query) among the emails to `email`, once `count` have arrived, and its user. */
async function verificationLinkTo(email: string, count: number) {
  const messages = await emailsTo(api.runtime(), email, count);
  const raw = messages.map((message) => decodedEml(message.raw)).join('\n');
  const link =
    /http:\/\/127\.0\.0\.1:\d+(\/users\/([\da-f-]{36})\/verify\?expires=\d+&signature=[\w-]{43})/.exec(raw);
  if (!link?.[1] || !link[2]) throw new Error(`no verification link to ${email}`);
  return { path: link[1], userId: link[2] };
}

/** The transaction that registers a user: the user, put on the admin list, and its email claim. */
const userRegistration: StallRule = (body) =>
  body.includes('"TransactItems"') && body.includes('"gsi1sk"') && body.includes('"USER#');

describe('a user registration whose transaction landed after its 504, sent again', () => {
  const registerUser = (body: { email: string; name: string; phone?: string }) =>
    api.request('POST', '/users', { token: null, body });

  /** The id of the user registered with `email`, from the admin list. */
  async function listedUserIdOf(email: string): Promise<string> {
    let cursor: string | undefined;
    for (let page = 0; page < 1000; page += 1) {
      const query = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const listed = await api.request('GET', `/admin/users?${query}`);
      expect(listed.status).toBe(200);
      const { items, nextCursor } = listed.body as {
        items: { id: string; email?: string }[];
        nextCursor?: string;
      };
      const found = items.find((user) => user.email === email);
      if (found) return found.id;
      if (!nextCursor) break;
      cursor = nextCursor;
    }
    throw new Error(`no user listed with ${email}`);
  }

  async function storedUser(userId: string) {
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: userKey(userId), ConsistentRead: true }),
    );
    return Item;
  }

  it(
    'answers the 409 and queues the emails and the SMS code the first request never queued, once',
    async () => {
      const email = `late-${randomUUID()}@example.com`;
      const phone = `+1415555${String(randomInt(1000, 10_000))}`;
      const body = { email, name: 'Late Registrant', phone };
      await commitLate(userRegistration, () => registerUser(body));

      const retry = await registerUser(body);
      expect(retry.status).toBe(409);
      expect((retry.body as { detail: string }).detail).toMatch(
        /^This email is registered but not verified yet; unless it is verified first, the registration lapses at /,
      );
      const { path, userId } = await verificationLinkTo(email, 2);
      // The answer names no user: whoever sent it learns no more than the 409 said before.
      expect(retry.text).not.toContain(userId);
      expect(await smsCodesArrived(phone, 1)).toHaveLength(1);
      expect((await storedUser(userId))?.registrationMessagesPending).toBeUndefined();

      // Queued once: a registration sent again meets nothing unsent.
      expect((await registerUser(body)).status).toBe(409);
      expect((await api.request('POST', path, { token: null })).status).toBe(200);
      expect(api.runtime().smtp.messages.filter((message) => message.to.includes(email))).toHaveLength(2);
      expect(smsCodesTo(phone)).toHaveLength(1);
    },
    lateCommitTimeout,
  );

  it(
    "queues nothing once the user's verification-email limit is spent",
    async () => {
      const email = `late-${randomUUID()}@example.com`;
      const body = { email, name: 'Late Registrant' };
      await commitLate(userRegistration, () => registerUser(body));
      const userId = await listedUserIdOf(email);
      for (let sent = 0; sent < 3; sent += 1) {
        const resent = await api.request('POST', `/users/${userId}/verification-email`, { token: null });
        expect(resent.status).toBe(202);
      }
      await verificationLinkTo(email, 3);

      expect((await registerUser(body)).status).toBe(409);
      // Refused by the limit: still pending, and the welcome email never went out.
      expect((await storedUser(userId))?.registrationMessagesPending).toBe(true);
      const { path } = await verificationLinkTo(email, 3);
      expect((await api.request('POST', path, { token: null })).status).toBe(200);
      const sent = api.runtime().smtp.messages.filter((message) => message.to.includes(email));
      expect(sent).toHaveLength(3);
    },
    lateCommitTimeout,
  );

  it('queues nothing again for a registration answered in time: its emails go out once', async () => {
    const email = `late-${randomUUID()}@example.com`;
    const first = await registerUser({ email, name: 'On Time' });
    expect(first.status).toBe(201);
    const userId = (first.body as { id: string }).id;
    await verificationLinkTo(email, 2);
    expect((await storedUser(userId))?.registrationMessagesPending).toBeUndefined();

    expect((await registerUser({ email, name: 'On Time' })).status).toBe(409);
    const { path } = await verificationLinkTo(email, 2);
    expect((await api.request('POST', path, { token: null })).status).toBe(200);
    expect(api.runtime().smtp.messages.filter((message) => message.to.includes(email))).toHaveLength(2);
  });
});

describe('an audited change whose read before its write got no answer', () => {
  /** A consistent read of the item under `key`: not a transaction. */
  const readOf =
    (key: string): StallRule =>
    (body) =>
      !body.includes('"TransactItems"') && body.includes('"ConsistentRead":true') && body.includes(key);

  it(
    'verifying an email writes no line (nothing was written), and the repeat verifies it and writes its success line',
    async () => {
      const email = `late-${randomUUID()}@example.com`;
      expect(
        (await api.request('POST', '/users', { token: null, body: { email, name: 'Unread Verifier' } }))
          .status,
      ).toBe(201);
      const { path, userId } = await verificationLinkTo(email, 2);
      const failed = await neverAnswered(readOf(`"USER#${userId}"`), () =>
        api.request('POST', path, { token: null }),
      );
      expect(failed.status).toBe(504);

      expect((await api.request('POST', path, { token: null })).status).toBe(200);
      const lines = output
        .audit()
        .filter((event) => event.eventType === 'user.email_verified' && event.userId === userId);
      expect(lines).toEqual([expect.objectContaining({ outcome: 'success' })]);
    },
    lateCommitTimeout,
  );

  it(
    "deleting another owner's webhook endpoint writes no line, and the repeat (404) writes none",
    async () => {
      const owner = await api.token({ sub: `unread-owner-${randomUUID()}` });
      const stranger = await api.token({ sub: `unread-stranger-${randomUUID()}` });
      const registered = await registerEndpoint(api, owner, receiver.url);
      const failed = await neverAnswered(readOf(registered.id), () =>
        api.request('DELETE', `/webhooks/${registered.id}`, { token: stranger }),
      );
      expect(failed.status).toBe(504);

      expect((await api.request('DELETE', `/webhooks/${registered.id}`, { token: stranger })).status).toBe(
        404,
      );
      const lines = output
        .audit()
        .filter(
          (event) =>
            event.eventType === 'webhook.endpoint_deleted' && event.metadata.endpointId === registered.id,
        );
      expect(lines).toEqual([]);
      expect((await api.request('DELETE', `/webhooks/${registered.id}`, { token: owner })).status).toBe(204);
    },
    lateCommitTimeout,
  );
});

describe('an audited change whose transaction landed after its 504, sent again', () => {
  /** Every SDK attempt at the write timed out: the write's outcome was never read. */
  const unanswered = { reason: 'store_timeout' };

  it(
    'verifying an email writes its user.email_verified line, outcome unknown, and the repeat writes none',
    async () => {
      const email = `late-${randomUUID()}@example.com`;
      expect(
        (await api.request('POST', '/users', { token: null, body: { email, name: 'Late Verifier' } })).status,
      ).toBe(201);
      const { path, userId } = await verificationLinkTo(email, 2);
      const verification: StallRule = (body) =>
        body.includes('"TransactItems"') && body.includes('emailVerifiedAt') && body.includes(userId);
      await commitLate(verification, () => api.request('POST', path, { token: null }));

      const repeat = await api.request('POST', path, { token: null });
      expect(repeat.status).toBe(200);
      expect(repeat.body).toMatchObject({ id: userId, emailVerified: true });
      const lines = output
        .audit()
        .filter((event) => event.eventType === 'user.email_verified' && event.userId === userId);
      expect(lines).toEqual([expect.objectContaining({ outcome: 'unknown', metadata: unanswered })]);
    },
    lateCommitTimeout,
  );

  it(
    'deleting a user writes its user.deleted admin action, outcome unknown, and the repeat (404) writes none',
    async () => {
      const created = await api.request('POST', '/users', {
        body: { email: `late-${randomUUID()}@example.com`, name: 'Late Deleted' },
      });
      const userId = (created.body as { id: string }).id;
      const userDeletion: StallRule = (body) =>
        body.includes('"TransactItems"') && body.includes('"Delete"') && body.includes(`"USER#${userId}"`);
      await commitLate(userDeletion, () => api.request('DELETE', `/admin/users/${userId}`));

      expect((await api.request('DELETE', `/admin/users/${userId}`)).status).toBe(404);
      const lines = output
        .audit()
        .filter((event) => event.eventType === 'admin.action' && event.metadata.targetUserId === userId);
      expect(lines).toEqual([
        expect.objectContaining({
          outcome: 'unknown',
          userId: adminUser.sub,
          metadata: {
            action: 'user.deleted',
            targetUserId: userId,
            deletedEndpointCount: 0,
            deletedEndpointIds: [],
            ...unanswered,
          },
        }),
      ]);
    },
    lateCommitTimeout,
  );

  it(
    "deleting one's webhook endpoint writes its webhook.endpoint_deleted line, outcome unknown, and the repeat (404) writes none",
    async () => {
      const token = await api.token({ sub: `late-deleter-${randomUUID()}` });
      const registered = await registerEndpoint(api, token, receiver.url);
      // Not the owner's last endpoint: the removal's first form (the count decremented) is the one that lands.
      const kept = await registerEndpoint(api, token, receiver.url);
      const removal: StallRule = (body) =>
        body.includes('"TransactItems"') && body.includes('"Delete"') && body.includes(registered.id);
      await commitLate(removal, () => api.request('DELETE', `/webhooks/${registered.id}`, { token }));

      expect((await api.request('DELETE', `/webhooks/${registered.id}`, { token })).status).toBe(404);
      const lines = output
        .audit()
        .filter(
          (event) =>
            event.eventType === 'webhook.endpoint_deleted' && event.metadata.endpointId === registered.id,
        );
      expect(lines).toEqual([
        expect.objectContaining({
          outcome: 'unknown',
          metadata: { endpointId: registered.id, ...unanswered },
        }),
      ]);
      expect((await api.request('DELETE', `/webhooks/${kept.id}`, { token })).status).toBe(204);
    },
    lateCommitTimeout,
  );

  it(
    'enabling a webhook endpoint writes its webhook.endpoint_enabled line, outcome unknown, and the repeat writes none',
    async () => {
      const token = await api.token({ sub: `late-enabler-${randomUUID()}` });
      const registered = await registerEndpoint(api, token, receiver.url);
      const store = registeringWebhookStore(documents);
      const endpoint = await store.getEndpoint(registered.id);
      if (!endpoint) throw new Error('endpoint not stored');
      expect(await store.disableEndpoint(endpoint, { reason: 'gone' })).toBe(true);
      const enabling: StallRule = (body) =>
        body.includes('"TransactItems"') && body.includes('":enabled"') && body.includes(registered.id);
      await commitLate(enabling, () => api.request('POST', `/webhooks/${registered.id}/enable`, { token }));

      const repeat = await api.request('POST', `/webhooks/${registered.id}/enable`, { token });
      expect(repeat.status).toBe(200);
      expect(repeat.body).toMatchObject({ id: registered.id, status: 'enabled' });
      const lines = output
        .audit()
        .filter(
          (event) =>
            event.eventType === 'webhook.endpoint_enabled' && event.metadata.endpointId === registered.id,
        );
      expect(lines).toEqual([
        expect.objectContaining({
          outcome: 'unknown',
          metadata: { endpointId: registered.id, ownerKind: 'user', disabledReason: 'gone', ...unanswered },
        }),
      ]);
    },
    lateCommitTimeout,
  );
});
