// Authentication and the route table's auth rules over HTTP, through the local runtime and its dev issuer.
import { createHmac, createPublicKey, randomUUID } from 'node:crypto';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import type { DevTokenOptions } from '../../middleware/auth/dev-issuer.js';
import { serviceAuthHeaders } from '../../middleware/auth/service-auth.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { bookingDay } from '../helpers/booking-times.js';
import { type ApiResponse, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import { b64, nowSec, rsaKey, signToken } from './helpers.js';

const api = useLocalRuntime();
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const apiKeys = new ApiKeyStore({ client: documents, tableName: testTableNames.toolkit });

const human = (overrides: DevTokenOptions = {}) => api.token({ sub: `user-${randomUUID()}`, ...overrides });
const machine = (...scopes: string[]) => api.token({ m2m: true, clientId: `svc-${randomUUID()}`, scopes });
const at = bookingDay(9);

let userId: string;
/** The registered user's own token: a booking's `userId` is a person's `sub`. */
const person = (overrides: DevTokenOptions = {}) => api.token({ sub: userId, ...overrides });

/** A 401 or 403 problem that does not echo the credential. */
function expectRefused(response: ApiResponse, status: 401 | 403, credential?: string): void {
  expect(response.status, response.text).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  // RFC 6750: every 401 challenges; a 403 does only for missing scopes (checked where it applies).
  if (status === 401) expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="bulwark"/);
  if (credential) expect(response.text).not.toContain(credential.slice(-20));
}

/** Asks with a token for a new booking of a fresh room; returns the response and the room. */
async function bookWith(token: string | null, headers: Record<string, string> = {}) {
  const roomId = `room-${randomUUID()}`;
  const response = await api.request('POST', '/bookings', {
    token,
    headers,
    body: { roomId, userId, start: at(9), end: at(10) },
  });
  return { response, roomId };
}

/** The room is still free: a refused request claimed none of its slots. */
async function expectRoomFree(roomId: string): Promise<void> {
  const response = await api.request('POST', '/bookings', {
    token: await person(),
    body: { roomId, userId, start: at(9), end: at(10) },
  });
  expect(response.status).toBe(201);
}

beforeAll(async () => {
  const created = await api.request('POST', '/users', {
    body: { email: `auth-${randomUUID()}@example.com`, name: 'Auth Tester' },
  });
  userId = (created.body as { id: string }).id;
});

describe('the local dev issuer over HTTP', () => {
  it('serves its JWKS at /.well-known/jwks.json, the URL functions fetch it from', async () => {
    const response = await api.request('GET', '/.well-known/jwks.json');
    expect(response.status).toBe(200);
    const { keys } = response.body as { keys: { kid: string; kty: string; d?: string }[] };
    expect(keys).toEqual([expect.objectContaining({ kid: api.runtime().auth.devIssuer.kid, kty: 'RSA' })]);
    expect(keys[0]).not.toHaveProperty('d');
    expect(api.runtime().auth.devIssuer.issuer).toBe(api.runtime().url);
  });
});

describe('bad bearer tokens are refused with 401 problem+json and change nothing', () => {
  const cases: [string, () => Promise<string>][] = [
    ['not a JWT', async () => 'not-a-jwt'],
    ['bad base64', async () => 'eyJhbGciOiJSUzI1NiJ9.e30$.c2ln'],
    [
      'alg none',
      async () => `${b64({ alg: 'none' })}.${b64({ sub: 'x', iss: api.runtime().url, exp: nowSec() + 60 })}.`,
    ],
    [
      'an HS256 token signed with the RSA public key (alg confusion)',
      async () => {
        const { devIssuer } = api.runtime().auth;
        const pem = createPublicKey({ key: devIssuer.jwks().keys[0] as never, format: 'jwk' }).export({
          type: 'spki',
          format: 'pem',
        });
        const input = `${b64({ alg: 'HS256', kid: devIssuer.kid })}.${b64({ sub: 'x', iss: devIssuer.issuer, exp: nowSec() + 60, token_use: 'access', client_id: 'c', username: 'x' })}`;
        return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
      },
    ],
    ['an expired token', () => human({ expiresInSec: -60 })],
    ['a token whose nbf is in the future', () => human({ extraClaims: { nbf: nowSec() + 600 } })],
    ['a token from another issuer', () => human({ extraClaims: { iss: 'http://127.0.0.1:1' } })],
    ['an id token where access tokens are expected', () => human({ tokenUse: 'id' })],
    [
      'a token signed by an unknown key',
      async () => signToken(rsaKey('unknown-kid'), { sub: 'x', iss: api.runtime().url, exp: nowSec() + 60 }),
    ],
    [
      'a token signed by another key under the issuer kid',
      async () =>
        signToken(
          { ...rsaKey('x'), kid: api.runtime().auth.devIssuer.kid },
          { sub: 'x', iss: api.runtime().url, exp: nowSec() + 60 },
        ),
    ],
    [
      'a tampered payload',
      async () => {
        const [header, , signature] = (await human()).split('.');
        return `${header}.${b64({ sub: 'root', 'cognito:groups': ['admin'], iss: api.runtime().url, exp: nowSec() + 60 })}.${signature}`;
      },
    ],
    ['a token over 8 KiB', () => human({ extraClaims: { padding: 'x'.repeat(8500) } })],
  ];

  it.each(cases)('%s', async (_name, makeToken) => {
    const token = await makeToken();
    const { response, roomId } = await bookWith(token);
    expectRefused(response, 401, token);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(response.body).toMatchObject({ status: 401, code: 'INVALID_TOKEN' });
    await expectRoomFree(roomId);
  });

  it('no token at all', async () => {
    const { response, roomId } = await bookWith(null);
    expectRefused(response, 401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="bulwark"');
    await expectRoomFree(roomId);
  });

  it('an Authorization header with another scheme', async () => {
    const { response, roomId } = await bookWith(null, { authorization: 'Basic YWRtaW46YWRtaW4=' });
    expectRefused(response, 401);
    await expectRoomFree(roomId);
  });
});

describe('the route table rules', () => {
  it('admin routes need a human with role admin', async () => {
    expect(
      (await api.request('GET', '/admin/users', { token: await human({ roles: ['admin'] }) })).status,
    ).toBe(200);
    expectRefused(await api.request('GET', '/admin/users', { token: await human() }), 403);
    const m2m = await api.request('GET', '/admin/users', { token: await machine('bookings/read') });
    expectRefused(m2m, 403);
    expect(m2m.body).toMatchObject({ detail: 'This endpoint requires a human user' });
    expectRefused(await api.request('GET', '/admin/users'), 401);
  });

  it("serves one tenant: another tenant's admin or client is refused with 403 and changes nothing", async () => {
    const otherAdmin = await human({ roles: ['admin'], tenant: 't2' });
    const otherClient = await api.token({ m2m: true, scopes: ['users/read'], tenant: 't2' });
    expectRefused(await api.request('GET', `/users/${userId}`, { token: otherAdmin }), 403);
    expectRefused(await api.request('GET', `/users/${userId}`, { token: otherClient }), 403);
    expectRefused(await api.request('GET', '/admin/users', { token: otherAdmin }), 403);
    const removal = await api.request('DELETE', `/admin/users/${userId}`, { token: otherAdmin });
    expectRefused(removal, 403);
    expect(removal.body).toMatchObject({ detail: 'This tenant has no access here' });
    const ownAdmin = await human({ roles: ['admin'], tenant: 'default' });
    expect((await api.request('GET', `/users/${userId}`, { token: ownAdmin })).status).toBe(200);
  });

  it('admin delete refuses a non-admin and deletes nothing', async () => {
    const response = await api.request('DELETE', `/admin/users/${userId}`, { token: await human() });
    expectRefused(response, 403);
    const admin = await human({ roles: ['admin'] });
    expect((await api.request('GET', `/users/${userId}`, { token: admin })).status).toBe(200);
  });

  it('bookings accept a user, or an M2M token with the right scope', async () => {
    expect((await bookWith(await person())).response.status).toBe(201);
    expect((await bookWith(await machine('bookings/write'))).response.status).toBe(201);
    const { response, roomId } = await bookWith(await machine('bookings/read'));
    expectRefused(response, 403);
    expect(response.body).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="bulwark", error="insufficient_scope", scope="bookings/write"',
    );
    await expectRoomFree(roomId);
    expect(
      (await api.request('GET', '/bookings?limit=1', { token: await machine('bookings/read') })).status,
    ).toBe(200);
  });

  it('cancelling a booking needs a human, whatever scopes a machine has', async () => {
    const created = await bookWith(await person());
    const id = (created.response.body as { id: string }).id;
    const m2m = await api.request('DELETE', `/bookings/${id}`, {
      token: await machine('bookings/write', 'bookings/read'),
    });
    expectRefused(m2m, 403);
    expect((await api.request('GET', `/bookings/${id}`, { token: await person() })).body).toMatchObject({
      status: 'confirmed',
    });
    expect((await api.request('DELETE', `/bookings/${id}`, { token: await person() })).status).toBe(200);
  });

  it('a person books only for themselves; a client with bookings/write and an admin book for anyone', async () => {
    const stranger = await human();
    const { response, roomId } = await bookWith(stranger);
    expectRefused(response, 403);
    expect(response.body).toMatchObject({ detail: 'You can book only for yourself' });
    await expectRoomFree(roomId);
    expect((await bookWith(await human({ roles: ['admin'] }))).response.status).toBe(201);
  });

  it('a person sees only their own bookings; machines with bookings/read and admins see all', async () => {
    // Two of the person's own, so that their list has a next page.
    const [first] = await Promise.all([bookWith(await person()), bookWith(await person())]);
    const mine = first.response.body as { id: string };
    const stranger = await human();
    const read = (token: string, path: string) => api.request('GET', path, { token });
    expect((await read(stranger, `/bookings/${mine.id}`)).status).toBe(404);
    expect((await read(await person(), `/bookings/${mine.id}`)).status).toBe(200);
    expect((await read(await machine('bookings/read'), `/bookings/${mine.id}`)).status).toBe(200);
    expect((await read(await human({ roles: ['admin'] }), `/bookings/${mine.id}`)).status).toBe(200);
    // A person's list is their own, whatever they ask for.
    // The stranger booked nothing, so nothing anyone else booked may show up.
    const strangerList = await read(stranger, '/bookings?limit=100');
    expect((strangerList.body as { items: { id: string }[] }).items).toEqual([]);
    expectRefused(await read(stranger, `/bookings?userId=${userId}`), 403);
    const ownList = await read(await person(), '/bookings?limit=1');
    expect(
      (ownList.body as { items: { userId: string }[] }).items.every((item) => item.userId === userId),
    ).toBe(true);
    // A cursor from the person's own list cannot page through the all-bookings list.
    const cursor = (ownList.body as { nextCursor?: string }).nextCursor;
    expect(cursor).toBeDefined();
    const crossed = await read(await machine('bookings/read'), `/bookings?cursor=${cursor}`);
    expect(crossed.status).toBe(400);
    expect(crossed.body).toMatchObject({ errors: [{ field: 'query.cursor' }] });
  });

  it('a booking is cancelled only by the person it is for or an admin; to anyone else it does not exist', async () => {
    const [mine, forMe] = await Promise.all([
      bookWith(await person()),
      bookWith(await machine('bookings/write')),
    ]);
    const idOf = (created: { response: { body: unknown } }) => (created.response.body as { id: string }).id;
    const stranger = await api.request('DELETE', `/bookings/${idOf(mine)}`, { token: await human() });
    expect(stranger.status).toBe(404);
    expect(stranger.body).toMatchObject({ detail: `Booking ${idOf(mine)} not found` });
    const missing = randomUUID();
    expect(
      (await api.request('DELETE', `/bookings/${missing}`, { token: await human() })).body,
    ).toMatchObject({
      detail: `Booking ${missing} not found`,
    });
    expect(
      (await api.request('GET', `/bookings/${idOf(mine)}`, { token: await person() })).body,
    ).toMatchObject({
      status: 'confirmed',
    });
    // Booked for the person by a client: theirs to cancel; an administrator can cancel anyone's.
    expect((await api.request('DELETE', `/bookings/${idOf(forMe)}`, { token: await person() })).status).toBe(
      200,
    );
    const admin = await human({ roles: ['admin'] });
    expect((await api.request('DELETE', `/bookings/${idOf(mine)}`, { token: admin })).status).toBe(200);
  });

  it('a user (email and phone) is readable by an admin or a client with users/read, not by any other caller', async () => {
    const read = (token?: string) => api.request('GET', `/users/${userId}`, token ? { token } : {});
    expect((await read(await human({ roles: ['admin'] }))).status).toBe(200);
    expect((await read(await machine('users/read'))).status).toBe(200);
    for (const token of [await human(), await human({ roles: ['auditor'] })]) {
      const refused = await read(token);
      expectRefused(refused, 403);
      expect(refused.body).toMatchObject({ detail: 'Requires role admin' });
      expect(refused.text).not.toContain('@');
    }
    expectRefused(await read(await machine('bookings/read')), 403);
    expectRefused(await read(), 401);
  });
});

describe('signed service requests to GET /users/{id}', () => {
  function signedHeaders(
    overrides: { serviceId?: string; secret?: string; timestamp?: number; body?: string } = {},
  ) {
    const secret = overrides.secret ?? api.runtime().auth.serviceSecrets.bookings?.current ?? '';
    return serviceAuthHeaders(
      { serviceId: overrides.serviceId ?? 'bookings', secret },
      {
        method: 'GET',
        url: `/users/${userId}`,
        ...(overrides.body === undefined ? {} : { body: overrides.body }),
        ...(overrides.timestamp === undefined ? {} : { timestamp: overrides.timestamp }),
      },
    );
  }

  it('are accepted from the bookings service, which learns only that the user exists', async () => {
    const response = await api.request('GET', `/users/${userId}`, { headers: { ...signedHeaders() } });
    expect(response.status).toBe(200);
    // The id and nothing else: no email, no name, nothing decrypted for a caller that only checks existence.
    expect(response.body).toEqual({ id: userId });
  });

  it('are accepted on a percent-encoded path, which the runtime hands on decoded as an HTTP API does', async () => {
    const secret = api.runtime().auth.serviceSecrets.bookings?.current ?? '';
    for (const path of ['/users/caf%C3%A9', '/users/a%20b', '/users/a%252Fb', '/users/50%25']) {
      const sign = (withSecret: string) =>
        serviceAuthHeaders({ serviceId: 'bookings', secret: withSecret }, { method: 'GET', url: path });
      // Past authentication, the id is what is refused: no user id holds these characters.
      const accepted = await api.request('GET', path, { headers: { ...sign(secret) } });
      expect(accepted.status, path).toBe(400);
      expect(accepted.body, path).toMatchObject({ errors: [{ field: 'path.id' }] });
      expectRefused(await api.request('GET', path, { headers: { ...sign('x'.repeat(43)) } }), 401);
    }
  });

  it('are refused when replayed', async () => {
    const headers = { ...signedHeaders() };
    expect((await api.request('GET', `/users/${userId}`, { headers })).status).toBe(200);
    const replay = await api.request('GET', `/users/${userId}`, { headers });
    expectRefused(replay, 401);
    expect(replay.body).toMatchObject({ detail: 'The request nonce was already used' });
  });

  it.each([
    ['a bad signature', { secret: 'x'.repeat(43) }, 'The signature is invalid'],
    [
      'a timestamp more than 300 s old',
      { timestamp: nowSec() - 301 },
      'The request timestamp is outside the accepted window',
    ],
    ['an unknown service id', { serviceId: 'payments' }, 'The calling service is unknown'],
  ])('are refused with %s', async (_name, overrides, detail) => {
    const response = await api.request('GET', `/users/${userId}`, {
      headers: { ...signedHeaders(overrides) },
    });
    expectRefused(response, 401);
    expect(response.body).toMatchObject({ detail });
  });

  it('are refused when the body changed after signing', async () => {
    const headers = { ...signedHeaders({ body: 'signed body' }) };
    const response = await api.request('GET', `/users/${userId}`, {
      headers: { ...headers, 'content-type': 'text/plain' },
      body: 'other body',
    });
    expectRefused(response, 401);
  });

  it('are not accepted on routes that do not allow services', async () => {
    const headers = serviceAuthHeaders(
      { serviceId: 'bookings', secret: api.runtime().auth.serviceSecrets.bookings?.current ?? '' },
      { method: 'GET', url: '/bookings' },
    );
    expectRefused(await api.request('GET', '/bookings', { headers: { ...headers } }), 401);
  });
});

describe('API keys over HTTP, on routes that name scopes', () => {
  it('accept a key with the scope', async () => {
    const { key } = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/read']);
    expect((await api.request('GET', '/bookings?limit=1', { headers: { 'x-api-key': key } })).status).toBe(
      200,
    );
  });

  it('refuse a key without the scope with 403, and change nothing', async () => {
    const { key } = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/read']);
    const { response, roomId } = await bookWith(null, { 'x-api-key': key });
    expectRefused(response, 403, key);
    await expectRoomFree(roomId);
  });

  it('refuse wrong, malformed, revoked and expired keys with 401', async () => {
    const owner = `owner-${randomUUID()}`;
    const revoked = await apiKeys.create(owner, ['bookings/read']);
    await apiKeys.revoke(revoked.keyId);
    const expiring = await apiKeys.create(owner, ['bookings/read'], {
      expiresAt: new Date(Date.now() + 60_000),
    });
    // create refuses a past expiry, so the stored one is moved into the past; nothing has read the key
    // yet, so no cache holds the old one.
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `APIKEY#${expiring.keyId}`, sk: 'APIKEY' },
        UpdateExpression: 'SET expiresAt = :past',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 },
      }),
    );
    const keys = {
      wrong: `${revoked.key.slice(0, 21)}${'Q'.repeat(43)}`,
      malformed: 'bwk_not-a-key',
      revoked: revoked.key,
      expired: expiring.key,
    };
    const details: Record<string, unknown> = {};
    for (const [name, key] of Object.entries(keys)) {
      const response = await api.request('GET', '/bookings?limit=1', { headers: { 'x-api-key': key } });
      expectRefused(response, 401, key);
      details[name] = (response.body as { detail: string }).detail;
    }
    expect(details).toEqual({
      wrong: 'The API key is not valid',
      malformed: 'The credential is malformed',
      revoked: 'The credential has been revoked',
      // The embedded DynamoDB's TTL sweeper may already have deleted the expired key: unknown then.
      expired: expect.stringMatching(/^(The credential has expired|The API key is not valid)$/),
    });
  });

  it('are not accepted on routes for humans', async () => {
    const { key } = await apiKeys.create(`owner-${randomUUID()}`, ['bookings/write']);
    expectRefused(await api.request('GET', '/admin/users', { headers: { 'x-api-key': key } }), 401);
  });
});
