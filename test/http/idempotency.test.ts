import { createHash, randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit } from '../../middleware/audit/middy.js';
import { markAuthenticationRan } from '../../middleware/auth/context.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate, type OptionalAuthContext } from '../../middleware/auth/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { InvalidOptionsError, NotFoundError, ServiceUnavailableError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency, type StoredAnswer } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import type { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { idempotencyRecordsOf, idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';
import { testPrincipal } from '../helpers/principals.js';
import { throttleFirstDelete, throttlingError } from '../helpers/throttling.js';

const output = captureStdout();
const dynamoDb = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });

interface Booking {
  readonly room: string;
  readonly requestId?: string | number;
}

/** Who sends a request and where: the caller authentication put on the context, and the route and path. */
interface Sender {
  readonly principal?: Principal;
  readonly method?: string;
  readonly path?: string;
  readonly routeKey?: string;
  /** Sends a REST API (v1) event for this resource instead of an HTTP API (v2) one. */
  readonly restApiResource?: string;
  /** The key's header name as sent. @default 'idempotency-key' */
  readonly keyHeader?: string;
  /** Other headers, as sent. */
  readonly headers?: Readonly<Record<string, string>>;
}

function sentBy(body: Booking, key: string | undefined, sender: Sender) {
  const httpApiEvent = httpEvent({
    method: sender.method ?? 'POST',
    path: sender.path ?? '/bookings',
    ...(sender.routeKey === undefined ? {} : { routeKey: sender.routeKey }),
    headers: {
      ...sender.headers,
      ...(key === undefined ? {} : { [sender.keyHeader ?? 'idempotency-key']: key }),
    },
    body: JSON.stringify(body),
  });
  const event =
    sender.restApiResource === undefined
      ? httpApiEvent
      : restApiEventOf(httpApiEvent, sender.restApiResource);
  // The principal authentication puts on the context before idempotency() runs: the property is set, to
  // undefined for an anonymous caller, as authenticate({ optional: true }) sets it. senderAuthenticated
  // marks the request as authentication does.
  const context: Context & { principal?: Principal } = lambdaContext();
  context.principal = sender.principal;
  return { event, context };
}

/** Stands in for authentication before idempotency(): the caller is the one sentBy() put on the context. */
const senderAuthenticated: MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
  before: (request) => markAuthenticationRan(request),
};

/** The same request as a REST API (v1) event: method, resource and path in fields v2 does not have. */
function restApiEventOf(event: APIGatewayProxyEventV2, resource: string): APIGatewayProxyEventV2 {
  const { rawPath, routeKey: _routeKey, requestContext, ...shared } = event;
  return {
    ...shared,
    resource,
    path: rawPath,
    httpMethod: requestContext.http.method,
    requestContext: { requestId: requestContext.requestId, httpMethod: requestContext.http.method },
  } as unknown as APIGatewayProxyEventV2;
}

/** A booking endpoint keyed by the Idempotency-Key header, counting the bookings it really made. */
function bookingEndpoint(
  config: ConstructorParameters<typeof IdempotencyConfig>[0] = {},
  {
    tableName,
    storeName = `http-${randomUUID()}`,
    client = dynamoDb,
    storedAnswer,
    store = idempotencyStore({ name: storeName, tableName, client }),
    logger,
    payloadOf,
    auditLogger,
    internal,
  }: {
    tableName?: string;
    /** Whose records the endpoint's store keeps (see idempotencyRecordsOf). */
    storeName?: string;
    client?: DynamoDBClient;
    storedAnswer?: StoredAnswer;
    store?: ToolkitIdempotencyStore;
    logger?: Parameters<typeof idempotency>[0]['logger'];
    payloadOf?: Parameters<typeof idempotency>[0]['payloadOf'];
    /** Where audit(), first in the pipeline, writes each request's http.request line. @default no audit() */
    auditLogger?: AuditLogger;
    /** One `request.internal` for every invocation, as `middy({ internal })` gives. */
    internal?: Record<string, unknown>;
  } = {},
) {
  const made: Booking[] = [];
  let hold: Promise<void> = Promise.resolve();
  let signalEntered = () => {};
  let nextStatus: number | undefined;
  let nextFailure: Error | undefined;
  const pipeline = middy<
    APIGatewayProxyEventV2,
    APIGatewayProxyStructuredResultV2,
    Error,
    Context & { principal?: Principal }
  >(internal === undefined ? {} : { internal });
  if (auditLogger) pipeline.use(audit({ auditLogger }));
  const handler = pipeline
    .use(httpErrorHandler({ logger: new Logger({ logLevel: 'SILENT' }) }))
    .use(senderAuthenticated)
    .use(
      idempotency({
        persistenceStore: store,
        config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"', ...config }),
        ...(storedAnswer ? { storedAnswer } : {}),
        ...(logger ? { logger } : {}),
        ...(payloadOf ? { payloadOf } : {}),
      }),
    )
    .handler(async (event, context) => {
      signalEntered();
      await hold;
      if (nextFailure !== undefined) {
        const failure = nextFailure;
        nextFailure = undefined;
        throw failure;
      }
      if (nextStatus !== undefined) {
        const statusCode = nextStatus;
        nextStatus = undefined;
        return json(statusCode, { failed: statusCode });
      }
      const booking = JSON.parse(event.body ?? '{}') as Booking;
      made.push(booking);
      return json(201, { booking: made.length, room: booking.room, by: context.principal?.id });
    });
  return {
    made,
    call: (body: Booking, key: string | undefined, sender: Sender = {}) => {
      const { event, context } = sentBy(body, key, sender);
      return handler(event, context);
    },
    /** Sends `body` as it is (none when undefined), with `key` in the Idempotency-Key header. */
    send: (body: string | undefined, key: string | undefined) => {
      const { event, context } = sentBy({ room: 'unused' }, key, {});
      return handler({ ...event, body }, context);
    },
    /** Sends an event whose body a body parser before idempotency() has already turned into `parsed`. */
    sendParsed: (parsed: Booking, key: string) => {
      const { event, context } = sentBy(parsed, key, {});
      return handler({ ...event, body: parsed } as unknown as APIGatewayProxyEventV2, context);
    },
    /** Makes the next handler run wait for `release`; `entered` settles once it is waiting. */
    holdHandler: () => {
      let release = () => {};
      hold = new Promise((resolve) => {
        release = resolve;
      });
      const entered = new Promise<void>((resolve) => {
        signalEntered = resolve;
      });
      return { release, entered };
    },
    /** Makes the next handler run answer `statusCode` without booking anything. */
    answerNextWith: (statusCode: number) => {
      nextStatus = statusCode;
    },
    /** Makes the next handler run throw `failure` without booking anything. */
    failNextWith: (failure: Error) => {
      nextFailure = failure;
    },
  };
}

function problemOf(response: APIGatewayProxyStructuredResultV2) {
  expect(response.headers?.['Content-Type']).toBe('application/problem+json');
  return JSON.parse(response.body as string) as { status: number; code: string; detail: string };
}

describe('idempotency()', () => {
  it('answers a retry with the stored answer and does the work once', async () => {
    const endpoint = bookingEndpoint();
    const key = randomUUID();
    const first = await endpoint.call({ room: 'a' }, key);
    const retry = await endpoint.call({ room: 'a' }, key);
    expect(first.statusCode).toBe(201);
    expect(retry).toMatchObject({ statusCode: 201, body: first.body });
    expect(endpoint.made).toEqual([{ room: 'a' }]);
  });

  it('marks a replay with Idempotent-Replayed: true, and only a replay', async () => {
    const endpoint = bookingEndpoint();
    const key = randomUUID();
    const first = await endpoint.call({ room: 'a' }, key);
    const retry = await endpoint.call({ room: 'a' }, key);
    expect(first.headers).not.toHaveProperty('Idempotent-Replayed');
    expect(retry.headers).toMatchObject({
      'Content-Type': 'application/json',
      'Idempotent-Replayed': 'true',
    });
  });

  it('answers 409 with Retry-After while the first request with the key still runs', async () => {
    const endpoint = bookingEndpoint();
    const key = randomUUID();
    const { release, entered } = endpoint.holdHandler();
    const first = endpoint.call({ room: 'a' }, key);
    await entered;
    const concurrent = await endpoint.call({ room: 'a' }, key);
    expect(problemOf(concurrent)).toMatchObject({ status: 409, code: 'CONFLICT' });
    expect(concurrent.headers?.['Retry-After']).toBe('1');
    // The refused copy left the first request's in-progress record alone: a third is refused too.
    expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(409);
    release();
    expect((await first).statusCode).toBe(201);
    expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
    expect(endpoint.made).toHaveLength(1);
  });

  it('answers 422 when the key comes back with a different payload, and keeps the stored answer', async () => {
    const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' });
    const key = randomUUID();
    const first = await endpoint.call({ room: 'a' }, key);
    const reused = await endpoint.call({ room: 'b' }, key);
    expect(reused.statusCode).toBe(422);
    expect(problemOf(reused)).toMatchObject({
      type: 'urn:bulwark:problem:idempotency-key-reused',
      title: 'Unprocessable Entity',
      status: 422,
      code: 'IDEMPOTENCY_KEY_REUSED',
      detail: 'This idempotency key was already used with a different request',
    });
    expect(await endpoint.call({ room: 'a' }, key)).toMatchObject({ statusCode: 201, body: first.body });
    expect(endpoint.made).toEqual([{ room: 'a' }]);
  });

  it('keeps the stored answer through a 422 when every invocation shares one request.internal (middy({ internal }))', async () => {
    // The first request's handler ran on that object too: the refused copy must not take its record for its own.
    const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' }, { internal: {} });
    const key = randomUUID();
    const first = await endpoint.call({ room: 'a' }, key);
    expect(problemOf(await endpoint.call({ room: 'b' }, key))).toMatchObject({
      status: 422,
      code: 'IDEMPOTENCY_KEY_REUSED',
    });
    expect(await endpoint.call({ room: 'a' }, key)).toMatchObject({
      statusCode: 201,
      body: first.body,
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect(endpoint.made).toEqual([{ room: 'a' }]);
  });

  it('compares what payloadOf makes of the request instead of its bytes: the same request written otherwise replays', async () => {
    // A room named in any case is the same room.
    const endpoint = bookingEndpoint(
      {},
      { payloadOf: ({ event }) => (JSON.parse(event.body ?? '{}') as Booking).room.toLowerCase() },
    );
    const key = randomUUID();
    const first = await endpoint.call({ room: 'A' }, key);
    expect(await endpoint.call({ room: 'a', requestId: 1 }, key)).toMatchObject({
      statusCode: 201,
      body: first.body,
      headers: { 'Idempotent-Replayed': 'true' },
    });
    const reused = await endpoint.call({ room: 'b' }, key);
    expect(problemOf(reused)).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(endpoint.made).toEqual([{ room: 'A' }]);
  });

  it('answers 400 to a request without a key when throwOnNoIdempotencyKey is set', async () => {
    const endpoint = bookingEndpoint({ throwOnNoIdempotencyKey: true });
    const response = await endpoint.call({ room: 'a' }, undefined);
    expect(problemOf(response)).toMatchObject({
      status: 400,
      code: 'VALIDATION_FAILED',
      detail: 'The request carries no idempotency key',
      errors: [{ field: 'header.idempotency-key', message: 'Required' }],
    });
    expect(endpoint.made).toEqual([]);
  });

  describe('scopes a key to the caller, the route and the path', () => {
    const alice = testPrincipal({ tenantId: 'tenant-1' });
    const aliceSends: Sender = {
      principal: alice,
      method: 'DELETE',
      path: '/bookings/b-1',
      routeKey: 'DELETE /bookings/{id}',
    };

    it('gives another caller with the same key and body its own request, and each caller its own replay', async () => {
      const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' });
      const bob: Sender = { ...aliceSends, principal: testPrincipal({ tenantId: 'tenant-1' }) };
      const key = randomUUID();
      const alicesFirst = await endpoint.call({ room: 'a' }, key, aliceSends);
      const bobsFirst = await endpoint.call({ room: 'a' }, key, bob);
      expect(JSON.parse(bobsFirst.body as string)).toEqual({ booking: 2, room: 'a', by: bob.principal?.id });
      expect(await endpoint.call({ room: 'a' }, key, aliceSends)).toMatchObject({ body: alicesFirst.body });
      expect(await endpoint.call({ room: 'a' }, key, bob)).toMatchObject({ body: bobsFirst.body });
      expect(endpoint.made).toHaveLength(2);
    });

    it.each<[string, Sender]>([
      ['another tenant', { ...aliceSends, principal: { ...alice, tenantId: 'tenant-2' } }],
      ['another authentication method', { ...aliceSends, principal: { ...alice, authMethod: 'apiKey' } }],
      [
        'a machine whose client id is the person’s id',
        { ...aliceSends, principal: { ...alice, isM2M: true } },
      ],
      ['no caller', { ...aliceSends, principal: undefined }],
      ['another route on the same path', { ...aliceSends, routeKey: 'DELETE /{proxy+}' }],
      ['another method', { ...aliceSends, method: 'PUT', routeKey: 'PUT /bookings/{id}' }],
      ['another path on the same route', { ...aliceSends, path: '/bookings/b-2' }],
    ])('runs the same key from %s as a new request', async (_variant, other) => {
      const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' });
      const key = randomUUID();
      const alicesFirst = await endpoint.call({ room: 'a' }, key, aliceSends);
      const othersFirst = await endpoint.call({ room: 'a' }, key, other);
      expect(othersFirst.statusCode).toBe(201);
      expect(JSON.parse(othersFirst.body as string)).toMatchObject({ booking: 2 });
      expect(await endpoint.call({ room: 'a' }, key, aliceSends)).toMatchObject({ body: alicesFirst.body });
    });

    it('gives a person and a client-credentials client with the same id and key each its own answer', async () => {
      const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' });
      const id = `shared-${randomUUID()}`;
      const person: Sender = { principal: testPrincipal({ id, clientId: 'web-app' }) };
      const machine: Sender = {
        principal: testPrincipal({ id, isM2M: true, clientId: id, scopes: ['bookings/write'] }),
      };
      const key = randomUUID();
      const personsFirst = await endpoint.call({ room: 'a' }, key, person);
      const machinesFirst = await endpoint.call({ room: 'a' }, key, machine);
      expect(machinesFirst.statusCode).toBe(201);
      expect(machinesFirst.headers).not.toHaveProperty('Idempotent-Replayed');
      expect(endpoint.made).toHaveLength(2);
      const personsReplay = await endpoint.call({ room: 'a' }, key, person);
      const machinesReplay = await endpoint.call({ room: 'a' }, key, machine);
      expect(personsReplay).toMatchObject({
        body: personsFirst.body,
        headers: { 'Idempotent-Replayed': 'true' },
      });
      expect(machinesReplay).toMatchObject({
        body: machinesFirst.body,
        headers: { 'Idempotent-Replayed': 'true' },
      });
      expect(endpoint.made).toHaveLength(2);
    });

    it('scopes a REST API (v1) event by its method, resource and path, which it names in fields of its own', async () => {
      const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'body' });
      const restApiCall = (path: string, key: string, method = 'DELETE', resource = '/bookings/{id}') =>
        endpoint.call({ room: 'a' }, key, { ...aliceSends, method, path, restApiResource: resource });
      const key = randomUUID();
      const first = await restApiCall('/bookings/b-1', key);
      const otherPath = await restApiCall('/bookings/b-2', key);
      expect(JSON.parse(otherPath.body as string)).toMatchObject({ booking: 2 });
      // The same path under another method, or another resource, is another request too.
      const otherMethod = await restApiCall('/bookings/b-1', key, 'PUT');
      expect(otherMethod.headers).not.toHaveProperty('Idempotent-Replayed');
      expect(JSON.parse(otherMethod.body as string)).toMatchObject({ booking: 3 });
      const otherResource = await restApiCall('/bookings/b-1', key, 'DELETE', '/{proxy+}');
      expect(JSON.parse(otherResource.body as string)).toMatchObject({ booking: 4 });
      expect(await restApiCall('/bookings/b-1', key)).toMatchObject({ body: first.body });
      expect(endpoint.made).toHaveLength(4);
    });

    it('finds the key of a REST API (v1) event, whose header names keep the case the client sent', async () => {
      const endpoint = bookingEndpoint();
      const key = randomUUID();
      for (const keyHeader of ['Idempotency-Key', 'IDEMPOTENCY-KEY']) {
        const response = await endpoint.call({ room: 'a' }, key, {
          ...aliceSends,
          keyHeader,
          restApiResource: '/bookings',
        });
        expect(response.statusCode).toBe(201);
      }
      expect(endpoint.made).toHaveLength(1);
    });

    it("reads lower-case key and payload paths from a REST API (v1) event sent in the client's case, Powertools included", async () => {
      const endpoint = bookingEndpoint({
        eventKeyJmesPath: 'headers."idempotency-key"',
        payloadValidationJmesPath: 'headers."x-booking-ref"',
      });
      const key = randomUUID();
      const sendWithRef = (ref: string) =>
        endpoint.call({ room: 'a' }, key, {
          ...aliceSends,
          keyHeader: 'Idempotency-Key',
          headers: { 'X-Booking-Ref': ref },
          restApiResource: '/bookings',
        });
      expect((await sendWithRef('ref-1')).statusCode).toBe(201);
      expect((await sendWithRef('ref-1')).headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
      // Another payload under the same key: Powertools' hash reads the header in the client's case too.
      expect(problemOf(await sendWithRef('ref-2'))).toMatchObject({ status: 422 });
      expect(endpoint.made).toHaveLength(1);
    });

    it('does not answer 409 to another caller while the first caller’s request with the key runs', async () => {
      const endpoint = bookingEndpoint();
      const key = randomUUID();
      const { release, entered } = endpoint.holdHandler();
      const alices = endpoint.call({ room: 'a' }, key, aliceSends);
      await entered;
      const bobs = endpoint.call({ room: 'a' }, key, { ...aliceSends, principal: testPrincipal() });
      release();
      expect((await bobs).statusCode).toBe(201);
      expect((await alices).statusCode).toBe(201);
      expect(endpoint.made).toHaveLength(2);
    });

    it('does not replay a record Powertools stored for the bare key', async () => {
      const storeName = `http-${randomUUID()}`;
      const key = randomUUID();
      const bare = middy()
        .use(
          makeHandlerIdempotent({
            persistenceStore: idempotencyStore({ name: storeName, client: dynamoDb }),
            config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
          }),
        )
        .handler(async () => json(201, { booking: 'stored by Powertools alone' }));
      const { event, context } = sentBy({ room: 'a' }, key, aliceSends);
      await bare(event, context);
      const endpoint = bookingEndpoint({}, { storeName });
      const response = await endpoint.call({ room: 'a' }, key, aliceSends);
      expect(JSON.parse(response.body as string)).toMatchObject({ booking: 1 });
    });
  });

  describe('checks the key before Powertools sees it', () => {
    it.each([
      ['empty', ''],
      ['only spaces', '   '],
      ['longer than 255 characters', 'k'.repeat(256)],
      ['a space inside', 'my key'],
      ['a control character', 'key\u0000'],
      ['a character outside ASCII', 'clé'],
    ])('answers 400 to a key that is %s', async (_shape, key) => {
      const endpoint = bookingEndpoint();
      const response = await endpoint.call({ room: 'a' }, key);
      expect(problemOf(response)).toMatchObject({
        status: 400,
        code: 'VALIDATION_FAILED',
        detail: 'The idempotency key must be a string of 1 to 255 visible ASCII characters',
        errors: [{ field: 'header.idempotency-key', message: 'Must be 1 to 255 visible ASCII characters' }],
      });
      expect(endpoint.made).toEqual([]);
    });

    it('names a key read from elsewhere than a header by its path in the 400', async () => {
      const endpoint = bookingEndpoint({ eventKeyJmesPath: 'powertools_json(body).requestId' });
      const response = await endpoint.call({ room: 'a', requestId: 5 }, undefined);
      expect(problemOf(response)).toMatchObject({
        status: 400,
        errors: [
          { field: 'powertools_json(body).requestId', message: 'Must be 1 to 255 visible ASCII characters' },
        ],
      });
      expect(endpoint.made).toEqual([]);
    });

    it.each([
      ['two keys joined as API Gateway joins a header sent twice', 'key-a,key-b'],
      ['two keys joined as Node joins them', 'key-a, key-b'],
      ['a comma alone', ','],
    ])('answers 400 to a key with a comma: %s', async (_shape, key) => {
      const endpoint = bookingEndpoint();
      const response = await endpoint.call({ room: 'a' }, key);
      expect(problemOf(response)).toMatchObject({
        status: 400,
        code: 'VALIDATION_FAILED',
        detail: 'The idempotency key must not contain a comma, which joins the values of a header sent twice',
        errors: [{ field: 'header.idempotency-key', message: 'Must not contain a comma' }],
      });
      expect(endpoint.made).toEqual([]);
    });

    it('keeps a key of 1 to 255 visible ASCII characters', async () => {
      const endpoint = bookingEndpoint();
      for (const key of ['!', '~'.repeat(255), `"${randomUUID()}"`]) {
        const first = await endpoint.call({ room: key }, key);
        expect(await endpoint.call({ room: key }, key)).toMatchObject({ statusCode: 201, body: first.body });
      }
      expect(endpoint.made).toHaveLength(3);
    });

    it('runs every request without a key when the key is optional', async () => {
      const endpoint = bookingEndpoint();
      await endpoint.call({ room: 'a' }, undefined);
      await endpoint.call({ room: 'a' }, undefined);
      expect(endpoint.made).toHaveLength(2);
    });
  });

  describe('reads the key where the config says', () => {
    it('reads the Idempotency-Key header when the config names no eventKeyJmesPath', async () => {
      const endpoint = bookingEndpoint({ eventKeyJmesPath: undefined });
      const key = randomUUID();
      const first = await endpoint.call({ room: 'a' }, key);
      expect(await endpoint.call({ room: 'b' }, key)).toMatchObject({ statusCode: 201, body: first.body });
      expect(endpoint.made).toEqual([{ room: 'a' }]);
    });

    it('selects the key with the config’s eventKeyJmesPath, Powertools’ functions included', async () => {
      const endpoint = bookingEndpoint({ eventKeyJmesPath: 'powertools_json(body).requestId' });
      const requestId = randomUUID();
      const first = await endpoint.call({ room: 'a', requestId }, undefined);
      expect(await endpoint.call({ room: 'a', requestId }, undefined)).toMatchObject({ body: first.body });
      for (const notAKey of ['not a key', 42]) {
        const response = await endpoint.call({ room: 'a', requestId: notAKey }, undefined);
        expect(problemOf(response)).toMatchObject({ status: 400 });
      }
      expect(endpoint.made).toHaveLength(1);
    });
  });

  describe('reads a request that does not fit its paths as a client’s mistake, not a 500', () => {
    it('finds no key in a body that is missing or not JSON, and runs without idempotency', async () => {
      const endpoint = bookingEndpoint({ eventKeyJmesPath: 'powertools_json(body).requestId' });
      expect((await endpoint.send(undefined, undefined)).statusCode).toBe(201);
      const strict = bookingEndpoint({
        eventKeyJmesPath: 'powertools_json(body).requestId',
        throwOnNoIdempotencyKey: true,
      });
      for (const body of [undefined, 'not json{']) {
        expect(problemOf(await strict.send(body, undefined))).toMatchObject({ status: 400 });
      }
      expect(strict.made).toEqual([]);
    });

    it('answers 400 to a body its payload check cannot read, and keeps the key free', async () => {
      const endpoint = bookingEndpoint({ payloadValidationJmesPath: 'powertools_json(body)' });
      const key = randomUUID();
      for (const body of ['not json{', '', undefined]) {
        expect(problemOf(await endpoint.send(body, key))).toMatchObject({
          status: 400,
          detail: 'The request body cannot be read for its idempotency payload check',
          errors: [{ field: 'body', message: 'Not what payloadValidationJmesPath reads' }],
        });
      }
      expect(endpoint.made).toEqual([]);
      expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
      expect(endpoint.made).toEqual([{ room: 'a' }]);
    });

    it('stays a 500, not the client’s 400, when a body parser before it already parsed the body', async () => {
      // powertools_json(body) then fails on every request: the function's setup, not what a client sent.
      for (const config of [
        { eventKeyJmesPath: 'powertools_json(body).requestId', throwOnNoIdempotencyKey: true },
        { payloadValidationJmesPath: 'powertools_json(body)' },
      ]) {
        const endpoint = bookingEndpoint(config);
        expect(
          (await endpoint.sendParsed({ room: 'a', requestId: randomUUID() }, randomUUID())).statusCode,
        ).toBe(500);
        expect(endpoint.made).toEqual([]);
      }
    });

    it('refuses at construction a path that cannot select anything', () => {
      for (const config of [
        { eventKeyJmesPath: 'headers.[' },
        { payloadValidationJmesPath: 'unknown_function(body)' },
      ]) {
        expect(() => bookingEndpoint(config)).toThrow(InvalidOptionsError);
      }
    });

    it('refuses at construction a header name in another case than lower, which an HTTP API event never carries', () => {
      for (const config of [
        { eventKeyJmesPath: 'headers."Idempotency-Key"' },
        { eventKeyJmesPath: 'headers.Idempotency' },
        { payloadValidationJmesPath: '[body, headers."X-Booking-Ref"]' },
      ]) {
        expect(() => bookingEndpoint(config)).toThrow(
          /write the header name in lower case \(headers\."[a-z-]+"\)/,
        );
      }
      expect(() => bookingEndpoint({ eventKeyJmesPath: 'headers."idempotency-key"' })).not.toThrow();
    });
  });

  describe('puts the scoped key on context.scopedIdempotencyKey', () => {
    /** A handler that answers with the scoped key it was given; `failNext` makes its next answer a 504. */
    function keyEchoingEndpoint() {
      let failNext = false;
      const handler = middy<
        APIGatewayProxyEventV2,
        APIGatewayProxyStructuredResultV2,
        Error,
        Context & { principal?: Principal }
      >()
        .use(httpErrorHandler({ logger: new Logger({ logLevel: 'SILENT' }) }))
        .use(senderAuthenticated)
        .use(idempotency({ persistenceStore: idempotencyStore({ client: dynamoDb }) }))
        .handler(async (_event, context) => {
          const status = failNext ? 504 : 201;
          failNext = false;
          return json(status, { scopedKey: context.scopedIdempotencyKey ?? 'none' });
        });
      return {
        failNext: () => {
          failNext = true;
        },
        keyOf: async (sent: { event: APIGatewayProxyEventV2; context: Context }) => {
          const response = await handler(sent.event, sent.context);
          return (JSON.parse(response.body as string) as { scopedKey: unknown }).scopedKey;
        },
      };
    }
    const alice = testPrincipal({ tenantId: 'tenant-1' });
    const aliceSends: Sender = { principal: alice, routeKey: 'POST /bookings' };

    it('gives the handler the key in the scope its record has, the same to the retry of a request that failed', async () => {
      const endpoint = keyEchoingEndpoint();
      const key = randomUUID();
      endpoint.failNext();
      const failed = await endpoint.keyOf(sentBy({ room: 'a' }, key, aliceSends));
      expect(failed).toEqual(['tenant-1', 'jwt', 'person', alice.id, 'POST /bookings', '/bookings', key]);
      // The 504 deleted the record: the retry runs the handler again, with the same scoped key.
      expect(await endpoint.keyOf(sentBy({ room: 'a' }, key, aliceSends))).toEqual(failed);
      const bobs = await endpoint.keyOf(
        sentBy({ room: 'a' }, key, { ...aliceSends, principal: testPrincipal() }),
      );
      expect(bobs).not.toEqual(failed);
    });

    it('gives none to a request without a key, even on a context a request with one had', async () => {
      const endpoint = keyEchoingEndpoint();
      const keyed = sentBy({ room: 'a' }, randomUUID(), aliceSends);
      expect(await endpoint.keyOf(keyed)).toHaveLength(7);
      const unkeyed = sentBy({ room: 'a' }, undefined, aliceSends);
      expect(await endpoint.keyOf({ event: unkeyed.event, context: keyed.context })).toBe('none');
    });
  });

  describe('with POWERTOOLS_IDEMPOTENCY_DISABLED', () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it('runs every request and checks no key', async () => {
      vi.stubEnv('POWERTOOLS_IDEMPOTENCY_DISABLED', 'true');
      const endpoint = bookingEndpoint({ throwOnNoIdempotencyKey: true });
      const key = randomUUID();
      expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
      expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
      expect((await endpoint.call({ room: 'a' }, '')).statusCode).toBe(201);
      expect((await endpoint.call({ room: 'a' }, undefined)).statusCode).toBe(201);
      expect(endpoint.made).toHaveLength(4);
    });
  });

  describe('with storedAnswer', () => {
    /** The answer's `room` stands for a secret kept elsewhere: the record keeps the answer without it. */
    const withoutRoom: StoredAnswer['toRecord'] = (answer) => {
      const { room: _room, ...rest } = JSON.parse(answer.body as string) as Record<string, unknown>;
      return { ...answer, body: JSON.stringify(rest) };
    };
    /** Puts the room back, read from where it is kept (here the request itself) for the caller. */
    const roomAgain: StoredAnswer['fromRecord'] = (kept, request) => {
      const { booking, by } = JSON.parse(kept.body as string) as Record<string, unknown>;
      if (by !== request.context.principal?.id) throw new Error('replayed to another caller');
      const { room } = JSON.parse(request.event.body as string) as Booking;
      return { ...kept, body: JSON.stringify({ booking, room, by }) };
    };
    const alice: Sender = { principal: testPrincipal() };
    const documents = createDocumentClient(dynamoDb);

    it('keeps what toRecord gives in the record, answers the first request in full and replays what fromRecord makes', async () => {
      const storeName = `http-${randomUUID()}`;
      const room = `room-${randomUUID()}`;
      const endpoint = bookingEndpoint(
        { payloadValidationJmesPath: 'body' },
        { storeName, storedAnswer: { toRecord: withoutRoom, fromRecord: roomAgain } },
      );
      const key = randomUUID();
      const first = await endpoint.call({ room }, key, alice);
      expect(JSON.parse(first.body as string)).toEqual({ booking: 1, room, by: alice.principal?.id });
      const records = await idempotencyRecordsOf(documents, storeName);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ status: 'COMPLETED' });
      expect(JSON.stringify(records)).not.toContain(room);
      const retry = await endpoint.call({ room }, key, alice);
      expect(retry).toMatchObject({ statusCode: 201, body: first.body });
      expect(retry.headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
      expect(endpoint.made).toHaveLength(1);
    });

    it('answers a replay with the error fromRecord throws, and keeps the record for the next retry', async () => {
      let gone = true;
      const endpoint = bookingEndpoint(
        {},
        {
          storedAnswer: {
            toRecord: withoutRoom,
            fromRecord: (kept, request) => {
              if (gone) throw new NotFoundError('What this request made is gone');
              return roomAgain(kept, request);
            },
          },
        },
      );
      const key = randomUUID();
      const first = await endpoint.call({ room: 'a' }, key, alice);
      expect(problemOf(await endpoint.call({ room: 'a' }, key, alice))).toMatchObject({ status: 404 });
      gone = false;
      expect(await endpoint.call({ room: 'a' }, key, alice)).toMatchObject({
        statusCode: 201,
        body: first.body,
      });
      expect(endpoint.made).toHaveLength(1);
    });

    it('keeps no record when toRecord fails, so the retry runs again', async () => {
      const endpoint = bookingEndpoint(
        {},
        {
          storedAnswer: {
            toRecord: () => {
              throw new Error('cannot keep this answer');
            },
            fromRecord: roomAgain,
          },
        },
      );
      const key = randomUUID();
      expect(problemOf(await endpoint.call({ room: 'a' }, key, alice))).toMatchObject({ status: 500 });
      expect(problemOf(await endpoint.call({ room: 'a' }, key, alice))).toMatchObject({ status: 500 });
      expect(endpoint.made).toHaveLength(2);
    });
  });

  it('stores no 5xx the handler returns, so a retry runs again, and replays a returned 4xx', async () => {
    const endpoint = bookingEndpoint();
    const unavailable = randomUUID();
    endpoint.answerNextWith(503);
    expect((await endpoint.call({ room: 'a' }, unavailable)).statusCode).toBe(503);
    expect((await endpoint.call({ room: 'a' }, unavailable)).statusCode).toBe(201);
    const refused = randomUUID();
    endpoint.answerNextWith(409);
    expect((await endpoint.call({ room: 'b' }, refused)).statusCode).toBe(409);
    expect((await endpoint.call({ room: 'b' }, refused)).statusCode).toBe(409);
    expect(endpoint.made).toEqual([{ room: 'a' }]);
  });

  it.each([
    ['returns', (endpoint: ReturnType<typeof bookingEndpoint>) => endpoint.answerNextWith(503)],
    [
      'throws',
      (endpoint: ReturnType<typeof bookingEndpoint>) =>
        endpoint.failNextWith(new ServiceUnavailableError('The users service is unavailable', 5)),
    ],
  ])(
    'keeps the 503 the handler %s when its record cannot be released, and logs why its retry gets 409',
    async (how, fail) => {
      const store = idempotencyStore({ client: dynamoDb });
      throttleFirstDelete(store);
      const warn = vi.fn();
      const endpoint = bookingEndpoint({}, { store, logger: { warn } });
      const key = randomUUID();
      fail(endpoint);
      const failed = await endpoint.call({ room: 'a' }, key);
      expect(failed.statusCode).toBe(503);
      if (how === 'throws') expect(problemOf(failed)).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      else expect(JSON.parse(failed.body as string)).toEqual({ failed: 503 });
      expect(warn).toHaveBeenCalledWith(
        'Idempotency record not released after the handler failed; retries get 409 until it expires',
        { error: expect.objectContaining({ name: 'IdempotencyPersistenceLayerError' }) },
      );
      // The record stays in progress until the invocation's deadline: the retry is told to come back.
      const retry = await endpoint.call({ room: 'a' }, key);
      expect(problemOf(retry)).toMatchObject({ status: 409, code: 'CONFLICT' });
      expect(endpoint.made).toEqual([]);
    },
  );

  it('answers a success whose record cannot be saved (over DynamoDB’s 400 KB item), logs an error, and runs the retry again', async () => {
    const warn = vi.fn();
    const error = vi.fn();
    const endpoint = bookingEndpoint({}, { logger: { warn, error } });
    const key = randomUUID();
    // The handler's answer echoes the room: 450 KB, more than one DynamoDB item holds.
    const room = 'r'.repeat(450 * 1024);
    const first = await endpoint.call({ room }, key);
    expect(first.statusCode).toBe(201);
    expect(JSON.parse(first.body as string)).toMatchObject({ booking: 1, room });
    // It can never be stored: an error, not a warning.
    expect(error).toHaveBeenCalledWith(
      'Idempotency record not saved after the handler succeeded; a retry with the key runs the handler again',
      { error: expect.objectContaining({ name: 'IdempotencyPersistenceLayerError' }) },
    );
    expect(warn).not.toHaveBeenCalled();
    const retry = await endpoint.call({ room }, key);
    expect(retry.statusCode).toBe(201);
    expect(retry.headers?.['Idempotent-Replayed']).toBeUndefined();
    expect(endpoint.made).toHaveLength(2);
  });

  it('answers a success whose record the store throttled, and warns', async () => {
    const store = idempotencyStore({ client: dynamoDb });
    const saveSuccess = store.saveSuccess.bind(store);
    vi.spyOn(store, 'saveSuccess').mockRejectedValueOnce(throttlingError());
    const warn = vi.fn();
    const error = vi.fn();
    const endpoint = bookingEndpoint({}, { store, logger: { warn, error } });
    const key = randomUUID();
    expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
    expect(warn).toHaveBeenCalledWith(
      'Idempotency record not saved after the handler succeeded; a retry with the key runs the handler again',
      { error: expect.objectContaining({ name: 'IdempotencyPersistenceLayerError' }) },
    );
    expect(error).not.toHaveBeenCalled();
    // The store is back: the retry runs, and its record is kept for the next one.
    vi.mocked(store.saveSuccess).mockImplementation(saveSuccess);
    expect((await endpoint.call({ room: 'a' }, key)).statusCode).toBe(201);
    const replay = await endpoint.call({ room: 'a' }, key);
    expect(replay.headers?.['Idempotent-Replayed']).toBe('true');
    expect(endpoint.made).toHaveLength(2);
  });

  it('answers 503 with Retry-After when its store cannot be reached, before the handler runs', async () => {
    // Nothing listens on port 1: every store call is refused, as in a DynamoDB outage.
    const unreachable = createDynamoDbClient({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    const endpoint = bookingEndpoint({}, { client: unreachable });
    const response = await endpoint.call({ room: 'a' }, randomUUID());
    expect(problemOf(response)).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
    expect(response.headers?.['Retry-After']).toBe('5');
    expect(endpoint.made).toEqual([]);
  });

  describe('runs only after authentication, unless the route is declared anonymous', () => {
    const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
    const verifier = devIssuerVerifier(issuer);
    type Order = 'authenticate first' | 'idempotency first' | 'no authentication' | 'Powertools first';

    /**
     * A booking endpoint with the real authenticate, before or after idempotency() or not there at all,
     * whose answer names the caller and carries data of theirs a replay must never hand to another.
     */
    function orderedEndpoint(
      order: Order,
      {
        anonymous,
        optional = false,
        internal,
      }: {
        anonymous?: boolean;
        optional?: boolean;
        /** One `request.internal` for every invocation, as `middy({ internal })` gives. */
        internal?: Record<string, unknown>;
      } = {},
    ) {
      const storeName = `order-${randomUUID()}`;
      const logger = { error: vi.fn() };
      let runs = 0;
      const auth = authenticate({ jwt: verifier, optional });
      const idem = idempotency({
        persistenceStore: idempotencyStore({ name: storeName, client: dynamoDb }),
        config: new IdempotencyConfig({ throwOnNoIdempotencyKey: true }),
        ...(anonymous === undefined ? {} : { anonymous }),
      });
      type Middleware = MiddlewareObj<
        APIGatewayProxyEventV2,
        APIGatewayProxyStructuredResultV2,
        Error,
        Context & OptionalAuthContext
      >;
      const middlewares: Record<Order, Middleware[]> = {
        'authenticate first': [auth, idem],
        'idempotency first': [idem, auth],
        'no authentication': [idem],
        // Powertools' own middleware, which keys its records by the key alone.
        'Powertools first': [
          makeHandlerIdempotent({
            persistenceStore: idempotencyStore({ name: storeName, client: dynamoDb }),
            config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
          }) as Middleware,
          auth,
        ],
      };
      const handler = lambdaHandler(
        middy<
          APIGatewayProxyEventV2,
          APIGatewayProxyStructuredResultV2,
          Error,
          Context & OptionalAuthContext
        >(internal === undefined ? {} : { internal })
          .use(httpErrorHandler({ logger }))
          .use(middlewares[order])
          .handler(async (_event, context) => {
            runs += 1;
            const id = context.principal?.id ?? 'anonymous';
            return json(201, { bookingFor: id, note: `private data of ${id}` });
          }),
      );
      /** `context` is a fresh one unless one is handed in again, as a test's or a host's may be. */
      const call = async (key: string, sub?: string, context: Context = lambdaContext()) => {
        const token = sub === undefined ? undefined : await issuer.mint({ sub });
        const event = httpEvent({
          method: 'POST',
          path: '/bookings',
          headers: {
            'idempotency-key': key,
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          },
          body: '{}',
        });
        return handler(event, context);
      };
      const storedRecords = async () =>
        (await idempotencyRecordsOf(createDocumentClient(dynamoDb), storeName)).length;
      return { call, logger, runs: () => runs, storedRecords };
    }

    const setupFault = (logger: { error: ReturnType<typeof vi.fn> }, message: string) =>
      expect(logger.error).toHaveBeenCalledWith('Request failed', {
        error: expect.objectContaining({ name: 'InvalidOptionsError', code: 'INVALID_OPTIONS', message }),
      });

    it.each<Order>(['idempotency first', 'no authentication'])(
      'with %s, refuses every request as a logged 500, never replaying or storing an answer',
      async (order) => {
        const endpoint = orderedEndpoint(order);
        const key = randomUUID();
        for (const sub of ['alice', 'mallory', undefined, 'alice']) {
          const response = await endpoint.call(key, sub);
          expect(problemOf(response), `${sub}`).toMatchObject({ status: 500, code: 'INTERNAL' });
          expect(response.headers).not.toHaveProperty('Idempotent-Replayed');
          expect(response.body).not.toContain('private data');
        }
        expect(endpoint.runs()).toBe(0);
        expect(await endpoint.storedRecords()).toBe(0);
        setupFault(
          endpoint.logger,
          'Invalid idempotency options: the key is scoped to the caller on context.principal, but no authentication middleware ran before idempotency(): put idempotency() after authenticate(), or pass anonymous: true on a public route',
        );
      },
    );

    it('before authenticate, refuses a request also on a context an authenticated request left its principal on', async () => {
      const context = lambdaContext();
      const wellOrdered = orderedEndpoint('authenticate first');
      expect((await wellOrdered.call(randomUUID(), 'alice', context)).statusCode).toBe(201);
      const misordered = orderedEndpoint('idempotency first');
      const response = await misordered.call(randomUUID(), 'mallory', context);
      expect(problemOf(response)).toMatchObject({ status: 500, code: 'INTERNAL' });
      expect(misordered.runs()).toBe(0);
      expect(await misordered.storedRecords()).toBe(0);
      setupFault(
        misordered.logger,
        'Invalid idempotency options: the key is scoped to the caller on context.principal, but no authentication middleware ran before idempotency(): put idempotency() after authenticate(), or pass anonymous: true on a public route',
      );
    });

    it('after authenticate, replays each caller its own answer and refuses a request without a token', async () => {
      const endpoint = orderedEndpoint('authenticate first');
      const key = randomUUID();
      const alices = await endpoint.call(key, 'alice');
      expect(JSON.parse(alices.body as string)).toEqual({
        bookingFor: 'alice',
        note: 'private data of alice',
      });
      const mallorys = await endpoint.call(key, 'mallory');
      expect(JSON.parse(mallorys.body as string)).toMatchObject({ bookingFor: 'mallory' });
      expect(mallorys.headers).not.toHaveProperty('Idempotent-Replayed');
      expect(problemOf(await endpoint.call(key))).toMatchObject({ status: 401 });
      const retry = await endpoint.call(key, 'alice');
      expect(retry).toMatchObject({ body: alices.body, headers: { 'Idempotent-Replayed': 'true' } });
      expect(endpoint.runs()).toBe(2);
    });

    it('after authenticate({ optional: true }), scopes an anonymous caller apart from signed-in ones', async () => {
      const endpoint = orderedEndpoint('authenticate first', { optional: true });
      const key = randomUUID();
      const anonymous = await endpoint.call(key);
      expect(JSON.parse(anonymous.body as string)).toMatchObject({ bookingFor: 'anonymous' });
      expect(JSON.parse((await endpoint.call(key, 'alice')).body as string)).toMatchObject({
        bookingFor: 'alice',
      });
      expect(await endpoint.call(key)).toMatchObject({
        body: anonymous.body,
        headers: { 'Idempotent-Replayed': 'true' },
      });
      expect(endpoint.runs()).toBe(2);
    });

    it('with anonymous: true and no authentication, replays the one anonymous scope', async () => {
      const endpoint = orderedEndpoint('no authentication', { anonymous: true });
      const key = randomUUID();
      const first = await endpoint.call(key);
      expect(first.statusCode).toBe(201);
      expect(await endpoint.call(key)).toMatchObject({
        body: first.body,
        headers: { 'Idempotent-Replayed': 'true' },
      });
      expect((await endpoint.call(randomUUID())).statusCode).toBe(201);
      expect(endpoint.runs()).toBe(2);
    });

    it('with anonymous: true after authenticate, still scopes each caller apart', async () => {
      const endpoint = orderedEndpoint('authenticate first', { anonymous: true });
      const key = randomUUID();
      const alices = await endpoint.call(key, 'alice');
      expect(JSON.parse((await endpoint.call(key, 'mallory')).body as string)).toMatchObject({
        bookingFor: 'mallory',
      });
      expect(await endpoint.call(key, 'alice')).toMatchObject({ body: alices.body });
      expect(endpoint.runs()).toBe(2);
    });

    it('with anonymous: true before authenticate, stores nothing to replay and answers a logged 500', async () => {
      const endpoint = orderedEndpoint('idempotency first', { anonymous: true });
      const key = randomUUID();
      for (const sub of ['alice', 'mallory', 'alice']) {
        const response = await endpoint.call(key, sub);
        expect(problemOf(response), sub).toMatchObject({ status: 500, code: 'INTERNAL' });
        expect(response.body).not.toContain('private data');
      }
      // Authentication refuses to run after the lock: no request ran, and each one's record was deleted.
      expect(endpoint.runs()).toBe(0);
      expect(await endpoint.storedRecords()).toBe(0);
      setupFault(
        endpoint.logger,
        "Invalid authenticate options: an idempotency middleware ran before authenticate(), so its records are not scoped to the caller and one caller's stored answer would be replayed to another: put makeHandlerIdempotent() or idempotency() after authenticate()",
      );
    });

    it('lets authenticate run before idempotency() when every invocation shares one request.internal (middy({ internal }))', async () => {
      // Powertools leaves its handler there after the first invocation: no sign of a misordered pipeline.
      const endpoint = orderedEndpoint('authenticate first', { internal: {} });
      const answers = [];
      for (const key of [randomUUID(), randomUUID()]) answers.push(await endpoint.call(key, 'alice'));
      expect(answers.map((answer) => answer.statusCode)).toEqual([201, 201]);
      expect(endpoint.runs()).toBe(2);
    });

    it("refuses Powertools' makeHandlerIdempotent before authenticate: a logged 500, nothing run, stored or replayed", async () => {
      const endpoint = orderedEndpoint('Powertools first');
      const key = randomUUID();
      for (const sub of ['alice', undefined, 'mallory']) {
        const response = await endpoint.call(key, sub);
        expect(problemOf(response), sub).toMatchObject({ status: 500, code: 'INTERNAL' });
        expect(response.body).not.toContain('private data');
      }
      expect(endpoint.runs()).toBe(0);
      expect(await endpoint.storedRecords()).toBe(0);
      setupFault(
        endpoint.logger,
        "Invalid authenticate options: an idempotency middleware ran before authenticate(), so its records are not scoped to the caller and one caller's stored answer would be replayed to another: put makeHandlerIdempotent() or idempotency() after authenticate()",
      );
    });

    it('refuses at construction a payloadOf that is no function, or one given with payloadValidationJmesPath', () => {
      const store = idempotencyStore({ name: 'unused', client: dynamoDb });
      expect(() => idempotency({ persistenceStore: store, payloadOf: 'body' as never })).toThrow(
        new InvalidOptionsError('idempotency', ['payloadOf must be a function']),
      );
      expect(() =>
        idempotency({
          persistenceStore: store,
          config: new IdempotencyConfig({ payloadValidationJmesPath: 'body' }),
          payloadOf: ({ event }) => event.body,
        }),
      ).toThrow(
        new InvalidOptionsError('idempotency', [
          'give payloadOf or config.payloadValidationJmesPath, not both: only one can be compared',
        ]),
      );
    });

    it('refuses at construction an anonymous that is not true or false', () => {
      expect(() =>
        idempotency({
          persistenceStore: idempotencyStore({ name: 'unused', client: dynamoDb }),
          anonymous: 'yes' as never,
        }),
      ).toThrow(new InvalidOptionsError('idempotency', ['anonymous must be true or false (got "yes")']));
    });

    it('refuses at construction a storedAnswer or logger it could not call once the handler has run', () => {
      const store = idempotencyStore({ name: 'unused', client: dynamoDb });
      expect(() =>
        idempotency({
          persistenceStore: store,
          storedAnswer: { toRecord: (answer: unknown) => answer } as never,
        }),
      ).toThrow(
        new InvalidOptionsError('idempotency', ['storedAnswer must have toRecord() and fromRecord()']),
      );
      expect(() =>
        idempotency({ persistenceStore: store, logger: { error: console.error } as never }),
      ).toThrow(
        new InvalidOptionsError('idempotency', ['logger must have warn() (a Powertools Logger fits)']),
      );
      expect(() =>
        idempotency({ persistenceStore: store, logger: { warn: console.warn, error: 'loud' as never } }),
      ).toThrow(new InvalidOptionsError('idempotency', ['logger.error must be a function']));
      // The console replaces only an undefined logger: a null one would be called when a release fails.
      expect(() => idempotency({ persistenceStore: store, logger: null as never })).toThrow(
        new InvalidOptionsError('idempotency', ['logger must have warn() (a Powertools Logger fits)']),
      );
      // Read as left out where they are tested before use.
      expect(() =>
        idempotency({
          persistenceStore: store,
          storedAnswer: null as never,
          logger: { warn: console.warn, error: null as never },
        }),
      ).not.toThrow();
    });
  });

  it('leaves a failure of its own store a 500, not the client’s fault', async () => {
    const endpoint = bookingEndpoint({}, { tableName: `missing-table-${randomUUID()}` });
    const response = await endpoint.call({ room: 'a' }, randomUUID());
    expect(problemOf(response)).toMatchObject({ status: 500, code: 'INTERNAL' });
    expect(endpoint.made).toEqual([]);
  });
});

describe('the audit line of a request with an idempotency key', () => {
  const caller = testPrincipal({ tenantId: 'tenant-1', isM2M: true, clientId: 'client-1' });

  /** A booking endpoint with audit() first, and its http.request lines. */
  function auditedEndpoint(config: ConstructorParameters<typeof IdempotencyConfig>[0] = {}) {
    const auditLogger = new AuditLogger({
      logger: new Logger({ serviceName: 'bookings', logLevel: 'INFO' }),
    });
    const endpoint = bookingEndpoint(config, { auditLogger });
    const requestLines = () => output.audit().filter((event) => event.eventType === 'http.request');
    return { ...endpoint, requestLines };
  }

  /**
   * The key's hash as README's search recipe computes it from an audit line's own fields and the client's
   * key: SHA-256 of the JSON of ["audit", tenant, authMethod, kind, caller id, route, path, key], 16 hex.
   */
  function searchHashOf(line: ReturnType<typeof output.audit>[number] | undefined, key: string) {
    const scope = [
      line?.tenantId ?? null,
      line?.authMethod ?? null,
      line?.isM2M ? 'machine' : 'person',
      line?.userId ?? null,
      line?.metadata.routeKey ?? null,
      line?.path ?? null,
      key,
    ];
    return createHash('sha256')
      .update(JSON.stringify(['audit', ...scope]))
      .digest('hex')
      .slice(0, 16);
  }

  it('marks a replay and names its key by a hash, where the first answer carries neither', async () => {
    const endpoint = auditedEndpoint();
    const key = randomUUID();
    await endpoint.call({ room: 'a' }, key, { principal: caller });
    await endpoint.call({ room: 'a' }, key, { principal: caller });
    const [first, replay] = endpoint.requestLines();
    expect(first?.statusCode).toBe(201);
    expect(first?.metadata).not.toHaveProperty('replayed');
    expect(first?.metadata).not.toHaveProperty('idempotencyKeyHash');
    expect(replay).toMatchObject({ statusCode: 201, outcome: 'success', userId: caller.id });
    expect(replay?.metadata).toMatchObject({
      replayed: true,
      idempotencyKeyHash: searchHashOf(replay, key),
    });
    expect(searchHashOf(replay, key)).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(output.lines())).not.toContain(key);
  });

  it("names a REST API (v1) replay's route as its scope does, so the recipe gives the logged hash", async () => {
    const endpoint = auditedEndpoint();
    const key = randomUUID();
    const sender = { principal: caller, restApiResource: '/bookings' };
    await endpoint.call({ room: 'a' }, key, sender);
    await endpoint.call({ room: 'a' }, key, sender);
    const replay = endpoint.requestLines()[1];
    // A v1 event has no routeKey of its own: the line names "<httpMethod> <resource>", as the scope does.
    expect(replay?.metadata).toMatchObject({ routeKey: 'POST /bookings', replayed: true });
    expect(replay?.path).toBe('/bookings');
    expect(replay?.metadata.idempotencyKeyHash).toBe(searchHashOf(replay, key));
  });

  it('names the key by the same hash on the 409 of a copy in progress and the 422 of a reuse', async () => {
    const endpoint = auditedEndpoint({ payloadValidationJmesPath: 'body' });
    const key = randomUUID();
    const { release, entered } = endpoint.holdHandler();
    const first = endpoint.call({ room: 'a' }, key, { principal: caller });
    await entered;
    expect((await endpoint.call({ room: 'a' }, key, { principal: caller })).statusCode).toBe(409);
    release();
    await first;
    expect((await endpoint.call({ room: 'b' }, key, { principal: caller })).statusCode).toBe(422);
    const lines = endpoint.requestLines();
    expect(lines.map((line) => [line.statusCode, line.metadata.idempotencyKeyHash])).toEqual([
      [409, searchHashOf(lines[0], key)],
      [201, undefined],
      [422, searchHashOf(lines[0], key)],
    ]);
    expect(lines.map((line) => line.metadata.replayed)).toEqual([undefined, undefined, undefined]);
  });
});
