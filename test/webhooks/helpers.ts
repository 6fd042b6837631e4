// Helpers of the webhook tests: a scriptable receiver on 127.0.0.1, endpoint registration and delivery reads.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { expect } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { webhookSecretKeyContextFields } from '../../functions/shared/key-purposes.js';
import { newWebhookId } from '../../functions/shared/webhook-ids.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import type { WebhookMessage } from '../../functions/webhook-worker/messages.js';
import { sendRaw, until } from '../email-worker/helpers.js';
import type { TestApi } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

export interface ReceivedWebhook {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

/** How the receiver answers its n-th request (1-based). */
export type Responder = (
  count: number,
  request: ReceivedWebhook,
) => {
  status: number;
  headers?: Record<string, string>;
  /** Milliseconds to wait before answering. */
  delayMs?: number;
};

export interface Receiver {
  readonly url: string;
  readonly received: ReceivedWebhook[];
  respond: Responder;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 recording every POST and answering as `respond` says (204 by default). */
export async function startReceiver(respond: Responder = () => ({ status: 204 })): Promise<Receiver> {
  const received: ReceivedWebhook[] = [];
  const receiver: { respond: Responder } = { respond };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const webhook = {
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      received.push(webhook);
      const answer = receiver.respond(received.length, webhook);
      setTimeout(() => {
        if (response.destroyed) return;
        response.writeHead(answer.status, answer.headers ?? {}).end();
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    get respond() {
      return receiver.respond;
    },
    set respond(value: Responder) {
      receiver.respond = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface RegisteredEndpoint {
  readonly id: string;
  readonly secret: string;
  readonly url: string;
  readonly status: string;
}

/** Registers an endpoint as the holder of `token`; fails the test unless the API answers 201. */
export async function registerEndpoint(
  api: TestApi,
  token: string,
  url: string,
  eventTypes: readonly string[] = ['booking.created', 'booking.cancelled'],
): Promise<RegisteredEndpoint> {
  const response = await api.request('POST', '/webhooks', { token, body: { url, eventTypes } });
  if (response.status !== 201) throw new Error(`registration answered ${response.status}: ${response.text}`);
  return response.body as RegisteredEndpoint;
}

export interface DeliveryView {
  webhookId: string;
  eventType: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: { attempt: number; at: string; statusCode?: number; error?: string; durationMs: number }[];
}

/** The endpoint's delivery history, newest first (first page). */
export async function deliveriesOf(api: TestApi, token: string, endpointId: string): Promise<DeliveryView[]> {
  const response = await api.request('GET', `/webhooks/${endpointId}/deliveries`, { token });
  if (response.status !== 200) throw new Error(`deliveries answered ${response.status}: ${response.text}`);
  return (response.body as { items: DeliveryView[] }).items;
}

/**
 * Delivers `count` booking.created messages to the endpoint through the worker, oldest first (a second
 * apart from now), and waits until its owner sees each delivered; their webhook ids.
 */
export async function deliverMessages(
  api: TestApi,
  endpointId: string,
  ownerToken: string,
  count: number,
): Promise<string[]> {
  const ids: string[] = [];
  // Not before the endpoint's registration (a message made before it was for an endpoint deleted since),
  // nor more than minutes ahead of the worker's clock.
  const sentFrom = Date.now();
  for (let index = 0; index < count; index += 1) {
    const id = `msg_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
    ids.push(id);
    const at = new Date(sentFrom + index * 1000).toISOString();
    await sendRaw(
      api.runtime(),
      JSON.stringify({
        id,
        endpointId,
        tenantId: 'default',
        eventType: 'booking.created',
        createdAt: at,
        payload: { type: 'booking.created', timestamp: at, data: { index } },
      }),
      'bulwark-webhook',
    );
  }
  await until(async () => {
    const found = await deliveriesOf(api, ownerToken, endpointId);
    return found.length === count && found.every((delivery) => delivery.status === 'delivered')
      ? true
      : undefined;
  });
  return ids;
}

/** How many endpoints an owner has (the owner index). */
/** `response` is the 404 problem+json of an endpoint the caller cannot see (none, another's, deleted). */
export function expectEndpointNotFound(
  response: { status: number; headers: Headers; body: unknown },
  endpointId: string,
): void {
  expect(response.status).toBe(404);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  expect(response.body).toMatchObject({
    status: 404,
    code: 'NOT_FOUND',
    detail: `Webhook endpoint ${endpointId} not found`,
  });
}

/** The endpoint's item on the suite's toolkit table as stored, read consistently; undefined once deleted. */
export async function storedEndpointItem(
  documents: DynamoDBDocumentClient,
  endpointId: string,
): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documents.send(
    new GetCommand({
      TableName: testTableNames.toolkit,
      Key: { pk: `WH#${endpointId}`, sk: 'ENDPOINT' },
      ConsistentRead: true,
    }),
  );
  return Item;
}

export async function endpointCount(documents: DynamoDBDocumentClient, ownerId: string): Promise<number> {
  const { Items } = await documents.send(
    new QueryCommand({
      TableName: testTableNames.toolkit,
      IndexName: 'gsi1',
      KeyConditionExpression: 'gsi1pk = :owner',
      ExpressionAttributeValues: { ':owner': `WH#OWNER#default#${ownerId}` },
    }),
  );
  return Items?.length ?? 0;
}

/**
 * Seals an endpoint's secret again as the store did before secrets carried their purpose: context
 * `{ tenantId, endpointId }`, the tenant alone bound to the data key, and no `secretContext` on the
 * item. Returns the item as it was before.
 */
export async function sealAsBeforePurposes(
  documents: DynamoDBDocumentClient,
  endpointId: string,
  secret: string,
): Promise<Record<string, unknown>> {
  const key = { pk: `WH#${endpointId}`, sk: 'ENDPOINT' };
  const { Item } = await documents.send(
    new GetCommand({ TableName: testTableNames.toolkit, Key: key, ConsistentRead: true }),
  );
  if (!Item) throw new Error(`no endpoint ${endpointId}`);
  const tenantBound = createFunctionEncryptor(readEnvironment());
  const { secretContext: _secretContext, secret: _secret, ...rest } = Item;
  const { headerField } = tenantBound;
  const { [headerField]: _header, ...withoutSecret } = rest;
  const sealed = await tenantBound.encryptFields({ secret }, ['secret'], {
    tenantId: String(Item.tenantId),
    endpointId,
  });
  await documents.send(
    new PutCommand({ TableName: testTableNames.toolkit, Item: { ...withoutSecret, ...sealed } }),
  );
  return Item;
}

/** How long a deleted endpoint's id stays retired, as the README states it: its delivery history's 30 days. */
const tombstoneLifetimeSec = 30 * 24 * 3600;

/**
 * Checks that of an endpoint deleted between `since` and now (epoch ms), only its tombstone is left
 * among `items` besides its delivery history: `deletedAt` in that time, kept 30 days from it.
 */
export function expectOnlyTombstone(
  items: readonly Record<string, unknown>[],
  endpointId: string,
  since: number,
): void {
  const others = items.filter((item) => !String(item.sk).startsWith('DELIVERY#'));
  expect(others).toEqual([
    {
      pk: `WH#${endpointId}`,
      sk: 'TOMBSTONE',
      deletedAt: expect.any(String),
      expiresAt: expect.any(Number),
    },
  ]);
  const [tombstone] = others as [{ deletedAt: string; expiresAt: number }];
  const deletedAt = Date.parse(tombstone.deletedAt);
  expect(deletedAt).toBeGreaterThanOrEqual(since);
  expect(deletedAt).toBeLessThanOrEqual(Date.now());
  expect(tombstone.expiresAt).toBe(Math.floor(deletedAt / 1000) + tombstoneLifetimeSec);
}

/**
 * A store of the toolkit table's webhooks as the webhooks function builds it: it seals signing secrets with
 * their purpose bound to the data key, which the tenant-bound encryptor of the worker reads too.
 */
export function registeringWebhookStore(documentClient: DynamoDBDocumentClient): WebhookStore {
  return new WebhookStore({
    documentClient,
    tableName: testTableNames.toolkit,
    encryptor: createFunctionEncryptor(readEnvironment(), undefined, webhookSecretKeyContextFields),
  });
}

/** The webhook worker's invocation context in these tests: 30 s left, its function's timeout. */
export const webhookWorkerContext = {
  functionName: 'bulwark-webhook-worker',
  awsRequestId: 'req-1',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

/** A booking.created message to the endpoint, made now, with a fresh webhook id. */
export function webhookMessageFor(endpointId: string, tenantId: string): WebhookMessage {
  const now = new Date().toISOString();
  return {
    id: newWebhookId('msg'),
    endpointId,
    tenantId,
    eventType: 'booking.created',
    createdAt: now,
    payload: { type: 'booking.created', timestamp: now, data: { id: 'booking-1' } },
  };
}
