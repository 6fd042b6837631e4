// The store's tenant boundary for administrators (GET and DELETE /admin/webhooks/{id}): an endpoint of another
// tenant is not found and stays as it is, whatever the route's own checks let through.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../middleware/errors.js';
import { testPrincipal } from '../helpers/principals.js';
import { register, store } from './counting-store.js';

describe('an endpoint of another tenant, at the store', () => {
  it('is not found by an administrator of this tenant, neither read nor deleted, and stays for its own', async () => {
    const otherTenant = `tenant-${randomUUID()}`;
    const { endpoint } = await register(testPrincipal({ id: `user-${randomUUID()}`, tenantId: otherTenant }));
    try {
      const notFound = new NotFoundError(`Webhook endpoint ${endpoint.id} not found`);
      await expect(store.getTenantEndpoint(endpoint.id, 'default')).rejects.toThrow(notFound);
      await expect(store.deleteTenantEndpoint(endpoint.id, 'default')).rejects.toThrow(notFound);
      expect(await store.getEndpoint(endpoint.id)).toMatchObject({
        id: endpoint.id,
        tenantId: otherTenant,
        status: 'enabled',
      });
      expect(await store.getTenantEndpoint(endpoint.id, otherTenant)).toMatchObject({ id: endpoint.id });
    } finally {
      await store.deleteTenantEndpoint(endpoint.id, otherTenant);
    }
    expect(await store.getEndpoint(endpoint.id)).toBeUndefined();
  });
});
