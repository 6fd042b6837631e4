// What a failed send's log line may say: providers quote the recipient in their error text, which is personal data.
import { headOf, markedHead } from '../../middleware/text.js';

/**
 * An address as providers quote it (`<ada@example.com>`, `check: ada@example.com`). The local part may
 * hold an apostrophe (`sean.o'brien@`, which the message schema accepts); the domain may not.
 */
const emailAddressPattern = /[^\s<>()[\]",;:]+@[^\s<>()[\]"',;:]+/g;
/**
 * A phone number as providers quote it: 7 to 15 digits, with or without the `+` of E.164 (`+1-4155552671`
 * loses its number too). Shorter digit groups joined by dots or dashes stay (an IP address, a date), so the
 * text around a number remains readable.
 */
const phoneNumberPattern = String.raw`\+?\b\d{7,15}\b`;
/**
 * A UUID (a message, request, user or booking id), matched first and kept whole: about one UUID in forty has
 * a group of 8 or 12 digits and no letter, which is no phone number.
 */
const uuidPattern = String.raw`\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b`;
const uuidOrPhoneNumber = new RegExp(`(${uuidPattern})|${phoneNumberPattern}`, 'gi');

/**
 * The most of an error's text a failed send's line keeps, as much as an audit line keeps of a string. The
 * text is cut before the masks run: the address pattern reads a long run without `@` from each of its
 * characters, and a provider's text has no bound.
 */
const longestReason = 2048;

/** What ends an address or a phone number as providers quote them: the cut never falls inside one. */
const recipientDelimiter = /[\s<>()[\]",;:]/;

/**
 * Free text with email addresses and phone numbers masked; over {@link longestReason} characters, cut
 * first at the end of the last whole word before it, so no recipient is cut in half and left unmasked.
 */
export function maskRecipients(text: string): string {
  if (text.length <= longestReason) return maskWhole(text);
  const head = headOf(text, longestReason);
  let end = head.length;
  while (end > 0 && !recipientDelimiter.test(head.charAt(end - 1))) end -= 1;
  return markedHead(maskWhole(head.slice(0, end)), text.length - end);
}

function maskWhole(text: string): string {
  return text
    .replace(emailAddressPattern, '[email]')
    .replace(uuidOrPhoneNumber, (_match: string, uuid?: string) => uuid ?? '[phone]');
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
