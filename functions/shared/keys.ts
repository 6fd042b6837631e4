// The app table's key layout, in one place: every model builds its keys here.

const userPkPrefix = 'USER#';
export const userKey = (id: string) => ({ pk: `${userPkPrefix}${id}`, sk: 'USER' });

/** The user id a user item's key names; undefined for the key of any other item. */
export function userIdOfKey(key: Record<string, unknown>): string | undefined {
  const { pk, sk } = key;
  return typeof pk === 'string' && pk.startsWith(userPkPrefix) && sk === 'USER'
    ? pk.slice(userPkPrefix.length)
    : undefined;
}

/**
 * The unique-email claim is keyed by the email's blind index (an HMAC of the normalised, lower-cased
 * address), so the table never holds the address in clear.
 */
export const emailClaimKey = (emailIndex: string) => ({ pk: `EMAIL#${emailIndex}`, sk: 'EMAIL' });

/** A user's pending phone verification code (hashed, expiring): next to the user, gone with its TTL. */
export const phoneCodeKey = (userId: string) => ({ pk: `${userPkPrefix}${userId}`, sk: 'PHONE_CODE' });

const bookingPkPrefix = 'BOOKING#';
export const bookingKey = (id: string) => ({ pk: `${bookingPkPrefix}${id}`, sk: 'BOOKING' });

/** The booking id a booking item's key names; undefined for the key of any other item. */
export function bookingIdOfKey(key: Record<string, unknown>): string | undefined {
  const { pk, sk } = key;
  return typeof pk === 'string' &&
    pk.startsWith(bookingPkPrefix) &&
    pk.length > bookingPkPrefix.length &&
    sk === 'BOOKING'
    ? pk.slice(bookingPkPrefix.length)
    : undefined;
}

/** One item per room and slot start: owning it is what makes a booking exclusive. */
export const slotKey = (roomId: string, slotStart: Date) => ({
  pk: `SLOT#${roomId}#${slotStart.toISOString()}`,
  sk: 'SLOT',
});
