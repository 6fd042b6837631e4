import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuthRequirement } from '../../functions/routes.js';
import { routeAuth } from '../../functions/shared/route-auth.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import {
  bearer,
  httpEvent,
  lambdaContext,
  m2mClaims,
  nowSec,
  rsaKey,
  signToken,
  userClaims,
} from './helpers.js';

const issuer = 'https://issuer.route-auth.test';
const key = rsaKey('route-auth');

beforeAll(() => {
  // routeAuth reads the function environment on first use: trust this issuer's key, any client.
  process.env.AUTH_ISSUER = issuer;
  process.env.AUTH_JWKS = JSON.stringify({ keys: [key.jwk] });
  process.env.AUTH_CLIENT_IDS = '*';
});

const person = (roles: string[], claims: Record<string, unknown> = {}) =>
  signToken(key, userClaims(issuer, { 'cognito:groups': roles, ...claims }));
const machine = (scope: string) => signToken(key, m2mClaims(issuer, scope));

/** The status a route with `requirement` answers a bearer token with. */
async function statusFor(requirement: AuthRequirement, token: string): Promise<number | undefined> {
  const finished = lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(httpErrorHandler({ logger: { error: vi.fn() } }))
      .use(routeAuth(requirement))
      .handler(async () => json(200, {})),
  );
  return (await finished(httpEvent({ headers: bearer(token) }), lambdaContext())).statusCode;
}

describe('routeAuth: roles and scopes from the route table', () => {
  it('holds every caller to the roles on a route that names no scopes: a machine has none', async () => {
    const adminOnly: AuthRequirement = { kind: 'principal', roles: ['admin'] };
    expect(await statusFor(adminOnly, person(['admin']))).toBe(200);
    expect(await statusFor(adminOnly, person([]))).toBe(403);
    expect(await statusFor(adminOnly, machine('users/read bookings/write'))).toBe(403);
  });

  it('holds people to the roles and machines to the scopes on a route that names both', async () => {
    const both: AuthRequirement = { kind: 'principal', roles: ['admin'], scopes: ['users/read'] };
    expect(await statusFor(both, person(['admin']))).toBe(200);
    expect(await statusFor(both, person([]))).toBe(403);
    expect(await statusFor(both, machine('users/read'))).toBe(200);
    expect(await statusFor(both, machine('bookings/read'))).toBe(403);
  });
});

describe('routeAuth: the one tenant the sample serves', () => {
  const adminOnly: AuthRequirement = { kind: 'principal', roles: ['admin'], humanOnly: true };

  it('admits a token of the default tenant or of none, and refuses another tenant with 403', async () => {
    expect(await statusFor(adminOnly, person(['admin']))).toBe(200);
    expect(await statusFor(adminOnly, person(['admin'], { 'custom:tenant_id': 'default' }))).toBe(200);
    expect(await statusFor(adminOnly, person(['admin'], { 'custom:tenant_id': 'other' }))).toBe(403);
  });

  it('refuses with 401 a tenant claim that is no string, rather than reading it as no tenant', async () => {
    for (const tenant of [['other'], 42, { id: 'other' }, '']) {
      expect(await statusFor(adminOnly, person(['admin'], { 'custom:tenant_id': tenant }))).toBe(401);
    }
  });
});

describe('routeAuth without any auth method configured', () => {
  it('answers 401 and reports it as an auth.failure, like every other 401', async () => {
    vi.stubEnv('AUTH_ISSUER', undefined);
    vi.stubEnv('AUTH_JWKS', undefined);
    vi.stubEnv('AUTH_CLIENT_IDS', undefined);
    try {
      // A fresh module: the one imported above already built its verifier from this file's issuer.
      vi.resetModules();
      const { routeAuth: unconfigured } = await import('../../functions/shared/route-auth.js');
      const events: SecurityEvent[] = [];
      const finished = lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(httpErrorHandler({ logger: { error: vi.fn() } }))
          .use(unconfigured({ kind: 'principal', roles: ['admin'] }, (event) => events.push(event)))
          .handler(async () => json(200, {})),
      );

      const result = await finished(
        httpEvent({ method: 'POST', headers: bearer(person(['admin'])) }),
        lambdaContext(),
      );

      expect(result.statusCode).toBe(401);
      expect(events).toEqual([
        {
          type: 'auth.failure',
          reason: 'no_auth_method',
          metadata: { path: '/things', httpMethod: 'POST' },
        },
      ]);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe('routeAuth for an issuer other than Cognito (AUTH_TOKEN_USE=any)', () => {
  const oidcIssuer = 'https://login.example.org/realms/app';
  const base = () => ({ iss: oidcIssuer, sub: 'f1e2-alice', iat: nowSec(), exp: nowSec() + 300 });

  it("accepts only access tokens for AUTH_AUDIENCE: not the client's ID tokens, nor tokens for other APIs", async () => {
    vi.stubEnv('AUTH_ISSUER', oidcIssuer);
    vi.stubEnv('AUTH_CLIENT_IDS', 'spa');
    vi.stubEnv('AUTH_TOKEN_USE', 'any');
    vi.stubEnv('AUTH_AUDIENCE', 'bookings-api');
    try {
      vi.resetModules();
      const { routeAuth: oidcRouteAuth } = await import('../../functions/shared/route-auth.js');
      const finished = lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(httpErrorHandler({ logger: { error: vi.fn() } }))
          .use(oidcRouteAuth({ kind: 'principal' }))
          .handler(async () => json(200, {})),
      );
      const statusOf = async (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
        (await finished(httpEvent({ headers: bearer(signToken(key, claims, header)) }), lambdaContext()))
          .statusCode;

      expect(await statusOf({ ...base(), aud: 'bookings-api', azp: 'spa', scope: 'openid' })).toBe(200);
      // The SPA's OIDC ID token, and its access token for another resource server.
      expect(await statusOf({ ...base(), aud: 'spa', azp: 'spa', nonce: 'n' })).toBe(401);
      expect(await statusOf({ ...base(), aud: 'billing-api', azp: 'spa', scope: 'billing/admin' })).toBe(401);
      // A back-channel logout token names the API's audience, but its JWS typ says what it is for.
      const logout = { ...base(), aud: 'bookings-api', azp: 'spa', events: {} };
      expect(await statusOf(logout, { typ: 'logout+jwt' })).toBe(401);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
