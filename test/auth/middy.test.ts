import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { beforeAll, describe, expect, expectTypeOf, inject, it, vi } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit } from '../../middleware/audit/middy.js';
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import type { AuthenticatorOptions } from '../../middleware/auth/authenticator.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import {
  authenticate,
  csrfProtection,
  requireHuman,
  requirePermissions,
  requireRoles,
  requireScopes,
  requireTenant,
  requireUser,
  serviceAuth,
} from '../../middleware/auth/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { Rbac } from '../../middleware/auth/rbac.js';
import {
  DynamoDbNonceStore,
  ServiceRequestVerifier,
  serviceAuthHeaders,
} from '../../middleware/auth/service-auth.js';
import { respondEarly } from '../../middleware/cleanup.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { jsonBodyParserOf } from '../helpers/json-body-parser.js';
import { testTableNames } from '../helpers/tables.js';
import {
  b64,
  bearer,
  httpEvent,
  lambdaContext,
  m2mClaims,
  nowSec,
  rsaKey,
  signToken,
  type TestKey,
  userClaims,
} from './helpers.js';

const issuer = 'https://issuer.example';
let key: TestKey;
let verifier: JwtVerifier;
const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const apiKeys = new ApiKeyStore({ client: documentClient, tableName: testTableNames.toolkit });
const secret = 's'.repeat(40);
const services = new ServiceRequestVerifier({
  services: { bookings: { current: secret } },
  nonceStore: new DynamoDbNonceStore({ client: documentClient, tableName: testTableNames.toolkit }),
});

beforeAll(() => {
  key = rsaKey('k1');
  verifier = new JwtVerifier({
    issuers: [
      {
        issuer,
        tokenUse: 'access',
        clientId: ['web-client', 'svc'],
        jwks: { keys: [key.jwk] },
        jwksUri: null,
      },
    ],
  });
});

const userToken = (overrides: Record<string, unknown> = {}) => signToken(key, userClaims(issuer, overrides));
const m2mToken = (scope: string) => signToken(key, m2mClaims(issuer, scope));

/** A pipeline answering with the principal, so tests see what the handler would. */
function pipeline(...middlewares: Parameters<ReturnType<typeof middy>['use']>[0][]) {
  let handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().use(
    httpErrorHandler({ logger: { error: vi.fn() } }),
  );
  for (const middleware of middlewares) handler = handler.use(middleware);
  const finished = handler.handler(async (_event, context) =>
    json(200, { principal: (context as { principal?: unknown }).principal ?? null }),
  );
  return async (event: APIGatewayProxyEventV2) => {
    const result = await finished(event, lambdaContext());
    return { ...result, json: JSON.parse(result.body ?? 'null') as Record<string, unknown> };
  };
}

describe('authenticate through a middy pipeline', () => {
  it('puts the JWT principal on context.principal, typed', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler())
        .use(authenticate({ jwt: verifier }))
        .handler(async (_event, { principal }) => json(200, { id: principal.id, human: !principal.isM2M })),
    );
    const result = await handler(httpEvent({ headers: bearer(userToken()) }), lambdaContext());
    expect(JSON.parse(result.body as string)).toEqual({ id: 'user-1', human: true });
  });

  it('answers 401 with a bare Bearer challenge when there is no credential', async () => {
    const result = await pipeline(authenticate({ jwt: verifier }))(httpEvent());
    expect(result.statusCode).toBe(401);
    expect(result.headers?.['WWW-Authenticate']).toBe('Bearer realm="bulwark"');
    expect(result.headers?.['Content-Type']).toBe('application/problem+json');
    expect(result.json).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('answers 401 invalid_token for a bad token, never echoing it', async () => {
    const token = userToken({ exp: nowSec() - 600 });
    const result = await pipeline(authenticate({ jwt: verifier }))(httpEvent({ headers: bearer(token) }));
    expect(result.statusCode).toBe(401);
    expect(result.headers?.['WWW-Authenticate']).toBe(
      'Bearer realm="bulwark", error="invalid_token", error_description="The credential has expired"',
    );
    expect(result.json).toMatchObject({ code: 'INVALID_TOKEN', detail: 'The credential has expired' });
    expect(result.body).not.toContain(token.split('.')[1]);
  });

  it('names a token refused after its signature checked out in its auth.failure, never in the answer', async () => {
    const events: SecurityEvent[] = [];
    const expired = userToken({ sub: 'expired-user', exp: nowSec() - 600, 'custom:tenant_id': 'tenant-a' });
    const result = await pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }))(
      httpEvent({ headers: bearer(expired) }),
    );
    expect(result.statusCode).toBe(401);
    expect(events).toEqual([
      {
        type: 'auth.failure',
        reason: 'expired',
        metadata: {
          method: 'jwt',
          path: '/things',
          httpMethod: 'GET',
          issuer,
          subject: 'expired-user',
          clientId: 'web-client',
          tenantId: 'tenant-a',
        },
        durationMs: expect.any(Number),
      },
    ]);
    expect(result.body).not.toMatch(/expired-user|web-client|tenant-a|issuer\.example/);
  });

  it('names nothing of a token whose signature does not check out, whatever it claims', async () => {
    const events: SecurityEvent[] = [];
    const forged = signToken(rsaKey('k1'), userClaims(issuer, { sub: 'forged-user', exp: nowSec() - 600 }));
    await pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }))(
      httpEvent({ headers: bearer(forged) }),
    );
    expect(events.map(({ reason, metadata }) => [reason, metadata])).toEqual([
      ['bad_signature', { method: 'jwt', path: '/things', httpMethod: 'GET' }],
    ]);
  });

  it('names a revoked or expired API key presented with its secret, and its owner; of a wrong secret only the id, as unverified', async () => {
    const owner = `owner-${randomUUID()}`;
    const revoked = await apiKeys.create(owner, [], { tenantId: 'tenant-a' });
    await apiKeys.revoke(revoked.keyId);
    const events: SecurityEvent[] = [];
    const handler = pipeline(authenticate({ apiKeys, onEvent: (event) => events.push(event) }));
    const where = { method: 'apiKey', path: '/things', httpMethod: 'GET' };
    const answers = [
      await handler(httpEvent({ headers: { 'x-api-key': revoked.key } })),
      await handler(httpEvent({ headers: { 'x-api-key': `bwk_${revoked.keyId}_${'Z'.repeat(43)}` } })),
      await handler(httpEvent({ headers: { 'x-api-key': `bwk_${revoked.keyId}_short` } })),
    ];
    expect(events.map(({ reason, metadata }) => [reason, metadata])).toEqual([
      ['revoked', { ...where, keyId: revoked.keyId, owner, tenantId: 'tenant-a' }],
      ['unknown_key', { ...where, unverifiedKeyId: revoked.keyId }],
      ['malformed', where],
    ]);
    for (const answer of answers) {
      expect(answer.statusCode).toBe(401);
      expect(answer.body).not.toContain(revoked.keyId);
      expect(answer.body).not.toContain(owner);
    }
  });

  it.each([
    ['Basic credentials', { authorization: 'Basic YWxpY2U6c2VjcmV0' }],
    ['a Digest challenge answer', { authorization: 'Digest username="alice"' }],
    ['Bearer without a token', { authorization: 'Bearer ' }],
    ['a token with no scheme', { authorization: 'eyJhbGciOi' }],
  ])('answers 401 to %s', async (_name, headers) => {
    const events: SecurityEvent[] = [];
    const result = await pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }))(
      httpEvent({ headers }),
    );
    expect(result.statusCode).toBe(401);
    expect(events).toEqual([expect.objectContaining({ type: 'auth.failure', reason: 'unsupported_scheme' })]);
  });

  // A REST API (v1) event keeps the spelling the client sent.
  it.each(['Authorization', 'AUTHORIZATION', 'authoriZation'])(
    'accepts the scheme in any case and the header spelled %s',
    async (name) => {
      const events: SecurityEvent[] = [];
      const result = await pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }))(
        httpEvent({ headers: { [name]: `bearer ${userToken()}` } }),
      );
      expect(result.statusCode).toBe(200);
      expect(events.map((event) => event.type)).toEqual(['auth.success']);
    },
  );

  it('calls a credential sent under an unusual spelling unsupported, not missing, when its scheme is', async () => {
    const events: SecurityEvent[] = [];
    const result = await pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }))(
      httpEvent({ headers: { AUTHORIZATION: 'Basic YWxpY2U6c2VjcmV0' } }),
    );
    expect(result.statusCode).toBe(401);
    expect(events).toEqual([expect.objectContaining({ type: 'auth.failure', reason: 'unsupported_scheme' })]);
  });

  it('lets a request without credentials through in optional mode, but not a bad credential', async () => {
    const optional = pipeline(authenticate({ jwt: verifier, optional: true }));
    expect((await optional(httpEvent())).json).toEqual({ principal: null });
    expect((await optional(httpEvent({ headers: bearer('garbage') }))).statusCode).toBe(401);
    expect((await optional(httpEvent({ headers: bearer(userToken()) }))).json.principal).toMatchObject({
      id: 'user-1',
    });
  });

  it('takes optional from data, as AuthenticatorOptions allows, typing the principal as possibly absent', async () => {
    const options: AuthenticatorOptions = { jwt: verifier, optional: true };
    expect((await pipeline(authenticate(options))(httpEvent())).json).toEqual({ principal: null });
    for (const route of [
      { isPublic: true, status: 200 },
      { isPublic: false, status: 401 },
    ]) {
      const handler = lambdaHandler(
        middy<APIGatewayProxyEventV2>()
          .use(httpErrorHandler())
          .use(authenticate({ jwt: verifier, optional: route.isPublic }))
          .handler(async (_event, { principal }) => {
            expectTypeOf(principal).toEqualTypeOf<Principal | undefined>();
            return json(200, { id: principal?.id ?? null });
          }),
      );
      expect((await handler(httpEvent(), lambdaContext())).statusCode).toBe(route.status);
    }
  });

  it('narrows an optional principal with requireUser', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler())
        .use(authenticate({ jwt: verifier, optional: true }))
        .use(requireUser())
        .handler(async (_event, { principal }) => json(200, { id: principal.id })),
    );
    expect((await handler(httpEvent(), lambdaContext())).statusCode).toBe(401);
  });

  it.each(['x-api-key', 'X-API-Key', 'X-Api-Key'])(
    'accepts an API key from %s and reports its use, naming its owner',
    async (name) => {
      const owner = `owner-${randomUUID()}`;
      const created = await apiKeys.create(owner, ['bookings/read']);
      const events: SecurityEvent[] = [];
      const result = await pipeline(
        authenticate({ jwt: verifier, apiKeys, onEvent: (event) => events.push(event) }),
      )(httpEvent({ headers: { [name]: created.key } }));
      expect(result.json.principal).toMatchObject({ id: created.keyId, authMethod: 'apiKey' });
      expect(events.map((event) => event.type)).toEqual(['apiKey.used', 'auth.success']);
      expect(events[0]?.metadata).toMatchObject({ keyId: created.keyId, owner });
      expect(JSON.stringify(events)).not.toContain(created.key);
    },
  );

  it('answers 401 to a wrong API key without echoing it', async () => {
    const wrong = `bwk_0011223344556677_${'Z'.repeat(43)}`;
    const result = await pipeline(authenticate({ apiKeys }))(httpEvent({ headers: { 'x-api-key': wrong } }));
    expect(result.statusCode).toBe(401);
    expect(result.body).not.toContain('ZZZZ');
  });

  it('answers 503 with Retry-After when the API key store is down, reported as store_unavailable', async () => {
    const down = { send: () => Promise.reject(new Error('connect ECONNREFUSED')) } as never;
    const events: SecurityEvent[] = [];
    const result = await pipeline(
      authenticate({
        apiKeys: new ApiKeyStore({ client: down, tableName: testTableNames.toolkit }),
        onEvent: (event) => events.push(event),
      }),
    )(httpEvent({ headers: { 'x-api-key': `bwk_0011223344556677_${'Z'.repeat(43)}` } }));
    expect(result.statusCode).toBe(503);
    expect(result.headers?.['Retry-After']).toBe('5');
    expect(events).toEqual([
      {
        type: 'auth.failure',
        reason: 'store_unavailable',
        metadata: { method: 'apiKey', path: '/things', httpMethod: 'GET' },
        durationMs: expect.any(Number),
      },
    ]);
    expect(result.body).not.toContain('ZZZZ');
  });

  it('reports the 503 of a signed request whose nonce cannot be stored as store_unavailable too', async () => {
    const events: SecurityEvent[] = [];
    const noNonces = new ServiceRequestVerifier({
      services: { bookings: { current: secret } },
      nonceStore: { claim: () => Promise.reject(new Error('connect ECONNREFUSED')) },
    });
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'GET', url: '/things' },
    );
    const result = await pipeline(
      serviceAuth({ verifier: noNonces, onEvent: (event) => events.push(event) }),
    )(httpEvent({ headers: { ...signedHeaders } }));
    expect(result.statusCode).toBe(503);
    expect(events.map((event) => [event.type, event.reason, event.metadata?.method])).toEqual([
      ['auth.failure', 'store_unavailable', 'service'],
    ]);
  });

  it('reads the signing headers whatever their spelling', async () => {
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'GET', url: '/things' },
    );
    const shouted = Object.fromEntries(
      Object.entries(signedHeaders).map(([name, value]) => [name.toUpperCase(), value]),
    );
    const result = await pipeline(serviceAuth({ verifier: services }))(httpEvent({ headers: shouted }));
    expect(result.json.principal).toMatchObject({ id: 'bookings', authMethod: 'service' });
  });

  describe('signed calls to percent-encoded paths', () => {
    /**
     * The event a call to `url`'s path arrives as: an HTTP API hands rawPath on decoded, a Function URL (told by
     * its `<url-id>.lambda-url.<region>.on.aws` domain) as sent.
     */
    const deliveries = (
      url: string,
    ): [kind: string, event: (headers: Record<string, string>) => APIGatewayProxyEventV2][] => {
      const path = new URL(url).pathname;
      const arriving = (rawPath: string, domainName: string) => (headers: Record<string, string>) =>
        httpEvent({
          method: 'DELETE',
          rawPath,
          headers,
          requestContext: {
            ...httpEvent({ method: 'DELETE' }).requestContext,
            domainName,
            domainPrefix: domainName.split('.')[0],
          } as APIGatewayProxyEventV2['requestContext'],
        });
      return [
        ['HTTP API', arriving(decodeURIComponent(path), 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com')],
        ['Function URL', arriving(path, 'abcdefghij0123456789abcdefghij01.lambda-url.eu-west-1.on.aws')],
      ];
    };
    const signedFor = (url: string): Record<string, string> =>
      serviceAuthHeaders({ serviceId: 'bookings', secret }, { method: 'DELETE', url });

    it.each(['/users/caf%C3%A9', '/users/a%20b', '/a%2Fb', '/50%25'])(
      'authenticates a call signed to %s as an HTTP API and a Function URL deliver it',
      async (path) => {
        const url = `https://things.example${path}`;
        for (const [kind, arriving] of deliveries(url)) {
          const result = await pipeline(serviceAuth({ verifier: services }))(arriving(signedFor(url)));
          expect(result.json.principal, kind).toMatchObject({ id: 'bookings', authMethod: 'service' });
        }
      },
    );

    // Each signed path decodes to the next: checked against both the decoded path and the path as received,
    // a signature for the webhook `a%41` deleted the webhook `aA`, and one for `a%2Fb` the webhook `a/b`.
    it.each([
      ['/webhooks/a%2541', '/webhooks/a%41'],
      ['/webhooks/a%252Fb', '/webhooks/a%2Fb'],
    ])('refuses a signature for %s presented at %s', async (signedPath, otherPath) => {
      const headers = signedFor(`https://things.example${signedPath}`);
      for (const [kind, arriving] of deliveries(`https://things.example${otherPath}`)) {
        const result = await pipeline(serviceAuth({ verifier: services }))(arriving(headers));
        expect(result.statusCode, kind).toBe(401);
        expect(result.json, kind).toMatchObject({ code: 'INVALID_TOKEN' });
      }
    });
  });

  it('accepts a signed service request, reads a base64 body, and reports a replay', async () => {
    const body = '{"hello":"world"}';
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'POST', url: '/things?z=1&a=2', body },
    );
    const event = httpEvent({
      method: 'POST',
      rawQueryString: 'z=1&a=2',
      body: Buffer.from(body).toString('base64'),
      isBase64Encoded: true,
      headers: Object.fromEntries(
        Object.entries(signedHeaders).map(([name, value]) => [name.toLowerCase(), value]),
      ),
    });
    const events: SecurityEvent[] = [];
    const handler = pipeline(
      serviceAuth({ verifier: services, onEvent: (securityEvent) => events.push(securityEvent) }),
    );
    expect((await handler(event)).json.principal).toMatchObject({ id: 'bookings', authMethod: 'service' });
    const replay = await handler(event);
    expect(replay.statusCode).toBe(401);
    expect(events.map((securityEvent) => [securityEvent.type, securityEvent.reason])).toEqual([
      ['auth.success', undefined],
      ['auth.failure', 'replayed'],
      ['replay.rejected', undefined],
    ]);
    // The replayed request is signed with the service's secret: whose it is, is known.
    expect(events[1]?.metadata).toMatchObject({ subject: 'bookings' });
    const noBody = pipeline(serviceAuth({ verifier: services }));
    const emptyHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'GET', url: '/things' },
    );
    const emptyEvent = httpEvent({
      headers: Object.fromEntries(
        Object.entries(emptyHeaders).map(([name, value]) => [name.toLowerCase(), value]),
      ),
    });
    expect((await noBody(emptyEvent)).statusCode).toBe(200);
  });

  it('verifies a signed request after a v3 body parser over the bytes its rawBody keeps, decoded from base64', async () => {
    // Spacing JSON.stringify would not reproduce: only the bytes as sent carry the signature.
    const body = '{ "hello":  "world" }';
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'POST', url: '/things', body },
    );
    const sent = () =>
      httpEvent({
        method: 'POST',
        body: Buffer.from(body).toString('base64'),
        isBase64Encoded: true,
        headers: { 'content-type': 'application/json', ...signedHeaders },
      });
    const afterV3 = await pipeline(jsonBodyParserOf(3), serviceAuth({ verifier: services }))(sent());
    expect(afterV3.statusCode).toBe(200);
    expect(afterV3.json.principal).toMatchObject({ id: 'bookings', authMethod: 'service' });
    // v4 and later keep no rawBody: the bytes are gone, and the logged error names the fix.
    const afterV4 = await pipeline(jsonBodyParserOf(4), serviceAuth({ verifier: services }))(sent());
    expect(afterV4.statusCode).toBe(500);
  });

  it('refuses a signed request whose base64 body is not canonical, as the input parser does', async () => {
    const body = '{"hello":"world"}';
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'POST', url: '/things', body },
    );
    const encoded = Buffer.from(body).toString('base64');
    // Node's decoder skips the stray characters and would hand over the signed bytes.
    const mangled = `${encoded.slice(0, 4)}!!*${encoded.slice(4)}`;
    expect(Buffer.from(mangled, 'base64').toString()).toBe(body);
    const result = await pipeline(serviceAuth({ verifier: services }))(
      httpEvent({ method: 'POST', body: mangled, isBase64Encoded: true, headers: { ...signedHeaders } }),
    );
    expect(result.statusCode).toBe(400);
    expect(JSON.parse(result.body ?? '{}')).toMatchObject({ detail: 'Request body is not valid base64' });
  });

  it('reads the signing headers in the capitalised form serviceAuthHeaders writes them', async () => {
    const signedHeaders = serviceAuthHeaders(
      { serviceId: 'bookings', secret },
      { method: 'GET', url: '/things' },
    );
    const result = await pipeline(serviceAuth({ verifier: services }))(
      httpEvent({ headers: { ...signedHeaders } }),
    );
    expect(result.statusCode).toBe(200);
    expect(result.json.principal).toMatchObject({ id: 'bookings', authMethod: 'service' });
  });

  it('trusts API Gateway authorizer claims only when told to', async () => {
    const claims = {
      sub: 'gw-user',
      username: 'gw',
      token_use: 'access',
      client_id: 'web-client',
      iss: issuer,
      exp: String(nowSec() + 60),
    };
    const event = httpEvent({
      requestContext: {
        ...httpEvent().requestContext,
        authorizer: { jwt: { claims, scopes: [] } },
      } as APIGatewayProxyEventV2['requestContext'],
    });
    expect(
      (await pipeline(authenticate({ jwt: verifier, trustApiGatewayAuthorizer: true }))(event)).json
        .principal,
    ).toMatchObject({
      id: 'gw-user',
    });
    expect((await pipeline(authenticate({ jwt: verifier }))(event)).statusCode).toBe(401);
  });

  it('reports success and failure with reasons, and never a credential', async () => {
    const events: SecurityEvent[] = [];
    const handler = pipeline(authenticate({ jwt: verifier, onEvent: (event) => events.push(event) }));
    await handler(httpEvent({ headers: bearer(userToken()) }));
    await handler(httpEvent({ headers: bearer(`${b64({ alg: 'none' })}.${b64(userClaims(issuer))}.`) }));
    await handler(httpEvent());
    expect(events.map((event) => [event.type, event.reason])).toEqual([
      ['auth.success', undefined],
      ['auth.failure', 'alg_none'],
      ['auth.failure', 'missing'],
    ]);
    expect(events[0]?.principal?.id).toBe('user-1');
    expect(events[1]?.metadata).toEqual({ method: 'jwt', path: '/things', httpMethod: 'GET' });
  });

  it('rejects options that name no method', () => {
    expect(() => authenticate({})).toThrow(InvalidOptionsError);
    expect(() => authenticate({ apiKeys, trustApiGatewayAuthorizer: true })).toThrow(
      /trustApiGatewayAuthorizer needs jwt/,
    );
  });

  it('rejects a verifier’s options given in place of the verifier, which would fail every request with a 500', () => {
    expect(() =>
      authenticate({
        jwt: { issuers: [] } as never,
        apiKeys: { tableName: 'toolkit' } as never,
        service: { services: {} } as never,
      }),
    ).toThrow(
      new InvalidOptionsError('authenticate', [
        'jwt must have verify() (a JwtVerifier fits)',
        'apiKeys must have verify() (an ApiKeyStore fits)',
        'service must have verify() (a ServiceRequestVerifier fits)',
      ]),
    );
  });

  it('takes a double with only the methods it calls, and a method given as null as left out', async () => {
    // An adopter's double of the verifier: verify() is all a Bearer token needs.
    const jwtDouble = { verify: (token: string) => verifier.verify(token) } as unknown as JwtVerifier;
    const handler = pipeline(authenticate({ jwt: jwtDouble, apiKeys: null as never }));
    const answer = await handler(httpEvent({ headers: bearer(userToken()) }));
    expect(answer.statusCode).toBe(200);
    expect(answer.json.principal).toMatchObject({ id: 'user-1' });
    // Trusting the authorizer's claims calls verifyAuthorizerClaims(), which this double lacks.
    expect(() => authenticate({ jwt: jwtDouble, trustApiGatewayAuthorizer: true })).toThrow(
      new InvalidOptionsError('authenticate', [
        'jwt must have verify() and verifyAuthorizerClaims() (a JwtVerifier fits)',
      ]),
    );
  });

  it('rejects an onEvent that is not a function, whose every event would be lost without a word', () => {
    const notAListener = { onEvent: 'audit' as never };
    expect(() => authenticate({ jwt: verifier, ...notAListener })).toThrow(
      new InvalidOptionsError('authenticate', ['onEvent must be a function']),
    );
    expect(() => serviceAuth({ verifier: services, ...notAListener })).toThrow(
      new InvalidOptionsError('serviceAuth', ['onEvent must be a function']),
    );
    expect(() => requireRoles(['admin'], notAListener)).toThrow(
      new InvalidOptionsError('requireRoles', ['onEvent must be a function']),
    );
    expect(() => csrfProtection(notAListener)).toThrow(
      new InvalidOptionsError('csrfProtection', ['onEvent must be a function']),
    );
  });
});

describe("an authenticated request's http.request audit line", () => {
  async function requestLines(credentials: AuthenticatorOptions, headers: Record<string, string>) {
    const audits: AuditEvent[] = [];
    const auditLogger = new AuditLogger({ sink: (event) => audits.push(event), logToConsole: false });
    const result = await pipeline(audit({ auditLogger }), authenticate(credentials))(httpEvent({ headers }));
    expect(result.statusCode).toBe(200);
    return audits.map(({ eventType, userId, isM2M, authMethod }) => ({
      eventType,
      userId,
      isM2M,
      authMethod,
    }));
  }

  it("names a JWT principal's method, jwt", async () => {
    expect(await requestLines({ jwt: verifier }, bearer(userToken()))).toEqual([
      { eventType: 'http.request', userId: 'user-1', isM2M: false, authMethod: 'jwt' },
    ]);
  });

  it("names a signed service request's method, service", async () => {
    const signed = serviceAuthHeaders({ serviceId: 'bookings', secret }, { method: 'GET', url: '/things' });
    expect(await requestLines({ service: services }, { ...signed })).toEqual([
      { eventType: 'http.request', userId: 'bookings', isM2M: true, authMethod: 'service' },
    ]);
  });

  it("names an API key's method, apiKey", async () => {
    const created = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/read']);
    expect(await requestLines({ apiKeys }, { 'x-api-key': created.key })).toEqual([
      { eventType: 'http.request', userId: created.keyId, isM2M: true, authMethod: 'apiKey' },
    ]);
  });
});

describe('guards through a middy pipeline', () => {
  const events: SecurityEvent[] = [];
  const onEvent = (event: SecurityEvent) => events.push(event);

  it('requireHuman refuses a machine with 403 "requires a human user"', async () => {
    const handler = pipeline(authenticate({ jwt: verifier }), requireHuman({ onEvent }));
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    const machine = await handler(httpEvent({ headers: bearer(m2mToken('bookings/write')) }));
    expect(machine.statusCode).toBe(403);
    expect(machine.json).toMatchObject({ code: 'FORBIDDEN', detail: 'This endpoint requires a human user' });
    expect(events.at(-1)).toMatchObject({
      type: 'access.denied',
      reason: 'human_required',
      principal: { id: 'svc' },
    });
  });

  it('requireRoles needs one of the roles', async () => {
    const handler = pipeline(authenticate({ jwt: verifier }), requireRoles(['admin', 'ops']));
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    const plain = await handler(httpEvent({ headers: bearer(userToken({ 'cognito:groups': ['users'] })) }));
    expect(plain.statusCode).toBe(403);
    expect(plain.json.detail).toBe('Requires role admin or ops');
  });

  it("requireTenant admits the tenants named, and a token without a tenant as unclaimedTenant's", async () => {
    const handler = pipeline(
      authenticate({ jwt: verifier }),
      requireTenant(['acme'], { unclaimedTenant: 'acme', onEvent }),
    );
    const withTenant = (tenant: string) => bearer(userToken({ 'custom:tenant_id': tenant }));
    expect((await handler(httpEvent({ headers: withTenant('acme') }))).statusCode).toBe(200);
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    const other = await handler(httpEvent({ headers: withTenant('globex') }));
    expect(other.statusCode).toBe(403);
    expect(other.json.detail).toBe('This tenant has no access here');
    expect(events.at(-1)).toMatchObject({ type: 'access.denied', reason: 'wrong_tenant' });
    const strict = pipeline(authenticate({ jwt: verifier }), requireTenant(['acme']));
    expect((await strict(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(403);
  });

  it('requireRoles with unless holds only the callers it governs to the roles', async () => {
    const handler = pipeline(
      authenticate({ jwt: verifier }),
      requireRoles(['admin'], { unless: (principal) => principal.isM2M }),
    );
    expect((await handler(httpEvent({ headers: bearer(m2mToken('bookings/read')) }))).statusCode).toBe(200);
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    const person = await handler(httpEvent({ headers: bearer(userToken({ 'cognito:groups': ['users'] })) }));
    expect(person.statusCode).toBe(403);
    expect((await handler(httpEvent({}))).statusCode).toBe(401);
  });

  it('requireScopes needs every scope and answers insufficient_scope', async () => {
    const handler = pipeline(
      authenticate({ jwt: verifier }),
      requireScopes(['bookings/write', 'bookings/read'], { onEvent }),
    );
    expect(
      (await handler(httpEvent({ headers: bearer(m2mToken('bookings/read bookings/write')) }))).statusCode,
    ).toBe(200);
    // Holding one of the two scopes is not enough, whichever one it is.
    for (const scope of ['bookings/read', 'bookings/write']) {
      const short = await handler(httpEvent({ headers: bearer(m2mToken(scope)) }));
      expect(short.statusCode, `token with only ${scope}`).toBe(403);
      expect(short.json.code).toBe('INSUFFICIENT_SCOPE');
      expect(short.headers?.['WWW-Authenticate']).toBe(
        'Bearer realm="bulwark", error="insufficient_scope", scope="bookings/write bookings/read"',
      );
      expect(events.at(-1)).toMatchObject({ type: 'access.denied', reason: 'insufficient_scope' });
    }
  });

  it('requireScopes can exempt principals, e.g. humans', async () => {
    const handler = pipeline(
      authenticate({ jwt: verifier }),
      requireScopes(['bookings/write'], { unless: (principal) => !principal.isM2M }),
    );
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    expect((await handler(httpEvent({ headers: bearer(m2mToken('x')) }))).statusCode).toBe(403);
  });

  it('requirePermissions checks the roles through RBAC', async () => {
    const rbac = new Rbac({ roles: { admin: ['*'], clerk: ['read:*'] } });
    const handler = pipeline(
      authenticate({ jwt: verifier }),
      requirePermissions(rbac, ['read:users', 'delete:users']),
    );
    expect((await handler(httpEvent({ headers: bearer(userToken()) }))).statusCode).toBe(200);
    const clerk = await handler(httpEvent({ headers: bearer(userToken({ 'cognito:groups': ['clerk'] })) }));
    expect(clerk.statusCode).toBe(403);
    expect(clerk.json.detail).toBe('Requires permission delete:users');
  });

  it('every guard answers 401 when no one is authenticated', async () => {
    const rbac = new Rbac();
    for (const guard of [
      requireUser(),
      requireHuman(),
      requireRoles(['a']),
      requireScopes(['a']),
      requirePermissions(rbac, ['a:b']),
    ]) {
      const result = await pipeline(authenticate({ jwt: verifier, optional: true }), guard)(httpEvent());
      expect(result.statusCode).toBe(401);
      expect(result.headers?.['WWW-Authenticate']).toBe('Bearer realm="bulwark"');
    }
  });

  it('every guard used before authenticate, or without it, is a logged 500 naming the order, never a 401, also on a context an authenticated request left its principal on', async () => {
    const rbac = new Rbac({ roles: { admin: ['*'] } });
    const guards = {
      requireUser: () => requireUser({ onEvent }),
      requireHuman: () => requireHuman({ onEvent }),
      requireRoles: () => requireRoles(['admin'], { onEvent }),
      requireScopes: () => requireScopes(['a'], { onEvent, unless: (principal) => !principal.isM2M }),
      requireTenant: () => requireTenant(['acme'], { onEvent, unclaimedTenant: 'acme' }),
      requirePermissions: () => requirePermissions(rbac, ['a:b'], { onEvent }),
    };
    // A token every one of the guards admits once authenticate has run.
    const admitted = { headers: bearer(userToken({ 'cognito:groups': ['admin'] })) };
    const wellOrdered = (guard: Parameters<ReturnType<typeof middy>['use']>[0]) =>
      lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(httpErrorHandler({ logger: { error: vi.fn() } }))
          .use(authenticate({ jwt: verifier }))
          .use(guard)
          .handler(async () => json(200, { reached: true })),
      );
    for (const [name, guard] of Object.entries(guards)) {
      // One context for every request, as a test's or a host's may be: the admitted caller's principal
      // stays on it, and says nothing about what ran on the next request.
      const context = lambdaContext();
      expect((await wellOrdered(guard())(httpEvent(admitted), context)).statusCode).toBe(200);
      for (const [order, middlewares] of [
        ['before authenticate', [guard(), authenticate({ jwt: verifier })]],
        ['without authenticate', [guard()]],
      ] as const) {
        const logger = { error: vi.fn() };
        const handler = lambdaHandler(
          middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
            .use(httpErrorHandler({ logger }))
            .use([...middlewares])
            .handler(async () => json(200, { reached: true })),
        );
        events.length = 0;
        for (const event of [httpEvent(admitted), httpEvent()]) {
          const result = await handler(event, context);
          expect(result.statusCode, `${name} ${order}`).toBe(500);
          expect(JSON.parse(result.body ?? '{}')).toMatchObject({ code: 'INTERNAL' });
          expect(result.headers).not.toHaveProperty('WWW-Authenticate');
        }
        // Nothing was denied: no access.denied to count as a client's, only the developer's log line.
        expect(events).toEqual([]);
        expect(logger.error).toHaveBeenCalledWith('Request failed', {
          error: expect.objectContaining({
            name: 'InvalidOptionsError',
            code: 'INVALID_OPTIONS',
            message: `Invalid ${name} options: it checks the caller on context.principal, but no authentication middleware ran before ${name}(): put ${name}() after authenticate()`,
          }),
        });
      }
    }
  });

  it('every guard refuses at construction a list it would misread: empty, a string, or holding a non-string', () => {
    const rbac = new Rbac({ roles: { admin: ['*'] } });
    const guards: [string, (names: never) => unknown][] = [
      ['roles', (names) => requireRoles(names)],
      ['scopes', (names) => requireScopes(names)],
      ['tenants', (names) => requireTenant(names)],
      ['permissions', (names) => requirePermissions(rbac, names)],
    ];
    for (const [field, build] of guards) {
      for (const [names, shown] of [
        [[], 'an empty array'],
        ['admin', '"admin"'],
        [['admin', 7], 'an array of 2'],
        [[''], 'an array of 1'],
      ]) {
        expect(() => build(names as never), `${field} ${JSON.stringify(names)}`).toThrow(
          new InvalidOptionsError('guard', [
            `${field} must be a non-empty list of non-empty strings (got ${shown})`,
          ]),
        );
      }
    }
    expect(() => requirePermissions({} as Rbac, ['read:users'])).toThrow(
      new InvalidOptionsError('guard', ['rbac must be an Rbac engine']),
    );
  });

  it('refuses an exemption that is not a function and an unclaimed tenant that matches no tenant', () => {
    expect(() => requireRoles(['admin'], { unless: 'isM2M' as never })).toThrow(
      new InvalidOptionsError('guard', ['unless must be a function of the principal (got "isM2M")']),
    );
    expect(() => requireScopes(['users/read'], { unless: true as never })).toThrow(
      new InvalidOptionsError('guard', ['unless must be a function of the principal (got true)']),
    );
    for (const [unclaimedTenant, shown] of [
      ['', '""'],
      [42, '42'],
      [['acme'], 'an array of 1'],
    ]) {
      expect(() => requireTenant(['acme'], { unclaimedTenant: unclaimedTenant as never })).toThrow(
        new InvalidOptionsError('guard', [`unclaimedTenant must be a non-empty string (got ${shown})`]),
      );
    }
  });
});

describe('csrfProtection through a middy pipeline', () => {
  const cookieOf = (result: { cookies?: string[] }) => result.cookies?.[0]?.split(';')[0] ?? '';

  it('issues a Secure, SameSite=Lax, Path=/ token cookie on a safe request', async () => {
    const handler = pipeline(csrfProtection());
    const result = await handler(httpEvent());
    expect(result.statusCode).toBe(200);
    expect(result.cookies?.[0]).toMatch(/^__Host-csrf=[\w-]{43}; Path=\/; Secure; SameSite=Lax$/);
  });

  it('requires the cookie token echoed in X-CSRF-Token on unsafe methods', async () => {
    const events: SecurityEvent[] = [];
    const handler = pipeline(csrfProtection({ onEvent: (event) => events.push(event) }));
    const cookie = cookieOf(await handler(httpEvent()));
    const token = cookie.split('=')[1] as string;
    const post = (headers: Record<string, string>, cookies: string[] = [cookie]) =>
      handler(httpEvent({ method: 'POST', cookies, headers }));
    expect((await post({ 'x-csrf-token': token })).statusCode).toBe(200);
    const mismatch =
      'CSRF header x-csrf-token does not match a token this server issued in __Host-csrf; a GET issues a fresh one';
    const refusals = [
      [await post({}), "CSRF header x-csrf-token not sent; echo the __Host-csrf cookie's token in it"],
      [await post({ 'x-csrf-token': `${token.slice(0, -1)}x` }), mismatch],
      [await post({ 'x-csrf-token': 'short' }), mismatch],
      [
        await post({ 'x-csrf-token': token }, []),
        'CSRF cookie __Host-csrf not sent (it is Secure: never sent over plain HTTP); a GET sets it',
      ],
    ] as const;
    for (const [refusal, detail] of refusals) {
      expect(refusal.statusCode).toBe(403);
      expect(refusal.json).toMatchObject({ code: 'FORBIDDEN', detail });
    }
    expect(events.map((event) => event.reason)).toEqual([
      'missing_header',
      'mismatch',
      'mismatch',
      'missing_cookie',
    ]);
    expect(events.every((event) => event.type === 'csrf.rejected')).toBe(true);
  });

  it('finds X-CSRF-Token whatever the case of its name', async () => {
    const events: SecurityEvent[] = [];
    const handler = pipeline(csrfProtection({ onEvent: (event) => events.push(event) }));
    const cookie = cookieOf(await handler(httpEvent()));
    const token = cookie.split('=')[1] as string;
    // A REST API (v1) event or a direct invoke keeps the case the client sent.
    for (const name of ['X-CSRF-Token', 'X-Csrf-Token', 'x-csrf-token']) {
      const result = await handler(
        httpEvent({ method: 'POST', cookies: [cookie], headers: { [name]: token } }),
      );
      expect(result.statusCode).toBe(200);
    }
    const forged = await handler(
      httpEvent({ method: 'POST', cookies: [cookie], headers: { 'X-CSRF-Token': `${token.slice(0, -1)}x` } }),
    );
    expect(forged.statusCode).toBe(403);
    expect(events.map((event) => event.reason)).toEqual(['mismatch']);
  });

  it('works through a REST API (v1): the cookie is read from the Cookie header and set in multiValueHeaders', async () => {
    const events: SecurityEvent[] = [];
    const handler = pipeline(csrfProtection({ onEvent: (event) => events.push(event) }));
    const restApiEvent = (httpMethod: string, headers: Record<string, string>) =>
      ({
        resource: '/profile',
        path: '/profile',
        httpMethod,
        headers,
        requestContext: { requestId: 'rest-request', httpMethod },
        body: null,
        isBase64Encoded: false,
      }) as unknown as APIGatewayProxyEventV2;
    // A REST API ignores a result's `cookies`: the token must travel as a Set-Cookie header.
    const issued = (await handler(restApiEvent('GET', {}))) as {
      cookies?: string[];
      multiValueHeaders?: Record<string, string[]>;
    };
    expect(issued.cookies).toBeUndefined();
    const setCookie = issued.multiValueHeaders?.['Set-Cookie'] ?? [];
    expect(setCookie).toHaveLength(1);
    const cookie = setCookie[0]?.split(';')[0] as string;
    const token = cookie.split('=')[1] as string;
    const post = (headers: Record<string, string>) => handler(restApiEvent('POST', headers));
    expect((await post({ Cookie: `theme=dark; ${cookie}`, 'X-CSRF-Token': token })).statusCode).toBe(200);
    expect((await post({ Cookie: cookie })).statusCode).toBe(403);
    expect((await post({ 'X-CSRF-Token': token })).statusCode).toBe(403);
    expect(events.map((event) => [event.reason, event.metadata])).toEqual([
      ['missing_header', { path: '/profile', httpMethod: 'POST' }],
      ['missing_cookie', { path: '/profile', httpMethod: 'POST' }],
    ]);
  });

  it('keeps a REST API (v1) handler’s own Set-Cookie from headers beside the CSRF cookie it issues', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(httpErrorHandler({ logger: { error: vi.fn() } }))
        .use(csrfProtection())
        .handler(async () => ({
          statusCode: 200,
          headers: { 'Content-Type': 'text/plain', 'Set-Cookie': 'session=abc; Secure; HttpOnly; Path=/' },
          body: 'ok',
        })),
    );
    const restApiEvent = {
      resource: '/callback',
      path: '/callback',
      httpMethod: 'GET',
      headers: {},
      requestContext: { requestId: 'rest-request', httpMethod: 'GET' },
      body: null,
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2;
    const result = (await handler(restApiEvent, lambdaContext())) as APIGatewayProxyStructuredResultV2 & {
      multiValueHeaders?: Record<string, string[]>;
    };
    // A REST API sends only multiValueHeaders' values for a name both maps hold: the session cookie must be there.
    expect(result.headers).toEqual({ 'Content-Type': 'text/plain' });
    const setCookie = result.multiValueHeaders?.['Set-Cookie'] ?? [];
    expect(setCookie).toHaveLength(2);
    expect(setCookie[0]).toBe('session=abc; Secure; HttpOnly; Path=/');
    expect(setCookie[1]).toMatch(/^__Host-csrf=[^;]+; Path=\/; Secure; SameSite=Lax$/);
  });

  it('reads a custom headerName whatever its case, in the option or in the request', async () => {
    const handler = pipeline(csrfProtection({ headerName: 'X-XSRF-TOKEN' }));
    const cookie = cookieOf(await handler(httpEvent()));
    const token = cookie.split('=')[1] as string;
    const result = await handler(
      httpEvent({ method: 'PATCH', cookies: [cookie], headers: { 'X-Xsrf-Token': token } }),
    );
    expect(result.statusCode).toBe(200);
  });

  it('does not re-issue a cookie the request already has, and exposes the token', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(csrfProtection())
        .handler(async (_event, { csrfToken }) => json(200, { csrfToken })),
    );
    const first = await handler(httpEvent(), lambdaContext());
    const token = JSON.parse(first.body as string).csrfToken as string;
    const second = await handler(httpEvent({ cookies: [`other=1; __Host-csrf=${token}`] }), lambdaContext());
    expect(second.cookies).toBeUndefined();
    expect(JSON.parse(second.body as string).csrfToken).toBe(token);
  });

  it('with a secret, refuses a planted cookie whose MAC is wrong', async () => {
    const handler = pipeline(csrfProtection({ secret: 'k'.repeat(32), cookieName: 'csrf', maxAgeSec: 3600 }));
    const issued = await handler(httpEvent());
    expect(issued.cookies?.[0]).toMatch(
      /^csrf=[\w-]{43}\.[\w-]{43}; Path=\/; Secure; SameSite=Lax; Max-Age=3600$/,
    );
    const token = cookieOf(issued).split('=')[1] as string;
    expect(
      (
        await handler(
          httpEvent({ method: 'DELETE', cookies: [`csrf=${token}`], headers: { 'x-csrf-token': token } }),
        )
      ).statusCode,
    ).toBe(200);
    const planted = `${'A'.repeat(43)}.${'B'.repeat(43)}`;
    const refusal = await handler(
      httpEvent({ method: 'PUT', cookies: [`csrf=${planted}`], headers: { 'x-csrf-token': planted } }),
    );
    expect(refusal.statusCode).toBe(403);
    // Worded as a mismatch: the answer does not tell whether a planted cookie passed the signature check.
    expect(JSON.parse(refusal.body as string).detail).toBe(
      'CSRF header x-csrf-token does not match a token this server issued in csrf; a GET issues a fresh one',
    );
    const unsigned = 'A'.repeat(43);
    expect(
      (
        await handler(
          httpEvent({ method: 'PUT', cookies: [`csrf=${unsigned}`], headers: { 'x-csrf-token': unsigned } }),
        )
      ).statusCode,
    ).toBe(403);
  });

  it('gives a plain handler result the cookie as the structured answer API Gateway would send', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(csrfProtection())
        .handler(async () => ({ hello: 'world' }) as never),
    );
    const answer = (await handler(httpEvent({ method: 'HEAD' }), lambdaContext())) as never as {
      statusCode: number;
      body: string;
      cookies: string[];
    };
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ hello: 'world' });
    expect(answer.cookies).toHaveLength(1);
    expect(answer.cookies[0]).toMatch(/^__Host-csrf=/);
  });

  it('never changes the handler’s response object, so a shared one gains no cookies', async () => {
    const shared = json(200, { ok: true });
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(csrfProtection())
        .handler(async () => shared),
    );
    const first = await handler(httpEvent(), lambdaContext());
    const second = await handler(httpEvent(), lambdaContext());
    expect(shared.cookies).toBeUndefined();
    expect(first.cookies).toHaveLength(1);
    expect(second.cookies).toHaveLength(1);
    expect(second.cookies?.[0]).not.toBe(first.cookies?.[0]);
  });

  it('sets the cookie on an answer another middleware gives early', async () => {
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(csrfProtection())
        .use({ before: (request) => respondEarly(request, json(403, { message: 'Closed' })) })
        .handler(async () => json(200, {})),
    );
    const answer = await handler(httpEvent(), lambdaContext());
    expect(answer.statusCode).toBe(403);
    expect(answer.cookies?.[0]).toMatch(/^__Host-csrf=/);
  });

  it('rejects invalid options', () => {
    expect(() =>
      csrfProtection({ cookieName: 'bad name', headerName: 'x y', secret: 'short', maxAgeSec: 0 }),
    ).toThrow(InvalidOptionsError);
  });

  it('refuses a signing secret that is not a string with InvalidOptionsError', () => {
    expect(() => csrfProtection({ secret: 123 as never })).toThrow(
      new InvalidOptionsError('csrf', ['secret must be a string']),
    );
  });

  it('refuses a cookie or header name that is not a string with InvalidOptionsError', () => {
    expect(() => csrfProtection({ cookieName: 5 as never, headerName: 7 as never })).toThrow(
      new InvalidOptionsError('csrf', [
        'cookieName must be a token of letters, digits, _ and -',
        'headerName must be a header name',
      ]),
    );
  });

  it('refuses a signing secret of fewer than 32 characters besides whitespace, which anyone could guess', () => {
    for (const secret of [' '.repeat(32), `short${' '.repeat(40)}`]) {
      expect(() => csrfProtection({ secret })).toThrow(
        'secret must be at least 32 characters besides whitespace',
      );
    }
  });

  it('refuses a secret given as undefined instead of quietly issuing unsigned tokens', () => {
    const unsetVariable: string | undefined = undefined;
    expect(() => csrfProtection({ secret: unsetVariable })).toThrow(
      'secret is undefined (an unset environment variable?); leave it out for unsigned tokens',
    );
  });
});
