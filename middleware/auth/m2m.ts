// Machine-to-machine detection: tells service-account (client-credentials) tokens from human users' tokens.

/** JWT claims as decoded from a token or handed over by an API Gateway JWT authorizer. */
export type Claims = Readonly<Record<string, unknown>>;

/** What {@link getTokenMetadata} reports about a token. */
export interface TokenMetadata {
  /** Cognito's `token_use` (`access` or `id`), when present. */
  readonly tokenUse: string | undefined;
  readonly clientId: string | undefined;
  readonly scopes: readonly string[];
  /** The token speaks for a human user (see {@link requiresUserContext}). */
  readonly hasUserContext: boolean;
}

/** Claims only a human user's token carries; any of them rules out a service account. */
const userClaims = [
  'cognito:username',
  'username',
  'email',
  'name',
  'given_name',
  'family_name',
  'preferred_username',
  'phone_number',
] as const;

function stringClaim(claims: Claims, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * The OAuth client the token was issued to: `client_id` (Cognito access tokens, RFC 9068), else
 * `azp` (OIDC authorized party), else `cid` (Okta).
 *
 * @example
 * getClientId({ token_use: 'access', client_id: 'svc-bookings' }); // 'svc-bookings'
 */
export function getClientId(claims: Claims): string | undefined {
  return stringClaim(claims, 'client_id') ?? stringClaim(claims, 'azp') ?? stringClaim(claims, 'cid');
}

/**
 * Scopes from `scope` (space-separated, RFC 8693) or `scp` (an array or a string, Azure/Okta).
 *
 * @example
 * getScopes({ scope: 'bookings/read bookings/write' }); // ['bookings/read', 'bookings/write']
 */
export function getScopes(claims: Claims): string[] {
  const value = claims['scope'] ?? claims['scp'];
  if (Array.isArray(value)) return value.filter((scope): scope is string => typeof scope === 'string');
  if (typeof value !== 'string') return [];
  // An API Gateway JWT authorizer hands an `scp` array over as one string: "[bookings/read bookings/write]".
  const list =
    claims['scope'] === undefined && value.startsWith('[') && value.endsWith(']')
      ? value.slice(1, -1)
      : value;
  return list.split(' ').filter((scope) => scope.length > 0);
}

/**
 * Whether the token was issued to a machine (client-credentials grant) rather than a human user.
 * Cognito's shape: `token_use` is `access`, a `client_id` is present, and there is no
 * `cognito:username`/`username` or other user claim. Generic OIDC issuers' shape: no user claim and
 * either `gty: client-credentials` (Auth0) or a `sub` equal to the client id.
 *
 * @example
 * isM2MToken({ token_use: 'access', client_id: 'svc', scope: 'api/read' }); // true
 * isM2MToken({ token_use: 'access', client_id: 'web', username: 'alice' }); // false
 */
export function isM2MToken(claims: Claims): boolean {
  if (userClaims.some((name) => claims[name] !== undefined)) return false;
  const clientId = getClientId(claims);
  if (claims['token_use'] === 'access' && clientId !== undefined) return true;
  if (claims['gty'] === 'client-credentials') return true;
  return clientId !== undefined && claims['sub'] === clientId;
}

/**
 * Whether the token carries a user context, i.e. may be used for operations on behalf of a person:
 * it has a subject and is not a machine token.
 *
 * @example
 * if (!requiresUserContext(claims)) throw new ForbiddenError('This endpoint requires a human user');
 */
export function requiresUserContext(claims: Claims): boolean {
  return stringClaim(claims, 'sub') !== undefined && !isM2MToken(claims);
}

/**
 * Everything the detector knows about a token, for logs and decisions.
 *
 * @example
 * getTokenMetadata({ token_use: 'access', client_id: 'svc', scope: 'a/read a/write' });
 * // { tokenUse: 'access', clientId: 'svc', scopes: ['a/read', 'a/write'], hasUserContext: false }
 */
export function getTokenMetadata(claims: Claims): TokenMetadata {
  return {
    tokenUse: stringClaim(claims, 'token_use'),
    clientId: getClientId(claims),
    scopes: getScopes(claims),
    hasUserContext: requiresUserContext(claims),
  };
}
