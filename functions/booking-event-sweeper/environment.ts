// The booking event sweeper's configuration, read once at cold start without a schema library: the
// sweep reads its tables, the webhook queue and its grace, and nothing else.
import {
  invalidEnvironment,
  readTableEnvironment,
  type TableEnvironment,
  tableEnvironmentProblems,
} from '../shared/table-environment.js';
import {
  type WebhookQueueEnvironment,
  webhookQueueEnvironment,
  webhookQueueEnvironmentProblems,
} from '../shared/webhook-queue-environment.js';

/**
 * BOOKING_EVENT_GRACE_SEC when unset: well past the bookings and users functions' timeout (10 s), so the
 * sweep never publishes an event its own request is still publishing.
 */
export const defaultBookingEventGraceSec = 60;
/** The longest grace BOOKING_EVENT_GRACE_SEC takes: a day. */
const maxBookingEventGraceSec = 86_400;

export interface SweeperEnvironment extends TableEnvironment, WebhookQueueEnvironment {
  /**
   * Seconds a booking event stays pending before the sweep publishes it (BOOKING_EVENT_GRACE_SEC, whole
   * seconds, 0 to 86400). Shorter than a request's deadline, the sweep may publish an event its request is
   * still publishing: a duplicate with the same webhook ids, which costs a message but loses nothing.
   */
  bookingEventGraceSec: number;
}

/** Written out in digits: coercion would read an empty or blank value as 0. */
const isGraceSec = (value: string) => /^\d+$/.test(value) && Number(value) <= maxBookingEventGraceSec;

/**
 * The rule a BOOKING_EVENT_GRACE_SEC of `value` breaks, or undefined when the sweeper takes it (`npm start`
 * checks the shell's before starting anything).
 */
export function bookingEventGraceProblem(value: string): string | undefined {
  return isGraceSec(value) ? undefined : `a whole number of seconds from 0 to ${maxBookingEventGraceSec}`;
}

/** Fails the cold start naming every missing or invalid variable (never their values). */
export function readSweeperEnvironment(env: NodeJS.ProcessEnv = process.env): SweeperEnvironment {
  const grace = env.BOOKING_EVENT_GRACE_SEC;
  const problems = [
    ...tableEnvironmentProblems(env),
    ...webhookQueueEnvironmentProblems(env),
    ...(grace === undefined || isGraceSec(grace) ? [] : ['BOOKING_EVENT_GRACE_SEC']),
  ];
  if (problems.length > 0) throw invalidEnvironment(problems);
  return {
    ...readTableEnvironment(env),
    ...webhookQueueEnvironment(env),
    bookingEventGraceSec: grace === undefined ? defaultBookingEventGraceSec : Number(grace),
  };
}
