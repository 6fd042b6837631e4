// Embedded DynamoDB for `npm start` and tests: dynalite plus the transactions, TTL and
// ReturnValuesOnConditionCheckFailure that it lacks.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  type AttributeValue,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { notJsonProblem } from '../../middleware/text.js';
import { LocalStartError, notAFolder } from './local-defaults.js';
import { refuseUnlessFromAwsClient } from './local-request-guard.js';

export interface LocalDynamoDbOptions {
  /** Folder for persisted LevelDB data; in memory when absent. */
  readonly path?: string;
  /** @default 0 (a random free port) */
  readonly port?: number;
  /** How often expired items (TTL attribute in the past) are deleted. @default 5000 */
  readonly ttlSweepIntervalMs?: number;
}

export interface LocalDynamoDb {
  /** `http://127.0.0.1:PORT`, for `createDynamoDbClient({ endpoint })`. */
  readonly endpoint: string;
  readonly port: number;
  /** Stops the sweeper, closes the server and its data store; safe to call more than once. */
  stop(): Promise<void>;
}

interface DynaliteOptions {
  readonly path?: string;
  readonly createTableMs: number;
  readonly deleteTableMs: number;
  readonly updateTableMs: number;
}

type Json = Record<string, unknown>;
type Item = Record<string, AttributeValue>;
type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;
type Release = () => void;
type HeaderValue = number | string | readonly string[];

/** A response of dynalite's, kept to be relayed as it is or answered otherwise. */
interface DynaliteAnswer {
  readonly statusCode: number;
  readonly headers: ReadonlyMap<string, HeaderValue>;
  readonly body: string;
}

// dynalite is CommonJS without type definitions.
const dynalite = createRequire(import.meta.url)('dynalite') as (options: DynaliteOptions) => Server;

/** The LevelDB binding dynalite stores its tables with (a dependency of dynalite's, not of this package). */
const { Level } = createRequire(createRequire(import.meta.url).resolve('dynalite'))('level') as {
  Level: new (path: string) => { open(): Promise<void>; close(): Promise<void> };
};

/** What to do about the LevelDB store at `path` found damaged (`reason`, LevelDB's words). */
export function damagedStoreProblem(path: string, reason: string): string {
  return `${path} is damaged (${reason}); move it aside to start with empty tables, or put back a copy`;
}

/**
 * Opens the LevelDB store at `path` once before dynalite does: dynalite opens it in the background and
 * throws a failure to open (a damaged file, another process's lock) from its first request, far from the cause.
 */
async function assertStoreOpens(path: string): Promise<void> {
  const store = new Level(path);
  try {
    await store.open();
  } catch (error) {
    const cause = (isObject(error) && isObject(error.cause) ? error.cause : error) as { code?: unknown };
    const reason = cause instanceof Error ? cause.message : String(cause);
    switch (cause.code) {
      case 'LEVEL_CORRUPTION':
        throw new LocalStartError(damagedStoreProblem(path, reason));
      case 'EEXIST':
      case 'ENOTDIR':
        throw notAFolder(path);
      case 'LEVEL_LOCKED':
        throw new LocalStartError(
          `${path} is in use by another process (${reason}); stop that process first`,
        );
      default:
        throw new LocalStartError(`${path} cannot be opened (${reason})`);
    }
  }
  await store.close();
}

const TARGET_PREFIX = 'DynamoDB_20120810.';
const INTERNAL_HEADER = 'x-bulwark-internal';
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
const MAX_TRANSACT_ITEMS = 100;
const IDEMPOTENCY_WINDOW_MS = 10 * 60 * 1000;
const TTL_FILE = 'bulwark-ttl.json';
// Bounds one sweep of one table so a large backlog cannot stall the server; the cursor resumes next sweep.
const SWEEP_SCAN_LIMIT = 500;
// DynamoDB ignores TTL values more than five years in the past (they are usually milliseconds by mistake).
const TTL_MAX_AGE_SECONDS = 5 * 365 * 24 * 60 * 60;
// An attribute name no application uses, so a ConditionCheck's no-op REMOVE never changes an item.
const NOOP_ATTRIBUTE = '__bulwark_condition_check_noop__';

const VALIDATION = 'com.amazon.coral.validate#ValidationException';
const dynamoType = (name: string): string => `com.amazonaws.dynamodb.v20120810#${name}`;
const CONDITION_FAILED = dynamoType('ConditionalCheckFailedException');
// The single-item writes whose failed condition can return the item (dynalite drops the parameter).
const SINGLE_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem'].map((name) => TARGET_PREFIX + name));

/** An error answered in DynamoDB's wire shape. */
class DynamoDbError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly statusCode = 400,
    readonly extra: Json = {},
  ) {
    super(message);
  }

  body(): Json {
    return { __type: this.type, message: this.message, ...this.extra };
  }
}

const validationError = (message: string): DynamoDbError => new DynamoDbError(VALIDATION, message);
const notFoundError = (): DynamoDbError =>
  new DynamoDbError(dynamoType('ResourceNotFoundException'), 'Requested resource not found');
const missingMember = (path: string): DynamoDbError =>
  validationError(
    `1 validation error detected: Value null at '${path}' failed to satisfy constraint: Member must not be null`,
  );

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorName(error: unknown): string | undefined {
  return isObject(error) && typeof error.name === 'string' ? error.name : undefined;
}

/** Recovers the wire error from an internal SDK call, keeping dynalite's `__type` where the SDK exposes it. */
function toDynamoDbError(error: unknown): DynamoDbError {
  if (error instanceof DynamoDbError) return error;
  const name = errorName(error);
  const metadata = isObject(error) && isObject(error.$metadata) ? error.$metadata : undefined;
  const status = typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
  if (name && status !== undefined && error instanceof Error) {
    const wireType = isObject(error) && typeof error.__type === 'string' ? error.__type : undefined;
    const type = wireType ?? (name === 'ValidationException' ? VALIDATION : dynamoType(name));
    return new DynamoDbError(type, error.message, status);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new DynamoDbError(dynamoType('InternalServerError'), message, 500);
}

const isConditionFailure = (error: unknown): boolean =>
  errorName(error) === 'ConditionalCheckFailedException';

/** Whether a write asks for the item back when its condition fails; DynamoDB knows only ALL_OLD and NONE. */
function returnsOldItem(value: unknown, path: string): boolean {
  if (value === undefined || value === null) return false;
  if (value !== 'ALL_OLD' && value !== 'NONE') {
    throw validationError(
      `1 validation error detected: Value '${String(value)}' at '${path}' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]`,
    );
  }
  return value === 'ALL_OLD';
}

/** The wire carries binary attributes as base64; the SDK wants bytes, or it would base64 them a second time. */
function toSdkValue(value: unknown): unknown {
  if (!isObject(value)) return value;
  if (typeof value.B === 'string') return { B: Buffer.from(value.B, 'base64') };
  if (Array.isArray(value.BS)) {
    return {
      BS: value.BS.map((entry) => (typeof entry === 'string' ? Buffer.from(entry, 'base64') : entry)),
    };
  }
  if (isObject(value.M)) return { M: toSdkItem(value.M) };
  if (Array.isArray(value.L)) return { L: value.L.map(toSdkValue) };
  return value;
}

function toSdkItem(item: unknown): Item | undefined {
  if (!isObject(item)) return undefined;
  return Object.fromEntries(Object.entries(item).map(([name, value]) => [name, toSdkValue(value)])) as Item;
}

function toWire(value: unknown): unknown {
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (Array.isArray(value)) return value.map(toWire);
  if (isObject(value))
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toWire(inner)]));
  return value;
}

function parseObject(text: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The error body of an answer that reports a failed condition. */
function conditionFailureIn(answer: DynaliteAnswer): Json | undefined {
  if (answer.statusCode !== 400) return undefined;
  const body = parseObject(answer.body);
  return body?.__type === CONDITION_FAILED ? body : undefined;
}

function stringMap(value: unknown): Record<string, string> | undefined {
  return isObject(value) ? (value as Record<string, string>) : undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Readers–writer lock with FIFO hand-over: ordinary requests share it, transactions hold it alone.
 * A queued writer stops later readers from overtaking it, so a busy server cannot starve transactions.
 */
class ReadersWriterLock {
  #readers = 0;
  #writing = false;
  readonly #queue: Array<{ exclusive: boolean; grant: (release: Release) => void }> = [];

  /** Calls `grant` (synchronously when free) with a release function that is safe to call twice. */
  acquire(exclusive: boolean, grant: (release: Release) => void): void {
    this.#queue.push({ exclusive, grant });
    this.#drain();
  }

  hold(exclusive: boolean): Promise<Release> {
    return new Promise((resolve) => this.acquire(exclusive, resolve));
  }

  async run<T>(exclusive: boolean, task: () => Promise<T>): Promise<T> {
    const release = await this.hold(exclusive);
    try {
      return await task();
    } finally {
      release();
    }
  }

  #drain(): void {
    for (let next = this.#queue[0]; next && !this.#writing; next = this.#queue[0]) {
      if (next.exclusive && this.#readers > 0) return;
      this.#queue.shift();
      let released = false;
      if (next.exclusive) {
        this.#writing = true;
        next.grant(() => {
          if (released) return;
          released = true;
          this.#writing = false;
          this.#drain();
        });
      } else {
        this.#readers += 1;
        next.grant(() => {
          if (released) return;
          released = true;
          this.#readers -= 1;
          this.#drain();
        });
      }
    }
  }
}

interface TableInfo {
  readonly keyNames: readonly string[];
  /** Tells a recreated table from the one a TTL setting was made for. */
  readonly createdAt: number;
}

interface TtlSetting {
  readonly attributeName: string;
  readonly tableCreatedAt: number;
}

type WriteKind = 'Put' | 'Update' | 'Delete' | 'ConditionCheck';

interface WriteOperation {
  readonly kind: WriteKind;
  readonly tableName: string;
  readonly body: Json;
  /** ReturnValuesOnConditionCheckFailure is ALL_OLD. */
  readonly returnsOld: boolean;
}

interface AppliedWrite {
  readonly tableName: string;
  readonly key: Item;
  readonly oldImage: Item | undefined;
}

const WRITE_KINDS: readonly WriteKind[] = ['ConditionCheck', 'Put', 'Delete', 'Update'];

const lowerFirst = (text: string): string => text.charAt(0).toLowerCase() + text.slice(1);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_REQUEST_BYTES) {
        // Answered, as dynalite does, while the rest of the body is read and dropped: destroying the
        // request would reset the connection before the client could read the 413.
        req.removeAllListeners('data');
        req.removeAllListeners('end');
        req.resume();
        reject(new DynamoDbError(dynamoType('RequestEntityTooLarge'), 'Request entity too large', 413));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Mirrors dynalite's `sendData`, so the SDK sees identical headers from both code paths. */
function send(req: IncomingMessage, res: ServerResponse, statusCode: number, data: Json): void {
  const body = JSON.stringify(data);
  const requestType = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
  res.statusCode = statusCode;
  res.setHeader('x-amzn-RequestId', randomBytes(39).toString('base64').toUpperCase().replace(/[+/]/g, '0'));
  res.setHeader('x-amz-crc32', crc32(body));
  res.setHeader(
    'Content-Type',
    requestType === 'application/x-amz-json-1.0' ? 'application/x-amz-json-1.0' : 'application/json',
  );
  res.setHeader('Content-Length', Buffer.byteLength(body, 'utf8'));
  res.end(body);
}

function relay(res: ServerResponse, answer: DynaliteAnswer): void {
  res.statusCode = answer.statusCode;
  for (const [name, value] of answer.headers) res.setHeader(name, value);
  res.end(answer.body);
}

function isSigned(req: IncomingMessage): boolean {
  const authorization = req.headers.authorization;
  if (authorization) return authorization.trim().startsWith('AWS4-');
  return new URL(req.url ?? '/', 'http://localhost').searchParams.has('X-Amz-Algorithm');
}

/**
 * Starts dynalite on 127.0.0.1 with TransactWriteItems, TransactGetItems, TTL and the item of a failed
 * single-item condition (ReturnValuesOnConditionCheckFailure) added.
 */
export async function startLocalDynamoDb(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  if (options.path) await assertStoreOpens(options.path);
  const server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(options.path ? { path: options.path } : {}),
  });
  const [dynaliteListener] = server.listeners('request') as RequestListener[];
  if (!dynaliteListener) throw new Error('dynalite did not register a request listener');
  server.removeListener('request', dynaliteListener);

  const internalToken = randomBytes(32).toString('hex');
  const internalTokenBytes = Buffer.from(internalToken);
  const lock = new ReadersWriterLock();
  const tables = new Map<string, TableInfo>();
  const ttlSettings = await loadTtlSettings(options.path);
  const sweepCursors = new Map<string, Item>();
  const committedTokens = new Map<string, { fingerprint: string; expiresAt: number }>();
  let internal: DynamoDBClient | undefined;
  let ttlWrites: Promise<void> = Promise.resolve();

  const isInternal = (req: IncomingMessage): boolean => {
    const header = req.headers[INTERNAL_HEADER];
    if (typeof header !== 'string') return false;
    const bytes = Buffer.from(header);
    return bytes.length === internalTokenBytes.length && timingSafeEqual(bytes, internalTokenBytes);
  };

  const client = (): DynamoDBClient => {
    if (!internal) throw new Error('local DynamoDB is not listening');
    return internal;
  };

  const describeTable = async (tableName: string, fresh = false): Promise<TableInfo> => {
    const cached = fresh ? undefined : tables.get(tableName);
    if (cached) return cached;
    try {
      const { Table } = await client().send(new DescribeTableCommand({ TableName: tableName }));
      const info: TableInfo = {
        keyNames: (Table?.KeySchema ?? []).flatMap((key) => (key.AttributeName ? [key.AttributeName] : [])),
        createdAt: Table?.CreationDateTime?.getTime() ?? 0,
      };
      tables.set(tableName, info);
      return info;
    } catch (error) {
      if (errorName(error) === 'ResourceNotFoundException') throw notFoundError();
      throw error;
    }
  };

  const keyOf = (item: Item, table: TableInfo): Item =>
    Object.fromEntries(table.keyNames.flatMap((name) => (item[name] ? [[name, item[name]]] : [])));

  /** The item with the key of `keySource` (a Key, or a Put's whole Item) as it stands, or undefined. */
  const currentItem = async (
    tableName: string,
    keySource: Item,
    table: TableInfo,
  ): Promise<Item | undefined> => {
    const { Item: current } = await client().send(
      new GetItemCommand({ TableName: tableName, Key: keyOf(keySource, table), ConsistentRead: true }),
    );
    return current;
  };

  /** Checks a Key (or a Put's Item) against the schema up front, as DynamoDB validates before executing. */
  const identify = (tableName: string, table: TableInfo, item: Json, isFullItem: boolean): string => {
    const missing = table.keyNames.find((name) => !isObject(item[name]));
    if (missing) {
      throw validationError(
        isFullItem
          ? `One or more parameter values were invalid: Missing the key ${missing} in the item`
          : 'The provided key element does not match the schema',
      );
    }
    if (!isFullItem && Object.keys(item).length !== table.keyNames.length) {
      throw validationError('The provided key element does not match the schema');
    }
    return JSON.stringify([tableName, ...table.keyNames.map((name) => item[name])]);
  };

  const rejectDuplicates = (identities: readonly string[]): void => {
    if (new Set(identities).size !== identities.length) {
      throw validationError('Transaction request cannot include multiple operations on one item');
    }
  };

  const transactItemsOf = (input: Json, member: string): Json[] => {
    const items = input.TransactItems;
    if (!Array.isArray(items)) throw missingMember(member);
    const constraint =
      items.length < 1
        ? 'Member must have length greater than or equal to 1'
        : items.length > MAX_TRANSACT_ITEMS
          ? `Member must have length less than or equal to ${MAX_TRANSACT_ITEMS}`
          : undefined;
    if (constraint) {
      throw validationError(
        `1 validation error detected: Value '${items.length} items' at '${member}' failed to satisfy constraint: ${constraint}`,
      );
    }
    return items.map((item, index) => {
      if (!isObject(item)) throw missingMember(`${member}.${index + 1}.member`);
      return item;
    });
  };

  const parseWrite = (item: Json, index: number): WriteOperation => {
    const kinds = WRITE_KINDS.filter((kind) => item[kind] !== undefined);
    const [kind] = kinds;
    const body = kind ? item[kind] : undefined;
    if (kinds.length !== 1 || !kind || !isObject(body)) {
      throw validationError('TransactItems can only contain one of Check, Put, Update or Delete');
    }
    const path = `transactItems.${index + 1}.member.${lowerFirst(kind)}`;
    const required = [
      'TableName',
      kind === 'Put' ? 'Item' : 'Key',
      ...(kind === 'Update' ? ['UpdateExpression'] : []),
      ...(kind === 'ConditionCheck' ? ['ConditionExpression'] : []),
    ];
    const absent = required.find((field) => body[field] === undefined || body[field] === null);
    if (absent) throw missingMember(`${path}.${lowerFirst(absent)}`);
    if (typeof body.TableName !== 'string') throw missingMember(`${path}.tableName`);
    const returnsOld = returnsOldItem(
      body.ReturnValuesOnConditionCheckFailure,
      `${path}.returnValuesOnConditionCheckFailure`,
    );
    return { kind, tableName: body.TableName, body, returnsOld };
  };

  const expressionFields = (body: Json) => ({
    ConditionExpression: optionalString(body.ConditionExpression),
    ExpressionAttributeNames: stringMap(body.ExpressionAttributeNames),
    ExpressionAttributeValues: toSdkItem(body.ExpressionAttributeValues),
  });

  /** Runs one write as its single-item call and returns what rolling it back needs. */
  const applyWrite = async (
    operation: WriteOperation,
    table: TableInfo,
  ): Promise<AppliedWrite | undefined> => {
    const { kind, tableName, body } = operation;
    const key = toSdkItem(kind === 'Put' ? body.Item : body.Key) ?? {};
    const common = { TableName: tableName, ReturnValues: 'ALL_OLD' as const, ...expressionFields(body) };
    if (kind === 'Put') {
      const result = await client().send(new PutItemCommand({ ...common, Item: key }));
      return { tableName, key: keyOf(key, table), oldImage: result.Attributes };
    }
    if (kind === 'Delete') {
      const result = await client().send(new DeleteItemCommand({ ...common, Key: key }));
      return { tableName, key, oldImage: result.Attributes };
    }
    if (kind === 'Update') {
      const update = optionalString(body.UpdateExpression);
      const result = await client().send(
        new UpdateItemCommand({ ...common, Key: key, UpdateExpression: update }),
      );
      return { tableName, key, oldImage: result.Attributes };
    }
    // UpdateItem is the only single-item call that evaluates a condition without replacing the item.
    const result = await client().send(
      new UpdateItemCommand({
        ...common,
        Key: key,
        UpdateExpression: 'REMOVE #bulwarkNoop',
        ExpressionAttributeNames: { ...common.ExpressionAttributeNames, '#bulwarkNoop': NOOP_ATTRIBUTE },
      }),
    );
    if (!result.Attributes) {
      await client().send(new DeleteItemCommand({ TableName: tableName, Key: key }));
    }
    return undefined;
  };

  const rollBack = async (applied: readonly AppliedWrite[]): Promise<void> => {
    const failures: unknown[] = [];
    for (const write of [...applied].reverse()) {
      try {
        if (write.oldImage) {
          await client().send(new PutItemCommand({ TableName: write.tableName, Item: write.oldImage }));
        } else {
          await client().send(new DeleteItemCommand({ TableName: write.tableName, Key: write.key }));
        }
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) {
      throw new DynamoDbError(
        dynamoType('InternalServerError'),
        `Transaction rollback failed for ${failures.length} item(s): ${toDynamoDbError(failures[0]).message}`,
        500,
      );
    }
  };

  const isCommitted = (token: string | undefined, fingerprint: string): boolean => {
    const now = Date.now();
    for (const [key, entry] of committedTokens) if (entry.expiresAt <= now) committedTokens.delete(key);
    const prior = token ? committedTokens.get(token) : undefined;
    if (prior && prior.fingerprint !== fingerprint) {
      throw new DynamoDbError(
        dynamoType('IdempotentParameterMismatchException'),
        'DynamoDB rejected the request because you retried a request with a different payload but with an idempotent token that was already used.',
      );
    }
    return prior !== undefined;
  };

  const transactWriteItems = async (input: Json): Promise<Json> => {
    const operations = transactItemsOf(input, 'transactItems').map(parseWrite);
    const schemas = new Map<string, TableInfo>();
    for (const { tableName } of operations) {
      if (!schemas.has(tableName)) schemas.set(tableName, await describeTable(tableName));
    }
    const schemaOf = (tableName: string): TableInfo =>
      schemas.get(tableName) ?? { keyNames: [], createdAt: 0 };
    rejectDuplicates(
      operations.map(({ kind, tableName, body }) =>
        identify(
          tableName,
          schemaOf(tableName),
          (kind === 'Put' ? body.Item : body.Key) as Json,
          kind === 'Put',
        ),
      ),
    );
    const token = optionalString(input.ClientRequestToken);
    const fingerprint = JSON.stringify(input.TransactItems);

    return lock.run(true, async () => {
      // A retry of a committed transaction must not run again, or its own writes would fail its conditions.
      if (isCommitted(token, fingerprint)) return {};
      const applied: AppliedWrite[] = [];
      const reasons: Json[] = [];
      let failure: DynamoDbError | undefined;
      // Every item is evaluated, even after a failure, because DynamoDB reports a reason for each one.
      for (const operation of operations) {
        try {
          const write = await applyWrite(operation, schemaOf(operation.tableName));
          if (write) applied.push(write);
          reasons.push({ Code: 'None' });
        } catch (error) {
          if (!isConditionFailure(error)) {
            const cause = toDynamoDbError(error);
            failure ??= cause;
            reasons.push({
              Code: cause.type.split('#').pop() ?? 'InternalServerError',
              Message: cause.message,
            });
            continue;
          }
          const reason: Json = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' };
          reasons.push(reason);
          if (!operation.returnsOld) continue;
          const key = toSdkItem(operation.kind === 'Put' ? operation.body.Item : operation.body.Key) ?? {};
          // Caught here too, since anything escaping this loop would skip the rollback below.
          try {
            const current = await currentItem(operation.tableName, key, schemaOf(operation.tableName));
            if (current) reason.Item = toWire(current);
          } catch (readError) {
            failure ??= toDynamoDbError(readError);
          }
        }
      }
      const cancelled = failure !== undefined || reasons.some((reason) => reason.Code !== 'None');
      if (!cancelled) {
        if (token) committedTokens.set(token, { fingerprint, expiresAt: Date.now() + IDEMPOTENCY_WINDOW_MS });
        return {};
      }
      await rollBack(applied);
      if (failure) throw failure;
      const codes = reasons.map((reason) => reason.Code).join(', ');
      throw new DynamoDbError(
        dynamoType('TransactionCanceledException'),
        `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes}]`,
        400,
        { CancellationReasons: reasons },
      );
    });
  };

  const transactGetItems = async (input: Json): Promise<Json> => {
    const gets = transactItemsOf(input, 'transactItems').map((item, index) => {
      const get = item.Get;
      const path = `transactItems.${index + 1}.member.get`;
      if (!isObject(get)) throw missingMember(path);
      if (typeof get.TableName !== 'string') throw missingMember(`${path}.tableName`);
      if (!isObject(get.Key)) throw missingMember(`${path}.key`);
      return { tableName: get.TableName, key: get.Key, get };
    });
    const identities: string[] = [];
    for (const { tableName, key } of gets) {
      identities.push(identify(tableName, await describeTable(tableName), key, false));
    }
    rejectDuplicates(identities);
    // Exclusive, so the reads form one snapshot that no transaction can straddle.
    return lock.run(true, async () => {
      const responses: Json[] = [];
      for (const { tableName, key, get } of gets) {
        const result = await client().send(
          new GetItemCommand({
            TableName: tableName,
            Key: toSdkItem(key),
            ConsistentRead: true,
            ProjectionExpression: optionalString(get.ProjectionExpression),
            ExpressionAttributeNames: stringMap(get.ExpressionAttributeNames),
          }),
        );
        responses.push(result.Item ? { Item: toWire(result.Item) } : {});
      }
      return { Responses: responses };
    });
  };

  const persistTtlSettings = (): Promise<void> => {
    const folder = options.path;
    if (!folder) return Promise.resolve();
    const snapshot = JSON.stringify({ tables: Object.fromEntries(ttlSettings) }, null, 2);
    // Chained so an older snapshot can never overwrite a newer one; rename keeps the file whole on a crash.
    ttlWrites = ttlWrites
      .catch(() => undefined)
      .then(async () => {
        await mkdir(folder, { recursive: true });
        const temporary = join(folder, `${TTL_FILE}.tmp`);
        await writeFile(temporary, snapshot);
        await rename(temporary, join(folder, TTL_FILE));
      });
    return ttlWrites;
  };

  /** The table's TTL setting, dropped when the table was deleted or recreated since it was made. */
  const currentTtl = async (tableName: string, table: TableInfo): Promise<TtlSetting | undefined> => {
    const setting = ttlSettings.get(tableName);
    if (!setting || setting.tableCreatedAt === table.createdAt) return setting;
    ttlSettings.delete(tableName);
    await persistTtlSettings();
    return undefined;
  };

  const updateTimeToLive = async (input: Json): Promise<Json> => {
    if (typeof input.TableName !== 'string') throw missingMember('tableName');
    const specification = input.TimeToLiveSpecification;
    if (!isObject(specification)) throw missingMember('timeToLiveSpecification');
    const { AttributeName: attributeName, Enabled: enabled } = specification;
    if (typeof attributeName !== 'string') throw missingMember('timeToLiveSpecification.attributeName');
    if (typeof enabled !== 'boolean') throw missingMember('timeToLiveSpecification.enabled');
    if (attributeName.length < 1 || attributeName.length > 255) {
      throw validationError('TimeToLiveSpecification.AttributeName must be 1 to 255 characters long');
    }
    const table = await describeTable(input.TableName, true);
    const current = await currentTtl(input.TableName, table);
    if (current && current.attributeName !== attributeName) {
      throw validationError(
        `TimeToLive is active on a different AttributeName: current AttributeName is ${current.attributeName}`,
      );
    }
    // Repeating the current state succeeds (AWS rejects it), so `ensureTables` stays idempotent across restarts.
    if (enabled) ttlSettings.set(input.TableName, { attributeName, tableCreatedAt: table.createdAt });
    else ttlSettings.delete(input.TableName);
    await persistTtlSettings();
    return { TimeToLiveSpecification: { AttributeName: attributeName, Enabled: enabled } };
  };

  const describeTimeToLive = async (input: Json): Promise<Json> => {
    if (typeof input.TableName !== 'string') throw missingMember('tableName');
    const setting = await currentTtl(input.TableName, await describeTable(input.TableName, true));
    return {
      TimeToLiveDescription: setting
        ? { TimeToLiveStatus: 'ENABLED', AttributeName: setting.attributeName }
        : { TimeToLiveStatus: 'DISABLED' },
    };
  };

  const handlers = new Map<string, (input: Json) => Promise<Json>>([
    [`${TARGET_PREFIX}TransactWriteItems`, transactWriteItems],
    [`${TARGET_PREFIX}TransactGetItems`, transactGetItems],
    [`${TARGET_PREFIX}UpdateTimeToLive`, updateTimeToLive],
    [`${TARGET_PREFIX}DescribeTimeToLive`, describeTimeToLive],
  ]);

  const handle = async (
    req: IncomingMessage,
    res: ServerResponse,
    handler: (input: Json) => Promise<Json>,
  ): Promise<void> => {
    try {
      const body = await readBody(req);
      let input: unknown;
      try {
        input = JSON.parse(body);
      } catch {
        throw new DynamoDbError('com.amazon.coral.service#SerializationException', 'Malformed JSON body');
      }
      if (!isObject(input)) {
        throw new DynamoDbError('com.amazon.coral.service#SerializationException', 'Expected a JSON object');
      }
      if (!isSigned(req)) {
        throw new DynamoDbError(
          'com.amazon.coral.service#MissingAuthenticationTokenException',
          'Request is missing Authentication Token',
        );
      }
      send(req, res, 200, await handler(input));
    } catch (error) {
      const failure = toDynamoDbError(error);
      send(req, res, failure.statusCode, failure.body());
    }
  };

  /** Serves one request by dynalite in this process, replaying its body (read to be inspected first). */
  const askDynalite = (req: IncomingMessage, body: string): Promise<DynaliteAnswer> =>
    new Promise((resolve) => {
      const replay = Object.assign(Readable.from([Buffer.from(body)]), {
        headers: req.headers,
        method: req.method,
        url: req.url,
      });
      const headers = new Map<string, HeaderValue>();
      // The members of a ServerResponse that dynalite uses.
      const response = {
        statusCode: 200,
        setHeader: (name: string, value: HeaderValue) => headers.set(name, value),
        end: (data?: string) => resolve({ statusCode: response.statusCode, headers, body: data ?? '' }),
      };
      dynaliteListener.call(
        server,
        replay as unknown as IncomingMessage,
        response as unknown as ServerResponse,
      );
    });

  /**
   * The condition failed while the lock was shared, so another write may have changed the item since.
   * The write is tried again with the lock held alone, when nothing else reaches dynalite (every outside
   * request and the TTL sweeper take the lock; internal requests come only from its holder), so a second
   * failure failed on exactly the item read next. A failed write changed nothing: trying it again is the
   * same request served a moment later, and whatever it answers then is the answer.
   */
  const answerWithOldItem = (
    req: IncomingMessage,
    body: string,
    input: Json,
    isPut: boolean,
  ): Promise<DynaliteAnswer> =>
    lock.run(true, async () => {
      const retry = await askDynalite(req, body);
      const failure = conditionFailureIn(retry);
      if (!failure) return retry;
      const tableName = String(input.TableName);
      const keySource = toSdkItem(isPut ? input.Item : input.Key) ?? {};
      const current = await currentItem(tableName, keySource, await describeTable(tableName));
      throw new DynamoDbError(
        CONDITION_FAILED,
        optionalString(failure.message) ?? 'The conditional request failed',
        400,
        current ? { Item: toWire(current) } : {},
      );
    });

  /** PutItem, UpdateItem and DeleteItem, served by dynalite, with the old item on a failed condition. */
  const writeItem = async (req: IncomingMessage, res: ServerResponse, target: string): Promise<void> => {
    try {
      const body = await readBody(req);
      const input = parseObject(body);
      // Checked only where dynalite would serve the write, so its refusals (malformed, unsigned) come first.
      const returnsOld =
        input !== undefined &&
        isSigned(req) &&
        returnsOldItem(input.ReturnValuesOnConditionCheckFailure, 'returnValuesOnConditionCheckFailure');
      const answer = await lock.run(false, () => askDynalite(req, body));
      if (!input || !returnsOld || !conditionFailureIn(answer)) {
        relay(res, answer);
        return;
      }
      relay(res, await answerWithOldItem(req, body, input, target === `${TARGET_PREFIX}PutItem`));
    } catch (error) {
      const failure = toDynamoDbError(error);
      send(req, res, failure.statusCode, failure.body());
    }
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Before dynalite, which would answer a page's preflight and request with `Access-Control-Allow-Origin: *`.
    if (refuseUnlessFromAwsClient(req, res, { signed: false })) return;
    const target = req.headers['x-amz-target'];
    const handler = req.method === 'POST' && typeof target === 'string' ? handlers.get(target) : undefined;
    if (handler) {
      void handle(req, res, handler);
      return;
    }
    // Transaction steps arrive here while the transaction holds the lock exclusively (so before the
    // single writes below, which would wait for that lock).
    if (isInternal(req)) {
      dynaliteListener.call(server, req, res);
      return;
    }
    if (req.method === 'POST' && typeof target === 'string' && SINGLE_WRITES.has(target)) {
      void writeItem(req, res, target);
      return;
    }
    let finished = false;
    let release: Release | undefined;
    const done = (): void => {
      finished = true;
      // The table's name is in the consumed body, so forget every cached schema; re-describing is cheap.
      if (target === `${TARGET_PREFIX}DeleteTable`) tables.clear();
      release?.();
    };
    res.once('finish', done);
    res.once('close', done);
    lock.acquire(false, (granted) => {
      // A client that gave up while queued leaves nothing to serve, and no 'close' would come to release.
      if (finished) return granted();
      release = granted;
      dynaliteListener.call(server, req, res);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  internal = createDynamoDbClient({
    endpoint,
    region: 'us-east-1',
    maxAttempts: 1,
    requestTimeoutMs: 10_000,
  });
  internal.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request;
      if (isObject(request) && isObject(request.headers)) request.headers[INTERNAL_HEADER] = internalToken;
      return next(args);
    },
    { step: 'build', name: 'bulwarkInternalMarker' },
  );

  let stopped = false;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;

  const sweepTable = async (tableName: string, attributeName: string, table: TableInfo): Promise<void> => {
    const now = Math.floor(Date.now() / 1000);
    const keyPlaceholders = table.keyNames.map((name, index) => [`#k${index}`, name] as const);
    const page = await lock.run(false, () =>
      client().send(
        new ScanCommand({
          TableName: tableName,
          Limit: SWEEP_SCAN_LIMIT,
          ExclusiveStartKey: sweepCursors.get(tableName),
          FilterExpression: '#ttl BETWEEN :oldest AND :now',
          ProjectionExpression: keyPlaceholders.map(([placeholder]) => placeholder).join(', '),
          ExpressionAttributeNames: { '#ttl': attributeName, ...Object.fromEntries(keyPlaceholders) },
          ExpressionAttributeValues: {
            ':oldest': { N: String(now - TTL_MAX_AGE_SECONDS) },
            ':now': { N: String(now) },
          },
        }),
      ),
    );
    if (page.LastEvaluatedKey) sweepCursors.set(tableName, page.LastEvaluatedKey);
    else sweepCursors.delete(tableName);
    for (const key of page.Items ?? []) {
      if (stopped) return;
      try {
        // Conditional, so an item whose TTL was pushed forward since the scan survives.
        await lock.run(false, () =>
          client().send(
            new DeleteItemCommand({
              TableName: tableName,
              Key: key,
              ConditionExpression: '#ttl <= :now',
              ExpressionAttributeNames: { '#ttl': attributeName },
              ExpressionAttributeValues: { ':now': { N: String(now) } },
            }),
          ),
        );
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
  };

  const sweep = async (): Promise<void> => {
    for (const tableName of [...ttlSettings.keys()]) {
      if (stopped) return;
      try {
        const table = await describeTable(tableName, true);
        const current = await currentTtl(tableName, table);
        if (current) await sweepTable(tableName, current.attributeName, table);
      } catch (error) {
        if (toDynamoDbError(error).type === dynamoType('ResourceNotFoundException')) {
          ttlSettings.delete(tableName);
          sweepCursors.delete(tableName);
          await persistTtlSettings();
        } else if (!stopped) {
          process.emitWarning(`TTL sweep of ${tableName} failed: ${toDynamoDbError(error).message}`);
        }
      }
    }
  };

  const scheduleSweep = (): void => {
    if (stopped) return;
    sweepTimer = setTimeout(() => {
      sweeping = sweep().finally(() => {
        sweeping = undefined;
        scheduleSweep();
      });
    }, options.ttlSweepIntervalMs ?? 5000);
    sweepTimer.unref();
  };
  scheduleSweep();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      clearTimeout(sweepTimer);
      await sweeping?.catch(() => undefined);
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
      internal?.destroy();
      await ttlWrites.catch(() => undefined);
    })();
    return stopping;
  };

  return { endpoint, port, stop };
}

async function loadTtlSettings(folder: string | undefined): Promise<Map<string, TtlSetting>> {
  if (!folder) return new Map();
  const file = join(folder, TTL_FILE);
  try {
    const saved: unknown = JSON.parse(await readFile(file, 'utf8'));
    const entries = isObject(saved) && isObject(saved.tables) ? Object.entries(saved.tables) : [];
    return new Map(
      entries.flatMap(([tableName, setting]) =>
        isObject(setting) &&
        typeof setting.attributeName === 'string' &&
        typeof setting.tableCreatedAt === 'number'
          ? [
              [
                tableName,
                { attributeName: setting.attributeName, tableCreatedAt: setting.tableCreatedAt },
              ] as const,
            ]
          : [],
      ),
    );
  } catch (error) {
    if (isObject(error) && error.code === 'ENOENT') return new Map();
    if (error instanceof SyntaxError) {
      // ensureTables sets every table's TTL again at each start, so the file can go.
      throw new LocalStartError(`${notJsonProblem(file, error)}; delete it`);
    }
    throw error;
  }
}
