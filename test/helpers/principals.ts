// A Principal to hand to middlewares and models in tests, without going through authentication.
import { randomUUID } from 'node:crypto';
import type { Principal } from '../../middleware/auth/principal.js';

/** A human principal with a fresh id (override any field: `roles`, `isM2M`, `tenantId`...). */
export function testPrincipal(overrides: Partial<Principal> = {}): Principal {
  return {
    id: `p-${randomUUID()}`,
    isM2M: false,
    clientId: undefined,
    email: undefined,
    scopes: [],
    roles: [],
    tenantId: undefined,
    authMethod: 'jwt',
    claims: {},
    ...overrides,
  };
}
