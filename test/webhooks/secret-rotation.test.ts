// Rotating an endpoint's signing secret keeps its id: the old secret is signed with beside the new one
// for a day (Standard Webhooks' several signatures), the new one is shown once, retries rotate once.
import { randomUUID } from 'node:crypto';
import { DeleteCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Webhook } from 'standardwebhooks';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ConflictError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { sendRaw, until } from '../email-worker/helpers.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import {
  deliverMessages,
  expectEndpointNotFound,
  type Receiver,
  type RegisteredEndpoint,
  registerEndpoint,
  registeringWebhookStore,
  sealAsBeforePurposes,
  startReceiver,
  storedEndpointItem,
} from './helpers.js';

// Audit lines are INFO, which the suite otherwise silences; read when the runtime loads the functions.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

// Backoff base 1 s: a failed attempt comes back within a second.
const api = useLocalRuntime({ webhookRetryBaseDelaySec: 1 });
const output = captureStdout();
let documents: ReturnType<typeof createDocumentClient>;
let target: Receiver;

beforeAll(async () => {
  documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
  target = await startReceiver();
  return () => target.close();
});

interface RotationBody extends RegisteredEndpoint {
  readonly secretRotatedAt: string;
  readonly previousSecretExpiresAt: string;
}

interface ProblemBody {
  status: number;
  code: string;
  detail: string;
}

async function ownerWithEndpoint() {
  const ownerId = `wh-rotate-${randomUUID()}`;
  const token = await api.token({ sub: ownerId });
  return { ownerId, token, endpoint: await registerEndpoint(api, token, target.url, ['booking.created']) };
}

function rotate(token: string, endpointId: string, key?: string) {
  return api.request('POST', `/webhooks/${endpointId}/secret`, {
    token,
    ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
  });
}

async function rotated(token: string, endpointId: string, key?: string): Promise<RotationBody> {
  const response = await rotate(token, endpointId, key);
  if (response.status !== 200) throw new Error(`rotation answered ${response.status}: ${response.text}`);
  return response.body as RotationBody;
}

const storedEndpoint = (endpointId: string) => storedEndpointItem(documents, endpointId);

/** Delivers one message to the endpoint through the worker; the webhook its receiver got. */
async function deliveredWebhook(endpointId: string, token: string) {
  const [webhookId] = await deliverMessages(api, endpointId, token, 1);
  const webhook = target.received.find((received) => received.headers['webhook-id'] === webhookId);
  if (!webhook) throw new Error(`no webhook ${webhookId} received`);
  return {
    body: webhook.body,
    headers: {
      'webhook-id': String(webhook.headers['webhook-id']),
      'webhook-timestamp': String(webhook.headers['webhook-timestamp']),
      'webhook-signature': String(webhook.headers['webhook-signature']),
    },
  };
}

/** Whether the standardwebhooks library, as a receiver uses it, accepts the webhook with `secret`. */
function verifies(secret: string, webhook: Awaited<ReturnType<typeof deliveredWebhook>>): boolean {
  try {
    new Webhook(secret).verify(webhook.body, webhook.headers);
    return true;
  } catch {
    return false;
  }
}

/** The `v1,<signature>` that `secret` makes for the webhook. */
function signatureWith(secret: string, webhook: Awaited<ReturnType<typeof deliveredWebhook>>): string {
  const at = new Date(Number(webhook.headers['webhook-timestamp']) * 1000);
  return new Webhook(secret).sign(webhook.headers['webhook-id'], at, webhook.body);
}

const dayMs = 24 * 3_600_000;

describe('POST /webhooks/{id}/secret', () => {
  it('answers a new secret once, keeps the endpoint id, shows when the old one stops, and audits it', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const before = Date.now();
    const response = await rotate(token, endpoint.id);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = response.body as RotationBody;
    expect(body.id).toBe(endpoint.id);
    expect(body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(body.secret).not.toBe(endpoint.secret);
    const rotatedAt = Date.parse(body.secretRotatedAt);
    expect(rotatedAt).toBeGreaterThanOrEqual(before);
    expect(rotatedAt).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(body.previousSecretExpiresAt)).toBe(rotatedAt + dayMs);
    const read = await api.request('GET', `/webhooks/${endpoint.id}`, { token });
    expect(read.body).toEqual(Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'secret')));
    expect(read.text).not.toContain(body.secret.slice('whsec_'.length));
    expect(JSON.stringify(await storedEndpoint(endpoint.id))).not.toContain(
      body.secret.slice('whsec_'.length),
    );
    expect(output.audit().filter((event) => event.eventType === 'webhook.secret_rotated')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        metadata: {
          endpointId: endpoint.id,
          ownerKind: 'user',
          previousSecretExpiresAt: body.previousSecretExpiresAt,
        },
      }),
    ]);
  });

  it('signs with the new secret first and the old one beside it, each verifying with the standardwebhooks library', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const { secret } = await rotated(token, endpoint.id);
    const webhook = await deliveredWebhook(endpoint.id, token);
    expect(webhook.headers['webhook-signature']).toBe(
      `${signatureWith(secret, webhook)} ${signatureWith(endpoint.secret, webhook)}`,
    );
    expect(verifies(secret, webhook)).toBe(true);
    expect(verifies(endpoint.secret, webhook)).toBe(true);
    expect(verifies(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, webhook)).toBe(false);
  });

  it('keeps a delivery being retried: its next attempt, same webhook-id, verifies with the old secret and the new', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const id = `msg_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
    const ours = () => target.received.filter((received) => received.headers['webhook-id'] === id);
    // The first attempt is refused with a wait long enough for the rotation to land before the next.
    target.respond = (_count, received) =>
      received.headers['webhook-id'] === id && ours().length === 1
        ? { status: 503, headers: { 'Retry-After': '2' } }
        : { status: 204 };
    try {
      const at = new Date(Date.now() + 1000).toISOString();
      await sendRaw(
        api.runtime(),
        JSON.stringify({
          id,
          endpointId: endpoint.id,
          tenantId: 'default',
          eventType: 'booking.created',
          createdAt: at,
          payload: { type: 'booking.created', timestamp: at, data: {} },
        }),
        'bulwark-webhook',
      );
      await until(() => (ours().length === 1 ? true : undefined));
      const { secret } = await rotated(token, endpoint.id);
      const [, retried] = await until(() => (ours().length === 2 ? ours() : undefined));
      const webhook = {
        body: retried?.body ?? '',
        headers: {
          'webhook-id': String(retried?.headers['webhook-id']),
          'webhook-timestamp': String(retried?.headers['webhook-timestamp']),
          'webhook-signature': String(retried?.headers['webhook-signature']),
        },
      };
      expect(verifies(secret, webhook)).toBe(true);
      expect(verifies(endpoint.secret, webhook)).toBe(true);
      const delivered = await until(async () => {
        const response = await api.request('GET', `/webhooks/${endpoint.id}/deliveries`, { token });
        const [delivery] = (response.body as { items: { status: string; attempts: unknown[] }[] }).items;
        return delivery?.status === 'delivered' ? delivery : undefined;
      });
      expect(delivered.attempts).toHaveLength(2);
    } finally {
      target.respond = () => ({ status: 204 });
    }
  });

  it('signs with the new secret alone once the old one expired', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const { secret } = await rotated(token, endpoint.id);
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${endpoint.id}`, sk: 'ENDPOINT' },
        UpdateExpression: 'SET previousSecretExpiresAt = :past',
        ExpressionAttributeValues: { ':past': new Date(Date.now() - 1000).toISOString() },
      }),
    );
    const webhook = await deliveredWebhook(endpoint.id, token);
    expect(webhook.headers['webhook-signature']).toBe(signatureWith(secret, webhook));
    expect(verifies(endpoint.secret, webhook)).toBe(false);
  });

  it('rotated again while the old secret is live, signs with the two newest only', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const first = await rotated(token, endpoint.id);
    const second = await rotated(token, endpoint.id);
    const webhook = await deliveredWebhook(endpoint.id, token);
    expect(webhook.headers['webhook-signature']).toBe(
      `${signatureWith(second.secret, webhook)} ${signatureWith(first.secret, webhook)}`,
    );
    expect(verifies(endpoint.secret, webhook)).toBe(false);
    expect(Date.parse(second.previousSecretExpiresAt)).toBe(Date.parse(second.secretRotatedAt) + dayMs);
  });

  it('rotates a secret sealed before secrets carried their purpose, and still signs with it for the day', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    await sealAsBeforePurposes(documents, endpoint.id, endpoint.secret);
    const { secret } = await rotated(token, endpoint.id);
    const item = await storedEndpoint(endpoint.id);
    expect(item?.secretContext).toBe(2);
    expect(item).not.toHaveProperty('previousSecretContext');
    const webhook = await deliveredWebhook(endpoint.id, token);
    expect(verifies(secret, webhook)).toBe(true);
    expect(verifies(endpoint.secret, webhook)).toBe(true);
  });

  it("answers 404 problem+json for an unknown id, another owner's endpoint and a deleted one, and changes nothing", async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const stranger = await api.token({ sub: `wh-stranger-${randomUUID()}` });
    const admin = await api.token({ sub: `wh-admin-${randomUUID()}`, roles: ['admin'] });
    const before = await storedEndpoint(endpoint.id);
    for (const caller of [stranger, admin]) {
      expectEndpointNotFound(await rotate(caller, endpoint.id), endpoint.id);
    }
    expect(await storedEndpoint(endpoint.id)).toEqual(before);
    const unknown = `ep_${'A'.repeat(24)}`;
    expect((await rotate(token, unknown)).body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token })).status).toBe(204);
    expect((await rotate(token, endpoint.id)).body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(output.audit().filter((event) => event.eventType === 'webhook.secret_rotated')).toEqual([]);
  });

  it('lets an integration rotate its own endpoint with webhooks/write, not with webhooks/read alone', async () => {
    const clientId = `wh-client-${randomUUID()}`;
    const writer = await api.token({ m2m: true, clientId, scopes: ['webhooks/write', 'bookings/read'] });
    const reader = await api.token({ m2m: true, clientId, scopes: ['webhooks/read'] });
    const endpoint = await registerEndpoint(api, writer, target.url, ['booking.created']);
    try {
      expect((await rotate(reader, endpoint.id)).status).toBe(403);
      expect((await rotated(writer, endpoint.id)).secret).not.toBe(endpoint.secret);
    } finally {
      // An integration's endpoint receives every booking event of the tenant, which other files' runtimes
      // share: left behind once this file's receiver closes, their webhook queues would never drain.
      expect((await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: writer })).status).toBe(204);
    }
  });
});

describe('retrying a rotation', () => {
  /** Stands for a 504 or the record's hour passing: deletes the Idempotency-Key record holding the answer. */
  async function loseRecordOf(endpointId: string) {
    const kept = (await idempotencyRecordsOf(documents, 'webhooks')).filter((record) =>
      JSON.stringify(record).includes(endpointId),
    );
    expect(kept).toHaveLength(1);
    await documents.send(
      new DeleteCommand({ TableName: testTableNames.toolkit, Key: { pk: kept[0]?.pk, sk: kept[0]?.sk } }),
    );
  }

  it('with the same Idempotency-Key answers the secret it made, marked replayed, and rotates once', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    const first = await rotate(token, endpoint.id, key);
    const item = await storedEndpoint(endpoint.id);
    const retry = await rotate(token, endpoint.id, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
    const records = (await idempotencyRecordsOf(documents, 'webhooks')).filter((record) =>
      JSON.stringify(record).includes(endpoint.id),
    );
    expect(records).toHaveLength(1);
    expect(JSON.stringify(records)).not.toContain((first.body as RotationBody).secret.slice('whsec_'.length));
  });

  it('after its record is gone (a 504) answers the secret it made again, not a second rotation', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    const first = (await rotate(token, endpoint.id, key)).body as RotationBody;
    await loseRecordOf(endpoint.id);
    const item = await storedEndpoint(endpoint.id);
    const retry = await rotate(token, endpoint.id, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body).toEqual(first);
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
    // A new key is a new rotation.
    expect((await rotated(token, endpoint.id, randomUUID())).secret).not.toBe(first.secret);
  });

  it('after its record is gone audits the rotation once, and the secret answered again apart', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    const first = (await rotate(token, endpoint.id, key)).body as RotationBody;
    await loseRecordOf(endpoint.id);
    expect((await rotate(token, endpoint.id, key)).status).toBe(200);
    const ours = (eventType: string) =>
      output
        .audit()
        .filter((event) => event.eventType === eventType && event.metadata?.endpointId === endpoint.id);
    expect(ours('webhook.secret_rotated')).toHaveLength(1);
    expect(ours('webhook.secret_rotation_replayed')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        metadata: { endpointId: endpoint.id, ownerKind: 'user', secretRotatedAt: first.secretRotatedAt },
      }),
    ]);
    expect(JSON.stringify(output.audit())).not.toContain(first.secret.slice('whsec_'.length));
  });

  /** An owner's endpoint rotated with a key, whose record is then lost (a 504). */
  async function rotationWithLostRecord() {
    const sub = `wh-rotate-${randomUUID()}`;
    const endpoint = await registerEndpoint(api, await api.token({ sub }), target.url, ['booking.created']);
    const key = randomUUID();
    const first = (await rotate(await api.token({ sub }), endpoint.id, key)).body as RotationBody;
    await loseRecordOf(endpoint.id);
    return { sub, endpoint, key, first };
  }

  /** The rotation retried with `key` by `sub` with the clock at `timeMs`, its token minted then so that it is valid. */
  async function retriedAt(timeMs: number, sub: string, endpointId: string, key: string) {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(timeMs);
      return await rotate(await api.token({ sub }), endpointId, key);
    } finally {
      vi.useRealTimers();
    }
  }

  it('with its key more than an hour after the rotation is 409, and shows no secret', async () => {
    const { sub, endpoint, key, first } = await rotationWithLostRecord();
    const retry = await retriedAt(Date.now() + 61 * 60_000, sub, endpoint.id, key);
    expect(retry.status).toBe(409);
    expect(retry.text).not.toContain(first.secret.slice('whsec_'.length));
    expect((retry.body as ProblemBody).detail).toBe(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated with this Idempotency-Key at ${first.secretRotatedAt}; it is shown again only within 60 minutes of the rotation. To get a new secret, rotate with a new key`,
    );
  });

  it('with its key once the secret it replaced stopped signing (24 hours) is a new rotation', async () => {
    const { sub, endpoint, key, first } = await rotationWithLostRecord();
    const retry = await retriedAt(Date.parse(first.secretRotatedAt) + dayMs, sub, endpoint.id, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    const second = retry.body as RotationBody;
    expect(second.secret).not.toBe(first.secret);
    expect(second.secretRotatedAt).toBe(new Date(Date.parse(first.secretRotatedAt) + dayMs).toISOString());
  });

  it('with its key once another rotation replaced its secret is 409, and shows no secret', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    const first = (await rotate(token, endpoint.id, key)).body as RotationBody;
    const second = await rotated(token, endpoint.id);
    const retry = await rotate(token, endpoint.id, key);
    expect(retry.status).toBe(409);
    expect(retry.text).not.toContain(first.secret.slice('whsec_'.length));
    expect(retry.text).not.toContain(second.secret.slice('whsec_'.length));
    expect((retry.body as ProblemBody).detail).toBe(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated again after the rotation this Idempotency-Key made; its secret is not shown again`,
    );
  });

  it('with its key after its record is gone and a rotation without a key since: 409, and rotates nothing', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    const first = (await rotate(token, endpoint.id, key)).body as RotationBody;
    await loseRecordOf(endpoint.id);
    const other = await rotated(token, endpoint.id);
    const item = await storedEndpoint(endpoint.id);
    const retry = await rotate(token, endpoint.id, key);
    expect(retry.status).toBe(409);
    expect(retry.text).not.toContain(first.secret.slice('whsec_'.length));
    expect(retry.text).not.toContain(other.secret.slice('whsec_'.length));
    expect((retry.body as ProblemBody).detail).toBe(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated again after the rotation this Idempotency-Key made; its secret is not shown again`,
    );
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
    // What remembers the key holds when it rotated, never a secret.
    const { Items: markers } = await documents.send(
      new QueryCommand({
        TableName: testTableNames.toolkit,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :rotation)',
        ExpressionAttributeValues: { ':pk': `WH#${endpoint.id}`, ':rotation': 'ROTATION#' },
        ConsistentRead: true,
      }),
    );
    expect(markers?.map(({ pk, sk, ...kept }) => kept)).toEqual([
      {
        rotationId: expect.stringMatching(/^[\w-]{24}$/),
        rotatedAt: first.secretRotatedAt,
        expiresAt: Math.floor(Date.parse(first.secretRotatedAt) / 1000) + dayMs / 1000,
      },
    ]);
  });

  it('with its key after its record is gone and a rotation with another key since: 409, and rotates nothing', async () => {
    const { token, endpoint } = await ownerWithEndpoint();
    const key = randomUUID();
    await rotate(token, endpoint.id, key);
    await loseRecordOf(endpoint.id);
    await rotated(token, endpoint.id, randomUUID());
    const item = await storedEndpoint(endpoint.id);
    const retry = await rotate(token, endpoint.id, key);
    expect(retry.status).toBe(409);
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
  });

  it('with its key once another rotation in the same millisecond replaced its secret is 409, record kept or lost', async () => {
    const sub = `wh-rotate-${randomUUID()}`;
    const token = await api.token({ sub });
    const endpoint = await registerEndpoint(api, token, target.url, ['booking.created']);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // The clock stands still: every rotation below has the same secretRotatedAt.
      vi.setSystemTime(Date.now());
      const frozenToken = await api.token({ sub });
      const key = randomUUID();
      const first = (await rotate(frozenToken, endpoint.id, key)).body as RotationBody;
      const second = await rotated(frozenToken, endpoint.id);
      expect(second.secretRotatedAt).toBe(first.secretRotatedAt);
      const replay = await rotate(frozenToken, endpoint.id, key);
      await loseRecordOf(endpoint.id);
      const retry = await rotate(frozenToken, endpoint.id, key);
      for (const refused of [replay, retry]) {
        expect(refused.status).toBe(409);
        expect(refused.text).not.toContain(second.secret.slice('whsec_'.length));
        expect((refused.body as ProblemBody).detail).toBe(
          `The signing secret of webhook endpoint ${endpoint.id} was rotated again after the rotation this Idempotency-Key made; its secret is not shown again`,
        );
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('racing another rotation in the same millisecond, of the secret both read: 409, nothing written', async () => {
    const { endpoint } = await ownerWithEndpoint();
    const store = registeringWebhookStore(documents);
    const at = new Date();
    const initial = await store.getEndpoint(endpoint.id);
    if (!initial) throw new Error('endpoint not stored');
    const earlier = await store.rotateSecret(initial, undefined, at);
    const read = await store.getEndpoint(endpoint.id);
    if (!read) throw new Error('endpoint not stored');
    const winner = await store.rotateSecret(read, undefined, at);
    const item = await storedEndpoint(endpoint.id);
    await expect(store.rotateSecret(read, undefined, at)).rejects.toThrow(ConflictError);
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
    const now = await store.getEndpoint(endpoint.id);
    if (!now) throw new Error('endpoint not stored');
    expect(await store.signingSecrets(now)).toEqual([winner.secret, earlier.secret]);
  });

  it('racing another rotation of the secret it read: 409, and the winner keeps the secret it replaced', async () => {
    const { endpoint } = await ownerWithEndpoint();
    const store = registeringWebhookStore(documents);
    const read = await store.getEndpoint(endpoint.id);
    if (!read) throw new Error('endpoint not stored');
    const winner = await store.rotateSecret(read, undefined);
    const item = await storedEndpoint(endpoint.id);
    await expect(store.rotateSecret(read, undefined)).rejects.toThrow(ConflictError);
    expect(await storedEndpoint(endpoint.id)).toEqual(item);
    const now = await store.getEndpoint(endpoint.id);
    if (!now) throw new Error('endpoint not stored');
    expect(await store.signingSecrets(now)).toEqual([winner.secret, endpoint.secret]);
  });
});
