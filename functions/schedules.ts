// The one scheduled-function table: read by the CDK stack (an EventBridge schedule each) and the local runtime (an interval each).
import type { TableAccess } from './routes.js';
import { pendingEventsIndex } from './shared/pending-events-index.js';

/** Settings of one Lambda function run on a fixed schedule. */
export interface ScheduledFunctionDefinition extends TableAccess {
  /** Handler module, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  /** Lambda memory in MB. */
  readonly memoryMb: number;
  /** Lambda timeout; the local runtime enforces it too. */
  readonly timeoutSec: number;
  /** Minutes between two runs: the stack's `rate(n minutes)` schedule and the local runtime's default interval. */
  readonly everyMinutes: number;
}

export const scheduledFunctions = {
  'booking-event-sweeper': {
    entry: 'functions/booking-event-sweeper/handler.ts',
    memoryMb: 256,
    // Room for a backlog after an outage; each run stops short of it and the next one goes on.
    timeoutSec: 60,
    everyMinutes: 5,
    tableActions: {
      // Each pending booking and user by key, and its mark once its event is published: no put, delete or
      // transaction.
      app: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      // The subscriptions its fan-out reads.
      toolkit: ['dynamodb:Query'],
    },
    queriedIndexes: { app: [pendingEventsIndex] },
  },
} as const satisfies Record<string, ScheduledFunctionDefinition>;

export type ScheduledFunctionName = keyof typeof scheduledFunctions;

/** The scheduled function names, typed (Object.keys would widen them to string). */
export const scheduledFunctionNames = Object.keys(scheduledFunctions) as ScheduledFunctionName[];
