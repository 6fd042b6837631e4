// Without the Lambda runtime's invocation store (tests, a host of your own), invocations sharing one
// audit() and AuditLogger share the logger's request slot: each request's own line must still be its own,
// and a request that ends without audit()'s cleanup must not lend its fields to a later invocation.
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit } from '../../middleware/audit/middy.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { gate } from '../helpers/gate.js';
import { httpEvent, lambdaContext } from './fixtures.js';

type Middleware = MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>;

function sinkLogger() {
  const audits: AuditEvent[] = [];
  return {
    audits,
    auditLogger: new AuditLogger({ logToConsole: false, sink: (event) => audits.push(event) }),
  };
}

function requestEvent(path: string, requestId: string, sourceIp: string): APIGatewayProxyEventV2 {
  const event = httpEvent({ path, headers: { 'x-correlation-id': `corr-${requestId}` } });
  return {
    ...event,
    requestContext: { ...event.requestContext, requestId, http: { ...event.requestContext.http, sourceIp } },
  };
}

const requestFields = ({ eventType, path, requestId, correlationId, ipAddress, statusCode }: AuditEvent) => ({
  eventType,
  path,
  requestId,
  correlationId,
  ipAddress,
  statusCode,
});

describe('audit() without the runtime invocation store', () => {
  it("writes each request's http.request line with its own fields while another request is in flight", async () => {
    const { audits, auditLogger } = sinkLogger();
    const gates = { '/first': gate(), '/second': gate() };
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(audit({ auditLogger }))
        .use(httpErrorHandler({ logger: { error: () => undefined } }))
        .handler(async (event) => {
          const path = event.rawPath as keyof typeof gates;
          gates[path].reached();
          await gates[path].opened;
          return json(200, { path });
        }),
    );
    // The first request ends while the second, begun after it, is still in flight.
    const first = handler(requestEvent('/first', 'api-first', '198.51.100.1'), lambdaContext());
    await gates['/first'].arrived;
    const second = handler(requestEvent('/second', 'api-second', '198.51.100.2'), lambdaContext());
    await gates['/second'].arrived;
    gates['/first'].open();
    expect((await first).statusCode).toBe(200);
    gates['/second'].open();
    expect((await second).statusCode).toBe(200);

    expect(audits.map(requestFields)).toEqual([
      {
        eventType: 'http.request',
        path: '/first',
        requestId: 'api-first',
        correlationId: 'corr-api-first',
        ipAddress: '198.51.100.1',
        statusCode: 200,
      },
      {
        eventType: 'http.request',
        path: '/second',
        requestId: 'api-second',
        correlationId: 'corr-api-second',
        ipAddress: '198.51.100.2',
        statusCode: 200,
      },
    ]);
  });

  it('drops the scope of a request a plain middleware answered early, so a later invocation does not inherit it', async () => {
    const { audits, auditLogger } = sinkLogger();
    // A warm-up or preflight answer returned from `before` without respondEarly(): Middy skips every `after`.
    const answersEarly: Middleware = {
      before: () => {
        auditLogger.logAccessDenied(undefined, 'preflight_only');
        return json(204, {});
      },
    };
    const httpFunction = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(audit({ auditLogger }))
        .use(httpErrorHandler({ logger: { error: () => undefined } }))
        .use(answersEarly)
        .handler(async () => json(200, {})),
    );
    expect(
      (await httpFunction(requestEvent('/admin/secret', 'api-early', '198.51.100.7'), lambdaContext()))
        .statusCode,
    ).toBe(204);
    // The next invocation in the process: a queue worker sharing the AuditLogger records an admin action.
    await middy().handler(async () => {
      auditLogger.logAdminAction('user.deleted', { userId: 'u9' });
    })({ Records: [] }, lambdaContext());

    expect(audits.map(requestFields)).toEqual([
      // Logged while the early-answering middleware ran: still inside its request.
      {
        eventType: 'access.denied',
        path: '/admin/secret',
        requestId: 'api-early',
        correlationId: 'corr-api-early',
        ipAddress: '198.51.100.7',
        statusCode: undefined,
      },
      {
        eventType: 'admin.action',
        path: undefined,
        requestId: undefined,
        correlationId: undefined,
        ipAddress: undefined,
        statusCode: undefined,
      },
    ]);
  });
});
