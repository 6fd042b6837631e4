// A direct invoke with a bare event, without the request context API Gateway adds: the HTTP middlewares refuse it
// (UnsupportedEventError, the invocation fails, never an answer); the authentication core still reads its headers.

import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { handler as catchAll } from '../../functions/catch-all/handler.js';
import { Authenticator } from '../../middleware/auth/authenticator.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import { csrfProtection } from '../../middleware/auth/middy.js';
import {
  type NonceStore,
  ServiceRequestVerifier,
  serviceAuthHeaders,
} from '../../middleware/auth/service-auth.js';
import { InvalidTokenError, UnsupportedEventError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { bearer, rsaKey, signToken, userClaims } from '../auth/helpers.js';

/** The event without `requestContext` (or only without its `http`), as a hand-written test event might be. */
function bare(event: APIGatewayProxyEventV2, keep: 'nothing' | 'requestId'): APIGatewayProxyEventV2 {
  const { requestContext, ...rest } = event;
  return (
    keep === 'nothing' ? rest : { ...rest, requestContext: { requestId: requestContext.requestId } }
  ) as APIGatewayProxyEventV2;
}

describe('an event without its API Gateway request context', () => {
  it('fails the invocation at the catch-all function rather than answering it', async () => {
    const event = httpEvent({ method: 'GET', path: '/no/such/path', routeKey: '$default' });
    await expect(catchAll(bare(event, 'nothing'), lambdaContext())).rejects.toThrow(
      'correlationIds reads API Gateway HTTP API (v2), REST API (v1) and Function URL events; got an event with neither requestContext nor httpMethod',
    );
    await expect(catchAll(bare(event, 'requestId'), lambdaContext())).rejects.toThrow(
      'got an event whose requestContext names no HTTP method',
    );
  });

  it('still authenticates its bearer token', async () => {
    const key = rsaKey('k1');
    const issuer = 'https://issuer.example';
    const authenticator = new Authenticator({
      jwt: new JwtVerifier({
        issuers: [
          { issuer, tokenUse: 'access', clientId: 'web-client', jwks: { keys: [key.jwk] }, jwksUri: null },
        ],
      }),
    });
    const event = httpEvent({ headers: bearer(signToken(key, userClaims(issuer))) });
    expect(await authenticator.authenticate(bare(event, 'nothing'))).toMatchObject({ id: 'user-1' });
  });

  it('refuses a service-signed request, since the signature covers the method it lacks', async () => {
    const secret = 's'.repeat(40);
    const nonces: NonceStore = { claim: async () => true };
    const authenticator = new Authenticator({
      service: new ServiceRequestVerifier({
        services: { bookings: { current: secret } },
        nonceStore: nonces,
      }),
    });
    const url = 'https://users.example/users/u1';
    const headers = serviceAuthHeaders({ serviceId: 'bookings', secret }, { method: 'GET', url });
    const event = httpEvent({ method: 'GET', path: '/users/u1', headers: { ...headers } });
    await expect(authenticator.authenticate(bare(event, 'nothing'))).rejects.toBeInstanceOf(
      InvalidTokenError,
    );
  });

  it('is refused by CSRF protection, which tells no safe method from an unsafe one without it', async () => {
    const handler = lambdaHandler(
      middy()
        .use(httpErrorHandler())
        .use(csrfProtection({ secret: 'c'.repeat(32) }))
        .handler(async () => ({ statusCode: 200, body: 'ran' })),
    );
    const event = httpEvent({ method: 'GET', path: '/things' });
    await expect(handler(bare(event, 'requestId'), lambdaContext())).rejects.toThrow(UnsupportedEventError);
  });
});
