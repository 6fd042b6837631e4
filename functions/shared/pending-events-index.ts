// The app table's pending-events index (gsi3): the bookings and users with a webhook event not known to be
// published, sharded, for the sweep that publishes them (functions/booking-event-sweeper/).
import { createHash } from 'node:crypto';

/**
 * How many partition keys the pending-events index (`gsi3`) spreads its entries over: every booking
 * create and cancel and every registration writes an entry and its publishing removes it, and under one key all of those writes would go
 * to one index partition.
 */
export const pendingShardCount = 4;

/** The app table's index of bookings and users with an event pending (see middleware/store/tables.ts). */
export const pendingEventsIndex = 'gsi3';

/** The pending-events index's partition key for shard `shard` (0 to {@link pendingShardCount} - 1). */
export const pendingPartition = (shard: number) => `PENDING#${shard}`;

/** A booking's or user's shard on the pending-events index: from a hash of its id, so ids of any form spread evenly. */
export function pendingShardOf(itemId: string): number {
  return createHash('sha256').update(itemId).digest().readUInt8(0) % pendingShardCount;
}

/**
 * The pending-events index's keys of a booking or user (`itemId`) one of whose events became pending at
 * `since` (an ISO instant: the sort key orders the index by it, the id keeps entries of one instant
 * apart). Which of the two an entry is, its table key says (`BOOKING#` or `USER#`).
 */
export function pendingIndexKeys(itemId: string, since: string) {
  return { gsi3pk: pendingPartition(pendingShardOf(itemId)), gsi3sk: `${since}#${itemId}` };
}
