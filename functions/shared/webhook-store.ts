// Webhook endpoints, their subscriptions and their delivery history on the toolkit table, under `WH#` keys.
//
// Key layout (toolkit table):
//   endpoint      pk WH#<endpointId>                     sk ENDPOINT           secretContext: 2 (absent before purposes)
//                                                                              previousSecret…, secretRotationId (after a rotation, see rotateSecret)
//                                                                              countKind (absent before kinds were counted apart)
//                 gsi1pk WH#OWNER#<tenantId>#<ownerId>    gsi1sk <createdAt>#<endpointId>   (an owner's endpoints)
//   subscription  pk WH#SUB#<tenantId>#<eventType>        sk TENANT#<endpointId>            (admin / M2M owners)
//                                                         sk USER#<ownerId>#<endpointId>    (human owners)
//   count         pk WH#OWNER#<tenantId>#<ownerId>        sk ENDPOINT_COUNT                 a person's (absent while they have
//                                                                                            none; kept with closedAt once closed)
//                                                         sk INTEGRATION_ENDPOINT_COUNT     an M2M client's (absent while it has none)
//   delivery      pk WH#<endpointId>                     sk DELIVERY#<createdAt>#<webhookId>   expiresAt: +30 days
//   tombstone     pk WH#<endpointId>                     sk TOMBSTONE          deletedAt, expiresAt: +30 days
//                                                                              (a deleted endpoint's id, not given again)
//   rotation key  pk WH#<endpointId>                     sk ROTATION#<keyHash> rotationId, rotatedAt, expiresAt: +24 hours
//                                                                              (a rotation sent with an Idempotency-Key)
import { randomBytes } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Principal } from '../../middleware/auth/principal.js';
import type { Encryptor } from '../../middleware/encryption/encryptor.js';
import type { EncryptedField } from '../../middleware/encryption/record-types.js';
import { ConflictError, DecryptionError, ForbiddenError, NotFoundError } from '../../middleware/errors.js';
import type { ScopedIdempotencyKey } from '../../middleware/idempotency.js';
import { isExpired, toEpochSeconds } from '../../middleware/store/tables.js';
import { type WebhookEventType, type WebhookMessage, webhookEventTypes } from '../webhook-worker/messages.js';
import { type SendAuditedWrite, sendDirectly } from './audited-change.js';
import { keyDerivedBytes } from './key-derived-ids.js';
import { purposeContextMember, webhookSecretPurpose } from './key-purposes.js';
import { decodeCursor, encodeCursor, type Page } from './pagination.js';
import { oneOf, requiredString, StoredRecordError } from './stored-attributes.js';
import { defaultTenantId } from './tenant.js';
import { failedConditionIndexes } from './transactions.js';
import { newWebhookId, webhookIdBytes } from './webhook-ids.js';
import { keySegment, subscriptionPk, subscriptionSk } from './webhook-subscriptions.js';

/** How long a delivery's history is kept (DynamoDB TTL on `expiresAt`). */
export const deliveryRetentionDays = 30;

/**
 * How long a deleted endpoint's id stays retired (its tombstone's TTL): as long as what the endpoint left
 * under that id may still reach a new endpoint of the same id, whichever of the two lasts longer. Its
 * delivery history is listed under the id for {@link deliveryRetentionDays}. Its messages still being
 * retried last days, not weeks: the webhook queue keeps one 4 days (SQS's default) and its DLQ at most
 * 14 (SQS's longest retention), counted from the enqueue (a deferral's copy, sent within the worker's
 * `circuitDeferralHours` of the message, starts them again). So the history's 30 days. A message an
 * operator redrives from the DLQ is a new message to SQS and may come later still: the worker drops one
 * made before the endpoint now under its id (see `WebhookWorker`).
 */
export const endpointTombstoneDays = deliveryRetentionDays;

/**
 * Who owns an endpoint decides what it receives (the visibility rule): a human `user` receives the
 * events about its own resources (its bookings, its registration); an `admin` or an `integration`
 * (an M2M client) receives every event of its tenant.
 */
const endpointOwnerKinds = ['user', 'admin', 'integration'] as const;
export type EndpointOwnerKind = (typeof endpointOwnerKinds)[number];

/**
 * A person (user or admin: a person's role may change) or a machine. Ids of people (`sub`) and machines
 * (client ids) come from different namespaces that may collide, so an owner is its id and this kind.
 */
const principalKinds = ['person', 'integration'] as const;
export type PrincipalKind = (typeof principalKinds)[number];

const endpointStatuses = ['enabled', 'disabled'] as const;
export type EndpointStatus = (typeof endpointStatuses)[number];

/** Why an endpoint was disabled: it answered 410 Gone, or its deliveries kept failing (the disable rule). */
const disabledReasons = ['gone', 'failing'] as const;
export type DisabledReason = (typeof disabledReasons)[number];

/**
 * Why the worker disables an endpoint: a 410, or the disable rule met on the failure streak that counts
 * the delivery `webhookId` (see {@link WebhookStore.disableEndpoint}).
 */
export type DisableCause =
  | { readonly reason: 'gone' }
  | { readonly reason: 'failing'; readonly webhookId: string };

export interface WebhookEndpoint {
  readonly id: string;
  readonly tenantId: string;
  readonly ownerId: string;
  readonly ownerKind: EndpointOwnerKind;
  readonly url: string;
  readonly eventTypes: readonly WebhookEventType[];
  readonly status: EndpointStatus;
  readonly disabledReason?: DisabledReason;
  readonly disabledAt?: string;
  readonly createdAt: string;
  /** When the signing secret was last rotated; absent while it is the one registration made. */
  readonly secretRotatedAt?: string;
  /** Until when deliveries are signed with the secret that rotation replaced too (a past time: no longer). */
  readonly previousSecretExpiresAt?: string;
}

/** A signing secret as stored: encrypted, with its data-key header (see {@link WebhookStore.signingSecret}). */
export interface SealedSecret {
  readonly secret: EncryptedField<string>;
  readonly header: unknown;
  /**
   * Whether the secret was sealed with its purpose in the encryption context (every secret since
   * {@link purposeBoundSecretContext}); one sealed before lacks it, and only the webhook worker's
   * unconditioned grant may decrypt it in AWS.
   */
  readonly purposeBound: boolean;
}

/** The endpoint plus what only the worker reads: the failure streak the disable rule looks at. */
export interface StoredEndpoint extends WebhookEndpoint {
  /** Deliveries that failed for good since the last success. */
  readonly failedDeliveries: number;
  /** When the first of those failed; undefined while none has. */
  readonly failingSince?: string;
  /**
   * Whose count item counts the endpoint: its owner kind's, except a machine's endpoint registered while
   * people and machines with the same id shared one count item (before kinds were counted apart), which
   * that item, now the person's, still counts.
   */
  readonly countKind: PrincipalKind;
  /** The encrypted secret and its data-key header, as stored (see {@link WebhookStore.signingSecret}). */
  readonly sealedSecret: SealedSecret;
  /** The secret the last rotation replaced, signed with as well until `previousSecretExpiresAt`. */
  readonly previousSealedSecret?: SealedSecret;
  /**
   * A random id of the last rotation: unique to it, where two rotations may share a `secretRotatedAt`
   * (one millisecond), so it is what a rotation is conditioned on and a retry's secret compared with.
   */
  readonly secretRotationId?: string;
  /**
   * Set by the worker's disable, in its transaction, until its owner's alert is queued (see
   * {@link WebhookStore.ownerAlerted}): a worker cut off in between, or whose enqueue of the alert failed,
   * leaves it, and the next message for the endpoint queues the alert.
   */
  readonly ownerAlertPending?: true;
}

export interface DeliveryAttempt {
  /** 1-based; SQS's receive count, so the same number its redrive counts. */
  readonly attempt: number;
  readonly at: string;
  /** The endpoint's answer, when it answered. */
  readonly statusCode?: number;
  /** Why the attempt failed, when it did (never the response body). */
  readonly error?: string;
  readonly durationMs: number;
}

const deliveryStatuses = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

export interface WebhookDelivery {
  /** The Standard Webhooks `webhook-id`. */
  readonly webhookId: string;
  readonly eventType: WebhookEventType;
  readonly status: DeliveryStatus;
  readonly attempts: readonly DeliveryAttempt[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface NewEndpoint {
  /** The endpoint's id (see {@link endpointIdFor}); a random one when absent. */
  readonly id?: string | undefined;
  readonly url: string;
  readonly eventTypes: readonly WebhookEventType[];
}

const endpointSk = 'ENDPOINT';

/**
 * The `secretContext` of an endpoint item whose secret was sealed under `{ tenantId, endpointId,
 * purpose }`, with purpose and tenant bound to the data key (the KMS encryption context). Items
 * sealed before carry none: their secret's context is `{ tenantId, endpointId }`, bound to the tenant
 * alone. The context is bound to the value as AAD, so it must be given back exactly as sealed.
 */
const purposeBoundSecretContext = 2;

/** The context a signing secret is sealed under, and so must be decrypted with. */
function secretContextOf(endpoint: Pick<WebhookEndpoint, 'id' | 'tenantId'>, purposeBound: boolean) {
  const context = { tenantId: endpoint.tenantId, endpointId: endpoint.id };
  return purposeBound ? { ...context, [purposeContextMember]: webhookSecretPurpose } : context;
}

const deliveryPrefix = 'DELIVERY#';

const tombstoneSk = 'TOMBSTONE';

const endpointPkPrefix = 'WH#';
const endpointKey = (endpointId: string) => ({ pk: `${endpointPkPrefix}${endpointId}`, sk: endpointSk });
/** Where a deleted endpoint's tombstone is kept: beside the endpoint item, which the delete removes. */
const tombstoneKey = (endpointId: string) => ({ pk: `${endpointPkPrefix}${endpointId}`, sk: tombstoneSk });
/**
 * Where a rotation sent with an Idempotency-Key is remembered: beside the endpoint item, under the key's
 * hash ({@link rotationKeyOf}). A delete leaves it to its TTL: every read of it comes after a read of the
 * endpoint, which answers 404 first.
 */
const rotationKeyMarkerKey = (endpointId: string, rotationKey: string) => ({
  pk: `${endpointPkPrefix}${endpointId}`,
  sk: `ROTATION#${rotationKey}`,
});
/** The endpoint id an endpoint item's key names; undefined for the key of any other item. */
const endpointIdOfKey = ({ pk, sk }: Record<string, unknown>) =>
  typeof pk === 'string' && pk.startsWith(endpointPkPrefix) && sk === endpointSk
    ? pk.slice(endpointPkPrefix.length)
    : undefined;
/** The id a {@link keySegment} stands for: `%23` first, as no `%` of an escaped id starts anything else. */
export const keySegmentValue = (segment: string) => segment.replaceAll('%23', '#').replaceAll('%25', '%');
/** What every owner index partition (and count item key) of one tenant starts with. */
export const ownerIndexTenantPrefix = (tenantId: string) => `WH#OWNER#${keySegment(tenantId)}#`;
/** The owner index (`gsi1`) partition: one tenant's principal's endpoints. */
export const ownerIndexPk = (tenantId: string, ownerId: string) =>
  `${ownerIndexTenantPrefix(tenantId)}${keySegment(ownerId)}`;
const deliveryKey = (message: Pick<WebhookMessage, 'endpointId' | 'createdAt' | 'id'>) => ({
  pk: `${endpointPkPrefix}${message.endpointId}`,
  sk: `${deliveryPrefix}${message.createdAt}#${message.id}`,
});

/** The owner kind a principal registers as: machines are integrations, humans with role `admin` admins. */
export function ownerKindOf(principal: Principal): EndpointOwnerKind {
  if (principal.isM2M) return 'integration';
  return principal.roles.includes('admin') ? 'admin' : 'user';
}

/** Whether a machine registered the endpoint (ownership needs the {@link PrincipalKind} besides the id). */
const isIntegration = (endpoint: Pick<WebhookEndpoint, 'ownerKind'>) => endpoint.ownerKind === 'integration';

const principalKindOf = (endpoint: Pick<WebhookEndpoint, 'ownerKind'>): PrincipalKind =>
  isIntegration(endpoint) ? 'integration' : 'person';

/** The tenant a principal acts in: its tenant claim, or the sample's default tenant. */
export function tenantOf(principal: Principal): string {
  return principal.tenantId ?? defaultTenantId;
}

/**
 * The id of the endpoint a registration sent with an Idempotency-Key makes, in the form of a random one,
 * from a hash of the key in its scope and the owner kind it registers as: the registration's retry meets
 * the endpoint the first request made. Once that endpoint is deleted the key registers nothing while its
 * tombstone lasts ({@link EndpointIdRetiredError}), so no new endpoint gets the id and, with it, what the
 * deleted one left under it. With the kind in the hash, the key derives another id once its owner's role
 * changed, so a user's endpoint never receives what fan-out chose for an admin's.
 */
export function endpointIdFor(scopedKey: ScopedIdempotencyKey, ownerKind: EndpointOwnerKind): string {
  const bytes = keyDerivedBytes(scopedKey, `webhook-endpoint:${ownerKind}`, webhookIdBytes);
  return `ep_${bytes.toString('base64url')}`;
}

/**
 * A registration whose id names an endpoint already stored: with {@link endpointIdFor}'s ids, the one an
 * earlier request with the same key made. Uncaught, a 409.
 */
export class EndpointIdTakenError extends ConflictError {
  constructor(readonly endpointId: string) {
    super(`Webhook endpoint ${endpointId} already exists`);
    this.name = 'EndpointIdTakenError';
  }
}

/**
 * A registration whose id names an endpoint deleted within {@link endpointTombstoneDays}: with
 * {@link endpointIdFor}'s ids, the one an earlier request with the same key made. Registered again, it
 * would get that endpoint's delivery history and the deliveries still being retried to it, whatever it
 * subscribes to. Uncaught, a 409; nothing is written.
 */
export class EndpointIdRetiredError extends ConflictError {
  constructor(readonly endpointId: string) {
    super(
      `Webhook endpoint ${endpointId}, which a registration with this Idempotency-Key made, was deleted; register with a new Idempotency-Key`,
    );
    this.name = 'EndpointIdRetiredError';
  }
}

/**
 * A registration by a person whose user was deleted ({@link WebhookStore.deletePersonEndpoints} closed
 * them): they can register nothing, with a new Idempotency-Key or the key of an endpoint they made.
 * Uncaught, a 403; nothing is written.
 */
export class OwnerClosedError extends ForbiddenError {
  constructor() {
    super('This owner can no longer register webhook endpoints');
    this.name = 'OwnerClosedError';
  }
}

/**
 * An endpoint that exists but is not the caller's: answered as the 404 of one that does not exist, so
 * the caller cannot learn it does, but told apart for the audit (reaching for someone else's endpoint).
 */
export class NotOwnedEndpointError extends NotFoundError {
  constructor(readonly endpointId: string) {
    super(`Webhook endpoint ${endpointId} not found`);
    this.name = 'NotOwnedEndpointError';
  }
}

/**
 * How long a rotation keeps signing with the secret it replaced, beside the new one: a day for the
 * receiver to deploy the new secret while every delivery still verifies with the old.
 */
export const previousSecretLifetimeHours = 24;

/**
 * What is kept of a rotation's Idempotency-Key ({@link WebhookStore.rotationWithKey}): a hash of the key
 * in its scope (the caller, route and path), never the key.
 */
export function rotationKeyOf(scopedKey: ScopedIdempotencyKey): string {
  return keyDerivedBytes(scopedKey, 'webhook-secret-rotation', webhookIdBytes).toString('base64url');
}

/**
 * How long a rotation's Idempotency-Key is remembered: as long as the secret that rotation replaced is
 * signed with. Within it, the key's retry never rotates again, which would make the rotation's secret
 * (never seen, its answer lost) the previous one and stop the secret the receiver knows. After it, that
 * secret has stopped anyway, and a rotation with the key is a new one.
 */
const rotationKeyLifetimeHours = previousSecretLifetimeHours;

/** A rotation made with an Idempotency-Key, as {@link WebhookStore.rotationWithKey} finds it. */
export interface KeyedRotation {
  /** The rotation's `secretRotationId`: its secret is the current one while the endpoint holds it. */
  readonly rotationId: string;
  /** The rotation's `secretRotatedAt`. */
  readonly rotatedAt: string;
}

/** A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes (the spec asks for 24-64). */
function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * The endpoint stored under `endpointId`'s key (the id asked for, or the one its key names). Its id is
 * the key's: the item's own `id` is a plain attribute that moves with the sealed secret, so someone who
 * can write the table could copy another endpoint's `id` and secret under this key, and the worker would
 * sign this endpoint's deliveries with that secret. An item whose `id` differs from its key is refused;
 * one without an `id` is a record this version cannot read ({@link StoredRecordError}).
 */
function toEndpoint(
  item: Record<string, unknown>,
  endpointId: string | undefined,
  headerField: string | undefined,
): StoredEndpoint {
  return {
    id: idOfKey(item, endpointId, 'refused'),
    tenantId: requiredString(item, 'tenantId'),
    ownerId: requiredString(item, 'ownerId'),
    ownerKind: oneOf(item, 'ownerKind', endpointOwnerKinds),
    url: requiredString(item, 'url'),
    eventTypes: eventTypesOf(item),
    // A status a newer version added (say, paused) must not read as enabled: it would be delivered to.
    status: oneOf(item, 'status', endpointStatuses),
    ...(item.disabledReason === undefined
      ? {}
      : { disabledReason: oneOf(item, 'disabledReason', disabledReasons) }),
    ...(typeof item.disabledAt === 'string' ? { disabledAt: item.disabledAt } : {}),
    createdAt: requiredString(item, 'createdAt'),
    failedDeliveries: typeof item.failedDeliveries === 'number' ? item.failedDeliveries : 0,
    ...(typeof item.failingSince === 'string' ? { failingSince: item.failingSince } : {}),
    countKind: countKindOf(item),
    sealedSecret: {
      secret: item.secret as EncryptedField<string>,
      header: headerField === undefined ? undefined : item[headerField],
      purposeBound: item.secretContext === purposeBoundSecretContext,
    },
    ...(typeof item.secretRotatedAt === 'string' ? { secretRotatedAt: item.secretRotatedAt } : {}),
    ...(typeof item.secretRotationId === 'string' ? { secretRotationId: item.secretRotationId } : {}),
    ...(item.ownerAlertPending === true ? { ownerAlertPending: true } : {}),
    ...(item.previousSecret === undefined
      ? {}
      : {
          previousSealedSecret: {
            secret: item.previousSecret as EncryptedField<string>,
            header: item.previousSecretHeader,
            purposeBound: item.previousSecretContext === purposeBoundSecretContext,
          },
          previousSecretExpiresAt: requiredString(item, 'previousSecretExpiresAt'),
        }),
  };
}

/**
 * The endpoint id of an endpoint item: its key's, and only if the item's own `id` is the same (see
 * {@link toEndpoint}). An item without an `id` carries no other endpoint's: `missingId` says whether the
 * key's id stands alone (what removal needs) or the record is one this version cannot read.
 */
function idOfKey(
  item: Record<string, unknown>,
  endpointId: string | undefined,
  missingId: 'refused' | 'keyAlone',
): string {
  if (endpointId === undefined || (item.id !== undefined && item.id !== endpointId)) {
    throw new DecryptionError(
      'record_moved',
      `The webhook endpoint item under ${String(item.pk)} carries another id`,
    );
  }
  if (item.id === undefined && missingId === 'refused') throw new StoredRecordError(item, 'id', 'missing');
  return endpointId;
}

/**
 * Whose count item counts the endpoint. Absent on endpoints registered before kinds were counted apart
 * (17c796d): those were counted on the one item people and machines then shared, ENDPOINT_COUNT, which is
 * the person's now.
 */
function countKindOf(item: Record<string, unknown>): PrincipalKind {
  return item.countKind === undefined ? 'person' : oneOf(item, 'countKind', principalKinds);
}

/**
 * What removing an endpoint needs of its record, and no more: whose it is, which count item counts it and
 * which subscriptions go with it. So a record this version cannot read whole (no `createdAt`, a `status` a
 * newer version added) can still be removed. A {@link StoredEndpoint} is one.
 */
export interface RemovableEndpoint {
  readonly id: string;
  readonly tenantId: string;
  readonly ownerId: string;
  readonly ownerKind: EndpointOwnerKind;
  readonly countKind: PrincipalKind;
  /** The event types whose subscriptions are deleted with it (see {@link subscribedEventTypesOf}). */
  readonly eventTypes: readonly string[];
}

function toRemovableEndpoint(
  item: Record<string, unknown>,
  endpointId: string | undefined,
): RemovableEndpoint {
  return {
    // A missing `id` names no other endpoint: the key's is the one removed.
    id: idOfKey(item, endpointId, 'keyAlone'),
    tenantId: requiredString(item, 'tenantId'),
    ownerId: requiredString(item, 'ownerId'),
    // Which subscription key is the endpoint's, and whether a person or a machine may delete it.
    ownerKind: oneOf(item, 'ownerKind', endpointOwnerKinds),
    countKind: countKindOf(item),
    eventTypes: subscribedEventTypesOf(item),
  };
}

/**
 * The event types whose subscriptions go with a removed endpoint: each its record lists, one a newer
 * version added included, as a subscription's key needs only the type's name. A record without a readable
 * list (none, or one holding something other than names) has its subscriptions looked for under every
 * type this version knows, and any names it does hold: there is no other way to find them, and deleting a
 * subscription that is not there changes nothing.
 */
function subscribedEventTypesOf(item: Record<string, unknown>): string[] {
  const { eventTypes } = item;
  const listed = Array.isArray(eventTypes)
    ? eventTypes.filter((eventType): eventType is string => typeof eventType === 'string')
    : [];
  const readable = Array.isArray(eventTypes) && listed.length === eventTypes.length;
  // One transaction cannot delete the same subscription twice.
  return [...new Set(readable ? listed : [...webhookEventTypes, ...listed])];
}

/**
 * A listed endpoint whose record this version cannot read (a {@link StoredRecordError}): its id, from its
 * key, and what stops the read, so that its owner can find it and delete it.
 */
export interface UnreadableEndpoint {
  readonly id: string;
  /** `missing <attribute>` (absent, or not of its type) or `unknown <attribute>` (a value this version does not know). */
  readonly unreadable: string;
}

/** Whether `principal` registered the endpoint: its tenant, its id and its kind (person or machine). */
function isOwnedBy(
  endpoint: Pick<WebhookEndpoint, 'tenantId' | 'ownerId' | 'ownerKind'>,
  principal: Principal,
): boolean {
  return (
    endpoint.ownerId === principal.id &&
    endpoint.tenantId === tenantOf(principal) &&
    isIntegration(endpoint) === principal.isM2M
  );
}

/** What the API shows of an endpoint: never the secret, nor the worker's bookkeeping. */
export function publicEndpoint(endpoint: WebhookEndpoint | StoredEndpoint): WebhookEndpoint {
  const {
    failedDeliveries,
    failingSince,
    countKind,
    sealedSecret,
    previousSealedSecret,
    secretRotationId,
    ownerAlertPending,
    ...shown
  } = endpoint as Partial<StoredEndpoint> & WebhookEndpoint;
  return shown;
}

/**
 * The event types an endpoint subscribes to, a list every version wrote at registration: one missing is
 * not read as subscribing to none, which would show the endpoint receiving nothing, nor one this version
 * does not know as a type it knows. Removal reads the list its own way ({@link subscribedEventTypesOf}).
 */
function eventTypesOf(item: Record<string, unknown>): WebhookEventType[] {
  const { eventTypes } = item;
  if (!Array.isArray(eventTypes)) throw new StoredRecordError(item, 'eventTypes', 'missing', 'a list');
  const known: readonly unknown[] = webhookEventTypes;
  if (!eventTypes.every((eventType) => known.includes(eventType))) {
    throw new StoredRecordError(item, 'eventTypes', 'unknown');
  }
  return eventTypes as WebhookEventType[];
}

function toDelivery(item: Record<string, unknown>): WebhookDelivery {
  return {
    webhookId: requiredString(item, 'webhookId'),
    eventType: oneOf(item, 'eventType', webhookEventTypes),
    status: oneOf(item, 'status', deliveryStatuses),
    attempts: (item.attempts as DeliveryAttempt[] | undefined) ?? [],
    createdAt: requiredString(item, 'createdAt'),
    updatedAt: requiredString(item, 'updatedAt'),
  };
}

export function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

export interface WebhookStoreOptions {
  readonly documentClient: DynamoDBDocumentClient;
  readonly tableName: string;
  /**
   * Encrypts signing secrets (context: tenant, endpoint id and purpose). Only creating an endpoint and
   * reading its secret need it, so a function that only fans events out need not have a key. Creating
   * needs one whose data keys are bound to the purpose (`keyContextFields`
   * `webhookSecretKeyContextFields`), so that the KMS context carries it; reading takes any.
   * @default none: createEndpoint and signingSecret throw
   */
  readonly encryptor?: Encryptor;
  /**
   * Endpoints one owner may have registered at a time (enabled or disabled): every event fans out one
   * message per subscribed endpoint, so an unbounded count would let one caller multiply everyone's work.
   * @default 20
   */
  readonly maxEndpointsPerOwner?: number;
}

/**
 * Where {@link WebhookStore.createEndpoint}'s transaction has the owner's count, the endpoint and the
 * check that its id is no deleted endpoint's.
 */
const countUpdateIndex = 0;
const endpointPutIndex = 1;
const tombstoneCheckIndex = 2;

/** The default of {@link WebhookStoreOptions.maxEndpointsPerOwner}. */
export const defaultMaxEndpointsPerOwner = 20;

/** The write on the owner's count item that removing one of its endpoints makes, under each guess. */
function countItemChange(tableName: string, key: Record<string, string>, change: CountChange) {
  const names = { '#count': 'count' };
  if (change === 'deleteItem') {
    // No count at all: an endpoint registered before endpoints were counted.
    return {
      Delete: {
        TableName: tableName,
        Key: key,
        ConditionExpression:
          '(attribute_not_exists(#count) OR #count <= :one) AND attribute_not_exists(closedAt)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':one': 1 },
      },
    };
  }
  if (change === 'leaveItem') {
    return {
      ConditionCheck: {
        TableName: tableName,
        Key: key,
        ConditionExpression: 'attribute_exists(closedAt) AND (attribute_not_exists(#count) OR #count < :one)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':one': 1 },
      },
    };
  }
  return {
    Update: {
      TableName: tableName,
      Key: key,
      UpdateExpression: 'ADD #count :minusOne',
      // A closed owner's item holds the marker and is never deleted: its count may reach 0, never less.
      ConditionExpression: '#count > :one OR (attribute_exists(closedAt) AND #count >= :one)',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ':minusOne': -1, ':one': 1 },
    },
  };
}

/**
 * Each owner's count of registered endpoints, kept in the same transactions that create and delete them;
 * there is no item while the owner has none, unless the person was closed (see
 * {@link WebhookStore.deletePersonEndpoints}): then the item stays, holding the `closedAt` marker. A
 * person and a machine with the same id have an item each, so a cap each, and closing the person leaves
 * the machine open; the person's keeps the key both kinds once shared, so existing counts and markers hold.
 */
export const endpointCountKey = (tenantId: string, ownerId: string, kind: PrincipalKind) => ({
  pk: ownerIndexPk(tenantId, ownerId),
  sk: kind === 'integration' ? 'INTEGRATION_ENDPOINT_COUNT' : 'ENDPOINT_COUNT',
});

/**
 * How deleting an endpoint changes its owner's count item, a guess the transaction checks on the item:
 * `decrement` while other endpoints remain (or the owner is closed), `deleteItem` with the owner's last
 * one (or when the item counts none: endpoints registered before endpoints were counted), `leaveItem` for
 * a closed owner whose item counts none, which a decrement would take below 0: a count that then hid an
 * endpoint from {@link WebhookStore.deletePersonEndpoints}' final check.
 */
type CountChange = 'decrement' | 'deleteItem' | 'leaveItem';

/** The next guess after one the item proved wrong. */
const nextCountChange: Readonly<Record<CountChange, CountChange>> = {
  decrement: 'deleteItem',
  deleteItem: 'leaveItem',
  leaveItem: 'decrement',
};

/**
 * Past this many wrong guesses (each form twice: concurrent registrations and deletes can prove each
 * wrong in turn) the delete answers 409.
 */
const maxCountGuesses = 6;

/**
 * The one place webhook data is read and written.
 *
 * @example
 * const store = new WebhookStore({ documentClient, tableName, encryptor });
 * const { endpoint, secret } = await store.createEndpoint(principal, { url, eventTypes: ['booking.created'] });
 */
/** The write that stores the endpoint's subscription to `eventType`, enabled: what fan-out finds. */
function enabledSubscriptionPut(
  tableName: string,
  endpoint: Pick<WebhookEndpoint, 'id' | 'tenantId' | 'ownerId' | 'ownerKind'>,
  eventType: WebhookEventType,
) {
  return {
    Put: {
      TableName: tableName,
      Item: {
        pk: subscriptionPk(endpoint.tenantId, eventType),
        sk: subscriptionSk(endpoint),
        endpointId: endpoint.id,
        status: 'enabled',
      },
    },
  };
}

export class WebhookStore {
  constructor(private readonly options: WebhookStoreOptions) {}

  /**
   * `read` of an endpoint item, whose `record_moved` refusal (see {@link toEndpoint}) is reported as the
   * encryptor reports the refusals it decides itself: a `decryption.failed` event, the item's header named.
   */
  private reportingMoved<T>(item: Record<string, unknown>, read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (error instanceof DecryptionError) this.options.encryptor?.reportDecryptionFailure(error, item);
      throw error;
    }
  }

  private get encryptor(): Encryptor {
    if (!this.options.encryptor) throw new Error('WebhookStore needs an encryptor for signing secrets');
    return this.options.encryptor;
  }

  /** A new signing secret for `endpoint`, in clear and sealed under its purpose-bound key context. */
  private async newSealedSecret(endpoint: Pick<WebhookEndpoint, 'id' | 'tenantId'>) {
    const secret = newSigningSecret();
    const sealed = await this.purposeBindingEncryptor().encryptFields(
      { secret },
      ['secret'],
      secretContextOf(endpoint, true),
    );
    return { secret, sealed };
  }

  /**
   * The encryptor, if its data keys carry the purpose. One bound to the tenant alone would seal
   * secrets that the webhooks function's grant, which requires the purpose, could never read back.
   */
  private purposeBindingEncryptor(): Encryptor {
    const bound = this.encryptor.keyContextFields;
    if (bound !== undefined && !bound.includes(purposeContextMember)) {
      throw new Error(
        `WebhookStore seals secrets only with an encryptor whose keyContextFields include ${purposeContextMember}`,
      );
    }
    return this.encryptor;
  }

  /**
   * Stores the endpoint with its secret encrypted, and one subscription item per event type, in one
   * transaction: fan-out never sees a subscription without its endpoint. The same transaction counts
   * the owner's endpoints (of its kind), so concurrent registrations cannot pass the cap together (409 at
   * the cap, nothing written), and refuses a person whose account was deleted (403, nothing written: the
   * count item holds their `closedAt` marker). Returns the secret in clear, the only time it leaves the store that way.
   * An endpoint already stored under `input.id` fails it with {@link EndpointIdTakenError}, whatever else failed;
   * an endpoint deleted under it while its tombstone lasts, with {@link EndpointIdRetiredError} (unless the
   * owner is closed: 403). Nothing is written either way.
   */
  async createEndpoint(
    principal: Principal,
    input: NewEndpoint,
    now = new Date(),
  ): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const endpoint: WebhookEndpoint = {
      id: input.id ?? newWebhookId('ep'),
      tenantId: tenantOf(principal),
      ownerId: principal.id,
      ownerKind: ownerKindOf(principal),
      url: input.url,
      eventTypes: [...new Set(input.eventTypes)],
      status: 'enabled',
      createdAt: now.toISOString(),
    };
    // Sealed before the write: if the key is unavailable, nothing is written at all.
    const { secret, sealed } = await this.newSealedSecret(endpoint);
    const { tableName } = this.options;
    const maxEndpoints = this.options.maxEndpointsPerOwner ?? defaultMaxEndpointsPerOwner;
    const countKind = principalKindOf(endpoint);
    const transaction = new TransactWriteCommand({
      TransactItems: [
        {
          Update: {
            TableName: tableName,
            Key: endpointCountKey(endpoint.tenantId, endpoint.ownerId, countKind),
            UpdateExpression: 'ADD #count :one',
            // Only a person's item is ever closed: a machine whose client id equals a deleted user's id
            // is not that user, and keeps registering.
            ConditionExpression:
              '(attribute_not_exists(#count) OR #count < :max) AND attribute_not_exists(closedAt)',
            ExpressionAttributeNames: { '#count': 'count' },
            ExpressionAttributeValues: { ':one': 1, ':max': maxEndpoints },
          },
        },
        {
          Put: {
            TableName: tableName,
            Item: {
              ...endpointKey(endpoint.id),
              ...endpoint,
              ...sealed,
              secretContext: purposeBoundSecretContext,
              countKind,
              gsi1pk: ownerIndexPk(endpoint.tenantId, endpoint.ownerId),
              gsi1sk: `${endpoint.createdAt}#${endpoint.id}`,
            },
            // A key-derived id is the one its retry derives again: that retry finds this endpoint, never
            // overwrites it (nor does a random id that collided).
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        {
          // Nor is a deleted endpoint's id given again while its tombstone lasts (one past its expiresAt,
          // which TTL has not deleted yet, is gone). Only a key-derived id can meet one; a random id is
          // checked as well, which costs the check and never refuses it.
          ConditionCheck: {
            TableName: tableName,
            Key: tombstoneKey(endpoint.id),
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
            ExpressionAttributeValues: { ':now': now.getTime() / 1000 },
          },
        },
        ...endpoint.eventTypes.map((eventType) => enabledSubscriptionPut(tableName, endpoint, eventType)),
      ],
    });
    try {
      await this.options.documentClient.send(transaction);
    } catch (error) {
      const failed = failedConditionIndexes(error);
      // Checked first: at the cap, the endpoint already there is the answer, not the cap.
      if (failed?.includes(endpointPutIndex)) throw new EndpointIdTakenError(endpoint.id);
      const closed =
        failed?.includes(countUpdateIndex) &&
        (await this.isClosed(endpoint.tenantId, endpoint.ownerId, countKind));
      // A closed owner can register nothing, with a new key or not: that is the answer, not the key.
      if (closed) throw new OwnerClosedError();
      if (failed?.includes(tombstoneCheckIndex)) throw new EndpointIdRetiredError(endpoint.id);
      if (failed?.includes(countUpdateIndex)) {
        throw new ConflictError(
          `An owner may have at most ${maxEndpoints} webhook endpoints; delete one to register another`,
        );
      }
      throw error;
    }
    return { endpoint, secret };
  }

  /** The endpoint, or undefined when there is none (deleted, or never existed). */
  async getEndpoint(endpointId: string): Promise<StoredEndpoint | undefined> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: endpointKey(endpointId),
        ConsistentRead: true,
      }),
    );
    return Item
      ? this.reportingMoved(Item, () => toEndpoint(Item, endpointId, this.options.encryptor?.headerField))
      : undefined;
  }

  /**
   * The endpoint if `principal` registered it; 404 otherwise, so other callers cannot even learn it exists
   * ({@link NotOwnedEndpointError} when it does).
   */
  async getOwnedEndpoint(endpointId: string, principal: Principal): Promise<StoredEndpoint> {
    const endpoint = await this.getEndpoint(endpointId);
    if (!endpoint) throw new NotFoundError(`Webhook endpoint ${endpointId} not found`);
    if (!isOwnedBy(endpoint, principal)) throw new NotOwnedEndpointError(endpointId);
    return endpoint;
  }

  /** What removing the endpoint needs of it ({@link RemovableEndpoint}), or undefined when there is none. */
  private async getRemovableEndpoint(endpointId: string): Promise<RemovableEndpoint | undefined> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: endpointKey(endpointId),
        ConsistentRead: true,
      }),
    );
    return Item ? this.reportingMoved(Item, () => toRemovableEndpoint(Item, endpointId)) : undefined;
  }

  /**
   * Whether `endpointId` names an endpoint deleted while its tombstone lasts: the id no registration gets
   * ({@link EndpointIdRetiredError}), judged as {@link createEndpoint} judges it.
   */
  async isRetired(endpointId: string, now = new Date()): Promise<boolean> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: tombstoneKey(endpointId),
        ConsistentRead: true,
      }),
    );
    return Item !== undefined && !isExpired(Item, now.getTime());
  }

  /**
   * The endpoints `principal` registered, newest first, cursor-paginated, read from the owner index
   * (eventually consistent: an endpoint registered a moment ago may appear a moment later). One whose
   * record this version cannot read is listed as an {@link UnreadableEndpoint}: it must not hide the
   * others of its page, nor itself from the owner who would delete it.
   */
  async listOwnedEndpoints(
    principal: Principal,
    limit: number,
    cursor?: string,
  ): Promise<Page<StoredEndpoint | UnreadableEndpoint>> {
    const ownerPk = ownerIndexPk(tenantOf(principal), principal.id);
    // A cursor from another owner's list must not read that owner's endpoints.
    const startKey = decodeCursor(
      cursor,
      [
        ['pk', 'sk'],
        ['gsi1pk', 'gsi1sk'],
      ],
      (key) => key.gsi1pk === ownerPk,
    );
    // A person whose `sub` is some client's id shares its owner index: each sees only its own kind.
    const { items, lastKey } = await this.queryOwnerIndex(ownerPk, {
      kind: principal.isM2M ? 'integration' : 'person',
      limit,
      startKey,
    });
    const nextCursor = encodeCursor(lastKey);
    return { items: items.map((item) => this.listedEndpoint(item)), ...(nextCursor ? { nextCursor } : {}) };
  }

  /** A listed endpoint, or its id and what stops this version reading it (see {@link listOwnedEndpoints}). */
  private listedEndpoint(item: Record<string, unknown>): StoredEndpoint | UnreadableEndpoint {
    const id = endpointIdOfKey(item);
    try {
      return this.reportingMoved(item, () => toEndpoint(item, id, this.options.encryptor?.headerField));
    } catch (error) {
      if (id === undefined || !(error instanceof StoredRecordError)) throw error;
      return { id, unreadable: `${error.problem} ${error.attribute}` };
    }
  }

  /** One page of an owner index partition, newest first, with only the endpoints of people or of machines. */
  private async queryOwnerIndex(
    ownerPk: string,
    page: {
      readonly kind: PrincipalKind;
      readonly limit?: number;
      readonly startKey?: Record<string, unknown> | undefined;
    },
  ): Promise<{ items: Record<string, unknown>[]; lastKey: Record<string, unknown> | undefined }> {
    const result = await this.options.documentClient.send(
      new QueryCommand({
        TableName: this.options.tableName,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :owner',
        FilterExpression:
          page.kind === 'integration' ? 'ownerKind = :integration' : 'ownerKind <> :integration',
        ExpressionAttributeValues: { ':owner': ownerPk, ':integration': 'integration' },
        ScanIndexForward: false,
        Limit: page.limit,
        ExclusiveStartKey: page.startKey,
      }),
    );
    return { items: result.Items ?? [], lastKey: result.LastEvaluatedKey };
  }

  /**
   * The endpoint's signing secret, decrypted. Its encryption context binds it to this tenant and
   * endpoint id, so a sealed secret copied onto another endpoint item fails to decrypt. The id is the
   * key's (see {@link toEndpoint}); it is unique, so a rewritten `tenantId` attribute cannot make another
   * endpoint's secret decrypt either, and every caller checks the tenant against the one it acts for.
   * A secret sealed with its purpose is read with it, one sealed before without; a rewritten
   * `secretContext` only makes the secret fail to decrypt.
   */
  async signingSecret(endpoint: StoredEndpoint): Promise<string> {
    const { headerField } = this.encryptor;
    const plain = await this.encryptor.decryptFields(
      { secret: endpoint.sealedSecret.secret, [headerField]: endpoint.sealedSecret.header },
      ['secret'],
      secretContextOf(endpoint, endpoint.sealedSecret.purposeBound),
    );
    return plain.secret;
  }

  /**
   * The secrets deliveries are signed with at `at`, decrypted: the current one first, then the one the
   * last rotation replaced while it has not expired (Standard Webhooks lets a signature header carry
   * several, so a receiver that knows either verifies).
   */
  async signingSecrets(endpoint: StoredEndpoint, at = new Date()): Promise<[string, ...string[]]> {
    const { previousSealedSecret, previousSecretExpiresAt } = endpoint;
    const previousLive =
      previousSealedSecret !== undefined &&
      previousSecretExpiresAt !== undefined &&
      Date.parse(previousSecretExpiresAt) > at.getTime();
    if (!previousLive) return [await this.signingSecret(endpoint)];
    // Both unwrapped at once: a data-key cache miss for each would otherwise add two KMS calls in turn.
    return Promise.all([
      this.signingSecret(endpoint),
      this.signingSecret({ ...endpoint, sealedSecret: previousSealedSecret }),
    ]);
  }

  /**
   * The rotation made with `rotationKey` ({@link rotationKeyOf}) within {@link rotationKeyLifetimeHours},
   * or undefined when there is none: the key is unseen, or its marker expired (also while TTL has not
   * deleted it yet).
   */
  async rotationWithKey(
    endpointId: string,
    rotationKey: string,
    now = new Date(),
  ): Promise<KeyedRotation | undefined> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: rotationKeyMarkerKey(endpointId, rotationKey),
        ConsistentRead: true,
      }),
    );
    if (Item === undefined || isExpired(Item, now.getTime())) return undefined;
    return { rotationId: requiredString(Item, 'rotationId'), rotatedAt: requiredString(Item, 'rotatedAt') };
  }

  /**
   * Gives the endpoint a new signing secret, sealed as registration seals one, and keeps the current one
   * as its previous for {@link previousSecretLifetimeHours} (replacing any previous: deliveries are signed
   * with two secrets at most). With a `rotationKey` ({@link rotationKeyOf}), the same transaction
   * remembers the key for {@link rotationKeyLifetimeHours} ({@link rotationWithKey}), whatever rotates
   * after it, so a retry of this rotation finds it; a marker of the key already there fails it. The
   * endpoint's write is conditioned on the endpoint as it was read: a rotation that committed meanwhile
   * fails it with a 409 (nothing written), a delete with a 404. Resolves with the endpoint as rotated and
   * the new secret in clear, the only time it leaves the store that way.
   */
  async rotateSecret(
    endpoint: StoredEndpoint,
    rotationKey: string | undefined,
    now = new Date(),
  ): Promise<{ endpoint: StoredEndpoint; secret: string }> {
    // Sealed before the write: if the key is unavailable, nothing is written at all.
    const { secret, sealed } = await this.newSealedSecret(endpoint);
    const { headerField } = this.encryptor;
    const { tableName } = this.options;
    // The data-key header is written beside the fields, under the name the encryptor was given.
    const sealedHeader = (sealed as Record<string, unknown>)[headerField];
    const replaced = endpoint.sealedSecret;
    const rotatedAt = now.toISOString();
    const rotationId = randomBytes(webhookIdBytes).toString('base64url');
    const previousSecretExpiresAt = new Date(
      now.getTime() + previousSecretLifetimeHours * 3_600_000,
    ).toISOString();
    const sets = [
      'secret = :secret',
      '#header = :header',
      'secretContext = :purposeBound',
      'previousSecret = :previous',
      'previousSecretHeader = :previousHeader',
      'previousSecretExpiresAt = :previousExpiresAt',
      'secretRotatedAt = :now',
      'secretRotationId = :rotationId',
      ...(replaced.purposeBound ? ['previousSecretContext = :purposeBound'] : []),
    ];
    const rotation = {
      Update: {
        TableName: tableName,
        Key: endpointKey(endpoint.id),
        UpdateExpression: `SET ${sets.join(', ')}${replaced.purposeBound ? '' : ' REMOVE previousSecretContext'}`,
        // The secret read is still the current one: of two rotations racing, one wins and the other
        // never makes the winner's new secret the previous one unseen. Every rotation writes its id, so
        // an endpoint read without one was rotated by none since.
        ConditionExpression:
          endpoint.secretRotationId === undefined
            ? 'attribute_exists(pk) AND attribute_not_exists(secretRotationId)'
            : 'attribute_exists(pk) AND secretRotationId = :rotationBefore',
        ExpressionAttributeNames: { '#header': headerField },
        ExpressionAttributeValues: {
          ':secret': sealed.secret,
          ':header': sealedHeader,
          ':purposeBound': purposeBoundSecretContext,
          ':previous': replaced.secret,
          ':previousHeader': replaced.header,
          ':previousExpiresAt': previousSecretExpiresAt,
          ':now': rotatedAt,
          ':rotationId': rotationId,
          ...(endpoint.secretRotationId === undefined
            ? {}
            : { ':rotationBefore': endpoint.secretRotationId }),
        },
      },
    };
    // Only when and how the key rotated, never a secret.
    const keyMarker =
      rotationKey === undefined
        ? []
        : [
            {
              Put: {
                TableName: tableName,
                Item: {
                  ...rotationKeyMarkerKey(endpoint.id, rotationKey),
                  rotationId,
                  rotatedAt,
                  expiresAt: toEpochSeconds(now.getTime()) + rotationKeyLifetimeHours * 3600,
                },
                ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
                ExpressionAttributeValues: { ':now': now.getTime() / 1000 },
              },
            },
          ];
    try {
      await this.options.documentClient.send(
        new TransactWriteCommand({ TransactItems: [rotation, ...keyMarker] }),
      );
    } catch (error) {
      if (!failedConditionIndexes(error)?.length) throw error;
      if (!(await this.getEndpoint(endpoint.id))) {
        throw new NotFoundError(`Webhook endpoint ${endpoint.id} not found`);
      }
      throw new ConflictError(
        `The signing secret of webhook endpoint ${endpoint.id} was rotated by another request meanwhile; read the endpoint and rotate again if needed`,
        { cause: error },
      );
    }
    return {
      endpoint: {
        ...endpoint,
        sealedSecret: {
          secret: sealed.secret as EncryptedField<string>,
          header: sealedHeader,
          purposeBound: true,
        },
        previousSealedSecret: replaced,
        secretRotatedAt: rotatedAt,
        secretRotationId: rotationId,
        previousSecretExpiresAt,
      },
      secret,
    };
  }

  /**
   * Enables a disabled endpoint and its subscriptions (fan-out sends to it again) in one transaction
   * conditioned on its being disabled, and ends its failure streak: a streak kept from before would
   * disable it again at its next delivery that fails for good (its count at the rule's threshold, or its
   * start a day back). Resolves with the endpoint as it now is, and `enabled` true only for the call that
   * enabled it: false when it was enabled already, or a racing enable won. 404 when it was deleted meanwhile.
   * The transaction goes through `sendWrite` (see {@link SendAuditedWrite}).
   */
  async enableEndpoint(
    endpoint: StoredEndpoint,
    sendWrite: SendAuditedWrite = sendDirectly,
  ): Promise<{ endpoint: StoredEndpoint; enabled: boolean }> {
    if (endpoint.status === 'enabled') return { endpoint, enabled: false };
    const { tableName } = this.options;
    try {
      await sendWrite(() =>
        this.options.documentClient.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: tableName,
                  Key: endpointKey(endpoint.id),
                  UpdateExpression:
                    'SET #status = :enabled REMOVE disabledReason, disabledAt, failedDeliveries, failingSince, failedWebhookIds, ownerAlertPending',
                  ConditionExpression: '#status = :disabled',
                  ExpressionAttributeNames: { '#status': 'status' },
                  ExpressionAttributeValues: { ':enabled': 'enabled', ':disabled': 'disabled' },
                },
              },
              // Written whole: one lost by hand is made again. The endpoint's own condition keeps a deleted
              // endpoint's subscriptions from coming back.
              ...endpoint.eventTypes.map((eventType) =>
                enabledSubscriptionPut(tableName, endpoint, eventType),
              ),
            ],
          }),
        ),
      );
    } catch (error) {
      if (!failedConditionIndexes(error)?.length) throw error;
      const current = await this.getEndpoint(endpoint.id);
      if (!current) throw new NotFoundError(`Webhook endpoint ${endpoint.id} not found`);
      if (current.status === 'enabled') return { endpoint: current, enabled: false };
      throw error;
    }
    const { disabledReason, disabledAt, failingSince, ownerAlertPending, ...kept } = endpoint;
    return { endpoint: { ...kept, status: 'enabled', failedDeliveries: 0 }, enabled: true };
  }

  /**
   * Deletes an endpoint the principal owns with its subscriptions, in one transaction that leaves its
   * tombstone (see {@link removeEndpoint}); 404 for anyone else's, as {@link getOwnedEndpoint} answers. Its
   * record is read only for what removal needs ({@link RemovableEndpoint}). Its delivery history is no
   * longer reachable (the API answers 404) and expires with its TTL. Each transaction goes through
   * `sendWrite` (see {@link SendAuditedWrite}).
   */
  async deleteEndpoint(
    endpointId: string,
    principal: Principal,
    sendWrite: SendAuditedWrite = sendDirectly,
  ): Promise<void> {
    const endpoint = await this.getRemovableEndpoint(endpointId);
    if (!endpoint) throw new NotFoundError(`Webhook endpoint ${endpointId} not found`);
    if (!isOwnedBy(endpoint, principal)) throw new NotOwnedEndpointError(endpointId);
    await this.removeEndpoint(endpoint, new Date(), sendWrite);
  }

  /**
   * Deletes any endpoint of the tenant, whoever owns it (an administrator removing an endpoint whose
   * owner lost their role or key); 404 for another tenant's. Its record is read only for what removal
   * needs ({@link RemovableEndpoint}). Resolves with what was deleted, for the audit.
   */
  async deleteTenantEndpoint(endpointId: string, tenantId: string): Promise<RemovableEndpoint> {
    const endpoint = await this.getRemovableEndpoint(endpointId);
    if (!endpoint || endpoint.tenantId !== tenantId) {
      throw new NotFoundError(`Webhook endpoint ${endpointId} not found`);
    }
    await this.removeEndpoint(endpoint);
    return endpoint;
  }

  /**
   * Any endpoint of the tenant, whoever owns it (an administrator reading it); 404 for another tenant's,
   * and for a deleted one, as {@link getOwnedEndpoint} answers.
   */
  async getTenantEndpoint(endpointId: string, tenantId: string): Promise<StoredEndpoint> {
    const endpoint = await this.getEndpoint(endpointId);
    if (!endpoint || endpoint.tenantId !== tenantId) {
      throw new NotFoundError(`Webhook endpoint ${endpointId} not found`);
    }
    return endpoint;
  }

  /**
   * Closes a person in a tenant and deletes every endpoint they registered (admin or user kind; never a
   * machine's that shares the id), each with its subscriptions and its share of the owner's count, leaving
   * its tombstone, as {@link deleteTenantEndpoint} does: for the person's account being deleted.
   *
   * Closing comes first: one write of a `closedAt` marker on the person's count item (created if absent).
   * The person's registrations update that item in their transaction and are refused once it is there, so
   * none can commit after it, whether it races this delete or comes later with a token that is still valid.
   * A machine sharing the id counts on an item of its own, and stays open. The marker has no TTL: the
   * person's id may keep getting tokens from the issuer for as long as the issuer allows (this store cannot
   * know that lifetime), and user ids are random, so it never stops anyone else.
   *
   * Retry-safe: the marker keeps its first time, an endpoint already gone is skipped, so calling again
   * after a failure finishes the work. The owner index is eventually consistent, so the person's count,
   * read consistently, is checked afterwards: a count that still holds an endpoint of this person the
   * index did not show yet (registered just before the marker) is a 409, to retry; with the marker no
   * new one can appear, so a retry once the index caught up succeeds. The count may also hold a machine's
   * endpoints registered before kinds were counted apart, which it does not close or delete. Resolves
   * with the ids it deleted; `onDeleted` hears each id as its endpoint is deleted, so a caller whose
   * call fails part-way (an outage at the third endpoint, the final 409) still knows which ones went. Each
   * removal's transaction goes through `sendWrite` (see {@link SendAuditedWrite}).
   */
  async deletePersonEndpoints(
    tenantId: string,
    personId: string,
    {
      now = new Date(),
      onDeleted,
      sendWrite = sendDirectly,
    }: { now?: Date; onDeleted?: (endpointId: string) => void; sendWrite?: SendAuditedWrite } = {},
  ): Promise<string[]> {
    await this.options.documentClient.send(
      new UpdateCommand({
        TableName: this.options.tableName,
        Key: endpointCountKey(tenantId, personId, 'person'),
        UpdateExpression: 'SET closedAt = if_not_exists(closedAt, :now)',
        ExpressionAttributeValues: { ':now': now.toISOString() },
      }),
    );
    const ownerPk = ownerIndexPk(tenantId, personId);
    const deleted: string[] = [];
    // One after another: each removal rewrites the owner's count, so concurrent ones would spend each
    // other's count guesses.
    for (const endpoint of await this.allOwnerEndpoints(ownerPk, 'person')) {
      if (await this.removeIfPresent(endpoint, now, sendWrite)) {
        deleted.push(endpoint.id);
        onDeleted?.(endpoint.id);
      }
    }
    // A machine's endpoints from before kinds were counted apart, listed before the count is read and each
    // confirmed after it (the index may still show one deleted since): only those still there, and so still
    // counted, may account for the count; the index can never make a person's endpoint pass for one.
    const listedMachineEndpoints = await this.allOwnerEndpoints(ownerPk, 'integration');
    const countItem = await this.countItemOf(tenantId, personId, 'person');
    const counted = typeof countItem?.count === 'number' ? countItem.count : 0;
    const machineEndpointsCountedHere = await this.stillCountedOn(listedMachineEndpoints, 'person');
    if (counted > machineEndpointsCountedHere) {
      throw new ConflictError(
        `Webhook endpoints of ${personId} were registered while deleting the others; retry`,
      );
    }
    return deleted;
  }

  /**
   * Whether `principal` is a person closed by {@link deletePersonEndpoints} (read consistently): one who
   * registers nothing ({@link OwnerClosedError}). A machine is never closed, and costs no read.
   */
  async isClosedOwner(principal: Principal): Promise<boolean> {
    return !principal.isM2M && (await this.isClosed(tenantOf(principal), principal.id, 'person'));
  }

  /** Whether the owner was closed by {@link deletePersonEndpoints} (read consistently); never a machine. */
  private async isClosed(tenantId: string, ownerId: string, kind: PrincipalKind): Promise<boolean> {
    return (await this.countItemOf(tenantId, ownerId, kind))?.closedAt !== undefined;
  }

  /** The owner's count item, read consistently: what the last registration or delete left. */
  async countItemOf(
    tenantId: string,
    ownerId: string,
    kind: PrincipalKind,
  ): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: endpointCountKey(tenantId, ownerId, kind),
        ConsistentRead: true,
      }),
    );
    return Item;
  }

  /**
   * Every endpoint of an owner index partition of the kind asked for, all pages, read only for what
   * removing and counting them need ({@link RemovableEndpoint}).
   */
  async allOwnerEndpoints(ownerPk: string, kind: PrincipalKind): Promise<RemovableEndpoint[]> {
    const endpoints: RemovableEndpoint[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.queryOwnerIndex(ownerPk, { kind, startKey });
      endpoints.push(
        ...page.items.map((item) =>
          this.reportingMoved(item, () => toRemovableEndpoint(item, endpointIdOfKey(item))),
        ),
      );
      startKey = page.lastKey;
    } while (startKey);
    return endpoints;
  }

  /**
   * How many of `listed` (read from the eventually consistent owner index, which may still show an
   * endpoint deleted since) a count item of `kind` counts: each confirmed with a consistent read of the
   * endpoint item, the only one that says it is still there.
   */
  async stillCountedOn(listed: readonly RemovableEndpoint[], kind: PrincipalKind): Promise<number> {
    const candidates = listed.filter((endpoint) => endpoint.countKind === kind);
    const confirmed = await Promise.all(
      candidates.map(async (endpoint) => (await this.getRemovableEndpoint(endpoint.id))?.countKind === kind),
    );
    return confirmed.filter(Boolean).length;
  }

  /** {@link removeEndpoint}, resolving false when the endpoint was already gone (a racing or earlier delete). */
  private async removeIfPresent(
    endpoint: RemovableEndpoint,
    now: Date,
    sendWrite: SendAuditedWrite,
  ): Promise<boolean> {
    try {
      await this.removeEndpoint(endpoint, now, sendWrite);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  /**
   * The endpoint, its owner's count and its subscriptions, in one transaction; 404 if a racing delete won.
   * The owner's last endpoint takes the count item with it, so no owner leaves a `count: 0` item behind,
   * unless the owner is closed: that item holds the marker, which must stay, so it is only decremented.
   * The same transaction leaves a tombstone under the endpoint's id for {@link endpointTombstoneDays}: a
   * registration whose key derives the id is refused ({@link EndpointIdRetiredError}) while what the
   * endpoint left under it (its history, its deliveries still being retried) may reach a new one.
   */
  private async removeEndpoint(
    endpoint: RemovableEndpoint,
    now = new Date(),
    sendWrite: SendAuditedWrite = sendDirectly,
  ): Promise<void> {
    // Whether this is the owner's last endpoint is a guess the transaction checks on the count itself: a
    // registration or delete committed in between fails that check and the other form is sent. Removing the
    // item in the same transaction (not in a second write, which a failure could skip) keeps it exact: it is
    // absent only while the owner has no endpoint, and a registration then recreates it at 1 (ADD on a
    // missing item), so the cap counts every endpoint.
    let countChange: CountChange = 'decrement';
    for (let attempt = 1; ; attempt += 1) {
      try {
        await sendWrite(() => this.options.documentClient.send(this.removal(endpoint, countChange, now)));
        return;
      } catch (error) {
        const failed = failedConditionIndexes(error);
        if (failed?.includes(0)) throw new NotFoundError(`Webhook endpoint ${endpoint.id} not found`);
        if (!failed?.includes(1)) throw error;
        if (attempt === maxCountGuesses) {
          throw new ConflictError("The owner's endpoints changed while deleting this one; retry", {
            cause: error,
          });
        }
        countChange = nextCountChange[countChange];
      }
    }
  }

  private removal(endpoint: RemovableEndpoint, countChange: CountChange, now: Date): TransactWriteCommand {
    const { tableName } = this.options;
    return new TransactWriteCommand({
      TransactItems: [
        {
          Delete: {
            TableName: tableName,
            Key: endpointKey(endpoint.id),
            // Two deletes racing: the second finds nothing and answers 404, as if it came later.
            ConditionExpression: 'attribute_exists(pk)',
          },
        },
        countItemChange(
          tableName,
          endpointCountKey(endpoint.tenantId, endpoint.ownerId, endpoint.countKind),
          countChange,
        ),
        ...endpoint.eventTypes.map((eventType) => ({
          Delete: {
            TableName: tableName,
            Key: { pk: subscriptionPk(endpoint.tenantId, eventType), sk: subscriptionSk(endpoint) },
          },
        })),
        {
          // In the delete's own transaction, so no registration can take the id between the two.
          Put: {
            TableName: tableName,
            Item: {
              ...tombstoneKey(endpoint.id),
              deletedAt: now.toISOString(),
              expiresAt: toEpochSeconds(now.getTime()) + endpointTombstoneDays * 24 * 3600,
            },
          },
        },
      ],
    });
  }

  /**
   * Disables an endpoint and its subscriptions (so fan-out stops sending to it) in one transaction.
   * Resolves true only for the call that disabled it: many failing deliveries may race here, and
   * exactly one of them must notify the owner. A `failing` disable also needs the streak it was decided
   * on to still count its delivery: an enable since ended that streak, and its owner's decision stands
   * over one the worker made before it. It marks the owner's alert pending (`ownerAlertPending`), for
   * {@link ownerAlerted} to clear once the alert is queued.
   */
  async disableEndpoint(endpoint: StoredEndpoint, cause: DisableCause, now = new Date()): Promise<boolean> {
    const { tableName } = this.options;
    const { reason } = cause;
    try {
      await this.options.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: tableName,
                Key: endpointKey(endpoint.id),
                UpdateExpression:
                  'SET #status = :disabled, disabledReason = :reason, disabledAt = :now, ownerAlertPending = :pending',
                // Concurrent disables all read `enabled`; the condition lets exactly one through.
                ConditionExpression:
                  reason === 'failing'
                    ? '#status = :enabled AND contains(failedWebhookIds, :webhookId)'
                    : '#status = :enabled',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: {
                  ':disabled': 'disabled',
                  ':enabled': 'enabled',
                  ':reason': reason,
                  ':now': now.toISOString(),
                  ':pending': true,
                  ...(reason === 'failing' ? { ':webhookId': cause.webhookId } : {}),
                },
              },
            },
            ...endpoint.eventTypes.map((eventType) => ({
              Update: {
                TableName: tableName,
                Key: { pk: subscriptionPk(endpoint.tenantId, eventType), sk: subscriptionSk(endpoint) },
                UpdateExpression: 'SET #status = :disabled',
                // An endpoint deleted meanwhile: never recreate its subscription as a stub.
                ConditionExpression: 'attribute_exists(pk)',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':disabled': 'disabled' },
              },
            })),
          ],
        }),
      );
      return true;
    } catch (error) {
      if (failedConditionIndexes(error)?.length) return false;
      throw error;
    }
  }

  /**
   * Clears the `ownerAlertPending` of the disable made at `disabledAt`, once its alert is queued. An
   * endpoint enabled, deleted or disabled again since is left as it is: the flag of a later disable is
   * that disable's.
   */
  async ownerAlerted(endpointId: string, disabledAt: string): Promise<void> {
    try {
      await this.options.documentClient.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: endpointKey(endpointId),
          UpdateExpression: 'REMOVE ownerAlertPending',
          ConditionExpression: 'disabledAt = :disabledAt',
          ExpressionAttributeValues: { ':disabledAt': disabledAt },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /**
   * Appends one attempt to the message's delivery item (creating it on the first) and sets its status.
   * Resolves false when the delivery was already final: a redelivered copy never rewrites history. The
   * one exception is a success after `failed`: the message was redriven from the DLQ and got through.
   */
  async recordAttempt(
    message: WebhookMessage,
    attempt: DeliveryAttempt,
    status: DeliveryStatus,
    now = new Date(),
  ): Promise<boolean> {
    const expiresAt =
      toEpochSeconds(new Date(message.createdAt).getTime()) + deliveryRetentionDays * 24 * 3600;
    try {
      await this.options.documentClient.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: deliveryKey(message),
          UpdateExpression:
            'SET webhookId = :id, endpointId = :endpoint, eventType = :type, createdAt = :created, ' +
            '#status = :status, updatedAt = :now, expiresAt = :expires, ' +
            'attempts = list_append(if_not_exists(attempts, :none), :attempt)',
          // A late or duplicate attempt (two copies of one message) must not overwrite a final status.
          ConditionExpression:
            status === 'delivered'
              ? 'attribute_not_exists(#status) OR #status IN (:pending, :failed)'
              : 'attribute_not_exists(#status) OR #status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':id': message.id,
            ':endpoint': message.endpointId,
            ':type': message.eventType,
            ':created': message.createdAt,
            ':status': status,
            ':now': now.toISOString(),
            ':expires': expiresAt,
            ':none': [],
            ':attempt': [attempt],
            ':pending': 'pending',
            ...(status === 'delivered' ? { ':failed': 'failed' } : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * An endpoint's deliveries, newest first, cursor-paginated. Deliveries past their retention are left
   * out although TTL may not have deleted them yet, so a page can hold fewer than `limit`.
   */
  async listDeliveries(
    endpointId: string,
    limit: number,
    cursor?: string,
    now = new Date(),
  ): Promise<Page<WebhookDelivery>> {
    const pk = endpointKey(endpointId).pk;
    // A cursor from another endpoint's list must not read that endpoint's history.
    const startKey = decodeCursor(
      cursor,
      [['pk', 'sk']],
      (key) => key.pk === pk && key.sk?.startsWith(deliveryPrefix) === true,
    );
    const result = await this.options.documentClient.send(
      new QueryCommand({
        TableName: this.options.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': pk, ':prefix': deliveryPrefix },
        ScanIndexForward: false,
        Limit: limit,
        ExclusiveStartKey: startKey,
      }),
    );
    const nextCursor = encodeCursor(result.LastEvaluatedKey);
    const kept = (result.Items ?? []).filter((item) => !isExpired(item, now.getTime()));
    return { items: kept.map(toDelivery), ...(nextCursor ? { nextCursor } : {}) };
  }

  /**
   * Counts a delivery that failed for good against its endpoint (the disable rule's streak) and
   * returns the streak; undefined when the endpoint is gone. One atomic ADD, so concurrent failures of
   * different webhooks all count; the streak keeps the ids it counted, so two live copies of one webhook
   * (a copy sent back while the circuit was open and the original redelivered, any SQS duplicate, a
   * redrive from the DLQ) count once: the second gets the streak as it stands, so a disable that failed
   * at the threshold is tried again. The ids are at most the rule's failure count, since reaching it
   * disables the endpoint.
   */
  async noteFailedDelivery(
    endpointId: string,
    webhookId: string,
    now = new Date(),
  ): Promise<{ failedDeliveries: number; failingSince: string } | undefined> {
    try {
      const { Attributes } = await this.options.documentClient.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: endpointKey(endpointId),
          UpdateExpression:
            'ADD failedDeliveries :one, failedWebhookIds :webhook SET failingSince = if_not_exists(failingSince, :now)',
          // A deleted endpoint must not come back as a stub holding only a counter.
          ConditionExpression: 'attribute_exists(pk) AND NOT contains(failedWebhookIds, :webhookId)',
          ExpressionAttributeValues: {
            ':one': 1,
            ':webhook': new Set([webhookId]),
            ':webhookId': webhookId,
            ':now': now.toISOString(),
          },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return {
        failedDeliveries: Number(Attributes?.failedDeliveries ?? 1),
        failingSince: String(Attributes?.failingSince ?? now.toISOString()),
      };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return this.failureStreak(endpointId, webhookId);
    }
  }

  /** The streak that already counts `webhookId`; undefined when the endpoint is gone or the streak was reset. */
  private async failureStreak(
    endpointId: string,
    webhookId: string,
  ): Promise<{ failedDeliveries: number; failingSince: string } | undefined> {
    const { Item } = await this.options.documentClient.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: endpointKey(endpointId),
        ConsistentRead: true,
        ProjectionExpression: 'failedDeliveries, failingSince, failedWebhookIds',
      }),
    );
    const counted = Item?.failedWebhookIds instanceof Set && Item.failedWebhookIds.has(webhookId);
    if (!counted || typeof Item?.failedDeliveries !== 'number' || typeof Item.failingSince !== 'string') {
      return undefined;
    }
    return { failedDeliveries: Item.failedDeliveries, failingSince: Item.failingSince };
  }

  /** Ends an endpoint's failure streak after a success (called only when it has one, so no write per success). */
  async clearFailures(endpointId: string): Promise<void> {
    try {
      await this.options.documentClient.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: endpointKey(endpointId),
          UpdateExpression: 'REMOVE failedDeliveries, failingSince, failedWebhookIds',
          ConditionExpression: 'attribute_exists(pk)',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}
