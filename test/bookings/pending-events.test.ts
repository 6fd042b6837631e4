// The bookings model's pending-events index (gsi3): which writes put a booking on it, which take it off, and
// that a cancel landing between a publisher's read and its mark keeps the booking on it.
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BookingsModel } from '../../functions/bookings/bookings-model.js';
import { bookingIdOfKey, bookingKey, userKey } from '../../functions/shared/keys.js';
import {
  pendingPartition,
  pendingShardCount,
  pendingShardOf,
} from '../../functions/shared/pending-events-index.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { bookingDay } from '../helpers/booking-times.js';
import { testTableNames } from '../helpers/tables.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documents = createDocumentClient(dynamoDb);
const bookings = new BookingsModel(documents, testTableNames.app);
afterAll(() => dynamoDb.destroy());

const at = bookingDay(40);

/** A user item the create's transaction finds, and a booking of theirs made at `now`. */
async function newBooking(now: Date) {
  const userId = `pending-${randomUUID()}`;
  await documents.send(new PutCommand({ TableName: testTableNames.app, Item: { ...userKey(userId) } }));
  return bookings.create(
    { roomId: `room-${randomUUID()}`, userId, start: new Date(at(9)), end: new Date(at(10)) },
    now,
  );
}

/** The item as stored: its pending events and its keys on the pending-events index. */
async function stored(bookingId: string) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: testTableNames.app, Key: bookingKey(bookingId), ConsistentRead: true }),
  );
  return { pendingEvents: Item?.pendingEvents, gsi3pk: Item?.gsi3pk, gsi3sk: Item?.gsi3sk };
}

/** Whether the shard's page of entries pending before `before` lists the booking. */
async function listedBefore(bookingId: string, before: Date): Promise<boolean> {
  const ids: string[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await bookings.pendingBefore(pendingShardOf(bookingId), before, 100, startKey);
    ids.push(...page.bookingIds);
    startKey = page.nextKey;
  } while (startKey);
  return ids.includes(bookingId);
}

describe('the pending-events index', () => {
  it('lists a new booking in its shard from its creation time, until booking.created is marked published', async () => {
    const createdAt = new Date('2031-03-04T05:06:07.890Z');
    const booking = await newBooking(createdAt);
    expect(await stored(booking.id)).toEqual({
      pendingEvents: new Set(['booking.created']),
      gsi3pk: pendingPartition(pendingShardOf(booking.id)),
      gsi3sk: `2031-03-04T05:06:07.890Z#${booking.id}`,
    });
    expect(await listedBefore(booking.id, new Date(createdAt.getTime() + 1))).toBe(true);
    expect(await listedBefore(booking.id, createdAt)).toBe(false);

    await bookings.markPublished(booking.id, 'booking.created');
    expect(await stored(booking.id)).toEqual({
      pendingEvents: undefined,
      gsi3pk: undefined,
      gsi3sk: undefined,
    });
    expect(await listedBefore(booking.id, new Date('2100-01-01T00:00:00Z'))).toBe(false);
  });

  it("lists a cancelled booking from the cancel's time, and takes it off with booking.created when booking.cancelled is published", async () => {
    const booking = await newBooking(new Date('2031-03-04T05:00:00.000Z'));
    const cancelledAt = new Date('2031-03-04T06:00:00.000Z');
    const cancellation = await bookings.cancel(await bookings.get(booking.id), cancelledAt);
    expect(cancellation.pendingEvents).toEqual(['booking.created', 'booking.cancelled']);
    expect(await stored(booking.id)).toEqual({
      pendingEvents: new Set(['booking.created', 'booking.cancelled']),
      gsi3pk: pendingPartition(pendingShardOf(booking.id)),
      gsi3sk: `2031-03-04T06:00:00.000Z#${booking.id}`,
    });
    // Not before the cancel: its own request has its time to publish first.
    expect(await listedBefore(booking.id, cancelledAt)).toBe(false);
    expect(await listedBefore(booking.id, new Date(cancelledAt.getTime() + 1))).toBe(true);

    // booking.cancelled tells the creation too: booking.created goes with it, and so does the index entry.
    await bookings.markPublished(booking.id, 'booking.cancelled');
    expect(await stored(booking.id)).toEqual({
      pendingEvents: undefined,
      gsi3pk: undefined,
      gsi3sk: undefined,
    });
  });

  it("keeps a booking listed when a cancel lands between a publisher's read and its mark of booking.created", async () => {
    const booking = await newBooking(new Date('2031-03-04T05:00:00.000Z'));
    const read = await bookings.findForSweep(booking.id);
    expect(read).toMatchObject({ pendingEvents: ['booking.created'], onPendingIndex: true });
    await bookings.cancel(await bookings.get(booking.id), new Date('2031-03-04T05:10:00.000Z'));

    // The publisher of what it read: booking.created went out; booking.cancelled has not yet.
    await bookings.markPublished(booking.id, 'booking.created');
    expect(await stored(booking.id)).toEqual({
      pendingEvents: new Set(['booking.cancelled']),
      gsi3pk: pendingPartition(pendingShardOf(booking.id)),
      gsi3sk: `2031-03-04T05:10:00.000Z#${booking.id}`,
    });
    expect(await listedBefore(booking.id, new Date('2031-03-04T05:10:00.001Z'))).toBe(true);
  });

  it('takes off the index a booking whose status calls for no pending event, when marked for that event', async () => {
    const booking = await newBooking(new Date('2031-03-04T05:00:00.000Z'));
    await bookings.markPublished(booking.id, 'booking.created');
    // An entry left behind (say by a version that cleared the set but not the index's keys).
    await documents.send(
      new PutCommand({
        TableName: testTableNames.app,
        Item: {
          ...(
            await documents.send(
              new GetCommand({ TableName: testTableNames.app, Key: bookingKey(booking.id) }),
            )
          ).Item,
          gsi3pk: pendingPartition(pendingShardOf(booking.id)),
          gsi3sk: `2031-03-04T05:00:00.000Z#${booking.id}`,
        },
      }),
    );
    expect(await bookings.findForSweep(booking.id)).toMatchObject({
      pendingEvents: [],
      onPendingIndex: true,
    });
    await bookings.markPublished(booking.id, 'booking.created');
    expect(await bookings.findForSweep(booking.id)).toMatchObject({
      pendingEvents: [],
      onPendingIndex: false,
    });
  });

  it('refuses to mark an event of a booking that does not exist, and creates no item', async () => {
    const id = randomUUID();
    for (const type of ['booking.created', 'booking.cancelled'] as const) {
      await expect(bookings.markPublished(id, type)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    }
    expect(await bookings.find(id)).toBeUndefined();
  });

  it('reads a booking id from a booking key only', () => {
    expect(bookingIdOfKey(bookingKey('b-1'))).toBe('b-1');
    expect(bookingIdOfKey({ pk: 'BOOKING#b-1', sk: 'SLOT' })).toBeUndefined();
    expect(bookingIdOfKey({ pk: 'BOOKING#', sk: 'BOOKING' })).toBeUndefined();
    expect(bookingIdOfKey(userKey('u-1'))).toBeUndefined();
  });

  it('spreads bookings over every shard, each id always in the same one', () => {
    const ids = Array.from({ length: 200 }, () => randomUUID());
    const shards = ids.map(pendingShardOf);
    expect(new Set(shards)).toEqual(new Set(Array.from({ length: pendingShardCount }, (_, shard) => shard)));
    expect(ids.map(pendingShardOf)).toEqual(shards);
  });
});
