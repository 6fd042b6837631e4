// Turns verified JWT claims into the Principal every guard, limiter and audit event reads.

import type { Resolved } from '../options.js';
import { type Claims, getClientId, getScopes, isM2MToken } from './m2m.js';
import type { Principal } from './principal.js';

export interface ClaimMapping {
  /**
   * Claim holding the caller's roles (an array, a space/comma-separated string, or API Gateway's
   * flattened `[a b]` form).
   * @default 'cognito:groups'
   */
  readonly rolesClaim?: string | undefined;
  /**
   * Claim holding the caller's tenant.
   * @default 'custom:tenant_id'
   */
  readonly tenantClaim?: string | undefined;
}

/** The claims read when a mapping names none: Cognito's groups, and its custom tenant attribute. */
export const defaultClaimMapping: Resolved<ClaimMapping> = {
  rolesClaim: 'cognito:groups',
  tenantClaim: 'custom:tenant_id',
};

/** Reads a list claim in any of the shapes issuers and API Gateway use. */
export function listClaim(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  if (typeof value !== 'string') return [];
  // An API Gateway JWT authorizer hands arrays over as strings like "[admin readers]".
  const inner = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  return inner.split(/[\s,]+/).filter((item) => item.length > 0);
}

/** The longest principal id or tenant accepted, in characters (Cognito's are 36). */
export const maxIdentifierLength = 256;

/**
 * Whether a claim can name a principal or a tenant: ids become key segments, rate-limit keys and
 * encryption contexts, so one that DynamoDB cannot store (over 2 KB) or that UTF-8 would change (a lone
 * surrogate) must not get that far.
 */
export function isUsableIdentifier(value: string): boolean {
  return (
    value.length > 0 && value.length <= maxIdentifierLength && value.isWellFormed() && !/\p{Cc}/u.test(value)
  );
}

/**
 * The principal a verified token stands for. Machines are identified by their client id, humans by
 * `sub`. Returns undefined, and the verifier rejects the token, when it names neither, when its id is
 * not a usable identifier (empty, longer than {@link maxIdentifierLength} characters, ill-formed text, or
 * holding a control character), or when it has a tenant claim that is not a usable identifier string:
 * only a token without the claim has no tenant.
 *
 * @example
 * const principal = principalFromClaims(claims, { rolesClaim: 'roles' });
 */
export function principalFromClaims(claims: Claims, mapping: ClaimMapping = {}): Principal | undefined {
  const rolesClaim = mapping.rolesClaim ?? defaultClaimMapping.rolesClaim;
  const tenantClaim = mapping.tenantClaim ?? defaultClaimMapping.tenantClaim;
  const isM2M = isM2MToken(claims);
  const clientId = getClientId(claims);
  const sub = typeof claims['sub'] === 'string' && claims['sub'].length > 0 ? claims['sub'] : undefined;
  const id = isM2M ? clientId : sub;
  if (id === undefined || !isUsableIdentifier(id)) return undefined;
  const tenant = claims[tenantClaim];
  const tenantId = typeof tenant === 'string' && isUsableIdentifier(tenant) ? tenant : undefined;
  // A tenant of ["other"], 42 or '' is no tenant to check, and reading it as none would give the token
  // the guards' unclaimed tenant: only an absent claim means none.
  if (tenant !== undefined && tenantId === undefined) return undefined;
  return {
    id,
    isM2M,
    clientId,
    email: typeof claims['email'] === 'string' ? claims['email'] : undefined,
    scopes: getScopes(claims),
    roles: listClaim(claims[rolesClaim]),
    tenantId,
    authMethod: 'jwt',
    claims,
  };
}
