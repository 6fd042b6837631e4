// DynamoDB client factories: AWS defaults in Lambda, an explicit endpoint for the embedded local server.

import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { nameAwsDependency } from '../dependency-failure.js';
import { ConflictError, InvalidOptionsError } from '../errors.js';
import { shownValue } from '../options.js';
import { boundedRequestHandler, clientRequestLimits } from '../request-handler.js';

export interface DynamoDbClientOptions {
  /** Endpoint URL, e.g. the embedded server's `http://127.0.0.1:PORT`. @default the AWS regional endpoint */
  readonly endpoint?: string | undefined;
  /** @default AWS_REGION from the Lambda environment */
  readonly region?: string | undefined;
  /** Upper bound on one HTTP request, so a store outage never hangs a Lambda. @default 2000 */
  readonly requestTimeoutMs?: number | undefined;
  /** @default 1000 */
  readonly connectionTimeoutMs?: number | undefined;
  /** SDK attempts including the first. @default 3 */
  readonly maxAttempts?: number | undefined;
  /**
   * Retries of a transaction cancelled only because another transaction was writing one of its items
   * (`TransactionConflict`), which AWS asks callers to retry. When they run out: a 409 ConflictError.
   * An integer 0..{@link maxTransactionConflictRetries}: the backoff doubles with each retry.
   * @default 3
   */
  readonly transactionConflictRetries?: number | undefined;
}

/** A cancellation caused by contention alone: no condition failed, so the same request may succeed now. */
export function isTransactionConflict(error: unknown): boolean {
  if (!(error instanceof TransactionCanceledException)) return false;
  const codes = (error.CancellationReasons ?? []).map((reason) => reason.Code);
  return (
    codes.includes('TransactionConflict') &&
    codes.every((code) => code === 'None' || code === 'TransactionConflict')
  );
}

/** Full jitter over 20 ms × 2^retry: two contenders rarely collide twice. */
const conflictBackoffMs = (retry: number) => Math.random() * 20 * 2 ** retry;

/** The last backoff of 10 retries is up to 10 s; past that, a conflict would outlast most Lambda timeouts. */
const maxTransactionConflictRetries = 10;

function retryTransactionConflicts(client: DynamoDBClient, retries: number): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!/^TransactWrite(Items)?Command$/.test(String(context.commandName))) return next(args);
      for (let retry = 0; ; retry += 1) {
        try {
          return await next(args);
        } catch (error) {
          if (!isTransactionConflict(error)) throw error;
          if (retry >= retries) {
            throw new ConflictError('Another request changed the same data at the same moment; retry', {
              cause: error,
            });
          }
          await new Promise((resolve) => setTimeout(resolve, conflictBackoffMs(retry)));
        }
      }
    },
    // Outside serialisation, signing and the SDK's own retries: each attempt is a whole new request.
    { step: 'initialize', name: 'bulwarkRetryTransactionConflicts' },
  );
}

/** Credentials the embedded server accepts; it checks that requests are signed, not by whom. */
const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/**
 * Creates a DynamoDB client with bounded timeouts and keep-alive connections.
 * Create it once, at module scope, and share it across invocations.
 *
 * @example
 * const client = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });
 */
export function createDynamoDbClient(options: DynamoDbClientOptions = {}): DynamoDBClient {
  const conflictRetries = options.transactionConflictRetries ?? 3;
  const problems: string[] = [];
  if (
    !(
      Number.isInteger(conflictRetries) &&
      conflictRetries >= 0 &&
      conflictRetries <= maxTransactionConflictRetries
    )
  ) {
    problems.push(
      `transactionConflictRetries must be an integer 0..${maxTransactionConflictRetries} (got ${shownValue(conflictRetries)})`,
    );
  }
  const limits = clientRequestLimits('createDynamoDbClient', options, problems);
  const isLocal = options.endpoint?.startsWith('http://') ?? false;
  const client = new DynamoDBClient({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    // The embedded server ignores the region, but the SDK refuses to sign without one.
    ...(options.region || isLocal ? { region: options.region ?? 'us-east-1' } : {}),
    ...(isLocal ? { credentials: localCredentials } : {}),
    maxAttempts: limits.maxAttempts,
    requestHandler: boundedRequestHandler(
      limits,
      isLocal
        ? { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) }
        : { httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }) },
    ),
  });
  retryTransactionConflicts(client, conflictRetries);
  nameAwsDependency(client);
  return client;
}

/** Wraps a client for plain JavaScript values; `undefined` attributes are dropped, never an error. */
export function createDocumentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  // The SDK would read client.config first and fail with a TypeError that names neither.
  if (typeof client?.send !== 'function' || typeof client.config !== 'object' || client.config === null) {
    throw new InvalidOptionsError('createDocumentClient', [
      `client must be a DynamoDBClient (got ${shownValue(client)})`,
    ]);
  }
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
}
