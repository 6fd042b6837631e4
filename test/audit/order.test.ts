// audit() must run before the middlewares that refuse requests: after them, their 401, 403 and 429 would
// leave no audit line. A pipeline in that order is refused loudly, as a guard before authenticate() is.
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit } from '../../middleware/audit/middy.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { authenticate, requireRoles } from '../../middleware/auth/middy.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { devIssuerVerifier } from '../helpers/dev-verifier.js';
import { httpEvent, lambdaContext } from './fixtures.js';

const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:9/audit-order' });
const verifier = devIssuerVerifier(issuer);

type Middleware = MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>;

const perIp = () => rateLimit({ policy: { limit: 1, windowSec: 60 }, store: new MemoryCounterStore() });

/** `middlewares` in order between httpErrorHandler and the handler, with what the audit logger wrote. */
function pipeline(middlewares: (auditOf: AuditLogger) => Middleware[]) {
  const audits: AuditEvent[] = [];
  const auditLogger = new AuditLogger({ logToConsole: false, sink: (event) => audits.push(event) });
  const logger = { error: vi.fn() };
  let handlerRuns = 0;
  const handler = lambdaHandler(
    middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(httpErrorHandler({ logger }))
      .use(middlewares(auditLogger))
      .handler(async () => {
        handlerRuns += 1;
        return json(200, {});
      }),
  );
  return { handler, audits, logger, handlerRuns: () => handlerRuns };
}

describe('audit() placed after the middlewares that refuse requests', () => {
  it('refuses every request they let through with a logged 500 naming the order to fix', async () => {
    const admin = { authorization: `Bearer ${await issuer.mint({ sub: 'alice', roles: ['admin'] })}` };
    const orders: [string, (auditLogger: AuditLogger) => Middleware[], string][] = [
      [
        'after authenticate and a guard',
        (auditLogger) => [
          authenticate({ jwt: verifier }) as Middleware,
          requireRoles(['admin']) as Middleware,
          audit({ auditLogger }),
        ],
        'an authentication middleware',
      ],
      [
        'after optional authentication, on an anonymous request',
        (auditLogger) => [
          authenticate({ jwt: verifier, optional: true }) as Middleware,
          audit({ auditLogger }),
        ],
        'an authentication middleware',
      ],
      ['after a rate limit', (auditLogger) => [perIp() as Middleware, audit({ auditLogger })], 'rateLimit()'],
      [
        'after a rate limit, authenticate and a guard',
        (auditLogger) => [
          perIp() as Middleware,
          authenticate({ jwt: verifier }) as Middleware,
          requireRoles(['admin']) as Middleware,
          audit({ auditLogger }),
        ],
        'an authentication middleware and rateLimit()',
      ],
    ];
    for (const [order, middlewares, ran] of orders) {
      const { handler, audits, logger, handlerRuns } = pipeline(middlewares);
      const headers = order.includes('anonymous') ? {} : admin;
      const result = await handler(httpEvent({ headers }), lambdaContext());
      expect(result.statusCode, order).toBe(500);
      expect(result.headers?.['Content-Type']).toBe('application/problem+json');
      expect(JSON.parse(result.body ?? '{}')).toMatchObject({ code: 'INTERNAL' });
      expect(handlerRuns(), order).toBe(0);
      expect(audits, order).toEqual([]);
      expect(logger.error).toHaveBeenCalledWith('Request failed', {
        error: expect.objectContaining({
          name: 'InvalidOptionsError',
          code: 'INVALID_OPTIONS',
          message: `Invalid audit options: ${ran} ran before audit(), so the requests refused there (401, 403, 429) would have no audit line: put audit() before authenticate(), the guards and rateLimit()`,
        }),
      });
    }
  });

  it('in the right order audits the 401, 403 and 429 they answer, also on a context handed in again', async () => {
    const { handler, audits, logger } = pipeline((auditLogger) => [
      audit({ auditLogger }),
      perIp() as Middleware,
      authenticate({ jwt: verifier }) as Middleware,
      requireRoles(['admin']) as Middleware,
    ]);
    const member = { authorization: `Bearer ${await issuer.mint({ sub: 'bob', roles: [] })}` };
    const admin = { authorization: `Bearer ${await issuer.mint({ sub: 'alice', roles: ['admin'] })}` };
    // One context for every request, as a test's may be: the principal and rateLimit the first left on it
    // say nothing about the order.
    const context: Context = lambdaContext();
    const statuses: number[] = [];
    for (const [headers, ip] of [
      [admin, '203.0.113.1'],
      [{}, '203.0.113.2'],
      [member, '203.0.113.3'],
      [admin, '203.0.113.3'],
    ] as const) {
      const event = httpEvent({ headers });
      event.requestContext.http.sourceIp = ip;
      statuses.push((await handler(event, context)).statusCode as number);
    }
    expect(statuses).toEqual([200, 401, 403, 429]);
    expect(audits.map((event) => [event.eventType, event.statusCode, event.outcome])).toEqual([
      ['http.request', 200, 'success'],
      ['http.request', 401, 'denied'],
      ['http.request', 403, 'denied'],
      ['http.request', 429, 'denied'],
    ]);
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('refuses a misordered pipeline on a context a well-ordered one authenticated and rate-limited first', async () => {
    const admin = { authorization: `Bearer ${await issuer.mint({ sub: 'alice', roles: ['admin'] })}` };
    const context: Context = lambdaContext();
    const wellOrdered = pipeline((auditLogger) => [
      audit({ auditLogger }),
      perIp() as Middleware,
      authenticate({ jwt: verifier }) as Middleware,
    ]);
    expect((await wellOrdered.handler(httpEvent({ headers: admin }), context)).statusCode).toBe(200);
    // The principal and rateLimit the first request left on the context are not this request's.
    const misordered = pipeline((auditLogger) => [
      perIp() as Middleware,
      authenticate({ jwt: verifier }) as Middleware,
      audit({ auditLogger }),
    ]);
    const signedIn = await misordered.handler(httpEvent({ headers: admin }), context);
    expect(signedIn.statusCode).toBe(500);
    expect(misordered.handlerRuns()).toBe(0);
    expect(misordered.audits).toEqual([]);
    expect(misordered.logger.error).toHaveBeenCalledWith('Request failed', {
      error: expect.objectContaining({
        name: 'InvalidOptionsError',
        message:
          'Invalid audit options: an authentication middleware and rateLimit() ran before audit(), so the requests refused there (401, 403, 429) would have no audit line: put audit() before authenticate(), the guards and rateLimit()',
      }),
    });
  });

  it('audits a well-ordered pipeline on a context a pipeline without audit authenticated and rate-limited first', async () => {
    const admin = { authorization: `Bearer ${await issuer.mint({ sub: 'alice', roles: ['admin'] })}` };
    const context: Context = lambdaContext();
    const withoutAudit = pipeline(() => [
      perIp() as Middleware,
      authenticate({ jwt: verifier }) as Middleware,
    ]);
    expect((await withoutAudit.handler(httpEvent({ headers: admin }), context)).statusCode).toBe(200);
    const wellOrdered = pipeline((auditLogger) => [
      audit({ auditLogger }),
      perIp() as Middleware,
      authenticate({ jwt: verifier }) as Middleware,
    ]);
    const result = await wellOrdered.handler(httpEvent({ headers: admin }), context);
    expect(result.statusCode).toBe(200);
    expect(wellOrdered.handlerRuns()).toBe(1);
    expect(wellOrdered.audits.map((event) => [event.eventType, event.statusCode, event.userId])).toEqual([
      ['http.request', 200, 'alice'],
    ]);
    expect(wellOrdered.logger.error).not.toHaveBeenCalled();
  });
});

describe('order checks across nested pipelines (a route table running a pipeline of its own per route)', () => {
  /** An outer pipeline of `outer` whose handler runs an inner one of `inner` with the same event and context. */
  function nested(outer: Middleware[], inner: Middleware[]) {
    const logger = { error: vi.fn() };
    const innerHandler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
      .use(inner)
      .handler(async () => json(200, {}));
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(httpErrorHandler({ logger }))
        .use(outer)
        .handler((event, context) => innerHandler(event, context)),
    );
    return { handler, logger };
  }

  it('refuses an inner audit() after an outer authenticate() or rateLimit(), as in one pipeline', async () => {
    const token = { authorization: `Bearer ${await issuer.mint({ sub: 'alice' })}` };
    const auditLogger = new AuditLogger({ logToConsole: false, sink: () => undefined });
    for (const [outer, ran] of [
      [authenticate({ jwt: verifier }) as Middleware, 'an authentication middleware'],
      [perIp() as Middleware, 'rateLimit()'],
    ] as const) {
      const { handler, logger } = nested([outer], [audit({ auditLogger })]);
      const result = await handler(httpEvent({ headers: token }), lambdaContext());
      expect(result).toMatchObject({ statusCode: 500 });
      expect(logger.error.mock.calls[0]?.[1]).toMatchObject({
        error: expect.objectContaining({ message: expect.stringContaining(`${ran} ran before audit()`) }),
      });
    }
  });

  it('lets an inner guard read the principal an outer authenticate() set, and an answered request lends its mark to no later one', async () => {
    const token = { authorization: `Bearer ${await issuer.mint({ sub: 'alice', roles: ['admin'] })}` };
    const { handler, logger } = nested(
      [authenticate({ jwt: verifier }) as Middleware],
      [requireRoles(['admin']) as Middleware],
    );
    const context = lambdaContext();
    expect(await handler(httpEvent({ headers: token }), context)).toMatchObject({ statusCode: 200 });
    expect(logger.error).not.toHaveBeenCalled();
    // The same context, now through a pipeline with the guard and no authentication: the earlier request
    // is answered, so its mark does not count, and the guard is the setup fault it is.
    const { handler: unauthenticated, logger: faults } = nested([], [requireRoles(['admin']) as Middleware]);
    expect(await unauthenticated(httpEvent({ headers: token }), context)).toMatchObject({ statusCode: 500 });
    expect(faults.error).toHaveBeenCalledTimes(1);
  });
});
