// Authorization checks on a Principal: user, human, roles, scopes, tenant, RBAC permissions. Each returns a denial or nothing.
import {
  assertNoProblems,
  ForbiddenError,
  type HttpError,
  InsufficientScopeError,
  UnauthorizedError,
} from '../errors.js';
import { shownValue } from '../options.js';
import type { Principal } from './principal.js';
import type { Rbac } from './rbac.js';

/** Why access was denied, for the access.denied event, and the error the client gets. */
export interface Denial {
  readonly reason:
    | 'unauthenticated'
    | 'human_required'
    | 'missing_role'
    | 'insufficient_scope'
    | 'missing_permission'
    | 'wrong_tenant';
  readonly error: HttpError;
}

/** A check of a principal: undefined when it passes. */
export type Guard = (principal: Principal | undefined) => Denial | undefined;

const unauthenticated = (): Denial => ({
  reason: 'unauthenticated',
  error: new UnauthorizedError('Authentication is required', {
    headers: { 'WWW-Authenticate': 'Bearer realm="bulwark"' },
  }),
});

/**
 * What a guard would misread at request time: an empty list (every() over it passes everyone), or a
 * string where a list belongs (a Set of 'admin' holds its letters).
 */
function nameListProblems(field: string, names: unknown): string[] {
  const isNameList =
    Array.isArray(names) &&
    names.length > 0 &&
    names.every((name) => typeof name === 'string' && name.length > 0);
  return isNameList
    ? []
    : [`${field} must be a non-empty list of non-empty strings (got ${shownValue(names)})`];
}

/** An exemption that is not a function would throw on every request it is asked about. */
function exemptionProblems(options: ExemptionOptions): string[] {
  return options.unless === undefined || typeof options.unless === 'function'
    ? []
    : [`unless must be a function of the principal (got ${shownValue(options.unless)})`];
}

/** Any authenticated caller, human or machine. */
export function userGuard(): Guard {
  return (principal) => (principal === undefined ? unauthenticated() : undefined);
}

/** A human user: machine principals (M2M tokens, API keys, services) get 403. */
export function humanGuard(): Guard {
  return (principal) => {
    if (principal === undefined) return unauthenticated();
    if (!principal.isM2M) return undefined;
    return { reason: 'human_required', error: new ForbiddenError('This endpoint requires a human user') };
  };
}

/** For a check that governs only some callers: roles for people and scopes for machines, say. */
export interface ExemptionOptions {
  /** Principals this check does not apply to (they still have to be authenticated). @default none */
  readonly unless?: ((principal: Principal) => boolean) | undefined;
}

/** At least one of the roles. */
export function rolesGuard(roles: readonly string[], options: ExemptionOptions = {}): Guard {
  assertNoProblems('guard', [...nameListProblems('roles', roles), ...exemptionProblems(options)]);
  const accepted = new Set(roles);
  return (principal) => {
    if (principal === undefined) return unauthenticated();
    if (options.unless?.(principal)) return undefined;
    if (principal.roles.some((role) => accepted.has(role))) return undefined;
    return { reason: 'missing_role', error: new ForbiddenError(`Requires role ${roles.join(' or ')}`) };
  };
}

export type ScopesGuardOptions = ExemptionOptions;

/** Every one of the scopes. */
export function scopesGuard(scopes: readonly string[], options: ScopesGuardOptions = {}): Guard {
  assertNoProblems('guard', [...nameListProblems('scopes', scopes), ...exemptionProblems(options)]);
  return (principal) => {
    if (principal === undefined) return unauthenticated();
    if (options.unless?.(principal)) return undefined;
    if (scopes.every((scope) => principal.scopes.includes(scope))) return undefined;
    return { reason: 'insufficient_scope', error: new InsufficientScopeError(scopes) };
  };
}

export interface TenantGuardOptions {
  /**
   * The tenant of a principal whose token names none; without it such a principal is refused.
   * @default none
   */
  readonly unclaimedTenant?: string | undefined;
}

/** A principal of one of the tenants (its `tenantId`, from the token's tenant claim). */
export function tenantGuard(tenants: readonly string[], options: TenantGuardOptions = {}): Guard {
  const problems = nameListProblems('tenants', tenants);
  const { unclaimedTenant } = options;
  // A number or '' would match no listed tenant, so the exemption it was meant to grant would never apply.
  if (unclaimedTenant !== undefined && !(typeof unclaimedTenant === 'string' && unclaimedTenant.length > 0))
    problems.push(`unclaimedTenant must be a non-empty string (got ${shownValue(unclaimedTenant)})`);
  assertNoProblems('guard', problems);
  const accepted = new Set(tenants);
  return (principal) => {
    if (principal === undefined) return unauthenticated();
    const tenant = principal.tenantId ?? options.unclaimedTenant;
    if (tenant !== undefined && accepted.has(tenant)) return undefined;
    return { reason: 'wrong_tenant', error: new ForbiddenError('This tenant has no access here') };
  };
}

/** Every one of the permissions, granted through the principal's roles. */
export function permissionsGuard(rbac: Rbac, permissions: readonly string[]): Guard {
  const problems = nameListProblems('permissions', permissions);
  if (typeof rbac?.checkPermission !== 'function') problems.push('rbac must be an Rbac engine');
  assertNoProblems('guard', problems);
  return (principal) => {
    if (principal === undefined) return unauthenticated();
    const missing = permissions.filter((permission) => !rbac.checkPermission(principal.roles, permission));
    if (missing.length === 0) return undefined;
    return {
      reason: 'missing_permission',
      error: new ForbiddenError(`Requires permission ${missing.join(', ')}`),
    };
  };
}
