// DynamoDB client factories: AWS defaults in Lambda, an explicit endpoint for the embedded local server.

import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export interface DynamoDbClientOptions {
  /** Endpoint URL, e.g. the embedded server's `http://127.0.0.1:PORT`. @default the AWS regional endpoint */
  readonly endpoint?: string;
  /** @default AWS_REGION from the Lambda environment */
  readonly region?: string;
  /** Upper bound on one HTTP request, so a store outage never hangs a Lambda. @default 2000 */
  readonly requestTimeoutMs?: number;
  /** @default 1000 */
  readonly connectionTimeoutMs?: number;
  /** SDK attempts including the first. @default 3 */
  readonly maxAttempts?: number;
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
  const isLocal = options.endpoint?.startsWith('http://') ?? false;
  return new DynamoDBClient({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    // The embedded server ignores the region, but the SDK refuses to sign without one.
    ...(options.region || isLocal ? { region: options.region ?? 'us-east-1' } : {}),
    ...(isLocal ? { credentials: localCredentials } : {}),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: new NodeHttpHandler({
      requestTimeout: options.requestTimeoutMs ?? 2000,
      // Without this the handler only logs a warning when requestTimeout passes and keeps waiting.
      throwOnRequestTimeout: true,
      connectionTimeout: options.connectionTimeoutMs ?? 1000,
      ...(isLocal
        ? { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) }
        : { httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }) }),
    }),
  });
}

/** Wraps a client for plain JavaScript values; `undefined` attributes are dropped, never an error. */
export function createDocumentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
}
