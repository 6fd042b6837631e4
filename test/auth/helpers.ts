// Test helpers for auth: keys, hand-made tokens (including hostile ones), a JWKS server on 127.0.0.1, API Gateway events.
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { JSONWebKeySet, JWK } from 'jose';
import { expect } from 'vitest';
import { InvalidTokenError } from '../../middleware/errors.js';

export interface TestKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JWK;
}

export function rsaKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid,
    alg: 'RS256',
    privateKey,
    publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
  };
}

export function ecKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    kid,
    alg: 'ES256',
    privateKey,
    publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' },
  };
}

export const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** Cognito access-token claims for a human user of `issuer`, overridable. */
export function userClaims(issuer: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'user-1',
    username: 'alice',
    token_use: 'access',
    client_id: 'web-client',
    scope: 'openid',
    'cognito:groups': ['admin'],
    iss: issuer,
    iat: nowSec(),
    exp: nowSec() + 600,
    ...overrides,
  };
}

/** Cognito client-credentials (M2M) access-token claims of client `svc` with `scope`, from `issuer`. */
export function m2mClaims(issuer: string, scope: string): Record<string, unknown> {
  return { token_use: 'access', client_id: 'svc', sub: 'svc', scope, iss: issuer, exp: nowSec() + 60 };
}

/** Signs header.payload with node:crypto directly, so tests control every byte (and every mistake). */
export function signToken(
  key: TestKey,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })}.${b64(payload)}`;
  const signature =
    key.alg === 'RS256'
      ? sign('sha256', Buffer.from(input), key.privateKey)
      : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

export function hmacToken(
  secret: string | Buffer,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT', ...header })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A JWKS endpoint on 127.0.0.1 that counts its requests and can be switched off. */
export interface JwksServer {
  readonly url: string;
  readonly issuer: string;
  hits: number;
  keys: JWK[];
  /** When false, answers 503 (the endpoint is "down"). */
  up: boolean;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const state = { hits: 0, keys, up: true };
  const server: Server = createServer((request, response) => {
    state.hits += 1;
    if (!state.up || request.url !== '/.well-known/jwks.json') {
      response.writeHead(state.up ? 404 : 503).end();
      return;
    }
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ keys: state.keys } satisfies JSONWebKeySet));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    issuer,
    url: `${issuer}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

/**
 * A new Lambda context per invocation, as Lambda gives: middlewares write to it (`context.principal`), and
 * a shared one would carry one request's caller into the next.
 */
export function lambdaContext(): Context {
  return { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 1000 } as Context;
}

/** An API Gateway HTTP API (v2) event. */
export function httpEvent(
  overrides: Partial<APIGatewayProxyEventV2> & { method?: string } = {},
): APIGatewayProxyEventV2 {
  const { method = 'GET', ...rest } = overrides;
  return {
    version: '2.0',
    routeKey: `${method} /things`,
    rawPath: '/things',
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    requestContext: {
      requestId: 'api-req-1',
      http: { method, path: '/things', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
    } as APIGatewayProxyEventV2['requestContext'],
    ...rest,
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** The failure reason of a verification that must fail as an `InvalidTokenError`. */
export async function reasonOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(InvalidTokenError);
  return (error as InvalidTokenError).reason;
}
