import { randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { publishPending, WebhookFanOut } from '../../functions/shared/webhook-fanout.js';
import { webhookIdFor } from '../../functions/shared/webhook-ids.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import { type WebhookMessage, webhookMessageSchema } from '../../functions/webhook-worker/messages.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { DeadlineExceededError, NotFoundError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { LocalWorkerQueues, unreachableSqsClient } from '../helpers/local-worker-queues.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { testPrincipal } from '../helpers/principals.js';
import { silentServer } from '../helpers/silent-server.js';
import { testTableNames } from '../helpers/tables.js';
import { registeringWebhookStore } from './helpers.js';

const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const store = registeringWebhookStore(documentClient);
const subscriptions = new WebhookSubscriptions({ documentClient, tableName: testTableNames.toolkit });

// A real local-aws-sqs with the webhook queue: what the fan-out enqueues is read back from it.
let sqs: LocalWorkerQueues;
/** A queue taking messages of at most 1024 bytes: SQS refuses each larger entry of a batch on its own. */
let smallMessageQueueUrl: string;
beforeAll(async () => {
  sqs = await LocalWorkerQueues.start('webhook-worker');
  smallMessageQueueUrl = await sqs.createSmallMessageQueue('bulwark-webhook-small-messages');
});
afterEach(() => sqs.reset());
afterAll(() => sqs.stop());

const principalIn = (tenantId: string, overrides: Partial<Principal> = {}) =>
  testPrincipal({ tenantId, ...overrides });

function setup(options: { client?: SQSClient; queueUrl?: string } = {}) {
  const { observability, audits } = testObservability('bookings');
  const fanOut = new WebhookFanOut({
    subscriptions,
    sqs: options.client ?? sqs.client,
    queueUrl: options.queueUrl ?? sqs.queueUrl,
    observability,
  });
  return { fanOut, audits, observability };
}

/** Every message in the webhook queue (received), as the worker will parse it, with its SQS message. */
async function landedMessages() {
  return (await sqs.enqueued<unknown>()).map(({ body, message }) => ({
    webhook: webhookMessageSchema.parse(body),
    message,
  }));
}

describe('webhook fan-out', () => {
  it("sends each event to the tenant's admin and integration endpoints and to the subject user's own", async () => {
    const tenantId = `fan-${randomUUID()}`;
    const alice = principalIn(tenantId);
    const bob = principalIn(tenantId);
    const eventTypes = ['booking.created'] as const;
    const [aliceHook, , adminHook, integrationHook] = await Promise.all([
      store.createEndpoint(alice, { url: 'https://alice.example.com/h', eventTypes }),
      store.createEndpoint(bob, { url: 'https://bob.example.com/h', eventTypes }),
      store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
        url: 'https://admin.example.com/h',
        eventTypes,
      }),
      store.createEndpoint(principalIn(tenantId, { isM2M: true }), {
        url: 'https://m2m.example.com/h',
        eventTypes,
      }),
      // Same event, other tenant; and same tenant, other event: neither receives it.
      store.createEndpoint(principalIn(`other-${randomUUID()}`, { roles: ['admin'] }), {
        url: 'https://other.example.com/h',
        eventTypes,
      }),
      store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
        url: 'https://cancel.example.com/h',
        eventTypes: ['booking.cancelled'],
      }),
    ]);
    const { fanOut } = setup();
    const sent = await fanOut.publish(
      { type: 'booking.created', tenantId, subjectUserId: alice.id, data: { id: 'b-1' } },
      'corr-7',
    );
    expect(sent).toEqual({ enqueued: 3, published: true });
    const landed = await landedMessages();
    const messages = landed.map(({ webhook }) => webhook);
    expect(messages.map((message) => message.endpointId).sort()).toEqual(
      [aliceHook.endpoint.id, adminHook?.endpoint.id, integrationHook?.endpoint.id].sort(),
    );
    // Each delivery has its own stable webhook id.
    expect(new Set(messages.map((message) => message.id)).size).toBe(3);
    expect(messages[0]).toMatchObject({
      tenantId,
      eventType: 'booking.created',
      payload: { data: { id: 'b-1' } },
    });
    for (const { message } of landed) {
      expect(Object.keys(message.MessageAttributes ?? {})).toEqual(['x-correlation-id']);
      expect(message.MessageAttributes?.['x-correlation-id']).toMatchObject({
        DataType: 'String',
        StringValue: 'corr-7',
      });
    }
  });

  it('makes the same messages each time an event with an id is published: an id per endpoint, made when it occurred', async () => {
    const tenantId = `fan-${randomUUID()}`;
    const eventTypes = ['booking.cancelled'] as const;
    const endpointIds = (
      await Promise.all([
        store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
          url: 'https://admin.example.com/h',
          eventTypes,
        }),
        store.createEndpoint(principalIn(tenantId, { isM2M: true }), {
          url: 'https://m2m.example.com/h',
          eventTypes,
        }),
      ])
    ).map(({ endpoint }) => endpoint.id);
    const { fanOut } = setup();
    const occurredAt = new Date('2021-02-03T04:05:06.789Z');
    const event = {
      id: 'booking.cancelled/b-11',
      type: 'booking.cancelled',
      tenantId,
      subjectUserId: undefined,
      data: { id: 'b-11', status: 'cancelled' },
      occurredAt,
    } as const;
    // The first publish, and a retry's of the same event (say its mark as published was lost).
    expect(await fanOut.publish(event, 'corr-first')).toEqual({ enqueued: 2, published: true });
    const first = (await landedMessages()).map(({ webhook }) => webhook);
    expect(await fanOut.publish(event, 'corr-retry')).toEqual({ enqueued: 2, published: true });
    const again = (await landedMessages()).map(({ webhook }) => webhook);
    const byEndpoint = (messages: WebhookMessage[]) =>
      [...messages].sort((a, b) => a.endpointId.localeCompare(b.endpointId));
    // Byte for byte the same message: the worker takes the copy for an SQS duplicate of the first.
    expect(byEndpoint(again)).toEqual(byEndpoint(first));
    expect(byEndpoint(first)).toEqual(
      byEndpoint(
        endpointIds.map((endpointId) => ({
          id: webhookIdFor('booking.cancelled/b-11', endpointId),
          endpointId,
          tenantId,
          eventType: 'booking.cancelled',
          createdAt: '2021-02-03T04:05:06.789Z',
          payload: {
            type: 'booking.cancelled',
            timestamp: '2021-02-03T04:05:06.789Z',
            data: { id: 'b-11', status: 'cancelled' },
          },
        })),
      ),
    );
    expect(new Set(first.map((message) => message.id)).size).toBe(2);
    // Another event of the booking has ids of its own.
    await fanOut.publish({ ...event, id: 'booking.created/b-11' }, undefined);
    const other = (await landedMessages()).map(({ webhook }) => webhook.id);
    expect(other).toHaveLength(2);
    expect(other.filter((id) => first.some((message) => message.id === id))).toEqual([]);
  });

  it("never takes a subject id that extends another with '#' for that subject, nor a tenant for another", async () => {
    const tenantId = `fan-${randomUUID()}`;
    const alice = principalIn(tenantId);
    const eventTypes = ['booking.created'] as const;
    const aliceHook = await store.createEndpoint(alice, { url: 'https://alice.example.com/h', eventTypes });
    const lookalike = principalIn(tenantId, { id: `${alice.id}#x` });
    await store.createEndpoint(lookalike, { url: 'https://lookalike.example.com/h', eventTypes });
    const { fanOut } = setup();
    await fanOut.publish(
      { type: 'booking.created', tenantId, subjectUserId: alice.id, data: { id: 'b-2' } },
      'c',
    );
    expect((await landedMessages()).map(({ webhook }) => webhook.endpointId)).toEqual([
      aliceHook.endpoint.id,
    ]);
    // The owner index: (tenant T, subject x#bob) must not list the endpoints of (tenant T#x, subject bob).
    const victim = principalIn(`${tenantId}#x`, { id: 'bob' });
    await store.createEndpoint(victim, { url: 'https://victim.example.com/secret', eventTypes });
    const prober = principalIn(tenantId, { id: 'x#bob' });
    expect((await store.listOwnedEndpoints(prober, 10)).items).toEqual([]);
    // Ids without `#` or `%` keep the keys they were stored under before the escaping.
    const auth0User = principalIn(tenantId, { id: 'auth0|64f1c2' });
    const { endpoint } = await store.createEndpoint(auth0User, {
      url: 'https://a0.example.com/h',
      eventTypes,
    });
    const { Item } = await documentClient.send(
      new GetCommand({ TableName: testTableNames.toolkit, Key: { pk: `WH#${endpoint.id}`, sk: 'ENDPOINT' } }),
    );
    expect(Item?.gsi1pk).toBe(`WH#OWNER#${tenantId}#auth0|64f1c2`);
  });

  it("never gives a person the endpoints of a machine whose client id is the person's sub, nor the reverse", async () => {
    const tenantId = `fan-${randomUUID()}`;
    const sharedId = `svc-${randomUUID()}`;
    const machine = principalIn(tenantId, { id: sharedId, isM2M: true, clientId: sharedId });
    const person = principalIn(tenantId, { id: sharedId });
    const eventTypes = ['booking.created'] as const;
    const machineHook = await store.createEndpoint(machine, { url: 'https://m.example.com/h', eventTypes });
    const personHook = await store.createEndpoint(person, { url: 'https://p.example.com/h', eventTypes });
    expect((await store.listOwnedEndpoints(machine, 10)).items.map((item) => item.id)).toEqual([
      machineHook.endpoint.id,
    ]);
    expect((await store.listOwnedEndpoints(person, 10)).items.map((item) => item.id)).toEqual([
      personHook.endpoint.id,
    ]);
    await expect(store.getOwnedEndpoint(machineHook.endpoint.id, person)).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(store.getOwnedEndpoint(personHook.endpoint.id, machine)).rejects.toBeInstanceOf(
      NotFoundError,
    );
    // A person's role may change; the endpoints stay theirs.
    const promoted = { ...person, roles: ['admin'] };
    expect((await store.getOwnedEndpoint(personHook.endpoint.id, promoted)).id).toBe(personHook.endpoint.id);
  });

  it('skips disabled endpoints', async () => {
    const tenantId = `fan-${randomUUID()}`;
    const { endpoint } = await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['user.registered'],
    });
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    await store.disableEndpoint(stored, { reason: 'gone' });
    const { fanOut } = setup();
    expect(
      await fanOut.publish({ type: 'user.registered', tenantId, subjectUserId: 'u-1', data: {} }, undefined),
    ).toEqual({ enqueued: 0, published: true });
    expect(await landedMessages()).toEqual([]);
  });

  it('sends in batches of at most 10 messages', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await Promise.all(
      Array.from({ length: 12 }, () =>
        store.createEndpoint(principalIn(tenantId, { isM2M: true }), {
          url: 'https://m2m.example.com/h',
          eventTypes: ['booking.cancelled'],
        }),
      ),
    );
    const { fanOut } = setup();
    expect(
      await fanOut.publish(
        { type: 'booking.cancelled', tenantId, subjectUserId: undefined, data: {} },
        undefined,
      ),
    ).toEqual({ enqueued: 12, published: true });
    const sizes = sqs.sendMessageBatches().map((batch) => batch.Entries?.length);
    expect(sizes.sort()).toEqual([10, 2]);
    expect(new Set((await landedMessages()).map(({ webhook }) => webhook.id)).size).toBe(12);
  });

  it('never throws when SQS fails or refuses entries: it logs, audits and counts the failure', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['booking.created'],
    });
    // SQS down (nothing listens on 127.0.0.1:1), and SQS refusing the batch's one entry for real: a queue
    // whose 1024-byte limit the message exceeds (its event data alone is 1100 characters).
    const failures = [
      { name: 'SQS down', client: unreachableSqsClient(), queueUrl: sqs.queueUrl },
      { name: 'entry refused', client: sqs.client, queueUrl: smallMessageQueueUrl },
    ];
    for (const failure of failures) {
      const { fanOut, audits, observability } = setup(failure);
      const data = { note: 'n'.repeat(1100) };
      await expect(
        fanOut.publish({ type: 'booking.created', tenantId, subjectUserId: 'u-9', data }, 'corr-9'),
        failure.name,
      ).resolves.toEqual({ enqueued: 0, published: false });
      expect(audits, failure.name).toEqual([
        expect.objectContaining({
          eventType: 'webhook.enqueue_failed',
          outcome: 'error',
          userId: 'u-9',
          correlationId: 'corr-9',
        }),
      ]);
      expect(storedMetric(observability.metrics, 'WebhookEnqueueFailed'), failure.name).toBe(1);
    }
    expect(sqs.sendMessageBatches().map((batch) => batch.Entries?.length)).toEqual([1]);
    expect(await sqs.enqueued(smallMessageQueueUrl)).toEqual([]);
  });

  it("stops at the request's deadline when DynamoDB hangs, and reports the deadline as the cause", async () => {
    const silent = await silentServer();
    try {
      const { observability, audits } = testObservability('bookings');
      const hanging = new WebhookSubscriptions({
        documentClient: createDocumentClient(createDynamoDbClient({ endpoint: silent.endpoint })),
        tableName: testTableNames.toolkit,
      });
      const fanOut = new WebhookFanOut({
        subscriptions: hanging,
        sqs: sqs.client,
        queueUrl: sqs.queueUrl,
        observability,
      });
      const deadline = new AbortController();
      setTimeout(() => deadline.abort(new DeadlineExceededError('DynamoDB or SQS', 50)), 50);
      await expect(
        fanOut.publish(
          { type: 'booking.created', tenantId: 't', subjectUserId: 'u-3', data: {} },
          'corr-3',
          deadline.signal,
        ),
      ).resolves.toEqual({ enqueued: 0, published: false });
      expect(audits).toEqual([
        expect.objectContaining({
          eventType: 'webhook.enqueue_failed',
          correlationId: 'corr-3',
          metadata: expect.objectContaining({ reason: 'DeadlineExceededError' }),
        }),
      ]);
      expect(storedMetric(observability.metrics, 'WebhookEnqueueFailed')).toBe(1);
      expect(sqs.sendMessageBatches()).toEqual([]);
    } finally {
      await silent.close();
    }
  });

  it('does nothing without a webhook queue', async () => {
    const { observability } = setup();
    const fanOut = new WebhookFanOut({ subscriptions, sqs: undefined, queueUrl: undefined, observability });
    expect(
      await fanOut.publish(
        { type: 'booking.created', tenantId: 't', subjectUserId: 'u', data: {} },
        undefined,
      ),
    ).toEqual({ enqueued: 0, published: true });
    expect(await landedMessages()).toEqual([]);
  });
});

describe('publishing an event kept pending on its item', () => {
  const pendingEvent = (tenantId: string) => ({
    id: `booking.created/b-${randomUUID()}`,
    type: 'booking.created' as const,
    tenantId,
    subjectUserId: 'u-7',
    data: { id: 'b-7' },
    subject: { bookingId: 'b-7' },
    occurredAt: new Date('2021-01-02T03:04:05.000Z'),
  });
  const warningsOf = () => {
    const warnings: unknown[][] = [];
    return { warnings, logger: { warn: (...args: unknown[]) => void warnings.push(args) } };
  };

  it('marks it published with the same signal once every message is in the queue', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['booking.created'],
    });
    const { fanOut } = setup();
    const { warnings, logger } = warningsOf();
    const signal = new AbortController().signal;
    const marks: (AbortSignal | undefined)[] = [];
    const result = await publishPending(
      fanOut,
      pendingEvent(tenantId),
      async (markSignal) => {
        marks.push(markSignal);
        const landed = await landedMessages();
        expect(landed).toHaveLength(1);
        expect(landed[0]?.message.MessageAttributes?.['x-correlation-id']?.StringValue).toBe('corr-1');
      },
      { correlationId: 'corr-1', signal, logger },
    );
    expect(result).toBe('published');
    expect(marks).toEqual([signal]);
    expect(warnings).toEqual([]);
  });

  it('names the subject and the event id on the error line and audit line of a failure to publish it', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['booking.created'],
    });
    const { fanOut, audits, observability } = setup({ client: unreachableSqsClient() });
    const logged = vi.spyOn(observability.logger, 'error');
    const event = pendingEvent(tenantId);
    const result = await publishPending(fanOut, event, async () => {}, {
      correlationId: 'corr-5',
      signal: undefined,
      logger: warningsOf().logger,
    });
    expect(result).toBe('not-published');
    expect(logged).toHaveBeenCalledWith(
      'Webhooks for booking.created were not all enqueued; the change itself is committed',
      {
        correlation_id: 'corr-5',
        userId: 'u-7',
        eventType: 'booking.created',
        eventId: event.id,
        bookingId: 'b-7',
        error: expect.any(String),
      },
    );
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.enqueue_failed',
        userId: 'u-7',
        correlationId: 'corr-5',
        metadata: {
          eventType: 'booking.created',
          eventId: event.id,
          bookingId: 'b-7',
          reason: expect.any(String),
        },
      }),
    ]);
  });

  it("answers not-marked and logs the subject and the event's correlation id when the mark fails after the messages went out", async () => {
    const { fanOut } = setup();
    const { warnings, logger } = warningsOf();
    const result = await publishPending(
      fanOut,
      pendingEvent(`fan-${randomUUID()}`),
      async () => {
        throw new Error('throttled');
      },
      { correlationId: 'corr-2', signal: undefined, logger },
    );
    expect(result).toBe('not-marked');
    expect(warnings).toEqual([
      [
        'booking.created published but still marked pending: it is published again later',
        {
          correlation_id: 'corr-2',
          bookingId: 'b-7',
          eventType: 'booking.created',
          error: new Error('throttled'),
        },
      ],
    ]);
  });

  it("logs the signal's reason, not the mark's error, when the mark fails after the request's deadline", async () => {
    const { fanOut } = setup();
    const { warnings, logger } = warningsOf();
    const controller = new AbortController();
    const deadline = new DeadlineExceededError('dynamodb', 3000);
    const result = await publishPending(
      fanOut,
      pendingEvent(`fan-${randomUUID()}`),
      async () => {
        controller.abort(deadline);
        throw new Error('This operation was aborted');
      },
      { correlationId: 'corr-4', signal: controller.signal, logger },
    );
    expect(result).toBe('not-marked');
    expect(warnings).toEqual([
      [
        'booking.created published but still marked pending: it is published again later',
        { correlation_id: 'corr-4', bookingId: 'b-7', eventType: 'booking.created', error: deadline },
      ],
    ]);
  });

  it('answers not-published and never marks it when the messages did not all go out', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['booking.created'],
    });
    const { fanOut } = setup({ client: unreachableSqsClient() });
    const { warnings, logger } = warningsOf();
    let marked = false;
    const result = await publishPending(
      fanOut,
      pendingEvent(tenantId),
      async () => {
        marked = true;
      },
      { correlationId: 'corr-3', signal: undefined, logger },
    );
    expect(result).toBe('not-published');
    expect(marked).toBe(false);
    expect(warnings).toEqual([]);
  });
});
