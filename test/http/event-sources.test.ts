// The HTTP middlewares read API Gateway HTTP API (v2), REST API (v1) and Function URL events, and refuse any
// other (ALB, SQS, EventBridge, a warmup ping, null) by failing the invocation rather than answering it.

import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { Logger } from '@aws-lambda-powertools/logger';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import * as z from 'zod';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate, csrfProtection } from '../../middleware/auth/middy.js';
import { serviceCalls } from '../../middleware/circuit-breaker/middy.js';
import { createServiceClient } from '../../middleware/circuit-breaker/service-client.js';
import { UnsupportedEventError, ValidationError } from '../../middleware/errors.js';
import { httpErrorHandler, validateInput } from '../../middleware/http/middy.js';
import { signedPathOf } from '../../middleware/http/request-event.js';
import { json } from '../../middleware/http/response.js';
import { idempotency } from '../../middleware/idempotency.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { dynamoStore } from '../circuit-breaker/helpers.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { idempotencyStore } from '../helpers/idempotency-records.js';
import { captureStdout } from '../helpers/log-capture.js';

const output = captureStdout();
const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/issuer' });
const bearer = `Bearer ${await issuer.mint({ sub: 'alice' })}`;
/** Whatever invoked the function, as Middy hands it to the middlewares. */
const asEvent = (event: unknown) => event as APIGatewayProxyEventV2;
const context = () =>
  ({ awsRequestId: 'req-1', functionName: 'fn', getRemainingTimeInMillis: () => 10_000 }) as Context;

const albTargetGroup =
  'arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a';

/** An Application Load Balancer event, headers single-valued (the target group's default). */
const albEvent = {
  requestContext: { elb: { targetGroupArn: albTargetGroup } },
  httpMethod: 'POST',
  path: '/lambda',
  queryStringParameters: { query: '1234ABCD' },
  headers: {
    accept: '*/*',
    authorization: bearer,
    'content-type': 'application/json',
    host: 'lambda-alb-123578498.us-east-2.elb.amazonaws.com',
    'x-forwarded-for': '72.12.164.125',
    'x-forwarded-port': '443',
    'x-forwarded-proto': 'https',
  },
  body: '{"secret":"body-value"}',
  isBase64Encoded: false,
};

/** The same with multi-value headers on: no `headers` at all. */
const albMultiValueEvent = {
  requestContext: { elb: { targetGroupArn: albTargetGroup } },
  httpMethod: 'POST',
  path: '/lambda',
  multiValueQueryStringParameters: { query: ['1234ABCD'] },
  multiValueHeaders: {
    accept: ['*/*'],
    authorization: [bearer],
    'content-type': ['application/json'],
    'x-forwarded-for': ['72.12.164.125'],
  },
  body: '{"secret":"body-value"}',
  isBase64Encoded: false,
};

const sqsEvent = {
  Records: [
    {
      messageId: '059f36b4-87a3-44ab-83d2-661975830a7d',
      receiptHandle: 'AQEB...',
      body: '{"to":"a@b"}',
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '1545082649183',
        SenderId: 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: '1545082649185',
      },
      messageAttributes: {},
      md5OfBody: 'e4e68fb7bd0e697a0ae8f1bb342846b3',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-2:123456789012:my-queue',
      awsRegion: 'us-east-2',
    },
  ],
};

const eventBridgeEvent = {
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': 'EC2 Instance State-change Notification',
  source: 'aws.ec2',
  account: '111122223333',
  time: '2017-12-22T18:43:48Z',
  region: 'us-west-1',
  resources: [],
  detail: { 'instance-id': 'i-1', state: 'terminated' },
};

/** Each event no HTTP middleware reads, with what its refusal calls it. */
const unsupportedEvents: readonly [string, unknown, string][] = [
  ['SQS', sqsEvent, 'an aws:sqs event'],
  ['EventBridge', eventBridgeEvent, 'an EventBridge event'],
  ['ALB', albEvent, 'an Application Load Balancer event'],
  ['ALB multi-value', albMultiValueEvent, 'an Application Load Balancer event'],
  ['warmup', { source: 'serverless-plugin-warmup' }, 'an event with neither requestContext nor httpMethod'],
  ['null', null, 'a null event'],
  ['string', 'hello', 'a string event'],
];

/** A REST API (v1) event. */
const restApiEvent = {
  resource: '/orders/{id}',
  path: '/orders/42',
  httpMethod: 'GET',
  headers: { Accept: '*/*', Authorization: bearer, 'X-Forwarded-For': '198.51.100.7, 130.176.0.1' },
  multiValueHeaders: { Accept: ['*/*'], Authorization: [bearer] },
  queryStringParameters: { q: 'x' },
  multiValueQueryStringParameters: { q: ['x'] },
  pathParameters: { id: '42' },
  stageVariables: null,
  requestContext: {
    accountId: '123456789012',
    apiId: 'abc',
    resourceId: 'r1',
    stage: 'prod',
    requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
    httpMethod: 'GET',
    path: '/prod/orders/42',
    resourcePath: '/orders/{id}',
    protocol: 'HTTP/1.1',
    requestTimeEpoch: 1_583_348_638_390,
    identity: { sourceIp: '198.51.100.7', userAgent: 'curl/8' },
  },
  body: null,
  isBase64Encoded: false,
};

/** An HTTP API (v2) event, or with `domain` a Function URL one, which has the same shape. */
function v2Event(domain: string) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/orders/42',
    rawQueryString: 'q=x',
    queryStringParameters: { q: 'x' },
    headers: { authorization: bearer, host: domain, 'x-forwarded-for': '203.0.113.5' },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc',
      domainName: domain,
      domainPrefix: 'abc',
      http: {
        method: 'GET',
        path: '/orders/42',
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.5',
        userAgent: 'curl',
      },
      requestId: 'id-1',
      routeKey: '$default',
      stage: '$default',
      time: '12/Mar/2020:19:03:58 +0000',
      timeEpoch: 1_583_348_638_390,
    },
    isBase64Encoded: false,
  };
}

const supportedEvents: readonly [string, unknown][] = [
  ['REST API (v1)', restApiEvent],
  ['HTTP API (v2)', v2Event('abc.execute-api.us-east-1.amazonaws.com')],
  ['Function URL', v2Event('abc.lambda-url.us-east-1.on.aws')],
  [
    'hand-written REST API (v1) test event without requestContext',
    {
      httpMethod: 'GET',
      path: '/orders/42',
      headers: { Authorization: bearer },
      queryStringParameters: { q: 'x' },
    },
  ],
];

/** Every HTTP-only middleware, each made fresh with what it needs to run. */
function guardedMiddlewares(): [string, () => MiddlewareObj][] {
  const auditLogger = new AuditLogger({ logger: new Logger({ serviceName: 'orders', logLevel: 'INFO' }) });
  const onEvent = createSecurityEventListener({ auditLogger });
  const toolkitTable = idempotencyStore({ name: 'event-sources' });
  const services = createServiceClient({
    store: dynamoStore(),
    services: { users: { baseUrl: 'http://127.0.0.1:1' } },
  });
  return [
    ['authenticate', () => authenticate({ jwt: devIssuerVerifier(issuer), onEvent }) as MiddlewareObj],
    ['csrfProtection', () => csrfProtection({ secret: 'c'.repeat(32), onEvent }) as MiddlewareObj],
    [
      'rateLimit',
      () =>
        rateLimit({
          policy: { name: 'sources', limit: 1, windowSec: 60 },
          store: new MemoryCounterStore(),
          onEvent,
        }) as MiddlewareObj,
    ],
    ['validateInput', () => validateInput({ body: z.object({ to: z.string() }) }) as MiddlewareObj],
    [
      'idempotency',
      () =>
        idempotency({
          persistenceStore: toolkitTable,
          anonymous: true,
          config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
        }) as MiddlewareObj,
    ],
    ['audit', () => audit({ auditLogger }) as MiddlewareObj],
    ['correlationIds', () => correlationIds() as MiddlewareObj],
    ['serviceCalls', () => serviceCalls(services) as MiddlewareObj],
  ];
}

describe.each(guardedMiddlewares())('%s', (name, make) => {
  it.each(unsupportedEvents)('refuses %s events by failing the invocation', async (_, event, kind) => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const ran = vi.fn();
    const handler = middy()
      .use(httpErrorHandler({ logger }))
      .use(make())
      .handler(async () => {
        ran();
        return json(200, {});
      });
    const refusal = await handler(asEvent(event), context()).then(
      (answer: unknown) => ({ answer }),
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(UnsupportedEventError);
    expect(refusal).toMatchObject({
      code: 'UNSUPPORTED_EVENT',
      name: 'UnsupportedEventError',
      middleware: name,
      eventKind: kind,
      message: `${name} reads API Gateway HTTP API (v2), REST API (v1) and Function URL events; got ${kind}`,
    });
    // Neither the token nor the body is quoted.
    expect(String((refusal as Error).message)).not.toContain(bearer.slice(7));
    expect(String((refusal as Error).message)).not.toContain('body-value');
    expect(ran).not.toHaveBeenCalled();
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).not.toHaveBeenCalled();
    // No auth.failure, rate-limit or http.request line for a request that never was one.
    expect(output.audit()).toEqual([]);
  });
});

describe('rateLimit given an unsupported event', () => {
  it('writes no counter item', async () => {
    const store = new MemoryCounterStore();
    const handler = lambdaHandler(
      middy()
        .use(httpErrorHandler())
        .use(rateLimit({ policy: { name: 'sources', limit: 1, windowSec: 60 }, store }))
        .handler(async () => json(200, {})),
    );
    for (const [, event] of unsupportedEvents) {
      await expect(handler(asEvent(event), context())).rejects.toThrow(UnsupportedEventError);
    }
    expect(await store.deleteAll('')).toBe(0);
  });
});

describe.each(supportedEvents)('a %s event', (_, event) => {
  it('passes every HTTP middleware', async () => {
    const auditLogger = new AuditLogger({ logger: new Logger({ serviceName: 'orders', logLevel: 'INFO' }) });
    const store = new MemoryCounterStore();
    const handler = lambdaHandler(
      middy()
        .use(correlationIds())
        .use(audit({ auditLogger }))
        .use(httpErrorHandler())
        .use(rateLimit({ policy: { name: 'sources', limit: 5, windowSec: 60 }, store }))
        .use(authenticate({ jwt: devIssuerVerifier(issuer) }))
        .use(csrfProtection({ secret: 'c'.repeat(32) }))
        .use(validateInput({ query: z.object({ q: z.string() }) }))
        .handler(async (_event, { principal, input }) => json(200, { principal: principal.id, input })),
    );
    const answer = (await handler(asEvent(event), context())) as { statusCode: number; body: string };
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ principal: 'alice', input: { query: { q: 'x' } } });
    expect(await store.deleteAll('')).toBe(1);
    expect(output.audit()).toMatchObject([{ eventType: 'http.request', statusCode: 200 }]);
  });
});

describe('signedPathOf', () => {
  const withPath = (event: APIGatewayProxyEventV2, rawPath: string) => ({ ...event, rawPath });
  const httpApi = v2Event('abc.execute-api.us-east-1.amazonaws.com') as APIGatewayProxyEventV2;
  const functionUrl = v2Event('abc.lambda-url.us-east-1.on.aws') as APIGatewayProxyEventV2;

  it("takes an HTTP API's rawPath as it is, already decoded, and never decodes it again", () => {
    expect(signedPathOf(withPath(httpApi, '/users/café'))).toBe('/users/café');
    expect(signedPathOf(withPath(httpApi, '/webhooks/a%41'))).toBe('/webhooks/a%41');
  });

  it("decodes a Function URL's rawPath, which comes as sent, once", () => {
    expect(signedPathOf(withPath(functionUrl, '/users/caf%C3%A9'))).toBe('/users/café');
    expect(signedPathOf(withPath(functionUrl, '/webhooks/a%2541'))).toBe('/webhooks/a%41');
    expect(signedPathOf(withPath(functionUrl, '/50%'))).toBe('/50%');
  });

  it('reads only a Function URL domain as one, not a custom domain that merely mentions it', () => {
    for (const domain of [
      'api.example.com',
      'lambda-url.example.com',
      'api.example.com.lambda-url.evil',
      'x.lambda-url.example.com',
    ]) {
      expect(signedPathOf(withPath(v2Event(domain) as APIGatewayProxyEventV2, '/a%2541')), domain).toBe(
        '/a%2541',
      );
    }
  });

  it('gives no path for a REST API (v1) event or a bare one, so no signature verifies there', () => {
    expect(signedPathOf(restApiEvent as unknown as APIGatewayProxyEventV2)).toBeUndefined();
    expect(signedPathOf({ rawPath: '/users/42' } as APIGatewayProxyEventV2)).toBeUndefined();
    expect(signedPathOf(null as unknown as APIGatewayProxyEventV2)).toBeUndefined();
  });
});

describe('httpErrorHandler', () => {
  it('lets an UnsupportedEventError propagate, however it was thrown, and logs nothing', async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const thrown = new UnsupportedEventError('myMiddleware', 'an aws:sqs event');
    const handler = middy()
      .use(httpErrorHandler({ logger }))
      .handler(async () => {
        throw thrown;
      });
    await expect(handler(asEvent(sqsEvent), context())).rejects.toBe(thrown);
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('still renders other errors, for a null event too', async () => {
    const logger = { error: vi.fn(), warn: vi.fn() };
    const failing = (error: Error) =>
      middy()
        .use(httpErrorHandler({ logger }))
        .handler(async () => {
          throw error;
        });
    const invalid = (await failing(new ValidationError('Bad thing'))(
      asEvent(v2Event('abc.lambda-url.us-east-1.on.aws')),
      context(),
    )) as { statusCode: number; headers: Record<string, string>; body: string };
    expect(invalid.statusCode).toBe(400);
    expect(invalid.headers['Content-Type']).toBe('application/problem+json');
    expect(JSON.parse(invalid.body)).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: 'Bad thing',
      instance: '/orders/42',
      requestId: 'id-1',
    });
    // A null event no longer turns the error being rendered into a TypeError of the renderer.
    const crashed = (await failing(new Error('the real error'))(asEvent(null), context())) as {
      statusCode: number;
      body: string;
    };
    expect(crashed.statusCode).toBe(500);
    expect(JSON.parse(crashed.body)).toMatchObject({ code: 'INTERNAL' });
    expect(JSON.parse(crashed.body)).not.toHaveProperty('instance');
    expect(logger.error).toHaveBeenCalledWith('Request failed', {
      error: expect.objectContaining({ message: 'the real error' }),
    });
  });
});
