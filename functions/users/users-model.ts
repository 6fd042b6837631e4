// Users on the app table: registration with an atomic unique-email claim, lookup, listing, deletion,
// email verification and phone verification codes.
// Email, phone and name are stored encrypted (context { tenantId, userId }, the userId from the key); the
// email claim uses a blind index. A registration whose email is not verified in time lapses: the user
// item and its claim carry `expiresAt` until then, read as absent past it, and the claim can be taken over.

import { randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type Encryptor, normalizeEmail } from '../../middleware/encryption/encryptor.js';
import {
  ConflictError,
  DecryptionError,
  type DecryptionFailureReason,
  GoneError,
  type HttpError,
  isUnreadableRecord,
  NotFoundError,
  TooManyRequestsError,
  ValidationError,
} from '../../middleware/errors.js';
import { isExpired, toEpochSeconds } from '../../middleware/store/tables.js';
import { type SendAuditedWrite, sendDirectly } from '../shared/audited-change.js';
import { defaultUnverifiedUserTtlHours } from '../shared/environment.js';
import { emailClaimKey, phoneCodeKey, userIdOfKey, userKey } from '../shared/keys.js';
import { decodeCursor, encodeCursor, type Page } from '../shared/pagination.js';
import { pendingIndexKeys } from '../shared/pending-events-index.js';
import { requiredString } from '../shared/stored-attributes.js';
import { defaultTenantId } from '../shared/tenant.js';
import { failedConditionIndexes } from '../shared/transactions.js';
import { type RegistrationEvents, registeredEvent } from './registration-events.js';

export interface User {
  id: string;
  email: string;
  name: string;
  /** E.164, when given. */
  phone?: string;
  createdAt: string;
  /** When the email address was confirmed through the signed link; absent until then. */
  emailVerifiedAt?: string;
  /** When the phone number was confirmed with an SMS code; absent until then. */
  phoneVerifiedAt?: string;
  /**
   * When the registration lapses unless its email is verified first: the user is then gone and the
   * email free to register again. Absent once the email is verified (and on users registered before
   * registrations lapsed).
   */
  expiresAt?: string;
}

/**
 * A listed user whose stored fields cannot be decrypted (tampered, sealed under a key no longer held):
 * only what is stored in clear, and why (the DecryptionError's reason), so an admin can find and delete it.
 */
export interface UnreadableUser {
  id: string;
  createdAt: string;
  unreadable: DecryptionFailureReason;
}

/** A phone verification code as issued: the code itself goes out by SMS only, the table keeps its hash. */
export interface IssuedPhoneCode {
  readonly code: string;
  readonly expiresAt: Date;
  /**
   * Undoes the issue when its SMS is not to go out (an SMS budget refused it) or was never queued, so
   * that it counts against none of the user's limits: the user's code item is put back as it was before
   * (or deleted if there was none). Conditional on the item still being this issue's, unguessed: a code
   * used or a user deleted since is left alone, and so is a code someone guessed at meanwhile, which
   * then counts as sent, since putting the item back would give that guess back. `abortSignal` aborts
   * the write (the deadline of undoing, `undoDeadline`).
   */
  readonly withdraw: (abortSignal?: AbortSignal) => Promise<void>;
}

/** How long an SMS code is valid. */
export const phoneCodeTtlSec = 10 * 60;
/**
 * How long an expired code's item outlives the code (the table TTL is set this much later), so a late
 * guess reads "expired" (410) whether or not TTL deletion, which may take seconds or 48 hours, ran yet.
 */
export const phoneCodeRetentionSec = 24 * 60 * 60;
/** Guesses per code, right or wrong; then the code is void and a new one is needed. */
export const phoneCodeMaxAttempts = 5;
/** Shortest wait between two codes for one user. */
export const phoneCodeResendIntervalSec = 60;
/**
 * Codes one user can be sent while the code item lives (until a day after its last code expired):
 * with {@link phoneCodeMaxAttempts}, at most 25 guesses a day at a 6-digit code, and a bounded SMS bill.
 */
export const phoneCodeMaxIssued = 5;
/**
 * SMS codes one phone number can be sent, whichever users registered it: the per-user limits above do
 * not stop a caller who registers the same (or a premium-rate) number again and again. As a GCRA
 * policy: a burst of five, then one every 4.8 hours (at most nine in any 24 hours).
 */
export const smsPerNumberPolicy = { name: 'sms-number', limit: 5, windowSec: 24 * 60 * 60 } as const;
const phoneCodeIndexName = 'phone-code';
const smsBudgetIndexName = 'sms-number';
const resendTooSoon = 'A code was sent less than a minute ago';

/** The per-user phone-code limits, named as rate-limit policies are in `rateLimit.hit` lines. */
export const phoneCodeLimits = {
  interval: { name: 'phone-code-interval', limit: 1, windowSec: phoneCodeResendIntervalSec },
  issued: { name: 'phone-code-issued', limit: phoneCodeMaxIssued },
} as const;

/** A per-user phone-code limit refused a new code (429): which one, for the route to report as a limit's refusal. */
export class PhoneCodeLimitError extends TooManyRequestsError {
  constructor(
    readonly policy: (typeof phoneCodeLimits)[keyof typeof phoneCodeLimits],
    retryAfterSec: number,
    message: string,
  ) {
    super(retryAfterSec, message);
    this.name = 'PhoneCodeLimitError';
  }
}

export interface NewUser {
  email: string;
  name: string;
  phone?: string | undefined;
}

/** The personal fields stored encrypted. */
export const encryptedUserFields = ['email', 'phone', 'name'] as const;
const emailIndexName = 'user-email';
/** gsi1's partition holding every user, in registration order (the admin list). */
const userListPartition = 'USER';
/**
 * A condition (with `:now`, epoch seconds) that an unverified user item or email claim has not lapsed;
 * a verified one carries no `expiresAt` and always passes. TTL deletion lags by days, so every read and
 * every conditional write asks this rather than whether the item is there.
 */
const notLapsed = '(attribute_not_exists(expiresAt) OR expiresAt > :now)';

export interface UsersModelOptions {
  /**
   * Seconds a registration has to get its email verified before it lapses (UNVERIFIED_USER_TTL_HOURS).
   * @default 48 hours
   */
  readonly unverifiedUserTtlSec?: number;
}

function toUser(id: string, item: Record<string, unknown>): User {
  return {
    id,
    email: requiredString(item, 'email'),
    name: requiredString(item, 'name'),
    ...(typeof item.phone === 'string' ? { phone: item.phone } : {}),
    createdAt: requiredString(item, 'createdAt'),
    ...(typeof item.emailVerifiedAt === 'string' ? { emailVerifiedAt: item.emailVerifiedAt } : {}),
    ...(typeof item.phoneVerifiedAt === 'string' ? { phoneVerifiedAt: item.phoneVerifiedAt } : {}),
    ...(typeof item.expiresAt === 'number'
      ? { expiresAt: new Date(item.expiresAt * 1000).toISOString() }
      : {}),
  };
}

/** Verifying a registration that lapsed, or lost its email to a newer one, before its email was verified. */
function registrationLapsed(): GoneError {
  return new GoneError('The registration lapsed before its email was verified; register again');
}

/**
 * The 409 of a registration whose email is claimed by a registration still waiting for its email to be
 * verified. `userId` names that registration for the handler only: the answer never shows it.
 */
export class UnverifiedEmailTakenError extends ConflictError {
  constructor(
    lapsesAt: string,
    readonly userId: string,
  ) {
    super(
      `This email is registered but not verified yet; unless it is verified first, the registration lapses at ${lapsesAt} and the email can be registered again. If you did not register it, do not follow the verification link sent to it.`,
    );
    this.name = 'UnverifiedEmailTakenError';
  }
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException;
}

export class UsersModel {
  private readonly unverifiedUserTtlSec: number;

  constructor(
    private readonly documentClient: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly encryptor: Encryptor,
    private readonly tenantId: string = defaultTenantId,
    { unverifiedUserTtlSec = defaultUnverifiedUserTtlHours * 3600 }: UsersModelOptions = {},
  ) {
    this.unverifiedUserTtlSec = unverifiedUserTtlSec;
  }

  private contextOf(userId: string) {
    return { tenantId: this.tenantId, userId };
  }

  /** Equal for equal emails in any case, so the claim and lookups work without the address in clear. */
  private emailIndexOf(email: string): Promise<string> {
    return this.encryptor.blindIndex(email, {
      name: emailIndexName,
      normalize: normalizeEmail,
      scope: this.tenantId,
    });
  }

  /**
   * Decrypts the user item stored under `userId`'s key (the id asked for, or the one its key names);
   * an item of another tenant is treated as absent. The context's userId is the key's: the item's own
   * `id` is a plain attribute that moves with the ciphertext, so someone who can write the table could
   * copy another user's `id` with their sealed fields under this key. An item whose `id` differs from
   * its key is refused before anything is decrypted.
   */
  private async fromItem(item: Record<string, unknown>, userId: string | undefined): Promise<User> {
    if (item.tenantId !== this.tenantId) throw new NotFoundError(`User ${userId} not found`);
    if (userId === undefined || item.id !== userId) {
      const moved = new DecryptionError(
        'record_moved',
        `The user item under ${String(item.pk)} carries another id; it was not decrypted`,
      );
      this.encryptor.reportDecryptionFailure(
        moved,
        item,
        userId === undefined ? undefined : this.contextOf(userId),
      );
      throw moved;
    }
    const plain = await this.encryptor.decryptFields(item, encryptedUserFields, this.contextOf(userId));
    return toUser(userId, plain);
  }

  /**
   * Creates the user and claims its email in one transaction: a taken email is a 409, never a duplicate.
   * Both items carry `expiresAt`, the end of the verification window, until the email is verified; a
   * claim whose registration lapsed unverified is taken over in the same transaction. The user is stored
   * with user.registered pending and on the pending-events index from its creation time, until
   * {@link RegistrationEvents} publishes it (the request after its commit, or else the sweep), and with
   * the registering request's `correlationId` beside it, which the sweep publishes it with. It is also
   * stored with its emails pending (`registrationMessagesPending`) until they are queued
   * ({@link markRegistrationMessagesQueued}): a registration that lands while its request fails has none
   * queued, and {@link unsentRegistration} finds it for the retry that meets its claim.
   */
  async register(input: NewUser, now = new Date(), correlationId?: string): Promise<User> {
    const nowSec = toEpochSeconds(now.getTime());
    const expiresAtSec = nowSec + this.unverifiedUserTtlSec;
    const user: User = {
      id: randomUUID(),
      email: input.email,
      name: input.name,
      ...(input.phone === undefined ? {} : { phone: input.phone }),
      createdAt: now.toISOString(),
      expiresAt: new Date(expiresAtSec * 1000).toISOString(),
    };
    // Encrypting before the write: if the key is unavailable, nothing is written at all.
    const emailIndex = await this.emailIndexOf(user.email);
    const item = await this.encryptor.encryptFields(
      // Stored as epoch seconds, the table's TTL attribute.
      { ...userKey(user.id), ...user, tenantId: this.tenantId, emailIndex, expiresAt: expiresAtSec },
      encryptedUserFields,
      this.contextOf(user.id),
    );
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...item,
                  gsi1pk: userListPartition,
                  gsi1sk: `${user.createdAt}#${user.id}`,
                  pendingEvents: new Set([registeredEvent]),
                  registrationMessagesPending: true,
                  ...pendingIndexKeys(user.id, user.createdAt),
                  ...(correlationId === undefined ? {} : { pendingCorrelationId: correlationId }),
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              // Two registrations racing for one email both reach here; the condition lets one win. A
              // lapsed claim's user is gone (TTL removes its items later); a verified claim never lapses.
              Put: {
                TableName: this.tableName,
                Item: { ...emailClaimKey(emailIndex), userId: user.id, expiresAt: expiresAtSec },
                ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
                ExpressionAttributeValues: { ':now': nowSec },
              },
            },
          ],
        }),
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (failed?.includes(1)) throw await this.whyEmailTaken(emailIndex);
      throw error;
    }
    return user;
  }

  /**
   * The 409 for a registration whose email is claimed. A claim still waiting for its email to be verified
   * says so, with when it lapses: the owner of an address someone else registered learns when it is free
   * again, and not to follow the link of a registration they did not make (it would verify that
   * registration, name and phone included, for them).
   */
  private async whyEmailTaken(emailIndex: string): Promise<ConflictError> {
    const { Item: claim } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: emailClaimKey(emailIndex), ConsistentRead: true }),
    );
    if (typeof claim?.expiresAt !== 'number')
      return new ConflictError('A user with this email already exists');
    return new UnverifiedEmailTakenError(
      new Date(claim.expiresAt * 1000).toISOString(),
      String(claim.userId),
    );
  }

  /**
   * The user whose registration emails were never queued (`registrationMessagesPending` still set), unless
   * it is verified, lapsed, gone or another tenant's: then undefined. `abortSignal` aborts the read.
   */
  async unsentRegistration(id: string, abortSignal?: AbortSignal): Promise<User | undefined> {
    const { Item } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: userKey(id), ConsistentRead: true }),
      { abortSignal },
    );
    if (!this.isLiveUser(Item, Date.now())) return undefined;
    if (Item.registrationMessagesPending !== true || typeof Item.emailVerifiedAt === 'string')
      return undefined;
    return this.fromItem(Item, id);
  }

  /** Records the user's registration emails queued; a user deleted meanwhile is left deleted. */
  async markRegistrationMessagesQueued(id: string, abortSignal?: AbortSignal): Promise<void> {
    try {
      await this.documentClient.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: userKey(id),
          UpdateExpression: 'REMOVE registrationMessagesPending',
          ConditionExpression: 'attribute_exists(pk)',
        }),
        { abortSignal },
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /** The user; 404 when there is none, or its registration lapsed unverified. */
  async get(id: string): Promise<User> {
    const { Item } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: userKey(id), ConsistentRead: true }),
    );
    if (!Item || isExpired(Item, Date.now())) throw new NotFoundError(`User ${id} not found`);
    return this.fromItem(Item, id);
  }

  /**
   * Only that the user exists (its id), read without its encrypted fields: no decryption, so no KMS call
   * and no personal data for a caller that needs neither.
   */
  async exists(id: string, now = new Date()): Promise<Pick<User, 'id'>> {
    await this.liveUserItem(id, ['id'], now);
    return { id };
  }

  /** A user item of this tenant whose registration has not lapsed unverified. */
  private isLiveUser(
    item: Record<string, unknown> | undefined,
    nowMs: number,
  ): item is Record<string, unknown> {
    return item !== undefined && item.tenantId === this.tenantId && !isExpired(item, nowMs);
  }

  /**
   * The user item's `attributes` (with `tenantId` and `expiresAt`), read consistently and undecrypted;
   * none, another tenant's, or a registration that lapsed unverified is a 404.
   */
  private async liveUserItem(
    id: string,
    attributes: readonly string[],
    now: Date,
  ): Promise<Record<string, unknown>> {
    const { Item } = await this.documentClient.send(
      new GetCommand({
        TableName: this.tableName,
        Key: userKey(id),
        ConsistentRead: true,
        ProjectionExpression: [...attributes, 'tenantId', 'expiresAt'].join(', '),
      }),
    );
    if (!this.isLiveUser(Item, now.getTime())) {
      throw new NotFoundError(`User ${id} not found`);
    }
    return Item;
  }

  /**
   * Finds a user by email through the blind-index claim, and returns it only if its decrypted email is
   * the one asked for. The claim's `userId` is a plain attribute that nothing authenticates: someone who
   * can write the table (or a restore mixing two backups) could point it at another user, whose record
   * would then answer for this email. A user whose email differs is therefore not found; the 404 carries
   * a `record_moved` DecryptionError as its cause, for a caller that logs it as tampering.
   */
  async findByEmail(email: string): Promise<User> {
    const { Item } = await this.documentClient.send(
      new GetCommand({
        TableName: this.tableName,
        Key: emailClaimKey(await this.emailIndexOf(email)),
        ConsistentRead: true,
      }),
    );
    if (!Item || isExpired(Item, Date.now())) throw new NotFoundError('No user with this email');
    const user = await this.get(String(Item.userId));
    if (normalizeEmail(user.email) !== normalizeEmail(email)) {
      const moved = new DecryptionError(
        'record_moved',
        `The email claim ${String(Item.pk)} names user ${user.id}, whose email is another`,
      );
      // The claim, not the user's record, was moved: no header of its own to name.
      this.encryptor.reportDecryptionFailure(moved, undefined, this.contextOf(user.id));
      throw new NotFoundError('No user with this email', { cause: moved });
    }
    return user;
  }

  /**
   * Users in registration order, without those whose registration lapsed unverified (filtered after
   * `limit` is applied, as DynamoDB filters: a page may hold fewer, and still have a `nextCursor`).
   */
  async list(limit: number, cursor?: string): Promise<Page<User | UnreadableUser>> {
    const result = await this.documentClient.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :type',
        FilterExpression: notLapsed,
        ExpressionAttributeValues: { ':type': userListPartition, ':now': toEpochSeconds(Date.now()) },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(
          cursor,
          [
            ['pk', 'sk'],
            ['gsi1pk', 'gsi1sk'],
          ],
          (key) => key.gsi1pk === userListPartition,
        ),
      }),
    );
    const nextCursor = encodeCursor(result.LastEvaluatedKey);
    const own = (result.Items ?? []).filter((item) => item.tenantId === this.tenantId);
    const items = await Promise.all(own.map((item) => this.listedUser(item)));
    return { items, ...(nextCursor ? { nextCursor } : {}) };
  }

  /**
   * A listed user, or what can be shown of one whose fields cannot be decrypted: one such record must not
   * hide every other user of its page, nor its own id from the admin who would delete it. A key service
   * failure is no such record, and fails the list.
   */
  private async listedUser(item: Record<string, unknown>): Promise<User | UnreadableUser> {
    const id = userIdOfKey(item);
    try {
      return await this.fromItem(item, id);
    } catch (error) {
      if (id === undefined || !isUnreadableRecord(error)) throw error;
      return { id, createdAt: requiredString(item, 'createdAt'), unreadable: error.reason };
    }
  }

  /**
   * Deletes the user and its pending phone code and releases its email for a new registration, in one
   * transaction. Nothing is decrypted: the claim is found by the item's stored `emailIndex`, so a user
   * whose fields can no longer be decrypted can still be deleted. No user (or another tenant's, or a
   * lapsed registration) is a 404. The transaction goes through `sendWrite` (see {@link SendAuditedWrite}).
   */
  async delete(id: string, sendWrite: SendAuditedWrite = sendDirectly, now = new Date()): Promise<void> {
    // The key too: a record without its emailIndex is named by it.
    const emailIndex = requiredString(
      await this.liveUserItem(id, ['pk', 'sk', 'emailIndex'], now),
      'emailIndex',
    );
    try {
      await sendWrite(() =>
        this.documentClient.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Delete: {
                  TableName: this.tableName,
                  Key: userKey(id),
                  ConditionExpression: 'attribute_exists(pk)',
                },
              },
              {
                // The claim read above could have been released and retaken since; only drop our own.
                Delete: {
                  TableName: this.tableName,
                  Key: emailClaimKey(emailIndex),
                  ConditionExpression: 'userId = :id',
                  ExpressionAttributeValues: { ':id': id },
                },
              },
              // The pending phone code, if any, goes with its user (the per-number SMS budget stays).
              { Delete: { TableName: this.tableName, Key: phoneCodeKey(id) } },
            ],
          }),
        ),
      );
    } catch (error) {
      if (failedConditionIndexes(error)?.length) throw new NotFoundError(`User ${id} not found`);
      throw error;
    }
  }

  /**
   * Whether the user's email is verified. A user that does not exist is a 404 and a registration that
   * lapsed a 410, as for {@link verifyEmail}.
   */
  async isEmailVerified(id: string, now = new Date()): Promise<boolean> {
    return (await this.verificationState(id, now)).emailVerifiedAt !== undefined;
  }

  /**
   * Marks the email verified (the caller checked the signed link) and makes the registration permanent:
   * one transaction removes `expiresAt` from the user and its email claim, conditional on neither having
   * lapsed and on the claim still being this user's, so a click racing the expiry either verifies the
   * user before a new registration can take the email, or fails (410). Idempotent: a second click keeps
   * the first time, and only the call that verified says `newlyVerified` (so a repeated or concurrent
   * click is audited once). A deleted user (or none) is a 404, and nothing is re-created.
   *
   * `clock` is read for the user's read and again just before the transaction, whose lapse conditions and
   * `emailVerifiedAt` take that second time: a click that read the registration open but writes after it
   * lapsed is refused (410), never verifying a lapsed registration. The transaction goes through
   * `sendWrite` (see {@link SendAuditedWrite}).
   */
  async verifyEmail(
    id: string,
    sendWrite: SendAuditedWrite = sendDirectly,
    clock: () => Date = () => new Date(),
  ): Promise<Pick<User, 'id' | 'emailVerifiedAt'> & { newlyVerified: boolean }> {
    const stored = await this.verificationState(id, clock());
    if (stored.emailVerifiedAt !== undefined) {
      return { id, emailVerifiedAt: stored.emailVerifiedAt, newlyVerified: false };
    }
    const now = clock();
    const emailVerifiedAt = now.toISOString();
    const lapseCheck = { ':now': toEpochSeconds(now.getTime()) };
    try {
      await sendWrite(() =>
        this.documentClient.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: this.tableName,
                  Key: userKey(id),
                  UpdateExpression: 'SET emailVerifiedAt = :verifiedAt REMOVE expiresAt',
                  // An update of a missing key would create it; the user may have been deleted since the read.
                  ConditionExpression: `attribute_exists(pk) AND tenantId = :tenant AND attribute_not_exists(emailVerifiedAt) AND ${notLapsed}`,
                  ExpressionAttributeValues: {
                    ':verifiedAt': emailVerifiedAt,
                    ':tenant': this.tenantId,
                    ...lapseCheck,
                  },
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  // Only an unverified user needs its claim's key: a record without one is named, not taken as lapsed.
                  Key: emailClaimKey(requiredString(stored.item, 'emailIndex')),
                  UpdateExpression: 'REMOVE expiresAt',
                  ConditionExpression: `userId = :id AND ${notLapsed}`,
                  ExpressionAttributeValues: { ':id': id, ...lapseCheck },
                },
              },
            ],
          }),
        ),
      );
    } catch (error) {
      if (!failedConditionIndexes(error)?.length) throw error;
      // Deleted (404), lapsed (410) or verified by a concurrent click since the read; or its claim went to
      // a new registration, which a function whose clock runs ahead can see as lapsed a moment before
      // this one does: the registration lost its email all the same (410).
      const current = await this.verificationState(id, now);
      if (current.emailVerifiedAt !== undefined) {
        return { id, emailVerifiedAt: current.emailVerifiedAt, newlyVerified: false };
      }
      throw registrationLapsed();
    }
    return { id, emailVerifiedAt, newlyVerified: true };
  }

  /**
   * What verifying `id`'s email needs of its item (its claim's `emailIndex`, and its key to name a record
   * without one) and whether it is verified already. No user (or another tenant's) is a 404; a
   * registration that lapsed unverified is a 410.
   */
  private async verificationState(
    id: string,
    now: Date,
  ): Promise<{ item: Record<string, unknown>; emailVerifiedAt: string | undefined }> {
    const { Item } = await this.documentClient.send(
      new GetCommand({
        TableName: this.tableName,
        Key: userKey(id),
        ConsistentRead: true,
        ProjectionExpression: 'pk, sk, tenantId, emailIndex, emailVerifiedAt, expiresAt',
      }),
    );
    if (!Item || Item.tenantId !== this.tenantId) throw new NotFoundError(`User ${id} not found`);
    if (isExpired(Item, now.getTime())) throw registrationLapsed();
    return {
      item: Item,
      emailVerifiedAt: typeof Item.emailVerifiedAt === 'string' ? Item.emailVerifiedAt : undefined,
    };
  }

  /**
   * The rate-limit key of a phone number's SMS budget: a keyed hash (blind index), so the toolkit table
   * holds no phone number, not even one recoverable by hashing every number.
   */
  async smsBudgetKey(phoneNumber: string): Promise<string> {
    return `phone:${await this.encryptor.blindIndex(phoneNumber, { name: smsBudgetIndexName, scope: this.tenantId })}`;
  }

  /** The code's keyed hash (a blind index): the table alone never reveals a code, not even by brute force. */
  private phoneCodeHash(userId: string, code: string): Promise<string> {
    return this.encryptor.blindIndex(code, { name: phoneCodeIndexName, scope: `${this.tenantId}/${userId}` });
  }

  /**
   * Issues a new 6-digit SMS code for the user's phone, replacing any pending one, and returns it for
   * the SMS. Only its hash is stored, with its own expiry `codeExpiresAt`, an attempt counter and
   * `expiresAt` (the table's TTL) {@link phoneCodeRetentionSec} later. A user gets a new code at most
   * every {@link phoneCodeResendIntervalSec} and at most {@link phoneCodeMaxIssued} while the item lives
   * (429 with Retry-After); unknown user 404; no phone or already verified 409. The write decides which
   * of concurrent requests issues the code: ask what else the SMS must pass (its SMS budgets) only once
   * this has resolved, and `withdraw` the code if it does not pass, so that requests which lose the race
   * spend nothing. A write that gets no answer is read back: landed, the code is issued as if it had
   * been answered. `abortSignal` aborts the reads and the write (a handler's deadline after its
   * commit): the code may then be stored or not.
   */
  async issuePhoneCode(
    userId: string,
    { now = new Date(), abortSignal }: { now?: Date; abortSignal?: AbortSignal | undefined } = {},
  ): Promise<IssuedPhoneCode> {
    const nowMs = now.getTime();
    const previous = await this.phoneCodeItem(userId, abortSignal);
    const live = previous && !isExpired(previous, nowMs) ? previous : undefined;
    if (live) {
      if (Number(live.issuedCount) >= phoneCodeMaxIssued) {
        throw new PhoneCodeLimitError(
          phoneCodeLimits.issued,
          Number(live.expiresAt) - nowMs / 1000,
          'Too many codes were sent to this user; try again later',
        );
      }
      const nextAllowedMs = Date.parse(String(live.issuedAt)) + phoneCodeResendIntervalSec * 1000;
      if (nextAllowedMs > nowMs) {
        throw new PhoneCodeLimitError(
          phoneCodeLimits.interval,
          (nextAllowedMs - nowMs) / 1000,
          resendTooSoon,
        );
      }
    }
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const expiresAtSec = toEpochSeconds(nowMs) + phoneCodeTtlSec;
    const codeHash = await this.phoneCodeHash(userId, code);
    const issuedAt = now.toISOString();
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // A user deleted, lapsed or verified meanwhile gets no code item.
              ConditionCheck: {
                TableName: this.tableName,
                Key: userKey(userId),
                ConditionExpression: `attribute_exists(pk) AND attribute_exists(phone) AND tenantId = :tenant AND attribute_not_exists(phoneVerifiedAt) AND ${notLapsed}`,
                ExpressionAttributeValues: { ':tenant': this.tenantId, ':now': toEpochSeconds(nowMs) },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...phoneCodeKey(userId),
                  codeHash,
                  attempts: 0,
                  issuedAt,
                  issuedCount: live ? Number(live.issuedCount) + 1 : 1,
                  codeExpiresAt: expiresAtSec,
                  expiresAt: expiresAtSec + phoneCodeRetentionSec,
                },
                // Only over the item read above, guesses included: of two concurrent requests one gets a
                // code, and a withdrawal that puts the item back never erases a guess made before it.
                ...(live
                  ? {
                      ConditionExpression: 'issuedAt = :seen AND attempts = :seenAttempts',
                      ExpressionAttributeValues: { ':seen': live.issuedAt, ':seenAttempts': live.attempts },
                    }
                  : {
                      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
                      ExpressionAttributeValues: { ':now': toEpochSeconds(nowMs) },
                    }),
              },
            },
          ],
        }),
        { abortSignal },
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (failed?.includes(0)) throw await this.whyNoPhoneCodeIssued(userId, now, abortSignal);
      if (failed?.includes(1)) throw await this.whyPhoneCodeChanged(userId, live, abortSignal);
      if (!(await this.landedAnyway(userId, { issuedAt, codeHash }, abortSignal))) throw error;
    }
    return {
      code,
      expiresAt: new Date(expiresAtSec * 1000),
      withdraw: (withdrawSignal) =>
        this.withdrawPhoneCode(userId, { issuedAt, codeHash }, previous, withdrawSignal),
    };
  }

  /**
   * Why the code item was no longer the one read when a new code was to replace it: another request
   * issued a code (429, the resend interval), or the pending code changed meanwhile, by a guess or
   * another request's code issued and withdrawn (409, ask again).
   */
  private async whyPhoneCodeChanged(
    userId: string,
    seen: Record<string, unknown> | undefined,
    abortSignal: AbortSignal | undefined,
  ): Promise<HttpError> {
    const current = await this.phoneCodeItem(userId, abortSignal);
    if (seen !== undefined && current?.issuedAt === seen.issuedAt) {
      return new ConflictError('The pending code changed meanwhile; ask for a new one again');
    }
    return new PhoneCodeLimitError(phoneCodeLimits.interval, phoneCodeResendIntervalSec, resendTooSoon);
  }

  /**
   * Whether the write of `issue`, which failed without an answer (every attempt timed out, the connection
   * dropped), was applied all the same: the code item holds it. Thrown instead, that issue would hold back
   * the retry for the resend interval while its code, replacing the pending one, never went out. A read
   * that fails as well says no, and the issue's error is thrown.
   */
  private async landedAnyway(
    userId: string,
    issue: { issuedAt: string; codeHash: string },
    abortSignal: AbortSignal | undefined,
  ): Promise<boolean> {
    try {
      const current = await this.phoneCodeItem(userId, abortSignal);
      return current?.issuedAt === issue.issuedAt && current.codeHash === issue.codeHash;
    } catch {
      return false;
    }
  }

  /** The user's phone-code item as stored now (consistent read), expired or not; undefined if none. */
  private async phoneCodeItem(
    userId: string,
    abortSignal?: AbortSignal,
  ): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: phoneCodeKey(userId), ConsistentRead: true }),
      { abortSignal },
    );
    return Item;
  }

  /**
   * Puts `previous` back over the code item of `issue` (or deletes it), if the item is still that issue's
   * and nobody has guessed at its code: the guesses a code allows are counted on its item, and putting
   * another item back would give them back. Withdrawals come whenever an SMS budget is spent, which
   * anyone can bring about; without this each one would be a window of fresh guesses that count nowhere.
   */
  private async withdrawPhoneCode(
    userId: string,
    issue: { issuedAt: string; codeHash: string },
    previous: Record<string, unknown> | undefined,
    abortSignal: AbortSignal | undefined,
  ): Promise<void> {
    const stillOurs = {
      ConditionExpression: 'issuedAt = :issuedAt AND codeHash = :codeHash AND attempts = :unguessed',
      ExpressionAttributeValues: {
        ':issuedAt': issue.issuedAt,
        ':codeHash': issue.codeHash,
        ':unguessed': 0,
      },
    };
    try {
      if (previous) {
        await this.documentClient.send(
          new PutCommand({ TableName: this.tableName, Item: previous, ...stillOurs }),
          { abortSignal },
        );
      } else {
        await this.documentClient.send(
          new DeleteCommand({ TableName: this.tableName, Key: phoneCodeKey(userId), ...stillOurs }),
          { abortSignal },
        );
      }
    } catch (error) {
      // The code was used, or its user deleted with it: there is nothing left to undo. Or it was guessed
      // at: it stays, and counts as sent.
      if (!isConditionFailure(error)) throw error;
    }
  }

  /** The error for a user that cannot be sent a code: 404 (lapsed registrations included) or 409. */
  private async whyNoPhoneCodeIssued(
    userId: string,
    now: Date,
    abortSignal: AbortSignal | undefined,
  ): Promise<Error> {
    const { Item: user } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: userKey(userId), ConsistentRead: true }),
      { abortSignal },
    );
    if (!this.isLiveUser(user, now.getTime())) {
      return new NotFoundError(`User ${userId} not found`);
    }
    if (typeof user.phoneVerifiedAt === 'string') {
      return new ConflictError('The phone number is already verified');
    }
    return new ConflictError('The user has no phone number');
  }

  /**
   * Checks an SMS code and marks the phone verified. Every guess first takes one of the code's
   * attempts in a conditional write, so concurrent guesses cannot exceed {@link phoneCodeMaxAttempts}
   * in total. Wrong code: 400 (the attempt stays used); expired or used-up code: 410; nothing pending:
   * 409; unknown user: 404. Only a right code changes the user.
   */
  async verifyPhone(
    userId: string,
    code: string,
    now = new Date(),
  ): Promise<Pick<User, 'id' | 'phoneVerifiedAt'>> {
    let pending: Record<string, unknown> | undefined;
    try {
      const { Attributes } = await this.documentClient.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: phoneCodeKey(userId),
          UpdateExpression: 'SET attempts = attempts + :one',
          // The race: N guesses in parallel all read attempts < max; only max of these increments succeed.
          ConditionExpression: 'attribute_exists(pk) AND attempts < :max AND codeExpiresAt > :now',
          ExpressionAttributeValues: {
            ':one': 1,
            ':max': phoneCodeMaxAttempts,
            ':now': toEpochSeconds(now.getTime()),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      pending = Attributes;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      throw await this.whyNoPhoneCode(userId, now);
    }
    const expected = Buffer.from(String(pending?.codeHash));
    const given = Buffer.from(await this.phoneCodeHash(userId, code));
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      // A code outliving its lapsed registration is no code: the 404 every route gives a lapsed user.
      await this.exists(userId, now);
      const left = phoneCodeMaxAttempts - Number(pending?.attempts);
      throw new ValidationError(
        left > 0
          ? `Wrong code; ${left} attempt(s) left`
          : 'Wrong code; no attempts left, a new code is needed',
        [{ field: 'body.code', message: 'Wrong code' }],
      );
    }
    const phoneVerifiedAt = now.toISOString();
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: userKey(userId),
                UpdateExpression: 'SET phoneVerifiedAt = :verifiedAt',
                // Deleted meanwhile: nothing is re-created. A verified phone does not stop the registration
                // from lapsing: it proves who holds the phone, which says nothing of who holds the address.
                ConditionExpression: `attribute_exists(pk) AND tenantId = :tenant AND ${notLapsed}`,
                ExpressionAttributeValues: {
                  ':verifiedAt': phoneVerifiedAt,
                  ':tenant': this.tenantId,
                  ':now': toEpochSeconds(now.getTime()),
                },
              },
            },
            {
              // The code is used up; only the code just checked (a newer one issued meanwhile stays).
              Delete: {
                TableName: this.tableName,
                Key: phoneCodeKey(userId),
                ConditionExpression: 'codeHash = :hash',
                ExpressionAttributeValues: { ':hash': String(pending?.codeHash) },
              },
            },
          ],
        }),
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (failed?.includes(0)) throw new NotFoundError(`User ${userId} not found`);
      if (failed?.includes(1)) throw new ConflictError('The code was replaced or used meanwhile');
      throw error;
    }
    return { id: userId, phoneVerifiedAt };
  }

  /** The error for a guess that found no usable code: which of 404, 409 or 410 applies. */
  private async whyNoPhoneCode(userId: string, now: Date): Promise<Error> {
    const [{ Item: user }, pending] = await Promise.all([
      this.documentClient.send(
        new GetCommand({ TableName: this.tableName, Key: userKey(userId), ConsistentRead: true }),
      ),
      this.phoneCodeItem(userId),
    ]);
    if (!this.isLiveUser(user, now.getTime())) {
      return new NotFoundError(`User ${userId} not found`);
    }
    if (pending && !isExpired(pending, now.getTime())) {
      return Number(pending.codeExpiresAt) * 1000 <= now.getTime()
        ? new GoneError('The code has expired; a new code is needed')
        : new GoneError('Too many wrong codes; a new code is needed');
    }
    if (typeof user.phoneVerifiedAt === 'string')
      return new ConflictError('The phone number is already verified');
    return new ConflictError('No phone verification is pending for this user');
  }
}
