// Numbers as a reader reads them, shared by the emails (functions/email-worker/templates.ts) and the verification pages.

/** A number of minutes as a reader reads it, `1 minute` or `10 minutes`: a template cannot pluralise. */
export function minutesInWords(minutes: number): string {
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}
