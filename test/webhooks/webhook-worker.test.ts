import { randomUUID } from 'node:crypto';
import { KMSServiceException } from '@aws-sdk/client-kms';
import { type DeleteMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, onTestFinished, vi } from 'vitest';
import { QueuePoller } from '../../bin/runtime/queue-poller.js';
import { parseEmailMessage } from '../../functions/email-worker/messages.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import {
  attemptsMadeAttribute,
  batchAnswerMarginMs,
  deadLetterReasonAttribute,
  fullJitterDelaySec,
  QueueActions,
  sendBacksAttribute,
} from '../../functions/shared/queue-worker.js';
import { SsrfGuard } from '../../functions/shared/ssrf-guard.js';
import { newWebhookId } from '../../functions/shared/webhook-ids.js';
import {
  type DeliveryStatus,
  deliveryRetentionDays,
  WebhookStore,
} from '../../functions/shared/webhook-store.js';
import { UsersModel } from '../../functions/users/users-model.js';
import type { WebhookMessage } from '../../functions/webhook-worker/messages.js';
import { OwnerAlerts, ownerAlertMessageId } from '../../functions/webhook-worker/owner-alerts.js';
import {
  type DisableRule,
  endpointDisabledReason,
  WebhookWorker,
  type WebhookWorkerOptions,
} from '../../functions/webhook-worker/webhook-worker.js';
import { workers } from '../../functions/workers.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { createKeyProvider } from '../../middleware/encryption/create-key-provider.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { DeadlineExceededError, InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { rejectionOf } from '../encryption/helpers.js';
import { handleTwoBatchesAtOnce } from '../helpers/concurrent-batches.js';
import { freezeAtFailureWindowStart } from '../helpers/failure-window.js';
import { LocalWorkerQueues, unreachableSqsClient } from '../helpers/local-worker-queues.js';
import { auditingSecurityEvents, testObservability } from '../helpers/observability.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';
import { throttleFirstDelete, throttlingError } from '../helpers/throttling.js';
import {
  type Receiver,
  registeringWebhookStore,
  sealAsBeforePurposes,
  startReceiver,
  webhookMessageFor,
  webhookWorkerContext,
} from './helpers.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documentClient = createDocumentClient(dynamoDb);
/** A store of the worker's idempotency records, as the function makes it. */
const webhookWorkerStore = () =>
  new ToolkitIdempotencyStore({
    name: 'webhook-worker',
    tableName: testTableNames.toolkit,
    client: dynamoDb,
  });
// As the functions build theirs: the worker reads secrets and owners' addresses with the tenant-bound
// encryptor, the webhooks function seals secrets with their purpose bound to the data key.
const encryptor = createFunctionEncryptor(readEnvironment());
const store = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
const registrations = registeringWebhookStore(documentClient);
const users = new UsersModel(documentClient, testTableNames.app, encryptor);
const loopbackGuard = new SsrfGuard({ allowlist: ['127.0.0.0/8', '::1/128'] });

const context = webhookWorkerContext;

const receivers: Receiver[] = [];
async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const started = await startReceiver(...args);
  receivers.push(started);
  return started;
}

const principal = (overrides: Partial<Principal> = {}) =>
  testPrincipal({ tenantId: `wh-unit-${randomUUID()}`, ...overrides });

// A real local-aws-sqs with the webhook queue and its DLQ, and the email queue owner alerts go to:
// records are really received, and visibility changes, DLQ copies and alerts are checked on the server.
let queues: LocalWorkerQueues;
let emailQueueUrl: string;
beforeAll(async () => {
  queues = await LocalWorkerQueues.start('webhook-worker');
  emailQueueUrl = await queues.createQueue('bulwark-email');
});
afterEach(() => queues.reset());
afterAll(() => queues.stop());

/** The message sent to the webhook queue and received `receiveCount` times: that receive's record. */
const record = (body: unknown, receiveCount = 1): Promise<SQSRecord> =>
  queues.receivedRecord(body, { receiveCount });

/** The owner alerts that landed in the email queue (received). */
const alerts = async () =>
  (await queues.enqueued<{ type: string; to: string; data: Record<string, string> }>(emailQueueUrl)).map(
    ({ body }) => body,
  );

interface SetupOptions {
  store?: WebhookStore;
  guard?: SsrfGuard;
  timeoutMs?: number;
  failureThreshold?: number;
  disableRule?: DisableRule;
  maxRetryDelaySec?: number;
  random?: () => number;
  /** Where the worker copies unprocessable messages. @default the webhook queue's DLQ */
  dlqUrl?: string;
  /** The client the worker's queue actions use. @default the local server's */
  sqs?: SQSClient;
  circuitDeferralHours?: number;
  maxCircuitDeferrals?: number;
  /** @default 10 */
  retryBaseDelaySec?: number;
  /** The client owner alerts are enqueued with. @default the local server's */
  alertsSqs?: SQSClient;
  /** @default the worker's store on the toolkit table */
  persistenceStore?: ToolkitIdempotencyStore;
  /** Security events (the circuits') become audit events, as the function's listener makes them. @default false */
  auditSecurityEvents?: boolean;
  /** More circuit settings, over the threshold and a state read before every call. */
  circuit?: WebhookWorkerOptions['circuit'];
}

function setup(options: SetupOptions = {}) {
  const tested = testObservability('webhook-worker');
  const { audits } = tested;
  const observability = options.auditSecurityEvents
    ? auditingSecurityEvents(tested.observability)
    : tested.observability;
  const { logger, auditLogger } = observability;
  const sqs = options.sqs ?? queues.client;
  const worker = new WebhookWorker({
    store: options.store ?? store,
    guard: options.guard ?? loopbackGuard,
    sqs: new QueueActions({
      sqs,
      queueUrl: queues.queueUrl,
      dlqUrl: options.dlqUrl ?? queues.dlqUrl,
      logger,
    }),
    maxAttempts: workers['webhook-worker'].maxReceiveCount,
    retryBaseDelaySec: options.retryBaseDelaySec ?? 10,
    ...(options.maxRetryDelaySec ? { maxRetryDelaySec: options.maxRetryDelaySec } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    circuitStore: new DynamoDbCircuitStateStore({ tableName: testTableNames.toolkit, client: dynamoDb }),
    circuit: { failureThreshold: options.failureThreshold ?? 5, stateTtlMs: 0, ...options.circuit },
    ...(options.disableRule ? { disableRule: options.disableRule } : {}),
    ...(options.circuitDeferralHours === undefined
      ? {}
      : { circuitDeferralHours: options.circuitDeferralHours }),
    ...(options.maxCircuitDeferrals === undefined
      ? {}
      : { maxCircuitDeferrals: options.maxCircuitDeferrals }),
    alerts: new OwnerAlerts({
      sqs: options.alertsSqs ?? queues.client,
      emailQueueUrl,
      users,
      logger,
      auditLogger,
      metrics: observability.metrics,
    }),
    persistenceStore: options.persistenceStore ?? webhookWorkerStore(),
    observability,
    random: options.random ?? (() => 0.5),
  });
  const run = (...records: SQSRecord[]) => worker.handle({ Records: records } as SQSEvent, context);
  return { worker, audits, run, metrics: observability.metrics, logger };
}

/**
 * Registers an endpoint straight in the store (no API, so no registration-time SSRF check), at
 * `registeredAt`: the worker drops a message made before its endpoint was registered.
 */
async function endpointAt(url: string, owner: Principal = principal(), registeredAt = new Date()) {
  const { endpoint } = await registrations.createEndpoint(
    owner,
    { url, eventTypes: ['booking.created'] },
    registeredAt,
  );
  return endpoint;
}

const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000);

async function historyOf(endpointId: string) {
  return (await store.listDeliveries(endpointId, 10)).items;
}

/** The visibility timeouts the worker set, in order; each one was carried out by the server. */
const visibilityChanges = () => {
  const changes = queues.visibilityChanges();
  expect(changes.filter((change) => !change.succeeded)).toEqual([]);
  return changes.map((change) => change.VisibilityTimeout);
};

/** The visibility timeouts the worker set, by receipt handle; each one was carried out by the server. */
const visibilityChangesByReceipt = () => {
  const changes = queues.visibilityChanges();
  expect(changes.filter((change) => !change.succeeded)).toEqual([]);
  return Object.fromEntries(changes.map((change) => [change.ReceiptHandle, change.VisibilityTimeout]));
};

/**
 * Runs two receives together, as one batch: both are handed back to SQS (batch item failures). They run
 * concurrently, so their failures and visibility changes come in the order they finish.
 */
async function expectBothHandedBack(
  run: ReturnType<typeof setup>['run'],
  lastAttempt: SQSRecord,
  firstAttempt: SQSRecord,
) {
  const failures = (await run(lastAttempt, firstAttempt)).batchItemFailures;
  expect(failures).toHaveLength(2);
  expect(failures).toEqual(
    expect.arrayContaining([
      { itemIdentifier: lastAttempt.messageId },
      { itemIdentifier: firstAttempt.messageId },
    ]),
  );
}

/**
 * After a failure of ours on the last receive of one message and the first of another: each counts once
 * (`WebhookFailed`), the first comes back after the jittered backoff (random 0.5 of base 10 × 2^0), not
 * the queue's 180 s visibility, so an outage's messages spread out, and the last is visible at once, for
 * the redrive.
 */
function expectFirstBackedOffLastRedriven(
  recorded: { mock: { calls: unknown[][] } },
  lastAttempt: SQSRecord,
  firstAttempt: SQSRecord,
) {
  expect(recorded.mock.calls.filter(([name]) => name === 'WebhookFailed')).toHaveLength(2);
  expect(visibilityChangesByReceipt()).toEqual({
    [lastAttempt.receiptHandle]: 0,
    [firstAttempt.receiptHandle]: 5,
  });
}

let target: Receiver;
beforeAll(async () => {
  target = await receiver();
});
afterAll(async () => {
  await Promise.all(receivers.map((started) => started.close()));
});

describe('the SSRF guard at delivery time', () => {
  it('refuses a loopback receiver when no allowlist opens it, by IP literal and by host name', async () => {
    const { run, audits } = setup({ guard: new SsrfGuard() });
    const before = target.received.length;
    const port = new URL(target.url).port;
    for (const url of [target.url, `http://localhost:${port}/hooks`]) {
      const endpoint = await endpointAt(url);
      const failing = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
      expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
      const [delivery] = await historyOf(endpoint.id);
      expect(delivery?.status).toBe('pending');
      expect(delivery?.attempts[0]?.error).toBe('blocked address (loopback)');
    }
    expect(target.received.length).toBe(before);
    expect(audits.filter((event) => event.eventType === 'webhook.failed')).toHaveLength(2);
  });
});

describe('signing secrets sealed with and without their purpose', () => {
  /** What `secret` makes of the signature on the receiver's last webhook: the payload, or a throw. */
  function verifiedWith(secret: string, received: Receiver) {
    const webhook = received.received.at(-1);
    return new Webhook(secret).verify(webhook?.body ?? '', {
      'webhook-id': String(webhook?.headers['webhook-id']),
      'webhook-timestamp': String(webhook?.headers['webhook-timestamp']),
      'webhook-signature': String(webhook?.headers['webhook-signature']),
    });
  }

  const storedItem = async (endpointId: string) =>
    (
      await documentClient.send(
        new GetCommand({
          TableName: testTableNames.toolkit,
          Key: { pk: `WH#${endpointId}`, sk: 'ENDPOINT' },
        }),
      )
    ).Item;

  it('seals a new secret with its purpose and signs with it', async () => {
    const hooks = await receiver();
    const { endpoint, secret } = await registrations.createEndpoint(principal(), {
      url: hooks.url,
      eventTypes: ['booking.created'],
    });
    expect(await storedItem(endpoint.id)).toMatchObject({ secretContext: 2 });
    expect((await store.getEndpoint(endpoint.id))?.sealedSecret.purposeBound).toBe(true);
    const { run } = setup();
    expect(
      (await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).batchItemFailures,
    ).toEqual([]);
    expect(verifiedWith(secret, hooks)).toMatchObject({ type: 'booking.created' });
  });

  it('still signs with a secret sealed before secrets carried their purpose', async () => {
    const hooks = await receiver();
    const { endpoint, secret } = await registrations.createEndpoint(principal(), {
      url: hooks.url,
      eventTypes: ['booking.created'],
    });
    const earlierSecret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    await sealAsBeforePurposes(documentClient, endpoint.id, earlierSecret);
    expect(await storedItem(endpoint.id)).not.toHaveProperty('secretContext');
    expect((await store.getEndpoint(endpoint.id))?.sealedSecret.purposeBound).toBe(false);
    const { run } = setup();
    expect(
      (await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).batchItemFailures,
    ).toEqual([]);
    expect(verifiedWith(earlierSecret, hooks)).toMatchObject({ type: 'booking.created' });
    expect(() => verifiedWith(secret, hooks)).toThrow();
  });

  it('fails to decrypt a secret whose item claims another context than it was sealed under', async () => {
    const endpoint = await endpointAt(target.url);
    const { secretContext: _claimed, ...claimingNone } = (await storedItem(endpoint.id)) ?? {};
    await documentClient.send(new PutCommand({ TableName: testTableNames.toolkit, Item: claimingNone }));
    const stored = await store.getEndpoint(endpoint.id);
    expect(stored?.sealedSecret.purposeBound).toBe(false);
    // The data-key header names the purpose it was bound to, which the context claimed lacks.
    expect(await rejectionOf(store.signingSecret(stored as NonNullable<typeof stored>))).toMatchObject({
      name: 'DecryptionError',
      reason: 'invalid_context',
    });
  });

  it('refuses to seal a secret with an encryptor whose data keys do not carry the purpose, writing nothing', async () => {
    const owner = principal();
    const refused = await rejectionOf(
      store.createEndpoint(owner, { url: target.url, eventTypes: ['booking.created'] }),
    );
    expect(refused).toBeInstanceOf(Error);
    expect(String(refused)).toContain('keyContextFields include purpose');
    expect((await store.listOwnedEndpoints(owner, 10)).items).toEqual([]);
  });
});

describe('a sealed secret moved to another endpoint', () => {
  it("never signs with another endpoint's secret copied with its id under this endpoint's key", async () => {
    const victimOwner = principal();
    const victim = await endpointAt(target.url, victimOwner);
    const moverOwner = principal({ tenantId: victimOwner.tenantId });
    const moverReceiver = await receiver();
    const mover = await endpointAt(moverReceiver.url, moverOwner);
    // A table writer without the key: the victim's id, secret and data-key header onto the mover's item.
    const storedItem = async (id: string) => {
      const key = { pk: `WH#${id}`, sk: 'ENDPOINT' };
      return (await documentClient.send(new GetCommand({ TableName: testTableNames.toolkit, Key: key })))
        .Item;
    };
    const [victimItem, moverItem] = await Promise.all([storedItem(victim.id), storedItem(mover.id)]);
    const { headerField } = encryptor;
    await documentClient.send(
      new PutCommand({
        TableName: testTableNames.toolkit,
        Item: {
          ...moverItem,
          id: victimItem?.id,
          secret: victimItem?.secret,
          [headerField]: victimItem?.[headerField],
        },
      }),
    );

    expect(await rejectionOf(store.getEndpoint(mover.id))).toMatchObject({ reason: 'record_moved' });
    expect(await rejectionOf(store.listOwnedEndpoints(moverOwner, 10))).toMatchObject({
      reason: 'record_moved',
    });
    // Each refusal is a decryption.failed event naming the item's data key, as the encryptor's own are.
    const events: SecurityEvent[] = [];
    const reporting = new WebhookStore({
      documentClient,
      tableName: testTableNames.toolkit,
      encryptor: createFunctionEncryptor(readEnvironment(), (event) => events.push(event)),
    });
    await rejectionOf(reporting.getEndpoint(mover.id));
    await rejectionOf(reporting.listOwnedEndpoints(moverOwner, 10));
    const moved = {
      type: 'decryption.failed',
      reason: 'record_moved',
      metadata: expect.objectContaining({ keyId: expect.any(String), keyContextFields: expect.any(Array) }),
    };
    expect(events.filter((event) => event.type === 'decryption.failed')).toEqual([moved, moved]);
    const { run } = setup();
    const delivery = await record(webhookMessageFor(mover.id, mover.tenantId));
    expect((await run(delivery)).batchItemFailures).toEqual([{ itemIdentifier: delivery.messageId }]);
    // Signed with the victim's secret, the mover could have replayed it to the victim's receiver.
    expect(moverReceiver.received).toHaveLength(0);
    expect(await store.getEndpoint(victim.id)).toMatchObject({ id: victim.id, status: 'enabled' });
  });
});

describe('an attempt', () => {
  it('counts a 3xx as a failure and never follows the redirect', async () => {
    const elsewhere = await receiver();
    const redirecting = await receiver(() => ({ status: 302, headers: { Location: elsewhere.url } }));
    const endpoint = await endpointAt(redirecting.url);
    const { run } = setup();
    const failing = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    expect((await run(failing)).batchItemFailures).toHaveLength(1);
    expect(redirecting.received).toHaveLength(1);
    expect(elsewhere.received).toHaveLength(0);
    expect((await historyOf(endpoint.id))[0]?.attempts[0]).toMatchObject({
      statusCode: 302,
      error: 'HTTP 302',
    });
  });

  it("audits a receiver's error answer as its failure, not the worker's error, naming the booking on its lines", async () => {
    const failing = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(failing.url);
    const { run, audits, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    expect((await run(await record(message))).batchItemFailures).toHaveLength(1);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.failed',
        outcome: 'failure',
        metadata: {
          webhookId: message.id,
          endpointId: endpoint.id,
          bookingId: 'booking-1',
          eventType: 'booking.created',
          attempt: 1,
          last: false,
          reason: 'HTTP 500',
        },
      }),
    ]);
    expect(warn).toHaveBeenCalledWith(
      'Webhook delivery attempt failed',
      expect.objectContaining({ webhookId: message.id, endpointId: endpoint.id, bookingId: 'booking-1' }),
    );
  });

  it.each([
    ['without data.id', {}],
    ['whose data.id is a number', { id: 42 }],
  ])('still names the webhook and endpoint on the lines of a message %s, and no subject', async (_, data) => {
    const failing = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(failing.url);
    const { run, audits, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const sent = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const message = { ...sent, payload: { ...sent.payload, data } };
    expect((await run(await record(message))).batchItemFailures).toHaveLength(1);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.failed',
        metadata: {
          webhookId: message.id,
          endpointId: endpoint.id,
          eventType: 'booking.created',
          attempt: 1,
          last: false,
          reason: 'HTTP 500',
        },
      }),
    ]);
    const attemptLines = warn.mock.calls.filter(([line]) => line === 'Webhook delivery attempt failed');
    expect(attemptLines).toHaveLength(1);
    const fields = attemptLines[0]?.[1];
    expect(fields).toMatchObject({ webhookId: message.id, endpointId: endpoint.id });
    expect(fields).not.toHaveProperty('bookingId');
    expect(fields).not.toHaveProperty('userId');
  });

  it("names the registered user on a user.registered delivery's audit line", async () => {
    const { endpoint } = await registrations.createEndpoint(principal(), {
      url: target.url,
      eventTypes: ['user.registered'],
    });
    const { run, audits } = setup();
    const userId = randomUUID();
    const now = new Date().toISOString();
    const message: WebhookMessage = {
      id: newWebhookId('msg'),
      endpointId: endpoint.id,
      tenantId: endpoint.tenantId,
      eventType: 'user.registered',
      createdAt: now,
      payload: { type: 'user.registered', timestamp: now, data: { id: userId, createdAt: now } },
    };
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.delivered',
        outcome: 'success',
        metadata: expect.objectContaining({ webhookId: message.id, userId, eventType: 'user.registered' }),
      }),
    ]);
  });

  it('times out a slow endpoint and records the timeout', async () => {
    const slow = await receiver(() => ({ status: 200, delayMs: 1000 }));
    const endpoint = await endpointAt(slow.url);
    const { run } = setup({ timeoutMs: 150 });
    // The endpoint does answer 200, after a second: only the timeout makes this attempt fail.
    expect(
      (await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).batchItemFailures,
    ).toHaveLength(1);
    expect((await historyOf(endpoint.id))[0]?.attempts[0]?.error).toMatch(/timeout/);
  });

  it('dates a failed attempt from its start, the signed webhook-timestamp, as a delivered one, not from when it failed', async () => {
    const slow = await receiver(() => ({ status: 200, delayMs: 2500 }));
    const endpoint = await endpointAt(slow.url);
    // A time limit past a second: an attempt dated when it failed would be in a later second than it was signed in.
    const { run } = setup({ timeoutMs: 1100 });
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    const failed = (await historyOf(endpoint.id))[0]?.attempts[0];
    expect(failed?.error).toMatch(/timeout/);
    expect(Math.floor(Date.parse(failed?.at ?? '') / 1000)).toBe(
      Number(slow.received[0]?.headers['webhook-timestamp']),
    );
  });

  it('refuses a POST time limit that AbortSignal.timeout() would throw for or fire at once with', () => {
    for (const timeoutMs of [1500.5, 2 ** 31, -1]) {
      expect(() => setup({ timeoutMs })).toThrow(
        `Invalid WebhookWorker options: timeoutMs must be an integer of milliseconds 1..2147483647 (got ${timeoutMs})`,
      );
    }
  });

  it("refuses bad circuit settings at construction, so that none can fail an endpoint's delivery", () => {
    const problemsOf = (options: SetupOptions) => {
      try {
        setup(options);
      } catch (error) {
        if (error instanceof InvalidOptionsError) return error.problems;
        throw error;
      }
      throw new Error('The options were accepted');
    };
    expect(problemsOf({ circuit: { resetTimeoutMs: 0, rollingWindowMs: -1 } })).toEqual([
      'circuit: resetTimeoutMs must be a number of milliseconds > 0 and <= 2147483647 (got 0)',
      'circuit: rollingWindowMs must be a number of milliseconds > 0 and <= 2147483647 (got -1)',
    ]);
    expect(problemsOf({ failureThreshold: 0 })).toEqual([
      'circuit: failureThreshold must be an integer > 0 (got 0)',
    ]);
    // The POST time limit is the worker's, reported once, not again as its circuits'.
    expect(problemsOf({ timeoutMs: -1 })).toEqual([
      'timeoutMs must be an integer of milliseconds 1..2147483647 (got -1)',
    ]);
    expect(problemsOf({ circuitDeferralHours: -1 })).toEqual([
      'circuitDeferralHours must be a number of hours >= 0 (got -1)',
    ]);
  });

  it('delivers with a longer POST time limit and any circuit window given', async () => {
    const endpoint = await endpointAt(target.url);
    const { run } = setup({ timeoutMs: 15_000, circuit: { rollingWindowMs: 60_000 } });
    const before = target.received.length;
    const result = await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    expect(result.batchItemFailures).toEqual([]);
    expect(target.received.length - before).toBe(1);
    expect((await historyOf(endpoint.id))[0]?.attempts[0]?.error).toBeUndefined();
  });

  it('waits full-jitter backoff, or longer for Retry-After, never beyond the schedule maximum', async () => {
    const throttling = await receiver(() => ({ status: 503, headers: { 'Retry-After': '99999' } }));
    const failing = await receiver(() => ({ status: 500 }));
    const { run } = setup({ maxRetryDelaySec: 120, random: () => 1 });
    const throttled = await endpointAt(throttling.url);
    const throttledRecord = await record(webhookMessageFor(throttled.id, throttled.tenantId), 2);
    await run(throttledRecord);
    const broken = await endpointAt(failing.url);
    const brokenRecord = await record(webhookMessageFor(broken.id, broken.tenantId), 3);
    await run(brokenRecord);
    // Retry-After 99999 capped at 120; attempt 3 with random 1: base 10 × 2² = 40.
    expect(visibilityChanges()).toEqual([120, 40]);
    // Both hidden for that long: the queue hands neither out again now.
    expect(await queues.receivableNow(throttledRecord, brokenRecord)).toEqual([]);
  });

  it('sends an unparseable message to the DLQ once with its reason and reports it processed', async () => {
    const { run, audits, logger } = setup();
    const logged = vi.spyOn(logger, 'error');
    const bad = await record({ id: 'msg_short', eventType: 'booking.created' });
    expect(await run(bad)).toEqual({ batchItemFailures: [] });
    // Without an x-correlation-id, the SQS message id stands in for it.
    expect(logged).toHaveBeenCalledWith(
      'Webhook message rejected and dead-lettered',
      expect.objectContaining({ correlation_id: bad.messageId, sqsMessageId: bad.messageId }),
    );
    // What landed in the DLQ: one copy, with its reason.
    const copies = await queues.deadLetters();
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({
      Body: bad.body,
      MessageAttributes: { 'bulwark-dead-letter-reason': { StringValue: expect.stringContaining('id') } },
    });
    expect(audits).toEqual([expect.objectContaining({ eventType: 'webhook.rejected', outcome: 'failure' })]);
  });

  it('retries an unparseable message after the backoff when the DLQ cannot take it, and leaves the last receive to the redrive', async () => {
    // A DLQ the server does not have: SendMessage is refused as SQS refuses it for a missing queue.
    const { run, audits, logger, metrics } = setup({ dlqUrl: `${queues.dlqUrl}-missing` });
    const logged = vi.spyOn(logger, 'error');
    const recorded = vi.spyOn(metrics, 'addMetric');
    const lastAttempt = await queues.receivedRecord(
      { id: 'msg_short', eventType: 'booking.created' },
      { receiveCount: 5, attributes: { 'x-correlation-id': 'corr-last' } },
    );
    const firstAttempt = await queues.receivedRecord('not json', {
      attributes: { 'x-correlation-id': 'corr-first' },
    });
    await expectBothHandedBack(run, lastAttempt, firstAttempt);
    expect(logged.mock.calls).toEqual(
      expect.arrayContaining([
        [
          'Webhook message rejected, but it could not be dead-lettered on the last attempt; the redrive moves it to the DLQ without its reason',
          expect.objectContaining({
            correlation_id: 'corr-last',
            sqsMessageId: lastAttempt.messageId,
            attempt: 5,
            last: true,
          }),
        ],
        [
          'Webhook message rejected, but it could not be dead-lettered; retrying',
          expect.objectContaining({
            correlation_id: 'corr-first',
            sqsMessageId: firstAttempt.messageId,
            attempt: 1,
            last: false,
            delaySec: 5,
          }),
        ],
      ]),
    );
    expect(logged).toHaveBeenCalledTimes(2);
    expectFirstBackedOffLastRedriven(recorded, lastAttempt, firstAttempt);
    // Only the message the redrive takes next is audited as rejected; the other one is audited when
    // its copy lands in the DLQ.
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.rejected',
        correlationId: 'corr-last',
        metadata: expect.objectContaining({ sqsMessageId: lastAttempt.messageId, deadLetteredBy: 'redrive' }),
      }),
    ]);
    // SQS's redrive took the last one into the DLQ (no copy of the worker's: no reason attribute).
    const redriven = await queues.deadLetters();
    expect(redriven).toEqual([
      expect.objectContaining({
        Body: lastAttempt.body,
        Attributes: expect.objectContaining({
          DeadLetterQueueSourceArn: expect.stringMatching(/:bulwark-webhook$/),
        }),
      }),
    ]);
    expect(redriven[0]?.MessageAttributes).not.toHaveProperty('bulwark-dead-letter-reason');
  });

  it('dead-letters a message whose endpoint record it cannot read once, naming the record, without retries', async () => {
    const hooks = await receiver();
    const endpoint = await endpointAt(hooks.url);
    const key = { pk: `WH#${endpoint.id}`, sk: 'ENDPOINT' };
    const { Item } = await documentClient.send(
      new GetCommand({ TableName: testTableNames.toolkit, Key: key }),
    );
    // Written by hand, or by a version that kept createdAt elsewhere: it fails this way on every receive.
    const { createdAt: _dropped, ...withoutCreatedAt } = Item ?? {};
    await documentClient.send(new PutCommand({ TableName: testTableNames.toolkit, Item: withoutCreatedAt }));
    const { run, audits, logger, metrics } = setup();
    const logged = vi.spyOn(logger, 'error');
    const recorded = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const unreadable = await record(message);
    const reason = `Endpoint unreadable: The stored record WH#${endpoint.id}/ENDPOINT has no createdAt (or not a string)`;
    // The message itself parsed: its lines name the delivery, as every other line about one does.
    const delivery = { webhookId: message.id, endpointId: endpoint.id, bookingId: 'booking-1' };

    expect(await run(unreadable)).toEqual({ batchItemFailures: [] });
    // Not postponed: no backoff, no later receive.
    expect(visibilityChanges()).toEqual([]);
    expect(logged.mock.calls).toEqual([
      [
        'Webhook message rejected and dead-lettered',
        { correlation_id: unreadable.messageId, sqsMessageId: unreadable.messageId, reason, ...delivery },
      ],
    ]);
    expect(recorded.mock.calls.filter(([name]) => name === 'WebhookFailed')).toHaveLength(1);
    const copies = await queues.deadLetters();
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({
      Body: unreadable.body,
      MessageAttributes: { [deadLetterReasonAttribute]: { StringValue: reason } },
    });
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'webhook.rejected',
        outcome: 'failure',
        tenantId: endpoint.tenantId,
        metadata: {
          reason: 'unreadable_record',
          sqsMessageId: unreadable.messageId,
          detail: reason,
          ...delivery,
        },
      }),
    ]);
    expect(hooks.received).toHaveLength(0);
    expect(await historyOf(endpoint.id)).toEqual([]);
  });

  it('drops a message whose endpoint was deleted, and fails one for a disabled endpoint without a POST', async () => {
    const owner = principal();
    const deleted = await endpointAt(target.url, owner);
    await store.deleteEndpoint(deleted.id, owner);
    const { run, logger } = setup();
    const info = vi.spyOn(logger, 'info');
    const orphan = await record(webhookMessageFor(deleted.id, deleted.tenantId));
    expect(await run(orphan)).toEqual({ batchItemFailures: [] });
    expect(await historyOf(deleted.id)).toEqual([]);
    expect(info).toHaveBeenCalledWith(
      'Webhook dropped: its endpoint no longer exists',
      expect.objectContaining({ correlation_id: orphan.messageId, endpointId: deleted.id }),
    );

    const disabled = await endpointAt(target.url);
    const stored = await store.getEndpoint(disabled.id);
    if (!stored) throw new Error('endpoint missing');
    expect(await store.disableEndpoint(stored, { reason: 'gone' })).toBe(true);
    const before = target.received.length;
    expect(await run(await record(webhookMessageFor(disabled.id, disabled.tenantId)))).toEqual({
      batchItemFailures: [],
    });
    expect(target.received.length).toBe(before);
    expect((await historyOf(disabled.id))[0]).toMatchObject({
      status: 'failed',
      attempts: [{ error: 'endpoint disabled: not attempted, kept in the DLQ' }],
    });
  });

  it('drops a message of an event type its endpoint does not subscribe to, without a POST or history', async () => {
    const endpoint = await endpointAt(target.url);
    const { run, logger, audits } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const subscribed = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const cancelled = {
      ...subscribed,
      id: newWebhookId('msg'),
      eventType: 'booking.cancelled',
      payload: { ...subscribed.payload, type: 'booking.cancelled' },
    } as const;
    const before = target.received.length;
    const dropped = await record(cancelled);
    expect(await run(dropped)).toEqual({ batchItemFailures: [] });
    expect(target.received.length).toBe(before);
    expect(await historyOf(endpoint.id)).toEqual([]);
    expect(audits).toEqual([]);
    expect(warn).toHaveBeenCalledWith('Webhook dropped: its endpoint does not subscribe to its event type', {
      correlation_id: dropped.messageId,
      webhookId: cancelled.id,
      endpointId: endpoint.id,
      bookingId: 'booking-1',
      eventType: 'booking.cancelled',
      messageCreatedAt: cancelled.createdAt,
      endpointCreatedAt: endpoint.createdAt,
    });
    // The type it subscribes to still goes through.
    expect(await run(await record(subscribed))).toEqual({ batchItemFailures: [] });
    expect(target.received.length).toBe(before + 1);
    expect((await historyOf(endpoint.id)).map((delivery) => delivery.webhookId)).toEqual([subscribed.id]);
  });

  it('drops a message made before its endpoint was registered; one made at that instant is delivered', async () => {
    const endpoint = await endpointAt(target.url);
    const registeredAt = Date.parse(endpoint.createdAt);
    const { run, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const earlier = {
      ...webhookMessageFor(endpoint.id, endpoint.tenantId),
      createdAt: new Date(registeredAt - 1).toISOString(),
    };
    const before = target.received.length;
    const dropped = await record(earlier);
    expect(await run(dropped)).toEqual({ batchItemFailures: [] });
    expect(target.received.length).toBe(before);
    expect(await historyOf(endpoint.id)).toEqual([]);
    expect(warn).toHaveBeenCalledWith('Webhook dropped: it was made before its endpoint was registered', {
      correlation_id: dropped.messageId,
      webhookId: earlier.id,
      endpointId: endpoint.id,
      bookingId: 'booking-1',
      eventType: 'booking.created',
      messageCreatedAt: earlier.createdAt,
      endpointCreatedAt: endpoint.createdAt,
    });
    const atOnce = { ...webhookMessageFor(endpoint.id, endpoint.tenantId), createdAt: endpoint.createdAt };
    expect(await run(await record(atOnce))).toEqual({ batchItemFailures: [] });
    expect(target.received.length).toBe(before + 1);
    expect((await historyOf(endpoint.id)).map((delivery) => delivery.webhookId)).toEqual([atOnce.id]);
  });

  it('drops such a message at a disabled endpoint too, instead of failing a delivery in its history', async () => {
    const endpoint = await endpointAt(target.url);
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    expect(await store.disableEndpoint(stored, { reason: 'gone' })).toBe(true);
    const { run } = setup();
    const earlier = {
      ...webhookMessageFor(endpoint.id, endpoint.tenantId),
      createdAt: new Date(Date.parse(endpoint.createdAt) - 1).toISOString(),
    };
    expect(await run(await record(earlier))).toEqual({ batchItemFailures: [] });
    expect(await historyOf(endpoint.id)).toEqual([]);
  });

  it('POSTs once when two copies of one message are processed at the same time', async () => {
    const slow = await receiver(() => ({ status: 200, delayMs: 300 }));
    const endpoint = await endpointAt(slow.url);
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const { run, metrics } = setup();
    const recorded = vi.spyOn(metrics, 'addMetric');
    const [first, copy] = [await record(message), await record(message)];
    const response = await run(first, copy);
    expect(slow.received).toHaveLength(1);
    // Waiting for a copy in flight is no failure, of the endpoint or of the worker.
    expect(recorded).not.toHaveBeenCalledWith('WebhookFailed', expect.anything(), expect.anything());
    // The copy found the first in progress: it comes back later (and then finds it delivered).
    expect(response.batchItemFailures).toHaveLength(1);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'delivered',
      attempts: [{ attempt: 1 }],
    });
    // The copy that backed off, received again (its second receive).
    const deferred = response.batchItemFailures[0]?.itemIdentifier === first.messageId ? first : copy;
    const again = await queues.redelivered(deferred);
    expect(again.attributes.ApproximateReceiveCount).toBe('2');
    expect(await run(again)).toEqual({ batchItemFailures: [] });
    expect(slow.received).toHaveLength(1);
  });
});

describe("SQS's 12 hours from the receive", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shortens a 12-hour delay by the time since the receive and a minute, so SQS does not reject it', async () => {
    // The endpoint answers 100 s into the invocation and asks for a day: the longest delay, 43200 s.
    vi.useFakeTimers({ toFake: ['Date'] });
    const slow = await receiver(() => {
      vi.setSystemTime(Date.now() + 100_000);
      return { status: 503, headers: { 'Retry-After': '86400' } };
    });
    const { run } = setup({ maxRetryDelaySec: 43_200 });
    const endpoint = await endpointAt(slow.url);
    const failing = await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 2);
    expect((await run(failing)).batchItemFailures).toEqual([{ itemIdentifier: failing.messageId }]);
    // 43200 − 100 s since the receive − the 60 s margin.
    expect(visibilityChanges()).toEqual([43_040]);
  });
});

describe('the per-endpoint circuit', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('opens after repeated failures: a further receive is not POSTed and is deferred until the circuit may probe', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run } = setup({ failureThreshold: 2, random: () => 0 });
    freezeAtFailureWindowStart();
    for (let index = 0; index < 2; index += 1) {
      await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    }
    expect(dead.received).toHaveLength(2);
    queues.clearCalls();
    const skipped = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    // Reported processed: SQS deletes it, and its copy is what comes back.
    expect((await run(skipped)).batchItemFailures).toEqual([]);
    expect(dead.received).toHaveLength(2);
    // Nothing was POSTed, so nothing is recorded: no delivery of that message in the history.
    const skippedId = (JSON.parse(skipped.body) as WebhookMessage).id;
    expect((await historyOf(endpoint.id)).map((delivery) => delivery.webhookId)).not.toContain(skippedId);
    expect(visibilityChanges()).toEqual([]);
    const [copy, ...more] = queues.sentMessages();
    expect(more).toEqual([]);
    expect(copy).toMatchObject({
      QueueUrl: queues.queueUrl,
      MessageBody: skipped.body,
      MessageAttributes: {
        [attemptsMadeAttribute]: { DataType: 'Number', StringValue: '0' },
        [sendBacksAttribute]: { DataType: 'Number', StringValue: '1' },
      },
    });
    // Backoff 0 (random 0), but the circuit may only probe after its 60 s reset timeout.
    expect(copy?.DelaySeconds).toBeGreaterThanOrEqual(59);
  });

  it('counts failures in 60 s windows: two failures 50 s apart open a circuit of threshold 2', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run } = setup({ failureThreshold: 2, random: () => 0 });
    freezeAtFailureWindowStart(60_000);
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    // In the breaker's 10 s windows these two would each count alone.
    vi.setSystemTime(Date.now() + 50_000);
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    expect(dead.received).toHaveLength(2);
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    expect(dead.received).toHaveLength(2);
    // The circuit was open: the third message was deferred, not POSTed.
    expect(queues.sentMessages().map((sent) => sent.QueueUrl)).toEqual([queues.queueUrl]);
  });

  it("names each message's correlation id on its lines and on the circuit events its POST causes", async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run, audits, logger } = setup({ failureThreshold: 1, auditSecurityEvents: true });
    const warn = vi.spyOn(logger, 'warn');
    const info = vi.spyOn(logger, 'info');
    const traced = (correlationId: string) =>
      queues.receivedRecord(webhookMessageFor(endpoint.id, endpoint.tenantId), {
        attributes: { 'x-correlation-id': correlationId },
      });
    await run(await traced('trace-opens'));
    // The open circuit turns both away, at the same time.
    await run(await traced('trace-b'), await traced('trace-c'));

    const circuitEvents = audits.filter((event) => event.eventType.startsWith('circuit.'));
    expect(circuitEvents.map((event) => [event.eventType, event.correlationId])).toEqual(
      expect.arrayContaining([
        ['circuit.opened', 'trace-opens'],
        ['circuit.rejected', 'trace-b'],
        ['circuit.rejected', 'trace-c'],
      ]),
    );
    expect(circuitEvents).toHaveLength(3);
    for (const event of circuitEvents) {
      expect(event.metadata).toMatchObject({
        circuit: 'webhook-endpoint',
        endpointCircuit: `webhook-${endpoint.id}`,
      });
    }
    const correlationIdsOf = (calls: unknown[][], line: string) =>
      calls
        .filter(([message]) => message === line)
        .map(([, fields]) => (fields as { correlation_id?: string }).correlation_id)
        .sort();
    expect(correlationIdsOf(warn.mock.calls, 'Webhook delivery attempt failed')).toEqual(['trace-opens']);
    expect(
      correlationIdsOf(info.mock.calls, 'Webhook delivery deferred: its endpoint circuit is open'),
    ).toEqual(['trace-b', 'trace-c']);
  });

  it('is one circuit per endpoint: a dead endpoint does not stop deliveries to another', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const deadEndpoint = await endpointAt(dead.url);
    const healthy = await endpointAt(target.url);
    const { run } = setup({ failureThreshold: 1 });
    await run(await record(webhookMessageFor(deadEndpoint.id, deadEndpoint.tenantId)));
    expect(await run(await record(webhookMessageFor(healthy.id, healthy.tenantId)))).toEqual({
      batchItemFailures: [],
    });
  });
});

describe('a receive that finds the circuit open', () => {
  /** A short circuit and POST time limit, so that a deferred copy is due within a second or two. */
  const quickCircuit = {
    timeoutMs: 1000,
    random: () => 0,
    circuit: { resetTimeoutMs: 1000, successThreshold: 1 },
  } as const;

  /** The copy the worker sent back to its queue for `record`, received once it is due (within 10 s). */
  async function copyOf(original: SQSRecord): Promise<SQSRecord> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const copy = (await queues.receiveRecords()).find(
        (received) => received.body === original.body && received.messageId !== original.messageId,
      );
      if (copy) return copy;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error('the copy never became receivable');
  }

  it("sends the message back with the attempts made and is reported processed; the copy's POST is the next attempt", async () => {
    let failing = true;
    const recovering = await receiver(() => ({ status: failing ? 500 : 204 }));
    const endpoint = await endpointAt(recovering.url);
    const { run } = setup({ ...quickCircuit, failureThreshold: 1 });
    const first = await queues.receivedRecord(webhookMessageFor(endpoint.id, endpoint.tenantId), {
      attributes: { 'x-correlation-id': 'corr-deferred' },
    });
    // Attempt 1: 500, and the circuit opens.
    expect((await run(first)).batchItemFailures).toEqual([{ itemIdentifier: first.messageId }]);
    queues.clearCalls();
    const second = await queues.redelivered(first);
    expect(second.attributes.ApproximateReceiveCount).toBe('2');
    expect((await run(second)).batchItemFailures).toEqual([]);
    expect(recovering.received).toHaveLength(1);
    expect(visibilityChanges()).toEqual([]);
    // One POST time limit: the circuit's retryAfter (1 s) and the backoff (0) are no longer.
    expect(queues.sentMessages()).toEqual([
      {
        QueueUrl: queues.queueUrl,
        MessageBody: first.body,
        DelaySeconds: 1,
        MessageAttributes: {
          'x-correlation-id': { DataType: 'String', StringValue: 'corr-deferred' },
          [attemptsMadeAttribute]: { DataType: 'Number', StringValue: '1' },
          [sendBacksAttribute]: { DataType: 'Number', StringValue: '1' },
        },
      },
    ]);
    failing = false;
    const copy = await copyOf(first);
    expect(copy.attributes.ApproximateReceiveCount).toBe('1');
    expect((await run(copy)).batchItemFailures).toEqual([]);
    const [delivery] = await historyOf(endpoint.id);
    // Only the POSTs: the deferred receive is none of the delivery's attempts.
    expect(delivery?.status).toBe('delivered');
    expect(delivery?.attempts.map(({ attempt, statusCode, error }) => [attempt, statusCode, error])).toEqual([
      [1, 500, 'HTTP 500'],
      [2, 204, undefined],
    ]);
  });

  /** An endpoint whose circuit one failed POST opened, and a receive of another message to it carrying `attributes`. */
  async function openCircuitAnd(attributes: Record<string, string>, message?: Partial<WebhookMessage>) {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run } = setup({ ...quickCircuit, failureThreshold: 1 });
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    queues.clearCalls();
    const deferrable = await queues.receivedRecord(
      { ...webhookMessageFor(endpoint.id, endpoint.tenantId), ...message },
      { attributes },
    );
    return { dead, endpoint, run, deferrable };
  }

  it('waits longer at each deferral after the first: the retry base, doubled per deferral since', async () => {
    const { run, deferrable } = await openCircuitAnd({
      [attemptsMadeAttribute]: '1',
      [sendBacksAttribute]: '3',
    });
    expect((await run(deferrable)).batchItemFailures).toEqual([]);
    const [copy, ...more] = queues.sentMessages();
    expect(more).toEqual([]);
    // The 4th deferral: 10 s × 2² (the circuit's 1 s and the POST limit's 1 s are shorter).
    expect(copy?.DelaySeconds).toBe(40);
    expect(copy?.MessageAttributes?.[sendBacksAttribute]).toEqual({ DataType: 'Number', StringValue: '4' });
  });

  it.each([
    ['deferred maxCircuitDeferrals (10) times already', { [sendBacksAttribute]: '10' }, {}],
    [
      'created in the future (a clock ahead, by less than the schema refuses: never past the age)',
      {},
      { createdAt: new Date(Date.now() + 2 * 60_000).toISOString() },
    ],
  ])('spends the receive as an attempt for a message %s', async (_what, attributes, message) => {
    const { dead, endpoint, run, deferrable } = await openCircuitAnd(attributes, message);
    expect((await run(deferrable)).batchItemFailures).toEqual([{ itemIdentifier: deferrable.messageId }]);
    expect(queues.sentMessages()).toEqual([]);
    expect(dead.received).toHaveLength(1);
    const id = (JSON.parse(deferrable.body) as WebhookMessage).id;
    const delivery = (await historyOf(endpoint.id)).find((candidate) => candidate.webhookId === id);
    expect(delivery?.attempts.map(({ attempt, error }) => [attempt, error])).toEqual([
      [1, 'circuit open: not attempted'],
    ]);
  });

  it('POSTs once when the copy is sent and the original is redelivered anyway (the delete was lost)', async () => {
    const recovering = await receiver((count) => ({ status: count === 1 ? 500 : 204 }));
    const endpoint = await endpointAt(recovering.url);
    const { run, audits } = setup({ ...quickCircuit, failureThreshold: 1 });
    const first = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    await run(first);
    const deferred = await queues.redelivered(first);
    expect((await run(deferred)).batchItemFailures).toEqual([]);
    expect((await run(await copyOf(first))).batchItemFailures).toEqual([]);
    // The worker's invocation ended before the poller deleted the original: SQS hands it over again.
    expect((await run(await queues.redelivered(deferred))).batchItemFailures).toEqual([]);
    expect(recovering.received).toHaveLength(2);
    expect(audits.map((event) => event.eventType)).toEqual([
      'webhook.failed',
      'webhook.delivered',
      'webhook.duplicate',
    ]);
    expect((await historyOf(endpoint.id))[0]?.attempts.map(({ attempt }) => attempt)).toEqual([1, 2]);
  });

  it('counts as an attempt once the message is older than circuitDeferralHours: the last fails the delivery and counts toward the disable rule', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url, principal(), hoursAgo(26));
    const { run } = setup({
      failureThreshold: 1,
      disableRule: { afterFailedDeliveries: 1, afterFailingHours: 1000 },
    });
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    expect(dead.received).toHaveLength(1);
    queues.clearCalls();
    // A copy sent back 4 attempts in, now past the default 24 hours: its first receive is attempt 5.
    const old = {
      ...webhookMessageFor(endpoint.id, endpoint.tenantId),
      createdAt: new Date(Date.now() - 25 * 3_600_000).toISOString(),
    };
    const lastAttempt = await queues.receivedRecord(old, { attributes: { [attemptsMadeAttribute]: '4' } });
    // SQS's redrive counts only this copy's receives (1 so far) and would keep its count: the worker
    // moves it to the DLQ itself.
    expect(await run(lastAttempt)).toEqual({ batchItemFailures: [] });
    expect(dead.received).toHaveLength(1);
    expect(visibilityChanges()).toEqual([]);
    const delivery = (await historyOf(endpoint.id)).find((item) => item.webhookId === old.id);
    expect(delivery).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 5, error: 'circuit open: not attempted' }],
    });
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
    });
    const [deadLetter, ...more] = await queues.deadLetters([lastAttempt.body]);
    expect(more).toEqual([]);
    expect(deadLetter?.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue).toBe(
      'attempts used: 5 of 5',
    );
    // Redriven from the DLQ, it starts its attempts afresh.
    expect(deadLetter?.MessageAttributes).not.toHaveProperty(attemptsMadeAttribute);

    // A copy received past its attempts (its last receive's DLQ copy was refused) goes there without a POST.
    const spent = await queues.receivedRecord(
      { ...old, id: newWebhookId('msg') },
      { receiveCount: 2, attributes: { [attemptsMadeAttribute]: '4' } },
    );
    expect(await run(spent)).toEqual({ batchItemFailures: [] });
    const [spentLetter] = await queues.deadLetters([spent.body]);
    expect(spentLetter?.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue).toBe(
      'attempts used: 5 of 5',
    );
    expect(spentLetter?.MessageAttributes).not.toHaveProperty(attemptsMadeAttribute);
    expect(dead.received).toHaveLength(1);
  });

  it('still defers within circuitDeferralHours of the message, and counts past a shorter limit given', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url, principal(), hoursAgo(2));
    const { run } = setup({ failureThreshold: 1, circuitDeferralHours: 1 });
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    queues.clearCalls();
    const madeAgo = (minutes: number) => ({
      ...webhookMessageFor(endpoint.id, endpoint.tenantId),
      createdAt: new Date(Date.now() - minutes * 60_000).toISOString(),
    });
    const recent = await record(madeAgo(59));
    expect((await run(recent)).batchItemFailures).toEqual([]);
    const older = await record(madeAgo(61));
    expect((await run(older)).batchItemFailures).toEqual([{ itemIdentifier: older.messageId }]);
    expect(queues.sentMessages().map((sent) => sent.MessageBody)).toEqual([recent.body]);
    expect(dead.received).toHaveLength(1);
  });

  it('counts the receive as an attempt, as before deferrals, when the copy cannot be sent', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run, logger } = setup({ failureThreshold: 1, sqs: unreachableSqsClient() });
    const error = vi.spyOn(logger, 'error');
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const turnedAway = await queues.receivedRecord(message, {
      attributes: { 'x-correlation-id': 'corr-stuck' },
    });
    expect((await run(turnedAway)).batchItemFailures).toEqual([{ itemIdentifier: turnedAway.messageId }]);
    expect(dead.received).toHaveLength(1);
    expect(error).toHaveBeenCalledWith(
      'Webhook delivery could not be deferred while its endpoint circuit is open; the receive counts as an attempt',
      expect.objectContaining({ correlation_id: 'corr-stuck', webhookId: message.id, attemptsMade: 0 }),
    );
    const delivery = (await historyOf(endpoint.id)).find((item) => item.webhookId === message.id);
    expect(delivery).toMatchObject({
      status: 'pending',
      attempts: [{ attempt: 1, error: 'circuit open: not attempted' }],
    });
  });

  it("delivers every message of a burst to a receiver that fails each id's first POST, and leaves it enabled", async () => {
    const posted = new Set<string>();
    const flaky = await receiver((_count, webhook) => {
      const id = String(webhook.headers['webhook-id']);
      if (posted.has(id)) return { status: 204 };
      posted.add(id);
      return { status: 500 };
    });
    const endpoint = await endpointAt(flaky.url);
    const { run } = setup({
      failureThreshold: 2,
      timeoutMs: 1000,
      random: () => 0,
      // Every deferral waits the circuit's reset (1 s) here, not a retry base doubled per deferral, so
      // the burst settles in seconds, however often the probes happen to be first POSTs.
      retryBaseDelaySec: 0,
      maxCircuitDeferrals: 100,
      circuit: { resetTimeoutMs: 1000 },
      disableRule: { afterFailedDeliveries: 1, afterFailingHours: 1000 },
    });
    const producer = queues.sqs.createClient();
    const poller = new QueuePoller({
      client: queues.sqs.createClient(),
      queueUrl: queues.queueUrl,
      queueArn: queues.sqs.queueArns[queues.queueName] as string,
      invoke: (event) => run(...event.Records),
    });
    // Also when a wait below fails: a poller left running would take the next tests' messages.
    onTestFinished(async () => {
      await poller.stop();
      producer.destroy();
    });
    const messages = Array.from({ length: 5 }, () => webhookMessageFor(endpoint.id, endpoint.tenantId));
    const send = (batch: WebhookMessage[]) =>
      Promise.all(
        batch.map((message) =>
          producer.send(
            new SendMessageCommand({ QueueUrl: queues.queueUrl, MessageBody: JSON.stringify(message) }),
          ),
        ),
      );
    const ids = new Set(messages.map((message) => message.id));
    const ours = async () => (await historyOf(endpoint.id)).filter((delivery) => ids.has(delivery.webhookId));
    poller.start();
    // Two open the circuit; the rest arrive while it is open, so most probes are some message's first POST.
    await send(messages.slice(0, 2));
    await vi.waitUntil(() => flaky.received.length >= 2, { timeout: 10_000, interval: 50 });
    await send(messages.slice(2));
    const deadline = Date.now() + 40_000;
    for (;;) {
      const deliveries = await ours();
      const done = deliveries.filter((delivery) => delivery.status !== 'pending');
      if (done.length === messages.length || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await poller.stop();
    const deliveries = await ours();
    expect(deliveries.map((delivery) => delivery.status)).toEqual(messages.map(() => 'delivered'));
    for (const delivery of deliveries) {
      // Every attempt is a POST: the failed first one, then the accepted retry.
      expect(delivery.attempts.map(({ attempt, statusCode }) => [attempt, statusCode])).toEqual([
        [1, 500],
        [2, 204],
      ]);
    }
    expect(flaky.received).toHaveLength(2 * messages.length);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled' });
    // Some were deferred: the circuit opened and turned receives away.
    expect(queues.sentMessages().length).toBeGreaterThan(0);
  }, 60_000);
});

describe('batches handled at once by one worker', () => {
  // Lambda gives each instance one invocation at a time; a host that runs several at once (the local
  // runtime's pollers, a test) must still get each batch's own answer.
  it("reports each batch's own failed records, not another's", async () => {
    const failing = await receiver(() => ({ status: 500 }));
    // Answers last, so the failing batch ends while this one is still in flight.
    const accepting = await receiver(() => ({ status: 204, delayMs: 200 }));
    const [failingEndpoint, acceptingEndpoint] = await Promise.all([
      endpointAt(failing.url),
      endpointAt(accepting.url),
    ]);
    const { run } = setup();
    const failed = await record(webhookMessageFor(failingEndpoint.id, failingEndpoint.tenantId));
    const delivered = await record(webhookMessageFor(acceptingEndpoint.id, acceptingEndpoint.tenantId));
    const [deliveredBatch, failedBatch] = await Promise.all([run(delivered), run(failed)]);
    expect(failedBatch.batchItemFailures).toEqual([{ itemIdentifier: failed.messageId }]);
    expect(deliveredBatch.batchItemFailures).toEqual([]);
  });

  it("writes each batch's in-progress records to expire with its own invocation", async () => {
    const accepting = await receiver(() => ({ status: 204 }));
    const endpoint = await endpointAt(accepting.url);
    const persistenceStore = webhookWorkerStore();
    const { worker } = setup({ persistenceStore });
    const long = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const short = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const records = [await record(long), await record(short)] as const;
    const { failures, remainingMsById } = await handleTwoBatchesAtOnce(
      worker,
      persistenceStore,
      context,
      records,
    );
    expect(failures).toEqual([[], []]);
    expect(remainingMsById).toEqual({ [long.id]: 900_000, [short.id]: 40_000 });
  });
});

describe('disabling a failing endpoint', () => {
  async function failForGood(endpointId: string, tenantId: string, run: ReturnType<typeof setup>['run']) {
    // The 5th receive is the last attempt: the delivery fails for good.
    return run(await record(webhookMessageFor(endpointId, tenantId), 5));
  }

  it('disables after N consecutive failed deliveries and emails a security alert to a human owner', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const user = await users.register({ email: `wh-alert-${randomUUID()}@example.com`, name: 'Alerted' });
    const endpoint = await endpointAt(dead.url, principal({ id: user.id }));
    const { run, audits } = setup({ disableRule: { afterFailedDeliveries: 2, afterFailingHours: 1000 } });
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect((await store.getEndpoint(endpoint.id))?.status).toBe('enabled');
    expect(visibilityChanges()).toEqual([0]);
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
    });
    // The alert is in the email queue.
    const [alert, ...more] = await alerts();
    expect(more).toEqual([]);
    expect(alert).toMatchObject({
      type: 'security-alert',
      to: user.email,
      userId: user.id,
      data: { name: 'Alerted', event: 'Webhook endpoint disabled' },
    });
    expect(alert?.data.details).toContain(endpoint.id);
    // The email worker takes it: nothing in its text is a character that schema refuses.
    expect(parseEmailMessage(JSON.stringify(alert))).toMatchObject({ ok: true });
    expect(audits.some((event) => event.eventType === 'webhook.endpoint_disabled')).toBe(true);
  });

  it('counts two live copies of one webhook that both fail for good as one failed delivery', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url, principal({ isM2M: true }));
    const { run } = setup({ disableRule: { afterFailedDeliveries: 2, afterFailingHours: 1000 } });
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    // Two SQS messages carrying one webhook (a copy sent back and the original redelivered), each on its last attempt.
    await run(await record(message, 5));
    await run(await record(message, 5));
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 1 });
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
      failedDeliveries: 2,
    });
  });

  it('starts a new streak after a success: a webhook counted before it counts again', async () => {
    const endpoint = await endpointAt((await receiver()).url);
    const webhookId = randomUUID();
    await store.noteFailedDelivery(endpoint.id, webhookId);
    // Counted once: a second copy gets the streak as it stands.
    expect(await store.noteFailedDelivery(endpoint.id, webhookId)).toMatchObject({ failedDeliveries: 1 });
    await store.clearFailures(endpoint.id);
    await store.noteFailedDelivery(endpoint.id, randomUUID());
    expect(await store.noteFailedDelivery(endpoint.id, webhookId)).toMatchObject({ failedDeliveries: 2 });
  });

  it('disables the endpoint when a webhook whose disable failed at the threshold fails again (a DLQ redrive)', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url, principal({ isM2M: true }));
    const flaky = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
    vi.spyOn(flaky, 'disableEndpoint').mockRejectedValueOnce(throttlingError());
    const { run } = setup({
      store: flaky,
      disableRule: { afterFailedDeliveries: 2, afterFailingHours: 1000 },
    });
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 5));
    const second = webhookMessageFor(endpoint.id, endpoint.tenantId);
    // The delivery that reaches the threshold: its disable is throttled.
    await run(await record(second, 5));
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 2 });
    // The same webhook comes back and fails for good again: not counted twice, but the rule is applied.
    await run(await record(second, 5));
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
      failedDeliveries: 2,
    });
  });

  it('disables an endpoint that has failed for longer than the rule allows at its next failed delivery', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url, principal({ isM2M: true }));
    const { run } = setup({ disableRule: { afterFailedDeliveries: 100, afterFailingHours: 0 } });
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
    });
    // An integration has no mailbox: nothing is enqueued.
    expect(queues.sendMessageBatches()).toHaveLength(0);
    expect(await alerts()).toEqual([]);
  });

  it('starts counting again after a success', async () => {
    let failing = true;
    const flaky = await receiver(() => ({ status: failing ? 500 : 200 }));
    const endpoint = await endpointAt(flaky.url);
    const { run } = setup({ disableRule: { afterFailedDeliveries: 2, afterFailingHours: 1000 } });
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ failedDeliveries: 1 });
    failing = false;
    await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)));
    const cleared = await store.getEndpoint(endpoint.id);
    expect(cleared).toMatchObject({ failedDeliveries: 0, status: 'enabled' });
    expect(cleared?.failingSince).toBeUndefined();
    failing = true;
    await failForGood(endpoint.id, endpoint.tenantId, run);
    expect((await store.getEndpoint(endpoint.id))?.status).toBe('enabled');
  });

  it('logs instead of emailing when the owner is not a registered user', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const endpoint = await endpointAt(gone.url);
    const { run, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');
    const info = vi.spyOn(logger, 'info');
    const disabling = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    expect(await run(disabling)).toEqual({ batchItemFailures: [] });
    expect((await store.getEndpoint(endpoint.id))?.status).toBe('disabled');
    expect(queues.sendMessageBatches()).toHaveLength(0);
    expect(await alerts()).toEqual([]);
    const named = { correlation_id: disabling.messageId, endpointId: endpoint.id };
    expect(warn).toHaveBeenCalledWith('Webhook endpoint disabled', expect.objectContaining(named));
    expect(info).toHaveBeenCalledWith(
      'Webhook endpoint disabled; its owner is not a registered user, so no email',
      expect.objectContaining(named),
    );
  });

  it('counts and audits an alert that could not be enqueued, still disables the endpoint, and keeps the alert pending for the next message', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const user = await users.register({ email: `wh-alert-${randomUUID()}@example.com`, name: 'Unlucky' });
    const endpoint = await endpointAt(gone.url, principal({ id: user.id }));
    // SQS is down for the alert (a client on a port nothing listens on).
    const { run, audits, metrics, logger } = setup({ alertsSqs: unreachableSqsClient() });
    // The handler's middlewares flush the metrics after the batch: watch them being added instead.
    const added = vi.spyOn(metrics, 'addMetric');
    const logged = vi.spyOn(logger, 'error');
    const disabling = await queues.receivedRecord(webhookMessageFor(endpoint.id, endpoint.tenantId), {
      attributes: { 'x-correlation-id': 'trace-alert' },
    });
    expect(await run(disabling)).toEqual({ batchItemFailures: [] });
    expect((await store.getEndpoint(endpoint.id))?.status).toBe('disabled');
    expect(await alerts()).toEqual([]);
    expect(audits).toContainEqual(
      expect.objectContaining({ eventType: 'email.enqueue_failed', outcome: 'error', userId: user.id }),
    );
    expect(added.mock.calls.filter(([name]) => name === 'EmailEnqueueFailed')).toEqual([
      ['EmailEnqueueFailed', 'Count', 1],
    ]);
    // The worker's logger has no correlation id of its own: the line names the message's.
    expect(logged).toHaveBeenCalledWith(
      'Webhook endpoint disabled; the owner alert was not enqueued',
      expect.objectContaining({ correlation_id: 'trace-alert', endpointId: endpoint.id }),
    );
    const disabled = await store.getEndpoint(endpoint.id);
    expect(disabled?.ownerAlertPending).toBe(true);

    // SQS is back: the next message for the endpoint queues the alert, under the disable's id.
    const { run: runNext } = setup();
    expect(await runNext(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).toEqual({
      batchItemFailures: [],
    });
    const queued = await queues.enqueued<{ id: string; to: string }>(emailQueueUrl);
    expect(queued.map(({ body }) => body)).toEqual([
      expect.objectContaining({
        id: ownerAlertMessageId(endpoint.id, new Date(disabled?.disabledAt as string)),
        to: user.email,
      }),
    ]);
    expect((await store.getEndpoint(endpoint.id))?.ownerAlertPending).toBeUndefined();
  });
});

describe('an owner alert the disabling invocation never queued', () => {
  /** A human owner's endpoint, disabled with its alert pending and `disabledAt` stored as given (by hand, or by another version). */
  async function pendingAlertWithDisabledAt(disabledAt: string) {
    const gone = await receiver(() => ({ status: 410 }));
    const user = await users.register({ email: `wh-alert-${randomUUID()}@example.com`, name: 'Hand Edited' });
    const registered = await endpointAt(gone.url, principal({ id: user.id }));
    const endpoint = await store.getEndpoint(registered.id);
    if (!endpoint) throw new Error('endpoint not stored');
    expect(await store.disableEndpoint(endpoint, { reason: 'gone' })).toBe(true);
    await documentClient.send(
      new UpdateCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `WH#${endpoint.id}`, sk: 'ENDPOINT' },
        UpdateExpression: 'SET disabledAt = :disabledAt',
        ExpressionAttributeValues: { ':disabledAt': disabledAt },
      }),
    );
    return { user, endpoint };
  }

  it('is queued, and its mark cleared, when its disabledAt is stored in another ISO 8601 form', async () => {
    const disabledAt = '2026-12-07T22:00:00Z';
    const { user, endpoint } = await pendingAlertWithDisabledAt(disabledAt);
    const { run } = setup();
    expect(await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).toEqual({
      batchItemFailures: [],
    });
    const queued = await queues.enqueued<{ id: string; to: string }>(emailQueueUrl);
    expect(queued.map(({ body }) => body)).toEqual([
      expect.objectContaining({ id: ownerAlertMessageId(endpoint.id, new Date(disabledAt)), to: user.email }),
    ]);
    expect((await store.getEndpoint(endpoint.id))?.ownerAlertPending).toBeUndefined();
  });

  it('is not queued, and stays pending, when its disabledAt is not a time; the message is handled all the same', async () => {
    const { endpoint } = await pendingAlertWithDisabledAt('yesterday');
    const { run, logger, audits } = setup();
    const warn = vi.spyOn(logger, 'warn');
    expect(await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).toEqual({
      batchItemFailures: [],
    });
    // Set aside for the endpoint's enable, as any message for a disabled endpoint.
    const copies = await queues.deadLetters();
    expect(copies).toEqual([
      expect.objectContaining({
        MessageAttributes: expect.objectContaining({
          'bulwark-dead-letter-reason': expect.objectContaining({ StringValue: endpointDisabledReason }),
        }),
      }),
    ]);
    expect(await alerts()).toEqual([]);
    // Not an enqueue that failed: none was tried.
    expect(audits.map((event) => event.eventType)).not.toContain('email.enqueue_failed');
    expect((await store.getEndpoint(endpoint.id))?.ownerAlertPending).toBe(true);
    expect(warn).toHaveBeenCalledWith(
      "Webhook endpoint's owner alert is not queued: its stored disabledAt is not a time; it stays pending",
      expect.objectContaining({ endpointId: endpoint.id, disabledAt: 'yesterday' }),
    );
  });

  it('is queued by the next message for the endpoint, once, with the id and time of the disable', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const user = await users.register({ email: `wh-alert-${randomUUID()}@example.com`, name: 'Cut Off' });
    const endpoint = await endpointAt(gone.url, principal({ id: user.id }));
    // The disabling invocation ends while its alert's SendMessageBatch is in flight (the function's timeout).
    let alertSent: () => void = () => {};
    const alertSending = new Promise<void>((resolve) => {
      alertSent = resolve;
    });
    const cutOffSqs = {
      send: () => {
        alertSent();
        return new Promise(() => {});
      },
    } as unknown as SQSClient;
    const disabling = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    void setup({ alertsSqs: cutOffSqs }).run(disabling);
    await alertSending;
    const disabled = await store.getEndpoint(endpoint.id);
    expect(disabled).toMatchObject({ status: 'disabled', disabledReason: 'gone', ownerAlertPending: true });

    // SQS hands the record over again, to an invocation that runs to its end.
    const { run, audits } = setup();
    expect(await run(await queues.redelivered(disabling))).toEqual({ batchItemFailures: [] });
    expect(await run(await record(webhookMessageFor(endpoint.id, endpoint.tenantId)))).toEqual({
      batchItemFailures: [],
    });
    const queued = await queues.enqueued<{
      id: string;
      type: string;
      to: string;
      data: Record<string, string>;
    }>(emailQueueUrl);
    expect(queued.map(({ body }) => body)).toEqual([
      expect.objectContaining({
        id: ownerAlertMessageId(endpoint.id, new Date(disabled?.disabledAt as string)),
        type: 'security-alert',
        to: user.email,
        data: expect.objectContaining({ occurredAt: disabled?.disabledAt }),
      }),
    ]);
    expect((await store.getEndpoint(endpoint.id))?.ownerAlertPending).toBeUndefined();
    // The endpoint was disabled once: no second webhook.endpoint_disabled line.
    expect(audits.filter((event) => event.eventType === 'webhook.endpoint_disabled')).toEqual([]);
  });
});

describe('the owner alert', () => {
  it('names the endpoint by its origin alone: a receiver may keep its token in the path, query or fragment', async () => {
    const user = await users.register({ email: `wh-alert-${randomUUID()}@example.com`, name: 'Tokened' });
    const { logger, auditLogger, metrics } = testObservability('webhook-worker').observability;
    const ownerAlerts = new OwnerAlerts({
      sqs: queues.client,
      emailQueueUrl,
      users,
      logger,
      auditLogger,
      metrics,
    });
    const quoted = async (url: string) => {
      const endpoint = await endpointAt(url, principal({ id: user.id }));
      await ownerAlerts.endpointDisabled(endpoint, 'gone', 'corr-quote', new Date());
      const [alert, ...more] = await alerts();
      expect(more).toEqual([]);
      expect(alert?.data.details).toContain(endpoint.id);
      return alert?.data.details ?? '';
    };
    const inPath = await quoted('https://discord.example.com/api/webhooks/123/path-token-1');
    expect(inPath).toContain('(https://discord.example.com/…) was disabled');
    expect(inPath).not.toContain('path-token-1');
    const inQuery = await quoted('https://hooks.example.com/in?token=query-token-1#fragment-token-1');
    expect(inQuery).toContain('(https://hooks.example.com/…) was disabled');
    expect(inQuery).not.toMatch(/query-token-1|fragment-token-1/);
    expect(await quoted('https://hooks.example.com:8443')).toContain(
      '(https://hooks.example.com:8443) was disabled',
    );
    // The store keeps what it is given; an item that is no URL still gets its alert, by the endpoint's id.
    expect(await quoted('hooks.example.com/no-scheme')).toContain('(its URL) was disabled');
  });
});

/**
 * Two messages for `endpoint`, received: the last receive (the fifth) of one, and the first of the other,
 * each with its correlation id (`corr-last`, `corr-first`).
 */
async function twoReceivesFor(endpoint: { id: string; tenantId: string }) {
  const lastMessage = webhookMessageFor(endpoint.id, endpoint.tenantId);
  const firstMessage = webhookMessageFor(endpoint.id, endpoint.tenantId);
  return {
    lastMessage,
    firstMessage,
    lastAttempt: await queues.receivedRecord(lastMessage, {
      receiveCount: 5,
      attributes: { 'x-correlation-id': 'corr-last' },
    }),
    firstAttempt: await queues.receivedRecord(firstMessage, {
      attributes: { 'x-correlation-id': 'corr-first' },
    }),
  };
}

/**
 * Two messages for a healthy endpoint of a newly registered user, the last receive (the fifth) of one and
 * the first of the other, run together by a worker over `store` whose failure before the POST hands both
 * back (checked: and the endpoint gets no POST). The worker would disable the endpoint after one failed
 * delivery, so that a failure of ours counted against it could not go unseen.
 */
async function twoReceivesFailingBeforeThePost(store: WebhookStore, emailTag: string) {
  const healthy = await receiver();
  const user = await users.register({ email: `${emailTag}-${randomUUID()}@example.com`, name: 'Spared' });
  const endpoint = await endpointAt(healthy.url, principal({ id: user.id }));
  const worker = setup({ store, disableRule: { afterFailedDeliveries: 1, afterFailingHours: 1000 } });
  const recorded = vi.spyOn(worker.metrics, 'addMetric');
  const logged = vi.spyOn(worker.logger, 'error');
  const receives = await twoReceivesFor(endpoint);
  await expectBothHandedBack(worker.run, receives.lastAttempt, receives.firstAttempt);
  expect(healthy.received).toHaveLength(0);
  return { ...worker, healthy, endpoint, recorded, logged, ...receives };
}

/**
 * The one `webhook.failed` audit line: the last receive's (`corr-last`), a failure of ours before any
 * POST (`worker_error`), with `details` besides.
 */
function expectLastReceiveAuditedAsOurs(
  audits: ReturnType<typeof setup>['audits'],
  lastMessage: WebhookMessage,
  details: Record<string, unknown> = {},
) {
  expect(audits.filter((event) => event.eventType === 'webhook.failed')).toEqual([
    expect.objectContaining({
      outcome: 'error',
      correlationId: 'corr-last',
      metadata: expect.objectContaining({
        webhookId: lastMessage.id,
        attempt: 5,
        last: true,
        posted: false,
        reason: 'worker_error',
        ...details,
      }),
    }),
  ]);
}

/**
 * After a failure of ours on both receives: the delivery of the last receive is failed in the history, the
 * endpoint never tried, and the other stays unrecorded until the endpoint is tried.
 */
async function expectOnlyTheLastReceiveEnded(endpointId: string, lastMessage: WebhookMessage) {
  expect(await historyOf(endpointId)).toEqual([
    expect.objectContaining({
      webhookId: lastMessage.id,
      status: 'failed',
      attempts: [expect.objectContaining({ attempt: 5, error: 'not attempted: worker error' })],
    }),
  ]);
}

/** Once the failure is over, the first receive's message comes again and is delivered on that second receive. */
async function expectDeliveredOnTheSecondReceive(
  received: Awaited<ReturnType<typeof twoReceivesFailingBeforeThePost>>,
) {
  const { run, healthy, endpoint, firstMessage, firstAttempt } = received;
  const retried = await queues.redelivered(firstAttempt);
  expect(retried.attributes.ApproximateReceiveCount).toBe('2');
  expect(await run(retried)).toEqual({ batchItemFailures: [] });
  expect(healthy.received).toHaveLength(1);
  expect(
    (await historyOf(endpoint.id)).find((delivery) => delivery.webhookId === firstMessage.id),
  ).toMatchObject({ status: 'delivered', attempts: [{ attempt: 2, statusCode: 204 }] });
}

describe("a failure on the worker's side", () => {
  /** The worker's own store, reading secrets through KMS that throttles while `throttling` is set. */
  function throttledKms() {
    const kms = { throttling: true };
    const keys = createKeyProvider(readEnvironment().encryption);
    const keyProvider = {
      providerId: keys.providerId,
      currentKeyId: keys.currentKeyId,
      generateDataKey: keys.generateDataKey.bind(keys),
      deriveIndexKey: keys.deriveIndexKey.bind(keys),
      decryptDataKey: (...args: Parameters<typeof keys.decryptDataKey>) => {
        if (!kms.throttling) return keys.decryptDataKey(...args);
        return Promise.reject(
          new KMSServiceException({
            name: 'ThrottlingException',
            $fault: 'client',
            $metadata: { httpStatusCode: 400 },
            message: 'Rate exceeded',
          }),
        );
      },
    };
    // A fresh encryptor: no unwrapped data key cached, so every secret goes through the provider.
    const encryptor = new Encryptor({ keyProvider, keyContextFields: ['tenantId'] });
    return { kms, store: new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor }) };
  }

  it('retries a message whose secret KMS would not decrypt, never counting it against the endpoint', async () => {
    const { kms, store: throttledStore } = throttledKms();
    const received = await twoReceivesFailingBeforeThePost(throttledStore, 'wh-kms');
    const { audits, recorded, logged, endpoint, lastMessage, firstMessage, lastAttempt, firstAttempt } =
      received;
    // The last receive's delivery is failed, since SQS's redrive takes the message next.
    await expectOnlyTheLastReceiveEnded(endpoint.id, lastMessage);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    expect(queues.sendMessageBatches()).toHaveLength(0);
    expect(await alerts()).toEqual([]);
    expect(audits.map((event) => event.eventType)).not.toContain('webhook.endpoint_disabled');
    // Each receive says which attempt it was; the last one says the delivery ended, and audits it as
    // ours (worker_error), not the endpoint's. The first one is only postponed: no audit line.
    expect(logged.mock.calls).toEqual(
      expect.arrayContaining([
        [
          'Webhook delivery failed for good: the worker failed before POSTing on the last attempt; the message goes to the DLQ',
          expect.objectContaining({ webhookId: lastMessage.id, attempt: 5, last: true }),
        ],
        [
          'Webhook delivery postponed: the worker failed before POSTing',
          expect.objectContaining({ webhookId: firstMessage.id, attempt: 1, last: false, delaySec: 5 }),
        ],
      ]),
    );
    expect(logged).toHaveBeenCalledTimes(2);
    expectLastReceiveAuditedAsOurs(audits, lastMessage, { error: 'SigningFailedError' });
    expectFirstBackedOffLastRedriven(recorded, lastAttempt, firstAttempt);

    kms.throttling = false;
    await expectDeliveredOnTheSecondReceive(received);
  });

  it('still postpones it when the in-progress idempotency record could not be deleted either', async () => {
    const { store: throttledStore } = throttledKms();
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const persistenceStore = webhookWorkerStore();
    throttleFirstDelete(persistenceStore);
    const { run, logger, audits } = setup({ store: throttledStore, persistenceStore });
    const warned = vi.spyOn(logger, 'warn');
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const firstAttempt = await record(message, 1);
    expect((await run(firstAttempt)).batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery postponed: the worker failed before POSTing',
      expect.objectContaining({ webhookId: message.id, attempt: 1, last: false }),
    );
    expect(warned).toHaveBeenCalledWith(
      'Webhook attempt failed, and its in-progress idempotency record could not be deleted',
      expect.objectContaining({ webhookId: message.id }),
    );
    // Nothing against the endpoint: no attempt recorded, no failure audited as its own.
    expect(await historyOf(endpoint.id)).toEqual([]);
    expect(audits.filter((event) => event.eventType === 'webhook.failed')).toEqual([]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    expect(healthy.received).toHaveLength(0);
    // Back once that record has expired with the invocation (30 s left), not after the 5 s backoff,
    // when it would be turned away as a copy in flight and spend a receive.
    expect(visibilityChanges()).toEqual([30]);
  });
});

describe('the toolkit table refusing connections before the POST', () => {
  /** The same store on a DynamoDB that refuses connections (one attempt, no SDK retries). */
  const refusing = new WebhookStore({
    documentClient: createDocumentClient(
      createDynamoDbClient({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 }),
    ),
    tableName: testTableNames.toolkit,
    encryptor,
  });

  /**
   * The worker's own store, whose endpoint reads go to the refusing DynamoDB while `outage.refusing`
   * is set (its other calls reach the real one, so what the worker records shows).
   */
  function refusedEndpointReads() {
    const outage = { refusing: true };
    const partlyDown = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
    const getEndpoint = partlyDown.getEndpoint.bind(partlyDown);
    vi.spyOn(partlyDown, 'getEndpoint').mockImplementation((endpointId) =>
      outage.refusing ? refusing.getEndpoint(endpointId) : getEndpoint(endpointId),
    );
    return { outage, store: partlyDown };
  }

  /**
   * The worker's own store, whose writes marking a delivery to a disabled endpoint failed go to the
   * refusing DynamoDB while `outage.refusing` is set; its other calls reach the real one.
   */
  function refusedDisabledMarks() {
    const outage = { refusing: true };
    const partlyDown = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
    const recordAttempt = partlyDown.recordAttempt.bind(partlyDown);
    vi.spyOn(partlyDown, 'recordAttempt').mockImplementation((message, attempt, status, now) =>
      outage.refusing && attempt.error === 'endpoint disabled: not attempted, kept in the DLQ'
        ? refusing.recordAttempt(message, attempt, status, now)
        : recordAttempt(message, attempt, status, now),
    );
    return { outage, store: partlyDown };
  }

  it('is postponed after the jittered backoff like any failure of ours, and ends the delivery on the last receive', async () => {
    const { outage, store: partlyDown } = refusedEndpointReads();
    const received = await twoReceivesFailingBeforeThePost(partlyDown, 'wh-ddb');
    const { audits, recorded, logged, endpoint, lastMessage, firstMessage, lastAttempt, firstAttempt } =
      received;
    const refused = expect.objectContaining({ code: 'ECONNREFUSED' });
    expect(logged.mock.calls).toEqual(
      expect.arrayContaining([
        [
          'Webhook delivery failed for good: the worker failed before POSTing on the last attempt; the message goes to the DLQ',
          expect.objectContaining({
            correlation_id: 'corr-last',
            webhookId: lastMessage.id,
            endpointId: endpoint.id,
            attempt: 5,
            last: true,
            error: refused,
          }),
        ],
        [
          'Webhook delivery postponed: the worker failed before POSTing',
          expect.objectContaining({
            correlation_id: 'corr-first',
            webhookId: firstMessage.id,
            endpointId: endpoint.id,
            attempt: 1,
            last: false,
            delaySec: 5,
            error: refused,
          }),
        ],
      ]),
    );
    expect(logged).toHaveBeenCalledTimes(2);
    expectFirstBackedOffLastRedriven(recorded, lastAttempt, firstAttempt);
    expectLastReceiveAuditedAsOurs(audits, lastMessage);
    // Nothing counts against the endpoint.
    await expectOnlyTheLastReceiveEnded(endpoint.id, lastMessage);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    expect(await alerts()).toEqual([]);

    outage.refusing = false;
    await expectDeliveredOnTheSecondReceive(received);
  });

  it('postpones a delivery to a disabled endpoint it could not mark failed, and ends it on the last receive', async () => {
    const endpoint = await endpointAt(target.url);
    const stored = await store.getEndpoint(endpoint.id);
    if (!stored) throw new Error('endpoint missing');
    expect(await store.disableEndpoint(stored, { reason: 'gone' })).toBe(true);
    const { outage, store: partlyDown } = refusedDisabledMarks();
    const { run, audits, metrics, logger } = setup({ store: partlyDown });
    const recorded = vi.spyOn(metrics, 'addMetric');
    const logged = vi.spyOn(logger, 'error');
    const { lastMessage, firstMessage, lastAttempt, firstAttempt } = await twoReceivesFor(endpoint);
    const before = target.received.length;
    const failures = (await run(lastAttempt, firstAttempt)).batchItemFailures;
    expect(failures).toHaveLength(2);
    expect(target.received.length).toBe(before);
    const refused = expect.objectContaining({ code: 'ECONNREFUSED' });
    expect(logged.mock.calls).toEqual(
      expect.arrayContaining([
        [
          'Webhook delivery failed for good: the worker failed before POSTing on the last attempt; the message goes to the DLQ',
          expect.objectContaining({ correlation_id: 'corr-last', attempt: 5, last: true, error: refused }),
        ],
        [
          'Webhook delivery postponed: the worker failed before POSTing',
          expect.objectContaining({ correlation_id: 'corr-first', attempt: 1, delaySec: 5, error: refused }),
        ],
      ]),
    );
    expectFirstBackedOffLastRedriven(recorded, lastAttempt, firstAttempt);
    expectLastReceiveAuditedAsOurs(audits, lastMessage);
    await expectOnlyTheLastReceiveEnded(endpoint.id, lastMessage);

    outage.refusing = false;
    expect(await run(await queues.redelivered(firstAttempt))).toEqual({ batchItemFailures: [] });
    expect(target.received.length).toBe(before);
    expect(
      (await historyOf(endpoint.id)).find((delivery) => delivery.webhookId === firstMessage.id),
    ).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 2, error: 'endpoint disabled: not attempted, kept in the DLQ' }],
    });
  });
});

describe('a worker failure after the POST', () => {
  /** The worker's own store, whose delivery writes DynamoDB throttles while `throttles` says so. */
  function throttledDeliveryWrites(throttles: (status: DeliveryStatus) => boolean) {
    const throttledStore = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
    const recordAttempt = throttledStore.recordAttempt.bind(throttledStore);
    vi.spyOn(throttledStore, 'recordAttempt').mockImplementation((message, attempt, status, now) =>
      throttles(status) ? Promise.reject(throttlingError()) : recordAttempt(message, attempt, status, now),
    );
    return throttledStore;
  }

  /** True the first `count` times it is asked, then false. */
  const firstTimes = (count: number) => () => {
    count -= 1;
    return count >= 0;
  };

  const failedMetrics = (added: { mock: { calls: unknown[][] } }) =>
    added.mock.calls.filter(([name]) => name === 'WebhookFailed');

  it('retries a delivery whose success could not be saved after the jittered backoff, and saves it then', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const throttledStore = throttledDeliveryWrites(firstTimes(1));
    const { run, logger, metrics, audits } = setup({ store: throttledStore });
    const logged = vi.spyOn(logger, 'error');
    const added = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const firstAttempt = await record(message, 1);
    expect((await run(firstAttempt)).batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery postponed: the worker failed after POSTing, so the outcome was not saved',
      expect.objectContaining({ webhookId: message.id }),
    );
    expect(failedMetrics(added)).toEqual([['WebhookFailed', 'Count', 1]]);
    expect(audits.map((event) => event.eventType)).not.toContain('webhook.delivered');
    // Random 0.5 of base 10 × 2^0.
    expect(visibilityChanges()).toEqual([5]);
    expect(await historyOf(endpoint.id)).toEqual([]);

    // Received again: the stored success is replayed and saved, with no second POST.
    expect(await run(await queues.redelivered(firstAttempt))).toEqual({ batchItemFailures: [] });
    expect(healthy.received).toHaveLength(1);
    // The copy that saves the delivery counts it, once.
    expect(added.mock.calls.filter(([name]) => name === 'WebhookDelivered')).toHaveLength(1);
    expect(audits.map((event) => event.eventType)).toEqual(['webhook.delivered']);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'delivered',
      attempts: [{ attempt: 1, statusCode: 204 }],
    });
  });

  it('marks the delivery failed on the last receive when its success could not be saved', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const { run, metrics } = setup({ store: throttledDeliveryWrites((status) => status === 'delivered') });
    const added = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const lastAttempt = await record(message, 5);
    expect((await run(lastAttempt)).batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(healthy.received).toHaveLength(1);
    expect(await historyOf(endpoint.id)).toEqual([
      expect.objectContaining({
        status: 'failed',
        attempts: [expect.objectContaining({ attempt: 5, error: 'outcome not saved: worker error' })],
      }),
    ]);
    expect(failedMetrics(added)).toEqual([['WebhookFailed', 'Count', 1]]);
    // Visible at once, for the redrive.
    expect(visibilityChanges()).toEqual([0]);
  });

  it('still counts a failed last attempt toward the disable rule when its record could not be saved', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run, metrics } = setup({
      store: throttledDeliveryWrites(firstTimes(1)),
      disableRule: { afterFailedDeliveries: 1, afterFailingHours: 1000 },
    });
    const added = vi.spyOn(metrics, 'addMetric');
    const lastAttempt = await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 5);
    expect((await run(lastAttempt)).batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
    });
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 5, error: 'outcome not saved: worker error' }],
    });
    // One failed attempt, counted once.
    expect(failedMetrics(added)).toEqual([['WebhookFailed', 'Count', 1]]);
    expect(visibilityChanges()).toEqual([0]);
  });

  it('disables an endpoint that answered 410 even when the attempt could not be saved', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const endpoint = await endpointAt(gone.url);
    const { run } = setup({ store: throttledDeliveryWrites(firstTimes(1)) });
    const firstAttempt = await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 1);
    expect((await run(firstAttempt)).batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'gone',
    });
    expect(visibilityChanges()).toEqual([5]);
    // Received again: the endpoint is disabled, so the delivery ends without a second POST.
    expect(await run(await queues.redelivered(firstAttempt))).toEqual({ batchItemFailures: [] });
    expect(gone.received).toHaveLength(1);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'failed',
      attempts: [{ error: 'endpoint disabled: not attempted, kept in the DLQ' }],
    });
  });

  it('still hands the last receive to the redrive at once when the delivery cannot be marked failed either', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const { run, logger } = setup({ store: throttledDeliveryWrites(() => true) });
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const lastAttempt = await record(message, 5);
    expect((await run(lastAttempt)).batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery left pending: it could not be marked failed',
      expect.objectContaining({ webhookId: message.id }),
    );
    expect(visibilityChanges()).toEqual([0]);
  });

  /** The worker's own store, whose streak resets DynamoDB throttles while `throttles` says so. */
  function throttledStreakResets(throttles: () => boolean) {
    const throttledStore = new WebhookStore({ documentClient, tableName: testTableNames.toolkit, encryptor });
    const clearFailures = throttledStore.clearFailures.bind(throttledStore);
    vi.spyOn(throttledStore, 'clearFailures').mockImplementation((endpointId) =>
      throttles() ? Promise.reject(throttlingError()) : clearFailures(endpointId),
    );
    return throttledStore;
  }

  /** An endpoint at `url` whose failure streak a delivery resets. */
  async function failingEndpointAt(url: string) {
    const endpoint = await endpointAt(url);
    await store.noteFailedDelivery(endpoint.id, randomUUID(), new Date());
    return endpoint;
  }

  it('counts a saved delivery once, not as failed, and retries only the streak reset that failed', async () => {
    const healthy = await receiver();
    const endpoint = await failingEndpointAt(healthy.url);
    const { run, logger, metrics, audits } = setup({ store: throttledStreakResets(firstTimes(1)) });
    const logged = vi.spyOn(logger, 'error');
    const added = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const firstAttempt = await record(message, 1);
    expect((await run(firstAttempt)).batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    expect(added.mock.calls.filter(([name]) => name === 'WebhookDelivered')).toHaveLength(1);
    expect(failedMetrics(added)).toEqual([]);
    expect(audits.map((event) => event.eventType)).toEqual(['webhook.delivered']);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivered, but its endpoint failure streak could not be reset; retrying',
      expect.objectContaining({
        correlation_id: firstAttempt.messageId,
        webhookId: message.id,
        endpointId: endpoint.id,
      }),
    );
    // Random 0.5 of base 10 × 2^0.
    expect(visibilityChanges()).toEqual([5]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ failedDeliveries: 1 });

    // Received again: a duplicate of the saved delivery, which resets the streak, with no second POST.
    expect(await run(await queues.redelivered(firstAttempt))).toEqual({ batchItemFailures: [] });
    expect(healthy.received).toHaveLength(1);
    expect(added.mock.calls.filter(([name]) => name === 'WebhookDelivered')).toHaveLength(1);
    expect(audits.map((event) => event.eventType)).toEqual(['webhook.delivered', 'webhook.duplicate']);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'delivered',
      attempts: [{ attempt: 1, statusCode: 204 }],
    });
  });

  it('lets a delivered message go on the last receive when its streak cannot be reset, not to the DLQ', async () => {
    const healthy = await receiver();
    const endpoint = await failingEndpointAt(healthy.url);
    const { run, logger, metrics, audits } = setup({ store: throttledStreakResets(() => true) });
    const logged = vi.spyOn(logger, 'error');
    const added = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const lastAttempt = await record(message, 5);
    expect(await run(lastAttempt)).toEqual({ batchItemFailures: [] });
    expect(added.mock.calls.filter(([name]) => name === 'WebhookDelivered')).toHaveLength(1);
    expect(failedMetrics(added)).toEqual([]);
    expect(audits.map((event) => event.eventType)).toEqual(['webhook.delivered']);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivered, but its endpoint failure streak could not be reset; left to its next delivery',
      expect.objectContaining({
        correlation_id: lastAttempt.messageId,
        webhookId: message.id,
        endpointId: endpoint.id,
      }),
    );
    expect(visibilityChanges()).toEqual([]);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({ status: 'delivered' });
  });

  it('is logged and recorded as an unsaved outcome, not as a delivery never attempted', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const persistenceStore = webhookWorkerStore();
    // Saving the success record is the step after the POST.
    vi.spyOn(persistenceStore, 'saveSuccess').mockRejectedValue(new Error('DynamoDB unreachable'));
    const { run, logger, audits } = setup({ persistenceStore });
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const lastAttempt = await record(message, 5);
    expect((await run(lastAttempt)).batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(healthy.received).toHaveLength(1);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery failed for good: the worker failed after POSTing on the last attempt, so the outcome was not saved; the message goes to the DLQ',
      expect.objectContaining({
        correlation_id: lastAttempt.messageId,
        webhookId: message.id,
        attempt: 5,
        last: true,
      }),
    );
    expect(audits.filter((event) => event.eventType === 'webhook.failed')).toEqual([
      expect.objectContaining({
        outcome: 'error',
        metadata: expect.objectContaining({ attempt: 5, last: true, posted: true, reason: 'worker_error' }),
      }),
    ]);
    expect(await historyOf(endpoint.id)).toEqual([
      expect.objectContaining({
        webhookId: message.id,
        status: 'failed',
        attempts: [expect.objectContaining({ attempt: 5, error: 'outcome not saved: worker error' })],
      }),
    ]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
  });
});

describe('a failed POST whose in-progress idempotency record could not be deleted', () => {
  /** The worker's idempotency store, whose first deleteRecord (after a failed POST) DynamoDB throttles. */
  function throttledDelete() {
    const persistenceStore = webhookWorkerStore();
    throttleFirstDelete(persistenceStore);
    return persistenceStore;
  }

  const failedMetrics = (added: { mock: { calls: unknown[][] } }) =>
    added.mock.calls.filter(([name]) => name === 'WebhookFailed');

  it('still disables an endpoint that answered 410, ends the delivery and never POSTs it again', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const endpoint = await endpointAt(gone.url);
    const { run, logger, metrics, audits } = setup({ persistenceStore: throttledDelete() });
    const logged = vi.spyOn(logger, 'error');
    const added = vi.spyOn(metrics, 'addMetric');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    expect(await run(await record(message, 1))).toEqual({ batchItemFailures: [] });
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'gone',
    });
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 1, statusCode: 410, error: 'HTTP 410' }],
    });
    expect(logged).not.toHaveBeenCalled();
    expect(failedMetrics(added)).toEqual([['WebhookFailed', 'Count', 1]]);
    expect(audits.map((event) => [event.eventType, event.outcome])).toEqual([
      ['webhook.endpoint_disabled', 'success'],
      ['webhook.failed', 'failure'],
    ]);
    // A copy received later finds the endpoint disabled: no second POST.
    expect(await run(await record(message, 2))).toEqual({ batchItemFailures: [] });
    expect(gone.received).toHaveLength(1);
  });

  it('still counts a failed last attempt toward the disable rule, as the endpoint answered it', async () => {
    const dead = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(dead.url);
    const { run, metrics, audits } = setup({
      persistenceStore: throttledDelete(),
      disableRule: { afterFailedDeliveries: 1, afterFailingHours: 1000 },
    });
    const added = vi.spyOn(metrics, 'addMetric');
    const lastAttempt = await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 5);
    expect((await run(lastAttempt)).batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'failing',
      failedDeliveries: 1,
    });
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'failed',
      attempts: [{ attempt: 5, statusCode: 500, error: 'HTTP 500' }],
    });
    expect(failedMetrics(added)).toEqual([['WebhookFailed', 'Count', 1]]);
    expect(audits).toContainEqual(
      expect.objectContaining({
        eventType: 'webhook.failed',
        outcome: 'failure',
        metadata: expect.objectContaining({ attempt: 5, last: true, reason: 'HTTP 500' }),
      }),
    );
    // Visible at once, for the redrive.
    expect(visibilityChanges()).toEqual([0]);
  });

  it('records an earlier failed attempt and holds the retry until that record has expired', async () => {
    const failing = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(failing.url);
    const { run, logger } = setup({ persistenceStore: throttledDelete() });
    const warned = vi.spyOn(logger, 'warn');
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const firstAttempt = await record(message, 1);
    expect((await run(firstAttempt)).batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'pending',
      attempts: [{ attempt: 1, statusCode: 500 }],
    });
    expect(logged).not.toHaveBeenCalled();
    expect(warned).toHaveBeenCalledWith(
      'Webhook attempt failed, and its in-progress idempotency record could not be deleted',
      expect.objectContaining({
        correlation_id: firstAttempt.messageId,
        webhookId: message.id,
        expiresInSec: 30,
      }),
    );
    // The record expires with the invocation (30 s left), beyond the backoff (random 0.5 of base 10 × 2^0):
    // an earlier retry would be turned away as a copy in flight and spend one of its 5 receives.
    expect(visibilityChanges()).toEqual([30]);
  });

  it('POSTs the retry once that record has expired', async () => {
    const recovering = await receiver((count) => ({ status: count === 1 ? 500 : 204 }));
    const endpoint = await endpointAt(recovering.url);
    const { worker, run } = setup({ persistenceStore: throttledDelete(), timeoutMs: 200 });
    // An invocation about to end, with just time for a 200 ms POST before its batch's deadline: its
    // in-progress record expires with it.
    const remainingMs = batchAnswerMarginMs + 500;
    const ending = { ...context, getRemainingTimeInMillis: () => remainingMs } as Context;
    const firstAttempt = await record(webhookMessageFor(endpoint.id, endpoint.tenantId), 1);
    const first = await worker.handle({ Records: [firstAttempt] } as SQSEvent, ending);
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: firstAttempt.messageId }]);
    await new Promise((resolve) => setTimeout(resolve, remainingMs));
    expect(await run(await queues.redelivered(firstAttempt))).toEqual({ batchItemFailures: [] });
    expect(recovering.received).toHaveLength(2);
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'delivered',
      attempts: [
        { attempt: 1, statusCode: 500 },
        { attempt: 2, statusCode: 204 },
      ],
    });
  });
});

describe('a duplicate copy of a delivered message', () => {
  it('is not POSTed, counted or audited as a second delivery, but audited as a duplicate', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const persistenceStore = webhookWorkerStore();
    const { run, audits, metrics, logger } = setup({ persistenceStore });
    const added = vi.spyOn(metrics, 'addMetric');
    const info = vi.spyOn(logger, 'info');
    const deliveredAfterSec = Math.round(Date.now() / 1000);
    expect(await run(await record(message))).toEqual({ batchItemFailures: [] });
    // Remembered for idempotencyTtlSec (default a day) from the delivery.
    const { expiryTimestamp } = await persistenceStore.getRecord({ id: message.id });
    expect(expiryTimestamp).toBeGreaterThanOrEqual(deliveredAfterSec + 86_400);
    expect(expiryTimestamp).toBeLessThanOrEqual(Math.round(Date.now() / 1000) + 86_400);
    // SQS delivers at least once: the same message as a second SQS message, first receive.
    const copy = await record(message);
    expect(await run(copy)).toEqual({ batchItemFailures: [] });
    expect(info).toHaveBeenCalledWith(
      'Webhook already delivered; copy skipped',
      expect.objectContaining({ correlation_id: copy.messageId, webhookId: message.id }),
    );
    expect(healthy.received).toHaveLength(1);
    expect(added.mock.calls.filter(([name]) => name === 'WebhookDelivered')).toHaveLength(1);
    expect(audits.map((event) => event.eventType)).toEqual(['webhook.delivered', 'webhook.duplicate']);
    expect(audits[1]).toMatchObject({ outcome: 'success', metadata: { webhookId: message.id } });
    expect((await historyOf(endpoint.id))[0]).toMatchObject({
      status: 'delivered',
      attempts: [{ attempt: 1, statusCode: 204 }],
    });
  });
});

describe('a message redriven from the DLQ', () => {
  it('records its success after the failed attempts, instead of leaving the delivery failed', async () => {
    const recovering = await receiver((count) => ({ status: count <= 5 ? 500 : 204 }));
    const endpoint = await endpointAt(recovering.url);
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const { run } = setup({ failureThreshold: 100 });
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      await run(await record(message, attempt));
      await queues.reset();
    }
    expect((await historyOf(endpoint.id))[0]).toMatchObject({ status: 'failed' });
    // Redriven to the source queue: a new SQS message with the same body, received once.
    expect(await run(await record(message, 1))).toEqual({ batchItemFailures: [] });
    expect(recovering.received).toHaveLength(6);
    const [delivery] = await historyOf(endpoint.id);
    expect(delivery?.status).toBe('delivered');
    expect(delivery?.attempts.map(({ attempt, statusCode }) => [attempt, statusCode])).toEqual([
      [1, 500],
      [2, 500],
      [3, 500],
      [4, 500],
      [5, 500],
      [1, 204],
    ]);
  });
});

describe('delivery history', () => {
  it('leaves out a delivery past its retention, which DynamoDB TTL may not have deleted yet', async () => {
    const endpoint = await endpointAt(target.url);
    const attempt = { attempt: 1, at: new Date().toISOString(), statusCode: 204, durationMs: 3 };
    const madeDaysAgo = (days: number) => ({
      ...webhookMessageFor(endpoint.id, endpoint.tenantId),
      createdAt: new Date(Date.now() - days * 24 * 3600 * 1000).toISOString(),
    });
    const kept = madeDaysAgo(deliveryRetentionDays - 1);
    await store.recordAttempt(kept, attempt, 'delivered');
    await store.recordAttempt(madeDaysAgo(deliveryRetentionDays + 1), attempt, 'delivered');
    expect((await historyOf(endpoint.id)).map((delivery) => delivery.webhookId)).toEqual([kept.id]);
  });
});

describe('retry helpers', () => {
  it('full jitter draws between 0 and the capped exponential delay', () => {
    expect(fullJitterDelaySec(3, 10, 3600, () => 0)).toBe(0);
    expect(fullJitterDelaySec(3, 10, 3600, () => 1)).toBe(40);
    expect(fullJitterDelaySec(30, 10, 3600, () => 1)).toBe(3600);
    expect(fullJitterDelaySec(1, 10, 3600, () => 0.5)).toBe(5);
  });
});

describe("the batch's deadline", () => {
  /** An invocation that ends `remainingMs` from now, its time left counting down as Lambda's does. */
  const endingIn = (remainingMs: number) => {
    const end = Date.now() + remainingMs;
    return { end, context: { ...context, getRemainingTimeInMillis: () => end - Date.now() } as Context };
  };

  it('starts no POST whose time limit does not fit before it: postponed as our failure, nothing against the endpoint', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const { worker, logger, audits } = setup();
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const received = await record(message);
    // 5 s before the batch's deadline: less than the 10 s POST limit.
    const { context: ending } = endingIn(batchAnswerMarginMs + 5_000);
    const answer = await worker.handle({ Records: [received] } as SQSEvent, ending);
    expect(answer.batchItemFailures).toEqual([{ itemIdentifier: received.messageId }]);
    expect(healthy.received).toHaveLength(0);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery postponed: the worker failed before POSTing',
      expect.objectContaining({
        webhookId: message.id,
        attempt: 1,
        last: false,
        error: expect.any(DeadlineExceededError),
      }),
    );
    expect(await historyOf(endpoint.id)).toEqual([]);
    expect(audits.filter((event) => event.eventType === 'webhook.failed')).toEqual([]);
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    // Back after the jittered backoff (0.5 of base 10 × 2^0), not the queue's 180 s.
    expect(visibilityChanges()).toEqual([5]);
  });

  it("gives the endpoint's circuit the batch's deadline: the invocation's end less the answer margin", async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const { worker } = setup();
    const execute = vi.spyOn(CircuitBreaker.prototype, 'execute');
    onTestFinished(() => execute.mockRestore());
    const { end, context: ending } = endingIn(30_000);
    const received = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    expect(await worker.handle({ Records: [received] } as SQSEvent, ending)).toEqual({
      batchItemFailures: [],
    });
    expect(execute).toHaveBeenCalledWith(
      expect.any(Function),
      expect.objectContaining({ deadline: end - batchAnswerMarginMs }),
    );
  });

  it('takes no queue action for a record it reported failed at the deadline: its late last attempt leaves the message to SQS', async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const persistenceStore = webhookWorkerStore();
    // The in-progress record's write outlasts the batch: the record is still running at its deadline.
    const saveInProgress = persistenceStore.saveInProgress.bind(persistenceStore);
    vi.spyOn(persistenceStore, 'saveInProgress').mockImplementation(async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      return saveInProgress(...args);
    });
    const { worker, logger } = setup({ persistenceStore, timeoutMs: 1_500 });
    const skipped = vi.spyOn(logger, 'info');
    const endLastAttempt = vi.spyOn(QueueActions.prototype, 'endLastAttempt');
    onTestFinished(() => endLastAttempt.mockRestore());
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    // Redriven from the DLQ once (it carries that dead-lettering's reason), on its last receive: a record
    // whose last attempt fails is copied to the DLQ by the worker itself, unless it was already answered.
    const lastAttempt = await queues.receivedRecord(message, {
      receiveCount: 5,
      attributes: { [deadLetterReasonAttribute]: 'attempts used: 5 of 5' },
    });
    const { context: ending } = endingIn(batchAnswerMarginMs + 2_000);
    const answer = await worker.handle({ Records: [lastAttempt] } as SQSEvent, ending);
    expect(answer.batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    // The record's own work goes on (in Lambda, when the environment is thawed) and ends its last attempt.
    await vi.waitFor(() => expect(endLastAttempt.mock.settledResults).toHaveLength(1), { timeout: 5_000 });
    // Reported failed, the message stays in the queue for SQS's redrive: a copy of the worker's would be a second one.
    expect(await queues.deadLetters([JSON.stringify(message)])).toEqual([]);
    expect(endLastAttempt.mock.settledResults).toEqual([{ type: 'fulfilled', value: false }]);
    expect(queues.sentMessages()).toEqual([]);
    expect(visibilityChanges()).toEqual([]);
    expect(skipped).toHaveBeenCalledWith(
      "Message dead-lettering skipped: its record was reported failed at its batch's deadline, so SQS returns it",
      { correlation_id: lastAttempt.messageId, sqsMessageId: lastAttempt.messageId },
    );
    expect(healthy.received).toHaveLength(0);
  });

  it('deletes the original of a DLQ copy in flight as the deadline passed, reported failed: the message is held once', async () => {
    const failing = await receiver(() => ({ status: 500 }));
    const endpoint = await endpointAt(failing.url);
    // Each copy's SendMessage takes 2.5 s: sent before the batch's deadline, answered after it.
    const answered: string[] = [];
    const slowCopies = {
      send: async (command: SendMessageCommand | DeleteMessageCommand) => {
        if (command instanceof SendMessageCommand) await new Promise((resolve) => setTimeout(resolve, 2_500));
        const output = await queues.client.send(command as SendMessageCommand);
        answered.push(command.constructor.name);
        return output;
      },
    } as unknown as SQSClient;
    const { worker } = setup({ sqs: slowCopies, timeoutMs: 500 });
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    // Redriven from the DLQ once, on its last receive: its failed attempt is copied to the DLQ by the worker.
    const lastAttempt = await queues.receivedRecord(message, {
      receiveCount: 5,
      attributes: { [deadLetterReasonAttribute]: 'attempts used: 5 of 5' },
    });
    const { context: ending } = endingIn(batchAnswerMarginMs + 1_500);
    const answer = await worker.handle({ Records: [lastAttempt] } as SQSEvent, ending);
    expect(answer.batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(failing.received).toHaveLength(1);
    await vi.waitFor(() => expect(answered).toEqual(['SendMessageCommand', 'DeleteMessageCommand']), {
      timeout: 5_000,
    });
    const copies = await queues.deadLetters([JSON.stringify(message)]);
    expect(copies.map((copy) => copy.MessageAttributes?.[deadLetterReasonAttribute]?.StringValue)).toEqual([
      'attempts used: 5 of 5',
    ]);
    // Deleted, the original is not handed over again for SQS's redrive to move to the DLQ a second time.
    await expect(queues.makeVisible(lastAttempt)).rejects.toThrow();
  });

  it("starts no POST whose time limit stopped fitting while its idempotency record was written: on the last receive, the worker's failure, not toward the disable rule", async () => {
    const healthy = await receiver();
    const endpoint = await endpointAt(healthy.url);
    const persistenceStore = webhookWorkerStore();
    // 2 s before the deadline there is room for the 1.5 s POST; the in-progress record's 1 s write leaves none.
    const saveInProgress = persistenceStore.saveInProgress.bind(persistenceStore);
    vi.spyOn(persistenceStore, 'saveInProgress').mockImplementation(async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      return saveInProgress(...args);
    });
    const { worker, logger } = setup({ persistenceStore, timeoutMs: 1_500, failureThreshold: 1 });
    const logged = vi.spyOn(logger, 'error');
    const message = webhookMessageFor(endpoint.id, endpoint.tenantId);
    const lastAttempt = await record(message, 5);
    const { context: ending } = endingIn(batchAnswerMarginMs + 2_000);
    const answer = await worker.handle({ Records: [lastAttempt] } as SQSEvent, ending);
    expect(answer.batchItemFailures).toEqual([{ itemIdentifier: lastAttempt.messageId }]);
    expect(healthy.received).toHaveLength(0);
    expect(await historyOf(endpoint.id)).toEqual([
      expect.objectContaining({
        status: 'failed',
        attempts: [expect.objectContaining({ attempt: 5, error: 'not attempted: worker error' })],
      }),
    ]);
    expect(logged).toHaveBeenCalledWith(
      'Webhook delivery failed for good: the worker failed before POSTing on the last attempt; the message goes to the DLQ',
      expect.objectContaining({ webhookId: message.id, error: expect.any(DeadlineExceededError) }),
    );
    // Neither the endpoint's failure streak nor its circuit (one failure would open it) counted it.
    expect(await store.getEndpoint(endpoint.id)).toMatchObject({ status: 'enabled', failedDeliveries: 0 });
    const next = await record(webhookMessageFor(endpoint.id, endpoint.tenantId));
    expect(await worker.handle({ Records: [next] } as SQSEvent, context)).toEqual({ batchItemFailures: [] });
    expect(healthy.received).toHaveLength(1);
  });
});
