import { randomUUID } from 'node:crypto';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { WebhookFanOut } from '../../functions/shared/webhook-fanout.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { webhookMessageSchema } from '../../functions/webhook-worker/messages.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testObservability } from '../helpers/observability.js';
import { testPrincipal } from '../helpers/principals.js';
import { sendMessageBatchFailures } from '../helpers/sqs-failures.js';
import { testTableNames } from '../helpers/tables.js';

const sqsMock = mockClient(SQSClient);
const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const store = new WebhookStore({
  documentClient,
  tableName: testTableNames.toolkit,
  encryptor: createFunctionEncryptor(readEnvironment()),
});
const queueUrl = 'http://127.0.0.1:1/000000000000/bulwark-webhook';

const principalIn = (tenantId: string, overrides: Partial<Principal> = {}) =>
  testPrincipal({ tenantId, ...overrides });

function setup() {
  const { observability, audits } = testObservability('bookings');
  const fanOut = new WebhookFanOut({
    store,
    sqs: new SQSClient({ region: 'us-east-1' }),
    queueUrl,
    observability,
  });
  return { fanOut, audits, observability };
}

/** Every message sent, across every SendMessageBatch call. */
function sentMessages() {
  return sqsMock
    .commandCalls(SendMessageBatchCommand)
    .flatMap((call) => call.args[0].input.Entries ?? [])
    .map((entry) => webhookMessageSchema.parse(JSON.parse(entry.MessageBody ?? '{}')));
}

beforeEach(() => {
  sqsMock.reset();
  sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
});

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
    expect(sent).toBe(3);
    const messages = sentMessages();
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
    expect(
      sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0]?.MessageAttributes,
    ).toEqual({ 'x-correlation-id': { DataType: 'String', StringValue: 'corr-7' } });
  });

  it('skips disabled endpoints', async () => {
    const tenantId = `fan-${randomUUID()}`;
    const { endpoint } = await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['user.registered'],
    });
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    await store.disableEndpoint(stored, 'failing');
    const { fanOut } = setup();
    expect(
      await fanOut.publish({ type: 'user.registered', tenantId, subjectUserId: 'u-1', data: {} }, undefined),
    ).toBe(0);
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
    ).toBe(12);
    const sizes = sqsMock
      .commandCalls(SendMessageBatchCommand)
      .map((call) => call.args[0].input.Entries?.length);
    expect(sizes.sort()).toEqual([10, 2]);
  });

  it('never throws when SQS fails or refuses entries: it logs, audits and counts the failure', async () => {
    const tenantId = `fan-${randomUUID()}`;
    await store.createEndpoint(principalIn(tenantId, { roles: ['admin'] }), {
      url: 'https://admin.example.com/h',
      eventTypes: ['booking.created'],
    });
    for (const fail of sendMessageBatchFailures(sqsMock, '0')) {
      fail();
      const { fanOut, audits } = setup();
      await expect(
        fanOut.publish({ type: 'booking.created', tenantId, subjectUserId: 'u-9', data: {} }, 'corr-9'),
      ).resolves.toBe(0);
      expect(audits).toEqual([
        expect.objectContaining({
          eventType: 'webhook.enqueue_failed',
          outcome: 'error',
          userId: 'u-9',
          correlationId: 'corr-9',
        }),
      ]);
    }
  });

  it('does nothing without a webhook queue', async () => {
    const { observability } = setup();
    const fanOut = new WebhookFanOut({ store, sqs: undefined, queueUrl: undefined, observability });
    expect(
      await fanOut.publish(
        { type: 'booking.created', tenantId: 't', subjectUserId: 'u', data: {} },
        undefined,
      ),
    ).toBe(0);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(0);
  });
});
