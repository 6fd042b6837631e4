// The booking event sweep through the local runtime: a booking answered 201 whose booking.created could not be
// published is published by the sweep, once, with its derived webhook id; a cancel landing while the sweep
// publishes is not lost; a sweep with nothing pending writes nothing; bad index entries never stop a run.
import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { bookingKey, userKey } from '../../functions/shared/keys.js';
import {
  pendingPartition,
  pendingShardCount,
  pendingShardOf,
} from '../../functions/shared/pending-events-index.js';
import { webhookIdFor } from '../../functions/shared/webhook-ids.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { type PickRule, type ScriptedDynamoDb, startScriptedDynamoDb } from '../helpers/scripted-dynamodb.js';
import { type Receiver, registerEndpoint, startReceiver } from '../webhooks/helpers.js';

// Before any function module loads: their loggers and metrics read these at cold start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
enableMetricsOutput();

/** A run every quarter second, for events pending over 2 s: long enough to see a booking's event pending first. */
const sweep = { intervalMs: 250, graceSec: 2 };

let dynamoDb: ScriptedDynamoDb;
let receiver: Receiver;
beforeAll(async () => {
  dynamoDb = await startScriptedDynamoDb(inject('dynamoDbEndpoint'));
  receiver = await startReceiver();
});
// Registered before the runtime's own hooks, so the proxy and receiver close after the runtime has stopped.
afterAll(async () => {
  await receiver.close();
  await dynamoDb.close();
});
// An app table of its own: the sweep meets only this file's pending events.
const api = useLocalRuntime({
  as: adminUser,
  dynamoDbEndpoint: () => dynamoDb.endpoint,
  ownAppTable: true,
  // Its endpoints too: an admin endpoint for user.registered on the shared toolkit table would get every
  // registration of the files running beside or after it, whose queues then never drain.
  ownToolkitTable: true,
  bookingEventSweep: sweep,
});
const output = captureStdout();

/** The suite's DynamoDB itself, not the proxy: what the functions stored, read and written unseen by it. */
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const appTableName = () => api.runtime().tableNames.app;

const at = bookingDay(21);
const room = () => `sweep-${randomUUID()}`;

/** The subscriber queries of one event type's publishing (both of its key ranges). */
const subscriberQueryOf =
  (eventType: string): PickRule =>
  (operation, body) =>
    operation === 'Query' && body.includes('WH#SUB#') && body.includes(`#${eventType}"`);
const isSweepQuery = ({ operation, body }: { operation: string; body: string }) =>
  operation === 'Query' && body.includes('"gsi3"');

/** The booking item's pending events and its keys on the pending-events index, as stored. */
async function stored(bookingId: string) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: appTableName(), Key: bookingKey(bookingId), ConsistentRead: true }),
  );
  return { pendingEvents: Item?.pendingEvents, gsi3pk: Item?.gsi3pk };
}

/** A registered user of their own, a token acting as them and, unless told otherwise, their webhook endpoint. */
async function newBooker(options: { endpoint?: boolean } = {}) {
  const created = await api.request('POST', '/users', {
    body: { email: `sweep-${randomUUID()}@example.com`, name: 'Swept Booker' },
  });
  const id = (created.body as { id: string }).id;
  const token = await api.token({ sub: id });
  const endpoint = options.endpoint === false ? undefined : await registerEndpoint(api, token, receiver.url);
  return { id, token, endpoint };
}

/** The webhooks that reached the receiver about `bookingId`: type and webhook-id, one entry per POST. */
const deliveriesAbout = (bookingId: string) =>
  receiver.received
    .map((webhook) => ({
      ...(JSON.parse(webhook.body) as { type: string; data: { id: string } }),
      webhookId: webhook.headers['webhook-id'],
    }))
    .filter((webhook) => webhook.data.id === bookingId)
    .map(({ type, webhookId }) => ({ type, webhookId }));

/** Waits until `count` sweep runs (each queries every shard) have started since request `from`. */
const sweepRunsSince = (from: number, count: number) =>
  until(
    () =>
      dynamoDb.seen.slice(from).filter(isSweepQuery).length >= count * pendingShardCount ? true : undefined,
    15_000,
  );

/** Every value the sweeper's metric lines gave `name` since the test started. */
const sweeperMetric = (name: string) =>
  output
    .emf()
    .filter((line) => line.service === 'booking-event-sweeper' && line[name] !== undefined)
    .map((line) => line[name]);

/**
 * Books a room for `booker` from `hour` for an hour while the subscriber query of booking.created is
 * refused: answered 201, its booking.created left pending for the sweep. Returns the booking's id.
 */
async function bookWithCreatedPending(
  booker: Awaited<ReturnType<typeof newBooker>>,
  hour: number,
  headers: Record<string, string> = {},
) {
  dynamoDb.refuse(subscriberQueryOf('booking.created'));
  const booked = await api
    .request('POST', '/bookings', {
      token: booker.token,
      headers,
      body: { roomId: room(), userId: booker.id, start: at(hour), end: at(hour + 1) },
    })
    .finally(() => dynamoDb.refuse(undefined));
  expect(booked.status).toBe(201);
  return (booked.body as { id: string }).id;
}

describe('the booking event sweep', () => {
  it('reads only the index when nothing is pending: no booking read, no write to the app table', async () => {
    const booker = await newBooker({ endpoint: false });
    const booked = await api.request('POST', '/bookings', {
      token: booker.token,
      body: { roomId: room(), userId: booker.id, start: at(9), end: at(10) },
    });
    expect(booked.status).toBe(201);
    const bookingId = (booked.body as { id: string }).id;
    // Published by its own request (no endpoint subscribes): nothing pending, nothing on the index.
    expect(await stored(bookingId)).toEqual({ pendingEvents: undefined, gsi3pk: undefined });

    const from = dynamoDb.seen.length;
    await sweepRunsSince(from, 3);
    const during = dynamoDb.seen.slice(from);
    expect(during.filter((request) => request.body.includes('"BOOKING#'))).toEqual([]);
    expect(
      during.filter(
        ({ operation, body }) =>
          /^(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)$/.test(operation) &&
          body.includes(`"${appTableName()}"`),
      ),
    ).toEqual([]);
    // Each run still reports its counts: nothing swept, nothing left pending.
    expect(sweeperMetric('BookingEventsSwept').length).toBeGreaterThanOrEqual(3);
    expect(new Set(sweeperMetric('BookingEventsSwept'))).toEqual(new Set([0]));
    expect(new Set(sweeperMetric('BookingEventsStillPending'))).toEqual(new Set([0]));
  });

  it('publishes a booking.created its request could not: after the grace, to the receiver once, with the derived webhook id', async () => {
    const booker = await newBooker();
    const endpointId = booker.endpoint?.id as string;
    const bookingId = await bookWithCreatedPending(booker, 11);
    expect(await stored(bookingId)).toEqual({
      pendingEvents: new Set(['booking.created']),
      gsi3pk: pendingPartition(pendingShardOf(bookingId)),
    });
    expect(deliveriesAbout(bookingId)).toEqual([]);

    await until(() => (deliveriesAbout(bookingId).length > 0 ? true : undefined), 15_000);
    await until(async () => ((await stored(bookingId)).pendingEvents === undefined ? true : undefined));
    expect(await stored(bookingId)).toEqual({ pendingEvents: undefined, gsi3pk: undefined });
    // Runs after it find nothing more to publish.
    await sweepRunsSince(dynamoDb.seen.length, 3);
    expect(deliveriesAbout(bookingId)).toEqual([
      { type: 'booking.created', webhookId: webhookIdFor(`booking.created/${bookingId}`, endpointId) },
    ]);
    expect(sweeperMetric('BookingEventsSwept').reduce((sum: number, value) => sum + Number(value), 0)).toBe(
      1,
    );
    expect(output.audit().filter((audit) => audit.eventType === 'webhook.event_swept')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        userId: booker.id,
        metadata: { bookingId, eventType: 'booking.created' },
      }),
    ]);
  });

  it("follows a swept booking.created from its request to the receiver by the request's correlation id and the booking's id", async () => {
    const booker = await newBooker();
    const correlationId = `req-corr-${randomUUID()}`;
    const bookingId = await bookWithCreatedPending(booker, 12, { 'x-correlation-id': correlationId });
    await until(
      () =>
        output
          .audit()
          .some((audit) => audit.eventType === 'webhook.delivered' && audit.correlationId === correlationId)
          ? true
          : undefined,
      15_000,
    );
    const lines = output.json().filter((line) => line.correlation_id === correlationId);
    const summary = (line: Record<string, unknown>) => {
      const audit = line.audit as { eventType: string; metadata: Record<string, unknown> } | undefined;
      return { service: line.service, message: line.message, eventType: audit?.eventType };
    };
    // The request, its failed publish, the sweep's publishing of it and the delivery: one id throughout.
    expect(lines.map(summary)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ service: 'bookings', eventType: 'http.request' }),
        expect.objectContaining({ service: 'bookings', eventType: 'webhook.enqueue_failed' }),
        expect.objectContaining({ service: 'booking-event-sweeper', eventType: 'webhook.event_swept' }),
        expect.objectContaining({ service: 'webhook-worker', eventType: 'webhook.delivered' }),
      ]),
    );
    const auditOf = (service: string, eventType: string) =>
      lines.find((line) => line.service === service && summary(line).eventType === eventType);
    const metadataOf = (service: string, eventType: string) =>
      (auditOf(service, eventType)?.audit as { metadata?: Record<string, unknown> } | undefined)?.metadata;
    // Each side also names the booking, the id an engineer is given.
    expect(metadataOf('bookings', 'http.request')?.response).toMatchObject({
      location: `/bookings/${bookingId}`,
    });
    expect(metadataOf('bookings', 'webhook.enqueue_failed')).toMatchObject({
      bookingId,
      eventId: `booking.created/${bookingId}`,
    });
    expect(metadataOf('booking-event-sweeper', 'webhook.event_swept')).toMatchObject({ bookingId });
    expect(metadataOf('webhook-worker', 'webhook.delivered')).toMatchObject({ bookingId });
    // The sweep's run has an id of its own, apart from the request's.
    const swept = auditOf('booking-event-sweeper', 'webhook.event_swept');
    expect(swept?.sweep_run_id).toEqual(expect.any(String));
    expect(swept?.sweep_run_id).toBe(swept?.function_request_id);
    expect(swept?.sweep_run_id).not.toBe(correlationId);
  });

  it('does not lose a booking.cancelled whose cancel landed while the sweep was publishing booking.created', async () => {
    const booker = await newBooker();
    const endpointId = booker.endpoint?.id as string;
    const bookingId = await bookWithCreatedPending(booker, 13);

    // The sweep reads the booking (confirmed, booking.created pending) and is held publishing it... Only
    // queries after that read are held: the request's own refused query may still be retried meanwhile.
    let readBySweep = false;
    const publishing = dynamoDb.hold((operation, body) => {
      if (operation === 'GetItem' && body.includes(`"BOOKING#${bookingId}"`)) readBySweep = true;
      return readBySweep && subscriberQueryOf('booking.created')(operation, body);
    });
    await publishing.arrived;
    // ...while the cancel lands, and its own booking.cancelled cannot be published either.
    dynamoDb.refuse(subscriberQueryOf('booking.cancelled'));
    const cancelled = await api
      .request('DELETE', `/bookings/${bookingId}`, { token: booker.token })
      .finally(() => dynamoDb.refuse(undefined));
    expect(cancelled.status).toBe(200);
    expect(await stored(bookingId)).toEqual({
      pendingEvents: new Set(['booking.created', 'booking.cancelled']),
      gsi3pk: pendingPartition(pendingShardOf(bookingId)),
    });
    publishing.release();

    // The sweep's booking.created goes out; its mark leaves booking.cancelled on the index, for a later run.
    await until(
      () =>
        deliveriesAbout(bookingId).some((webhook) => webhook.type === 'booking.cancelled') ? true : undefined,
      15_000,
    );
    await until(async () => ((await stored(bookingId)).pendingEvents === undefined ? true : undefined));
    expect(await stored(bookingId)).toEqual({ pendingEvents: undefined, gsi3pk: undefined });
    await sweepRunsSince(dynamoDb.seen.length, 3);
    expect(deliveriesAbout(bookingId)).toEqual([
      { type: 'booking.created', webhookId: webhookIdFor(`booking.created/${bookingId}`, endpointId) },
      { type: 'booking.cancelled', webhookId: webhookIdFor(`booking.cancelled/${bookingId}`, endpointId) },
    ]);
  });

  it('takes off the index a booking with nothing pending, and skips an entry that names no booking, without stopping', async () => {
    const booker = await newBooker({ endpoint: false });
    const booked = await api.request('POST', '/bookings', {
      token: booker.token,
      body: { roomId: room(), userId: booker.id, start: at(15), end: at(16) },
    });
    const bookingId = (booked.body as { id: string }).id;
    const { Item } = await documents.send(
      new GetCommand({ TableName: appTableName(), Key: bookingKey(bookingId), ConsistentRead: true }),
    );
    const partition = pendingPartition(pendingShardOf(bookingId));
    // Entries a version that cleared the set but not the index's keys could leave, and an item given the
    // index's keys by hand, read first: it is older.
    const foreignKey = { pk: `NOTE#${randomUUID()}`, sk: 'NOTE' };
    await documents.send(
      new PutCommand({
        TableName: appTableName(),
        Item: { ...foreignKey, gsi3pk: partition, gsi3sk: `2020-01-01T00:00:00.000Z#${foreignKey.pk}` },
      }),
    );
    await documents.send(
      new PutCommand({
        TableName: appTableName(),
        Item: { ...Item, gsi3pk: partition, gsi3sk: `2020-01-02T00:00:00.000Z#${bookingId}` },
      }),
    );
    try {
      await until(async () => ((await stored(bookingId)).gsi3pk === undefined ? true : undefined));
      // The sweep logs once its write is answered, which can reach it after this test's read does.
      const takenOff =
        'Booking on the pending-events index with nothing pending for its status: taken off it';
      const sweepLines = () => output.json().filter((line) => line.service === 'booking-event-sweeper');
      await until(() => (sweepLines().some((line) => line.message === takenOff) ? true : undefined));
      const lines = sweepLines();
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'WARN',
          message: 'Pending-events index entry names no booking or user: skipped',
          key: foreignKey,
        }),
      );
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'INFO',
          message: takenOff,
          bookingId,
          status: 'confirmed',
          pendingEvents: [],
        }),
      );
      expect(lines.filter((line) => line.level === 'ERROR')).toEqual([]);
      // Left as it is: the sweep changes no item that is not a booking.
      const { Item: foreign } = await documents.send(
        new GetCommand({ TableName: appTableName(), Key: foreignKey, ConsistentRead: true }),
      );
      expect(foreign?.gsi3pk).toBe(partition);
    } finally {
      await documents.send(new DeleteCommand({ TableName: appTableName(), Key: foreignKey }));
    }
  });

  it('fails the run, which Lambda counts as an error, when a shard of the index cannot be read', async () => {
    // The runtime reports a failed run as a Lambda error would be: one JSON line on the console.
    const consoleError = vi.spyOn(console, 'error').mockImplementation(() => {});
    const failedRuns = () =>
      consoleError.mock.calls
        .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
        .filter((line) => line.message === 'Scheduled run failed');
    dynamoDb.refuse((operation, body) => isSweepQuery({ operation, body }) && body.includes('"PENDING#0"'));
    try {
      await until(() => (failedRuns().length > 0 ? true : undefined), 15_000);
    } finally {
      dynamoDb.refuse(undefined);
    }
    expect(failedRuns()[0]).toEqual({
      level: 'ERROR',
      message: 'Scheduled run failed',
      function: 'booking-event-sweeper',
      error: 'BookingEventSweepError: The pending-events index could not be read for shards 0',
    });
    expect(output.json()).toContainEqual(
      expect.objectContaining({
        service: 'booking-event-sweeper',
        level: 'ERROR',
        message: 'Could not read the pending-events index: the shard waits for the next run',
        shard: 0,
      }),
    );
  });
});

/** The user item's pending events and its keys on the pending-events index, as stored. */
async function storedUser(userId: string) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: appTableName(), Key: userKey(userId), ConsistentRead: true }),
  );
  return { pendingEvents: Item?.pendingEvents, gsi3pk: Item?.gsi3pk };
}

describe('the sweep and user.registered', () => {
  it('leaves nothing pending for a registration whose own request published user.registered', async () => {
    const created = await api.request('POST', '/users', {
      body: { email: `sweep-${randomUUID()}@example.com`, name: 'Published User' },
    });
    expect(created.status).toBe(201);
    expect(await storedUser((created.body as { id: string }).id)).toEqual({
      pendingEvents: undefined,
      gsi3pk: undefined,
    });
  });

  it('publishes a user.registered its registration could not: to an admin endpoint once, with the derived webhook id', async () => {
    const adminEndpoint = await registerEndpoint(api, await api.token(adminUser), receiver.url, [
      'user.registered',
    ]);
    dynamoDb.refuse(subscriberQueryOf('user.registered'));
    const correlationId = `req-register-${randomUUID()}`;
    const created = await api
      .request('POST', '/users', {
        headers: { 'x-correlation-id': correlationId },
        body: { email: `sweep-${randomUUID()}@example.com`, name: 'Swept User' },
      })
      .finally(() => dynamoDb.refuse(undefined));
    expect(created.status).toBe(201);
    const userId = (created.body as { id: string }).id;
    expect(await storedUser(userId)).toEqual({
      pendingEvents: new Set(['user.registered']),
      gsi3pk: pendingPartition(pendingShardOf(userId)),
    });
    expect(deliveriesAbout(userId)).toEqual([]);

    await until(() => (deliveriesAbout(userId).length > 0 ? true : undefined), 15_000);
    await until(async () => ((await storedUser(userId)).pendingEvents === undefined ? true : undefined));
    expect(await storedUser(userId)).toEqual({ pendingEvents: undefined, gsi3pk: undefined });
    // Runs after it find nothing more to publish.
    await sweepRunsSince(dynamoDb.seen.length, 3);
    expect(deliveriesAbout(userId)).toEqual([
      { type: 'user.registered', webhookId: webhookIdFor(`user.registered/${userId}`, adminEndpoint.id) },
    ]);
    expect(output.audit().filter((audit) => audit.eventType === 'webhook.event_swept')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        userId,
        correlationId,
        metadata: { eventType: 'user.registered' },
      }),
    ]);
    // The registration's own line names the user it made.
    expect(
      output
        .audit()
        .find((audit) => audit.eventType === 'http.request' && audit.correlationId === correlationId)
        ?.metadata.response,
    ).toMatchObject({ location: `/users/${userId}` });
  });
});
