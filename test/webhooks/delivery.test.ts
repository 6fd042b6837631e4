import { randomUUID } from 'node:crypto';
import { DeleteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { decodedEml, drained, emailsTo, receiveAll, sendRaw, until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { idempotencyRecordsOf } from '../helpers/idempotency-records.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';
import { deliveriesOf, type Receiver, registerEndpoint, startReceiver } from './helpers.js';

// Backoff base 1 s: attempts come back within seconds (full jitter: 0-1 s, 0-2 s, 0-4 s, 0-8 s).
const api = useLocalRuntime({ as: adminUser, webhookRetryBaseDelaySec: 1 });

const webhookQueue = 'bulwark-webhook';
const webhookDlq = 'bulwark-webhook-dlq';
const receivers: Receiver[] = [];

async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const started = await startReceiver(...args);
  receivers.push(started);
  return started;
}

/** A registered user and a token acting as that user: its endpoints receive events about its bookings. */
async function owner(): Promise<{ userId: string; email: string; token: string }> {
  const email = `hook-owner-${randomUUID()}@example.com`;
  const created = await api.request('POST', '/users', { body: { email, name: 'Hook Owner' } });
  const userId = (created.body as { id: string }).id;
  return { userId, email, token: await api.token({ sub: userId }) };
}

let slot = 0;
const bookingHour = bookingDay(17);
/** Books a fresh room for `userId`; every call a distinct room, so bookings never conflict. */
async function book(userId: string): Promise<{ id: string }> {
  slot += 1;
  const start = new Date(bookingHour(9 + slot));
  const response = await api.request('POST', '/bookings', {
    body: {
      roomId: `hook-room-${randomUUID()}`,
      userId,
      start: start.toISOString(),
      end: new Date(start.getTime() + 30 * 60_000).toISOString(),
    },
  });
  expect(response.status).toBe(201);
  return response.body as { id: string };
}

function dlqMessagesWith(text: string) {
  return until(async () => {
    const found = (await receiveAll(api.runtime(), webhookDlq)).filter((message) =>
      message.Body?.includes(text),
    );
    return found.length > 0 ? found : undefined;
  }, 30_000);
}

afterAll(async () => {
  await Promise.all(receivers.map((started) => started.close()));
});

describe('webhook delivery through the queue', () => {
  let alice: Awaited<ReturnType<typeof owner>>;
  beforeAll(async () => {
    alice = await owner();
  });

  it('delivers booking.created with Standard Webhooks headers that Webhook.verify accepts', async () => {
    const target = await receiver();
    const endpoint = await registerEndpoint(api, alice.token, target.url);
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const booking = await book(alice.userId);
    const [webhook] = await until(() => (target.received.length > 0 ? target.received : undefined));
    expect(webhook?.headers['content-type']).toBe('application/json');
    const verified = new Webhook(endpoint.secret).verify(webhook?.body ?? '', {
      'webhook-id': String(webhook?.headers['webhook-id']),
      'webhook-timestamp': String(webhook?.headers['webhook-timestamp']),
      'webhook-signature': String(webhook?.headers['webhook-signature']),
    });
    expect(verified).toMatchObject({
      type: 'booking.created',
      data: { id: booking.id, userId: alice.userId, status: 'confirmed' },
    });
    expect(webhook?.headers['webhook-id']).toMatch(/^msg_/);
    // A wrong secret is refused by the same library: the signature really is the endpoint's.
    expect(() =>
      new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(webhook?.body ?? '', {
        'webhook-id': String(webhook?.headers['webhook-id']),
        'webhook-timestamp': String(webhook?.headers['webhook-timestamp']),
        'webhook-signature': String(webhook?.headers['webhook-signature']),
      }),
    ).toThrow();
    const [delivery] = await until(async () => {
      const found = await deliveriesOf(api, alice.token, endpoint.id);
      return found[0]?.status === 'delivered' ? found : undefined;
    });
    expect(delivery).toMatchObject({
      webhookId: webhook?.headers['webhook-id'],
      eventType: 'booking.created',
      attempts: [{ attempt: 1, statusCode: 204 }],
    });
  });

  it('sends booking.cancelled to the subscribed endpoint, and nothing about other users', async () => {
    const target = await receiver();
    const bob = await owner();
    await registerEndpoint(api, alice.token, target.url, ['booking.cancelled']);
    const mine = await book(alice.userId);
    const bobs = await book(bob.userId);
    // Bob's cancellation is of the subscribed type: only the owner check keeps it from this endpoint.
    expect((await api.request('DELETE', `/bookings/${bobs.id}`)).status).toBe(200);
    expect((await api.request('DELETE', `/bookings/${mine.id}`)).status).toBe(200);
    await drained(api.runtime(), webhookQueue);
    expect(target.received).toHaveLength(1);
    expect(JSON.parse(target.received[0]?.body ?? '{}')).toMatchObject({
      type: 'booking.cancelled',
      data: { id: mine.id, status: 'cancelled' },
    });
  });

  it('delivers on attempt 4 after three failures and records every attempt', async () => {
    const target = await receiver((count) => ({ status: count <= 3 ? 500 : 200 }));
    const { id } = await registerEndpoint(api, alice.token, target.url);
    await book(alice.userId);
    const [delivery] = await until(async () => {
      const found = await deliveriesOf(api, alice.token, id);
      return found[0]?.status === 'delivered' ? found : undefined;
    }, 30_000);
    expect(target.received).toHaveLength(4);
    expect(
      delivery?.attempts.map(({ attempt, statusCode, error }) => ({ attempt, statusCode, error })),
    ).toEqual([
      { attempt: 1, statusCode: 500, error: 'HTTP 500' },
      { attempt: 2, statusCode: 500, error: 'HTTP 500' },
      { attempt: 3, statusCode: 500, error: 'HTTP 500' },
      { attempt: 4, statusCode: 200, error: undefined },
    ]);
    for (const attempt of delivery?.attempts ?? []) {
      expect(Date.parse(attempt.at)).not.toBeNaN();
      expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
    }
    // One webhook id across the attempts, each signed afresh.
    expect(new Set(target.received.map((webhook) => webhook.headers['webhook-id'])).size).toBe(1);
  });

  it('gives up after 5 attempts: the delivery is failed and the message waits in the DLQ', async () => {
    const target = await receiver(() => ({ status: 503 }));
    const { id } = await registerEndpoint(api, alice.token, target.url);
    await book(alice.userId);
    const [delivery] = await until(async () => {
      const found = await deliveriesOf(api, alice.token, id);
      return found[0]?.status === 'failed' ? found : undefined;
    }, 40_000);
    expect(delivery?.attempts.map((attempt) => attempt.attempt)).toEqual([1, 2, 3, 4, 5]);
    const [dead] = await dlqMessagesWith(id);
    expect(JSON.parse(dead?.Body ?? '{}')).toMatchObject({ id: delivery?.webhookId, endpointId: id });
    // Redrive keeps the message: nothing lost, nothing sent again.
    await drained(api.runtime(), webhookQueue);
    expect(target.received).toHaveLength(5);
    // Gone, so later tests' bookings by Alice do not keep the queue busy with five doomed attempts each.
    expect((await api.request('DELETE', `/webhooks/${id}`, { token: alice.token })).status).toBe(204);
  });

  it('honours Retry-After on a 429 before the next attempt', async () => {
    const target = await receiver((count) =>
      count === 1 ? { status: 429, headers: { 'Retry-After': '2' } } : { status: 200 },
    );
    const { id } = await registerEndpoint(api, alice.token, target.url);
    await book(alice.userId);
    await until(async () => {
      const found = await deliveriesOf(api, alice.token, id);
      return found[0]?.status === 'delivered' ? found : undefined;
    }, 30_000);
    const [first, second] = target.received;
    // Without Retry-After the first backoff would be 0-1 s.
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1_900);
  });

  it('disables the endpoint at once on 410 Gone and alerts its owner by email', async () => {
    const target = await receiver(() => ({ status: 410 }));
    const carol = await owner();
    const endpoint = await registerEndpoint(api, carol.token, target.url);
    await book(carol.userId);
    const disabled = await until(async () => {
      const response = await api.request('GET', `/webhooks/${endpoint.id}`, { token: carol.token });
      return (response.body as { status: string }).status === 'disabled' ? response.body : undefined;
    });
    expect(disabled).toMatchObject({ status: 'disabled', disabledReason: 'gone' });
    // Welcome, verification, then the alert.
    const emails = await emailsTo(api.runtime(), carol.email, 3);
    const alert = emails.map((email) => decodedEml(email.raw)).find((raw) => raw.includes('Security alert'));
    expect(alert).toContain('Webhook endpoint disabled');
    expect(alert).toContain(endpoint.id);
    const [delivery] = await deliveriesOf(api, carol.token, endpoint.id);
    expect(delivery).toMatchObject({ status: 'failed', attempts: [{ attempt: 1, statusCode: 410 }] });
    // No more attempts, and no more events: the next booking is not even enqueued for it.
    await book(carol.userId);
    await drained(api.runtime(), webhookQueue);
    expect(target.received).toHaveLength(1);
  });

  it('POSTs once when the same message arrives twice', async () => {
    const target = await receiver();
    const { id } = await registerEndpoint(api, alice.token, target.url);
    const message = {
      id: `msg_${randomUUID().replaceAll('-', '').slice(0, 24)}`,
      endpointId: id,
      tenantId: 'default',
      eventType: 'booking.created',
      createdAt: new Date().toISOString(),
      payload: { type: 'booking.created', timestamp: new Date().toISOString(), data: { id: 'b-1' } },
    };
    await sendRaw(api.runtime(), JSON.stringify(message), webhookQueue);
    await until(() => (target.received.length > 0 ? true : undefined));
    await sendRaw(api.runtime(), JSON.stringify(message), webhookQueue);
    await drained(api.runtime(), webhookQueue);
    expect(target.received).toHaveLength(1);
    const deliveries = await deliveriesOf(api, alice.token, id);
    expect(deliveries).toEqual([expect.objectContaining({ webhookId: message.id, status: 'delivered' })]);
    expect(deliveries[0]?.attempts).toHaveLength(1);
  });

  it('dead-letters a malformed message once, with its reason, without retrying it', async () => {
    const marker = `malformed-${randomUUID()}`;
    await sendRaw(api.runtime(), JSON.stringify({ id: marker, eventType: 'booking.exploded' }), webhookQueue);
    const [dead] = await dlqMessagesWith(marker);
    expect(dead?.MessageAttributes?.['bulwark-dead-letter-reason']?.StringValue).toMatch(/eventType/);
    // Dead-lettered by the worker on its first receive, not by redrive after 5.
    expect(dead?.Attributes?.ApproximateReceiveCount).toBe('1');
  });
});

// Side by side: each test's owner, key and receivers are its own, and each waits out a retry of its deleted
// endpoint; one after the other they waited out two.
describe.concurrent("an Idempotency-Key whose endpoint was deleted, sent again once the key's record expired", () => {
  let documents: ReturnType<typeof createDocumentClient>;
  beforeAll(() => {
    documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
  });

  /** Longer than the steps below take, so the deleted endpoint's retry comes after them. */
  const retryAfterSec = 8;

  const registerWithKey = (token: string, key: string, url: string, eventTypes: string[]) =>
    api.request('POST', '/webhooks', {
      token,
      body: { url, eventTypes },
      headers: { 'idempotency-key': key },
    });

  /** Stands for the record's hour passing: the registration's idempotency record is deleted. */
  async function expireRegistrationRecord(endpointId: string) {
    const records = (await idempotencyRecordsOf(documents, 'webhooks')).filter((item) =>
      JSON.stringify(item).includes(endpointId),
    );
    expect(records).toHaveLength(1);
    for (const { pk, sk } of records) {
      await documents.send(new DeleteCommand({ TableName: testTableNames.toolkit, Key: { pk, sk } }));
    }
  }

  /**
   * An endpoint registered with `key` to a receiver that fails booking.created's first attempt with a
   * Retry-After, then deleted, with the key's record gone: the deleted endpoint's booking.created waits
   * in the queue for its next attempt.
   */
  async function deletedWithRetryPending(key: string) {
    const hookOwner = await owner();
    const deletedTarget = await receiver(() => ({
      status: 503,
      headers: { 'Retry-After': String(retryAfterSec) },
    }));
    const registered = await registerWithKey(hookOwner.token, key, deletedTarget.url, ['booking.created']);
    expect(registered.status).toBe(201);
    const endpointId = (registered.body as { id: string }).id;
    await book(hookOwner.userId);
    const [firstAttempt] = await until(() =>
      deletedTarget.received.length > 0 ? deletedTarget.received : undefined,
    );
    const deleted = await api.request('DELETE', `/webhooks/${endpointId}`, { token: hookOwner.token });
    expect(deleted.status).toBe(204);
    await expireRegistrationRecord(endpointId);
    return { hookOwner, deletedTarget, endpointId, firstAttemptAt: firstAttempt?.at ?? 0 };
  }

  it("answers 409 and registers nothing; the deleted endpoint's retry reaches no one", async () => {
    const key = randomUUID();
    const { hookOwner, deletedTarget, endpointId, firstAttemptAt } = await deletedWithRetryPending(key);
    const newTarget = await receiver();
    const again = await registerWithKey(hookOwner.token, key, newTarget.url, ['user.registered']);
    // Before the retry was due: it comes after this answer.
    expect(Date.now() - firstAttemptAt).toBeLessThan(retryAfterSec * 1000);
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toBe('application/problem+json');
    expect(again.body).toMatchObject({
      status: 409,
      code: 'CONFLICT',
      detail: `Webhook endpoint ${endpointId}, which a registration with this Idempotency-Key made, was deleted; register with a new Idempotency-Key`,
    });
    expect((await api.request('GET', `/webhooks/${endpointId}`, { token: hookOwner.token })).status).toBe(
      404,
    );
    const listed = await api.request('GET', '/webhooks', { token: hookOwner.token });
    expect((listed.body as { items: unknown[] }).items).toEqual([]);
    // Sent again, the same refusal: it stored no record that would answer otherwise.
    const repeated = await registerWithKey(hookOwner.token, key, newTarget.url, ['user.registered']);
    const { requestId: _first, ...refused } = again.body as { requestId: string };
    expect(repeated.body).toEqual({ ...refused, requestId: expect.any(String) });

    await drained(api.runtime(), webhookQueue);
    expect(deletedTarget.received).toHaveLength(1);
    expect(newTarget.received).toEqual([]);
    // A new key registers, with an id of its own.
    const fresh = await registerWithKey(hookOwner.token, randomUUID(), newTarget.url, ['user.registered']);
    expect(fresh.status).toBe(201);
    expect((fresh.body as { id: string }).id).not.toBe(endpointId);
  });

  it("registers the id again once the tombstone expired, and the deleted endpoint's retry is dropped there", async () => {
    const key = randomUUID();
    const { hookOwner, deletedTarget, endpointId, firstAttemptAt } = await deletedWithRetryPending(key);
    // Stands for its 30 days passing, before TTL deleted it.
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${endpointId}`, sk: 'TOMBSTONE' },
        UpdateExpression: 'SET expiresAt = :past',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 },
      }),
    );
    const newTarget = await receiver();
    const again = await registerWithKey(hookOwner.token, key, newTarget.url, ['user.registered']);
    expect(Date.now() - firstAttemptAt).toBeLessThan(retryAfterSec * 1000);
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ id: endpointId, url: newTarget.url, eventTypes: ['user.registered'] });

    // The booking.created made for the deleted endpoint now finds this one under its id: neither
    // subscribed to, nor made after it was registered.
    await drained(api.runtime(), webhookQueue);
    expect(deletedTarget.received).toHaveLength(1);
    expect(newTarget.received).toEqual([]);
  });
});

describe('user.registered', () => {
  it('reaches tenant-wide (admin) endpoints, without personal data', async () => {
    const target = await receiver();
    const adminToken = await api.token({ sub: `hook-admin-${randomUUID()}`, roles: ['admin'] });
    const endpoint = await registerEndpoint(api, adminToken, target.url, ['user.registered']);
    try {
      const { userId, email } = await owner();
      const webhook = await until(() => target.received.find((received) => received.body.includes(userId)));
      const payload = JSON.parse(webhook.body) as { type: string; data: Record<string, unknown> };
      // The name is personal data too: a receiver that needs it reads the user with users/read.
      expect(payload).toMatchObject({ type: 'user.registered' });
      expect(payload.data).toEqual({ id: userId, createdAt: expect.any(String) });
      expect(webhook.body).not.toContain(email);
      expect(webhook.body).not.toContain('Hook Owner');
    } finally {
      // Tenant-wide: other test files' registrations would keep arriving here.
      await api.request('DELETE', `/webhooks/${endpoint.id}`, { token: adminToken });
    }
  });
});
