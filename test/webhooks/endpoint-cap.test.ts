// The per-owner endpoint cap, through the local runtime with a cap of 5 (the default is 20; POST /webhooks
// is also limited to 10 per minute per user, so this file stays within that).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { endpointCount, type Receiver, startReceiver } from './helpers.js';

// Read by the webhooks function when the runtime loads it.
process.env.WEBHOOK_MAX_ENDPOINTS_PER_OWNER = '5';
const api = useLocalRuntime();
let target: Receiver;
const documents = () =>
  createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));

beforeAll(async () => {
  target = await startReceiver();
});

afterAll(async () => {
  await target.close();
});

describe('endpoints per owner', () => {
  it('caps an owner against eight registrations sent back to back through the runtime, 409 with nothing stored, and frees a slot on delete', async () => {
    const owner = `wh-cap-${randomUUID()}`;
    const token = await api.token({ sub: owner });
    const body = { url: target.url, eventTypes: ['booking.created'] };
    // The runtime runs one webhooks invocation at a time, so these arrive one after another; the race
    // itself, on separate instances at once, is in test/webhooks/endpoint-count.test.ts.
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => api.request('POST', '/webhooks', { token, body })),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([201, 201, 201, 201, 201, 409, 409, 409]);
    const refused = answers.find((answer) => answer.status === 409);
    expect(refused?.headers.get('content-type')).toContain('application/problem+json');
    expect(refused?.body).toMatchObject({
      status: 409,
      code: 'CONFLICT',
      detail: 'An owner may have at most 5 webhook endpoints; delete one to register another',
    });
    expect(await endpointCount(documents(), owner)).toBe(5);

    // Another owner has a cap of their own.
    const other = await api.token({ sub: `wh-cap-other-${randomUUID()}` });
    expect((await api.request('POST', '/webhooks', { token: other, body })).status).toBe(201);

    // Deleting one endpoint lets this owner register exactly one more.
    const listed = await api.request('GET', '/webhooks?limit=1', { token });
    const [newest] = (listed.body as { items: { id: string }[] }).items;
    expect((await api.request('DELETE', `/webhooks/${newest?.id}`, { token })).status).toBe(204);
    expect((await api.request('DELETE', `/webhooks/${newest?.id}`, { token })).status).toBe(404);
    expect((await api.request('POST', '/webhooks', { token, body })).status).toBe(201);
    expect((await api.request('POST', '/webhooks', { token, body })).status).toBe(409);
    expect(await endpointCount(documents(), owner)).toBe(5);
  });
});
