// httpErrorHandler over real AWS SDK clients whose service is down, throttling, slow or garbled: 503/504, never a 500.
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createKmsClient } from '../../middleware/encryption/kms-key-provider.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { awsJsonError, faultServer } from '../helpers/fault-server.js';
import { silentServer } from '../helpers/silent-server.js';
import { testTableNames } from '../helpers/tables.js';

const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 10_000 } as Context;
const event = {
  version: '2.0',
  routeKey: 'GET /things/{id}',
  rawPath: '/things/1',
  rawQueryString: '',
  headers: {},
  isBase64Encoded: false,
  requestContext: { requestId: 'api-req-1' } as APIGatewayProxyEventV2['requestContext'],
} as APIGatewayProxyEventV2;

/** A closed port on this machine: connecting to it is refused at once. */
const refusedEndpoint = 'http://127.0.0.1:1';
/** One attempt with short timeouts: each case fails the way it would in production, only sooner. */
const quickLimits = { maxAttempts: 1, requestTimeoutMs: 300, connectionTimeoutMs: 300 } as const;

/**
 * A data route as the sample writes one: it runs `work` on the store and lets any store error reach
 * httpErrorHandler.
 */
function dataRoute(client: DynamoDBClient, work: (documents: DynamoDBDocumentClient) => Promise<unknown>) {
  const documents = createDocumentClient(client);
  const logger = { error: vi.fn(), warn: vi.fn() };
  const handler = lambdaHandler(
    middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler({ logger }))
      .handler(async () => json(200, { result: await work(documents) })),
  );
  return { handler, logger };
}

/** A route that reads one item. */
const readRoute = (client: DynamoDBClient) =>
  dataRoute(client, async (documents) => {
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: { pk: 'THING#1', sk: 'THING' } }),
    );
    return Item !== undefined;
  });

async function answerOf(endpoint: string) {
  const client = createDynamoDbClient({ endpoint, ...quickLimits });
  const { handler, logger } = readRoute(client);
  const result = await handler(event, context);
  client.destroy();
  return { result, logger, body: JSON.parse(result.body as string) as Record<string, unknown> };
}

describe('httpErrorHandler when an AWS dependency fails', () => {
  it('answers a refused connection 503 with Retry-After, logged as a warning naming DynamoDB', async () => {
    const { result, body, logger } = await answerOf(refusedEndpoint);
    expect(result.statusCode).toBe(503);
    expect(result.headers).toMatchObject({
      'Retry-After': '5',
      'Content-Type': 'application/problem+json',
      'Cache-Control': 'no-store',
    });
    expect(body).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      type: 'urn:bulwark:problem:service-unavailable',
      detail: 'Service temporarily unavailable',
      instance: '/things/1',
      requestId: 'api-req-1',
    });
    // Neither the address nor Node's message reaches the client.
    expect(result.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|connect/);
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledWith(
      'Request degraded',
      expect.objectContaining({
        failure: 'unreachable',
        dependency: 'DynamoDB',
        errorName: 'Error',
        errorCode: 'ECONNREFUSED',
      }),
    );
  });

  it('answers a dropped connection 503 although the SDK names it TimeoutError', async () => {
    const server = await faultServer('reset');
    const { result, body, logger } = await answerOf(server.endpoint);
    await server.close();
    expect(result.statusCode).toBe(503);
    expect(result.headers?.['Retry-After']).toBe('5');
    expect(body.code).toBe('SERVICE_UNAVAILABLE');
    expect(logger.warn).toHaveBeenCalledWith(
      'Request degraded',
      expect.objectContaining({ failure: 'unreachable', errorName: 'TimeoutError', errorCode: 'ECONNRESET' }),
    );
  });

  it('answers a service that never replies 504 once the request timeout passes, without Retry-After', async () => {
    const server = await silentServer();
    const { result, body, logger } = await answerOf(server.endpoint);
    await server.close();
    expect(result.statusCode).toBe(504);
    expect(result.headers?.['Retry-After']).toBeUndefined();
    expect(body).toMatchObject({
      code: 'DEPENDENCY_TIMEOUT',
      type: 'urn:bulwark:problem:dependency-timeout',
      detail: 'A dependency did not answer in time',
    });
    expect(result.body).not.toMatch(/requestTimeout|smithy|300 ms/);
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledWith(
      'Request degraded',
      expect.objectContaining({
        failure: 'timeout',
        dependency: 'DynamoDB',
        errorName: 'TimeoutError',
        errorCode: 'ETIMEDOUT',
        // The client's own 300 ms request timeout gave up on the reply, not a later default or the test's.
        error: expect.objectContaining({
          message: expect.stringMatching(/configured 300 ms requestTimeout/),
        }),
      }),
    );
  });

  it.each([
    {
      label: 'a modelled 500 (InternalServerError)',
      answer: awsJsonError(500, 'com.amazonaws.dynamodb.v20120810#InternalServerError'),
      failure: 'unavailable',
      errorName: 'InternalServerError',
    },
    {
      label: "a proxy's 503 page the SDK cannot parse",
      answer: { status: 503, contentType: 'text/html', body: '<html>Service Unavailable</html>' },
      failure: 'unavailable',
      errorName: 'SyntaxError',
    },
    {
      label: 'a 200 whose body is garbage',
      answer: { status: 200, contentType: 'application/x-amz-json-1.0', body: '\u0000\u0001garbage{{{' },
      failure: 'bad_reply',
      errorName: 'SyntaxError',
    },
    {
      label: 'ProvisionedThroughputExceededException',
      answer: awsJsonError(400, 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException'),
      failure: 'throttled',
      errorName: 'ProvisionedThroughputExceededException',
    },
    {
      label: 'ThrottlingException',
      answer: awsJsonError(400, 'com.amazon.coral.availability#ThrottlingException'),
      failure: 'throttled',
      errorName: 'ThrottlingException',
    },
    {
      label: 'RequestLimitExceeded',
      answer: awsJsonError(400, 'com.amazonaws.dynamodb.v20120810#RequestLimitExceeded'),
      failure: 'throttled',
      errorName: 'RequestLimitExceeded',
    },
  ])('answers $label 503 with Retry-After ($failure)', async ({ answer, failure, errorName }) => {
    const server = await faultServer(answer);
    const { result, body, logger } = await answerOf(server.endpoint);
    await server.close();
    expect(result.statusCode).toBe(503);
    expect(result.headers?.['Retry-After']).toBe('5');
    expect(body).toMatchObject({ code: 'SERVICE_UNAVAILABLE', detail: 'Service temporarily unavailable' });
    expect(result.body).not.toMatch(/refused|garbage|html|Unexpected token/);
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledWith(
      'Request degraded',
      expect.objectContaining({ failure, dependency: 'DynamoDB', errorName }),
    );
  });

  it.each([
    {
      label: 'ValidationException',
      answer: awsJsonError(400, 'com.amazon.coral.validate#ValidationException'),
    },
    {
      label: 'AccessDeniedException',
      answer: awsJsonError(400, 'com.amazonaws.dynamodb.v20120810#AccessDeniedException'),
    },
    {
      label: 'a 403 page the SDK cannot parse',
      answer: { status: 403, contentType: 'text/html', body: '<html>Forbidden</html>' },
    },
  ])('keeps $label a 500 logged as an error: ours to fix, not passing', async ({ answer }) => {
    const server = await faultServer(answer);
    const { result, body, logger } = await answerOf(server.endpoint);
    await server.close();
    expect(result.statusCode).toBe(500);
    expect(result.headers?.['Retry-After']).toBeUndefined();
    expect(body).toMatchObject({ code: 'INTERNAL', detail: 'An unexpected error occurred' });
    expect(logger.warn).not.toHaveBeenCalled();
    expect(logger.error).toHaveBeenCalledWith('Request failed', expect.anything());
  });

  it('names the service of a KMS client made by createKmsClient', async () => {
    const kms = createKmsClient({ endpoint: refusedEndpoint, region: 'us-east-1', ...quickLimits });
    const logger = { error: vi.fn(), warn: vi.fn() };
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger }))
        .handler(async () => {
          await kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/none', KeySpec: 'AES_256' }));
          return json(200, {});
        }),
    );
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
    const result = await handler(event, context);
    vi.unstubAllEnvs();
    kms.destroy();
    expect(result.statusCode).toBe(503);
    expect(logger.warn).toHaveBeenCalledWith(
      'Request degraded',
      expect.objectContaining({ failure: 'unreachable', dependency: 'KMS', errorCode: 'ECONNREFUSED' }),
    );
  });

  it('answers the same for a client the toolkit did not make, which cannot name its service', async () => {
    const client = new DynamoDBClient({
      endpoint: refusedEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const { handler, logger } = readRoute(client);
    const result = await handler(event, context);
    client.destroy();
    expect(result.statusCode).toBe(503);
    const [, fields] = logger.warn.mock.calls[0] as [string, Record<string, unknown>];
    expect(fields).toMatchObject({ failure: 'unreachable', errorCode: 'ECONNREFUSED' });
    expect(fields).not.toHaveProperty('dependency');
  });

  describe('against the embedded DynamoDB', () => {
    let client: DynamoDBClient;

    beforeAll(() => {
      client = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint'), maxAttempts: 1 });
    });

    afterAll(() => {
      client.destroy();
    });

    it('keeps a missing table a 500: a misconfiguration, not an outage', async () => {
      const { handler, logger } = dataRoute(client, (documents) =>
        documents.send(new GetCommand({ TableName: 'no-such-table', Key: { pk: 'a', sk: 'b' } })),
      );
      const result = await handler(event, context);
      expect(result.statusCode).toBe(500);
      expect(logger.error).toHaveBeenCalledWith(
        'Request failed',
        expect.objectContaining({ error: expect.objectContaining({ name: 'ResourceNotFoundException' }) }),
      );
    });

    it('keeps a failed condition that the handler did not map a 500', async () => {
      const { handler, logger } = dataRoute(client, (documents) =>
        documents.send(
          new PutCommand({
            TableName: testTableNames.app,
            Item: { pk: `THING#${randomUUID()}`, sk: 'THING' },
            ConditionExpression: 'attribute_exists(pk)',
          }),
        ),
      );
      const result = await handler(event, context);
      expect(result.statusCode).toBe(500);
      expect(logger.warn).not.toHaveBeenCalled();
      expect(logger.error).toHaveBeenCalledWith(
        'Request failed',
        expect.objectContaining({
          error: expect.objectContaining({ name: 'ConditionalCheckFailedException' }),
        }),
      );
    });

    it('answers when the store is up', async () => {
      const { handler } = readRoute(client);
      const result = await handler(event, context);
      expect(result.statusCode).toBe(200);
    });
  });
});
