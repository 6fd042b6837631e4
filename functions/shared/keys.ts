// The app table's key layout, in one place: every model builds its keys here.

export const userKey = (id: string) => ({ pk: `USER#${id}`, sk: 'USER' });

/** Emails compare case-insensitively, so the claim is keyed by the lower-cased address. */
export const emailClaimKey = (email: string) => ({ pk: `EMAIL#${email.toLowerCase()}`, sk: 'EMAIL' });

export const bookingKey = (id: string) => ({ pk: `BOOKING#${id}`, sk: 'BOOKING' });

/** One item per room and slot start: owning it is what makes a booking exclusive. */
export const slotKey = (roomId: string, slotStart: Date) => ({
  pk: `SLOT#${roomId}#${slotStart.toISOString()}`,
  sk: 'SLOT',
});
