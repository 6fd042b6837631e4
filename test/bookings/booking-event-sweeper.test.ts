// The booking event sweep's core on an app table of its own: what it publishes and leaves, how it pages, and how it
// stops (its deadline, a shard it cannot read, events it cannot publish).
import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingEventSweeper } from '../../functions/booking-event-sweeper/booking-event-sweeper.js';
import { BookingEvents } from '../../functions/bookings/booking-events.js';
import { BookingsModel } from '../../functions/bookings/bookings-model.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { bookingKey, userKey } from '../../functions/shared/keys.js';
import {
  pendingIndexKeys,
  pendingPartition,
  pendingShardCount,
  pendingShardOf,
} from '../../functions/shared/pending-events-index.js';
import { functionSqsClient } from '../../functions/shared/sqs-client.js';
import { type WebhookEvent, WebhookFanOut } from '../../functions/shared/webhook-fanout.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import { RegistrationEventStore, RegistrationEvents } from '../../functions/users/registration-events.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { appTable } from '../../middleware/store/tables.js';
import { bookingDay } from '../helpers/booking-times.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { type ScriptedDynamoDb, startScriptedDynamoDb } from '../helpers/scripted-dynamodb.js';
import { testTableNames } from '../helpers/tables.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documents = createDocumentClient(dynamoDb);
let proxy: ScriptedDynamoDb;
const proxied = () => createDocumentClient(createDynamoDbClient({ endpoint: proxy.endpoint }));

beforeAll(async () => {
  proxy = await startScriptedDynamoDb(inject('dynamoDbEndpoint'));
});
afterAll(async () => {
  await proxy.close();
  dynamoDb.destroy();
});

const at = bookingDay(50);
const now = new Date('2031-05-06T12:00:00.000Z');
const minutesBefore = (minutes: number) => new Date(now.getTime() - minutes * 60_000);

/** An app table of the test's own: a sweep reads every shard of it, and no other file's bookings. */
async function ownAppTable(): Promise<string> {
  const tableName = `sweep-app-${randomUUID().slice(0, 8)}`;
  await ensureTables(dynamoDb, [{ definition: appTable, tableName }]);
  return tableName;
}

/**
 * Bookings on `tableName`, each with booking.created pending since the time given, made by a request with
 * `correlationId` (none: as stored before the request's id was kept).
 */
async function pendingBookings(
  tableName: string,
  createdAt: readonly Date[],
  correlationId?: string,
): Promise<string[]> {
  const bookings = new BookingsModel(documents, tableName);
  const ids: string[] = [];
  for (const [index, time] of createdAt.entries()) {
    const userId = `sweep-${randomUUID()}`;
    await documents.send(new PutCommand({ TableName: tableName, Item: { ...userKey(userId) } }));
    const booking = await bookings.create(
      {
        roomId: `room-${index}-${randomUUID()}`,
        userId,
        start: new Date(at(9)),
        end: new Date(at(10)),
        correlationId,
      },
      time,
    );
    ids.push(booking.id);
  }
  return ids;
}

/**
 * A fan-out with no webhook queue (every event counts as published) that keeps each event it is given, and
 * the event's id with the correlation id it was published with.
 */
class RecordingFanOut extends WebhookFanOut {
  readonly events: WebhookEvent[] = [];
  readonly correlationIds: [string | undefined, string | undefined][] = [];

  override publish(event: WebhookEvent, correlationId: string | undefined, signal?: AbortSignal) {
    this.events.push(event);
    this.correlationIds.push([event.id, correlationId]);
    return super.publish(event, correlationId, signal);
  }
}

/**
 * A sweeper over `tableName`. Its fan-out either has no webhook queue (an event then counts as published,
 * as in a deployment without one) or reads subscriptions from a toolkit table that does not exist (every
 * publishing fails).
 */
function sweeperOf(
  tableName: string,
  options: {
    publishing?: 'works' | 'fails';
    graceMs?: number;
    pageSize?: number;
    client?: typeof documents;
  } = {},
) {
  const { observability, audits } = testObservability('booking-event-sweeper');
  const bookings = new BookingsModel(options.client ?? documents, tableName);
  const webhooks = new RecordingFanOut({
    subscriptions: new WebhookSubscriptions({
      documentClient: documents,
      tableName: `missing-${randomUUID()}`,
    }),
    sqs: undefined,
    queueUrl: undefined,
    observability,
  });
  const failing =
    options.publishing === 'fails'
      ? new WebhookFanOut({
          subscriptions: new WebhookSubscriptions({
            documentClient: documents,
            tableName: `missing-${randomUUID()}`,
          }),
          // Never reached: finding the subscribers fails first.
          sqs: functionSqsClient('http://127.0.0.1:9'),
          queueUrl: 'http://127.0.0.1:9/queue',
          observability,
        })
      : webhooks;
  const registrationStore = new RegistrationEventStore(options.client ?? documents, tableName);
  const sweeper = new BookingEventSweeper({
    bookings,
    events: new BookingEvents({ bookings, webhooks: failing, logger: observability.logger }),
    registrationStore,
    registrations: new RegistrationEvents({
      store: registrationStore,
      webhooks: failing,
      logger: observability.logger,
    }),
    logger: observability.logger,
    auditLogger: observability.auditLogger,
    metrics: observability.metrics,
    ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
  });
  return {
    sweeper,
    bookings: new BookingsModel(documents, tableName),
    registrationStore: new RegistrationEventStore(documents, tableName),
    published: webhooks.events,
    publishedWith: webhooks.correlationIds,
    audits,
    metrics: observability.metrics,
    logger: observability.logger,
  };
}

/** The report of a run its deadline stopped before it did anything. */
const stoppedWithNothingDone = {
  swept: 0,
  stillPending: 0,
  cleaned: 0,
  skipped: 0,
  failedShards: [],
  stoppedAtDeadline: true,
};

/** A run's result when it skipped one record and did nothing else. */
const oneSkipped = {
  swept: 0,
  stillPending: 0,
  cleaned: 0,
  skipped: 1,
  failedShards: [],
  stoppedAtDeadline: false,
};
const run = (signal?: AbortSignal) => ({ now, signal, runId: `sweep-${randomUUID()}` });

/** The item's `pendingCorrelationId` as stored. */
async function storedCorrelationId(tableName: string, key: Record<string, string>) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: tableName, Key: key, ConsistentRead: true }),
  );
  return Item?.pendingCorrelationId;
}

describe('BookingEventSweeper', () => {
  it('publishes every event pending longer than the grace, page by page, and leaves the younger ones', async () => {
    const tableName = await ownAppTable();
    const due = await pendingBookings(tableName, [20, 15, 10, 9, 8, 7, 6, 5, 2].map(minutesBefore));
    const young = await pendingBookings(tableName, [minutesBefore(0.5), now]);
    // Pages of 2 entries: the shards' due entries take several pages.
    const { sweeper, bookings, audits, metrics } = sweeperOf(tableName, { pageSize: 2 });

    const report = await sweeper.sweep(run());

    expect(report).toEqual({
      swept: due.length,
      stillPending: 0,
      cleaned: 0,
      skipped: 0,
      failedShards: [],
      stoppedAtDeadline: false,
    });
    for (const id of due) {
      expect(await bookings.findForSweep(id)).toMatchObject({ pendingEvents: [], onPendingIndex: false });
    }
    for (const id of young) {
      expect(await bookings.findForSweep(id)).toMatchObject({
        pendingEvents: ['booking.created'],
        onPendingIndex: true,
      });
    }
    expect(audits.map((audit) => audit.metadata.bookingId).sort()).toEqual([...due].sort());
    expect(storedMetric(metrics, 'BookingEventsSwept')).toBe(due.length);
    expect(storedMetric(metrics, 'BookingEventsStillPending')).toBe(0);
  });

  it("leaves a booking a cancel moved after the index read to the cancel's own request: its grace starts again", async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    const { sweeper, bookings, published } = sweeperOf(tableName, { client: proxied() });
    // The sweep has read the index and is reading the booking when the cancel commits.
    const held = proxy.hold((operation, body) => operation === 'GetItem' && body.includes(tableName));
    const sweeping = sweeper.sweep(run());
    await held.arrived;
    await bookings.cancel(await bookings.get(id as string), now);
    held.release();

    expect(await sweeping).toMatchObject({ swept: 0, stillPending: 0, skipped: 1 });
    expect(published).toEqual([]);
    expect(await bookings.findForSweep(id as string)).toMatchObject({
      pendingEvents: ['booking.created', 'booking.cancelled'],
      onPendingIndex: true,
    });
  });

  it('publishes each booking event with the correlation id of the request that left it pending, and audits it so', async () => {
    const tableName = await ownAppTable();
    const [created] = await pendingBookings(tableName, [minutesBefore(10)], 'req-create-1');
    const [cancelled] = await pendingBookings(tableName, [minutesBefore(30)], 'req-create-2');
    const bookings = new BookingsModel(documents, tableName);
    await bookings.cancel(await bookings.get(cancelled as string), minutesBefore(10), 'req-cancel-2');
    expect(await storedCorrelationId(tableName, bookingKey(created as string))).toBe('req-create-1');
    expect(await storedCorrelationId(tableName, bookingKey(cancelled as string))).toBe('req-cancel-2');
    const { sweeper, publishedWith, audits } = sweeperOf(tableName);

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 2, stillPending: 0 });
    expect(publishedWith.sort()).toEqual(
      [
        [`booking.created/${created}`, 'req-create-1'],
        [`booking.cancelled/${cancelled}`, 'req-cancel-2'],
      ].sort(),
    );
    expect(audits.map((audit) => [audit.metadata.bookingId, audit.correlationId]).sort()).toEqual(
      [
        [created, 'req-create-1'],
        [cancelled, 'req-cancel-2'],
      ].sort(),
    );
    // Taken off with the events it came with.
    for (const id of [created, cancelled]) {
      expect(await storedCorrelationId(tableName, bookingKey(id as string))).toBeUndefined();
    }
  });

  it("publishes with the run's id a booking stored before its request's id was kept, and one whose cancel had none", async () => {
    const tableName = await ownAppTable();
    const [earlier] = await pendingBookings(tableName, [minutesBefore(10)]);
    const [cancelled] = await pendingBookings(tableName, [minutesBefore(30)], 'req-create-3');
    const bookings = new BookingsModel(documents, tableName);
    // The create's id is not the cancel's: booking.cancelled is what is published.
    await bookings.cancel(await bookings.get(cancelled as string), minutesBefore(10));
    const { sweeper, publishedWith, audits } = sweeperOf(tableName);
    const sweepRun = run();

    expect(await sweeper.sweep(sweepRun)).toMatchObject({ swept: 2, stillPending: 0 });
    expect(publishedWith.sort()).toEqual(
      [
        [`booking.created/${earlier}`, sweepRun.runId],
        [`booking.cancelled/${cancelled}`, sweepRun.runId],
      ].sort(),
    );
    expect(audits.map((audit) => audit.correlationId)).toEqual([sweepRun.runId, sweepRun.runId]);
  });

  it('keeps every event it cannot publish pending and on the index, counted as still pending', async () => {
    const tableName = await ownAppTable();
    const ids = await pendingBookings(tableName, [minutesBefore(10), minutesBefore(5)]);
    const { sweeper, bookings, audits, metrics } = sweeperOf(tableName, { publishing: 'fails' });

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 0, stillPending: 2, failedShards: [] });
    for (const id of ids) {
      expect(await bookings.findForSweep(id)).toMatchObject({
        pendingEvents: ['booking.created'],
        onPendingIndex: true,
      });
    }
    expect(audits.filter((audit) => audit.eventType === 'webhook.event_swept')).toEqual([]);
    expect(storedMetric(metrics, 'BookingEventsSwept')).toBe(0);
    expect(storedMetric(metrics, 'BookingEventsStillPending')).toBe(2);
  });

  it('skips a booking it cannot read, naming the record and attribute, and does not count it as still pending', async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    // A status a newer version added: this one would read it the same way on every run.
    await documents.send(
      new UpdateCommand({
        TableName: tableName,
        Key: bookingKey(id as string),
        UpdateExpression: 'SET #status = :status',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':status': 'tentative' },
      }),
    );
    const { sweeper, published, audits, metrics, logger } = sweeperOf(tableName);
    const logged = vi.spyOn(logger, 'error');

    expect(await sweeper.sweep(run())).toEqual(oneSkipped);
    expect(logged.mock.calls).toEqual([
      [
        'Booking on the pending-events index is a record this version cannot read: skipped',
        {
          bookingId: id,
          recordKey: `BOOKING#${id}/BOOKING`,
          attribute: 'status',
          problem: `The stored record BOOKING#${id}/BOOKING holds a value of status this version does not know`,
        },
      ],
    ]);
    expect(storedMetric(metrics, 'BookingEventsStillPending')).toBe(0);
    expect(published).toEqual([]);
    expect(audits).toEqual([]);
    // Left as it is, for whoever fixes the record.
    const { Item } = await documents.send(
      new GetCommand({ TableName: tableName, Key: bookingKey(id as string), ConsistentRead: true }),
    );
    expect(Item).toMatchObject({ status: 'tentative', pendingEvents: new Set(['booking.created']) });
    expect(typeof Item?.gsi3pk).toBe('string');
  });

  it('sweeps nothing once its deadline has passed, and says it stopped there', async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    const { sweeper, bookings } = sweeperOf(tableName);

    expect(await sweeper.sweep(run(AbortSignal.abort()))).toEqual(stoppedWithNothingDone);
    expect(await bookings.findForSweep(id as string)).toMatchObject({ onPendingIndex: true });
  });

  it('does not count a shard whose read its deadline aborted as failed', async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    const { sweeper, bookings } = sweeperOf(tableName, { client: proxied() });
    const deadline = new AbortController();
    // The deadline comes while the first shard's index read is in flight.
    const held = proxy.hold((operation, body) => operation === 'Query' && body.includes(tableName));
    const sweeping = sweeper.sweep(run(deadline.signal));
    await held.arrived;
    deadline.abort();
    held.release();

    expect(await sweeping).toEqual(stoppedWithNothingDone);
    expect(await bookings.findForSweep(id as string)).toMatchObject({ onPendingIndex: true });
  });

  it('reads no further booking of a page once its deadline has passed', async () => {
    const tableName = await ownAppTable();
    // Two bookings on one shard: one page lists both.
    const ids: string[] = [];
    let pair: string[] = [];
    while (pair.length < 2) {
      ids.push(...(await pendingBookings(tableName, [minutesBefore(10)])));
      const shard = pendingShardOf(ids.at(-1) as string);
      pair = ids.filter((id) => pendingShardOf(id) === shard);
    }
    const { sweeper, bookings } = sweeperOf(tableName, { client: proxied() });
    const deadline = new AbortController();
    const readsOf = (id: string) =>
      proxy.seen.filter(({ operation, body }) => operation === 'GetItem' && body.includes(id)).length;
    // The deadline comes while the sweep reads the first booking of the pair's page.
    const held = proxy.hold(
      (operation, body) => operation === 'GetItem' && pair.some((id) => body.includes(id)),
    );
    const sweeping = sweeper.sweep(run(deadline.signal));
    await held.arrived;
    deadline.abort();
    held.release();

    // Bookings on the shards read before the pair's are swept; of the pair, only the one read is counted.
    expect(await sweeping).toMatchObject({ stillPending: 1, skipped: 0, stoppedAtDeadline: true });
    expect(pair.map(readsOf).sort()).toEqual([0, 1]);
    for (const id of pair) {
      expect(await bookings.findForSweep(id)).toMatchObject({
        pendingEvents: ['booking.created'],
        onPendingIndex: true,
      });
    }
  });

  it('skips a booking published and taken off the index after the index read, writing nothing', async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    const { sweeper, bookings, published, audits } = sweeperOf(tableName, { client: proxied() });
    // The sweep has read the index and is reading the booking when its request's publishing marks it.
    const held = proxy.hold((operation, body) => operation === 'GetItem' && body.includes(tableName));
    const sweeping = sweeper.sweep(run());
    await held.arrived;
    await bookings.markPublished(id as string, 'booking.created');
    const marked = proxy.seen.length;
    held.release();

    expect(await sweeping).toEqual(oneSkipped);
    expect(proxy.seen.slice(marked).filter(({ operation }) => operation === 'UpdateItem')).toEqual([]);
    expect(published).toEqual([]);
    expect(audits).toEqual([]);
  });

  it('skips and counts each index entry that names no booking or user', async () => {
    const tableName = await ownAppTable();
    const [id] = await pendingBookings(tableName, [minutesBefore(10)]);
    for (const other of ['ROOM#one', 'ROOM#two']) {
      await documents.send(
        new PutCommand({
          TableName: tableName,
          Item: { pk: other, sk: 'ROOM', ...pendingIndexKeys(other, minutesBefore(10).toISOString()) },
        }),
      );
    }
    const { sweeper, bookings } = sweeperOf(tableName);

    expect(await sweeper.sweep(run())).toEqual({
      swept: 1,
      stillPending: 0,
      cleaned: 0,
      skipped: 2,
      failedShards: [],
      stoppedAtDeadline: false,
    });
    expect(await bookings.findForSweep(id as string)).toMatchObject({ onPendingIndex: false });
  });

  it('names a shard whose index it could not read, and sweeps the others', async () => {
    const tableName = await ownAppTable();
    // One booking per shard.
    const ids: string[] = [];
    while (new Set(ids.map(pendingShardOf)).size < pendingShardCount) {
      ids.push(...(await pendingBookings(tableName, [minutesBefore(10)])));
    }
    const refusedShard = pendingShardOf(ids[0] as string);
    const { sweeper, bookings } = sweeperOf(tableName, { client: proxied() });
    proxy.refuse(
      (operation, body) => operation === 'Query' && body.includes(`"${pendingPartition(refusedShard)}"`),
    );
    const report = await sweeper.sweep(run()).finally(() => proxy.refuse(undefined));

    expect(report).toMatchObject({ failedShards: [refusedShard], stoppedAtDeadline: false });
    expect(report.swept).toBe(ids.filter((id) => pendingShardOf(id) !== refusedShard).length);
    for (const id of ids) {
      expect(await bookings.findForSweep(id)).toMatchObject({
        onPendingIndex: pendingShardOf(id) === refusedShard,
      });
    }
  });

  it('refuses a negative grace and a page size DynamoDB would refuse, naming both', () => {
    const bookings = new BookingsModel(documents, testTableNames.app);
    const { observability } = testObservability('booking-event-sweeper');
    const build = (graceMs: number, pageSize: number) =>
      new BookingEventSweeper({
        bookings,
        events: {} as BookingEvents,
        registrationStore: {} as RegistrationEventStore,
        registrations: {} as RegistrationEvents,
        logger: observability.logger,
        auditLogger: observability.auditLogger,
        metrics: observability.metrics,
        graceMs,
        pageSize,
      });
    expect(() => build(-1, 0)).toThrow(InvalidOptionsError);
    expect(() => build(-1, 0)).toThrow(
      /graceMs must be a whole number of milliseconds, 0 or more.*pageSize must be a whole number from 1 to 1000/,
    );
    expect(() => build(0, 1)).not.toThrow();
    // DynamoDB's largest Limit.
    expect(() => build(0, 1000)).not.toThrow();
    expect(() => build(0, 1001)).toThrow(/pageSize must be a whole number from 1 to 1000/);
  });
});

describe('BookingEventSweeper and user.registered', () => {
  const usersOf = (tableName: string) =>
    new UsersModel(documents, tableName, createFunctionEncryptor(readEnvironment()));
  const register = (tableName: string, at: Date, correlationId?: string) =>
    usersOf(tableName).register(
      { email: `sweep-${randomUUID()}@example.com`, name: 'Ada' },
      at,
      correlationId,
    );

  it('publishes a registration pending longer than the grace once, with its derived id and no personal data', async () => {
    const tableName = await ownAppTable();
    const user = await register(tableName, minutesBefore(10));
    const young = await register(tableName, minutesBefore(0.5));
    const { sweeper, registrationStore, published, audits, metrics } = sweeperOf(tableName);

    const first = await sweeper.sweep(run());
    const second = await sweeper.sweep(run());

    expect(first).toEqual({
      swept: 1,
      stillPending: 0,
      cleaned: 0,
      skipped: 0,
      failedShards: [],
      stoppedAtDeadline: false,
    });
    expect(second.swept).toBe(0);
    expect(published).toEqual([
      {
        id: `user.registered/${user.id}`,
        type: 'user.registered',
        tenantId: 'default',
        subjectUserId: user.id,
        data: { id: user.id, createdAt: user.createdAt },
        subject: { userId: user.id },
        occurredAt: new Date(user.createdAt),
      },
    ]);
    expect(await registrationStore.findForSweep(user.id, now)).toMatchObject({
      pending: false,
      onPendingIndex: false,
    });
    expect(await registrationStore.findForSweep(young.id, now)).toMatchObject({
      pending: true,
      onPendingIndex: true,
    });
    expect(audits.map(({ eventType, userId, metadata }) => ({ eventType, userId, metadata }))).toEqual([
      { eventType: 'webhook.event_swept', userId: user.id, metadata: { eventType: 'user.registered' } },
    ]);
    // One value per run.
    expect(storedMetric(metrics, 'BookingEventsSwept')).toEqual([1, 0]);
  });

  it("publishes a registration with its request's correlation id, and one stored before it was kept with the run's", async () => {
    const tableName = await ownAppTable();
    const traced = await register(tableName, minutesBefore(10), 'req-register-1');
    const earlier = await register(tableName, minutesBefore(10));
    const { sweeper, publishedWith, audits } = sweeperOf(tableName);
    const sweepRun = run();

    expect(await sweeper.sweep(sweepRun)).toMatchObject({ swept: 2, stillPending: 0 });
    expect(publishedWith.sort()).toEqual(
      [
        [`user.registered/${traced.id}`, 'req-register-1'],
        [`user.registered/${earlier.id}`, sweepRun.runId],
      ].sort(),
    );
    expect(audits.map((audit) => [audit.userId, audit.correlationId]).sort()).toEqual(
      [
        [traced.id, 'req-register-1'],
        [earlier.id, sweepRun.runId],
      ].sort(),
    );
    expect(await storedCorrelationId(tableName, userKey(traced.id))).toBeUndefined();
  });

  it('skips a user without createdAt, naming the record, instead of publishing createdAt "undefined"', async () => {
    const tableName = await ownAppTable();
    const user = await register(tableName, minutesBefore(10));
    await documents.send(
      new UpdateCommand({
        TableName: tableName,
        Key: userKey(user.id),
        UpdateExpression: 'REMOVE createdAt',
      }),
    );
    const { sweeper, published, audits, metrics, logger } = sweeperOf(tableName);
    const logged = vi.spyOn(logger, 'error');

    expect(await sweeper.sweep(run())).toEqual(oneSkipped);
    expect(logged.mock.calls).toEqual([
      [
        'User on the pending-events index is a record this version cannot read: skipped',
        {
          userId: user.id,
          recordKey: `USER#${user.id}/USER`,
          attribute: 'createdAt',
          problem: `The stored record USER#${user.id}/USER has no createdAt (or not a string)`,
        },
      ],
    ]);
    expect(storedMetric(metrics, 'BookingEventsStillPending')).toBe(0);
    expect(published).toEqual([]);
    expect(audits).toEqual([]);
  });

  it('keeps a registration it cannot publish pending and on the index', async () => {
    const tableName = await ownAppTable();
    const user = await register(tableName, minutesBefore(10));
    const { sweeper, registrationStore } = sweeperOf(tableName, { publishing: 'fails' });

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 0, stillPending: 1 });
    expect(await registrationStore.findForSweep(user.id, now)).toMatchObject({
      pending: true,
      onPendingIndex: true,
    });
  });

  it('takes a registration that lapsed unverified off the index without publishing it', async () => {
    const tableName = await ownAppTable();
    // Registered 49 hours before the run: its 48-hour verification window is over, TTL has not run yet.
    const user = await register(tableName, minutesBefore(49 * 60));
    const { sweeper, registrationStore, published, audits } = sweeperOf(tableName);

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 0, cleaned: 1, stillPending: 0, skipped: 0 });
    expect(published).toEqual([]);
    expect(audits).toEqual([]);
    expect(await registrationStore.findForSweep(user.id, now)).toMatchObject({
      lapsed: true,
      pending: false,
      onPendingIndex: false,
    });
  });

  it('takes a lapsed registration without createdAt off the index too: only publishing needs it', async () => {
    const tableName = await ownAppTable();
    const user = await register(tableName, minutesBefore(49 * 60));
    await documents.send(
      new UpdateCommand({
        TableName: tableName,
        Key: userKey(user.id),
        UpdateExpression: 'REMOVE createdAt',
      }),
    );
    const { sweeper, registrationStore, published } = sweeperOf(tableName);

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 0, cleaned: 1, stillPending: 0, skipped: 0 });
    expect(published).toEqual([]);
    expect(await registrationStore.findForSweep(user.id, now)).toMatchObject({ onPendingIndex: false });
  });

  it('publishes nothing for a user deleted before the sweep: the entry went with the item', async () => {
    const tableName = await ownAppTable();
    const user = await register(tableName, minutesBefore(10));
    await usersOf(tableName).delete(user.id);
    const { sweeper, published } = sweeperOf(tableName);

    expect(await sweeper.sweep(run())).toMatchObject({ swept: 0, cleaned: 0, stillPending: 0, skipped: 0 });
    expect(published).toEqual([]);
  });
});
