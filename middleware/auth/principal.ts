// Who is calling: the one shape every authentication method produces and every guard, limiter and audit reads.

/** How the caller proved who it is. */
export type AuthMethod = 'jwt' | 'apiKey' | 'service';

export interface Principal {
  /** Stable id: `sub` for users, the client id for M2M tokens, the key id for API keys, the service id. */
  readonly id: string;
  /** A machine (client-credentials token, API key or signed service request) rather than a human user. */
  readonly isM2M: boolean;
  readonly clientId: string | undefined;
  readonly email: string | undefined;
  /** OAuth scopes (`scope` claim, API key scopes). */
  readonly scopes: readonly string[];
  /** Roles (`cognito:groups` or a configured claim). */
  readonly roles: readonly string[];
  /**
   * Tenant: the token's tenant claim (a configured one), an API key's stored tenant, or `authenticate`'s
   * `unclaimedTenant` when the credential names none.
   */
  readonly tenantId: string | undefined;
  readonly authMethod: AuthMethod;
  /** The verified claims (JWT) or the key/service metadata; never the credential itself. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Whether the caller is a person or a machine, as a word for keys: a person's `sub` may be the same
 * string as a client-credentials client's id, and both authenticate with a JWT, so a key naming only the
 * method and the id would give them one budget or one idempotency scope.
 */
export function principalKindOf(principal: Principal): 'person' | 'machine' {
  return principal.isM2M ? 'machine' : 'person';
}
