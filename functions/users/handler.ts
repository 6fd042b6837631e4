// The users function: register, get, email and phone verification (and new SMS codes), and the admin list and delete routes.

import { outcomeForStatus } from '../../middleware/audit/audit-event.js';
import { statusOfError } from '../../middleware/audit/request-summary.js';
import {
  ConflictError,
  GoneError,
  NotFoundError,
  TooManyRequestsError,
  ValidationError,
} from '../../middleware/errors.js';
import { emitEvent } from '../../middleware/events.js';
import { validateInput } from '../../middleware/http/middy.js';
import { json, noContent } from '../../middleware/http/response.js';
import { RateLimiter, rateLimitHitEvent } from '../../middleware/rate-limit/rate-limiter.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { auditingUnknownOutcome, unknownOutcomeReason } from '../shared/audited-change.js';
import { createFunctionEncryptor } from '../shared/encryption.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { emptyFormBody } from '../shared/form-post.js';
import { createHttpFunction } from '../shared/http-function.js';
import { functionObservability } from '../shared/observability.js';
import { phoneSchema } from '../shared/phone.js';
import { afterCommitDeadline, afterCommitFailure, untilAborted } from '../shared/post-commit.js';
import { rotatingSecretReader } from '../shared/rotating-secret.js';
import { rateLimitStore } from '../shared/route-rate-limit.js';
import { emailAddressSchema, idPathSchema, pageQuerySchema, smallBodyLimit } from '../shared/schemas.js';
import { functionSqsClient } from '../shared/sqs-client.js';
import { defaultTenantId } from '../shared/tenant.js';
import { rotatingVerificationLinkProblem } from '../shared/verification-link.js';
import { createWebhookFanOut } from '../shared/webhook-fanout.js';
import { WebhookStore } from '../shared/webhook-store.js';
import * as z from '../shared/zod.js';
import { RegistrationEmails, verificationEmailPerUserPolicy } from './registration-emails.js';
import { RegistrationEventStore, RegistrationEvents } from './registration-events.js';
import { SmsBudgets } from './sms-budgets.js';
import { PhoneCodeLimitError, UnverifiedEmailTakenError, type User, UsersModel } from './users-model.js';
import {
  confirmEmailPage,
  ExpiredConfirmedLinkError,
  ExpiredRenewableLinkError,
  emailAlreadyConfirmedPage,
  emailConfirmedPage,
  linkRefusalPages,
  newLinkRefusalPages,
  newLinkSentPage,
  prefersHtml,
} from './verification-pages.js';

const observability = functionObservability('users');
const { logger, auditLogger, metrics, onEvent } = observability;
// Registration, SMS budgets and phone codes all use blind indexes: their key is checked at cold start.
const environment = readEnvironment(process.env, { blindIndexes: true });
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const users = new UsersModel(
  createDocumentClient(dynamoDb),
  environment.appTableName,
  createFunctionEncryptor(environment, onEvent),
  defaultTenantId,
  { unverifiedUserTtlSec: environment.unverifiedUserTtlHours * 3600 },
);
// The function's own limiters: the route limits' store (tight bounds, so an outage fails fast) and the
// function's logger (a store outage is one JSON line with the request's correlation id).
/** The SMS budgets (each number's, each region's, the deployment's), shared by the fleet. */
const smsBudgets = new SmsBudgets({
  store: rateLimitStore(),
  sms: environment.sms,
  numberKey: (phoneNumber) => users.smsBudgetKey(phoneNumber),
  observability,
});

/** Spends a unit of `key`'s budget; a spent budget is a rateLimit.hit event, as the middleware's are. */
async function consumeReported(limiter: RateLimiter, key: string, keyBy: string) {
  const result = await limiter.consume(key);
  if (!result.allowed) emitEvent(onEvent, rateLimitHitEvent(limiter.policy.name, result, { keyBy }));
  return result;
}

/** Verification emails each user may ask for again, shared by the fleet. */
const verificationEmailsPerUser = new RateLimiter({
  policy: verificationEmailPerUserPolicy,
  store: rateLimitStore(),
  onEvent,
  logger,
});

const queues = readQueueEnvironment(process.env, { links: true });
const registrationEvents = new RegistrationEvents({
  store: new RegistrationEventStore(createDocumentClient(dynamoDb), environment.appTableName),
  webhooks: createWebhookFanOut(environment, queues, dynamoDb, observability),
  logger,
});
/** Deleting a user deletes the webhook endpoints they registered (no signing secret is read: no key). */
const webhookStore = new WebhookStore({
  documentClient: createDocumentClient(dynamoDb),
  tableName: environment.toolkitTableName,
});
const readLinkSecret = queues.verificationLinkSecret
  ? rotatingSecretReader(queues.verificationLinkSecret, onEvent)
  : undefined;
const registrationEmails = new RegistrationEmails({
  sqs: queues.emailQueueUrl ? functionSqsClient(queues.sqsEndpoint) : undefined,
  queues,
  logger,
  auditLogger,
  metrics,
  ...(readLinkSecret ? { readLinkSecret } : {}),
  issuePhoneCode: (userId, abortSignal) => users.issuePhoneCode(userId, { abortSignal }),
  admitSms: (phoneNumber, purpose) => smsBudgets.admit(phoneNumber, purpose),
  markQueued: (userId, abortSignal) => users.markRegistrationMessagesQueued(userId, abortSignal),
});

/**
 * Queues the emails (and SMS code) of the registration `userId` if they never were: its write landed while
 * its request failed (a 504 whose transaction DynamoDB applied), so its client's retry meets its claim,
 * and without them nobody could verify the address until the registration lapses. Spends a unit of the
 * user's verification-email limit, given back if nothing was queued. Everything stops at `deadline`, and a
 * failure is only logged: the retry's answer is the 409 either way, with nothing more in it, so it tells
 * no one whether anything was sent.
 */
async function queueUnsentRegistration(
  userId: string,
  correlationId: string,
  deadline: AbortSignal | undefined,
): Promise<void> {
  try {
    const user = await users.unsentRegistration(userId, deadline);
    if (user === undefined) return;
    const admitted = await untilAborted(deadline, () =>
      consumeReported(verificationEmailsPerUser, user.id, 'user'),
    );
    if (!admitted.allowed) return;
    if (!(await registrationEmails.enqueue(user, correlationId, deadline))) {
      await verificationEmailsPerUser.refund(user.id, admitted);
    }
  } catch (error) {
    logger.warn('The emails of a registration met unsent could not be queued', {
      userId,
      correlationId,
      error: afterCommitFailure(error, deadline),
    });
  }
}

/**
 * A person's name: words of letters (any script), joined by one space, `'`, `’` or `-`, or by a
 * script's own joiner between two letters of that script: `·` between l and l (Catalan `Gal·la`) or
 * between Han (Chinese `迈克尔·杰克逊`), `・` between kana or Han (`ジョン・スミス`), `׳` or `״` after a
 * Hebrew letter (geresh, gershayim: `צ׳רלי`), a zero-width non-joiner between Arabic-script letters
 * (Persian `مهدی‌زاده`); a word may end with `.` before a space or at the end (`Dr. Ada`,
 * `J. R. R. Tolkien`). The name goes into emails sent to an address nobody has proved yet, so it must not
 * carry a link (`evil.com`), something that reads as one (`evil·com`, `pay‌pal`), a number, markup or a
 * control or bidi character. Letters alone can still do that, so {@link nameSchema} refuses three kinds
 * of them after this pattern: invisible ones (a Hangul filler is a letter, a variation selector a mark:
 * they pad a name so that the text after them reads as the email's own), letters drawn as punctuation
 * or digits (`bulwarkꓸcom`, `httpsː…`, `ƼOO`), and a word mixing Latin letters with another script's
 * (`pаypal` with a Cyrillic а, `httpsノノevil`). Each combining mark belongs to the letter before it and
 * no joiner is a letter or mark, so a string matches one way only and a failing match costs linear time
 * (a mark that either branch could take made it quadratic: 30,000 marks, 10 s). Each joiner's look back
 * at the letter before it runs only once the joiner itself has matched: run first, it re-scanned every
 * run of marks at each step back (10,000 marks, 7 s).
 */
const personName =
  /^\p{L}\p{M}*(?:\p{L}\p{M}*|\.? \p{L}\p{M}*|['’-]\p{L}\p{M}*|\u00b7(?:(?<=[lL]\u00b7)[lL]|(?<=\p{scx=Han}\p{M}*\u00b7)\p{scx=Han})\p{M}*|\u30fb(?<=[\p{scx=Hira}\p{scx=Kana}\p{scx=Han}]\p{M}*\u30fb)[\p{scx=Hira}\p{scx=Kana}\p{scx=Han}]\p{M}*|[\u05f3\u05f4](?<=\p{scx=Hebr}\p{M}*[\u05f3\u05f4])\p{scx=Hebr}\p{M}*|\u200c(?<=\p{scx=Arab}\p{M}*\u200c)\p{scx=Arab}\p{M}*)*\.?$/u;

/**
 * No default-ignorable code point (Hangul fillers, variation selectors, the combining grapheme joiner,
 * Khmer's inherent vowels, …), each drawn as nothing, but the zero-width non-joiner `personName` admits
 * between Arabic-script letters.
 */
const noInvisibleCharacters = /^[\P{DI}\u200c]*$/u;

/**
 * No letter drawn as punctuation or a digit: the spacing modifier letters (`ː` reads as `:`) but the
 * four apostrophe-like ones names are written with (ʻ U+02BB, the Hawaiian ʻokina; ʼ U+02BC; ʾ U+02BE;
 * ʿ U+02BF), Lisu's tone letters (`ꓸ` reads as `.`, `ꓽ` as `:`), NKo's lajanyalan (`ߺ` as `_`), the
 * Latin tone letters (`Ƨ` as 2, `Ƽ` as 5, `Ƅ` as 6, `ƻ` as 2, `Ꜫ` as 3), the click letters (`ǀ` as `|`,
 * `ǃ` as `!`), the glottal stops (`ʔ` as `?`), the sinological dot (`ꞏ` as `·`), the tone letters with
 * a dot (`ꜗ ꜘ ꜙ`, U+A717–U+A719: `ꜘ` reads as `./`), the superscript colons (U+10781, U+10782: `ː` raised)
 * and the mathematical letters (`𝐩𝐚𝐲`, styled Latin and Greek). Catalan's `ŀ` (l with a middle dot) stays only before an l,
 * as `·` does: `paŀla` is the old spelling of `pal·la`, `paypaŀcom` reads as `paypal·com`. Ezh (`Ʒ`) is
 * left to the Sami and African names written with it, though it looks like a 3.
 */
const noLettersReadAsPunctuationOrDigits =
  /^(?:[^\u02b0-\u02ba\u02bd\u02c0-\u02ff\ua4f8-\ua4ff\u07fa\u01a7\u01a8\u01bc\u01bd\u0184\u0185\u01bb\ua72a-\ua72d\u01c0-\u01c3\u0294\u0241\u0242\ua78f\ua717-\ua719\u{10781}\u{10782}\u{1d400}-\u{1d7ff}\u013f\u0140]|[\u013f\u0140](?=[lL]))*$/u;

/**
 * Letters a script writes as a dot or a stroke, which read as punctuation among another script's letters
 * (`РАУРАӀᐧСОМ`, all Cyrillic but the dot, reads as `PAYPAL·COM`), and the script whose words alone may
 * hold them: Canadian syllabics' finals `ᐟ` (U+141F, a small `/`), `ᐥ` (U+1425, `//`), `ᐧ` (U+1427, the
 * w-dot Cree and Ojibwe write, `·`) and `ᣟ` (U+18DF, a raised dot); Devanagari's high spacing dot `ॱ`
 * (U+0971); Arabic's baseline round dot `ࢇ` (U+0887, `.`). Within a word of their own script they are that
 * script's letters, so names written in it keep them.
 */
const punctuationLikeLetters: readonly { readonly letters: RegExp; readonly script: RegExp }[] = [
  { letters: /[\u141f\u1425\u1427\u18df]/u, script: /^\p{scx=Cans}$/u },
  { letters: /\u0971/u, script: /^\p{scx=Deva}$/u },
  { letters: /\u0887/u, script: /^\p{scx=Arab}$/u },
];

/** A word with a letter of {@link punctuationLikeLetters} has letters of that letter's script alone. */
function keepsPunctuationLikeLettersToTheirScript(word: string): boolean {
  const letters = word.match(/\p{L}/gu) ?? [];
  return punctuationLikeLetters.every(
    ({ letters: punctuationLike, script }) =>
      !punctuationLike.test(word) || letters.every((letter) => script.test(letter)),
  );
}

const latinLetter = /\p{sc=Latn}/u;
/** A letter of another script than Latin: not the four apostrophe-like letters, which belong to none. */
const nonLatinLetter = /(?![\p{sc=Latn}\u02bb\u02bc\u02be\u02bf])\p{L}/u;

/** A word with a Latin letter has no letter of another script: `pаypal` with a Cyrillic а reads as `paypal`. */
function keepsLatinToItself(word: string): boolean {
  return !(latinLetter.test(word) && nonLatinLetter.test(word));
}

/**
 * The name as stored: NFC, so one name has one spelling and the length counts what people see, and any
 * run of spaces (a pasted U+00A0, the ideographic U+3000) one ASCII space.
 */
const nameSchema = z.string().check(
  z.normalize('NFC'),
  z.overwrite((name) => name.replace(/\p{Zs}+/gu, ' ')),
  z.trim(),
  z.minLength(1),
  // Too long ends the checks: the pattern never runs on the rest of a 1 MiB body.
  z.maxLength(100, { abort: true }),
  // A failing check ends the checks: the client reads one reason, the first rule the name breaks.
  z.regex(personName, {
    error:
      "Must be a name: words of letters joined by single spaces, ' ’ - · ・ ׳ ״ or a zero-width non-joiner; no digits, links or markup",
    abort: true,
  }),
  z.regex(noInvisibleCharacters, { error: 'Must not contain invisible characters', abort: true }),
  z.regex(noLettersReadAsPunctuationOrDigits, {
    error: 'Must not contain letters that read as punctuation or digits',
    abort: true,
  }),
  z.refine((name) => name.split(' ').every(keepsPunctuationLikeLettersToTheirScript), {
    error: 'Must not contain letters that read as punctuation or digits',
    abort: true,
  }),
  z.refine(
    (name) => name.split(' ').every(keepsLatinToItself),
    "A word must not mix Latin letters with another script's",
  ),
);

const registerBody = z.strictObject({
  email: emailAddressSchema,
  name: nameSchema,
  // Only numbers SMS codes may go to (SMS_REGIONS): anyone can register, so every region accepted here
  // is a destination anyone can make the deployment pay for (SMS pumping, toll fraud).
  phone: z.optional(phoneSchema('mobile', { regions: environment.sms.regions })),
});

/** What the verification email's link carries (functions/shared/verification-link.ts); other parameters are ignored. */
const verifyQuery = z.object({
  expires: z.string().check(z.regex(/^\d{1,12}$/, 'Must be epoch seconds')),
  signature: z.string().check(z.regex(/^[\w-]{43}$/, 'Must be a base64url HMAC-SHA256')),
});

const verifyPhoneBody = z.strictObject({
  code: z.string().check(z.regex(/^\d{6}$/, 'Must be the 6 digits from the SMS')),
});

/**
 * The 410 for a genuine link past its time. A link never outlives its registration's verification
 * window, so the registration may have lapsed with it: then a new link cannot help, only registering again.
 * An address confirmed since needs nothing, and its page offers no new link.
 */
async function expiredLinkError(userId: string): Promise<GoneError> {
  let verified: boolean;
  try {
    verified = await users.isEmailVerified(userId);
  } catch (error) {
    if (error instanceof NotFoundError || error instanceof GoneError) {
      return new GoneError('The verification link has expired, and the registration with it; register again');
    }
    throw error;
  }
  // A new link would only be refused (409): say what the owner needs to know instead.
  if (verified) return new ExpiredConfirmedLinkError();
  return new ExpiredRenewableLinkError();
}

/** Refuses a link this deployment did not sign for `userId` (400), or signed but past its time (410). */
async function checkVerificationLink(userId: string, link: { expires: string; signature: string }) {
  const problem = await rotatingVerificationLinkProblem(readLinkSecret, { userId, ...link });
  if (problem === 'expired') throw await expiredLinkError(userId);
  // The query's shape is validated before: what is left is a signature this deployment did not make for it.
  if (problem) {
    // A forged or altered link, worth an audit line as a wrong phone code is: many of them is someone guessing.
    auditLogger.log({
      eventType: 'user.email_verification_failed',
      outcome: 'denied',
      userId,
      reason: problem,
    });
    throw new ValidationError('The verification link is invalid', [
      { field: 'query.signature', message: 'Does not sign this link' },
    ]);
  }
}

/**
 * What stopped an audited change part-way, for its line: the passing store failure or deadline as
 * {@link unknownOutcomeReason} names it, else the error's code (`NOT_FOUND`, `CONFLICT`) or SDK name
 * (`AccessDeniedException`).
 */
function failureReason(error: unknown): string {
  const unknownOutcome = unknownOutcomeReason(error);
  if (unknownOutcome !== undefined) return unknownOutcome;
  if (!(error instanceof Error)) return 'error';
  const { code } = error as { code?: unknown };
  return typeof code === 'string' ? code : error.name;
}

export const handler = createHttpFunction(
  'users',
  {
    'POST /users': (route) =>
      route.use(validateInput({ body: registerBody }, smallBodyLimit)).handler(async (_event, context) => {
        let user: User;
        try {
          user = await users.register(context.input.body, new Date(), context.correlationId);
        } catch (error) {
          if (error instanceof UnverifiedEmailTakenError) {
            await afterCommitDeadline(context, (deadline) =>
              queueUnsentRegistration(error.userId, context.correlationId, deadline),
            );
          }
          throw error;
        }
        // After the write: an email never goes out for a registration that did not happen. The user is
        // stored, so what follows stops at the deadline: the answer is 201 either way, never a 5xx.
        await afterCommitDeadline(context, async (deadline) => {
          await registrationEmails.enqueue(user, context.correlationId, deadline);
          // Not published in full, it stays pending on the user for the sweep.
          await registrationEvents.publish(user, context.correlationId, deadline);
        });
        return json(201, user, { Location: `/users/${user.id}` });
      }),

    'GET /users/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, { input, principal }) => {
        const { id } = input.path;
        // A signed service (bookings) only checks that the user exists: it gets the id, nothing decrypted.
        if (principal?.authMethod === 'service') return json(200, await users.exists(id));
        const user = await users.get(id);
        // Someone else's personal data was read in clear: which user, by whom, as the admin routes audit.
        auditLogger.logAdminAction('user.read', { targetUserId: id }, principal);
        return json(200, user);
      }),

    // The link only shows a page whose button posts it: opening it (a link scanner does) verifies nothing.
    'GET /users/{id}/verify': (route) =>
      route
        .use(linkRefusalPages)
        .use(validateInput({ path: idPathSchema, query: verifyQuery }))
        .handler(async (_event, { input }) => {
          await checkVerificationLink(input.path.id, input.query);
          // The read that refuses a deleted user or a lapsed registration also says whether it is confirmed.
          return (await users.isEmailVerified(input.path.id))
            ? emailAlreadyConfirmedPage()
            : confirmEmailPage();
        }),

    'POST /users/{id}/verify': (route) =>
      route
        .use(linkRefusalPages)
        .use(emptyFormBody)
        .use(validateInput({ path: idPathSchema, query: verifyQuery }))
        .handler(async (event, context) => {
          const { input, correlationId } = context;
          const { id } = input.path;
          await checkVerificationLink(id, input.query);
          const line = { eventType: 'user.email_verified', userId: id, correlationId };
          const { newlyVerified, ...verified } = await auditingUnknownOutcome(
            context,
            (reason) => auditLogger.log({ ...line, outcome: 'unknown', reason }),
            (sendWrite) => users.verifyEmail(id, sendWrite),
          );
          // A repeated or concurrent post of the link answers the same 200, but verified nothing.
          if (newlyVerified) auditLogger.log({ ...line, outcome: 'success' });
          return prefersHtml(event) ? emailConfirmedPage() : json(200, { ...verified, emailVerified: true });
        }),

    'POST /users/{id}/verify-phone': (route) =>
      route
        .use(validateInput({ path: idPathSchema, body: verifyPhoneBody }, smallBodyLimit))
        .handler(async (_event, { input, correlationId }) => {
          const { id } = input.path;
          try {
            const verified = await users.verifyPhone(id, input.body.code);
            auditLogger.log({
              eventType: 'user.phone_verified',
              outcome: 'success',
              userId: id,
              correlationId,
            });
            return json(200, { ...verified, phoneVerified: true });
          } catch (error) {
            // Wrong and used-up codes are worth an audit line: many of them is someone guessing.
            if (error instanceof ValidationError || error instanceof GoneError) {
              auditLogger.log({
                eventType: 'user.phone_verification_failed',
                outcome: 'denied',
                userId: id,
                correlationId,
                reason: error instanceof GoneError ? 'code_unusable' : 'wrong_code',
              });
            }
            throw error;
          }
        }),

    'POST /users/{id}/phone-code': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, context) => {
        const { input, correlationId } = context;
        const user = await users.get(input.path.id);
        let expiresAt: Date;
        try {
          expiresAt = await afterCommitDeadline(context, (deadline) =>
            registrationEmails.sendPhoneCode(user, correlationId, deadline),
          );
        } catch (error) {
          // The user's own limits live on the code item, not in a limiter: reported as a limiter's are.
          if (error instanceof PhoneCodeLimitError) {
            const { name, limit } = error.policy;
            emitEvent(onEvent, rateLimitHitEvent(name, { limit, source: 'store' }, { keyBy: 'user' }));
          }
          throw error;
        }
        auditLogger.log({
          eventType: 'user.phone_code_sent',
          outcome: 'success',
          userId: user.id,
          correlationId,
        });
        return json(202, { id: user.id, expiresAt: expiresAt.toISOString() });
      }),

    // The body is not read (an API client's, or the empty form of the expired link page's button).
    'POST /users/{id}/verification-email': (route) =>
      route
        .use(newLinkRefusalPages)
        .use(validateInput({ path: idPathSchema }))
        .handler(async (event, { input, correlationId }) => {
          const user = await users.get(input.path.id);
          // Before a unit is spent: a verified user gets no email anyway.
          if (user.emailVerifiedAt !== undefined) throw new ConflictError('The email is already verified');
          const admitted = await consumeReported(verificationEmailsPerUser, user.id, 'user');
          if (!admitted.allowed) {
            throw new TooManyRequestsError(
              admitted.retryAfterSec,
              'Too many verification emails were sent to this user; try again later',
            );
          }
          let expiresAt: Date;
          try {
            expiresAt = await registrationEmails.sendVerificationEmail(user, correlationId);
          } catch (error) {
            // No email went out: it counts against nothing.
            await verificationEmailsPerUser.refund(user.id, admitted);
            throw error;
          }
          auditLogger.log({
            eventType: 'user.verification_email_sent',
            outcome: 'success',
            userId: user.id,
            correlationId,
          });
          return prefersHtml(event)
            ? newLinkSentPage()
            : json(202, { id: user.id, expiresAt: expiresAt.toISOString() });
        }),

    'GET /admin/users': (route) =>
      route.use(validateInput({ query: pageQuerySchema })).handler(async (_event, { input, principal }) => {
        const page = await users.list(input.query.limit, input.query.cursor);
        const userIds = page.items.map((user) => user.id);
        auditLogger.logAdminAction('users.listed', { count: userIds.length, userIds }, principal);
        for (const user of page.items) {
          if ('unreadable' in user) {
            logger.warn('A listed user cannot be decrypted; it is listed without its fields', {
              userId: user.id,
              reason: user.unreadable,
            });
          }
        }
        return json(200, page);
      }),

    'DELETE /admin/users/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, context) => {
        const { input, principal } = context;
        const { id } = input.path;
        // An unknown user is a 404 before anything is touched, as it was before endpoints were deleted too.
        await users.exists(id);
        // The user's webhook endpoints go first and the user last: their owner is closed first, so no
        // registration (racing, or later with the user's still valid token) can add one afterwards. A
        // failure between them (a 409 while the index lags behind a registration, an outage) leaves the
        // user in place, visible to the admin, and the retry deletes what is left (already deleted
        // endpoints are skipped). The other order could leave endpoints nobody can list any more,
        // receiving the user's events.
        const deletedEndpointIds: string[] = [];
        // Seed 001's log_admin_action: who deleted whom, as an audit line (ids only, no personal data,
        // no endpoint URL).
        const details = (reason?: string) => ({
          targetUserId: id,
          deletedEndpointCount: deletedEndpointIds.length,
          deletedEndpointIds: [...deletedEndpointIds],
          ...(reason === undefined ? {} : { reason }),
        });
        let auditedUnknown = false;
        try {
          // One audited change under one deadline: endpoint removals too slow for the invocation are given
          // up, and their line written, before the route's own timeout answers a 504 without it; a removal
          // or the user's delete sent without an answer is the `unknown` line's.
          await auditingUnknownOutcome(
            context,
            (reason) => {
              auditedUnknown = true;
              auditLogger.logAdminAction('user.deleted', details(reason), principal, 'unknown');
            },
            async (sendWrite) => {
              await webhookStore.deletePersonEndpoints(defaultTenantId, id, {
                onDeleted: (endpointId) => deletedEndpointIds.push(endpointId),
                sendWrite,
              });
              await users.delete(id, sendWrite);
            },
          );
        } catch (error) {
          // The retry skips the endpoints this attempt deleted, so its line would never name them: this
          // line does, with the admin, whatever refused the rest (the user deleted or lapsed meanwhile, a
          // grant missing, the 409 of a lagging index).
          if (!auditedUnknown && deletedEndpointIds.length > 0) {
            auditLogger.logAdminAction(
              'user.deleted',
              details(failureReason(error)),
              principal,
              outcomeForStatus(statusOfError(error)),
            );
          }
          throw error;
        }
        auditLogger.logAdminAction('user.deleted', details(), principal);
        return noContent();
      }),
  },
  logger,
);
