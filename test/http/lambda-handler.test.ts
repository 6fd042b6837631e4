import middy from '@middy/core';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyHandlerV2,
  APIGatewayProxyResult,
  APIGatewayProxyStructuredResultV2,
  Context,
  SQSBatchResponse,
  SQSEvent,
} from 'aws-lambda';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { csrfProtection } from '../../middleware/auth/middy.js';
import { httpErrorHandler, validateInput } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';

const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 1000 } as Context;

function eventOf(method: string, body?: string): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: `${method} /things`,
    rawPath: '/things',
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body }),
    isBase64Encoded: false,
    requestContext: { requestId: 'api-req-1', http: { method } } as APIGatewayProxyEventV2['requestContext'],
  };
}

describe('lambdaHandler', () => {
  it('lets a handler whose middlewares add to the context be called with a plain Context', async () => {
    const pipeline = middy<APIGatewayProxyEventV2>()
      .use(httpErrorHandler())
      .use(validateInput({ body: z.object({ name: z.string() }) }))
      .handler(async (_event, { input }) => {
        expectTypeOf(input.body).toEqualTypeOf<{ name: string }>();
        return json(200, { name: input.body.name });
      });
    const handler = lambdaHandler(pipeline);

    expect(handler).toBe(pipeline);
    expectTypeOf(handler).parameter(1).toEqualTypeOf<Context>();
    const result = await handler(eventOf('POST', '{"name":"n"}'), context);
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body as string)).toEqual({ name: 'n' });
  });

  it("types the answer of a handler that declared no result as its API Gateway version's structured result", async () => {
    const httpApi = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler())
        .handler(async () => json(200, { ok: true })),
    );
    const answer = await httpApi(eventOf('GET'), context);
    expectTypeOf(answer).toEqualTypeOf<APIGatewayProxyStructuredResultV2>();
    expect(answer).toMatchObject({ statusCode: 200, body: '{"ok":true}' });

    const restApi = lambdaHandler(middy<APIGatewayProxyEvent>().handler(async () => json(200, {})));
    expectTypeOf(restApi).returns.resolves.toEqualTypeOf<APIGatewayProxyResult>();
    // A declared result, and any other event's, stays as declared.
    const worker = lambdaHandler(
      middy<SQSEvent, SQSBatchResponse>().handler(async () => ({ batchItemFailures: [] })),
    );
    expectTypeOf(worker).returns.resolves.toEqualTypeOf<SQSBatchResponse>();
  });

  it('fits aws-lambda handler types as the export is annotated', async () => {
    const handler: APIGatewayProxyHandlerV2 = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(csrfProtection())
        .handler(async (_event, { csrfToken }) => json(200, { csrfToken })),
    );

    const result = await handler(eventOf('GET'), context, () => {});
    expect(result).toMatchObject({ statusCode: 200, cookies: [expect.stringMatching(/^__Host-/)] });
  });
});
