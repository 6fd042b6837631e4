// An operator's DLQ redrive of webhook messages, against a real local-aws-sqs (the queue, its DLQ and the redrive policy).
import { ChangeMessageVisibilityCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { deadLetterReasonAttribute, QueueActions } from '../../functions/shared/queue-worker.js';
import { SsrfGuard } from '../../functions/shared/ssrf-guard.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { OwnerAlerts } from '../../functions/webhook-worker/owner-alerts.js';
import { endpointDisabledReason, WebhookWorker } from '../../functions/webhook-worker/webhook-worker.js';
import { workers } from '../../functions/workers.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { LocalWorkerQueues, stringAttributesOf } from '../helpers/local-worker-queues.js';
import { testObservability } from '../helpers/observability.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import {
  type Receiver,
  registeringWebhookStore,
  startReceiver,
  webhookMessageFor,
  webhookWorkerContext,
} from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documentClient = createDocumentClient(dynamoDb);
const encryptor = createFunctionEncryptor(readEnvironment());
const store = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
const registrations = registeringWebhookStore(documentClient);
const maxAttempts = workers['webhook-worker'].maxReceiveCount;
const context = webhookWorkerContext;

let queues: LocalWorkerQueues;
/** The operator's client: its calls are not the worker's. */
let operator: SQSClient;
let emailQueueUrl: string;
const receivers: Receiver[] = [];
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('webhook-worker');
  emailQueueUrl = await queues.createQueue('bulwark-email');
  operator = queues.sqs.createClient();
});
afterEach(() => queues.reset());
afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.close()));
  operator.destroy();
  await queues.stop();
});

async function receiver(status: () => number): Promise<Receiver> {
  const started = await startReceiver(() => ({ status: status() }));
  receivers.push(started);
  return started;
}

function setup({ failureThreshold = 5, maxCircuitDeferrals = 10, store: workerStore = store } = {}) {
  const { observability, audits } = testObservability('webhook-worker');
  const { logger, auditLogger, metrics } = observability;
  const worker = new WebhookWorker({
    store: workerStore,
    guard: new SsrfGuard({ allowlist: ['127.0.0.0/8', '::1/128'] }),
    sqs: new QueueActions({ sqs: queues.client, queueUrl: queues.queueUrl, dlqUrl: queues.dlqUrl, logger }),
    maxAttempts,
    retryBaseDelaySec: 10,
    circuitStore: new DynamoDbCircuitStateStore({ tableName: testTableNames.toolkit, client: dynamoDb }),
    circuit: { failureThreshold, stateTtlMs: 0 },
    maxCircuitDeferrals,
    alerts: new OwnerAlerts({
      sqs: queues.client,
      emailQueueUrl,
      users: new UsersModel(documentClient, testTableNames.app, encryptor),
      logger,
      auditLogger,
      metrics,
    }),
    persistenceStore: new ToolkitIdempotencyStore({
      name: 'webhook-worker',
      tableName: testTableNames.toolkit,
      client: dynamoDb,
    }),
    observability,
    random: () => 0.5,
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return { run, audits, logger };
}

async function endpointAt(url: string) {
  const owner = testPrincipal({ tenantId: `wh-redrive-${crypto.randomUUID()}` });
  const { endpoint } = await registrations.createEndpoint(owner, { url, eventTypes: ['booking.created'] });
  return endpoint;
}

async function onlyRecord(): Promise<SQSRecord> {
  const records = await queues.receiveRecords();
  expect(records).toHaveLength(1);
  return records[0] as SQSRecord;
}

describe('a message for a disabled endpoint', () => {
  it('is kept in the DLQ, so a redrive before the enable loses nothing and one after it delivers', async () => {
    const hooks = await receiver(() => 204);
    const endpoint = await endpointAt(hooks.url);
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    expect(await store.disableEndpoint(stored, { reason: 'gone' })).toBe(true);
    const { run, audits } = setup();
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);

    expect(await run(await queues.receivedRecord(message))).toEqual({ batchItemFailures: [] });
    expect(hooks.received).toHaveLength(0);
    expect((await store.listDeliveries(endpoint.id, 10)).items[0]).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 1, error: 'endpoint disabled: not attempted, kept in the DLQ' }],
    });
    expect(audits.at(-1)).toMatchObject({
      eventType: 'webhook.failed',
      metadata: { webhookId: message.id, reason: 'endpoint_disabled', deadLetteredBy: 'worker' },
    });

    // Redriven while the endpoint is still disabled: back in the DLQ, once, not consumed.
    await queues.redriveDeadLetters();
    expect(await run(await onlyRecord())).toEqual({ batchItemFailures: [] });
    expect(hooks.received).toHaveLength(0);
    expect(await queues.receiveRecords()).toEqual([]);

    const disabled = await store.getEndpoint(endpoint.id);
    if (!disabled) throw new Error('endpoint missing');
    await store.enableEndpoint(disabled);
    await queues.redriveDeadLetters();
    expect(await run(await onlyRecord())).toEqual({ batchItemFailures: [] });
    expect(hooks.received).toHaveLength(1);
    expect((await store.listDeliveries(endpoint.id, 10)).items[0]?.status).toBe('delivered');
    expect(await queues.deadLetters()).toEqual([]);
  });

  it('carries one reason, naming endpoint_disabled, when it is copied to the DLQ', async () => {
    const hooks = await receiver(() => 204);
    const endpoint = await endpointAt(hooks.url);
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    await store.disableEndpoint(stored, { reason: 'gone' });
    const { run } = setup();
    const body = JSON.stringify(webhookMessageFor(endpoint.id, endpoint.tenantId));

    await run(await queues.receivedRecord(body, { attributes: { 'x-correlation-id': 'corr-disabled' } }));

    const [copy, ...others] = await queues.deadLetters([body]);
    expect(others).toEqual([]);
    expect(stringAttributesOf(copy as Message)).toEqual({
      [deadLetterReasonAttribute]: endpointDisabledReason,
      'x-correlation-id': 'corr-disabled',
    });
    expect(endpointDisabledReason).toContain('endpoint_disabled');
  });
});

describe('a redriven message that fails again', () => {
  it('reaches the DLQ with the reason that ended it now, not the one it was redriven with', async () => {
    let status = 204;
    const hooks = await receiver(() => status);
    const endpoint = await endpointAt(hooks.url);
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    await store.disableEndpoint(stored, { reason: 'gone' });
    const { run } = setup({ failureThreshold: 100 });
    const body = JSON.stringify(webhookMessageFor(endpoint.id, endpoint.tenantId));
    await run(await queues.receivedRecord(body));
    const disabled = await store.getEndpoint(endpoint.id);
    if (!disabled) throw new Error('endpoint missing');
    await store.enableEndpoint(disabled);

    // Enabled and redriven, as the runbook says; the receiver then fails every attempt.
    status = 500;
    await queues.redriveDeadLetters();
    let received = await onlyRecord();
    for (let attempt = 1; attempt < maxAttempts; attempt += 1) {
      expect((await run(received)).batchItemFailures).toHaveLength(1);
      received = await queues.redelivered(received);
    }
    expect(await run(received)).toEqual({ batchItemFailures: [] });
    expect(hooks.received).toHaveLength(maxAttempts);

    // Nothing left for SQS's redrive to move with the old reason.
    expect(await queues.receiveRecords()).toEqual([]);
    const [copy, ...others] = await queues.deadLetters([body]);
    expect(others).toEqual([]);
    expect(stringAttributesOf(copy as Message)).toEqual({
      [deadLetterReasonAttribute]: `attempts used: ${maxAttempts} of ${maxAttempts}`,
    });
  });

  it('is left to SQS redrive when it carries no reason, as before', async () => {
    const hooks = await receiver(() => 500);
    const endpoint = await endpointAt(hooks.url);
    const { run } = setup({ failureThreshold: 100 });

    const last = await queues.receivedRecord(webhookMessageFor(endpoint.id, endpoint.tenantId), {
      receiveCount: maxAttempts,
    });
    expect(await run(last)).toEqual({ batchItemFailures: [{ itemIdentifier: last.messageId }] });
    expect(queues.visibilityChanges().map((change) => change.VisibilityTimeout)).toEqual([0]);
    expect(queues.sentMessages()).toEqual([]);
    // SQS's redrive moved it, with no reason: the message, not a copy of the worker's.
    const [moved] = await queues.deadLetters([last.body]);
    expect(moved?.MessageId).toBe(last.messageId);
    expect(moved?.MessageAttributes).toBeUndefined();
  });
});

describe('a copy sent back while its endpoint circuit was open', () => {
  it('reaches the DLQ without its counts when its last attempt fails, so a redrive starts afresh', async () => {
    const hooks = await receiver(() => 500);
    const endpoint = await endpointAt(hooks.url);
    const maxCircuitDeferrals = 2;
    const { run } = setup({ failureThreshold: 1, maxCircuitDeferrals });
    const body = JSON.stringify(webhookMessageFor(endpoint.id, endpoint.tenantId));

    // Deferred as often as it may be, then every attempt failed: the last one opens the circuit.
    const last = await queues.receivedRecord(body, {
      receiveCount: maxAttempts,
      attributes: { 'bulwark-send-backs': String(maxCircuitDeferrals), 'bulwark-attempts-made': '0' },
    });
    expect(await run(last)).toEqual({ batchItemFailures: [] });
    expect(await queues.receiveRecords()).toEqual([]);
    const [copy] = await queues.receive(queues.dlqUrl);
    expect(stringAttributesOf(copy as Message)).toEqual({
      [deadLetterReasonAttribute]: `attempts used: ${maxAttempts} of ${maxAttempts}`,
    });
    await operator.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queues.dlqUrl,
        ReceiptHandle: copy?.ReceiptHandle,
        VisibilityTimeout: 0,
      }),
    );

    // Redriven while the circuit is still open: deferred like a new message, its attempts unspent.
    await queues.redriveDeadLetters();
    queues.clearCalls();
    expect(await run(await onlyRecord())).toEqual({ batchItemFailures: [] });
    expect(hooks.received).toHaveLength(1);
    const [sentBack] = queues.sentMessages();
    expect(sentBack?.QueueUrl).toBe(queues.queueUrl);
    expect(sentBack?.MessageAttributes?.['bulwark-send-backs']?.StringValue).toBe('1');
  });
});

describe('a message redriven from the DLQ', () => {
  it('is marked redriven in its log and audit lines, and a new one is not', async () => {
    const hooks = await receiver(() => 204);
    const endpoint = await endpointAt(hooks.url);
    const { run, audits, logger } = setup();
    const info = vi.spyOn(logger, 'info');
    const redriven = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const fresh = webhookMessageFor(endpoint.id, endpoint.tenantId);

    await run(
      await queues.receivedRecord(redriven, {
        attributes: { [deadLetterReasonAttribute]: endpointDisabledReason },
      }),
    );
    await run(await queues.receivedRecord(fresh));

    expect(hooks.received).toHaveLength(2);
    const deliveredLines = audits.filter((audit) => audit.eventType === 'webhook.delivered');
    expect(deliveredLines.map((audit) => [audit.metadata?.webhookId, audit.metadata?.redriven])).toEqual([
      [redriven.id, true],
      [fresh.id, undefined],
    ]);
    expect(info).toHaveBeenCalledWith(
      'Webhook message redriven from the DLQ',
      expect.objectContaining({
        webhookId: redriven.id,
        redriven: true,
        previousReason: endpointDisabledReason,
      }),
    );
    expect(info.mock.calls.filter(([line]) => line === 'Webhook message redriven from the DLQ')).toHaveLength(
      1,
    );
  });
});

describe('a redriven message whose last receive fails on the worker side', () => {
  it('reaches the DLQ with the reason that ended it now', async () => {
    const hooks = await receiver(() => 204);
    const endpoint = await endpointAt(hooks.url);
    // DynamoDB refusing connections: the endpoint cannot be read, nor the delivery marked.
    const refusing = new WebhookStore({
      documentClient: createDocumentClient(
        createDynamoDbClient({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 }),
      ),
      tableName: testTableNames.toolkit,
      encryptor,
    });
    const { run, audits } = setup({ store: refusing });
    const body = JSON.stringify(webhookMessageFor(endpoint.id, endpoint.tenantId));

    const last = await queues.receivedRecord(body, {
      receiveCount: maxAttempts,
      attributes: { [deadLetterReasonAttribute]: endpointDisabledReason },
    });
    expect(await run(last)).toEqual({ batchItemFailures: [] });

    expect(hooks.received).toHaveLength(0);
    expect(audits.at(-1)).toMatchObject({
      eventType: 'webhook.failed',
      metadata: { reason: 'worker_error', last: true, redriven: true },
    });
    expect(await queues.receiveRecords()).toEqual([]);
    const [copy, ...others] = await queues.deadLetters([body]);
    expect(others).toEqual([]);
    expect(stringAttributesOf(copy as Message)).toEqual({
      [deadLetterReasonAttribute]: `attempts used: ${maxAttempts} of ${maxAttempts}`,
    });
  });
});
