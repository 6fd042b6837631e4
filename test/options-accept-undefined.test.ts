// Also typechecked by tsconfig.toolkit.json, under exactOptionalPropertyTypes: there an option given as
// `undefined` compiles only where its type says `| undefined`, as the README promises it takes the default.
import type { Agent } from 'node:https';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import {
  AuditLogger,
  boundedRequestHandler,
  CircuitBreaker,
  createDynamoDbClient,
  guardedFetch,
  httpErrorHandler,
  MemoryCircuitStateStore,
  MemoryCounterStore,
  principalFromClaims,
  rateLimit,
} from '../middleware/index.js';

const unset: string | undefined = undefined;
const unsetAgent: Agent | undefined = undefined;

describe('an option given as undefined takes its default', () => {
  it('creates a DynamoDB client from an unset endpoint variable, with no endpoint', async () => {
    const client = createDynamoDbClient({ endpoint: unset, region: 'eu-west-1', maxAttempts: undefined });
    expect(client.config.endpoint).toBeUndefined();
    expect(await client.config.maxAttempts()).toBe(3);
    client.destroy();
  });

  it('builds rateLimit, httpErrorHandler and AuditLogger with options given as undefined', () => {
    expect(() =>
      rateLimit({
        policy: { name: 'undefined-options', limit: 1, windowSec: 60 },
        store: new MemoryCounterStore(),
        leaseMs: undefined,
        onEvent: undefined,
      }),
    ).not.toThrow();
    expect(() => httpErrorHandler({ logger: undefined })).not.toThrow();
    expect(() => new AuditLogger({ logger: undefined, sink: undefined, redaction: undefined })).not.toThrow();
  });

  it('reads the default claims for a mapping given as undefined', () => {
    const principal = principalFromClaims(
      { sub: 'user-1', token_use: 'access', 'cognito:groups': ['admin'], 'custom:tenant_id': 't-1' },
      { rolesClaim: undefined, tenantClaim: unset },
    );
    expect(principal?.roles).toEqual(['admin']);
    expect(principal?.tenantId).toBe('t-1');
  });

  it('takes the default response limit and timeout for guardedFetch options given as undefined', async () => {
    const breaker = new CircuitBreaker<Response>({
      name: 'undefined-options',
      store: new MemoryCircuitStateStore(),
      timeoutMs: 2000,
      onEvent: undefined,
    });
    const response = await guardedFetch(
      breaker,
      'https://dep.example/x',
      { body: undefined },
      { fetch: async () => new Response('ok'), maxResponseBytes: undefined, timeoutMs: undefined },
    );
    expect(await response.text()).toBe('ok');
  });

  it('sends through boundedRequestHandler on the SDK default keep-alive agent when its agents are given as undefined', async () => {
    const requestHandler = boundedRequestHandler(
      { requestTimeoutMs: 2000, connectionTimeoutMs: 1000 },
      { httpAgent: undefined, httpsAgent: unsetAgent },
    );
    // Set by test/setup.ts; destructured, as this file is typechecked under noPropertyAccessFromIndexSignature.
    const { DYNAMODB_ENDPOINT: endpoint = '' } = process.env;
    const client = new DynamoDBClient({ endpoint, requestHandler });
    try {
      expect(await client.send(new ListTablesCommand({ Limit: 1 }))).toHaveProperty('TableNames');
      expect(requestHandler.httpHandlerConfigs().httpAgent).toMatchObject({
        keepAlive: true,
        maxSockets: 50,
      });
    } finally {
      client.destroy();
    }
  });
});
