// Several trusted issuers: an issuer bound to tenants speaks only for them (JwtIssuerOptions.tenants).
import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, inject, it } from 'vitest';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { type JwtIssuerOptions, JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import { authenticate, requireTenant } from '../../middleware/auth/middy.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { testTableNames } from '../helpers/tables.js';
import { bearer, httpEvent, lambdaContext, reasonOf } from './helpers.js';

const idpA = new DevIssuer({ issuer: 'https://idp-tenant-a.example', clientId: 'client-a' });
const idpB = new DevIssuer({ issuer: 'https://idp-tenant-b.example', clientId: 'client-b' });

function issuerOf(idp: DevIssuer, tenants?: readonly string[]): JwtIssuerOptions {
  return {
    issuer: idp.issuer,
    tokenUse: 'access',
    clientId: idp.clientId,
    jwks: idp.jwks(),
    jwksUri: null,
    ...(tenants === undefined ? {} : { tenants }),
  };
}

const bound = new JwtVerifier({ issuers: [issuerOf(idpA, ['tenant-a']), issuerOf(idpB, ['tenant-b'])] });
const unbound = new JwtVerifier({ issuers: [issuerOf(idpA), issuerOf(idpB)] });

describe('an issuer bound to tenants', () => {
  it("accepts its own tenants' tokens, and refuses one naming another issuer's tenant or none", async () => {
    const own = await bound.verify(await idpA.mint({ sub: 'alice', tenant: 'tenant-a' }));
    expect(own.principal).toMatchObject({ id: 'alice', tenantId: 'tenant-a' });
    await expect(bound.verify(await idpB.mint({ sub: 'bob', tenant: 'tenant-b' }))).resolves.toBeDefined();
    expect(await reasonOf(bound.verify(await idpB.mint({ sub: 'alice', tenant: 'tenant-a' })))).toBe(
      'wrong_tenant',
    );
    expect(await reasonOf(bound.verify(await idpB.mint({ sub: 'alice' })))).toBe('missing_claim');
  });

  it("applies the binding to an API Gateway authorizer's claims too", () => {
    const claims = (tenant: string) => ({
      iss: idpB.issuer,
      sub: 'alice',
      token_use: 'access',
      client_id: idpB.clientId,
      exp: String(Math.floor(Date.now() / 1000) + 60),
      'custom:tenant_id': tenant,
    });
    expect(bound.verifyAuthorizerClaims(claims('tenant-b')).principal.tenantId).toBe('tenant-b');
    expect(() => bound.verifyAuthorizerClaims(claims('tenant-a'))).toThrow(
      expect.objectContaining({ reason: 'wrong_tenant' }),
    );
  });

  it('reads the tenant from the configured tenantClaim', async () => {
    const verifier = new JwtVerifier({ issuers: [issuerOf(idpB, ['tenant-b'])], tenantClaim: 'org' });
    const token = (org: string) => idpB.mint({ sub: 'alice', extraClaims: { org } });
    expect((await verifier.verify(await token('tenant-b'))).principal.tenantId).toBe('tenant-b');
    expect(await reasonOf(verifier.verify(await token('tenant-a')))).toBe('wrong_tenant');
  });

  it('without bindings, lets any trusted issuer name any tenant (the documented default)', async () => {
    const fromB = await unbound.verify(await idpB.mint({ sub: 'alice', tenant: 'tenant-a' }));
    expect(fromB.principal).toMatchObject({ id: 'alice', tenantId: 'tenant-a' });
    expect(fromB.claims.iss).toBe(idpB.issuer);
  });

  it("keeps another issuer's token out of a tenant's route: 401 before its idempotent answer could be replayed", async () => {
    const events: SecurityEvent[] = [];
    const persistenceStore = new ToolkitIdempotencyStore({
      name: `issuer-tenants-${randomUUID().slice(0, 8)}`,
      tableName: testTableNames.toolkit,
      client: createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }),
    });
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger: { error: () => undefined } }))
        .use(authenticate({ jwt: bound, onEvent: (event) => events.push(event) }))
        .use(requireTenant(['tenant-a']))
        .use(
          idempotency({
            persistenceStore,
            config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
          }),
        )
        .handler(async () => json(201, { secret: `whsec_${randomUUID()}` })),
    );
    const post = (token: string) =>
      handler(
        httpEvent({
          method: 'POST',
          headers: { ...bearer(token), 'idempotency-key': 'k-1' },
          body: '{}',
        }),
        lambdaContext(),
      );
    const first = await post(await idpA.mint({ sub: 'alice', tenant: 'tenant-a' }));
    expect(first.statusCode).toBe(201);
    const forged = await post(await idpB.mint({ sub: 'alice', tenant: 'tenant-a' }));
    expect(forged.statusCode).toBe(401);
    expect(forged.headers?.['Content-Type']).toBe('application/problem+json');
    expect(forged.headers?.['WWW-Authenticate']).toBe(
      'Bearer realm="bulwark", error="invalid_token", error_description="The token issuer may not speak for the token tenant"',
    );
    expect(JSON.parse(forged.body as string)).toMatchObject({ code: 'INVALID_TOKEN' });
    expect(forged.body).not.toContain('whsec_');
    expect(events.map((event) => [event.type, event.reason])).toEqual([
      ['auth.success', undefined],
      ['auth.failure', 'wrong_tenant'],
    ]);
    // Its signature checked out: the line names the issuer that overstepped, and for whom.
    expect(events[1]?.metadata).toMatchObject({
      issuer: idpB.issuer,
      subject: 'alice',
      tenantId: 'tenant-a',
    });
  });
});

describe('the tenants option', () => {
  it('refuses an empty list, a null, a bare string and tenant ids no claim can carry', () => {
    const build = (tenants: unknown) =>
      new JwtVerifier({ issuers: [{ ...issuerOf(idpA), tenants: tenants as never }] });
    const field = `${idpA.issuer}: tenants`;
    const entries = `${field} entries must be tenant ids a claim can carry: non-empty, at most 256 characters, well-formed text without control characters`;
    expect(() => build([])).toThrow(new InvalidOptionsError('JwtVerifier', [`${field} must not be empty`]));
    expect(() => build(null)).toThrow(
      new InvalidOptionsError('JwtVerifier', [`${field} must be an array of tenant ids (got null)`]),
    );
    expect(() => build('tenant-a')).toThrow(
      new InvalidOptionsError('JwtVerifier', [`${field} must be an array of tenant ids (got "tenant-a")`]),
    );
    expect(() => build(['tenant-a', '', 7, 'x'.repeat(257), 'a\nb', '\ud800'])).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        `${entries} (got "")`,
        `${entries} (got 7)`,
        `${entries} (got "${'x'.repeat(80)}…")`,
        `${entries} (got "a\\nb")`,
        `${entries} (got "\\ud800")`,
      ]),
    );
  });
});
