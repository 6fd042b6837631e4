// Lambda Managed Instances run invocations concurrently in one process, each inside the runtime's
// InvokeStore: an audit event must carry the fields of the request it was logged in.

import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { gate } from '../helpers/gate.js';
import { captureStdout } from '../helpers/log-capture.js';
import { managedInstances } from '../helpers/managed-instances.js';
import { alice, httpEvent, lambdaContext } from './fixtures.js';

const output = captureStdout();

const { invoke } = managedInstances();

function requestEvent(path: string, requestId: string, correlationId: string): APIGatewayProxyEventV2 {
  const event = httpEvent({ path, headers: { 'x-correlation-id': correlationId } });
  return { ...event, requestContext: { ...event.requestContext, requestId } };
}

describe('audit() with invocations running concurrently in one process', () => {
  it('gives each event the fields and principal of its own request while another is in flight', async () => {
    const logger = new Logger({ serviceName: 'users', logLevel: 'INFO' });
    const auditLogger = new AuditLogger({ logger });
    const gates = { '/first': gate(), '/second': gate() };
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(injectLambdaContext(logger, { resetKeys: true }))
        .use(correlationIds({ loggers: [logger] }))
        .use(audit({ auditLogger }))
        .use(httpErrorHandler({ logger }))
        .handler(async (event, context: Context & { principal?: Principal }) => {
          const path = event.rawPath as keyof typeof gates;
          if (path === '/second') context.principal = alice;
          gates[path].reached();
          await gates[path].opened;
          // A security event the route reports mid-request, while the other request is in flight.
          auditLogger.logAuthFailure('expired', { route: path });
          return json(200, { path });
        }),
    );

    const first = invoke('lambda-first', () =>
      handler(requestEvent('/first', 'api-first', 'corr-first'), lambdaContext()),
    );
    await gates['/first'].arrived;
    const second = invoke('lambda-second', () =>
      handler(requestEvent('/second', 'api-second', 'corr-second'), lambdaContext()),
    );
    await gates['/second'].arrived;
    gates['/first'].open();
    expect((await first).statusCode).toBe(200);
    gates['/second'].open();
    expect((await second).statusCode).toBe(200);

    const events = output.audit().map(({ eventType, path, requestId, correlationId, userId, metadata }) => ({
      eventType,
      path,
      requestId,
      correlationId,
      userId,
      route: metadata.route,
    }));
    const firstFields = {
      path: '/first',
      requestId: 'api-first',
      correlationId: 'corr-first',
      userId: undefined,
    };
    const secondFields = {
      path: '/second',
      requestId: 'api-second',
      correlationId: 'corr-second',
      userId: 'user-alice',
    };
    expect(events).toEqual([
      { eventType: 'auth.failure', ...firstFields, route: '/first' },
      { eventType: 'http.request', ...firstFields, route: undefined },
      { eventType: 'auth.failure', ...secondFields, route: '/second' },
      { eventType: 'http.request', ...secondFields, route: undefined },
    ]);
  });
});

describe('AuditLogger request scopes where the runtime keeps invocations in its store', () => {
  const sinkLogger = () => {
    const events: AuditEvent[] = [];
    return {
      events,
      auditLogger: new AuditLogger({ sink: (event) => events.push(event), logToConsole: false }),
    };
  };

  it('keeps a scope begun outside any invocation (at init) in the logger itself', () => {
    const { events, auditLogger } = sinkLogger();
    auditLogger.beginRequest({ requestId: 'init' });
    auditLogger.logAuthFailure('expired');
    auditLogger.endRequest();
    expect(events.map((event) => event.requestId)).toEqual(['init']);
  });

  it('gives each audit logger its own scope within one invocation', async () => {
    const first = sinkLogger();
    const second = sinkLogger();
    await invoke('lambda-shared', async () => {
      first.auditLogger.beginRequest({ requestId: 'api-first' });
      second.auditLogger.logAuthFailure('expired');
      first.auditLogger.logAuthFailure('expired');
    });
    expect(second.events.map((event) => event.requestId)).toEqual([undefined]);
    expect(first.events.map((event) => event.requestId)).toEqual(['api-first']);
  });
});
