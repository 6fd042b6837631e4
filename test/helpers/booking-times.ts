// Booking times counted from today: a fixed date would one day fall in the past, or today be beyond the
// booking horizon (BOOKING_HORIZON_DAYS), and the tests booking it would start failing on their own.

/**
 * Times on the UTC day `daysAhead` days after today, taken once, so that a file running across midnight
 * keeps booking one day: `at(9, 30)` is 09:30 UTC that day, as ISO; hours past 23 run on into the next days.
 */
export function bookingDay(daysAhead: number): (hour: number, minute?: number) => string {
  const today = new Date();
  const midnight = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + daysAhead);
  return (hour, minute = 0) => new Date(midnight + (hour * 60 + minute) * 60_000).toISOString();
}
