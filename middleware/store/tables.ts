// The toolkit and app table schemas, defined once and read by the CDK stack and local table creation.
import { shownValue } from '../options.js';

export interface KeyAttribute {
  readonly name: string;
  readonly type: 'S' | 'N' | 'B';
}

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey: KeyAttribute;
  /**
   * What the index copies of each item: every attribute, or only the table's and the index's keys (an
   * index read only to find items, which are then read by key, stores and writes less).
   * @default 'ALL'
   */
  readonly projection?: 'ALL' | 'KEYS_ONLY' | undefined;
}

export interface TableDefinition {
  /** Short stable id, used for construct ids and default local table names. */
  readonly id: 'toolkit' | 'app';
  readonly partitionKey: KeyAttribute;
  readonly sortKey: KeyAttribute;
  /** Epoch-seconds attribute the table's TTL deletes by; readers must still treat past values as gone. */
  readonly timeToLiveAttribute: string;
  readonly globalSecondaryIndexes: readonly IndexDefinition[];
}

const stringKey = (name: string): KeyAttribute => ({ name, type: 'S' });

/**
 * All toolkit state: rate-limit counters (`RL#`), circuit state (`CB#`), nonces (`NONCE#`),
 * API keys (`APIKEY#`), webhooks (`WH#`) and idempotency records (`IDEM#<function>#<key>`, one partition
 * key each: see ToolkitIdempotencyStore).
 * `gsi1` lists items by owner (API keys and webhook endpoints of one principal).
 */
export const toolkitTable: TableDefinition = {
  id: 'toolkit',
  partitionKey: stringKey('pk'),
  sortKey: stringKey('sk'),
  timeToLiveAttribute: 'expiresAt',
  globalSecondaryIndexes: [
    { indexName: 'gsi1', partitionKey: stringKey('gsi1pk'), sortKey: stringKey('gsi1sk') },
  ],
};

/**
 * The sample system's data (users, bookings).
 * `gsi1` lists one entity type in order; `gsi2` lists a user's bookings; `gsi3` (sparse, keys only) lists
 * the bookings and users with a webhook event not yet published, oldest first, for the sweep that publishes them.
 */
export const appTable: TableDefinition = {
  id: 'app',
  partitionKey: stringKey('pk'),
  sortKey: stringKey('sk'),
  timeToLiveAttribute: 'expiresAt',
  globalSecondaryIndexes: [
    { indexName: 'gsi1', partitionKey: stringKey('gsi1pk'), sortKey: stringKey('gsi1sk') },
    { indexName: 'gsi2', partitionKey: stringKey('gsi2pk'), sortKey: stringKey('gsi2sk') },
    {
      indexName: 'gsi3',
      partitionKey: stringKey('gsi3pk'),
      sortKey: stringKey('gsi3sk'),
      projection: 'KEYS_ONLY',
    },
  ],
};

/** Every table the toolkit and the sample define, for code that builds or creates them all. */
export const tableDefinitions: readonly TableDefinition[] = [toolkitTable, appTable];

/** DynamoDB's rule for a table name: 3 to 255 of letters, digits, `_`, `.` and `-`. */
const tableNamePattern = /^[A-Za-z0-9_.-]{3,255}$/;

/**
 * Whether `value` can name a DynamoDB table. Every toolkit constructor that takes a `tableName` checks it
 * once (through {@link checkTableName}): a blank or otherwise invalid name would pass a presence check and
 * fail every request with a ValidationException instead.
 */
export function isTableName(value: unknown): value is string {
  return typeof value === 'string' && tableNamePattern.test(value);
}

/**
 * Adds a problem to `problems` unless `value` is a DynamoDB table name; returns whether it is.
 *
 * @example
 * const problems: string[] = [];
 * checkTableName(problems, options.tableName);
 * assertNoProblems('DynamoDbCounterStore', problems);
 */
export function checkTableName(problems: string[], value: unknown): value is string {
  if (isTableName(value)) return true;
  problems.push(
    `tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got ${shownValue(value)})`,
  );
  return false;
}

/** Whole seconds since the epoch, the unit DynamoDB TTL expects. */
export function toEpochSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}

/**
 * TTL deletion can lag expiry by up to 48 hours, so an item whose `expiresAt` has passed
 * must read as absent even though DynamoDB still returns it.
 */
export function isExpired(item: { expiresAt?: unknown } | undefined, nowMs: number): boolean {
  return typeof item?.expiresAt === 'number' && item.expiresAt * 1000 <= nowMs;
}
