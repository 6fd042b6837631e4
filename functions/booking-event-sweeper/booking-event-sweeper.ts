// The pending-event sweep: publishes the booking events and user.registered events their requests left pending, which a client that got its answer never retries.
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { assertNoProblems } from '../../middleware/errors.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import type { BookingEvents } from '../bookings/booking-events.js';
import { type BookingsModel, eventOfStatus } from '../bookings/bookings-model.js';
import { errorText } from '../shared/observability.js';
import { pendingShardCount } from '../shared/pending-events-index.js';
import { afterCommitFailure } from '../shared/post-commit.js';
import { StoredRecordError } from '../shared/stored-attributes.js';
import {
  type RegistrationEventStore,
  type RegistrationEvents,
  registeredEvent,
} from '../users/registration-events.js';

export interface BookingEventSweeperOptions {
  readonly bookings: BookingsModel;
  /** The bookings function's own publishing, so a swept event is the message its request would have sent. */
  readonly events: BookingEvents;
  /** The users' registration events as stored (plain attributes only: the sweep decrypts nothing). */
  readonly registrationStore: RegistrationEventStore;
  /** The users function's own publishing of user.registered. */
  readonly registrations: RegistrationEvents;
  readonly logger: Logger;
  readonly auditLogger: AuditLogger;
  readonly metrics: Metrics;
  /**
   * How long an event must have been pending before the sweep publishes it: longer than a request's
   * deadline, so the sweep leaves an event to the request still publishing it.
   * @default 60_000
   */
  readonly graceMs?: number;
  /**
   * Index entries read per query. The run goes on page by page, the shards in turn, until none is left
   * or its deadline.
   * @default 100
   */
  readonly pageSize?: number;
}

/** One run of the sweep. */
export interface SweepRun {
  /** When the run started: events pending since before `now` minus the grace are swept. */
  readonly now: Date;
  /** Aborts when the run must stop (its invocation's deadline); undefined: no deadline. */
  readonly signal: AbortSignal | undefined;
  /**
   * The run's own id (its invocation's request id, logged as `sweep_run_id`). An event is published, and its
   * lines written, with the correlation id of the request that left it pending, kept on its item; one stored
   * before that id was kept gets this one instead.
   */
  readonly runId: string;
}

/** What one run did. */
export interface SweepReport {
  /** Events published and marked published. */
  readonly swept: number;
  /** Events tried and left pending for the next run: not published in full, or published but not marked. */
  readonly stillPending: number;
  /**
   * Bookings on the index with nothing pending that their status calls for, and users with nothing pending
   * or whose registration lapsed unverified: taken off it, nothing published.
   */
  readonly cleaned: number;
  /**
   * Entries passed over: no such booking or user (a deleted user's entry goes with its item, but the index
   * lags), an item that is neither, one already off the index, or a booking or user this version cannot
   * read (`StoredRecordError`: logged each run until the record is fixed).
   */
  readonly skipped: number;
  /** Shards whose index could not be read; the others were swept. */
  readonly failedShards: readonly number[];
  /** Whether the run stopped at its deadline before reading every entry due. */
  readonly stoppedAtDeadline: boolean;
}

type Outcome = 'swept' | 'stillPending' | 'cleaned' | 'skipped';

/** Where one shard's reading has got to. */
interface ShardCursor {
  readonly shard: number;
  readonly startKey: Record<string, unknown> | undefined;
}

/**
 * Finds the bookings whose event has been pending longer than the grace on the pending-events index (no
 * scan), reads each, and publishes its event through {@link BookingEvents}, the bookings function's own
 * code: the same webhook ids, so a receiver that got the event from its request too sees one
 * `webhook-id`. Every failure is one booking's, logged, and left for the next run; a run never stops
 * for a bad entry.
 *
 * @example
 * const sweeper = new BookingEventSweeper({ bookings, events, logger, auditLogger, metrics });
 * const report = await sweeper.sweep({ now: new Date(), signal, runId: context.awsRequestId });
 */
export class BookingEventSweeper {
  private readonly graceMs: number;
  private readonly pageSize: number;

  constructor(private readonly options: BookingEventSweeperOptions) {
    this.graceMs = options.graceMs ?? 60_000;
    this.pageSize = options.pageSize ?? 100;
    const problems = [
      ...(Number.isSafeInteger(this.graceMs) && this.graceMs >= 0
        ? []
        : ['graceMs must be a whole number of milliseconds, 0 or more']),
      // DynamoDB's Query takes a Limit of at least 1; entries are keys only, so a page stays small.
      ...(Number.isSafeInteger(this.pageSize) && this.pageSize >= 1 && this.pageSize <= 1000
        ? []
        : ['pageSize must be a whole number from 1 to 1000']),
    ];
    assertNoProblems('BookingEventSweeper', problems);
  }

  async sweep(run: SweepRun): Promise<SweepReport> {
    const before = new Date(run.now.getTime() - this.graceMs);
    const counts: Record<Outcome, number> = { swept: 0, stillPending: 0, cleaned: 0, skipped: 0 };
    const failedShards: number[] = [];
    const aborted = () => run.signal?.aborted === true;
    // Page by page, the shards in turn: a backlog in one leaves the others their share of the run.
    let cursors: ShardCursor[] = Array.from({ length: pendingShardCount }, (_, shard) => ({
      shard,
      startKey: undefined,
    }));
    while (cursors.length > 0 && !aborted()) {
      const next: ShardCursor[] = [];
      for (const { shard, startKey } of cursors) {
        if (aborted()) break;
        const page = await this.readPage(shard, before, startKey, run);
        if (page === undefined) {
          if (!aborted()) failedShards.push(shard);
          continue;
        }
        for (const key of page.foreign) {
          this.options.logger.warn('Pending-events index entry names no booking or user: skipped', { key });
          counts.skipped += 1;
        }
        for (const bookingId of page.bookingIds) {
          if (aborted()) break;
          counts[await this.sweepBooking(bookingId, before, run)] += 1;
        }
        for (const userId of page.userIds) {
          if (aborted()) break;
          counts[await this.sweepUser(userId, run)] += 1;
        }
        if (page.nextKey) next.push({ shard, startKey: page.nextKey });
      }
      cursors = next;
    }
    const report = { ...counts, failedShards, stoppedAtDeadline: aborted() };
    const { logger, metrics } = this.options;
    recordMetric(metrics, 'BookingEventsSwept', { value: report.swept });
    recordMetric(metrics, 'BookingEventsStillPending', { value: report.stillPending });
    logger.info('Booking event sweep', { ...report, graceSec: this.graceMs / 1000 });
    return report;
  }

  /** One page of a shard, or undefined when it could not be read (logged). */
  private async readPage(
    shard: number,
    before: Date,
    startKey: Record<string, unknown> | undefined,
    run: SweepRun,
  ) {
    try {
      return await this.options.bookings.pendingBefore(shard, before, this.pageSize, startKey, run.signal);
    } catch (error) {
      this.options.logger.error('Could not read the pending-events index: the shard waits for the next run', {
        shard,
        error: errorText(afterCommitFailure(error, run.signal)),
      });
      return undefined;
    }
  }

  private async sweepBooking(bookingId: string, before: Date, run: SweepRun): Promise<Outcome> {
    const { bookings, events, logger, auditLogger } = this.options;
    try {
      const found = await bookings.findForSweep(bookingId, run.signal);
      if (found === undefined) {
        logger.warn('Pending-events index lists a booking that does not exist: skipped', { bookingId });
        return 'skipped';
      }
      // Published since the index was read: the index lags the table.
      if (!found.onPendingIndex) return 'skipped';
      // Moved since the index was read, by a cancel whose own request may be publishing it now: its grace
      // starts again (the index's sort key begins with the time it became pending).
      if ((found.pendingIndexSortKey ?? '') >= before.toISOString()) return 'skipped';
      const correlationId = found.pendingCorrelationId ?? run.runId;
      const result = await events.publishPending(found, correlationId, run.signal);
      if (result === 'none') {
        // What its status calls for is not pending, and no later write makes it pending again (each event
        // is added once, by the write that makes it happen): marking it published only takes the booking off.
        await bookings.markPublished(bookingId, eventOfStatus[found.booking.status], run.signal);
        logger.info('Booking on the pending-events index with nothing pending for its status: taken off it', {
          bookingId,
          status: found.booking.status,
          pendingEvents: found.pendingEvents,
        });
        return 'cleaned';
      }
      if (result !== 'published') return 'stillPending';
      const eventType = eventOfStatus[found.booking.status];
      auditLogger.log({
        eventType: 'webhook.event_swept',
        outcome: 'success',
        userId: found.booking.userId,
        correlationId,
        metadata: { bookingId, eventType },
      });
      return 'swept';
    } catch (error) {
      if (error instanceof StoredRecordError) return this.unreadable('Booking', { bookingId }, error);
      logger.error('Could not sweep a booking: it waits for the next run', {
        bookingId,
        error: errorText(afterCommitFailure(error, run.signal)),
      });
      return 'stillPending';
    }
  }

  /**
   * An entry whose booking or user this version cannot read: it reads the same on every run, so waiting
   * for the next one cannot help, fixing the record can. Logged with its key and attribute, never a value.
   */
  private unreadable(
    kind: 'Booking' | 'User',
    ids: { bookingId: string } | { userId: string },
    error: StoredRecordError,
  ): Outcome {
    this.options.logger.error(
      `${kind} on the pending-events index is a record this version cannot read: skipped`,
      {
        ...ids,
        recordKey: error.recordKey,
        attribute: error.attribute,
        problem: error.message,
      },
    );
    return 'skipped';
  }

  private async sweepUser(userId: string, run: SweepRun): Promise<Outcome> {
    const { registrationStore, registrations, logger, auditLogger } = this.options;
    try {
      const found = await registrationStore.findForSweep(userId, run.now, run.signal);
      if (found === undefined) {
        logger.warn('Pending-events index lists a user that does not exist: skipped', { userId });
        return 'skipped';
      }
      if (!found.onPendingIndex) return 'skipped';
      // A lapsed registration is a user gone for every route: no event announces it.
      if (found.lapsed || !found.pending) {
        await registrationStore.markPublished(userId, run.signal);
        logger.info('User on the pending-events index with nothing to publish: taken off it', {
          userId,
          lapsed: found.lapsed,
          pending: found.pending,
        });
        return 'cleaned';
      }
      const correlationId = found.pendingCorrelationId ?? run.runId;
      if ((await registrations.publish(found, correlationId, run.signal)) !== 'published') {
        return 'stillPending';
      }
      auditLogger.log({
        eventType: 'webhook.event_swept',
        outcome: 'success',
        userId,
        correlationId,
        metadata: { eventType: registeredEvent },
      });
      return 'swept';
    } catch (error) {
      if (error instanceof StoredRecordError) return this.unreadable('User', { userId }, error);
      logger.error('Could not sweep a user: it waits for the next run', {
        userId,
        error: errorText(afterCommitFailure(error, run.signal)),
      });
      return 'stillPending';
    }
  }
}
