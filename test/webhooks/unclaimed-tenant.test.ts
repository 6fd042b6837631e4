// The sample's tenant `default`, reached with a token naming it and with one naming no tenant: one caller,
// whose endpoints stored before tokens without the claim were given the tenant stay theirs.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { captureStdout } from '../helpers/log-capture.js';
import { testPrincipal } from '../helpers/principals.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { endpointCount, registeringWebhookStore } from './helpers.js';

// Audit lines are INFO, which the suite otherwise silences; read when the runtime loads the functions.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();
let documents: ReturnType<typeof createDocumentClient>;

beforeAll(() => {
  documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
});

/** A person's token without the tenant claim, and the same person's naming `default`. */
async function personWithAndWithoutClaim() {
  const sub = `tenantless-${randomUUID()}`;
  return { sub, plain: await api.token({ sub }), claimed: await api.token({ sub, tenant: 'default' }) };
}

const listedIds = async (token: string) => {
  const listed = await api.request('GET', '/webhooks', { token });
  expect(listed.status).toBe(200);
  return (listed.body as { items: { id: string }[] }).items.map((item) => item.id);
};

describe('one person of tenant default, with and without the tenant claim', () => {
  it('spends one rate budget', async () => {
    const { plain, claimed } = await personWithAndWithoutClaim();
    const remaining: number[] = [];
    for (const token of [plain, claimed, plain, claimed]) {
      const response = await api.request('GET', '/webhooks', { token });
      expect(response.status).toBe(200);
      remaining.push(Number(/;r=(\d+)/.exec(response.headers.get('ratelimit') ?? '')?.[1]));
    }
    const [first = Number.NaN] = remaining;
    expect(remaining).toEqual([first, first - 1, first - 2, first - 3]);
  });

  it('gets the endpoint its first registration made back for a retry with the same key, and writes audit lines naming the tenant', async () => {
    const { sub, plain, claimed } = await personWithAndWithoutClaim();
    const key = `k-${randomUUID()}`;
    const correlationId = randomUUID();
    const body = { url: 'https://1.1.1.1/hook', eventTypes: ['booking.created'] };
    const first = await api.request('POST', '/webhooks', {
      token: plain,
      body,
      headers: { 'idempotency-key': key, 'x-correlation-id': correlationId },
    });
    expect(first.status).toBe(201);
    const retry = await api.request('POST', '/webhooks', {
      token: claimed,
      body,
      headers: { 'idempotency-key': key },
    });
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(await endpointCount(documents, sub)).toBe(1);
    const lines = output.audit().filter((line) => line.correlationId === correlationId);
    expect(lines.map((line) => [line.eventType, line.tenantId])).toEqual(
      expect.arrayContaining([
        ['webhook.endpoint_created', 'default'],
        ['http.request', 'default'],
      ]),
    );
    expect(lines.filter((line) => line.tenantId !== 'default')).toEqual([]);
  });

  it('still lists, reads and deletes an endpoint stored for a token without the claim before it was given the tenant', async () => {
    const { sub, plain, claimed } = await personWithAndWithoutClaim();
    const store = registeringWebhookStore(documents);
    // The principal authentication made of such a token until then: no tenant at all.
    const before = testPrincipal({ id: sub, tenantId: undefined });
    const { endpoint } = await store.createEndpoint(before, {
      url: 'https://1.1.1.1/stored-before',
      eventTypes: ['booking.created'],
    });
    expect(endpoint.tenantId).toBe('default');
    expect(await listedIds(plain)).toEqual([endpoint.id]);
    expect(await listedIds(claimed)).toEqual([endpoint.id]);
    const read = await api.request('GET', `/webhooks/${endpoint.id}`, { token: plain });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: endpoint.id, url: 'https://1.1.1.1/stored-before' });
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: plain })).status).toBe(204);
    expect(await listedIds(plain)).toEqual([]);
    expect(await endpointCount(documents, sub)).toBe(0);
  });
});
