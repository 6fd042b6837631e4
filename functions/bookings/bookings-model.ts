// Bookings on the app table: a booking owns one slot item per 15 minutes, claimed in one transaction.

import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, ValidationError } from '../../middleware/errors.js';
import type { ScopedIdempotencyKey } from '../../middleware/idempotency.js';
import { toEpochSeconds } from '../../middleware/store/tables.js';
import { derivedUuid, keyDerivedBytes } from '../shared/key-derived-ids.js';
import { bookingIdOfKey, bookingKey, slotKey, userIdOfKey, userKey } from '../shared/keys.js';
import { decodeCursor, encodeCursor, type Page } from '../shared/pagination.js';
import { pendingEventsIndex, pendingIndexKeys, pendingPartition } from '../shared/pending-events-index.js';
import { oneOf, requiredString } from '../shared/stored-attributes.js';
import { failedConditionIndexes } from '../shared/transactions.js';

export const slotMinutes = 15;
export const maxBookingHours = 8;
const slotMs = slotMinutes * 60_000;
/** Where {@link BookingsModel.create}'s transaction has the user check and the booking; the slots follow. */
const userCheckIndex = 0;
const bookingPutIndex = 1;

const bookingStatuses = ['confirmed', 'cancelled'] as const;
export type BookingStatus = (typeof bookingStatuses)[number];

export interface Booking {
  id: string;
  roomId: string;
  userId: string;
  start: string;
  end: string;
  status: BookingStatus;
  createdAt: string;
  cancelledAt?: string;
}

/** The webhook events about a booking. */
export type BookingEventType = 'booking.created' | 'booking.cancelled';

/** In the order they happen, which is the order {@link StoredBooking.pendingEvents} lists them in. */
const bookingEventTypes: readonly BookingEventType[] = ['booking.created', 'booking.cancelled'];

/** The one event a booking's status still calls for: a cancelled booking's booking.cancelled tells its creation too. */
export const eventOfStatus: Readonly<Record<BookingStatus, BookingEventType>> = {
  confirmed: 'booking.created',
  cancelled: 'booking.cancelled',
};

/** A booking as stored: what the API answers, and what is kept beside it. */
export interface StoredBooking {
  readonly booking: Booking;
  /**
   * Its events not known to be published (the item's `pendingEvents` string set, never answered): the
   * transaction that makes an event happen adds it, and {@link BookingsModel.markPublished} removes it
   * once the fan-out has enqueued it, so a retry of a request whose answer was lost publishes what the
   * first one did not, and only that. Empty on items stored before the set existed.
   */
  readonly pendingEvents: readonly BookingEventType[];
}

/** A booking as the sweep reads it: also whether it is still on the pending-events index, and from when. */
export interface SweptBooking extends StoredBooking {
  readonly onPendingIndex: boolean;
  /** Its sort key on the index (`<since>#<id>`), while it is on it: a cancel moves it to the cancel's time. */
  readonly pendingIndexSortKey: string | undefined;
  /**
   * The correlation id of the request that made its latest event pending (the item's `pendingCorrelationId`,
   * written with the event and removed with the last of them): the sweep publishes with it, so the worker's
   * lines carry the request's id. Undefined on items stored before it was kept, and for a request without one.
   */
  readonly pendingCorrelationId: string | undefined;
}

/** One page of the pending-events index: booking and user ids, oldest pending first. */
export interface PendingPage {
  /** The bookings the page lists. */
  readonly bookingIds: readonly string[];
  /** The users the page lists (user.registered pending). */
  readonly userIds: readonly string[];
  /** The table keys of entries that name neither (an item given the index's keys by hand). */
  readonly foreign: readonly Readonly<Record<string, unknown>>[];
  /** Where the next page starts; undefined after the last. */
  readonly nextKey: Record<string, unknown> | undefined;
}

/** What {@link BookingsModel.cancel} did: `cancelledNow` is false when the booking was cancelled already. */
export interface Cancellation extends StoredBooking {
  readonly cancelledNow: boolean;
}

export interface NewBooking {
  /** The booking's id (see {@link bookingIdFor}); a random UUID when absent. */
  id?: string | undefined;
  /** The creating request's correlation id, kept beside booking.created while it is pending (see {@link SweptBooking}). */
  correlationId?: string | undefined;
  roomId: string;
  userId: string;
  start: Date;
  end: Date;
}

export interface ListBookingsQuery {
  limit: number;
  cursor?: string | undefined;
  /** Only this user's bookings (through gsi2); all bookings by start time otherwise. */
  userId?: string | undefined;
  /**
   * Only bookings starting at or after this instant: a key condition, so the bookings before it are never
   * read (upcoming bookings without paging through every past one).
   */
  from?: Date | undefined;
}

/**
 * The id of the booking a create sent with an Idempotency-Key makes: a UUID like a random one (version 8,
 * RFC 9562's for ids of one's own making) from a hash of the key in its scope, so the create's retry meets
 * the booking the first request made.
 */
export function bookingIdFor(scopedKey: ScopedIdempotencyKey): string {
  return derivedUuid(keyDerivedBytes(scopedKey, 'booking', 16));
}

/**
 * A create whose id names a booking already stored: with {@link bookingIdFor}'s ids, the one an earlier
 * request with the same key made. Uncaught, a 409.
 */
export class BookingIdTakenError extends ConflictError {
  constructor(readonly bookingId: string) {
    super(`Booking ${bookingId} already exists`);
    this.name = 'BookingIdTakenError';
  }
}

/** The answer to a booking for a user that does not exist: the caller's mistake, on `body.userId`. */
export function unknownUserError(): ValidationError {
  return new ValidationError('Unknown user', [{ field: 'body.userId', message: 'No such user' }]);
}

/** Start times of the slots a period covers: [start, end) in steps of {@link slotMinutes}. */
export function slotStarts(start: Date, end: Date): Date[] {
  const starts: Date[] = [];
  for (let time = start.getTime(); time < end.getTime(); time += slotMs) starts.push(new Date(time));
  return starts;
}

/**
 * How long a slot item outlives its slot before TTL may delete it. Once a slot has ended no booking can
 * claim it (the earliest start is the slot under way), so the item only guards the slot until then; the
 * day covers clocks that disagree by far less.
 */
const slotItemLifetimeAfterEndSec = 86_400;

/** When a slot's item may go: a day after the slot ends. */
function slotItemExpiresAt(slotStart: Date): number {
  return toEpochSeconds(slotStart.getTime() + slotMs) + slotItemLifetimeAfterEndSec;
}

/** Whether a time falls on a slot boundary (whole quarter hour, no seconds). */
export function isSlotAligned(time: Date): boolean {
  return time.getTime() % slotMs === 0;
}

/**
 * Why a booking may not start at `start` when asked at `now`, or undefined when it may. The slot under way
 * is still bookable (a grace of one slot: at 09:07 a booking from 09:00 is accepted, one from 08:45 is
 * not), so a booking made as a meeting begins is not refused for the minutes already gone; a start more
 * than `horizonDays` after `now` is refused.
 */
export function startTimeProblem(start: Date, now: Date, horizonDays: number): string | undefined {
  const slotUnderWayStart = now.getTime() - (now.getTime() % slotMs);
  if (start.getTime() < slotUnderWayStart) {
    return `Must not be in the past: the earliest start is the current ${slotMinutes}-minute slot`;
  }
  if (start.getTime() > now.getTime() + horizonDays * 86_400_000) {
    return `Must be at most ${horizonDays} days ahead`;
  }
  return undefined;
}

/** The events of an item's `pendingEvents` (a Set, as the document client reads a string set). */
function pendingEventsOf(item: Record<string, unknown>): BookingEventType[] {
  const { pendingEvents } = item;
  return pendingEvents instanceof Set ? bookingEventTypes.filter((type) => pendingEvents.has(type)) : [];
}

/** A single-element string set, the operand of an `ADD` or `DELETE` on `pendingEvents`. */
const eventSet = (type: BookingEventType) => new Set([type]);

/** Only the booking's own fields: what the store keeps beside them (keys, `pendingEvents`) is never answered. */
function toBooking(item: Record<string, unknown>): Booking {
  return {
    id: requiredString(item, 'id'),
    roomId: requiredString(item, 'roomId'),
    userId: requiredString(item, 'userId'),
    start: requiredString(item, 'start'),
    end: requiredString(item, 'end'),
    // A status of a newer version is not taken for one this version knows: cancelling it could undo it.
    status: oneOf(item, 'status', bookingStatuses),
    createdAt: requiredString(item, 'createdAt'),
    ...(typeof item.cancelledAt === 'string' ? { cancelledAt: item.cancelledAt } : {}),
  };
}

export class BookingsModel {
  constructor(
    private readonly documentClient: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Writes the booking and claims every slot in one transaction, so two overlapping requests can
   * never both succeed and a failed request leaves nothing behind. The same transaction checks that
   * the user's item exists and has not lapsed unverified (400 on `body.userId` otherwise): the handler
   * asks the users service first, but a user deleted or lapsed after that answer gets no booking. A
   * booking already stored under `input.id` fails it with {@link BookingIdTakenError}, whatever else failed.
   * The booking is stored with booking.created pending (see {@link StoredBooking.pendingEvents}), and on
   * the pending-events index from its creation time.
   */
  async create(input: NewBooking, now = new Date()): Promise<Booking> {
    const booking: Booking = {
      id: input.id ?? randomUUID(),
      roomId: input.roomId,
      userId: input.userId,
      start: input.start.toISOString(),
      end: input.end.toISOString(),
      status: 'confirmed',
      createdAt: now.toISOString(),
    };
    const slots = slotStarts(input.start, input.end);
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // A registration that lapsed unverified is gone too, whether or not TTL deleted it yet.
              ConditionCheck: {
                TableName: this.tableName,
                Key: userKey(booking.userId),
                ConditionExpression:
                  'attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :now)',
                ExpressionAttributeValues: { ':now': toEpochSeconds(now.getTime()) },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...bookingKey(booking.id),
                  ...booking,
                  gsi1pk: 'BOOKING',
                  gsi1sk: `${booking.start}#${booking.id}`,
                  gsi2pk: `USER#${booking.userId}`,
                  gsi2sk: `${booking.start}#${booking.id}`,
                  pendingEvents: eventSet('booking.created'),
                  ...pendingIndexKeys(booking.id, booking.createdAt),
                  ...(input.correlationId === undefined ? {} : { pendingCorrelationId: input.correlationId }),
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            // Each slot can be claimed once: of two overlapping bookings, the second fails here.
            ...slots.map((slotStart) => ({
              Put: {
                TableName: this.tableName,
                Item: {
                  ...slotKey(booking.roomId, slotStart),
                  bookingId: booking.id,
                  roomId: booking.roomId,
                  expiresAt: slotItemExpiresAt(slotStart),
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            })),
          ],
        }),
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      // The booking's own slots are taken too, by itself: it is the answer, not a room conflict.
      if (failed?.includes(bookingPutIndex)) throw new BookingIdTakenError(booking.id);
      if (failed?.includes(userCheckIndex)) throw unknownUserError();
      if (failed?.some((index) => index > bookingPutIndex)) {
        throw new ConflictError(`Room ${booking.roomId} is already booked for part of that period`);
      }
      throw error;
    }
    return booking;
  }

  async get(id: string): Promise<StoredBooking> {
    const stored = await this.find(id);
    if (!stored) throw new NotFoundError(`Booking ${id} not found`);
    return stored;
  }

  /** The booking, or undefined when there is none. */
  async find(id: string): Promise<StoredBooking | undefined> {
    const found = await this.findForSweep(id);
    return found && { booking: found.booking, pendingEvents: found.pendingEvents };
  }

  /** The booking with whether it is on the pending-events index, or undefined when there is none. */
  async findForSweep(id: string, signal?: AbortSignal): Promise<SweptBooking | undefined> {
    const { Item } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: bookingKey(id), ConsistentRead: true }),
      { abortSignal: signal },
    );
    return Item
      ? {
          booking: toBooking(Item),
          pendingEvents: pendingEventsOf(Item),
          onPendingIndex: typeof Item.gsi3pk === 'string',
          pendingIndexSortKey: typeof Item.gsi3sk === 'string' ? Item.gsi3sk : undefined,
          pendingCorrelationId:
            typeof Item.pendingCorrelationId === 'string' ? Item.pendingCorrelationId : undefined,
        }
      : undefined;
  }

  /**
   * One page (at most `limit` entries) of shard `shard` of the pending-events index: the bookings one of
   * whose events, and the users whose user.registered, became pending before `before`, oldest first. The index is eventually consistent: read
   * each booking before acting on it.
   */
  async pendingBefore(
    shard: number,
    before: Date,
    limit: number,
    startKey?: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<PendingPage> {
    const result = await this.documentClient.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: pendingEventsIndex,
        // `<instant>#<id>` sorts before `<instant>`'s own entries' ids, so `<` keeps those out too.
        KeyConditionExpression: 'gsi3pk = :partition AND gsi3sk < :before',
        ExpressionAttributeValues: { ':partition': pendingPartition(shard), ':before': before.toISOString() },
        Limit: limit,
        ExclusiveStartKey: startKey,
      }),
      { abortSignal: signal },
    );
    const bookingIds: string[] = [];
    const userIds: string[] = [];
    const foreign: Record<string, unknown>[] = [];
    for (const item of result.Items ?? []) {
      const bookingId = bookingIdOfKey(item);
      const userId = userIdOfKey(item);
      if (bookingId !== undefined) bookingIds.push(bookingId);
      else if (userId) userIds.push(userId);
      else foreign.push({ pk: item.pk, sk: item.sk });
    }
    return { bookingIds, userIds, foreign, nextKey: result.LastEvaluatedKey };
  }

  /**
   * Records `type` published, so no retry and no sweep publishes it again: removes it from the booking's
   * pending events with the events it makes moot (booking.cancelled tells the creation too, so a
   * booking.created still pending goes with it), and takes the booking off the pending-events index (and
   * its `pendingCorrelationId` with it) unless a later event is pending. Removing an event already removed
   * changes nothing, so this also takes a booking whose status's event is not pending off the index. Stops
   * when `signal` aborts (the after-commit deadline). Throws ConditionalCheckFailedException when the
   * booking does not exist.
   */
  async markPublished(id: string, type: BookingEventType, signal?: AbortSignal): Promise<void> {
    const position = bookingEventTypes.indexOf(type);
    const settled = new Set(bookingEventTypes.slice(0, position + 1));
    const later = bookingEventTypes.slice(position + 1);
    const update = (expression: string, condition: string, values: Record<string, unknown>) =>
      this.documentClient.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: bookingKey(id),
          UpdateExpression: expression,
          ConditionExpression: condition,
          ExpressionAttributeValues: { ':settled': settled, ...values },
        }),
        { abortSignal: signal },
      );
    try {
      // A later event made pending after the publisher read the booking (a cancel landing between a
      // sweep's read and this write) keeps the booking on the index: its publishing may yet fail, and
      // then only the sweep would find it.
      await update(
        'DELETE pendingEvents :settled REMOVE gsi3pk, gsi3sk, pendingCorrelationId',
        [
          'attribute_exists(pk)',
          ...later.map((_, index) => `NOT contains(pendingEvents, :later${index})`),
        ].join(' AND '),
        Object.fromEntries(later.map((event, index) => [`:later${index}`, event])),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException) || later.length === 0) throw error;
      await update('DELETE pendingEvents :settled', 'attribute_exists(pk)', {});
    }
  }

  async list(query: ListBookingsQuery): Promise<Page<Booking>> {
    const [indexName, partition] = query.userId ? ['gsi2', `USER#${query.userId}`] : ['gsi1', 'BOOKING'];
    const partitionKey = `${indexName}pk`;
    const sortKey = `${indexName}sk`;
    // The index's sort key is `<start>#<id>`, `start` always in toISOString's one form, so the instant's
    // own ISO form sorts before every booking starting at or after it.
    const from = query.from?.toISOString();
    const result = await this.documentClient.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: indexName,
        KeyConditionExpression: `#partition = :partition${from === undefined ? '' : ' AND #sort >= :from'}`,
        ExpressionAttributeNames: {
          '#partition': partitionKey,
          ...(from === undefined ? {} : { '#sort': sortKey }),
        },
        ExpressionAttributeValues: {
          ':partition': partition,
          ...(from === undefined ? {} : { ':from': from }),
        },
        Limit: query.limit,
        // A cursor from one user's list (or the all-bookings list) cannot page through another, nor one
        // from before `from` (DynamoDB would refuse a start key outside the key condition).
        ExclusiveStartKey: decodeCursor(
          query.cursor,
          [
            ['pk', 'sk'],
            [partitionKey, sortKey],
          ],
          (key) => key[partitionKey] === partition && (from === undefined || (key[sortKey] ?? '') >= from),
        ),
      }),
    );
    const nextCursor = encodeCursor(result.LastEvaluatedKey);
    return { items: (result.Items ?? []).map(toBooking), ...(nextCursor ? { nextCursor } : {}) };
  }

  /**
   * Marks a booking read by {@link get} cancelled, adds booking.cancelled to its pending events (and puts
   * the booking on the pending-events index from the cancel's time) and frees its slots in one transaction; the transaction's conditions make it exact even if the booking changed
   * since it was read. Cancelling a cancelled booking writes nothing and answers it as it is
   * (`cancelledNow: false`, with its pending events as read), so a client retrying a cancel that worked is
   * told it worked. The cancel's `correlationId` replaces the creating request's beside the pending events:
   * booking.cancelled is the event its status now calls for.
   */
  async cancel(stored: StoredBooking, now = new Date(), correlationId?: string): Promise<Cancellation> {
    const { booking, pendingEvents } = stored;
    const { id } = booking;
    if (booking.status === 'cancelled') return { ...stored, cancelledNow: false };
    const cancelledAt = now.toISOString();
    // Pending from the cancel on, even with booking.created still pending: a sweep then leaves the
    // cancel's own request its time to publish.
    const pendingIndex = pendingIndexKeys(id, cancelledAt);
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // Two concurrent cancels both read 'confirmed'; the condition lets exactly one through.
              Update: {
                TableName: this.tableName,
                Key: bookingKey(id),
                UpdateExpression:
                  'SET #status = :cancelled, cancelledAt = :now, gsi3pk = :pendingPartition, gsi3sk = :pendingSince' +
                  (correlationId === undefined
                    ? ' REMOVE pendingCorrelationId'
                    : ', pendingCorrelationId = :correlationId') +
                  ' ADD pendingEvents :event',
                ConditionExpression: '#status = :confirmed',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: {
                  ':cancelled': 'cancelled',
                  ':confirmed': 'confirmed',
                  ':now': cancelledAt,
                  ':event': eventSet('booking.cancelled'),
                  ':pendingPartition': pendingIndex.gsi3pk,
                  ':pendingSince': pendingIndex.gsi3sk,
                  ...(correlationId === undefined ? {} : { ':correlationId': correlationId }),
                },
              },
            },
            ...slotStarts(new Date(booking.start), new Date(booking.end)).map((slotStart) => ({
              Delete: {
                TableName: this.tableName,
                Key: slotKey(booking.roomId, slotStart),
                // A slot past its item's lifetime may be gone already (TTL): nobody else can hold it.
                ConditionExpression:
                  slotItemExpiresAt(slotStart) <= toEpochSeconds(now.getTime())
                    ? 'attribute_not_exists(pk) OR bookingId = :id'
                    : 'bookingId = :id',
                ExpressionAttributeValues: { ':id': id },
              },
            })),
          ],
        }),
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (!failed?.length) throw error;
      // Another cancel committed since the booking was read: this one is its repeat.
      const current = await this.get(id);
      if (current.booking.status === 'cancelled') return { ...current, cancelledNow: false };
      throw new ConflictError(`Booking ${id} could not be cancelled: one of its slots is not held by it`);
    }
    return {
      booking: { ...booking, status: 'cancelled', cancelledAt },
      pendingEvents: bookingEventTypes.filter(
        (type) => type === 'booking.cancelled' || pendingEvents.includes(type),
      ),
      cancelledNow: true,
    };
  }
}
