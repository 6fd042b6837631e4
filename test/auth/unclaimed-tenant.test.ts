// authenticate({ unclaimedTenant }): a credential naming no tenant is that tenant's, for every key built after it.
import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, inject, it } from 'vitest';
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import type { AuthenticatorOptions } from '../../middleware/auth/authenticator.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import { authenticate } from '../../middleware/auth/middy.js';
import {
  DynamoDbNonceStore,
  ServiceRequestVerifier,
  serviceAuthHeaders,
} from '../../middleware/auth/service-auth.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { testTableNames } from '../helpers/tables.js';
import { bearer, httpEvent, lambdaContext, rsaKey, signToken, userClaims } from './helpers.js';

const issuer = 'https://issuer.example';
const key = rsaKey('k1');
const verifier = new JwtVerifier({
  issuers: [{ issuer, tokenUse: 'access', clientId: 'web-client', jwks: { keys: [key.jwk] }, jwksUri: null }],
});
const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documentClient = createDocumentClient(dynamoDb);
const apiKeys = new ApiKeyStore({ client: documentClient, tableName: testTableNames.toolkit });
const secret = 's'.repeat(40);
const services = new ServiceRequestVerifier({
  services: { bookings: { current: secret } },
  nonceStore: new DynamoDbNonceStore({ client: documentClient, tableName: testTableNames.toolkit }),
});

/** A user's token, naming `tenant` when one is given. */
const tokenOf = (sub: string, tenant?: string) =>
  signToken(
    key,
    userClaims(issuer, { sub, ...(tenant === undefined ? {} : { 'custom:tenant_id': tenant }) }),
  );

/** A handler answering with the principal's id and tenant, behind authenticate and what else is given. */
function handlerOf(
  options: AuthenticatorOptions,
  ...after: Parameters<ReturnType<typeof middy<APIGatewayProxyEventV2>>['use']>[0][]
) {
  let pipeline = middy<APIGatewayProxyEventV2>()
    .use(httpErrorHandler({ logger: { error: () => undefined } }))
    .use(authenticate(options));
  for (const middleware of after) pipeline = pipeline.use(middleware);
  const handler = lambdaHandler(
    pipeline.handler(async (_event, context) => {
      const { principal } = context as { principal?: { id: string; tenantId?: string } };
      return json(200, { id: principal?.id, tenantId: principal?.tenantId ?? null, at: randomUUID() });
    }),
  );
  return async (event: APIGatewayProxyEventV2) => {
    const result = await handler(event, lambdaContext());
    return { ...result, json: JSON.parse(result.body ?? 'null') as { tenantId: string | null } };
  };
}

describe("authenticate's unclaimedTenant", () => {
  it('gives a principal whose credential names no tenant that tenant, whatever the method, and keeps a named one', async () => {
    const events: SecurityEvent[] = [];
    const call = handlerOf({
      jwt: verifier,
      apiKeys,
      service: services,
      unclaimedTenant: 'acme',
      onEvent: (event) => events.push(event),
    });
    expect((await call(httpEvent({ headers: bearer(tokenOf('alice')) }))).json.tenantId).toBe('acme');
    expect((await call(httpEvent({ headers: bearer(tokenOf('alice', 'globex')) }))).json.tenantId).toBe(
      'globex',
    );
    const unscopedKey = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/read']);
    const tenantKey = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/read'], { tenantId: 't-k' });
    events.length = 0;
    expect((await call(httpEvent({ headers: { 'x-api-key': unscopedKey.key } }))).json.tenantId).toBe('acme');
    // The events carry the tenant the handler sees.
    expect(events.map((event) => [event.type, event.principal?.tenantId])).toEqual([
      ['apiKey.used', 'acme'],
      ['auth.success', 'acme'],
    ]);
    expect((await call(httpEvent({ headers: { 'x-api-key': tenantKey.key } }))).json.tenantId).toBe('t-k');
    const signed = serviceAuthHeaders({ serviceId: 'bookings', secret }, { method: 'GET', url: '/things' });
    expect((await call(httpEvent({ headers: { ...signed } }))).json.tenantId).toBe('acme');
    // The verifier's cached principal, shared by every later request with the token, is left as it was.
    expect((await verifier.verify(tokenOf('alice'))).principal.tenantId).toBeUndefined();
    // Without the option, no tenant.
    const plain = handlerOf({ jwt: verifier });
    expect((await plain(httpEvent({ headers: bearer(tokenOf('alice')) }))).json.tenantId).toBeNull();
  });

  it("counts a caller without the claim in the tenant's rateLimit budget, not per address", async () => {
    const call = handlerOf(
      { jwt: verifier, unclaimedTenant: 'acme' },
      rateLimit({
        policy: { name: `tenant-${randomUUID().slice(0, 8)}`, limit: 1, windowSec: 60 },
        keyBy: 'tenant',
        store: new MemoryCounterStore(),
      }),
    );
    const from = (token: string, sourceIp: string) => {
      const event = httpEvent({ headers: bearer(token) });
      event.requestContext.http.sourceIp = sourceIp;
      return call(event);
    };
    expect((await from(tokenOf('alice'), '198.51.100.1')).statusCode).toBe(200);
    expect((await from(tokenOf('bob', 'acme'), '198.51.100.2')).statusCode).toBe(429);
    expect((await from(tokenOf('carol'), '198.51.100.3')).statusCode).toBe(429);
    expect((await from(tokenOf('dave', 'globex'), '198.51.100.4')).statusCode).toBe(200);
  });

  it('gives a caller with and without the claim one user budget and one idempotency scope', async () => {
    const sub = `alice-${randomUUID()}`;
    const limited = handlerOf(
      { jwt: verifier, unclaimedTenant: 'acme' },
      rateLimit({
        policy: { name: `user-${randomUUID().slice(0, 8)}`, limit: 1, windowSec: 60 },
        keyBy: 'user',
        store: new MemoryCounterStore(),
      }),
    );
    expect((await limited(httpEvent({ headers: bearer(tokenOf(sub)) }))).statusCode).toBe(200);
    expect((await limited(httpEvent({ headers: bearer(tokenOf(sub, 'acme')) }))).statusCode).toBe(429);

    const idempotent = handlerOf(
      { jwt: verifier, unclaimedTenant: 'acme' },
      idempotency({
        persistenceStore: new ToolkitIdempotencyStore({
          name: `unclaimed-${randomUUID().slice(0, 8)}`,
          tableName: testTableNames.toolkit,
          client: dynamoDb,
        }),
        config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
      }),
    );
    const post = (token: string) =>
      idempotent(
        httpEvent({ method: 'POST', headers: { ...bearer(token), 'idempotency-key': 'k-1' }, body: '{}' }),
      );
    const first = await post(tokenOf(sub));
    const retry = await post(tokenOf(sub, 'acme'));
    expect(retry.headers?.['Idempotent-Replayed']).toBe('true');
    expect(retry.body).toBe(first.body);
  });

  it('refuses a tenant no claim could carry, at construction', () => {
    const problem = (shown: string) =>
      `unclaimedTenant must be a tenant id a claim can carry: non-empty, at most 256 characters, well-formed text without control characters (got ${shown})`;
    for (const [unclaimedTenant, shown] of [
      ['', '""'],
      [42, '42'],
      [['acme'], 'an array of 1'],
      ['a\nb', '"a\\nb"'],
      [null, 'null'],
    ] as const) {
      expect(() => authenticate({ jwt: verifier, unclaimedTenant: unclaimedTenant as never })).toThrow(
        new InvalidOptionsError('authenticate', [problem(shown)]),
      );
    }
  });
});
