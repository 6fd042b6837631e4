// Powertools idempotency records in the toolkit table, each record under a partition key of its own.
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { assertNoProblems } from '../errors.js';
import { shownValue } from '../options.js';
import { checkTableName, toolkitTable } from './tables.js';

export interface ToolkitIdempotencyStoreOptions {
  /**
   * Whose records these are, a function or an operation: its partition keys start `IDEM#<name>#`.
   * 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit.
   */
  readonly name: string;
  /** The toolkit table (`toolkitTable`'s schema: `pk`, `sk`, TTL on `expiresAt`). */
  readonly tableName: string;
  readonly client: DynamoDBClient;
}

// No `#`, so the name ends where the partition key says it does.
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkedOptions(options: ToolkitIdempotencyStoreOptions): ToolkitIdempotencyStoreOptions {
  const problems: string[] = [];
  if (typeof options?.name !== 'string' || !namePattern.test(options.name)) {
    problems.push(
      `name must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit (got ${shownValue(options?.name)})`,
    );
  }
  checkTableName(problems, options?.tableName);
  if (typeof options?.client?.send !== 'function') problems.push('client must be a DynamoDBClient');
  assertNoProblems('ToolkitIdempotencyStore', problems);
  return options;
}

/**
 * Powertools' DynamoDB persistence layer on the toolkit table, each record under a partition key of its
 * own: pk `IDEM#<name>#<Powertools' idempotency key>`, sk that key, expiring through `expiresAt`.
 * Powertools' `staticPkValue` would put every record of a function under one partition key: all its
 * idempotency writes (two a call: the record is put, then updated) would go to the partition holding
 * that key, which DynamoDB serves at up to 1,000 write units a second. Give each function, and each
 * idempotency config, a store of its own: Powertools configures a persistence layer once and ignores a
 * later, different config.
 *
 * @example
 * const persistenceStore = new ToolkitIdempotencyStore({ name: 'orders', tableName, client });
 */
export class ToolkitIdempotencyStore extends DynamoDBPersistenceLayer {
  readonly #partitionKeyPrefix: string;

  constructor(options: ToolkitIdempotencyStoreOptions) {
    const { name, tableName, client } = checkedOptions(options);
    super({
      tableName,
      awsSdkV3Client: client,
      // Powertools reads a stored record's idempotency key back from `keyAttr` (and its local cache
      // files the record under it): the sort key holds the key as Powertools made it. Every key it
      // writes, reads, updates or deletes comes from getKey below.
      keyAttr: toolkitTable.sortKey.name,
      expiryAttr: toolkitTable.timeToLiveAttribute,
    });
    this.#partitionKeyPrefix = `IDEM#${name}#`;
  }

  protected override getKey(idempotencyKey: string): Record<string, AttributeValue> {
    return {
      [toolkitTable.partitionKey.name]: { S: `${this.#partitionKeyPrefix}${idempotencyKey}` },
      [toolkitTable.sortKey.name]: { S: idempotencyKey },
    };
  }
}
