// API keys in the toolkit table: only a hash of the secret is stored, lookups are cached, usage is stamped once a minute.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { assertNoProblems, type FieldProblem, ServiceUnavailableError, ValidationError } from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import { checkFunctionOption, checkMethodsOption, requireOptionsObject } from '../options.js';
import { checkTableName, isExpired, toEpochSeconds } from '../store/tables.js';
import { isUsableIdentifier } from './claims-principal.js';
import { credentialError } from './failure.js';
import type { Principal } from './principal.js';
import { TokenCache } from './token-cache.js';

export interface ApiKeyStoreOptions {
  /** Document client for the toolkit table, created once at module scope. */
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /**
   * How long a key read from DynamoDB is trusted before it is read again: a revocation reaches
   * other instances within this bound (the revoking instance drops its copy at once). @default 60000
   */
  readonly cacheTtlMs?: number | undefined;
  /**
   * Keys held in the cache; when full, the oldest key not used since the last eviction passed it is dropped
   * (second chance, close to least recently used). Key ids with no key are cached apart,
   * a tenth as many (at least 1), so made-up ids never push out real keys. @default 1000
   */
  readonly cacheMaxEntries?: number | undefined;
  /** Least time between two `lastUsedAt` writes of one key. @default 60000 */
  readonly lastUsedIntervalMs?: number | undefined;
  /**
   * Pepper new keys are hashed under (HMAC-SHA256 instead of plain SHA-256). Give a new pepper an id: each key
   * records the scheme it was hashed under, so the pepper can be rotated. A plain string is the pepper without
   * an id that stores had before schemes were recorded: keys stored then record none and verify under it.
   * @default undefined: plain SHA-256
   */
  readonly pepper?: string | ApiKeyPepper | undefined;
  /**
   * Peppers keys may still be hashed under after `pepper` was rotated or removed: such a key still verifies,
   * and its first verify rehashes it under the current scheme. The key's item names its pepper, so an older
   * one costs no DynamoDB read, only its HMAC. A key whose pepper is dropped from here answers `unknown_key`:
   * drop one once its keys have been used or reissued. A new pepper goes here one deployment before it
   * becomes `pepper`, so that instances still on the old options accept the keys moved to it. @default []
   */
  readonly previousPeppers?: readonly (string | ApiKeyPepper)[] | undefined;
  /**
   * Whether keys hashed without a pepper (plain SHA-256) still verify, and are rehashed, while `pepper` is
   * set: true while a store moves to a pepper, false again once its keys have been used or reissued.
   * @default false
   */
  readonly acceptUnpeppered?: boolean | undefined;
  /**
   * How long a revoked key's item (owner, scopes, secret hash) is kept: revoking sets its `expiresAt` to
   * at most now + this, so the key answers `revoked` rather than `unknown_key` for that long and is then
   * deleted by the table's TTL. A whole number of milliseconds. @default 2592000000 (30 days)
   */
  readonly revokedRetentionMs?: number | undefined;
  /**
   * Receives `apiKey.created`, `apiKey.revoked` and `apiKey.rehashed`: each names the key id, so that the
   * key's later lines (`apiKey.used`, `auth.failure`) can be tied to its owner after the key is deleted.
   * @default none
   */
  readonly onEvent?: SecurityEventListener | undefined;
}

/** A pepper and the id recorded with every key hashed under it. */
export interface ApiKeyPepper {
  /** 1-64 letters, digits, `.`, `_` or `-`; one id, one secret, for good. */
  readonly id: string;
  /** At least 16 characters, kept out of the table (Secrets Manager). */
  readonly secret: string;
}

/** A stored key as listed to its owner: never the secret or its hash. */
export interface ApiKeyRecord {
  readonly keyId: string;
  readonly owner: string;
  readonly scopes: readonly string[];
  readonly tenantId: string | undefined;
  readonly createdAt: string;
  readonly expiresAt: string | undefined;
  readonly revokedAt: string | undefined;
  readonly lastUsedAt: string | undefined;
  /**
   * What the secret is hashed with: `sha256`, `hmac-sha256` (the pepper given as a plain string) or
   * `hmac-sha256:<pepper id>`; undefined for a key stored before schemes were recorded and not verified since.
   */
  readonly hashScheme: string | undefined;
}

/** What {@link ApiKeyStore.create} returns: the record and, this once, the plaintext key. */
export interface CreatedApiKey extends ApiKeyRecord {
  /** `bwk_<keyId>_<secret>`; only its hash is stored, so it cannot be shown again. */
  readonly key: string;
}

export interface CreateApiKeyOptions {
  /**
   * After this instant the key is refused (and DynamoDB's TTL eventually deletes it). Stored in whole
   * seconds, rounded up: the key works until at least this instant, and at most a second longer. @default never
   */
  readonly expiresAt?: Date | undefined;
  /** Tenant of the key's principal. @default undefined */
  readonly tenantId?: string | undefined;
}

/**
 * The tenant whose keys a call may see or touch: a key matches only the tenant it was created with, and a
 * key created without one only a call without one. An owner's id is unique only within a tenant, and the
 * owner's index holds every tenant's keys of that id.
 */
export interface ApiKeyTenantScope {
  /** The caller's tenant (`principal.tenantId`). @default undefined: only keys created without a tenant */
  readonly tenantId?: string | undefined;
}

/** What a key must belong to for {@link ApiKeyStore.revoke} to revoke it. */
export interface ApiKeyRevokeGuard extends ApiKeyTenantScope {
  /** The key's owner, as given to {@link ApiKeyStore.create}. @default any owner */
  readonly owner?: string | undefined;
}

interface StoredKey {
  pk: string;
  sk: string;
  keyId: string;
  owner: string;
  scopes: string[];
  secretHash: string;
  /** Absent on keys stored before schemes were recorded. */
  hashScheme?: string | undefined;
  tenantId?: string | undefined;
  createdAt: string;
  expiresAt?: number | undefined;
  revokedAt?: string | undefined;
  lastUsedAt?: number | undefined;
}

interface CacheEntry {
  /** Replaced by its rehashed copy once this instance has moved the key to the current scheme. */
  item: StoredKey;
  readonly fetchedAt: number;
  /** Last `lastUsedAt` write (or attempt) from this instance. */
  touchedAt: number;
}

const keyPattern = /^bwk_([0-9a-f]{16})_([\w-]{43})$/;
const keyIdPattern = /^[0-9a-f]{16}$/;
const ownerPattern = /^[^\s#]{1,128}$/;
const ownerProblem = 'Must be 1-128 characters without spaces, #, control characters or unpaired surrogates';

/**
 * Whether `value` can be a key's owner or tenant: a verified key's principal carries them into key
 * segments, rate-limit keys and encryption contexts, so they meet the rule a token's ids meet
 * ({@link isUsableIdentifier}: ill-formed text would turn into U+FFFD there), and hold no `#`, which
 * separates key segments.
 */
const isUsableOwner = (value: unknown) =>
  typeof value === 'string' && ownerPattern.test(value) && isUsableIdentifier(value);
const scopePattern = /^[\w.:/*-]{1,128}$/;
const sortKey = 'APIKEY';

const pepperIdPattern = /^[\w.-]{1,64}$/;

const keyOf = (keyId: string) => ({ pk: `APIKEY#${keyId}`, sk: sortKey });
const ownerPartition = (owner: string) => `APIKEY#OWNER#${owner}`;

function toRecord(item: StoredKey): ApiKeyRecord {
  return {
    keyId: item.keyId,
    owner: item.owner,
    scopes: item.scopes,
    tenantId: item.tenantId,
    createdAt: item.createdAt,
    expiresAt: item.expiresAt === undefined ? undefined : new Date(item.expiresAt * 1000).toISOString(),
    revokedAt: item.revokedAt,
    lastUsedAt: item.lastUsedAt === undefined ? undefined : new Date(item.lastUsedAt).toISOString(),
    hashScheme: item.hashScheme,
  };
}

/** One way of hashing secrets, under the name its keys record. */
interface HashScheme {
  readonly name: string;
  digest(secret: string): Buffer;
}

/** The scheme of the pepper given as a plain string, without an id. */
const idlessPepperScheme = 'hmac-sha256';

const unpeppered: HashScheme = {
  name: 'sha256',
  digest: (secret) => createHash('sha256').update(secret).digest(),
};

function peppered(pepper: string | ApiKeyPepper): HashScheme {
  const [name, key] =
    typeof pepper === 'string' ? [idlessPepperScheme, pepper] : [`hmac-sha256:${pepper.id}`, pepper.secret];
  return { name, digest: (secret) => createHmac('sha256', key).update(secret).digest() };
}

/** What is wrong with one pepper option (`label` names it in the problems). */
function pepperProblems(label: string, pepper: unknown): string[] {
  if (typeof pepper === 'string') return pepper.length < 16 ? [`${label} must be >= 16 characters`] : [];
  if (typeof pepper !== 'object' || pepper === null) return [`${label} must be a string or { id, secret }`];
  const { id, secret } = pepper as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof id !== 'string' || !pepperIdPattern.test(id)) {
    problems.push(`${label}.id must be 1-64 letters, digits, . _ or -`);
  }
  if (typeof secret !== 'string' || secret.length < 16) {
    problems.push(`${label}.secret must be a string of >= 16 characters`);
  }
  return problems;
}

/**
 * The schemes the options name, current first, or the problems with them. Two peppers of one id (or two
 * without one) would leave a key's recorded scheme naming either.
 */
function hashSchemes(options: ApiKeyStoreOptions, problems: string[]): HashScheme[] {
  const previous: readonly unknown[] = options.previousPeppers ?? [];
  if (!Array.isArray(previous)) {
    problems.push('previousPeppers must be an array');
    return [];
  }
  const labelled: [string, unknown][] = [
    ...(options.pepper === undefined ? [] : [['pepper', options.pepper] as [string, unknown]]),
    ...previous.map((pepper, index): [string, unknown] => [`previousPeppers[${index}]`, pepper]),
  ];
  const schemes = options.pepper === undefined ? [unpeppered] : [];
  for (const [label, pepper] of labelled) {
    const found = pepperProblems(label, pepper);
    problems.push(...found);
    if (found.length > 0) continue;
    const scheme = peppered(pepper as string | ApiKeyPepper);
    if (schemes.some((earlier) => earlier.name === scheme.name)) {
      problems.push(
        typeof pepper === 'string'
          ? `${label} is a second pepper without an id`
          : `${label}.id ${JSON.stringify((pepper as ApiKeyPepper).id)} is used twice`,
      );
    }
    schemes.push(scheme);
  }
  if (options.acceptUnpeppered !== undefined && typeof options.acceptUnpeppered !== 'boolean') {
    problems.push('acceptUnpeppered must be a boolean');
  }
  if (options.acceptUnpeppered === true && options.pepper !== undefined) schemes.push(unpeppered);
  return schemes;
}

/**
 * The condition a key's item must meet to be in `scope` (owner and tenant), and its values: DynamoDB
 * checks it in the same request that reads or writes the item.
 */
function scopeCondition(scope: ApiKeyRevokeGuard): {
  expression: string;
  names: Record<string, string>;
  values: Record<string, unknown>;
} {
  const terms =
    scope.tenantId === undefined ? ['attribute_not_exists(#tenantId)'] : ['#tenantId = :scopeTenantId'];
  const names: Record<string, string> = { '#tenantId': 'tenantId' };
  const values: Record<string, unknown> =
    scope.tenantId === undefined ? {} : { ':scopeTenantId': scope.tenantId };
  if (scope.owner !== undefined) {
    terms.push('#owner = :scopeOwner');
    names['#owner'] = 'owner';
    values[':scopeOwner'] = scope.owner;
  }
  return { expression: terms.join(' AND '), names, values };
}

/**
 * Creates, verifies, lists and revokes API keys stored under `APIKEY#` in the toolkit table.
 * Verification compares hashes in constant time, reads DynamoDB at most once per key per
 * `cacheTtlMs`, and writes `lastUsedAt` at most once per `lastUsedIntervalMs` per key.
 *
 * @example
 * const apiKeys = new ApiKeyStore({ client: documentClient, tableName: 'bulwark-toolkit' });
 * const { key } = await apiKeys.create('alice', ['bookings/read']); // show `key` once
 * const principal = await apiKeys.verify(event.headers['x-api-key'] ?? '');
 */
export class ApiKeyStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  private readonly lastUsedIntervalMs: number;
  /** New keys are hashed under it, and keys verified under another scheme are rehashed to it. */
  private readonly currentScheme: HashScheme;
  /** Every scheme a key may verify under, by the name its item records. */
  private readonly acceptedSchemes: ReadonlyMap<string, HashScheme>;
  /**
   * The schemes a key stored before schemes were recorded may be under: the store's pepper of the time,
   * the one given as a plain string, or none at all.
   */
  private readonly unrecordedSchemes: readonly HashScheme[];
  private readonly revokedRetentionMs: number;
  /**
   * Keys read, expired ones included (a re-read keeps their `touchedAt`). Second-chance eviction, close
   * to least recently used: a hit only sets a flag, where moving the entry to the end of a Map (delete,
   * then set) cost about 1.4 µs in a full one of 1,000 keys.
   */
  private readonly cache: TokenCache<CacheEntry>;
  /** Key ids DynamoDB had no item for, each for `cacheTtlMs`, evicted the same way. */
  private readonly unknownIds: TokenCache<true>;
  /** Revocations this instance has finished, applied or not: a read in flight across one keeps no copy. */
  private revocations = 0;
  private readonly onEvent: SecurityEventListener | undefined;

  constructor(options: ApiKeyStoreOptions) {
    requireOptionsObject('ApiKeyStore', options);
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.cacheMaxEntries = options.cacheMaxEntries ?? 1000;
    this.lastUsedIntervalMs = options.lastUsedIntervalMs ?? 60_000;
    this.revokedRetentionMs = options.revokedRetentionMs ?? 30 * 24 * 60 * 60 * 1000;
    const problems: string[] = [];
    if (!options.client) problems.push('client is required');
    else checkMethodsOption(problems, 'client', options.client, ['send'], 'a DynamoDBDocumentClient');
    checkTableName(problems, options.tableName);
    if (!(this.cacheTtlMs >= 0)) problems.push('cacheTtlMs must be >= 0');
    if (!(Number.isInteger(this.cacheMaxEntries) && this.cacheMaxEntries > 0)) {
      problems.push('cacheMaxEntries must be a positive integer');
    }
    if (!(this.lastUsedIntervalMs >= 0)) problems.push('lastUsedIntervalMs must be >= 0');
    const schemes = hashSchemes(options, problems);
    if (!(Number.isSafeInteger(this.revokedRetentionMs) && this.revokedRetentionMs >= 0)) {
      problems.push('revokedRetentionMs must be a whole number >= 0');
    }
    // emitEvent swallows a listener's errors: one that is no function would lose every event, silently.
    checkFunctionOption(problems, 'onEvent', options.onEvent);
    assertNoProblems('ApiKeyStore', problems);
    this.cache = new TokenCache(this.cacheMaxEntries);
    this.unknownIds = new TokenCache(Math.max(1, Math.floor(this.cacheMaxEntries / 10)));
    this.client = options.client;
    this.tableName = options.tableName;
    this.onEvent = options.onEvent;
    this.currentScheme = schemes[0] as HashScheme;
    this.acceptedSchemes = new Map(schemes.map((scheme) => [scheme.name, scheme]));
    this.unrecordedSchemes = [idlessPepperScheme, unpeppered.name].flatMap(
      (name) => this.acceptedSchemes.get(name) ?? [],
    );
  }

  /** The schemes a key may verify under: none when its item names one this store is no longer given. */
  private schemesFor(item: StoredKey): readonly HashScheme[] {
    if (item.hashScheme === undefined) return this.unrecordedSchemes;
    const scheme = this.acceptedSchemes.get(item.hashScheme);
    return scheme === undefined ? [] : [scheme];
  }

  /** The scheme under which `secret` hashes to the key's stored hash, if one of its schemes does. */
  private schemeMatching(item: StoredKey | undefined, secret: string): HashScheme | undefined {
    const candidates = item === undefined ? [] : this.schemesFor(item);
    if (candidates.length === 0) {
      // Hashed all the same: an unknown id or a dropped pepper takes the time a wrong secret does.
      this.currentScheme.digest(secret);
      return undefined;
    }
    const expected = Buffer.from((item as StoredKey).secretHash, 'hex');
    return candidates.find((scheme) => {
      const actual = scheme.digest(secret);
      // Equal-length digests compared in constant time: the secret leaks nothing through timing.
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    });
  }

  /**
   * Creates a key for `owner` with the given scopes; the plaintext key is returned this once.
   * @throws ValidationError (400) listing every invalid argument.
   */
  async create(
    owner: string,
    scopes: readonly string[],
    options: CreateApiKeyOptions = {},
  ): Promise<CreatedApiKey> {
    const problems: FieldProblem[] = [];
    if (!isUsableOwner(owner)) {
      problems.push({ field: 'owner', message: ownerProblem });
    }
    if (!Array.isArray(scopes) || scopes.length > 50 || scopes.some((scope) => !scopePattern.test(scope))) {
      problems.push({ field: 'scopes', message: 'Must be at most 50 scopes of letters, digits and ._:/*-' });
    }
    const expiresAt = options.expiresAt;
    if (expiresAt !== undefined) {
      // A JavaScript caller may pass what JSON gave it: an ISO string or epoch number is refused, not guessed at.
      if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
        problems.push({ field: 'expiresAt', message: 'Must be a valid Date object, not a string or number' });
      } else if (!(expiresAt.getTime() > Date.now())) {
        problems.push({ field: 'expiresAt', message: 'Must be in the future' });
      }
    }
    if (options.tenantId !== undefined && !isUsableOwner(options.tenantId)) {
      problems.push({ field: 'tenantId', message: ownerProblem });
    }
    if (problems.length > 0) throw new ValidationError('Invalid API key request', problems);

    const keyId = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const createdAt = new Date().toISOString();
    const item: StoredKey = {
      ...keyOf(keyId),
      keyId,
      owner,
      scopes: [...scopes],
      secretHash: this.currentScheme.digest(secret).toString('hex'),
      hashScheme: this.currentScheme.name,
      createdAt,
      ...(options.tenantId === undefined ? {} : { tenantId: options.tenantId }),
      // Rounded up, not down: a key must not die before the instant asked for (nor at birth, within this second).
      ...(expiresAt === undefined ? {} : { expiresAt: Math.ceil(expiresAt.getTime() / 1000) }),
    };
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...item, gsi1pk: ownerPartition(owner), gsi1sk: `${createdAt}#${keyId}` },
        // Never overwrite an existing key, however unlikely a 64-bit id collision is.
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
    const record = toRecord(item);
    emitEvent(this.onEvent, {
      type: 'apiKey.created',
      metadata: {
        keyId,
        owner,
        tenantId: record.tenantId,
        scopes: record.scopes,
        expiresAt: record.expiresAt,
        hashScheme: record.hashScheme,
      },
    });
    return { ...record, key: `bwk_${keyId}_${secret}` };
  }

  /**
   * The principal of a presented key.
   * @throws InvalidTokenError (401): malformed, unknown, wrong or hashed under a pepper this store is no
   * longer given (`unknown_key`, all alike), revoked, expired;
   * ServiceUnavailableError (503) when the key cannot be read.
   */
  async verify(presented: string): Promise<Principal> {
    const match = keyPattern.exec(presented);
    if (match === null) throw credentialError('malformed');
    const [, keyId, secret] = match as unknown as [string, string, string];
    const now = Date.now();
    const entry = await this.lookup(keyId, now);
    const scheme = this.schemeMatching(entry?.item, secret);
    if (entry === undefined || scheme === undefined) {
      // The id as the client wrote it (16 hex digits, so bounded): whose key is being tried, if anyone's.
      throw credentialError('unknown_key', { credential: { verified: false, keyId } });
    }
    const { item } = entry;
    // Status is revealed only to a holder of the right secret, and so is whose key it is, in the audit line.
    const credential = { verified: true, keyId, owner: item.owner, tenantId: item.tenantId };
    if (item.revokedAt !== undefined) throw credentialError('revoked', { credential });
    if (isExpired(item, now)) throw credentialError('expired', { credential });
    if (scheme !== this.currentScheme || item.hashScheme === undefined)
      await this.rehash(entry, item, secret);
    await this.touch(entry, item, now);
    return {
      id: item.keyId,
      isM2M: true,
      clientId: undefined,
      email: undefined,
      scopes: item.scopes,
      roles: [],
      tenantId: item.tenantId,
      authMethod: 'apiKey',
      claims: { keyId: item.keyId, owner: item.owner },
    };
  }

  /**
   * Revokes a key; false when there is no such key (or none the `guard` allows). This instance keeps no copy of the key read before
   * the revocation; other instances notice within `cacheTtlMs`. The key's item then expires after
   * `revokedRetentionMs`, or at its own expiry if that comes first.
   *
   * With a `guard`, only a key of that tenant (and owner, when given) is revoked, checked by DynamoDB in
   * the revoking write; any other key answers false like an unknown one and is left as it was. Pass it
   * whenever the key id comes from a request: without it any key id revokes, whoever holds it.
   *
   * @example
   * await apiKeys.revoke(keyId, { owner: principal.id, tenantId: principal.tenantId }); // false when it is not theirs
   */
  async revoke(keyId: string, guard?: ApiKeyRevokeGuard): Promise<boolean> {
    // An id of another shape (it may come from a request) is not written into the line, only refused.
    if (!keyIdPattern.test(keyId)) {
      this.reportRevoke({ reason: 'malformed_key_id', outcome: 'failure' }, guard);
      return false;
    }
    try {
      const revoked = await this.markRevoked(keyId, Date.now(), guard);
      this.reportRevoke(revoked ? { keyId } : { keyId, reason: 'no_such_key', outcome: 'failure' }, guard);
      return revoked;
    } catch (error) {
      // The update may have applied all the same: the line says it was asked for and its answer lost.
      this.reportRevoke(
        { keyId, reason: error instanceof Error ? error.name : 'Error', outcome: 'error' },
        guard,
      );
      throw error;
    } finally {
      // Reads answered before the update applied, whether cached meanwhile or still in flight, hold the
      // key unrevoked: neither may stay in (or enter) the cache. Even a failed update may have applied.
      this.revocations += 1;
      this.cache.delete(keyId);
    }
  }

  /** The `apiKey.revoked` event of one revocation, with the guard it was asked under. */
  private reportRevoke(
    result: { keyId?: string; reason?: string; outcome?: 'failure' | 'error' },
    guard: ApiKeyRevokeGuard | undefined,
  ): void {
    const { reason, ...metadata } = result;
    emitEvent(this.onEvent, {
      type: 'apiKey.revoked',
      reason,
      metadata: {
        ...metadata,
        guard: guard === undefined ? undefined : { owner: guard.owner, tenantId: guard.tenantId },
      },
    });
  }

  private async markRevoked(
    keyId: string,
    now: number,
    guard: ApiKeyRevokeGuard | undefined,
  ): Promise<boolean> {
    const inScope = guard === undefined ? undefined : scopeCondition(guard);
    const revokedOnly = {
      TableName: this.tableName,
      Key: keyOf(keyId),
      UpdateExpression: 'SET revokedAt = if_not_exists(revokedAt, :now)',
      // Revoking must never create a key item out of nothing, nor touch another tenant's or owner's key.
      ConditionExpression:
        inScope === undefined ? 'attribute_exists(pk)' : `attribute_exists(pk) AND ${inScope.expression}`,
      ...(inScope === undefined ? {} : { ExpressionAttributeNames: inScope.names }),
      ExpressionAttributeValues: { ':now': new Date(now).toISOString(), ...inScope?.values },
    };
    try {
      // DynamoDB has no min(): the retention is written only where it ends before the key's own expiry.
      await this.client.send(
        new UpdateCommand({
          ...revokedOnly,
          UpdateExpression: `${revokedOnly.UpdateExpression}, expiresAt = :retainUntil`,
          ConditionExpression: `${revokedOnly.ConditionExpression} AND (attribute_not_exists(expiresAt) OR expiresAt > :retainUntil)`,
          ExpressionAttributeValues: {
            ...revokedOnly.ExpressionAttributeValues,
            ':retainUntil': toEpochSeconds(now + this.revokedRetentionMs),
          },
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
    // No such key, one outside the guard, or one whose own expiry comes sooner and stands.
    try {
      await this.client.send(new UpdateCommand(revokedOnly));
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /**
   * The owner's keys in the tenant, oldest first, without secrets: `alice` of another tenant is another
   * owner, and without a `tenantId` only the keys created without one are listed. Keys past their
   * `expiresAt` (expired, or revoked longer than `revokedRetentionMs` ago) are left out: TTL deletes them
   * only eventually. So are keys hashed under a pepper this store is no longer given: they cannot verify,
   * and come back if that pepper does. Each record names its key's `hashScheme`, to follow a rotation.
   *
   * @example
   * await apiKeys.listByOwner(principal.id, { tenantId: principal.tenantId });
   */
  async listByOwner(owner: string, scope: ApiKeyTenantScope = {}): Promise<ApiKeyRecord[]> {
    const inTenant = scopeCondition({ tenantId: scope.tenantId });
    const now = Date.now();
    const records: ApiKeyRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    // Bounded: an owner with more than 10 pages of keys has a problem listing will not solve.
    for (let page = 0; page < 10; page += 1) {
      const result = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'gsi1',
          KeyConditionExpression: 'gsi1pk = :owner',
          // The owner's partition holds every tenant's keys of that owner id.
          FilterExpression: inTenant.expression,
          ExpressionAttributeNames: inTenant.names,
          ExpressionAttributeValues: { ':owner': ownerPartition(owner), ...inTenant.values },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of (result.Items ?? []) as StoredKey[]) {
        if (!isExpired(item, now) && this.schemesFor(item).length > 0) records.push(toRecord(item));
      }
      startKey = result.LastEvaluatedKey;
      if (startKey === undefined) break;
    }
    return records;
  }

  /** The key's cache entry, read from DynamoDB past `cacheTtlMs`; undefined when there is no such key. */
  private async lookup(keyId: string, now: number): Promise<CacheEntry | undefined> {
    const cached = this.cache.get(keyId, now);
    if (cached !== undefined && now - cached.fetchedAt < this.cacheTtlMs) return cached;
    if (this.unknownIds.get(keyId, now)) return undefined;
    const revocationsBefore = this.revocations;
    let result: { Item?: Record<string, unknown> | undefined };
    try {
      // Strongly consistent: an eventually consistent read just after a revocation could return the
      // unrevoked item, which would then be cached for cacheTtlMs.
      result = await this.client.send(
        new GetCommand({ TableName: this.tableName, Key: keyOf(keyId), ConsistentRead: true }),
      );
    } catch (error) {
      // A key that cannot be read is neither valid nor invalid: a 503 the caller may retry, nothing cached.
      throw new ServiceUnavailableError('API keys are unavailable', 5, { cause: error });
    }
    const item = result.Item as StoredKey | undefined;
    const entry = item && { item, fetchedAt: now, touchedAt: cached?.touchedAt ?? 0 };
    // This request began before a revocation finished and may be answered; later ones must read again.
    if (this.revocations !== revocationsBefore) return entry;
    if (entry === undefined) {
      this.cache.delete(keyId);
      // Unknown ids are cached too, so guessing ids costs DynamoDB one read per id per TTL, not per
      // request; apart from the keys, so that a flood of them pushes out only other unknown ids.
      this.unknownIds.set(keyId, true, now + this.cacheTtlMs);
      return undefined;
    }
    this.unknownIds.delete(keyId);
    this.cache.set(keyId, entry, Number.POSITIVE_INFINITY);
    return entry;
  }

  /**
   * Moves a key just verified under an older scheme (or under none recorded) to the current one, so the
   * older pepper can be dropped once its keys have been used. Only the hash and its scheme change, in the
   * key's own item: owner, tenant, scopes and a revocation written meanwhile stay as they are.
   */
  private async rehash(entry: CacheEntry, item: StoredKey, secret: string): Promise<void> {
    const rehashed = {
      ...item,
      secretHash: this.currentScheme.digest(secret).toString('hex'),
      hashScheme: this.currentScheme.name,
    };
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keyOf(item.keyId),
          UpdateExpression: 'SET secretHash = :rehashed, hashScheme = :scheme',
          // Only over the hash just matched: a deleted key stays deleted, and of verifies racing here the
          // first rewrites it and the others (whose hash would be the same) find nothing left to do.
          ConditionExpression: 'secretHash = :matched',
          ExpressionAttributeValues: {
            ':rehashed': rehashed.secretHash,
            ':scheme': rehashed.hashScheme,
            ':matched': item.secretHash,
          },
        }),
      );
      emitEvent(this.onEvent, {
        type: 'apiKey.rehashed',
        metadata: { keyId: item.keyId, fromScheme: item.hashScheme, toScheme: rehashed.hashScheme },
      });
    } catch {
      // Rehashed by another verify, deleted, or DynamoDB unavailable: the key still verifies as it is stored,
      // and the next read of it after cacheTtlMs tries again. The request goes on.
    }
    // Under the current scheme this instance verifies the same secret, so it does not write again meanwhile.
    entry.item = rehashed;
  }

  private async touch(entry: CacheEntry, item: StoredKey, now: number): Promise<void> {
    const last = Math.max(entry.touchedAt, item.lastUsedAt ?? 0);
    if (now - last < this.lastUsedIntervalMs) return;
    entry.touchedAt = now;
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keyOf(item.keyId),
          UpdateExpression: 'SET lastUsedAt = :now',
          // Many instances may use one key in the same minute: only the first of them writes; and a
          // deleted key is never brought back by a usage stamp.
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :stale)',
          ExpressionAttributeValues: { ':now': now, ':stale': now - this.lastUsedIntervalMs },
        }),
      );
    } catch {
      // Another instance stamped it first, or DynamoDB is unavailable: the stamp is advisory, the request goes on.
    }
  }
}
