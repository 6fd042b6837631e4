// What a failed send's log line may say: providers quote the recipient in their error text, which is personal data.

/**
 * An address as providers quote it (`<ada@example.com>`, `check: ada@example.com`). The local part may
 * hold an apostrophe (`sean.o'brien@`, which the message schema accepts); the domain may not.
 */
const emailAddressPattern = /[^\s<>()[\]",;:]+@[^\s<>()[\]"',;:]+/g;
/**
 * A phone number as providers quote it: 7 to 15 digits, with or without the `+` of E.164. Digits joined
 * by dots or dashes stay (an IP address, a date), so the text around a number remains readable.
 */
const phoneNumberPattern = /\+?\b\d{7,15}\b/g;

/** Free text with email addresses and phone numbers masked. */
export function maskRecipients(text: string): string {
  return text.replace(emailAddressPattern, '[email]').replace(phoneNumberPattern, '[phone]');
}

/**
 * The log fields of a failed send: the error's name, its `code` and SMTP `responseCode` (never
 * personal), and its text with any recipient masked.
 *
 * @example
 * logger.warn('Email send failed', { messageId, ...sendFailureLogFields(error) });
 */
export function sendFailureLogFields(error: unknown): Record<string, string | number> {
  if (!(error instanceof Error)) return { reason: maskRecipients(String(error)) };
  const { code, responseCode } = error as Error & { code?: unknown; responseCode?: unknown };
  return {
    reason: maskRecipients(`${error.name}: ${error.message}`),
    errorName: error.name,
    ...(typeof code === 'string' ? { errorCode: code } : {}),
    ...(typeof responseCode === 'number' ? { responseCode } : {}),
  };
}
