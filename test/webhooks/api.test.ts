import { randomUUID } from 'node:crypto';
import { DeleteCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deliverMessages,
  endpointCount,
  expectOnlyTombstone,
  type Receiver,
  registerEndpoint,
  sealAsBeforePurposes,
  startReceiver,
} from './helpers.js';

// Audit lines are INFO, which the suite otherwise silences; read when the runtime loads the functions.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime();
const output = captureStdout();
let documents: ReturnType<typeof createDocumentClient>;
let target: Receiver;
let ownerToken: string;
let strangerToken: string;

interface ProblemBody {
  status: number;
  code: string;
  errors?: { field: string; message: string }[];
}

beforeAll(async () => {
  documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
  target = await startReceiver();
  ownerToken = await api.token({ sub: `wh-owner-${randomUUID()}` });
  strangerToken = await api.token({ sub: `wh-stranger-${randomUUID()}` });
});

afterAll(async () => {
  await target.close();
});

/** An endpoint URL whose canonical form is exactly `length` characters long. */
const urlOfLength = (length: number) => `https://1.1.1.1/${'a'.repeat(length - 'https://1.1.1.1/'.length)}`;

/** Every toolkit item of one endpoint and its subscriptions. */
async function itemsOf(endpointId: string): Promise<Record<string, unknown>[]> {
  const { Items } = await documents.send(
    new ScanCommand({
      TableName: testTableNames.toolkit,
      FilterExpression: 'pk = :pk OR endpointId = :id',
      ExpressionAttributeValues: { ':pk': `WH#${endpointId}`, ':id': endpointId },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

describe('registering an endpoint', () => {
  it('answers 201 with a Location and the whsec_ secret, which is never shown again', async () => {
    const response = await api.request('POST', '/webhooks', {
      token: ownerToken,
      body: { url: target.url, eventTypes: ['booking.created', 'booking.created', 'user.registered'] },
    });
    expect(response.status).toBe(201);
    const created = response.body as { id: string; secret: string };
    expect(response.headers.get('location')).toBe(`/webhooks/${created.id}`);
    expect(created).toMatchObject({
      url: target.url,
      eventTypes: ['booking.created', 'user.registered'],
      status: 'enabled',
      ownerKind: 'user',
    });
    expect(created.secret).toMatch(/^whsec_/);
    // The secret must not outlive the answer in any cache.
    expect(response.headers.get('cache-control')).toBe('no-store');
    const read = await api.request('GET', `/webhooks/${created.id}`, { token: ownerToken });
    expect(read.status).toBe(200);
    expect(read.body).not.toHaveProperty('secret');
    expect(read.text).not.toContain(created.secret.slice(6));
    expect(read.body).toEqual(
      Object.fromEntries(Object.entries(created).filter(([key]) => key !== 'secret')),
    );
  });

  it('stores and answers the canonical URL the worker calls, not the text as typed', async () => {
    const { port } = new URL(target.url);
    // Full-width digits, a right-to-left override and a non-ASCII query: the parser folds the digits
    // and percent-encodes the rest, and that form is what the SSRF guard checks and the worker POSTs to.
    const typed = `http://\uff11\uff12\uff17.0.0.1:${port}/hooks/\u202eexe.txt?q=\u00e9`;
    const canonical = `http://127.0.0.1:${port}/hooks/%E2%80%AEexe.txt?q=%C3%A9`;
    const response = await api.request('POST', '/webhooks', {
      token: ownerToken,
      body: { url: typed, eventTypes: ['booking.created'] },
    });
    expect(response.status).toBe(201);
    const created = response.body as { id: string; url: string };
    expect(created.url).toBe(canonical);
    const read = await api.request('GET', `/webhooks/${created.id}`, { token: ownerToken });
    expect((read.body as { url: string }).url).toBe(canonical);
    const listed = await api.request('GET', '/webhooks?limit=100', { token: ownerToken });
    expect((listed.body as { items: { id: string; url: string }[] }).items).toContainEqual(
      expect.objectContaining({ id: created.id, url: canonical }),
    );
  });

  it('accepts a URL of exactly 2048 characters, the longest there is', async () => {
    const token = await api.token({ sub: `wh-long-${randomUUID()}` });
    const url = urlOfLength(2048);
    const response = await api.request('POST', '/webhooks', {
      token,
      body: { url, eventTypes: ['booking.created'] },
    });
    expect(response.status).toBe(201);
    expect((response.body as { url: string }).url).toBe(url);
  });

  it('stores the signing secret only encrypted: no item holds it in clear', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    const items = await itemsOf(endpoint.id);
    // The endpoint and its two subscriptions.
    expect(items).toHaveLength(3);
    const key = endpoint.secret.slice('whsec_'.length);
    const raw = Buffer.from(key, 'base64');
    for (const item of items) {
      const text = JSON.stringify(item, (_name, value) =>
        value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value,
      );
      expect(text).not.toContain(key);
      expect(text).not.toContain(raw.toString('base64url'));
      expect(text).not.toContain(raw.toString('hex'));
      for (const value of Object.values(item)) {
        if (value instanceof Uint8Array) expect(Buffer.from(value).includes(raw)).toBe(false);
      }
    }
    const stored = items.find((item) => item.sk === 'ENDPOINT');
    expect(stored?.secret).toBeDefined();
    expect(typeof stored?.secret === 'string' && stored.secret.startsWith('whsec_')).toBe(false);
  });

  it('registers an M2M client with webhooks/write and the read scope of its events as a tenant-wide integration', async () => {
    const reader = await api.token({ m2m: true, clientId: `svc-${randomUUID()}`, scopes: ['webhooks/read'] });
    const refused = await api.request('POST', '/webhooks', {
      token: reader,
      body: { url: target.url, eventTypes: ['booking.created'] },
    });
    expect(refused.status).toBe(403);
    const writeOnly = await api.token({
      m2m: true,
      clientId: `svc-${randomUUID()}`,
      scopes: ['webhooks/write'],
    });
    // Every booking and user of the tenant would reach it: it must be allowed to read them.
    for (const eventTypes of [['booking.cancelled'], ['booking.created', 'user.registered']]) {
      const unreadable = await api.request('POST', '/webhooks', {
        token: writeOnly,
        body: { url: target.url, eventTypes },
      });
      expect(unreadable.status).toBe(403);
      expect(unreadable.body).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
    }
    expect(
      (
        await api.request('POST', '/webhooks', {
          token: await api.token({ m2m: true, scopes: ['webhooks/write', 'bookings/read'] }),
          body: { url: target.url, eventTypes: ['user.registered'] },
        })
      ).headers.get('www-authenticate'),
    ).toContain('scope="users/read"');
    const writer = await api.token({
      m2m: true,
      clientId: `svc-${randomUUID()}`,
      scopes: ['webhooks/write', 'bookings/read'],
    });
    const created = await api.request('POST', '/webhooks', {
      token: writer,
      body: { url: target.url, eventTypes: ['booking.cancelled'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ownerKind: 'integration' });
    // Tenant-wide: remove it so other files' bookings are not sent to this test's receiver.
    const removed = await api.request('DELETE', `/webhooks/${(created.body as { id: string }).id}`, {
      token: writer,
    });
    expect(removed.status).toBe(204);
  });

  it('requires a token', async () => {
    const response = await api.request('POST', '/webhooks', {
      token: null,
      body: { url: target.url, eventTypes: ['booking.created'] },
    });
    expect(response.status).toBe(401);
  });
});

describe('retrying a registration with an Idempotency-Key', () => {
  /** A caller of its own, so its endpoints can be counted and its registrations stay within the limit. */
  async function newCaller() {
    const sub = `wh-retry-${randomUUID()}`;
    return { sub, token: await api.token({ sub }) };
  }

  const registration = { url: 'https://1.1.1.1/hooks', eventTypes: ['booking.created'] };

  function register(token: string, key: string | undefined, body: unknown = registration) {
    return api.request('POST', '/webhooks', {
      token,
      body,
      ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
    });
  }

  /** Every idempotency record of the webhooks function. */
  const registrationRecords = () => idempotencyRecordsOf(documents, 'webhooks');

  it('answers the same key and body with the endpoint it made, secret included, and makes no second', async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const first = await register(caller.token, key);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const retry = await register(caller.token, key);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('location')).toBe(first.headers.get('location'));
    expect(retry.headers.get('cache-control')).toBe('no-store');
    expect(await endpointCount(documents, caller.sub)).toBe(1);
  });

  it('keeps the record an hour and without the secret, which stays only encrypted on the endpoint', async () => {
    const caller = await newCaller();
    const startedSec = Date.now() / 1000;
    const created = (await register(caller.token, randomUUID())).body as { id: string; secret: string };
    const key = created.secret.slice('whsec_'.length);
    const records = (await registrationRecords()).filter((record) =>
      JSON.stringify(record).includes(created.id),
    );
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ status: 'COMPLETED', pk: `IDEM#webhooks#${records[0]?.sk}` });
    expect(JSON.stringify(records)).not.toContain(key);
    expect(records[0]?.expiresAt).toBeGreaterThanOrEqual(Math.floor(startedSec) + 3600);
    expect(records[0]?.expiresAt).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
  });

  it('answers 409 to the retry of a registration whose secret was sealed before secrets carried their purpose', async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const first = (await register(caller.token, key)).body as { id: string; secret: string };
    // As if registered before the upgrade: the webhooks function's grant in AWS may not decrypt it.
    await sealAsBeforePurposes(documents, first.id, first.secret);
    const before = await itemsOf(first.id);
    const retry = await register(caller.token, key);
    expect(retry.status).toBe(409);
    expect(retry.headers.get('content-type')).toBe('application/problem+json');
    expect((retry.body as ProblemBody).code).toBe('CONFLICT');
    // Rotating keeps the endpoint and its deliveries, where deleting it dropped those still being retried.
    expect((retry.body as ProblemBody & { detail: string }).detail).toBe(
      `Webhook endpoint ${first.id} was registered before an upgrade and its secret can no longer be answered again; rotate it (POST /webhooks/${first.id}/secret) for a new one`,
    );
    expect(retry.text).not.toContain(first.secret.slice('whsec_'.length));
    expect(await itemsOf(first.id)).toEqual(before);
    expect(await endpointCount(documents, caller.sub)).toBe(1);
  });

  it('answers 422 to the same key with another body, and registers nothing', async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const first = await register(caller.token, key);
    const other = await register(caller.token, key, { ...registration, eventTypes: ['booking.cancelled'] });
    expect(other.status).toBe(422);
    expect(other.headers.get('content-type')).toBe('application/problem+json');
    expect((other.body as ProblemBody).code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await endpointCount(documents, caller.sub)).toBe(1);
    // The stored answer is still there for the real retry.
    expect((await register(caller.token, key)).text).toBe(first.text);
  });

  it.each<[string, string[], string[]]>([
    ['a user who became an admin', [], ['admin']],
    ['an admin who became a user', ['admin'], []],
  ])(
    'answers 422 to %s retrying with the same key and request while the record lasts, and replays no endpoint of the old role',
    async (_change, rolesBefore, rolesNow) => {
      const sub = `wh-retry-${randomUUID()}`;
      const before = await api.token({ sub, roles: rolesBefore });
      const now = await api.token({ sub, roles: rolesNow });
      const key = randomUUID();
      const first = await register(before, key);
      expect(first.status).toBe(201);
      const made = first.body as { id: string; secret: string };
      try {
        const items = await itemsOf(made.id);
        const retry = await register(now, key);
        expect(retry.status).toBe(422);
        expect(retry.headers.get('content-type')).toBe('application/problem+json');
        expect(retry.headers.get('idempotent-replayed')).toBeNull();
        expect(retry.body).toMatchObject({
          code: 'IDEMPOTENCY_KEY_REUSED',
          detail: 'This idempotency key was already used with a different request',
        });
        expect(retry.text).not.toContain(made.secret.slice('whsec_'.length));
        expect(await itemsOf(made.id)).toEqual(items);
        expect(await endpointCount(documents, sub)).toBe(1);
        // The record is kept for the retry in the role it was made in.
        expect((await register(before, key)).text).toBe(first.text);
      } finally {
        // An admin's endpoint is tenant-wide on the shared table, which must not keep it past this test.
        await api.request('DELETE', `/webhooks/${made.id}`, { token: before });
      }
    },
  );

  it('gives another caller with the same key and body an endpoint and a secret of its own', async () => {
    const owner = await newCaller();
    const other = await newCaller();
    const key = randomUUID();
    const owners = (await register(owner.token, key)).body as { id: string; secret: string };
    const response = await register(other.token, key);
    expect(response.status).toBe(201);
    expect(response.headers.get('idempotent-replayed')).toBeNull();
    const others = response.body as { id: string; secret: string };
    expect(others.id).not.toBe(owners.id);
    expect(others.secret).not.toBe(owners.secret);
    expect(response.text).not.toContain(owners.secret);
    expect(await endpointCount(documents, owner.sub)).toBe(1);
    expect(await endpointCount(documents, other.sub)).toBe(1);
  });

  it('registers every request without a key', async () => {
    const caller = await newCaller();
    const first = (await register(caller.token, undefined)).body as { id: string; secret: string };
    const second = (await register(caller.token, undefined)).body as { id: string; secret: string };
    expect(second.id).not.toBe(first.id);
    expect(second.secret).not.toBe(first.secret);
    expect(await endpointCount(documents, caller.sub)).toBe(2);
  });

  /** Stands for the record's hour passing: deletes the Idempotency-Key record that holds `endpointId`'s answer. */
  async function expireRecordOf(endpointId: string) {
    const kept = (await registrationRecords()).filter((record) =>
      JSON.stringify(record).includes(endpointId),
    );
    expect(kept).toHaveLength(1);
    await documents.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: { pk: kept[0]?.pk, sk: kept[0]?.sk } }),
    );
  }

  it.each<[string[]]>([
    [['booking.created', 'booking.cancelled']],
    [['booking.cancelled', 'booking.created']],
    // One named twice is the same request as once: the endpoint stores it once.
    [['booking.created', 'booking.created', 'booking.cancelled']],
  ])(
    'judges a retry by the set of events it subscribes to, while the record lasts and after it: first sent %j',
    async (firstOrder) => {
      const caller = await newCaller();
      const key = randomUUID();
      const sentFirst = { ...registration, eventTypes: firstOrder };
      const sentAgain = { ...registration, eventTypes: [...new Set(firstOrder)].reverse() };
      const first = await register(caller.token, key, sentFirst);
      expect(first.status).toBe(201);
      const { id } = first.body as { id: string };

      const expectReplayed = async (body: unknown) => {
        const retry = await register(caller.token, key, body);
        expect(retry.status).toBe(201);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.text).toBe(first.text);
      };
      const expectRefused = async () => {
        const other = await register(caller.token, key, { ...registration, eventTypes: ['booking.created'] });
        expect(other.status).toBe(422);
        expect((other.body as ProblemBody).code).toBe('IDEMPOTENCY_KEY_REUSED');
      };
      // While the record lasts.
      await expectReplayed(sentAgain);
      await expectReplayed(sentFirst);
      await expectRefused();
      // After it, each body compared with the endpoint the key made (each replay stores a record anew).
      for (const body of [sentAgain, sentFirst]) {
        await expireRecordOf(id);
        await expectReplayed(body);
      }
      await expireRecordOf(id);
      await expectRefused();
      expect(await endpointCount(documents, caller.sub)).toBe(1);
    },
  );

  it('after its record is gone audits the creation once, and the secret answered again apart', async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const first = (await register(caller.token, key)).body as {
      id: string;
      secret: string;
      createdAt: string;
    };
    await expireRecordOf(first.id);
    expect((await register(caller.token, key)).status).toBe(201);
    const ours = (eventType: string) =>
      output
        .audit()
        .filter((event) => event.eventType === eventType && event.metadata?.endpointId === first.id);
    expect(ours('webhook.endpoint_created')).toHaveLength(1);
    expect(ours('webhook.endpoint_creation_replayed')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        metadata: {
          endpointId: first.id,
          eventTypes: registration.eventTypes,
          ownerKind: 'user',
          createdAt: first.createdAt,
        },
      }),
    ]);
    expect(JSON.stringify(output.audit())).not.toContain(first.secret.slice('whsec_'.length));
  });

  it("answers 409 to a retry once the endpoint's secret was rotated, while the record lasts and after it, showing no secret and writing nothing", async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const made = (await register(caller.token, key)).body as { id: string; secret: string };
    const rotation = await api.request('POST', `/webhooks/${made.id}/secret`, { token: caller.token });
    expect(rotation.status).toBe(200);
    const rotatedSecret = (rotation.body as { secret: string }).secret;
    const items = await itemsOf(made.id);
    const expectRotated = async () => {
      const retry = await register(caller.token, key);
      expect(retry.status).toBe(409);
      expect(retry.headers.get('content-type')).toBe('application/problem+json');
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(retry.body).toMatchObject({
        code: 'CONFLICT',
        detail: `The signing secret of webhook endpoint ${made.id} was rotated after the registration this Idempotency-Key made; the registration's secret is not shown again`,
      });
      for (const secret of [made.secret, rotatedSecret]) {
        expect(retry.text).not.toContain(secret.slice('whsec_'.length));
      }
      expect(await itemsOf(made.id)).toEqual(items);
    };
    await expectRotated();
    await expireRecordOf(made.id);
    await expectRotated();
    expect(await endpointCount(documents, caller.sub)).toBe(1);
    expect(
      output
        .audit()
        .filter(
          (event) =>
            event.eventType === 'webhook.endpoint_creation_replayed' &&
            event.metadata?.endpointId === made.id,
        ),
    ).toEqual([]);
  });

  it("answers the tombstone's 409 to a retry once the endpoint it made is deleted, while the record lasts and after it (another request: 422 while it lasts), and makes no new one", async () => {
    const caller = await newCaller();
    const key = randomUUID();
    const created = (await register(caller.token, key)).body as { id: string };
    expect((await api.request('DELETE', `/webhooks/${created.id}`, { token: caller.token })).status).toBe(
      204,
    );
    const expectRetired = async (body: unknown = registration) => {
      const retry = await register(caller.token, key, body);
      expect(retry.status).toBe(409);
      expect(retry.headers.get('content-type')).toBe('application/problem+json');
      expect(retry.body).toMatchObject({
        code: 'CONFLICT',
        detail: `Webhook endpoint ${created.id}, which a registration with this Idempotency-Key made, was deleted; register with a new Idempotency-Key`,
      });
    };
    const otherRequest = { ...registration, eventTypes: ['booking.cancelled'] };
    await expectRetired();
    // Another request with the key is refused as the record refuses it while the record lasts.
    const reused = await register(caller.token, key, otherRequest);
    expect(reused.status).toBe(422);
    expect((reused.body as ProblemBody).code).toBe('IDEMPOTENCY_KEY_REUSED');
    await expireRecordOf(created.id);
    await expectRetired();
    await expectRetired(otherRequest);
    expect(await endpointCount(documents, caller.sub)).toBe(0);
  });
});

describe('conditional requests (If-Match)', () => {
  const staleTag = { 'if-match': '"definitely-not-current"' };

  /** A caller of its own: registrations spend the per-user budget of the strict policy. */
  async function newOwner() {
    const sub = `wh-if-match-${randomUUID()}`;
    return { sub, token: await api.token({ sub }) };
  }

  it('answers 412 to a DELETE whose If-Match names an entity tag, and deletes nothing', async () => {
    const { token } = await newOwner();
    const endpoint = await registerEndpoint(api, token, target.url);
    const refused = await api.request('DELETE', `/webhooks/${endpoint.id}`, {
      token,
      headers: staleTag,
    });
    expect(refused.status).toBe(412);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(refused.body).toMatchObject({
      type: 'urn:bulwark:problem:precondition-failed',
      title: 'Precondition Failed',
      status: 412,
      code: 'PRECONDITION_FAILED',
      instance: `/webhooks/${endpoint.id}`,
    });
    // A weak tag, a list, and a list with `*` in it are no `*`.
    for (const ifMatch of ['W/"x"', '"a", "b"', '*, "a"']) {
      const response = await api.request('DELETE', `/webhooks/${endpoint.id}`, {
        token,
        headers: { 'If-Match': ifMatch },
      });
      expect(response.status, ifMatch).toBe(412);
    }
    // The endpoint and its two subscriptions.
    expect(await itemsOf(endpoint.id)).toHaveLength(3);
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token })).status).toBe(200);
  });

  it('answers 412 to a POST with If-Match before its idempotency record or its endpoint is written', async () => {
    const { sub, token } = await newOwner();
    const key = randomUUID();
    const body = { url: target.url, eventTypes: ['booking.created'] };
    const refused = await api.request('POST', '/webhooks', {
      token,
      body,
      headers: { ...staleTag, 'idempotency-key': key },
    });
    expect(refused.status).toBe(412);
    expect(refused.body).toMatchObject({ code: 'PRECONDITION_FAILED' });
    expect(await endpointCount(documents, sub)).toBe(0);
    // The key was not taken: without the condition it registers, as a first request does.
    const registered = await api.request('POST', '/webhooks', {
      token,
      body,
      headers: { 'idempotency-key': key },
    });
    expect(registered.status).toBe(201);
    expect(registered.headers.get('idempotent-replayed')).toBeNull();
    expect(await endpointCount(documents, sub)).toBe(1);
  });

  it('applies the method under If-Match: *, ignoring If-Unmodified-Since, and answers 404 once there is nothing', async () => {
    const { token } = await newOwner();
    const endpoint = await registerEndpoint(api, token, target.url);
    const conditions = { 'if-match': '*', 'if-unmodified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' };
    const remove = () => api.request('DELETE', `/webhooks/${endpoint.id}`, { token, headers: conditions });
    const deleting = Date.now();
    expect((await remove()).status).toBe(204);
    expectOnlyTombstone(await itemsOf(endpoint.id), endpoint.id, deleting);
    expect((await remove()).status).toBe(404);
  });

  it('answers 412 to If-None-Match: * on a DELETE or a secret rotation of an endpoint that exists, applying neither', async () => {
    const { token } = await newOwner();
    const endpoint = await registerEndpoint(api, token, target.url);
    const noneMatch = { 'if-none-match': '*' };
    const stored = await itemsOf(endpoint.id);
    for (const [method, path] of [
      ['DELETE', `/webhooks/${endpoint.id}`],
      ['POST', `/webhooks/${endpoint.id}/secret`],
    ] as const) {
      const refused = await api.request(method, path, { token, headers: noneMatch });
      expect(refused.status, path).toBe(412);
      expect(refused.body).toMatchObject({
        code: 'PRECONDITION_FAILED',
        detail:
          'If-None-Match: * holds only where no resource exists, and this request acts on one: the request was not applied',
      });
    }
    // Neither deleted nor rotated: the endpoint and its two subscriptions as they were.
    expect(await itemsOf(endpoint.id)).toEqual(stored);
    const read = await api.request('GET', `/webhooks/${endpoint.id}`, { token, headers: noneMatch });
    expect(read.status).toBe(200);
    // Without the condition the rotation is applied, and changes what is stored.
    expect((await api.request('POST', `/webhooks/${endpoint.id}/secret`, { token })).status).toBe(200);
    expect(await itemsOf(endpoint.id)).not.toEqual(stored);
  });

  it('lets authentication answer first, and holds on every function, the public health check too', async () => {
    const { token } = await newOwner();
    const endpoint = await registerEndpoint(api, token, target.url);
    const anonymous = await api.request('DELETE', `/webhooks/${endpoint.id}`, {
      token: null,
      headers: staleTag,
    });
    expect(anonymous.status).toBe(401);
    const health = await api.request('GET', '/health', { headers: staleTag });
    expect(health.status).toBe(412);
    expect(health.body).toMatchObject({ code: 'PRECONDITION_FAILED' });
  });
});

describe('bad input', () => {
  const badBodies: [string, unknown, string][] = [
    [
      'an unknown event type',
      { url: 'https://example.com/h', eventTypes: ['booking.exploded'] },
      'body.eventTypes.0',
    ],
    ['no event types', { url: 'https://example.com/h', eventTypes: [] }, 'body.eventTypes'],
    [
      'event types that are not a list',
      { url: 'https://example.com/h', eventTypes: 'booking.created' },
      'body.eventTypes',
    ],
    ['a URL that is not one', { url: 'not a url', eventTypes: ['booking.created'] }, 'body.url'],
    ['an ftp URL', { url: 'ftp://example.com/h', eventTypes: ['booking.created'] }, 'body.url'],
    ['a javascript: URL', { url: 'javascript:alert(1)', eventTypes: ['booking.created'] }, 'body.url'],
    ['a relative URL', { url: '/hooks', eventTypes: ['booking.created'] }, 'body.url'],
    ['a URL of 2049 characters', { url: urlOfLength(2049), eventTypes: ['booking.created'] }, 'body.url'],
    [
      'a URL within 2048 characters as typed but over them once percent-encoded',
      { url: `https://1.1.1.1/${'\u00e9'.repeat(1000)}`, eventTypes: ['booking.created'] },
      'body.url',
    ],
    [
      'a URL holding a lone surrogate',
      { url: 'https://1.1.1.1/\ud800', eventTypes: ['booking.created'] },
      'body.url',
    ],
    ['no URL', { eventTypes: ['booking.created'] }, 'body.url'],
    [
      'an unknown field',
      { url: 'https://example.com/h', eventTypes: ['booking.created'], secret: 'x' },
      'body.secret',
    ],
    ['a private address', { url: 'http://10.0.0.1/h', eventTypes: ['booking.created'] }, 'body.url'],
    [
      'a private address in full-width digits',
      { url: 'http://\uff11\uff10.0.0.1/h', eventTypes: ['booking.created'] },
      'body.url',
    ],
    [
      'the cloud metadata address',
      { url: 'http://169.254.169.254/latest/meta-data/', eventTypes: ['booking.created'] },
      'body.url',
    ],
    [
      'an IPv4-mapped private address',
      { url: 'http://[::ffff:10.0.0.1]/h', eventTypes: ['booking.created'] },
      'body.url',
    ],
    [
      'credentials in the URL',
      { url: 'http://user:pass@127.0.0.1/h', eventTypes: ['booking.created'] },
      'body.url',
    ],
  ];

  it.each(badBodies)('answers 400 problem+json for %s and stores nothing', async (_name, body, field) => {
    const sub = `wh-bad-${randomUUID()}`;
    const token = await api.token({ sub });
    const response = await api.request('POST', '/webhooks', { token, body });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    const problem = response.body as ProblemBody;
    expect(problem.code).toBe('VALIDATION_FAILED');
    expect(problem.errors?.map((error) => error.field)).toContain(field);
    expect(await endpointCount(documents, sub)).toBe(0);
  });

  it.each(['httpx://example.com/h', 'https-evil://x'])(
    'refuses %s, a scheme that only begins with http, as no http(s) URL, storing nothing',
    async (url) => {
      const sub = `wh-bad-${randomUUID()}`;
      const token = await api.token({ sub });
      const response = await api.request('POST', '/webhooks', {
        token,
        body: { url, eventTypes: ['booking.created'] },
      });
      expect(response.status).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        { field: 'body.url', message: 'Must be an absolute http or https URL' },
      ]);
      expect(await endpointCount(documents, sub)).toBe(0);
    },
  );

  it('answers 413 for a body over 8 KiB and 400 for malformed JSON', async () => {
    const sub = `wh-bad-${randomUUID()}`;
    const token = await api.token({ sub });
    const oversize = await api.request('POST', '/webhooks', {
      token,
      body: { url: 'https://example.com/h', eventTypes: ['booking.created'], padding: 'x'.repeat(9000) },
    });
    expect(oversize.status).toBe(413);
    const malformed = await api.request('POST', '/webhooks', {
      token,
      body: '{"url":',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(await endpointCount(documents, sub)).toBe(0);
  });

  it('answers 400 for a malformed id or cursor', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    const badId = await api.request('GET', '/webhooks/not%20an%20id', { token: ownerToken });
    expect(badId.status).toBe(400);
    const badCursor = await api.request('GET', `/webhooks/${endpoint.id}/deliveries?cursor=garbage`, {
      token: ownerToken,
    });
    expect(badCursor.status).toBe(400);
    const badLimit = await api.request('GET', `/webhooks/${endpoint.id}/deliveries?limit=1000`, {
      token: ownerToken,
    });
    expect(badLimit.status).toBe(400);
  });

  it('answers 400 naming a query parameter a list does not know', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    for (const path of ['/webhooks', `/webhooks/${endpoint.id}/deliveries`]) {
      const response = await api.request('GET', `${path}?limit=5&status=failed`, { token: ownerToken });
      expect(response.status).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        { field: 'query.status', message: 'Unknown field' },
      ]);
    }
  });
});

describe('owner scoping', () => {
  it('hides an endpoint and its history from everyone but its owner (404), admins included', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    const admin = await api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });
    for (const token of [strangerToken, admin]) {
      expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token })).status).toBe(404);
      expect((await api.request('GET', `/webhooks/${endpoint.id}/deliveries`, { token })).status).toBe(404);
      expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token })).status).toBe(404);
    }
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: ownerToken })).status).toBe(200);
  });

  it('deletes an endpoint with its subscriptions, leaving its tombstone; afterwards it is 404 for its owner too', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    const deleting = Date.now();
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: ownerToken })).status).toBe(204);
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: ownerToken })).status).toBe(404);
    expectOnlyTombstone(await itemsOf(endpoint.id), endpoint.id, deleting);
    // A second delete finds no endpoint, and leaves the first one's tombstone as it was.
    const tombstone = await itemsOf(endpoint.id);
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: ownerToken })).status).toBe(404);
    expect(await itemsOf(endpoint.id)).toEqual(tombstone);
  });

  it('lists only the caller’s own endpoints, newest first, without secrets, a page at a time', async () => {
    const lister = await api.token({ sub: `wh-lister-${randomUUID()}` });
    const registered: string[] = [];
    for (let index = 0; index < 3; index += 1)
      registered.push((await registerEndpoint(api, lister, target.url)).id);
    await registerEndpoint(api, strangerToken, target.url);
    const first = await api.request('GET', '/webhooks?limit=2', { token: lister });
    expect(first.status).toBe(200);
    const page = first.body as { items: Record<string, unknown>[]; nextCursor: string };
    expect(page.items.map((item) => item.id)).toEqual([registered[2], registered[1]]);
    expect(JSON.stringify(page.items)).not.toContain('whsec_');
    const second = await api.request('GET', `/webhooks?limit=2&cursor=${page.nextCursor}`, { token: lister });
    expect((second.body as { items: { id: string }[] }).items.map((item) => item.id)).toEqual([
      registered[0],
    ]);
    expect((second.body as { nextCursor?: string }).nextCursor).toBeUndefined();
    // Another owner cannot use the cursor to read this list.
    const foreign = await api.request('GET', `/webhooks?cursor=${page.nextCursor}`, { token: strangerToken });
    expect(foreign.status).toBe(400);
    expect((foreign.body as ProblemBody).errors?.[0]?.field).toBe('query.cursor');
  });

  it("lets an admin delete any of the tenant's endpoints at /admin/webhooks/{id}; nobody else, no other tenant", async () => {
    const owner = await api.token({ sub: `wh-lapsed-${randomUUID()}` });
    const endpoint = await registerEndpoint(api, owner, target.url);
    const admin = await api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });
    const otherTenantAdmin = await api.token({
      sub: `wh-admin-${randomUUID()}`,
      roles: ['admin'],
      tenant: 't2',
    });
    const remove = (token: string) => api.request('DELETE', `/admin/webhooks/${endpoint.id}`, { token });
    expect((await remove(owner)).status).toBe(403);
    expect((await remove(await api.token({ m2m: true, scopes: ['webhooks/write'] }))).status).toBe(403);
    // The sample serves one tenant: another tenant's token is refused before any lookup.
    expect((await remove(otherTenantAdmin)).status).toBe(403);
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: owner })).status).toBe(200);
    const deleting = Date.now();
    expect((await remove(admin)).status).toBe(204);
    expect((await api.request('GET', `/webhooks/${endpoint.id}`, { token: owner })).status).toBe(404);
    expectOnlyTombstone(await itemsOf(endpoint.id), endpoint.id, deleting);
    expect((await remove(admin)).status).toBe(404);
  });

  it('answers 404 for an id that never existed', async () => {
    const response = await api.request('GET', '/webhooks/ep_nothing', { token: ownerToken });
    expect(response.status).toBe(404);
  });
});

describe('delivery history', () => {
  it('pages newest first with a cursor that only works for its own endpoint', async () => {
    const endpoint = await registerEndpoint(api, ownerToken, target.url);
    const other = await registerEndpoint(api, ownerToken, target.url);
    const ids = await deliverMessages(api, endpoint.id, ownerToken, 3);
    const first = await api.request('GET', `/webhooks/${endpoint.id}/deliveries?limit=2`, {
      token: ownerToken,
    });
    const page = first.body as { items: { webhookId: string }[]; nextCursor: string };
    expect(page.items.map((item) => item.webhookId)).toEqual([ids[2], ids[1]]);
    const second = await api.request(
      'GET',
      `/webhooks/${endpoint.id}/deliveries?limit=2&cursor=${page.nextCursor}`,
      { token: ownerToken },
    );
    expect((second.body as { items: { webhookId: string }[] }).items.map((item) => item.webhookId)).toEqual([
      ids[0],
    ]);
    const foreign = await api.request(
      'GET',
      `/webhooks/${other.id}/deliveries?limit=2&cursor=${page.nextCursor}`,
      { token: ownerToken },
    );
    expect(foreign.status).toBe(400);
  });
});
