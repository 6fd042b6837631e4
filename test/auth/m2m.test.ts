import { describe, expect, it } from 'vitest';
import {
  listClaim,
  maxIdentifierLength,
  principalFromClaims,
} from '../../middleware/auth/claims-principal.js';
import {
  getClientId,
  getScopes,
  getTokenMetadata,
  isM2MToken,
  requiresUserContext,
} from '../../middleware/auth/m2m.js';

const cognitoM2M = { sub: 'svc', token_use: 'access', client_id: 'svc', scope: 'api/read api/write' };
const cognitoUser = { sub: 'u-1', token_use: 'access', client_id: 'web', username: 'alice', scope: 'openid' };

describe('isM2MToken', () => {
  it('recognises a Cognito client-credentials token', () => {
    expect(isM2MToken(cognitoM2M)).toBe(true);
    expect(isM2MToken({ token_use: 'access', client_id: 'service-account-123', scope: 'api/read' })).toBe(
      true,
    );
  });

  it.each([
    ['cognito:username', { 'cognito:username': 'alice' }],
    ['username', { username: 'alice' }],
    ['email', { email: 'a@b.c' }],
    ['name', { name: 'Alice' }],
    ['preferred_username', { preferred_username: 'al' }],
  ])('treats a token with %s as a human user', (_name, userClaim) => {
    expect(isM2MToken({ ...cognitoM2M, ...userClaim })).toBe(false);
  });

  it('treats id tokens and tokens without a client as human', () => {
    expect(isM2MToken({ sub: 'x', token_use: 'id', aud: 'web' })).toBe(false);
    expect(isM2MToken({ sub: 'x', token_use: 'access' })).toBe(false);
  });

  it('recognises the client-credentials shape of other OIDC issuers', () => {
    expect(isM2MToken({ sub: 'abc@clients', azp: 'abc', gty: 'client-credentials' })).toBe(true);
    expect(isM2MToken({ sub: 'svc-1', azp: 'svc-1' })).toBe(true);
    expect(isM2MToken({ sub: 'user-1', azp: 'web' })).toBe(false);
  });
});

describe('token metadata', () => {
  it('reads the client from client_id, azp or cid', () => {
    expect(getClientId({ client_id: 'a', azp: 'b' })).toBe('a');
    expect(getClientId({ azp: 'b', cid: 'c' })).toBe('b');
    expect(getClientId({ cid: 'c' })).toBe('c');
    expect(getClientId({ client_id: '' })).toBeUndefined();
  });

  it('reads scopes from a space-separated scope or an scp list', () => {
    expect(getScopes({ scope: 'a/read  a/write' })).toEqual(['a/read', 'a/write']);
    expect(getScopes({ scp: ['x', 1, 'y'] })).toEqual(['x', 'y']);
    expect(getScopes({ scope: 42 })).toEqual([]);
    // An API Gateway JWT authorizer passes an scp array as "[a b]"; a scope string keeps its brackets.
    expect(getScopes({ scp: '[bookings/read bookings/write]' })).toEqual(['bookings/read', 'bookings/write']);
    expect(getScopes({ scope: '[odd]' })).toEqual(['[odd]']);
  });

  it('summarises a token as the seed describes', () => {
    expect(getTokenMetadata(cognitoM2M)).toEqual({
      tokenUse: 'access',
      clientId: 'svc',
      scopes: ['api/read', 'api/write'],
      hasUserContext: false,
    });
    expect(getTokenMetadata(cognitoUser).hasUserContext).toBe(true);
  });

  it('finds a user context only in a human token with a subject', () => {
    expect(requiresUserContext(cognitoUser)).toBe(true);
    expect(requiresUserContext(cognitoM2M)).toBe(false);
    expect(requiresUserContext({ username: 'alice' })).toBe(false);
  });
});

describe('principalFromClaims', () => {
  it('identifies a human by sub, with roles from cognito:groups', () => {
    const principal = principalFromClaims({
      ...cognitoUser,
      email: 'a@b.c',
      'cognito:groups': ['admin'],
      'custom:tenant_id': 't1',
    });
    expect(principal).toEqual({
      id: 'u-1',
      isM2M: false,
      clientId: 'web',
      email: 'a@b.c',
      scopes: ['openid'],
      roles: ['admin'],
      tenantId: 't1',
      authMethod: 'jwt',
      claims: expect.objectContaining({ sub: 'u-1' }),
    });
  });

  it('identifies a machine by its client id', () => {
    expect(principalFromClaims(cognitoM2M)).toMatchObject({ id: 'svc', isM2M: true, roles: [] });
  });

  it('reads roles and tenant from configured claims', () => {
    const principal = principalFromClaims(
      { ...cognitoUser, roles: 'editor,viewer', org: 'acme' },
      { rolesClaim: 'roles', tenantClaim: 'org' },
    );
    expect(principal).toMatchObject({ roles: ['editor', 'viewer'], tenantId: 'acme' });
  });

  it('names no principal when the token has neither sub nor client', () => {
    expect(principalFromClaims({ username: 'alice' })).toBeUndefined();
  });

  it('names no principal for an id or tenant that could not be a key: too long, ill-formed, control characters', () => {
    expect(principalFromClaims({ ...cognitoUser, sub: 'u'.repeat(maxIdentifierLength) })).toBeDefined();
    for (const unusable of ['u'.repeat(maxIdentifierLength + 1), 'lone\ud800', 'line\nbreak']) {
      expect(principalFromClaims({ ...cognitoUser, sub: unusable })).toBeUndefined();
      expect(principalFromClaims({ ...cognitoUser, 'custom:tenant_id': unusable })).toBeUndefined();
      expect(principalFromClaims({ ...cognitoM2M, client_id: unusable })).toBeUndefined();
    }
  });

  it('names no principal for a tenant claim that is there but is no usable string, so it never counts as none', () => {
    for (const unusable of [['other'], 42, { id: 'other' }, null, true, '']) {
      expect(principalFromClaims({ ...cognitoUser, 'custom:tenant_id': unusable })).toBeUndefined();
      expect(principalFromClaims({ ...cognitoM2M, org: unusable }, { tenantClaim: 'org' })).toBeUndefined();
    }
    expect(principalFromClaims(cognitoUser)?.tenantId).toBeUndefined();
  });

  it('reads lists in every shape issuers and API Gateway use', () => {
    expect(listClaim(['a', 2, 'b'])).toEqual(['a', 'b']);
    expect(listClaim('[admin readers]')).toEqual(['admin', 'readers']);
    expect(listClaim('a, b c')).toEqual(['a', 'b', 'c']);
    expect(listClaim(undefined)).toEqual([]);
  });
});
