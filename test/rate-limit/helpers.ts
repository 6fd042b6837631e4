// Shared pieces of the rate-limit tests: a request-counting client, a frozen clock, unique policy names.
import { randomUUID } from 'node:crypto';
import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { expect, inject, vi } from 'vitest';
import { createDynamoDbClient, type DynamoDbClientOptions } from '../../middleware/store/client.js';
import { testTableNames } from '../helpers/tables.js';

export const tableName = testTableNames.toolkit;

export interface CountingClient {
  readonly client: DynamoDBClient;
  /** HTTP requests sent (every attempt), by operation. */
  readonly requests: Map<string, number>;
  total(): number;
}

/** A client of the suite's embedded DynamoDB (or `endpoint`) that counts every request it sends. */
export function countingClient(options: DynamoDbClientOptions = {}): CountingClient {
  const client = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint'), ...options });
  const requests = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = String(context.commandName).replace(/Command$/, '');
      requests.set(operation, (requests.get(operation) ?? 0) + 1);
      return next(args);
    },
    // The deserialize step runs once per HTTP attempt, inside the retry loop.
    { step: 'deserialize', name: 'countRequests' },
  );
  return { client, requests, total: () => [...requests.values()].reduce((sum, count) => sum + count, 0) };
}

/**
 * Freezes `Date` (timers keep running) at `at`: by default a day ahead of the real clock, because the
 * embedded DynamoDB's TTL sweeper runs in its own process on the real clock. A counter written on a clock
 * frozen at the real now expires for the sweeper one window later (a second, for a 1 s policy); a run that
 * a busy machine slows past that sees the sweeper delete the live counter and the key start over.
 */
export function freezeClock(at = Date.now() + 24 * 3600 * 1000): number {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(at);
  return at;
}

/** A policy name no other test uses, so tests sharing the table never share counters. */
export function uniquePolicyName(label = 'test'): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** Every item under a key prefix, read straight from the table. */
export async function itemsWithPrefix(
  client: DynamoDBClient,
  prefix: string,
): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({
        TableName: tableName,
        ConsistentRead: true,
        FilterExpression: 'begins_with(pk, :prefix)',
        ExpressionAttributeValues: { ':prefix': { S: prefix } },
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/**
 * A 127.0.0.1 port nothing listens on, so connections to it are refused at once: a privileged port
 * no test server takes (they all listen on port 0, and a port freed by one could be handed to another).
 */
export const refusedPort = 1;

/** One admission as a property test records it: when, and how many units. */
export interface Admission {
  readonly atUs: number;
  readonly cost: number;
}

/**
 * The documented bound: any interval of length t admits at most limit + ⌊(t + extraUs) / T⌋ units
 * (`extraUs`: the lease lifetime when leases are on).
 */
export function expectWithinBound(
  admissions: readonly Admission[],
  limit: number,
  intervalUs: number,
  extraUs = 0,
): void {
  for (let first = 0; first < admissions.length; first += 1) {
    let units = 0;
    for (let last = first; last < admissions.length; last += 1) {
      units += admissions[last]?.cost ?? 0;
      const spanUs = (admissions[last]?.atUs ?? 0) - (admissions[first]?.atUs ?? 0);
      expect(units).toBeLessThanOrEqual(limit + Math.floor((spanUs + extraUs) / intervalUs));
    }
  }
}
