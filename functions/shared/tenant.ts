// The sample's tenant: fixed until the auth principal carries one (Principal.tenantId), then taken from it.

/**
 * Every sample user belongs to this tenant for now. It is still bound into each encrypted value's
 * context and blind index, so records already carry the tenant isolation a real tenant id will use.
 */
export const defaultTenantId = 'default';
