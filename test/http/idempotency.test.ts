import { randomUUID } from 'node:crypto';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { captureStdout } from '../helpers/log-capture.js';
import { testTableNames } from '../helpers/tables.js';

captureStdout();
const dynamoDb = createDynamoDbClient({ endpoint: process.env.DYNAMODB_ENDPOINT });

interface Booking {
  readonly room: string;
}

/** A booking endpoint keyed by the Idempotency-Key header, counting the bookings it really made. */
function bookingEndpoint(
  config: ConstructorParameters<typeof IdempotencyConfig>[0] = {},
  tableName: string = testTableNames.toolkit,
) {
  const made: Booking[] = [];
  let hold: Promise<void> = Promise.resolve();
  let signalEntered = () => {};
  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(httpErrorHandler({ logger: new Logger({ logLevel: 'SILENT' }) }))
    .use(
      idempotency({
        persistenceStore: new DynamoDBPersistenceLayer({
          tableName,
          awsSdkV3Client: dynamoDb,
          keyAttr: 'pk',
          sortKeyAttr: 'sk',
          staticPkValue: `IDEM#http-${randomUUID()}`,
          expiryAttr: 'expiresAt',
        }),
        config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"', ...config }),
      }),
    )
    .handler(async (event) => {
      signalEntered();
      await hold;
      const booking = JSON.parse(event.body ?? '{}') as Booking;
      made.push(booking);
      return json(201, { booking: made.length, room: booking.room });
    });
  return {
    made,
    call: (body: Booking, key: string | undefined) =>
      handler(
        httpEvent({
          method: 'POST',
          path: '/bookings',
          headers: key === undefined ? {} : { 'idempotency-key': key },
          body: JSON.stringify(body),
        }),
        lambdaContext(),
      ),
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
    expect(problemOf(reused)).toMatchObject({ status: 422, code: 'VALIDATION_FAILED' });
    expect(await endpoint.call({ room: 'a' }, key)).toMatchObject({ statusCode: 201, body: first.body });
    expect(endpoint.made).toEqual([{ room: 'a' }]);
  });

  it('answers 400 to a request without a key when throwOnNoIdempotencyKey is set', async () => {
    const endpoint = bookingEndpoint({ throwOnNoIdempotencyKey: true });
    const response = await endpoint.call({ room: 'a' }, undefined);
    expect(problemOf(response)).toMatchObject({
      status: 400,
      code: 'VALIDATION_FAILED',
      detail: 'The request carries no idempotency key',
    });
    expect(endpoint.made).toEqual([]);
  });

  it('leaves a failure of its own store a 500, not the client’s fault', async () => {
    const endpoint = bookingEndpoint({}, `missing-table-${randomUUID()}`);
    const response = await endpoint.call({ room: 'a' }, randomUUID());
    expect(problemOf(response)).toMatchObject({ status: 500, code: 'INTERNAL' });
    expect(endpoint.made).toEqual([]);
  });
});
