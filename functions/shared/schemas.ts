// Input schemas shared by the sample functions.
import {
  emailLengthLimits,
  fitsEmailLengthLimit,
  hasIdnaDomain,
  undeliverableMailSuffix,
  undeliverableMailSuffixes,
  withAsciiDomain,
} from '../../middleware/email-address.js';
import * as z from './zod.js';

/** Ids: safe inside composite keys (no `#`), bounded so no key grows an item. */
export const idSchema = z
  .string()
  .check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, 'Must be 1-64 letters, digits, - or _'));

export const idPathSchema = z.strictObject({ id: idSchema });

/**
 * The sample routes' bodies are a few short fields (a registration, a booking, a code): anything
 * bigger is not one, and is refused with 413 before it is parsed, rather than read and validated.
 */
export const smallBodyLimit = { maxBodyBytes: 8 * 1024 } as const;

/** A page size as written in a query string: decimal digits only (no `0x10`, `1e2` or spaces), 1 to 100; 20 when unset. */
const pageLimitSchema = z._default(
  z.pipe(
    z.string().check(z.regex(/^0*(?:[1-9][0-9]?|100)$/, 'Must be a whole number from 1 to 100')),
    z.transform((digits: string) => Number(digits)),
  ),
  20,
);

/**
 * A list's page: strict, so a parameter the list does not know is a 400 naming it rather than ignored (an
 * admin's `?user_id=` for `?userId=` would otherwise list everybody's bookings). Extend it for a list's own
 * parameters; a link mailed to people (the verification link) stays lenient, since mail clients and
 * trackers append parameters to links.
 */
export const pageQuerySchema = z.strictObject({
  limit: pageLimitSchema,
  cursor: z.optional(z.string().check(z.maxLength(2048))),
});

/**
 * The shape of an address once its domain is ASCII: a local part of dot-separated runs of letters,
 * digits, `_`, `'`, `+` and `-` (not ending in `'`), and a domain of labels under a top-level one that is
 * letters, or an internationalised one in its ASCII form (`xn--p1ai` for `рф`, `xn--fiqs8s` for `中国`;
 * hyphens only between letters or digits, as DNS has them, since Node's IDNA takes `xn--p1ai-` too).
 * Zod's own `email()` pattern takes letters only there, which refuses every address at such a domain;
 * {@link hasIdnaDomain} then refuses an `xn--` label that is broken punycode.
 */
const emailShape =
  /^[a-z0-9_'+-]+(?:\.[a-z0-9_'+-]+)*(?<!')@(?:[a-z0-9][a-z0-9-]*\.)+(?:[a-z]{2,}|xn--[a-z0-9]+(?:-[a-z0-9]+)*)$/i;

/** One reason at a time: an address already refused for one thing is not told of the next. */
const onlyWhenValidSoFar = { when: (payload: { issues: readonly unknown[] }) => payload.issues.length === 0 };

/**
 * An email address with an ASCII local part and a domain that may be internationalised: the domain
 * becomes its ASCII form first (`bob@bücher.de` is stored and sent as `bob@xn--bcher-kva.de`, `u@пример.рф`
 * as `u@xn--e1afmkfd.xn--p1ai`), and one with none is refused, also one written in ASCII (`a@xn--zz.com`,
 * broken punycode), with the message a malformed address gets. In that form, at most 64 characters
 * before the `@`, 63 between two dots of the domain and 254 in all (`emailLengthLimits`: no mail server
 * takes more). A domain under a name reserved from the DNS (`undeliverableMailSuffixes`:
 * `x@example.invalid`, `z@test.test`) is refused too: mail to it could only bounce, and bounces count
 * against the sender's reputation.
 */
export const emailAddressSchema = z.string().check(
  z.overwrite(withAsciiDomain),
  z.email({ pattern: emailShape }),
  z.refine(hasIdnaDomain, { message: 'Invalid email address', ...onlyWhenValidSoFar }),
  z.refine((address) => fitsEmailLengthLimit(address, 'localPart'), {
    message: `Must have at most ${emailLengthLimits.localPart} characters before the @`,
    ...onlyWhenValidSoFar,
  }),
  z.refine((address) => fitsEmailLengthLimit(address, 'domainLabel'), {
    message: `Must have at most ${emailLengthLimits.domainLabel} characters between two dots of the domain, written in ASCII (IDNA)`,
    ...onlyWhenValidSoFar,
  }),
  z.refine((address) => fitsEmailLengthLimit(address, 'address'), {
    message: `Must be at most ${emailLengthLimits.address} characters, with the domain written in ASCII (IDNA)`,
    ...onlyWhenValidSoFar,
  }),
  z.refine((address) => undeliverableMailSuffix(address) === undefined, {
    message: `Must be an address that can receive mail: domains under ${undeliverableMailSuffixes.map((suffix) => `.${suffix}`).join(', ')} never can`,
    ...onlyWhenValidSoFar,
  }),
);
