// The bookings function: create (retry-safe with an Idempotency-Key), list, get and cancel room bookings.
import { isDeepStrictEqual } from 'node:util';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { Principal } from '../../middleware/auth/principal.js';
import { serviceCalls } from '../../middleware/circuit-breaker/middy.js';
import {
  ForbiddenError,
  IdempotencyKeyReusedError,
  NotFoundError,
  ValidationError,
} from '../../middleware/errors.js';
import { emitEvent } from '../../middleware/events.js';
import { type InputContext, validateInput } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { type IdempotentContext, idempotency, replayedHeader } from '../../middleware/idempotency.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { callerOf } from '../shared/caller.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { createHttpFunction } from '../shared/http-function.js';
import { functionObservability } from '../shared/observability.js';
import { afterCommitDeadline } from '../shared/post-commit.js';
import { serviceSigner } from '../shared/route-auth.js';
import { idPathSchema, idSchema, pageQuerySchema, smallBodyLimit } from '../shared/schemas.js';
import { createWebhookFanOut } from '../shared/webhook-fanout.js';
import * as z from '../shared/zod.js';
import { BookingEvents } from './booking-events.js';
import {
  type Booking,
  BookingIdTakenError,
  BookingsModel,
  bookingIdFor,
  isSlotAligned,
  maxBookingHours,
  type NewBooking,
  type StoredBooking,
  slotMinutes,
  startTimeProblem,
} from './bookings-model.js';
import { assertUserExists, createUsersService } from './users-service.js';

const observability = functionObservability('bookings');
const { logger, onEvent } = observability;
const environment = readEnvironment();
if (environment.usersApiUrl === undefined) {
  throw new Error(
    'Invalid function environment: USERS_API_URL (the bookings function calls the users service)',
  );
}
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const bookings = new BookingsModel(createDocumentClient(dynamoDb), environment.appTableName);
const webhooks = createWebhookFanOut(environment, readQueueEnvironment(), dynamoDb, observability);

const events = new BookingEvents({ bookings, webhooks, logger });

/**
 * After the commit: publishes the booking's pending event (see {@link BookingEvents.publishPending}) by
 * the invocation's deadline: the booking is stored, so the caller gets its answer either way. An event
 * that did not go out stays pending, for a retry of the request or the sweep to publish.
 */
async function publishPending(
  stored: StoredBooking,
  context: Pick<Context, 'getRemainingTimeInMillis'> & { correlationId: string },
): Promise<void> {
  await afterCommitDeadline(context, (deadline) =>
    events.publishPending(stored, context.correlationId, deadline),
  );
}

const signAsBookings = serviceSigner('bookings', onEvent);
const usersService = createUsersService({
  baseUrl: environment.usersApiUrl,
  tableName: environment.toolkitTableName,
  client: dynamoDb,
  sign: signAsBookings,
  onEvent,
  logger,
});

/**
 * Whose bookings a caller may make, see and cancel: a person without role admin, only their own (a
 * booking's `userId` is a person's `sub`); machines, held to their scopes by the route table, and
 * admins, anyone's. Undefined: anyone's.
 */
function ownUserId(caller: Principal): string | undefined {
  return caller.isM2M || caller.roles.includes('admin') ? undefined : caller.id;
}

/**
 * A person reaching for bookings that are not theirs, reported as an access.denied event (audited,
 * counted) like the route table's denials; the caller then answers 403, or 404 where an id is probed.
 */
function reportNotOwner(
  caller: Principal,
  event: APIGatewayProxyEventV2,
  metadata: Readonly<Record<string, unknown>>,
): void {
  emitEvent(onEvent, {
    type: 'access.denied',
    reason: 'not_owner',
    principal: caller,
    metadata: { path: event.rawPath, httpMethod: event.requestContext?.http?.method, ...metadata },
  });
}

/**
 * Whose bookings the caller may act on (see {@link ownUserId}); a person naming another person's user id
 * is refused with 403 `refusal` and reported.
 */
function ownerScope(
  caller: Principal,
  event: APIGatewayProxyEventV2,
  requestedUserId: string | undefined,
  refusal: string,
): string | undefined {
  const own = ownUserId(caller);
  if (own !== undefined && requestedUserId !== undefined && requestedUserId !== own) {
    reportNotOwner(caller, event, { userId: requestedUserId });
    throw new ForbiddenError(refusal);
  }
  return own;
}

/** The booking if the caller may see it; someone else's reads as missing, so ids reveal nothing. */
async function visibleBooking(
  id: string,
  caller: Principal,
  event: APIGatewayProxyEventV2,
): Promise<StoredBooking> {
  const stored = await bookings.get(id);
  const own = ownUserId(caller);
  if (own !== undefined && stored.booking.userId !== own) {
    reportNotOwner(caller, event, { bookingId: id });
    throw new NotFoundError(`Booking ${id} not found`);
  }
  return stored;
}

const dateTimeError = 'Must be an ISO 8601 date-time with an offset (Z or +02:00)';

/**
 * A booking's start or end, or a list's `from`. Stored as `toISOString()` at the head of the list indexes'
 * sort keys, it must fall in a four-digit UTC year: an offset can push `9999-12-31T23:00-14:00` into
 * `+010000`, which would then sort before every other booking. `errorFor` words the refusal of a value
 * that is no date-time.
 */
function instantSchema(errorFor: (input: unknown) => string) {
  return z.pipe(
    z.iso.datetime({ offset: true, error: (issue) => errorFor(issue.input) }).check(
      // A Date keeps milliseconds: finer digits would be dropped unseen, and an instant 0.9 ms off the
      // 15-minute grid would pass as on it.
      z.refine((value) => !/\.\d{3}\d*[1-9]/.test(value), 'Must not be more precise than a millisecond'),
    ),
    z.pipe(
      z.transform((value: string) => new Date(value)),
      z
        .date()
        .check(
          z.refine(
            (date) => date.getUTCFullYear() >= 0 && date.getUTCFullYear() <= 9999,
            'Must fall within the years 0000 to 9999 in UTC',
          ),
        ),
    ),
  );
}

const instant = instantSchema(() => dateTimeError);

/** A date-time whose offset sign is a space: the `+` of `+02:00`, sent unencoded in a query string. */
const spaceForOffsetSign = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)? \d{2}:\d{2}$/;

/**
 * An instant in a query string, where an unencoded `+` arrives as a space (form encoding's rule):
 * still refused, since a space is no offset sign, but the message says how to send the `+`.
 */
const queryInstant = instantSchema((input) =>
  typeof input === 'string' && spaceForOffsetSign.test(input)
    ? `${dateTimeError}; in a query string send the + of an offset as %2B, since an unencoded + arrives as a space`
    : dateTimeError,
);

/**
 * Why a room id is refused for a new booking, if it is: a room has one spelling, lower case. A room's
 * slot items are keyed by the id exactly as written (`slotKey`), and there is no catalogue of rooms to
 * fold spellings into one, so `Atlas` and `atlas` would be two rooms that could both be booked for one
 * hour; an id with a capital is refused rather than silently stored as another. Judged in the handler,
 * not the body schema: a booking stored before this rule with a capital must stay reachable by the
 * retry of the request that made it.
 */
function roomIdProblem(roomId: string): string | undefined {
  return /^[a-z0-9_-]{1,64}$/.test(roomId) ? undefined : roomIdRule;
}

const roomIdRule =
  'Must be 1-64 lower-case letters, digits, - or _: a room has one spelling (atlas, not Atlas)';

/**
 * Any id, capitals included, so that the handler can still replay a booking stored with one; any other
 * id is refused with the room's own rule, not the general id rule that would call `Atlas` fine.
 */
const roomIdSchema = z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, roomIdRule));

const createBookingBody = z
  .strictObject({ roomId: roomIdSchema, userId: idSchema, start: instant, end: instant })
  .check((context) => {
    const { roomId, start, end } = context.value;
    const problem = (path: 'roomId' | 'start' | 'end', message: string) =>
      context.issues.push({ code: 'custom', input: context.value[path], path: [path], message });
    // zod runs object checks even when a field failed; only judge a period made of two instants.
    if (start instanceof Date && end instanceof Date) {
      // Past and horizon are judged in the handler, after the Idempotency-Key: a retry must replay its
      // booking even once the slot it booked has begun.
      if (!isSlotAligned(start)) problem('start', `Must be on a ${slotMinutes}-minute boundary`);
      if (!isSlotAligned(end)) problem('end', `Must be on a ${slotMinutes}-minute boundary`);
      if (end <= start) problem('end', 'Must be after start');
      else if (end.getTime() - start.getTime() > maxBookingHours * 3_600_000) {
        problem('end', `A booking lasts at most ${maxBookingHours} hours`);
      }
    }
    // A body refused for another field is no retry the handler could replay, so a capital in its room
    // id is listed now with the rest, not in a second 400 once the rest is mended. An issue on roomId
    // itself is roomIdSchema's, which already gives the rule.
    const othersFailed =
      context.issues.length > 0 && context.issues.every((issue) => issue.path?.[0] !== 'roomId');
    const capital = othersFailed && typeof roomId === 'string' ? roomIdProblem(roomId) : undefined;
    if (capital !== undefined) problem('roomId', capital);
  });

/**
 * How long an Idempotency-Key answers a booking's retry with the booking it made: long enough for a client
 * that timed out to retry with backoff. The record holds only the 201 the booking answered.
 */
const bookingReplaySec = 60 * 60;

/**
 * What a booking's retry must repeat: its room, user and period, the instants in UTC, so that a retry
 * writing them at another offset is the same request. One rule while the key's record lasts (its payload)
 * and after it (compared with the booking the key made, see {@link retriedBooking}).
 */
function bookingRequestOf(booking: Pick<NewBooking, 'roomId' | 'userId' | 'start' | 'end'>) {
  const { roomId, userId, start, end } = booking;
  return { roomId, userId, start: start.toISOString(), end: end.toISOString() };
}

/**
 * A booking retried with the same Idempotency-Key (and the same request, see {@link bookingRequestOf}:
 * another is 422) answers with the booking the first one made, instead of a 409 for the room it now
 * holds; one without a key books as it comes. Scoped to the caller, so no one else's key ever replays
 * this caller's booking.
 */
const bookingIdempotency = idempotency<IdempotentContext & InputContext<{ body: typeof createBookingBody }>>({
  persistenceStore: new ToolkitIdempotencyStore({
    name: 'bookings',
    tableName: environment.toolkitTableName,
    client: dynamoDb,
  }),
  config: new IdempotencyConfig({
    eventKeyJmesPath: 'headers."idempotency-key"',
    expiresAfterSeconds: bookingReplaySec,
  }),
  payloadOf: ({ context }) => bookingRequestOf(context.input.body),
  logger,
});

/**
 * The answer to a booking sent again with its Idempotency-Key once the key's record is gone: the first
 * request's transaction landed but answered too late (a 504, which deleted the record), or the record
 * expired, and the booking it made is `made`. The same request gets that booking as it is now, with the
 * first one's 201 and `Location`, marked as a replay; its booking.created goes out now only if it is still
 * pending, as when the first request never got that far (none once it is cancelled: booking.cancelled
 * tells it). Another request with the key (see {@link bookingRequestOf}) is 422, as it is while the
 * record exists.
 */
async function retriedBooking(
  made: StoredBooking,
  requested: NewBooking,
  context: Parameters<typeof publishPending>[1],
) {
  const { booking } = made;
  const { roomId, userId, start, end } = booking;
  if (!isDeepStrictEqual({ roomId, userId, start, end }, bookingRequestOf(requested))) {
    throw new IdempotencyKeyReusedError();
  }
  await publishPending(made, context);
  return json(201, booking, { Location: `/bookings/${booking.id}`, ...replayedHeader });
}

const listQuery = z.extend(pageQuerySchema, { userId: z.optional(idSchema), from: z.optional(queryInstant) });

export const handler = createHttpFunction(
  'bookings',
  {
    'POST /bookings': (route) =>
      route
        // Validation first: a body it refuses never touches the idempotency records.
        .use(validateInput({ body: createBookingBody }, smallBodyLimit))
        // Before the users service is called: a replay asks it nothing.
        .use(bookingIdempotency)
        .use(serviceCalls(usersService))
        .handler(async (event, context) => {
          const { input, callService, principal, scopedIdempotencyKey } = context;
          // Named after the key when there is one, so that a retry meets the booking its first request made.
          const id = scopedIdempotencyKey === undefined ? undefined : bookingIdFor(scopedIdempotencyKey);
          // Judged against the clock at each new booking (tests move it with vitest's fake Date).
          const tooEarlyOrLate = startTimeProblem(
            input.body.start,
            new Date(),
            environment.bookingHorizonDays,
          );
          const problems = [
            { field: 'body.roomId', message: roomIdProblem(input.body.roomId) },
            { field: 'body.start', message: tooEarlyOrLate },
          ].filter((problem): problem is { field: string; message: string } => problem.message !== undefined);
          if (problems.length > 0) {
            // Rules for new bookings only: a retry still gets the booking its first request made once the
            // slot has begun, or when an earlier version stored its room id with a capital.
            const made = id === undefined ? undefined : await bookings.find(id);
            if (made) return retriedBooking(made, input.body, context);
            throw new ValidationError(
              `Invalid request: ${problems.map((problem) => problem.field).join(', ')}`,
              problems,
            );
          }
          // Checked before asking users, so that a refused caller learns nothing about other user ids.
          ownerScope(callerOf(principal), event, input.body.userId, 'You can book only for yourself');
          // The user belongs to the users service: ask it (signed, guarded by the `users` circuit). The
          // booking's transaction checks the user's item again, so one deleted meanwhile gets no booking.
          await assertUserExists(callService, input.body.userId);
          let booking: Booking;
          try {
            booking = await bookings.create({ ...input.body, id, correlationId: context.correlationId });
          } catch (error) {
            if (!(error instanceof BookingIdTakenError)) throw error;
            return retriedBooking(await bookings.get(error.bookingId), input.body, context);
          }
          await publishPending({ booking, pendingEvents: ['booking.created'] }, context);
          return json(201, booking, { Location: `/bookings/${booking.id}` });
        }),

    'GET /bookings': (route) =>
      route.use(validateInput({ query: listQuery })).handler(async (event, { input, principal }) => {
        const { userId } = input.query;
        const own = ownerScope(callerOf(principal), event, userId, 'You can list only your own bookings');
        return json(200, await bookings.list({ ...input.query, userId: own ?? userId }));
      }),

    'GET /bookings/{id}': (route) =>
      route
        .use(validateInput({ path: idPathSchema }))
        .handler(async (event, { input, principal }) =>
          json(200, (await visibleBooking(input.path.id, callerOf(principal), event)).booking),
        ),

    'DELETE /bookings/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (event, context) => {
        const { input, principal } = context;
        const cancellation = await bookings.cancel(
          await visibleBooking(input.path.id, callerOf(principal), event),
          new Date(),
          context.correlationId,
        );
        // A repeat (a client retrying after a timeout) publishes booking.cancelled only if the cancel
        // it repeats did not: its transaction landed but its answer was lost, or its publish failed.
        await publishPending(cancellation, context);
        return json(200, cancellation.booking);
      }),
  },
  logger,
);
