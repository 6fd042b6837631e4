// The webhook worker against messages a buggy or hostile producer can enqueue: none of them may count against the endpoint.
import { randomUUID } from 'node:crypto';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import {
  attemptsMadeAttribute,
  deadLetterReasonAttribute,
  QueueActions,
} from '../../functions/shared/queue-worker.js';
import { SsrfGuard } from '../../functions/shared/ssrf-guard.js';
import { newWebhookId } from '../../functions/shared/webhook-ids.js';
import { type StoredEndpoint, WebhookStore } from '../../functions/shared/webhook-store.js';
import { UsersModel } from '../../functions/users/users-model.js';
import type { WebhookMessage } from '../../functions/webhook-worker/messages.js';
import { OwnerAlerts } from '../../functions/webhook-worker/owner-alerts.js';
import { WebhookWorker } from '../../functions/webhook-worker/webhook-worker.js';
import { workers } from '../../functions/workers.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { storedMetric, testObservability } from '../helpers/observability.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import { type Receiver, registeringWebhookStore, startReceiver, webhookWorkerContext } from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documentClient = createDocumentClient(dynamoDb);
const encryptor = createFunctionEncryptor(readEnvironment());
const store = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
const registrations = registeringWebhookStore(documentClient);
const context = webhookWorkerContext;

let queues: LocalWorkerQueues;
let emailQueueUrl: string;
const receivers: Receiver[] = [];
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('webhook-worker');
  emailQueueUrl = await queues.createQueue('bulwark-email');
});
afterEach(() => queues.reset());
afterAll(async () => {
  await queues.stop();
  for (const receiver of receivers) await receiver.close();
});

/** A worker as the function builds it, whose endpoints are disabled at their first delivery failed for good. */
function setup() {
  const { observability, audits } = testObservability('webhook-worker');
  const worker = new WebhookWorker({
    store,
    guard: new SsrfGuard({ allowlist: ['127.0.0.0/8'] }),
    sqs: new QueueActions({
      sqs: queues.client,
      queueUrl: queues.queueUrl,
      dlqUrl: queues.dlqUrl,
      logger: observability.logger,
    }),
    maxAttempts: workers['webhook-worker'].maxReceiveCount,
    retryBaseDelaySec: 10,
    circuitStore: new DynamoDbCircuitStateStore({ tableName: testTableNames.toolkit, client: dynamoDb }),
    disableRule: { afterFailedDeliveries: 1 },
    alerts: new OwnerAlerts({
      sqs: queues.client,
      emailQueueUrl,
      users: new UsersModel(documentClient, testTableNames.app, encryptor),
      logger: observability.logger,
      auditLogger: observability.auditLogger,
      metrics: observability.metrics,
    }),
    persistenceStore: new ToolkitIdempotencyStore({
      name: 'webhook-worker',
      tableName: testTableNames.toolkit,
      client: dynamoDb,
    }),
    observability,
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return { run, audits, metrics: observability.metrics, logger: observability.logger };
}

/** An endpoint as the worker's message names it. */
type Addressee = Pick<StoredEndpoint, 'id' | 'tenantId'>;

async function endpoint(): Promise<{ endpoint: Addressee; receiver: Receiver }> {
  const receiver = await startReceiver();
  receivers.push(receiver);
  const owner = testPrincipal({ tenantId: `wh-limits-${randomUUID()}` });
  const { endpoint: registered } = await registrations.createEndpoint(
    owner,
    { url: receiver.url, eventTypes: ['booking.created'] },
    new Date(Date.now() - 1000),
  );
  return { endpoint: registered, receiver };
}

function messageFor(endpoint: Addressee, data: Record<string, unknown>): WebhookMessage {
  const now = new Date().toISOString();
  return {
    id: newWebhookId('msg'),
    endpointId: endpoint.id,
    tenantId: endpoint.tenantId,
    eventType: 'booking.created',
    createdAt: now,
    payload: { type: 'booking.created', timestamp: now, data },
  };
}

/** JSON text of `levels` arrays, each the only item of the one before (JSON.stringify cannot write it deep). */
const nestedJson = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('a payload nested too deeply', () => {
  it('is dead-lettered with its reason, nothing POSTed and nothing counted against the endpoint, also on the last receive', async () => {
    const { endpoint: registered, receiver } = await endpoint();
    const { run, audits, metrics } = setup();
    // Deep enough that JSON.stringify overflows the stack (some thousands of levels), small enough for SQS.
    const body = JSON.stringify(messageFor(registered, { id: 'booking-1', deep: 'here' })).replace(
      '"deep":"here"',
      `"deep":${nestedJson(20_000)}`,
    );
    const lastReceive = { receiveCount: workers['webhook-worker'].maxReceiveCount };
    expect(await run(await queues.receivedRecord(body, lastReceive))).toEqual({ batchItemFailures: [] });
    const [copy, ...others] = await queues.deadLetters([body]);
    expect(others).toEqual([]);
    expect(copy?.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue).toBe(
      'Invalid message: payload.data: Must nest at most 32 levels of objects and arrays',
    );
    expect(receiver.received).toEqual([]);
    expect((await store.listDeliveries(registered.id, 10)).items).toEqual([]);
    expect(await store.getEndpoint(registered.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    expect(audits.map((line) => [line.eventType, line.metadata.reason])).toEqual([
      ['webhook.rejected', 'invalid_message'],
    ]);
    expect(storedMetric(metrics, 'WebhookEndpointDisabled')).toBeUndefined();
  });

  it('is delivered at 32 levels, the limit', async () => {
    const { endpoint: registered, receiver } = await endpoint();
    const { run } = setup();
    const message = messageFor(registered, { id: 'booking-1', deep: JSON.parse(nestedJson(31)) });
    expect(await run(await queues.receivedRecord(message))).toEqual({ batchItemFailures: [] });
    expect(receiver.received.map(({ body }) => JSON.parse(body))).toEqual([message.payload]);
  });
});

describe('a createdAt in the future', () => {
  it('is dead-lettered beyond 5 minutes ahead, so it never sorts first in the history nor outlives its retention', async () => {
    const { endpoint: registered, receiver } = await endpoint();
    const { run } = setup();
    const farAhead = { ...messageFor(registered, { id: 'booking-1' }), createdAt: '9999-12-31T23:59:59Z' };
    const slightlyAhead = {
      ...messageFor(registered, { id: 'booking-2' }),
      createdAt: new Date(Date.now() + 4 * 60_000).toISOString(),
    };
    const records = [await queues.receivedRecord(farAhead), await queues.receivedRecord(slightlyAhead)];
    expect(await run(...records)).toEqual({ batchItemFailures: [] });
    const copies = await queues.deadLetters();
    expect(
      copies.map((copy) => [copy.Body, copy.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue]),
    ).toEqual([
      [JSON.stringify(farAhead), 'Invalid message: createdAt: Must be at most 5 minutes in the future'],
    ]);
    expect(receiver.received.map(({ body }) => JSON.parse(body))).toEqual([slightlyAhead.payload]);
    expect((await store.listDeliveries(registered.id, 10)).items.map(({ webhookId }) => webhookId)).toEqual([
      slightlyAhead.id,
    ]);
  });
});

describe('a message naming another tenant', () => {
  it("drops it with nothing in the endpoint's history, warns and audits it apart from a deleted endpoint", async () => {
    const { endpoint: registered, receiver } = await endpoint();
    const { run, audits, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const foreign = { ...messageFor(registered, { id: 'booking-1' }), tenantId: 'someone-else' };
    const received = await queues.receivedRecord(foreign);
    expect(await run(received)).toEqual({ batchItemFailures: [] });
    expect(receiver.received).toEqual([]);
    expect((await store.listDeliveries(registered.id, 10)).items).toEqual([]);
    expect(warn).toHaveBeenCalledWith('Webhook dropped: its endpoint belongs to another tenant', {
      correlation_id: received.messageId,
      webhookId: foreign.id,
      endpointId: registered.id,
      bookingId: 'booking-1',
      tenantId: 'someone-else',
      endpointTenantId: registered.tenantId,
    });
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.misdirected',
        outcome: 'denied',
        tenantId: 'someone-else',
        correlationId: received.messageId,
        metadata: expect.objectContaining({
          reason: 'tenant_mismatch',
          webhookId: foreign.id,
          endpointId: registered.id,
          endpointTenantId: registered.tenantId,
        }),
      }),
    ]);
  });
});

describe("a producer's bulwark-attempts-made", () => {
  it('is ignored beyond the attempts a copy the worker sent back can carry: the message is POSTed, not moved to the DLQ unattempted', async () => {
    const { endpoint: registered, receiver } = await endpoint();
    const { run } = setup();
    const message = messageFor(registered, { id: 'booking-1' });
    const spoofed = await queues.receivedRecord(message, {
      attributes: { [attemptsMadeAttribute]: String(workers['webhook-worker'].maxReceiveCount) },
    });
    expect(await run(spoofed)).toEqual({ batchItemFailures: [] });
    expect(await queues.deadLetters()).toEqual([]);
    expect(receiver.received.map(({ body }) => JSON.parse(body))).toEqual([message.payload]);
    expect((await store.listDeliveries(registered.id, 10)).items).toMatchObject([
      { webhookId: message.id, status: 'delivered', attempts: [{ attempt: 1 }] },
    ]);
  });
});
