// The booking event sweeper function: run on a schedule, it publishes the booking and user.registered events their requests left pending (see booking-event-sweeper.ts).
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { DeadlineExceededError } from '../../middleware/errors.js';
import { captureMetrics } from '../../middleware/metrics/middy.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { BookingEvents } from '../bookings/booking-events.js';
import { BookingsModel } from '../bookings/bookings-model.js';
import { functionObservability } from '../shared/observability.js';
import { answerMarginMs } from '../shared/post-commit.js';
import { createWebhookFanOut } from '../shared/webhook-fanout.js';
import { RegistrationEventStore, RegistrationEvents } from '../users/registration-events.js';
import { BookingEventSweeper, type SweepReport } from './booking-event-sweeper.js';
import { readSweeperEnvironment } from './environment.js';

const observability = functionObservability('booking-event-sweeper');
const { logger, auditLogger, metrics } = observability;
const environment = readSweeperEnvironment();
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const documents = createDocumentClient(dynamoDb);
const bookings = new BookingsModel(documents, environment.appTableName);
const registrationStore = new RegistrationEventStore(documents, environment.appTableName);
const webhooks = createWebhookFanOut(environment, environment, dynamoDb, observability);
const sweeper = new BookingEventSweeper({
  bookings,
  events: new BookingEvents({ bookings, webhooks, logger }),
  registrationStore,
  registrations: new RegistrationEvents({ store: registrationStore, webhooks, logger }),
  logger,
  auditLogger,
  metrics,
  graceMs: environment.bookingEventGraceSec * 1000,
});

/** Some shards of the pending-events index could not be read: their events wait for the next run. */
export class BookingEventSweepError extends Error {
  constructor(readonly failedShards: readonly number[]) {
    super(`The pending-events index could not be read for shards ${failedShards.join(', ')}`);
    this.name = 'BookingEventSweepError';
  }
}

/**
 * Aborts {@link answerMarginMs} before the invocation times out, so the run reports what it did (its
 * line and metrics) instead of being cut off; what it had not reached waits for the next run.
 */
function runDeadline(context: Pick<Context, 'getRemainingTimeInMillis'>): AbortSignal {
  const budgetMs = Math.max(0, context.getRemainingTimeInMillis() - answerMarginMs);
  const controller = new AbortController();
  setTimeout(
    () =>
      controller.abort(
        new DeadlineExceededError('booking event sweep', budgetMs, {
          message: `The sweep stopped at the ${budgetMs} ms its invocation had`,
        }),
      ),
    budgetMs,
  ).unref();
  return controller.signal;
}

/**
 * One run. It fails (Lambda counts an error, which the stack alarms on) only when a shard of the index
 * could not be read; a booking that could not be published is logged and counted, and stays pending.
 */
async function sweep(_event: ScheduledEvent, context: Context): Promise<SweepReport> {
  const runId = context.awsRequestId;
  // Not as correlation_id: each event's lines carry the id of the request that left it pending.
  logger.appendKeys({ sweep_run_id: runId });
  const report = await sweeper.sweep({ now: new Date(), signal: runDeadline(context), runId });
  if (report.failedShards.length > 0) throw new BookingEventSweepError(report.failedShards);
  return report;
}

export const handler = middy(sweep)
  // The event is the schedule's and holds nothing but its time: no need to log it.
  .use(injectLambdaContext(logger, { resetKeys: true, logEvent: false }))
  .use(captureMetrics(metrics));
