// A stateful model-based test of the HTTP API (fast-check's commands) through the local runtime, on tables
// of its own. Each run registers two users (A, B) and acts as them, as A made an admin (Aadmin), an admin, an
// M2M client with every scope (bot) and an M2M client whose id is A's (twin), against a model of what should
// exist: users, bookings, webhook endpoints (owner, secret, rotation, status, deleted) and the
// Idempotency-Keys sent. Every answer is checked against the model (never a 5xx; every error a problem of
// its code's status); after every command, the stored endpoint items, tombstones, subscriptions and
// per-owner counts; around every refusal, that it left no new item in either table. A Settle command waits
// for the webhook queue to empty and checks fan-out: every eligible endpoint got each event once, no other
// endpoint got it, and the admin's delivery history lists what each receiver got.
//
// A few short runs from the suite's fixed seed keep it cheap; MODEL_RUNS, MODEL_COMMANDS and FC_SEED
// explore further (npx vitest run test/e2e/api-model.test.ts).
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemStatuses } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { drained } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { type ApiResponse, useLocalRuntime } from '../helpers/runtime.js';

// A small cap, so the model reaches it within the strict limit (10 registrations a minute per caller).
process.env.WEBHOOK_MAX_ENDPOINTS_PER_OWNER = '3';
const cap = 3;
// Tables of its own: tenant-wide endpoints it registers receive only its events, and its users and
// bookings are the only ones its lists hold besides earlier runs'.
const api = useLocalRuntime({ ownAppTable: true, ownToolkitTable: true });

const numRuns = Number(process.env.MODEL_RUNS ?? 6);
const maxCommands = Number(process.env.MODEL_COMMANDS ?? 40);
/** A minute for the default runs (a command takes a fraction of a second), more for longer ones. */
const timeoutMs = Math.max(60_000, numRuns * maxCommands * 400);

// ---------------------------------------------------------------------------------------------------------
// A receiver with one path per endpoint: /hooks/<nonce>; a nonce starting `gone` answers 410.
interface Received {
  path: string;
  type: string;
  subject: string;
  webhookId: string;
}
const received: Received[] = [];
let receiverServer: Server;
let receiverBase: string;

let documents: DynamoDBDocumentClient;

beforeAll(async () => {
  receiverServer = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = request.url ?? '';
      try {
        const payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          type: string;
          data: { id: string };
        };
        received.push({
          path,
          type: payload.type,
          subject: payload.data.id,
          webhookId: String(request.headers['webhook-id']),
        });
      } catch {
        received.push({ path, type: '?', subject: '?', webhookId: '?' });
      }
      response.writeHead(path.includes('/gone') ? 410 : 204).end();
    });
  });
  await new Promise<void>((resolve) => receiverServer.listen(0, '127.0.0.1', () => resolve()));
  receiverBase = `http://127.0.0.1:${(receiverServer.address() as AddressInfo).port}/hooks/`;
  documents = createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    receiverServer.close(() => resolve());
    receiverServer.closeAllConnections();
  });
});

// ---------------------------------------------------------------------------------------------------------
// Aadmin: A's own identity (the same `sub`) with role admin, as after A was made an administrator.
type Actor = 'A' | 'B' | 'admin' | 'bot' | 'twin' | 'Aadmin';
const actors: readonly Actor[] = ['A', 'B', 'admin', 'bot', 'twin', 'Aadmin'];
const eventTypeSets = [
  ['booking.created'],
  ['booking.created', 'booking.cancelled'],
  ['booking.cancelled', 'booking.created'],
  ['user.registered'],
  ['booking.cancelled', 'user.registered'],
] as const;

type Status = 'enabled' | 'disabled' | 'willDisable' | 'maybe';
interface Endpoint {
  id: string;
  owner: Actor;
  url: string;
  gone: boolean;
  eventTypes: string[];
  status: Status;
  deleted: boolean;
  secret: string;
  firstBody: Record<string, unknown>;
  rotation?: { secretRotatedAt: string; previousSecretExpiresAt: string };
  rotationCount: number;
  seq: number;
}
interface Booking {
  id: string;
  userKey: 'A' | 'B';
  userId: string;
  roomId: string;
  startMs: number;
  endMs: number;
  status: 'confirmed' | 'cancelled';
  body: Record<string, unknown>;
}
interface EventRecord {
  type: string;
  subject: string;
  /** The user whose resource it is (undefined: visible to tenant-wide endpoints only). */
  userId: string | undefined;
  /** Endpoints (non-gone) that must receive it. */
  mustReach: string[];
  /** Endpoints that may receive it (eligible when made). */
  mayReach: string[];
}
interface Model {
  rid: string;
  users: Record<'A' | 'B', { id: string; deleted: boolean }>;
  extraUsers: string[];
  endpoints: Endpoint[];
  bookings: Booking[];
  regKeys: {
    actor: Actor;
    key: string;
    request: { url: string; eventTypes: string[] };
    endpointId: string;
    body: Record<string, unknown>;
  }[];
  rotKeys: {
    actor: Actor;
    key: string;
    endpointId: string;
    rotationNo: number;
    body: Record<string, unknown>;
  }[];
  bookKeys: {
    actor: Actor;
    key: string;
    request: Record<string, string>;
    bookingId: string;
    body: Record<string, unknown>;
  }[];
  failedKeys: { actor: Actor; key: string }[];
  regAttempts: Record<string, number>;
  events: EventRecord[];
  seq: number;
}
interface Real {
  otherTenantAdmin: string;
  tokens: Record<Actor, string>;
  ids: Record<Actor, string>;
}

const day = bookingDay(5);

function ownerIdentity(real: Real, actor: Actor): { id: string; kind: 'person' | 'integration' } {
  return { id: real.ids[actor], kind: actor === 'bot' || actor === 'twin' ? 'integration' : 'person' };
}
/** Whether `actor` owns `endpoint` (same id and kind). */
function owns(real: Real, actor: Actor, endpoint: Endpoint): boolean {
  const a = ownerIdentity(real, actor);
  const b = ownerIdentity(real, endpoint.owner);
  return a.id === b.id && a.kind === b.kind;
}
const ownerKindOf = (actor: Actor) =>
  actor === 'bot' || actor === 'twin'
    ? 'integration'
    : actor === 'admin' || actor === 'Aadmin'
      ? 'admin'
      : 'user';
const liveOf = (model: Model, real: Real, actor: Actor) =>
  model.endpoints.filter((endpoint) => !endpoint.deleted && owns(real, actor, endpoint));
const isClosed = (model: Model, actor: Actor) =>
  actor === 'Aadmin' ? model.users.A.deleted : (actor === 'A' || actor === 'B') && model.users[actor].deleted;
/** The strict limit counts per identity (tenant, kind, id): A and Aadmin share one budget. */
const rateIdentity = (actor: Actor): string => (actor === 'Aadmin' ? 'A' : actor);

function describeResponse(response: ApiResponse): string {
  return `${response.status} ${response.text.slice(0, 400)}`;
}

/** Every answer: never a 5xx; a problem for every error, its code's status. */
function checkAnswer(what: string, response: ApiResponse): void {
  expect(response.status, `${what}: ${describeResponse(response)}`).toBeLessThan(500);
  if (response.status >= 400) {
    expect(response.headers.get('content-type'), what).toContain('application/problem+json');
    const problem = response.body as { status: number; code: string };
    expect(problem.status, what).toBe(response.status);
    const expected = problemStatuses[problem.code as keyof typeof problemStatuses];
    if (problem.code !== 'CLIENT_ERROR')
      expect(expected, `${what}: code ${problem.code}`).toBe(response.status);
  }
}

function expectProblem(what: string, response: ApiResponse, status: number, code: string): void {
  checkAnswer(what, response);
  expect(
    `${response.status} ${(response.body as { code?: string }).code}`,
    `${what}: ${describeResponse(response)}`,
  ).toBe(`${status} ${code}`);
}

// ---------------------------------------------------------------------------------------------------------
// Stored state checks.

const ignoredKey = (pk: string, sk: string) =>
  pk.startsWith('RL#') ||
  pk.startsWith('RATE') ||
  pk.startsWith('CB#') ||
  // The workers' own records, written asynchronously for messages of earlier commands.
  pk.startsWith('IDEM#email-worker#') ||
  // The signed service call's nonce (replay protection): the bookings function asked users, by design.
  pk.startsWith('NONCE#') ||
  pk.startsWith('IDEM#webhook-worker#') ||
  sk.startsWith('DELIVERY#') ||
  /^rl/i.test(pk);

async function keysOf(tableName: string): Promise<Set<string>> {
  const keys = new Set<string>();
  let startKey: Record<string, unknown> | undefined;
  for (let page = 0; page < 200; page += 1) {
    const result = await documents.send(
      new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey, ProjectionExpression: 'pk, sk' }),
    );
    for (const item of result.Items ?? []) {
      const pk = String(item.pk);
      const sk = String(item.sk);
      if (!ignoredKey(pk, sk)) keys.add(`${tableName}|${pk}|${sk}`);
    }
    startKey = result.LastEvaluatedKey;
    if (!startKey) break;
  }
  return keys;
}

async function snapshot(): Promise<Set<string>> {
  const { app, toolkit } = api.runtime().tableNames;
  const [a, b] = await Promise.all([keysOf(app), keysOf(toolkit)]);
  return new Set([...a, ...b]);
}

/** Runs a request the model expects refused, and checks it added no stored item. */
async function refused(what: string, send: () => Promise<ApiResponse>): Promise<ApiResponse> {
  const before = await snapshot();
  const response = await send();
  if (response.status >= 400) {
    const after = await snapshot();
    const added = [...after].filter((key) => !before.has(key));
    expect(added, `${what} (${response.status}) left stored items behind`).toEqual([]);
  }
  return response;
}

const eventTypes = ['booking.created', 'booking.cancelled', 'user.registered'] as const;

/** The toolkit items under `keys`, by `pk|sk`, read in batches of 100 at once. */
async function itemsByKey(keys: readonly { pk: string; sk: string }[]) {
  const { toolkit } = api.runtime().tableNames;
  const batches = [];
  for (let index = 0; index < keys.length; index += 100) {
    batches.push(
      documents.send(
        new BatchGetCommand({ RequestItems: { [toolkit]: { Keys: keys.slice(index, index + 100) } } }),
      ),
    );
  }
  const items = (await Promise.all(batches)).flatMap((result) => result.Responses?.[toolkit] ?? []);
  return new Map(items.map((item) => [`${item.pk}|${item.sk}`, item]));
}

/** The tenant's subscriptions, by `eventType|endpointId`. */
async function subscriptionsByEndpoint() {
  const { toolkit } = api.runtime().tableNames;
  const results = await Promise.all(
    eventTypes.map((eventType) =>
      documents.send(
        new QueryCommand({
          TableName: toolkit,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': `WH#SUB#default#${eventType}` },
        }),
      ),
    ),
  );
  return new Map(
    results.flatMap((result, index) =>
      (result.Items ?? []).map((item) => [`${eventTypes[index]}|${item.endpointId}`, item] as const),
    ),
  );
}

async function checkStore(model: Model, real: Real): Promise<void> {
  const endpointKeys = model.endpoints.flatMap((endpoint) => [
    { pk: `WH#${endpoint.id}`, sk: 'ENDPOINT' },
    { pk: `WH#${endpoint.id}`, sk: 'TOMBSTONE' },
  ]);
  const owners = actors.map((actor) => ({ actor, ...ownerIdentity(real, actor) }));
  const countKeys = owners.map(({ id, kind }) => ({
    pk: `WH#OWNER#default#${id}`,
    sk: kind === 'integration' ? 'INTEGRATION_ENDPOINT_COUNT' : 'ENDPOINT_COUNT',
  }));
  const uniqueCountKeys = [...new Map(countKeys.map((key) => [`${key.pk}|${key.sk}`, key])).values()];
  const [found, subscriptions, counts] = await Promise.all([
    itemsByKey(endpointKeys),
    subscriptionsByEndpoint(),
    itemsByKey(uniqueCountKeys),
  ]);
  // Endpoint items, tombstones and subscriptions.
  for (const endpoint of model.endpoints) {
    const item = found.get(`WH#${endpoint.id}|ENDPOINT`);
    const tombstone = found.get(`WH#${endpoint.id}|TOMBSTONE`);
    expect(Boolean(item), `endpoint item of ${endpoint.id} (deleted: ${endpoint.deleted})`).toBe(
      !endpoint.deleted,
    );
    expect(Boolean(tombstone), `tombstone of ${endpoint.id} (deleted: ${endpoint.deleted})`).toBe(
      endpoint.deleted,
    );
    const settled = endpoint.status === 'enabled' || endpoint.status === 'disabled';
    if (item && settled) expect(item.status, `status of ${endpoint.id}`).toBe(endpoint.status);
    for (const eventType of eventTypes) {
      const subscription = subscriptions.get(`${eventType}|${endpoint.id}`);
      const expected = !endpoint.deleted && endpoint.eventTypes.includes(eventType);
      expect(
        Boolean(subscription),
        `subscription ${eventType} of ${endpoint.id} (deleted: ${endpoint.deleted})`,
      ).toBe(expected);
      if (subscription && settled) {
        expect(subscription.status, `subscription status ${eventType} of ${endpoint.id}`).toBe(
          endpoint.status,
        );
      }
    }
  }
  // Per-owner counts.
  for (const [index, owner] of owners.entries()) {
    const key = countKeys[index] as { pk: string; sk: string };
    const item = counts.get(`${key.pk}|${key.sk}`);
    const live = liveOf(model, real, owner.actor).length;
    const closed = isClosed(model, owner.actor);
    if (live === 0 && !closed) expect(item, `count item of ${owner.actor} with no endpoint`).toBeUndefined();
    else {
      expect(item, `count item of ${owner.actor}`).toBeDefined();
      expect(Number(item?.count ?? 0), `count of ${owner.actor}`).toBe(live);
      expect(Boolean(item?.closedAt), `closedAt of ${owner.actor}`).toBe(closed);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Commands.

type Command = fc.AsyncCommand<Model, Real>;
const always = () => true;

/** An endpoint of the model (the actor's own two times in three, deleted ones included), or an unknown id. */
function pickEndpoint(model: Model, pick: number, actor?: Actor): { id: string; endpoint?: Endpoint } {
  if (model.endpoints.length === 0 || pick % 7 === 6) return { id: `ep_${randomUUID().replaceAll('-', '')}` };
  const own = actor ? model.endpoints.filter((endpoint) => endpoint.owner === actor) : [];
  const from = own.length > 0 && pick % 3 !== 0 ? own : model.endpoints;
  const endpoint = from[pick % from.length] as Endpoint;
  return { id: endpoint.id, endpoint };
}
function pickBooking(model: Model, pick: number, actor?: Actor): { id: string; booking?: Booking } {
  if (model.bookings.length === 0 || pick % 7 === 6) return { id: `bk-${randomUUID()}` };
  const own = model.bookings.filter((booking) => booking.userKey === actor);
  const from = own.length > 0 && pick % 3 !== 0 ? own : model.bookings;
  const booking = from[pick % from.length] as Booking;
  return { id: booking.id, booking };
}

function checkEndpointView(
  what: string,
  view: Record<string, unknown>,
  endpoint: Endpoint,
  real: Real,
  admin = false,
) {
  expect(view.secret, `${what}: a secret in a read`).toBeUndefined();
  expect(view.id, what).toBe(endpoint.id);
  expect(view.url, what).toBe(endpoint.url);
  expect([...(view.eventTypes as string[])].sort(), what).toEqual([...new Set(endpoint.eventTypes)].sort());
  expect(view.ownerKind, what).toBe(ownerKindOf(endpoint.owner));
  if (admin) expect(view.ownerId, what).toBe(real.ids[endpoint.owner]);
  if (endpoint.status === 'enabled' || endpoint.status === 'disabled')
    expect(view.status, what).toBe(endpoint.status);
  if (view.status === 'disabled') expect(view.disabledReason, what).toBe('gone');
  else expect(view.disabledReason, what).toBeUndefined();
  if (endpoint.rotation) {
    expect(view.secretRotatedAt, what).toBe(endpoint.rotation.secretRotatedAt);
    expect(view.previousSecretExpiresAt, what).toBe(endpoint.rotation.previousSecretExpiresAt);
  } else expect(view.secretRotatedAt, what).toBeUndefined();
}

/** An event happened: which live endpoints must / may receive it, and gone endpoints start disabling. */
function recordEvent(model: Model, real: Real, type: string, subject: string, userId: string | undefined) {
  const mustReach: string[] = [];
  const mayReach: string[] = [];
  for (const endpoint of model.endpoints) {
    if (endpoint.deleted || !endpoint.eventTypes.includes(type)) continue;
    const kind = ownerKindOf(endpoint.owner);
    const visible = kind !== 'user' || (userId !== undefined && real.ids[endpoint.owner] === userId);
    if (!visible) continue;
    if (endpoint.gone) {
      if (endpoint.status !== 'disabled') {
        mayReach.push(endpoint.id);
        endpoint.status = 'willDisable';
      }
    } else if (endpoint.status === 'enabled') {
      mustReach.push(endpoint.id);
      mayReach.push(endpoint.id);
    }
  }
  model.events.push({ type, subject, userId, mustReach, mayReach });
}

/** The actor a command names, or for `owner` the owner of the endpoint `pick` names (any, deleted included). */
function actorFor(model: Model, requested: Actor | 'owner', pick: number): Actor {
  if (requested !== 'owner') return requested;
  if (model.endpoints.length === 0) return 'A';
  return (model.endpoints[pick % model.endpoints.length] as Endpoint).owner;
}
function pickFor(
  model: Model,
  requested: Actor | 'owner',
  pick: number,
): { id: string; endpoint?: Endpoint } {
  if (requested !== 'owner' || model.endpoints.length === 0)
    return pickEndpoint(model, pick, requested === 'owner' ? undefined : requested);
  const endpoint = model.endpoints[pick % model.endpoints.length] as Endpoint;
  return { id: endpoint.id, endpoint };
}

/**
 * What a registration sent with a key this person used before is refused with, if anything (the key's
 * record lasts the whole run): `roleChanged` when the person used it under another role.
 */
function retryRefusal(
  model: Model,
  actor: Actor,
  keyMode: RegisterWebhook['keyMode'],
  endpoint: Endpoint,
  roleChanged: boolean,
): [number, string] | undefined {
  // Another request with the key is refused before anything is read.
  if (keyMode === 'other') return [422, 'IDEMPOTENCY_KEY_REUSED'];
  // A person whose user was deleted gets the 403 no key helps with; anyone else the tombstone's 409.
  if (endpoint.deleted) return isClosed(model, actor) ? [403, 'FORBIDDEN'] : [409, 'CONFLICT'];
  // Never the endpoint that fan-out chose events for under the old role.
  if (roleChanged) return [422, 'IDEMPOTENCY_KEY_REUSED'];
  // The registration's secret no longer signs first, and the rotation's is shown by the rotation alone.
  if (endpoint.rotationCount > 0) return [409, 'CONFLICT'];
  return undefined;
}

class RegisterWebhook implements Command {
  constructor(
    readonly actor: Actor,
    readonly types: number,
    readonly gone: boolean,
    readonly keyMode: 'none' | 'new' | 'same' | 'other' | 'foreign',
    readonly pick: number,
  ) {}
  check = (model: Model) => (model.regAttempts[rateIdentity(this.actor)] ?? 0) < 9;
  async run(model: Model, real: Real) {
    model.regAttempts[rateIdentity(this.actor)] = (model.regAttempts[rateIdentity(this.actor)] ?? 0) + 1;
    const mine = model.regKeys.filter((entry) => entry.actor === this.actor);
    const failedMine = model.failedKeys.filter((entry) => entry.actor === this.actor);
    let key: string | undefined;
    let body: { url: string; eventTypes: string[] };
    let record: (typeof model.regKeys)[number] | undefined;
    let roleChanged = false;
    const freshBody = () => ({
      url: `${receiverBase}${this.gone ? 'gone' : 'ok'}-${randomUUID()}`,
      eventTypes: [...(eventTypeSets[this.types % eventTypeSets.length] as readonly string[])],
    });
    // Another caller's key, and not one this caller used too (a foreign request may have reused it).
    const foreign = model.regKeys.filter(
      (entry) => entry.actor !== this.actor && !mine.some((own) => own.key === entry.key),
    );
    if (this.keyMode === 'foreign' && foreign.length > 0) {
      // Another caller's key with its very request: a request of this caller's own, never that one's replay.
      const theirs = foreign[this.pick % foreign.length] as (typeof model.regKeys)[number];
      key = theirs.key;
      body = { url: theirs.request.url, eventTypes: [...theirs.request.eventTypes] };
      // The same person under another role (A and Aadmin) may hold a record of this key: the key's record
      // is scoped to the person, not the role, so it answers this request, which the role makes another.
      const samePerson = model.regKeys.find(
        (entry) => entry.key === theirs.key && rateIdentity(entry.actor) === rateIdentity(this.actor),
      );
      if (samePerson) {
        record = samePerson;
        body = { url: samePerson.request.url, eventTypes: [...samePerson.request.eventTypes] };
        roleChanged = true;
      }
    } else if ((this.keyMode === 'same' || this.keyMode === 'other') && mine.length > 0) {
      record = mine[this.pick % mine.length];
      key = record?.key;
      body =
        this.keyMode === 'same'
          ? {
              url: record?.request.url as string,
              eventTypes: [...(record?.request.eventTypes ?? [])].reverse(),
            }
          : freshBody();
    } else if (this.keyMode === 'same' && failedMine.length > 0) {
      key = failedMine[this.pick % failedMine.length]?.key;
      body = freshBody();
    } else {
      key = this.keyMode === 'none' ? undefined : randomUUID();
      body = freshBody();
    }
    const what = `${this.toString()} key=${key ?? '-'}`;
    const send = () =>
      api.request('POST', '/webhooks', {
        token: real.tokens[this.actor],
        body,
        headers: key ? { 'idempotency-key': key } : {},
      });
    if (record) {
      const endpoint = model.endpoints.find((candidate) => candidate.id === record?.endpointId) as Endpoint;
      const refusal = retryRefusal(model, this.actor, this.keyMode, endpoint, roleChanged);
      if (refusal) {
        expectProblem(what, await refused(what, send), ...refusal);
        return;
      }
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(201);
      expect(response.headers.get('idempotent-replayed'), what).toBe('true');
      expect(response.body, `${what}: the replay's body, secret included`).toEqual(record.body);
      return;
    }
    // No record: a new registration.
    const live = liveOf(model, real, this.actor).length;
    const needsUsersRead = this.actor === 'twin' && body.eventTypes.includes('user.registered');
    let expected: [number, string] | undefined;
    if (needsUsersRead) expected = [403, 'INSUFFICIENT_SCOPE'];
    else if (isClosed(model, this.actor)) expected = [403, 'FORBIDDEN'];
    else if (live >= cap) expected = [409, 'CONFLICT'];
    if (expected) {
      const response = await refused(what, send);
      expectProblem(what, response, expected[0], expected[1]);
      if (key) model.failedKeys.push({ actor: this.actor, key });
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(201);
    const created = response.body as Record<string, unknown>;
    expect(
      model.endpoints.some((endpoint) => endpoint.id === created.id),
      `${what}: a new registration answered an existing endpoint ${created.id}`,
    ).toBe(false);
    expect(response.headers.get('location'), what).toBe(`/webhooks/${created.id}`);
    expect(response.headers.get('idempotent-replayed'), what).toBeNull();
    expect(String(created.secret), what).toMatch(/^whsec_/);
    expect(created.status, what).toBe('enabled');
    expect(created.url, what).toBe(body.url);
    model.seq += 1;
    const endpoint: Endpoint = {
      id: String(created.id),
      owner: this.actor,
      url: body.url,
      gone: body.url.includes('/gone'),
      eventTypes: body.eventTypes,
      status: 'enabled',
      deleted: false,
      secret: String(created.secret),
      firstBody: created,
      rotationCount: 0,
      seq: model.seq,
    };
    model.endpoints.push(endpoint);
    if (key) {
      model.regKeys.push({
        actor: this.actor,
        key,
        request: { url: body.url, eventTypes: body.eventTypes },
        endpointId: endpoint.id,
        body: created,
      });
    }
  }
  toString = () =>
    `RegisterWebhook(${this.actor}, ${this.types}, ${this.gone ? 'gone' : 'ok'}, ${this.keyMode}, ${this.pick})`;
}

class ListWebhooks implements Command {
  constructor(
    readonly actor: Actor,
    readonly pageSize = 100,
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const items: Record<string, unknown>[] = [];
    let cursor: string | undefined;
    let nextCursor: string | undefined;
    for (let page = 0; page < 30; page += 1) {
      const response = await api.request(
        'GET',
        `/webhooks?limit=${this.pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        { token: real.tokens[this.actor] },
      );
      checkAnswer(this.toString(), response);
      expect(response.status).toBe(200);
      const body = response.body as { items: Record<string, unknown>[]; nextCursor?: string };
      items.push(...body.items);
      if (this.pageSize === 100) {
        nextCursor = body.nextCursor;
        break;
      }
      cursor = body.nextCursor;
      if (!cursor) break;
    }
    const expected = liveOf(model, real, this.actor).sort((a, b) => b.seq - a.seq);
    expect(
      items.map((item) => item.id),
      `${this.toString()}: the caller's endpoints, newest first`,
    ).toEqual(expected.map((endpoint) => endpoint.id));
    expect(nextCursor, this.toString()).toBeUndefined();
    for (const [index, item] of items.entries()) {
      checkEndpointView(this.toString(), item, expected[index] as Endpoint, real);
    }
  }
  toString = () => `ListWebhooks(${this.actor}, ${this.pageSize})`;
}

class GetWebhook implements Command {
  constructor(
    readonly requested: Actor | 'owner',
    readonly pick: number,
    readonly deliveries: boolean,
    readonly head = false,
  ) {}
  check = always;
  actor: Actor = 'A';
  async run(model: Model, real: Real) {
    this.actor = actorFor(model, this.requested, this.pick);
    const { id, endpoint } = pickFor(model, this.requested, this.pick);
    const what = `${this.toString()} ${id}`;
    const response = await api.request(
      this.head ? 'HEAD' : 'GET',
      `/webhooks/${id}${this.deliveries ? '/deliveries' : ''}`,
      {
        token: real.tokens[this.actor],
      },
    );
    if (this.head) {
      // HEAD: the GET's status and headers, no body.
      const expected = endpoint && !endpoint.deleted && owns(real, this.actor, endpoint) ? 200 : 404;
      expect(`${response.status} ${response.text}`, what).toBe(`${expected} `);
      return;
    }
    if (endpoint && !endpoint.deleted && owns(real, this.actor, endpoint)) {
      checkAnswer(what, response);
      expect(response.status, what).toBe(200);
      if (!this.deliveries) checkEndpointView(what, response.body as Record<string, unknown>, endpoint, real);
    } else expectProblem(what, response, 404, 'NOT_FOUND');
  }
  toString = () =>
    `GetWebhook(${this.requested}->${this.actor}, ${this.pick}${this.deliveries ? ', deliveries' : ''}${this.head ? ', HEAD' : ''})`;
}

class AdminWebhook implements Command {
  constructor(
    readonly op: 'get' | 'deliveries' | 'enable' | 'delete',
    readonly pick: number,
    /** Who calls: the admin, A made admin, or one the route refuses (A, bot, an admin of another tenant). */
    readonly caller: 'admin' | 'Aadmin' | 'A' | 'bot' | 'otherTenant' = 'admin',
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const { id, endpoint } = pickEndpoint(model, this.pick);
    const what = `${this.toString()} ${id}`;
    const token = this.caller === 'otherTenant' ? real.otherTenantAdmin : real.tokens[this.caller];
    if (this.caller === 'A' || this.caller === 'bot' || this.caller === 'otherTenant') {
      const send = () =>
        this.op === 'get'
          ? api.request('GET', `/admin/webhooks/${id}`, { token })
          : this.op === 'deliveries'
            ? api.request('GET', `/admin/webhooks/${id}/deliveries`, { token })
            : this.op === 'enable'
              ? api.request('POST', `/admin/webhooks/${id}/enable`, { token })
              : api.request('DELETE', `/admin/webhooks/${id}`, { token });
      expectProblem(what, await refused(what, send), 403, 'FORBIDDEN');
      return;
    }
    const send = () =>
      this.op === 'get'
        ? api.request('GET', `/admin/webhooks/${id}`, { token })
        : this.op === 'deliveries'
          ? api.request('GET', `/admin/webhooks/${id}/deliveries`, { token })
          : this.op === 'enable'
            ? api.request('POST', `/admin/webhooks/${id}/enable`, { token })
            : api.request('DELETE', `/admin/webhooks/${id}`, { token });
    if (!endpoint || endpoint.deleted) {
      expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(this.op === 'delete' ? 204 : 200);
    if (this.op === 'get')
      checkEndpointView(what, response.body as Record<string, unknown>, endpoint, real, true);
    if (this.op === 'enable') enableInModel(what, endpoint, response, real);
    if (this.op === 'delete') endpoint.deleted = true;
  }
  toString = () => `AdminWebhook(${this.caller}, ${this.op}, ${this.pick})`;
}

function enableInModel(what: string, endpoint: Endpoint, response: ApiResponse, real: Real) {
  const view = response.body as Record<string, unknown>;
  expect(view.status, what).toBe('enabled');
  endpoint.status =
    endpoint.status === 'enabled' || endpoint.status === 'disabled'
      ? 'enabled'
      : 'maybe'; /* a 410 still queued may disable it again */
  checkEndpointView(what, view, endpoint, real);
}

class EnableWebhook implements Command {
  constructor(
    readonly requested: Actor | 'owner',
    readonly pick: number,
  ) {}
  check = always;
  actor: Actor = 'A';
  async run(model: Model, real: Real) {
    this.actor = actorFor(model, this.requested, this.pick);
    const { id, endpoint } = pickFor(model, this.requested, this.pick);
    const what = `${this.toString()} ${id}`;
    const send = () => api.request('POST', `/webhooks/${id}/enable`, { token: real.tokens[this.actor] });
    if (endpoint && !endpoint.deleted && owns(real, this.actor, endpoint)) {
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
      enableInModel(what, endpoint, response, real);
    } else expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
  }
  toString = () => `EnableWebhook(${this.requested}->${this.actor}, ${this.pick})`;
}

class DeleteWebhook implements Command {
  constructor(
    readonly requested: Actor | 'owner',
    readonly pick: number,
  ) {}
  check = always;
  actor: Actor = 'A';
  async run(model: Model, real: Real) {
    this.actor = actorFor(model, this.requested, this.pick);
    const { id, endpoint } = pickFor(model, this.requested, this.pick);
    const what = `${this.toString()} ${id}`;
    const send = () => api.request('DELETE', `/webhooks/${id}`, { token: real.tokens[this.actor] });
    if (endpoint && !endpoint.deleted && owns(real, this.actor, endpoint)) {
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(204);
      endpoint.deleted = true;
    } else expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
  }
  toString = () => `DeleteWebhook(${this.requested}->${this.actor}, ${this.pick})`;
}

class RotateSecret implements Command {
  constructor(
    readonly requested: Actor | 'owner',
    readonly pick: number,
    readonly keyMode: 'none' | 'new' | 'same' | 'otherPath',
    readonly keyPick: number,
  ) {}
  check = always;
  actor: Actor = 'A';
  async run(model: Model, real: Real) {
    this.actor = actorFor(model, this.requested, this.pick);
    if (this.requested === 'owner' && this.keyMode === 'same' && model.rotKeys.length > 0) {
      this.actor = (
        model.rotKeys[this.keyPick % model.rotKeys.length] as (typeof model.rotKeys)[number]
      ).actor;
    }
    const mine = model.rotKeys.filter((entry) => rateIdentity(entry.actor) === rateIdentity(this.actor));
    let record: (typeof model.rotKeys)[number] | undefined;
    let id: string;
    let endpoint: Endpoint | undefined;
    let key: string | undefined;
    if (this.keyMode === 'same' && mine.length > 0) {
      record = mine[this.keyPick % mine.length] as (typeof model.rotKeys)[number];
      id = record.endpointId;
      endpoint = model.endpoints.find((candidate) => candidate.id === id);
      key = record.key;
    } else {
      ({ id, endpoint } = pickFor(model, this.requested, this.pick));
      if (this.keyMode === 'otherPath' && mine.length > 0) {
        const other = mine.find((entry) => entry.endpointId !== id);
        key = other?.key ?? randomUUID();
      } else key = this.keyMode === 'none' ? undefined : randomUUID();
    }
    const what = `${this.toString()} ${id} key=${key ?? '-'}${record ? ' (replay)' : ''}`;
    const send = () =>
      api.request('POST', `/webhooks/${id}/secret`, {
        token: real.tokens[this.actor],
        headers: key ? { 'idempotency-key': key } : {},
      });
    const mayRotate = endpoint && !endpoint.deleted && owns(real, this.actor, endpoint);
    if (!mayRotate || !endpoint) {
      expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
      return;
    }
    if (record) {
      if (record.rotationNo !== endpoint.rotationCount) {
        expectProblem(what, await refused(what, send), 409, 'CONFLICT');
        return;
      }
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
      expect(response.headers.get('idempotent-replayed'), what).toBe('true');
      expect(response.body, `${what}: the replay's body`).toEqual(record.body);
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
    const rotated = response.body as Record<string, unknown>;
    expect(String(rotated.secret), what).toMatch(/^whsec_/);
    expect(rotated.secret, `${what}: a new secret`).not.toBe(endpoint.secret);
    const rotatedAt = Date.parse(String(rotated.secretRotatedAt));
    expect(Date.parse(String(rotated.previousSecretExpiresAt)) - rotatedAt, what).toBe(24 * 3600_000);
    endpoint.secret = String(rotated.secret);
    endpoint.rotationCount += 1;
    endpoint.rotation = {
      secretRotatedAt: String(rotated.secretRotatedAt),
      previousSecretExpiresAt: String(rotated.previousSecretExpiresAt),
    };
    checkEndpointView(what, { ...rotated, secret: undefined }, endpoint, real);
    if (key) {
      model.rotKeys.push({
        actor: this.actor,
        key,
        endpointId: id,
        rotationNo: endpoint.rotationCount,
        body: rotated,
      });
    }
  }
  toString = () =>
    `RotateSecret(${this.requested}->${this.actor}, ${this.pick}, ${this.keyMode}, ${this.keyPick})`;
}

// Bookings ------------------------------------------------------------------------------------------------

class CreateBooking implements Command {
  constructor(
    readonly actor: Actor,
    readonly forUser: 'A' | 'B',
    readonly room: number,
    readonly slot: number,
    readonly hours: number,
    readonly keyMode: 'none' | 'new' | 'same' | 'other' | 'foreign',
    readonly pick: number,
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    // A key is scoped to the caller's identity (kind and id), not its roles: A and Aadmin share keys.
    const mine = model.bookKeys.filter((entry) => rateIdentity(entry.actor) === rateIdentity(this.actor));
    let key: string | undefined;
    let record: (typeof model.bookKeys)[number] | undefined;
    let body: Record<string, string> = {
      roomId: `m-${model.rid}-r${this.room}`,
      userId: model.users[this.forUser].id,
      start: day(8 + this.slot),
      end: day(8 + this.slot + this.hours),
    };
    const foreign = model.bookKeys.filter(
      (entry) =>
        rateIdentity(entry.actor) !== rateIdentity(this.actor) && !mine.some((own) => own.key === entry.key),
    );
    if (this.keyMode === 'foreign' && foreign.length > 0) {
      const theirs = foreign[this.pick % foreign.length] as (typeof model.bookKeys)[number];
      key = theirs.key;
      body = { ...theirs.request };
    } else if ((this.keyMode === 'same' || this.keyMode === 'other') && mine.length > 0) {
      record = mine[this.pick % mine.length];
      key = record?.key;
      if (this.keyMode === 'same') {
        // The same request, its instants written at another offset.
        const request = record?.request as Record<string, string>;
        body = {
          ...request,
          start: new Date(request.start as string).toISOString().replace('.000Z', '+00:00'),
          end: request.end as string,
        };
      } else if (
        body.roomId === record?.request.roomId &&
        body.start === record?.request.start &&
        body.end === record?.request.end &&
        body.userId === record?.request.userId
      ) {
        body = { ...body, roomId: `${body.roomId}x` };
      }
    } else key = this.keyMode === 'none' ? undefined : randomUUID();
    const what = `${this.toString()} key=${key ?? '-'} ${JSON.stringify(body)}`;
    const send = () =>
      api.request('POST', '/bookings', {
        token: real.tokens[this.actor],
        body,
        headers: key ? { 'idempotency-key': key } : {},
      });
    if (record) {
      if (this.keyMode === 'other') {
        expectProblem(what, await refused(what, send), 422, 'IDEMPOTENCY_KEY_REUSED');
        return;
      }
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(201);
      expect(response.headers.get('idempotent-replayed'), what).toBe('true');
      expect(response.body, `${what}: replay body`).toEqual(record.body);
      return;
    }
    const startMs = Date.parse(body.start as string);
    const endMs = Date.parse(body.end as string);
    let expected: [number, string] | undefined;
    const human = this.actor === 'A' || this.actor === 'B';
    const forUser: 'A' | 'B' = body.userId === model.users.A.id ? 'A' : 'B';
    if (this.actor === 'twin') expected = [403, 'INSUFFICIENT_SCOPE'];
    else if (human && this.actor !== forUser) expected = [403, 'FORBIDDEN'];
    else if (model.users[forUser].deleted) expected = [400, 'VALIDATION_FAILED'];
    else if (
      model.bookings.some(
        (booking) =>
          booking.status === 'confirmed' &&
          booking.roomId === body.roomId &&
          booking.startMs < endMs &&
          startMs < booking.endMs,
      )
    ) {
      expected = [409, 'CONFLICT'];
    }
    if (expected) {
      expectProblem(what, await refused(what, send), expected[0], expected[1]);
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(201);
    const created = response.body as Record<string, unknown>;
    expect(created, what).toMatchObject({ ...body, status: 'confirmed' });
    expect(response.headers.get('location'), what).toBe(`/bookings/${created.id}`);
    expect(
      model.bookings.some((booking) => booking.id === created.id),
      `${what}: a new booking answered an existing one ${created.id}`,
    ).toBe(false);
    model.bookings.push({
      id: String(created.id),
      userKey: forUser,
      userId: body.userId as string,
      roomId: body.roomId as string,
      startMs,
      endMs,
      status: 'confirmed',
      body: created,
    });
    recordEvent(model, real, 'booking.created', String(created.id), body.userId);
    if (key)
      model.bookKeys.push({
        actor: this.actor,
        key,
        request: body,
        bookingId: String(created.id),
        body: created,
      });
  }
  toString = () =>
    `CreateBooking(${this.actor}, for ${this.forUser}, r${this.room}, ${8 + this.slot}h+${this.hours}, ${this.keyMode}, ${this.pick})`;
}

class ListBookings implements Command {
  constructor(
    readonly actor: Actor,
    readonly filter: 'none' | 'A' | 'B',
    readonly fromHour?: number,
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const human = this.actor === 'A' || this.actor === 'B';
    if (!human && this.filter === 'none') return; // everybody's: the whole table, not this run's
    const userId = this.filter === 'none' ? undefined : model.users[this.filter].id;
    const what = this.toString();
    const from = this.fromHour === undefined ? undefined : day(8 + this.fromHour);
    const send = () =>
      api.request(
        'GET',
        `/bookings?limit=100${userId ? `&userId=${userId}` : ''}${from ? `&from=${encodeURIComponent(from)}` : ''}`,
        { token: real.tokens[this.actor] },
      );
    if (!(this.actor === 'A' || this.actor === 'B') || !userId || this.filter === this.actor) {
      const response = await send();
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
      const whose = userId ?? model.users[this.actor as 'A' | 'B'].id;
      const expected = model.bookings.filter(
        (booking) => booking.userId === whose && (from === undefined || booking.startMs >= Date.parse(from)),
      );
      const items = (response.body as { items: Record<string, unknown>[] }).items;
      expect(items.map((item) => `${item.id}:${item.status}`).sort(), `${what}: the user's bookings`).toEqual(
        expected.map((booking) => `${booking.id}:${booking.status}`).sort(),
      );
      const starts = items.map((item) => Date.parse(String(item.start)));
      expect(starts, `${what}: by start time`).toEqual([...starts].sort((a, b) => a - b));
    } else {
      expectProblem(what, await refused(what, send), 403, 'FORBIDDEN');
    }
  }
  toString = () => `ListBookings(${this.actor}, ${this.filter}, from ${this.fromHour ?? '-'})`;
}

class GetBooking implements Command {
  constructor(
    readonly actor: Actor,
    readonly pick: number,
    readonly head = false,
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const { id, booking } = pickBooking(model, this.pick, this.actor);
    const what = `${this.toString()} ${id}`;
    const response = await api.request(this.head ? 'HEAD' : 'GET', `/bookings/${id}`, {
      token: real.tokens[this.actor],
    });
    const human = this.actor === 'A' || this.actor === 'B';
    if (this.head) {
      const expected = booking && (!human || booking.userKey === this.actor) ? 200 : 404;
      expect(`${response.status} ${response.text}`, what).toBe(`${expected} `);
      return;
    }
    if (booking && (!human || booking.userKey === this.actor)) {
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
      expect(response.body, what).toMatchObject({ id, status: booking.status, userId: booking.userId });
    } else expectProblem(what, response, 404, 'NOT_FOUND');
  }
  toString = () => `GetBooking(${this.actor}, ${this.pick}${this.head ? ', HEAD' : ''})`;
}

class CancelBooking implements Command {
  constructor(
    readonly actor: Actor,
    readonly pick: number,
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const { id, booking } = pickBooking(model, this.pick, this.actor);
    const what = `${this.toString()} ${id}`;
    const send = () => api.request('DELETE', `/bookings/${id}`, { token: real.tokens[this.actor] });
    if (this.actor === 'bot' || this.actor === 'twin') {
      expectProblem(what, await refused(what, send), 403, 'FORBIDDEN');
      return;
    }
    const human = this.actor === 'A' || this.actor === 'B';
    if (!booking || (human && booking.userKey !== this.actor)) {
      expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(200);
    const cancelled = response.body as Record<string, unknown>;
    expect(cancelled.status, what).toBe('cancelled');
    if (booking.status === 'cancelled') {
      expect(cancelled, `${what}: a repeat changes nothing`).toEqual(booking.body);
      return;
    }
    booking.status = 'cancelled';
    booking.body = cancelled;
    recordEvent(model, real, 'booking.cancelled', id, booking.userId);
  }
  toString = () => `CancelBooking(${this.actor}, ${this.pick})`;
}

// Users ---------------------------------------------------------------------------------------------------

class AdminDeleteUser implements Command {
  constructor(readonly who: 'A' | 'B') {}
  check = always;
  async run(model: Model, real: Real) {
    const user = model.users[this.who];
    const what = `${this.toString()} ${user.id}`;
    const send = () => api.request('DELETE', `/admin/users/${user.id}`, { token: real.tokens.admin });
    if (user.deleted) {
      expectProblem(what, await refused(what, send), 404, 'NOT_FOUND');
      return;
    }
    const response = await send();
    checkAnswer(what, response);
    expect(response.status, `${what}: ${describeResponse(response)}`).toBe(204);
    user.deleted = true;
    for (const endpoint of model.endpoints) {
      if (endpoint.owner === this.who || (this.who === 'A' && endpoint.owner === 'Aadmin'))
        endpoint.deleted = true;
    }
  }
  toString = () => `AdminDeleteUser(${this.who})`;
}

class ReadUser implements Command {
  constructor(
    readonly actor: 'admin' | 'bot' | 'twin',
    readonly who: 'A' | 'B',
  ) {}
  check = always;
  async run(model: Model, real: Real) {
    const user = model.users[this.who];
    const what = `${this.toString()} ${user.id}`;
    const response = await api.request('GET', `/users/${user.id}`, { token: real.tokens[this.actor] });
    if (this.actor === 'twin') expectProblem(what, response, 403, 'INSUFFICIENT_SCOPE');
    else if (user.deleted) expectProblem(what, response, 404, 'NOT_FOUND');
    else {
      checkAnswer(what, response);
      expect(response.status, what).toBe(200);
      expect((response.body as { id: string }).id, what).toBe(user.id);
    }
  }
  toString = () => `ReadUser(${this.actor}, ${this.who})`;
}

class ListUsers implements Command {
  check = always;
  async run(model: Model, real: Real) {
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < 50; page += 1) {
      const response = await api.request(
        'GET',
        `/admin/users?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        { token: real.tokens.admin },
      );
      checkAnswer('ListUsers', response);
      expect(response.status).toBe(200);
      const body = response.body as { items: { id: string }[]; nextCursor?: string };
      for (const item of body.items) {
        expect(seen.has(item.id), `ListUsers: ${item.id} listed twice`).toBe(false);
        seen.add(item.id);
      }
      cursor = body.nextCursor;
      if (!cursor) break;
    }
    for (const who of ['A', 'B'] as const) {
      expect(seen.has(model.users[who].id), `ListUsers: ${who} (deleted: ${model.users[who].deleted})`).toBe(
        !model.users[who].deleted,
      );
    }
    for (const id of model.extraUsers) expect(seen.has(id), `ListUsers: ${id}`).toBe(true);
  }
  toString = () => 'ListUsers';
}

class RegisterUser implements Command {
  check = (model: Model) => model.extraUsers.length < 3;
  async run(model: Model, real: Real) {
    const response = await api.request('POST', '/users', {
      token: null,
      body: { email: `model-${randomUUID()}@example.com`, name: 'Model User' },
    });
    checkAnswer('RegisterUser', response);
    expect(response.status, describeResponse(response)).toBe(201);
    const id = (response.body as { id: string }).id;
    model.extraUsers.push(id);
    recordEvent(model, real, 'user.registered', id, id);
  }
  toString = () => 'RegisterUser';
}

/**
 * A write with a stale `If-Match`: 412 once authentication and the route's scopes pass, whatever the
 * resource (README "Conditional requests"), and nothing written.
 */
class StaleWrite implements Command {
  constructor(
    readonly actor: Actor,
    readonly op: 'deleteWebhook' | 'rotate' | 'enable' | 'cancel' | 'book' | 'register' | 'adminDeleteUser',
    readonly pick: number,
  ) {}
  check = (model: Model) => this.op !== 'register' || (model.regAttempts[rateIdentity(this.actor)] ?? 0) < 9;
  async run(model: Model, real: Real) {
    const token = real.tokens[this.actor];
    const headers = { 'if-match': '"stale"', 'idempotency-key': randomUUID() };
    const endpointId = pickEndpoint(model, this.pick, this.actor).id;
    const bookingId = pickBooking(model, this.pick, this.actor).id;
    let send: () => Promise<ApiResponse>;
    let refusedFirst: [number, string] | undefined;
    switch (this.op) {
      case 'deleteWebhook':
        send = () => api.request('DELETE', `/webhooks/${endpointId}`, { token, headers });
        break;
      case 'rotate':
        send = () => api.request('POST', `/webhooks/${endpointId}/secret`, { token, headers });
        break;
      case 'enable':
        send = () => api.request('POST', `/webhooks/${endpointId}/enable`, { token, headers });
        break;
      case 'cancel':
        send = () => api.request('DELETE', `/bookings/${bookingId}`, { token, headers });
        if (this.actor === 'bot' || this.actor === 'twin') refusedFirst = [403, 'FORBIDDEN'];
        break;
      case 'book':
        send = () =>
          api.request('POST', '/bookings', {
            token,
            headers,
            body: { roomId: `m-${model.rid}-r0`, userId: model.users.A.id, start: day(8), end: day(9) },
          });
        if (this.actor === 'twin') refusedFirst = [403, 'INSUFFICIENT_SCOPE'];
        break;
      case 'register':
        model.regAttempts[rateIdentity(this.actor)] = (model.regAttempts[rateIdentity(this.actor)] ?? 0) + 1;
        send = () =>
          api.request('POST', '/webhooks', {
            token,
            headers,
            body: { url: `${receiverBase}ok-${randomUUID()}`, eventTypes: ['booking.created'] },
          });
        break;
      default:
        send = () => api.request('DELETE', `/admin/users/${model.users.A.id}`, { token, headers });
        if (this.actor !== 'admin' && this.actor !== 'Aadmin') refusedFirst = [403, 'FORBIDDEN'];
    }
    const what = `${this.toString()}`;
    const response = await refused(what, send);
    if (refusedFirst) {
      checkAnswer(what, response);
      expect(response.status, `${what}: ${describeResponse(response)}`).toBe(refusedFirst[0]);
      return;
    }
    expectProblem(what, response, 412, 'PRECONDITION_FAILED');
  }
  toString = () => `StaleWrite(${this.actor}, ${this.op}, ${this.pick})`;
}

class Settle implements Command {
  check = always;
  async run(model: Model, real: Real) {
    await settle(model, real);
  }
  toString = () => 'Settle';
}

async function settle(model: Model, real: Real) {
  // Every event is queued before the request that made it answers, and a delivery's outcome (its history,
  // a 410's disabling) is stored before its message is deleted: once the queue is empty, all of it is done.
  await drained(api.runtime(), 'bulwark-webhook');
  const missing: string[] = [];
  for (const event of model.events) {
    for (const endpointId of event.mustReach) {
      const endpoint = model.endpoints.find((candidate) => candidate.id === endpointId) as Endpoint;
      if (endpoint.deleted) continue; // deleted after: may or may not have received it
      const got = received.filter(
        (entry) =>
          endpoint.url.endsWith(entry.path) && entry.type === event.type && entry.subject === event.subject,
      );
      const sharing = event.mustReach.filter((other) => {
        const candidate = model.endpoints.find((e) => e.id === other) as Endpoint;
        return candidate.url === endpoint.url && !candidate.deleted;
      }).length;
      if (got.length < sharing) missing.push(`${event.type} ${event.subject} -> ${endpointId}`);
    }
  }
  expect(missing, 'Settle: events an eligible endpoint never received').toEqual([]);
  // Nothing reached an endpoint that was not eligible when the event was made, and nothing twice.
  const runPaths = new Set(model.endpoints.map((endpoint) => new URL(endpoint.url).pathname));
  const counts = new Map<string, number>();
  for (const entry of received) {
    if (!runPaths.has(entry.path)) continue;
    const atPath = model.endpoints.filter((endpoint) => new URL(endpoint.url).pathname === entry.path);
    const event = model.events.find(
      (candidate) => candidate.type === entry.type && candidate.subject === entry.subject,
    );
    const eligible = atPath.filter((endpoint) => event?.mayReach.includes(endpoint.id));
    expect(
      eligible.length,
      `Settle: ${entry.type} ${entry.subject} reached ${entry.path} (${atPath.map((e) => `${e.id}/${e.owner}`).join(', ')}), not eligible`,
    ).toBeGreaterThan(0);
    const key = `${entry.path}|${entry.type}|${entry.subject}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (!atPath[0]?.gone) {
      expect(
        counts.get(key),
        `Settle: ${key} delivered more often than to its eligible endpoints`,
      ).toBeLessThanOrEqual(eligible.length);
    }
  }
  // Each live endpoint's history (the admin's read) lists as delivered exactly what its receiver got.
  for (const endpoint of model.endpoints) {
    if (endpoint.deleted || endpoint.gone) continue;
    if (model.endpoints.some((other) => other !== endpoint && other.url === endpoint.url)) continue;
    const path = new URL(endpoint.url).pathname;
    const got = received.filter((entry) => entry.path === path).map((entry) => entry.webhookId);
    const page = await api.request('GET', `/admin/webhooks/${endpoint.id}/deliveries?limit=100`, {
      token: real.tokens.admin,
    });
    checkAnswer('Settle deliveries', page);
    const items = (page.body as { items: { webhookId: string; status: string }[] }).items;
    const listed = items.filter((item) => item.status === 'delivered').map((item) => item.webhookId);
    expect(listed.sort(), `Settle: delivered history of ${endpoint.id}`).toEqual(got.sort());
  }
  // Gone endpoints that an event went to are disabled (410); uncertain ones take what is stored.
  for (const endpoint of model.endpoints) {
    if (endpoint.deleted || !endpoint.gone) continue;
    if (endpoint.status !== 'willDisable' && endpoint.status !== 'maybe') continue;
    const view = await api.request('GET', `/admin/webhooks/${endpoint.id}`, { token: real.tokens.admin });
    checkAnswer('Settle gone endpoint', view);
    const { status } = view.body as { status: Status };
    if (endpoint.status === 'willDisable') {
      expect(status, `Settle: gone endpoint ${endpoint.id} disabled`).toBe('disabled');
    }
    endpoint.status = status;
  }
}

// ---------------------------------------------------------------------------------------------------------

const actor = fc.constantFrom<Actor>(...actors);
const actorOrOwner = fc.oneof(actor, fc.constant<'owner'>('owner'));
const person = fc.constantFrom<'A' | 'B'>('A', 'B');
const pick = fc.nat(50);
const commands = [
  fc
    .tuple(
      actor,
      fc.nat(4),
      fc.boolean(),
      fc.constantFrom('none', 'new', 'same', 'other', 'same', 'foreign'),
      pick,
    )
    .map(
      ([a, types, gone, keyMode, p]) =>
        new RegisterWebhook(a, types, gone, keyMode as RegisterWebhook['keyMode'], p),
    ),
  fc.tuple(actor, fc.constantFrom(100, 1, 2)).map(([a, size]) => new ListWebhooks(a, size)),
  fc.tuple(actorOrOwner, pick, fc.boolean(), fc.boolean()).map(([a, p, d, h]) => new GetWebhook(a, p, d, h)),
  fc
    .tuple(
      fc.constantFrom('get', 'deliveries', 'enable', 'delete'),
      pick,
      fc.constantFrom('admin', 'admin', 'admin', 'Aadmin', 'A', 'bot', 'otherTenant'),
    )
    .map(([op, p, c]) => new AdminWebhook(op as AdminWebhook['op'], p, c as AdminWebhook['caller'])),
  fc.tuple(actorOrOwner, pick).map(([a, p]) => new EnableWebhook(a, p)),
  fc.tuple(actorOrOwner, pick).map(([a, p]) => new DeleteWebhook(a, p)),
  fc
    .tuple(actorOrOwner, pick, fc.constantFrom('none', 'new', 'same', 'otherPath', 'same'), pick)
    .map(([a, p, k, kp]) => new RotateSecret(a, p, k as RotateSecret['keyMode'], kp)),
  fc
    .tuple(
      actor,
      person,
      fc.nat(1),
      fc.nat(7),
      fc.integer({ min: 1, max: 3 }),
      fc.constantFrom('none', 'new', 'same', 'other', 'same', 'new', 'foreign'),
      pick,
    )
    .map(([a, u, r, s, h, k, p]) => new CreateBooking(a, u, r, s, h, k as CreateBooking['keyMode'], p)),
  fc
    .tuple(actor, fc.constantFrom('none', 'A', 'B'), fc.option(fc.nat(9), { nil: undefined }))
    .map(([a, f, h]) => new ListBookings(a, f as ListBookings['filter'], h)),
  fc.tuple(actor, pick, fc.boolean()).map(([a, p, h]) => new GetBooking(a, p, h)),
  fc.tuple(actor, pick).map(([a, p]) => new CancelBooking(a, p)),
  person.map((who) => new AdminDeleteUser(who)),
  fc
    .tuple(fc.constantFrom<'admin' | 'bot' | 'twin'>('admin', 'bot', 'twin'), person)
    .map(([a, w]) => new ReadUser(a, w)),
  fc.constant(new ListUsers()),
  fc.constant(new RegisterUser()),
  fc.constant(new Settle()),
  fc
    .tuple(
      actor,
      fc.constantFrom('deleteWebhook', 'rotate', 'enable', 'cancel', 'book', 'register', 'adminDeleteUser'),
      pick,
    )
    .map(([a, op, p]) => new StaleWrite(a, op as StaleWrite['op'], p)),
];

// Registrations, rotations and bookings make the state the other commands act on (and a few runs must
// reach a key's retry after a rotation or a role change): drawn three or four times as often.
const weighted = [
  ...commands,
  commands[0], // RegisterWebhook
  commands[0],
  commands[0],
  commands[7], // CreateBooking
  commands[7],
  commands[6], // RotateSecret
  commands[6],
  commands[4], // EnableWebhook
  commands[15], // Settle
] as typeof commands;

/** The run under way, whose endpoints are deleted once it ends. */
let current: { model: Model; real: Real } | undefined;

async function setup(): Promise<{ model: Model; real: Real }> {
  const rid = randomUUID().slice(0, 8);
  const adminToken = await api.token({ sub: `m-admin-${rid}`, roles: ['admin'] });
  const register = async (name: string) => {
    const response = await api.request('POST', '/users', {
      token: null,
      body: { email: `model-${name}-${randomUUID()}@example.com`, name: 'Model User' },
    });
    if (response.status !== 201) throw new Error(`registration: ${response.status} ${response.text}`);
    return (response.body as { id: string }).id;
  };
  const [a, b] = [await register('a'), await register('b')];
  const ids: Record<Actor, string> = {
    A: a,
    B: b,
    admin: `m-admin-${rid}`,
    bot: `m-bot-${rid}`,
    twin: a,
    Aadmin: a,
  };
  const tokens: Record<Actor, string> = {
    A: await api.token({ sub: a }),
    Aadmin: await api.token({ sub: a, roles: ['admin'] }),
    B: await api.token({ sub: b }),
    admin: adminToken,
    bot: await api.token({
      m2m: true,
      clientId: ids.bot,
      scopes: ['webhooks/write', 'webhooks/read', 'bookings/write', 'bookings/read', 'users/read'],
    }),
    twin: await api.token({
      m2m: true,
      clientId: a,
      scopes: ['webhooks/write', 'webhooks/read', 'bookings/read'],
    }),
  };
  const model: Model = {
    rid,
    users: { A: { id: a, deleted: false }, B: { id: b, deleted: false } },
    extraUsers: [],
    endpoints: [],
    bookings: [],
    regKeys: [],
    rotKeys: [],
    bookKeys: [],
    failedKeys: [],
    regAttempts: {},
    events: [],
    seq: 0,
  };
  const otherTenantAdmin = await api.token({
    sub: `m-other-${rid}`,
    roles: ['admin'],
    tenant: 'other-tenant',
  });
  current = { model, real: { tokens, ids, otherTenantAdmin } };
  return current;
}

/**
 * Deletes the endpoints a run left, so tenant-wide ones do not receive the next run's events (which its
 * model would not expect).
 */
async function deleteLeftEndpoints(): Promise<void> {
  if (current === undefined) return;
  const { model, real } = current;
  current = undefined;
  for (const endpoint of model.endpoints.filter((candidate) => !candidate.deleted)) {
    const response = await api.request('DELETE', `/admin/webhooks/${endpoint.id}`, {
      token: real.tokens.admin,
    });
    expect(response.status, `deleting ${endpoint.id} after the run`).toBe(204);
  }
}

/** Wraps each command: the stored state is checked after it. */
function checked(command: Command): Command {
  return {
    check: (model) => command.check(model),
    run: async (model, real) => {
      await command.run(model, real);
      await checkStore(model, real);
    },
    toString: () => command.toString(),
  };
}

describe('the API against a model of what should exist', () => {
  it(
    'keeps users, bookings and webhook endpoints as the model says, across every command',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.commands(
            weighted.map((arbitrary) => arbitrary.map(checked)),
            { maxCommands, size: 'max' },
          ),
          async (cmds) => {
            try {
              await fc.asyncModelRun(setup, cmds);
            } finally {
              await deleteLeftEndpoints();
            }
          },
        ),
        // On a failure, the commands that led to it are reported as they ran: shrinking would replay
        // each shorter sequence against the runtime, for minutes.
        { numRuns, endOnFailure: true },
      );
    },
    timeoutMs,
  );
});
