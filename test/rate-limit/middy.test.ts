import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { correlationIds } from '../../middleware/audit/middy.js';
import { markAuthenticationRan } from '../../middleware/auth/context.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { respondEarly } from '../../middleware/cleanup.js';
import {
  ConflictError,
  DependencyError,
  InvalidOptionsError,
  ServiceUnavailableError,
  TooManyRequestsError,
  UnauthorizedError,
} from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import type { RateLimitRequest } from '../../middleware/rate-limit/client-key.js';
import { type RateLimitEnding, type RateLimitOptions, rateLimit } from '../../middleware/rate-limit/middy.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { testPrincipal } from '../helpers/principals.js';
import { countingClient, itemsWithPrefix, refusedPort, tableName, uniquePolicyName } from './helpers.js';

const lambdaContext = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 5000 } as Context;

function eventOf(
  sourceIp = '203.0.113.10',
  overrides: Partial<APIGatewayProxyEventV2> = {},
): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'POST /login',
    rawPath: '/login',
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    requestContext: {
      requestId: 'api-req-1',
      http: { method: 'POST', path: '/login', protocol: 'HTTP/1.1', sourceIp, userAgent: 'test' },
    } as APIGatewayProxyEventV2['requestContext'],
    ...overrides,
  };
}

const principalOf = (overrides: Partial<Principal> = {}): Principal =>
  testPrincipal({ id: 'user-1', ...overrides });

/**
 * Stands in for authentication: puts the principal on the context and marks the request as `authenticate()`
 * does, the property set to undefined for an anonymous caller (of an optional-auth route).
 */
function asPrincipal(
  principal: Principal | undefined,
): MiddlewareObj<
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Error,
  Context & { principal?: Principal }
> {
  return {
    before: (request) => {
      request.context.principal = principal;
      markAuthenticationRan(request);
    },
  };
}

interface Answer {
  statusCode: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

const counting = countingClient();
const logger = { error: vi.fn(), warn: vi.fn() };

describe('rateLimit through a middy pipeline', () => {
  afterAll(() => {
    counting.client.destroy();
  });

  /**
   * One pipeline: httpErrorHandler, authentication (with the principal given, none for an anonymous caller)
   * before the given limiters unless `authentication` says it runs after them or not at all, and a handler
   * reporting the limit.
   */
  function pipeline(
    limiters: ReturnType<typeof rateLimit>[],
    options: {
      principal?: Principal;
      authentication?: 'first' | 'last' | 'none';
      handle?: () => Promise<unknown>;
    } = {},
  ) {
    const handle = vi.fn(options.handle ?? (async () => undefined));
    const authentication = options.authentication ?? 'first';
    const authenticate = asPrincipal(options.principal);
    const middlewares = {
      first: [authenticate, ...limiters],
      last: [...limiters, authenticate],
      none: limiters,
    }[authentication];
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(httpErrorHandler({ logger }))
        .use(middlewares)
        .handler(async (_event, context) => {
          const custom = await handle();
          return (custom ??
            json(200, {
              remaining: context.rateLimit.remaining,
              policy: context.rateLimit.policy,
            })) as APIGatewayProxyStructuredResultV2;
        }),
    );
    // A fresh context per invocation, as Lambda gives (middlewares write to it), unless one is handed in again.
    const call = async (
      event: APIGatewayProxyEventV2,
      context: Context = { ...lambdaContext },
    ): Promise<Answer> => {
      const result = (await handler(event, context)) as APIGatewayProxyStructuredResultV2;
      return {
        statusCode: result.statusCode ?? 0,
        headers: (result.headers ?? {}) as Record<string, string>,
        body: typeof result.body === 'string' && result.body.startsWith('{') ? JSON.parse(result.body) : {},
      };
    };
    return { call, handle };
  }

  const limitOf = (options: Partial<RateLimitOptions> & Pick<RateLimitOptions, 'policy'>) =>
    rateLimit({ tableName, client: counting.client, ...options } as RateLimitOptions);

  describe('responses', () => {
    it('puts RateLimit-Policy, RateLimit and X-RateLimit-* on an allowed response, and the result on the context', async () => {
      const name = uniquePolicyName('ok');
      const { call } = pipeline([limitOf({ policy: { name, limit: 3, windowSec: 300 } })]);
      const before = Math.floor(Date.now() / 1000);
      const answer = await call(eventOf('203.0.113.11'));
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toEqual({ remaining: 2, policy: name });
      expect(answer.headers).toMatchObject({
        'Content-Type': 'application/json',
        'RateLimit-Policy': `"${name}";q=3;w=300`,
        RateLimit: `"${name}";r=2;t=100`,
        'X-RateLimit-Limit': '3',
        'X-RateLimit-Remaining': '2',
      });
      const after = Math.ceil(Date.now() / 1000);
      const reset = Number(answer.headers['X-RateLimit-Reset']);
      expect(reset).toBeGreaterThanOrEqual(before + 100);
      expect(reset).toBeLessThanOrEqual(after + 101);
    });

    it('answers 429 problem+json with Retry-After and the headers once over the limit, without running the handler', async () => {
      const name = uniquePolicyName('over');
      const { call, handle } = pipeline([limitOf({ policy: { name, limit: 2, windowSec: 60 } })]);
      await call(eventOf('203.0.113.12'));
      await call(eventOf('203.0.113.12'));
      const rejected = await call(eventOf('203.0.113.12'));
      expect(rejected.statusCode).toBe(429);
      expect(rejected.headers).toMatchObject({
        'Content-Type': 'application/problem+json',
        'Retry-After': '30',
        'RateLimit-Policy': `"${name}";q=2;w=60`,
        RateLimit: `"${name}";r=0;t=30`,
        'X-RateLimit-Remaining': '0',
      });
      expect(rejected.body).toMatchObject({
        status: 429,
        code: 'TOO_MANY_REQUESTS',
        type: 'urn:bulwark:problem:too-many-requests',
        instance: '/login',
      });
      expect(rejected.body.detail).toMatch(new RegExp(`${name}; retry in 30 s`));
      expect(handle).toHaveBeenCalledTimes(2);
    });

    it('without an error handler, lets its 429 propagate with what other handlers read: statusCode, expose, headers', async () => {
      const name = uniquePolicyName('alone');
      const handler = lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(limitOf({ policy: { name, limit: 1, windowSec: 60 } }))
          .handler(async () => json(200, {})),
      );
      expect((await handler(eventOf('203.0.113.22'), { ...lambdaContext })).statusCode).toBe(200);
      const refused = await handler(eventOf('203.0.113.22'), { ...lambdaContext }).catch(
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(TooManyRequestsError);
      expect(refused).toMatchObject({
        statusCode: 429,
        expose: true,
        headers: {
          'Retry-After': '60',
          'RateLimit-Policy': `"${name}";q=1;w=60`,
          'X-RateLimit-Remaining': '0',
        },
      });
    });

    it('leaves errors raised after admission with the headers, server faults rendered and logged by httpErrorHandler', async () => {
      const name = uniquePolicyName('errors');
      let failure: Error = new ConflictError('Slot taken');
      const { call } = pipeline([limitOf({ policy: { name, limit: 5, windowSec: 60 } })], {
        handle: async () => {
          throw failure;
        },
      });
      const conflict = await call(eventOf('203.0.113.13'));
      expect(conflict.statusCode).toBe(409);
      expect(conflict.headers).toMatchObject({
        RateLimit: `"${name}";r=4;t=12`,
        'X-RateLimit-Remaining': '4',
      });
      expect(conflict.body).toMatchObject({ code: 'CONFLICT', detail: 'Slot taken' });

      failure = new Error('database on fire');
      const fault = await call(eventOf('203.0.113.13'));
      expect(fault.statusCode).toBe(500);
      expect(fault.headers.RateLimit).toBe(`"${name}";r=3;t=12`);
      expect(logger.error).toHaveBeenCalled();

      failure = new DependencyError('users', 'Users service failed');
      const dependency = await call(eventOf('203.0.113.13'));
      expect(dependency.statusCode).toBe(502);
      expect(dependency.headers['X-RateLimit-Remaining']).toBe('2');

      failure = new ServiceUnavailableError('Users service down', 30);
      const degraded = await call(eventOf('203.0.113.13'));
      expect(degraded.statusCode).toBe(503);
      expect(degraded.headers['Retry-After']).toBe('30');
      expect(degraded.headers['X-RateLimit-Remaining']).toBe('1');
      expect(logger.warn).toHaveBeenCalled();
    });

    it('leaves rendering to httpErrorHandler, so a header middleware before it marks every problem and one after it none', async () => {
      // What @middy/http-cors and @middy/http-security-headers do: add headers in `after`, and in
      // `onError` only to an answer that already exists.
      const addOrigin = (request: { response: APIGatewayProxyStructuredResultV2 | null | undefined }) => {
        if (request.response === undefined || request.response === null) return;
        request.response = {
          ...request.response,
          headers: { ...request.response.headers, 'Access-Control-Allow-Origin': 'https://app.example.com' },
        };
      };
      const corsLike: MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
        after: addOrigin,
        onError: addOrigin,
      };
      const refuseAnonymous: MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
        before: (request) => {
          if (request.event.headers.authorization === undefined) throw new UnauthorizedError();
        },
      };
      const down = countingClient({ endpoint: `http://127.0.0.1:${refusedPort}`, maxAttempts: 1 });
      const build = (corsFirst: boolean, limiter: ReturnType<typeof rateLimit>) => {
        const chain = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>();
        if (corsFirst) chain.use(corsLike).use(httpErrorHandler({ logger }));
        else chain.use(httpErrorHandler({ logger })).use(corsLike);
        return lambdaHandler(
          chain
            .use(limiter)
            .use(refuseAnonymous)
            .handler(async () => json(200, {})),
        );
      };
      const signedIn = { headers: { authorization: 'Bearer t' } };
      const origin = async (handler: ReturnType<typeof build>, event: APIGatewayProxyEventV2) => {
        const answer = await handler(event, { ...lambdaContext });
        return [answer.statusCode, answer.headers?.['Access-Control-Allow-Origin']];
      };

      const corsFirst = build(
        true,
        limitOf({ policy: { name: uniquePolicyName('cors'), limit: 2, windowSec: 60 } }),
      );
      expect(await origin(corsFirst, eventOf('203.0.113.20', signedIn))).toEqual([
        200,
        'https://app.example.com',
      ]);
      expect(await origin(corsFirst, eventOf('203.0.113.20'))).toEqual([401, 'https://app.example.com']);
      expect(await origin(corsFirst, eventOf('203.0.113.20', signedIn))).toEqual([
        429,
        'https://app.example.com',
      ]);
      const closed = rateLimit({
        policy: 'login',
        tableName,
        client: down.client,
        failMode: 'closed',
        logger: { warn: vi.fn() },
      });
      expect(await origin(build(true, closed), eventOf('203.0.113.20'))).toEqual([
        503,
        'https://app.example.com',
      ]);

      const corsAfter = build(
        false,
        limitOf({ policy: { name: uniquePolicyName('cors'), limit: 2, windowSec: 60 } }),
      );
      expect(await origin(corsAfter, eventOf('203.0.113.21', signedIn))).toEqual([
        200,
        'https://app.example.com',
      ]);
      expect(await origin(corsAfter, eventOf('203.0.113.21'))).toEqual([401, undefined]);
      expect(await origin(corsAfter, eventOf('203.0.113.21', signedIn))).toEqual([429, undefined]);
      down.client.destroy();
    });

    it('puts the headers on an answer a later middleware gives early', async () => {
      const name = uniquePolicyName('early');
      const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
        .use(limitOf({ policy: { name, limit: 5, windowSec: 60 } }))
        .use({ before: (request) => respondEarly(request, json(403, { message: 'Closed' })) })
        .handler(async () => json(200, {}));
      const answer = await handler(eventOf('203.0.113.18'), { ...lambdaContext });
      expect(answer.statusCode).toBe(403);
      expect(answer.headers).toMatchObject({ RateLimit: `"${name}";r=4;t=12`, 'X-RateLimit-Limit': '5' });
    });

    it('puts the headers and the correlation id on the error an `after` running later throws', async () => {
      const name = uniquePolicyName('late-after');
      const handler = lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(httpErrorHandler({ logger }))
          .use({
            after: () => {
              throw new ConflictError('Booking changed meanwhile');
            },
          })
          .use(correlationIds())
          .use(limitOf({ policy: { name, limit: 5, windowSec: 60 } }))
          .handler(async () => json(201, {})),
      );
      const event = eventOf('203.0.113.19', { headers: { 'x-correlation-id': 'corr-late' } });
      const answer = await handler(event, { ...lambdaContext });
      expect(answer.statusCode).toBe(409);
      expect(answer.headers).toMatchObject({
        RateLimit: `"${name}";r=4;t=12`,
        'X-RateLimit-Limit': '5',
        'x-correlation-id': 'corr-late',
      });
    });

    it('gives a plain handler result the headers, as API Gateway would send it', async () => {
      const name = uniquePolicyName('plain');
      const { call } = pipeline([limitOf({ policy: { name, limit: 5, windowSec: 60 } })], {
        handle: async () => ({ hello: 'world' }),
      });
      const answer = await call(eventOf('203.0.113.14'));
      expect(answer).toMatchObject({ statusCode: 200, body: { hello: 'world' } });
      expect(answer.headers).toMatchObject({ 'Content-Type': 'application/json', 'X-RateLimit-Limit': '5' });
    });

    it('answers 503 with Retry-After when the store is down and failMode is closed', async () => {
      const down = countingClient({ endpoint: `http://127.0.0.1:${refusedPort}`, maxAttempts: 1 });
      const { call, handle } = pipeline([
        rateLimit({
          policy: 'login',
          tableName,
          client: down.client,
          failMode: 'closed',
          logger: { warn: vi.fn() },
        }),
      ]);
      const answer = await call(eventOf('203.0.113.15'));
      expect(answer.statusCode).toBe(503);
      expect(answer.headers['Retry-After']).toBe('5');
      expect(answer.body).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      expect(handle).not.toHaveBeenCalled();
      down.client.destroy();
    });

    it('keeps answering from the fallback, with the headers, when the store is down and failMode is open', async () => {
      const down = countingClient({ endpoint: `http://127.0.0.1:${refusedPort}`, maxAttempts: 1 });
      const events: SecurityEvent[] = [];
      const { call } = pipeline([
        rateLimit({
          policy: 'mfaVerify',
          tableName,
          client: down.client,
          logger: { warn: vi.fn() },
          onEvent: (event) => events.push(event),
        }),
      ]);
      expect((await call(eventOf('203.0.113.16'))).headers.RateLimit).toBe('"mfaVerify";r=0;t=10');
      expect((await call(eventOf('203.0.113.16'))).statusCode).toBe(429);
      expect(events.map((event) => event.type)).toEqual(['rateLimit.storeError', 'rateLimit.hit']);
      down.client.destroy();
    });
  });

  describe('keys', () => {
    it('counts per sourceIp and ignores X-Forwarded-For unless proxies are trusted', async () => {
      const name = uniquePolicyName('ip');
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy: 'ip' })]);
      expect((await call(eventOf('198.51.100.20'))).statusCode).toBe(200);
      const spoofed = eventOf('198.51.100.20', { headers: { 'x-forwarded-for': '10.9.9.9' } });
      expect((await call(spoofed)).statusCode).toBe(429);
      expect((await call(eventOf('198.51.100.21'))).statusCode).toBe(200);
    });

    it('behind trusted proxies, takes the X-Forwarded-For entry the outermost trusted proxy wrote', async () => {
      const name = uniquePolicyName('proxy');
      const { call } = pipeline([
        limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy: 'ip', trustedProxyCount: 1 }),
      ]);
      // CloudFront (the peer API Gateway sees) appended the real client; the left entry is the client's claim.
      const viaProxy = (claimed: string, client: string) =>
        eventOf('130.176.0.1', { headers: { 'x-forwarded-for': `${claimed}, ${client}` } });
      expect((await call(viaProxy('1.1.1.1', '198.51.100.30'))).statusCode).toBe(200);
      expect((await call(viaProxy('2.2.2.2', '198.51.100.30'))).statusCode).toBe(429);
      expect((await call(viaProxy('1.1.1.1', '198.51.100.31'))).statusCode).toBe(200);
      // A request that reached API Gateway without the proxy has no trusted entry: its own peer address counts.
      expect((await call(eventOf('198.51.100.32'))).statusCode).toBe(200);
    });

    it('groups IPv6 clients by /64 and counts IPv4-mapped addresses as IPv4', async () => {
      const name = uniquePolicyName('ipv6');
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 } })]);
      expect((await call(eventOf('2001:db8:1:2::1'))).statusCode).toBe(200);
      expect((await call(eventOf('2001:db8:1:2:ffff:ffff:ffff:ffff'))).statusCode).toBe(429);
      expect((await call(eventOf('2001:db8:1:3::1'))).statusCode).toBe(200);
      expect((await call(eventOf('198.51.100.40'))).statusCode).toBe(200);
      expect((await call(eventOf('::ffff:198.51.100.40'))).statusCode).toBe(429);
    });

    it('puts requests without a readable address in one shared bucket rather than none', async () => {
      const name = uniquePolicyName('noip');
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 } })]);
      expect((await call(eventOf('not-an-ip'))).statusCode).toBe(200);
      const noSourceIp = eventOf('x', {
        requestContext: {
          requestId: 'api-req-2',
          http: { method: 'POST', path: '/login' },
        } as APIGatewayProxyEventV2['requestContext'],
      });
      expect((await call(noSourceIp)).statusCode).toBe(429);
    });

    it('counts REST API (v1) clients per address too, rather than all in one bucket', async () => {
      const name = uniquePolicyName('v1');
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 } })]);
      // A REST API event: the peer is requestContext.identity.sourceIp, and there is no requestContext.http.
      const restApiEvent = (sourceIp: string) =>
        ({
          resource: '/login',
          path: '/login',
          httpMethod: 'POST',
          headers: { 'Content-Type': 'application/json' },
          isBase64Encoded: false,
          requestContext: { requestId: 'rest-1', httpMethod: 'POST', identity: { sourceIp } },
        }) as unknown as APIGatewayProxyEventV2;
      expect((await call(restApiEvent('198.51.100.1'))).statusCode).toBe(200);
      expect((await call(restApiEvent('198.51.100.2'))).statusCode).toBe(200);
      expect((await call(restApiEvent('198.51.100.1'))).statusCode).toBe(429);
    });

    it.each([
      ['user', { id: 'u-1' }, { id: 'u-2' }],
      ['clientId', { clientId: 'c-1', isM2M: true }, { clientId: 'c-2', isM2M: true }],
      [
        'apiKey',
        { id: 'key-1', authMethod: 'apiKey' as const },
        { id: 'key-2', authMethod: 'apiKey' as const },
      ],
      ['tenant', { tenantId: 't-1' }, { tenantId: 't-2' }],
    ] as const)(
      'counts per %s from context.principal, whatever the address',
      async (keyBy, first, second) => {
        const name = uniquePolicyName(keyBy);
        const limiter = limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy });
        const firstCaller = pipeline([limiter], { principal: principalOf(first) });
        const secondCaller = pipeline([limiter], { principal: principalOf(second) });
        expect((await firstCaller.call(eventOf('198.51.100.50'))).statusCode).toBe(200);
        expect((await firstCaller.call(eventOf('198.51.100.51'))).statusCode).toBe(429);
        expect((await secondCaller.call(eventOf('198.51.100.50'))).statusCode).toBe(200);
      },
    );

    it('falls back to the client IP when the request carries no principal field to count by', async () => {
      const name = uniquePolicyName('anon');
      const limiter = limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy: 'apiKey' });
      const anonymous = pipeline([limiter]);
      const jwtUser = pipeline([limiter], { principal: principalOf({ authMethod: 'jwt' }) });
      expect((await anonymous.call(eventOf('198.51.100.60'))).statusCode).toBe(200);
      expect((await jwtUser.call(eventOf('198.51.100.60'))).statusCode).toBe(429);
      expect((await anonymous.call(eventOf('198.51.100.61'))).statusCode).toBe(200);
    });

    it('counts per route, and per IP and route combined', async () => {
      const name = uniquePolicyName('route');
      const perRoute = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy: 'route' })]);
      expect((await perRoute.call(eventOf('198.51.100.70'))).statusCode).toBe(200);
      expect((await perRoute.call(eventOf('198.51.100.71'))).statusCode).toBe(429);
      expect((await perRoute.call(eventOf('198.51.100.71', { routeKey: 'POST /logout' }))).statusCode).toBe(
        200,
      );

      const both = pipeline([
        limitOf({ policy: { name: `${name}-b`, limit: 1, windowSec: 60 }, keyBy: ['ip', 'route'] }),
      ]);
      expect((await both.call(eventOf('198.51.100.72'))).statusCode).toBe(200);
      expect((await both.call(eventOf('198.51.100.72', { routeKey: 'POST /logout' }))).statusCode).toBe(200);
      expect((await both.call(eventOf('198.51.100.72'))).statusCode).toBe(429);
    });

    it('uses a custom identify, and the client IP when it returns nothing', async () => {
      const name = uniquePolicyName('custom');
      const identify = vi.fn(({ event }: RateLimitRequest) => event.headers['x-device-id']);
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 }, identify })]);
      const device = (id: string, ip: string) => eventOf(ip, { headers: { 'x-device-id': id } });
      expect((await call(device('d-1', '198.51.100.80'))).statusCode).toBe(200);
      expect((await call(device('d-1', '198.51.100.81'))).statusCode).toBe(429);
      expect((await call(device('d-2', '198.51.100.80'))).statusCode).toBe(200);
      expect((await call(eventOf('198.51.100.82'))).statusCode).toBe(200);
      expect((await call(eventOf('198.51.100.82'))).statusCode).toBe(429);
      expect(identify).toHaveBeenCalledWith(
        expect.objectContaining({ clientIp: '198.51.100.80', principal: undefined }),
      );
    });
  });

  describe('stacking and trust', () => {
    it('applies per-IP and per-user limits together: the strictest answer wins and both are advertised', async () => {
      const [ipName, userName] = [uniquePolicyName('perip'), uniquePolicyName('peruser')];
      const perIp = limitOf({ policy: { name: ipName, limit: 5, windowSec: 60 }, keyBy: 'ip' });
      const perUser = limitOf({ policy: { name: userName, limit: 2, windowSec: 60 }, keyBy: 'user' });
      const { call } = pipeline([perIp, perUser], { principal: principalOf({ id: uniquePolicyName('u') }) });
      const first = await call(eventOf('198.51.100.90'));
      expect(first.headers).toMatchObject({
        'RateLimit-Policy': `"${ipName}";q=5;w=60, "${userName}";q=2;w=60`,
        RateLimit: `"${ipName}";r=4;t=12, "${userName}";r=1;t=30`,
        'X-RateLimit-Limit': '2',
        'X-RateLimit-Remaining': '1',
      });
      expect(first.body).toMatchObject({ remaining: 1, policy: userName });
      await call(eventOf('198.51.100.91'));
      const third = await call(eventOf('198.51.100.92'));
      expect(third.statusCode).toBe(429);
      expect(third.headers.RateLimit).toBe(`"${ipName}";r=4;t=12, "${userName}";r=0;t=30`);
    });

    it('refuses one limiter .use()d twice as a logged 500 naming the fix, rather than charge each request twice', async () => {
      const name = uniquePolicyName('twice');
      const limiter = limitOf({ policy: { name, limit: 5, windowSec: 60 }, keyBy: 'ip' });
      const { call, handle } = pipeline([limiter, limiter]);
      logger.error.mockClear();
      const answer = await call(eventOf('198.51.100.95'));
      expect(answer.statusCode).toBe(500);
      expect(answer.body).toMatchObject({ code: 'INTERNAL' });
      expect(handle).not.toHaveBeenCalled();
      // What the first run charged, once.
      expect(answer.headers).toMatchObject({
        'RateLimit-Policy': `"${name}";q=5;w=60`,
        RateLimit: `"${name}";r=4;t=12`,
      });
      expect(logger.error).toHaveBeenCalledExactlyOnceWith('Request failed', {
        error: expect.objectContaining({
          name: 'InvalidOptionsError',
          message:
            'Invalid rateLimit options: this rateLimit() ran twice on one request: .use() it once, and create one rateLimit() per limit to stack several',
        }),
      });
      // Used once elsewhere, the same limiter counts on: each invocation is a request of its own.
      const once = pipeline([limiter]);
      const next = await once.call(eventOf('198.51.100.95'));
      expect([next.statusCode, next.headers.RateLimit]).toEqual([200, `"${name}";r=3;t=12`]);
    });

    it('multiplies the limit by the trust the principal earns', async () => {
      const name = uniquePolicyName('trust');
      const trust = vi.fn((principal: Principal | undefined) =>
        principal?.roles.includes('partner') ? 2 : 1,
      );
      const limiter = limitOf({ policy: { name, limit: 2, windowSec: 60 }, keyBy: 'user', trust });
      const partner = pipeline([limiter], {
        principal: principalOf({ id: uniquePolicyName('p'), roles: ['partner'] }),
      });
      const regular = pipeline([limiter], { principal: principalOf({ id: uniquePolicyName('r') }) });
      const statuses = async (caller: typeof partner) => {
        const result = [];
        for (let index = 0; index < 5; index += 1)
          result.push((await caller.call(eventOf('198.51.100.95'))).statusCode);
        return result;
      };
      expect(await statuses(partner)).toEqual([200, 200, 200, 200, 429]);
      expect(await statuses(regular)).toEqual([200, 200, 429, 429, 429]);
      const answer = await partner.call(eventOf('198.51.100.95'));
      expect(answer.headers['RateLimit-Policy']).toBe(`"${name}";q=4;w=60`);
    });

    it('counts the same user id of two tenants, and a service and an M2M client of one name, apart', async () => {
      const limiter = limitOf({
        policy: { name: uniquePolicyName('callers'), limit: 1, windowSec: 60 },
        keyBy: 'user',
      });
      const id = uniquePolicyName('alice');
      const callers = [
        principalOf({ id, tenantId: 'tenant-a', claims: { iss: 'https://idp-a.example' } }),
        principalOf({ id, tenantId: 'tenant-b', claims: { iss: 'https://idp-b.example' } }),
        principalOf({ id, isM2M: true, authMethod: 'service' }),
        principalOf({ id, isM2M: true, authMethod: 'jwt', clientId: id }),
      ];
      for (const principal of callers) {
        const { call } = pipeline([limiter], { principal });
        expect((await call(eventOf('198.51.100.98'))).statusCode, JSON.stringify(principal)).toBe(200);
      }
      // Each caller spent its own unit: the next request of any of them is refused.
      for (const principal of callers) {
        const { call } = pipeline([limiter], { principal });
        expect((await call(eventOf('198.51.100.98'))).statusCode, JSON.stringify(principal)).toBe(429);
      }
    });

    it("counts an app client's users of two tenants, and M2M clients and a service of one name, apart", async () => {
      const limiter = limitOf({
        policy: { name: uniquePolicyName('clients'), limit: 3, windowSec: 60 },
        keyBy: 'clientId',
      });
      const app = uniquePolicyName('spa');
      const call = (principal: Principal, ip: string) => pipeline([limiter], { principal }).call(eventOf(ip));
      for (let index = 0; index < 3; index += 1) {
        const user = principalOf({ id: `a-user-${index}`, clientId: app, tenantId: 'tenant-a' });
        expect((await call(user, `198.51.100.${110 + index}`)).statusCode).toBe(200);
      }
      const tenantAUser = principalOf({ id: 'a-user-3', clientId: app, tenantId: 'tenant-a' });
      expect((await call(tenantAUser, '198.51.100.113')).statusCode).toBe(429);
      const tenantBUser = principalOf({ id: 'b-user', clientId: app, tenantId: 'tenant-b' });
      expect((await call(tenantBUser, '198.51.100.114')).statusCode).toBe(200);
      const client = uniquePolicyName('svc');
      const machines = [
        principalOf({ id: client, isM2M: true, clientId: client, tenantId: 'tenant-b' }),
        principalOf({ id: client, isM2M: true, clientId: client, tenantId: 'tenant-c' }),
        principalOf({ id: client, isM2M: true, clientId: client, authMethod: 'service' }),
      ];
      for (const machine of machines) {
        for (let index = 0; index < 3; index += 1) {
          expect((await call(machine, '198.51.100.115')).statusCode, JSON.stringify(machine)).toBe(200);
        }
        expect((await call(machine, '198.51.100.115')).statusCode, JSON.stringify(machine)).toBe(429);
      }
    });

    it('treats a trust function that returns nonsense as a server fault and admits nothing', async () => {
      const { call, handle } = pipeline([
        limitOf({
          policy: { name: uniquePolicyName('nonsense'), limit: 2, windowSec: 60 },
          trust: () => Number.NaN,
        }),
      ]);
      expect((await call(eventOf('198.51.100.96'))).statusCode).toBe(500);
      expect(handle).not.toHaveBeenCalled();
    });

    it('reports each rejection as a rateLimit.hit event with the principal and no address', async () => {
      const events: SecurityEvent[] = [];
      const name = uniquePolicyName('events');
      const principal = principalOf({ id: uniquePolicyName('e') });
      const { call } = pipeline(
        [
          limitOf({
            policy: { name, limit: 1, windowSec: 60 },
            keyBy: 'user',
            onEvent: (event) => events.push(event),
          }),
        ],
        { principal },
      );
      await call(eventOf('198.51.100.97'));
      await call(eventOf('198.51.100.97'));
      expect(events).toEqual([
        {
          type: 'rateLimit.hit',
          reason: 'known_over_limit',
          principal,
          metadata: { policy: name, limit: 1, routeKey: 'POST /login', keyBy: 'user', source: 'local' },
        },
      ]);
      expect(JSON.stringify(events)).not.toContain('198.51.100.97');
    });

    it('reports the kinds the key was made of: ip for an anonymous caller of an optional-auth route', async () => {
      const events: SecurityEvent[] = [];
      const onEvent = (event: SecurityEvent) => events.push(event);
      const name = uniquePolicyName('anonhit');
      const perUser = limitOf({ policy: { name, limit: 1, windowSec: 60 }, keyBy: 'user', onEvent });
      const perUserRoute = limitOf({
        policy: { name: `${name}-r`, limit: 1, windowSec: 60 },
        keyBy: ['user', 'route'],
        onEvent,
      });
      for (const limiter of [perUser, perUserRoute]) {
        const anonymous = pipeline([limiter]);
        await anonymous.call(eventOf('198.51.100.98'));
        expect((await anonymous.call(eventOf('198.51.100.98'))).statusCode).toBe(429);
      }
      expect(events.map((event) => event.metadata?.keyBy)).toEqual(['ip', 'ip+route']);
      expect(events.every((event) => event.principal === undefined)).toBe(true);
    });
  });

  describe('order with authentication', () => {
    const principalKeys = [['user'], ['clientId'], ['apiKey'], ['tenant'], ['ip', 'user']] as const;

    it.each(
      principalKeys.flatMap((keyBy) => (['last', 'none'] as const).map((order) => [keyBy, order] as const)),
    )(
      'a limit by %j with authentication %s is a logged 500 naming the order, counting nothing',
      async (keyBy, authentication) => {
        const counted = countingClient();
        const limiter = rateLimit({
          policy: { name: uniquePolicyName('order'), limit: 5, windowSec: 60 },
          keyBy: [...keyBy],
          tableName,
          client: counted.client,
        });
        const { call, handle } = pipeline([limiter], { principal: principalOf(), authentication });
        logger.error.mockClear();
        const answer = await call(eventOf('198.51.100.110'));
        expect(answer.statusCode).toBe(500);
        expect(answer.body).toMatchObject({ code: 'INTERNAL' });
        expect(answer.headers).not.toHaveProperty('RateLimit');
        expect(handle).not.toHaveBeenCalled();
        expect(counted.total()).toBe(0);
        expect(logger.error).toHaveBeenCalledWith('Request failed', {
          error: expect.objectContaining({
            name: 'InvalidOptionsError',
            message: `Invalid rateLimit options: keyBy ${keyBy.join('+')} counts per caller on context.principal, but no authentication middleware ran before rateLimit(): put rateLimit() after authenticate(), or key it by ip or route alone on a route without authentication`,
          }),
        });
        counted.client.destroy();
      },
    );

    it('a limit by user before authentication is refused also on a context an authenticated request left its principal on', async () => {
      const limitByUser = () =>
        limitOf({ policy: { name: uniquePolicyName('reused'), limit: 5, windowSec: 60 }, keyBy: 'user' });
      const context: Context = { ...lambdaContext };
      const wellOrdered = pipeline([limitByUser()], { principal: principalOf() });
      expect((await wellOrdered.call(eventOf('198.51.100.111'), context)).statusCode).toBe(200);
      const misordered = pipeline([limitByUser()], { principal: principalOf(), authentication: 'last' });
      logger.error.mockClear();
      const answer = await misordered.call(eventOf('198.51.100.111'), context);
      expect(answer.statusCode).toBe(500);
      expect(misordered.handle).not.toHaveBeenCalled();
      expect(logger.error).toHaveBeenCalledWith('Request failed', {
        error: expect.objectContaining({
          name: 'InvalidOptionsError',
          message:
            'Invalid rateLimit options: keyBy user counts per caller on context.principal, but no authentication middleware ran before rateLimit(): put rateLimit() after authenticate(), or key it by ip or route alone on a route without authentication',
        }),
      });
    });

    it('limits by ip, route, both or identify without any authentication, as before it', async () => {
      const name = uniquePolicyName('noauth');
      const keys: Partial<RateLimitOptions>[] = [
        { keyBy: 'ip' },
        { keyBy: 'route' },
        { keyBy: ['ip', 'route'] },
        { identify: ({ event }) => event.headers['x-device-id'] },
      ];
      for (const [index, key] of keys.entries()) {
        const limiter = limitOf({ policy: { name: `${name}-${index}`, limit: 1, windowSec: 60 }, ...key });
        const { call } = pipeline([limiter], { authentication: 'none' });
        const event = () => eventOf('198.51.100.120', { headers: { 'x-device-id': 'd-1' } });
        expect((await call(event())).statusCode, JSON.stringify(key)).toBe(200);
        expect((await call(event())).statusCode, JSON.stringify(key)).toBe(429);
      }
    });
  });

  describe('options', () => {
    it('rejects every invalid option at construction, in one error', () => {
      const build = () =>
        rateLimit({
          policy: { limit: -1, windowSec: 60 },
          keyBy: ['ip', 'email' as 'ip'],
          identify: 'header' as never,
          trust: 2 as never,
          cost: 0,
          trustedProxyCount: -1,
          ipv6PrefixLength: 129,
          failMode: 'maybe' as 'open',
          leaseMs: -5,
          tableName,
        } as unknown as RateLimitOptions);
      expect(build).toThrow(InvalidOptionsError);
      try {
        build();
      } catch (error) {
        const problems = (error as InvalidOptionsError).problems.join('\n');
        for (const field of [
          'limit',
          'keyBy',
          'identify',
          'trust',
          'cost',
          'trustedProxyCount',
          'ipv6PrefixLength',
          'failMode',
          'leaseMs',
        ]) {
          expect(problems).toContain(field);
        }
      }
    });

    it('rejects a cost above the policy limit, an empty keyBy and a missing table', () => {
      expect(() => rateLimit({ policy: 'register', cost: 4, tableName })).toThrow(
        /cost 4 exceeds the policy limit 3/,
      );
      expect(() => rateLimit({ policy: 'register', keyBy: [], tableName })).toThrow(
        /keyBy must be one or more/,
      );
      expect(() => rateLimit({ policy: 'register' } as RateLimitOptions)).toThrow(/tableName/);
    });
  });

  describe('a 429 another rule gave', () => {
    it('carries its own Retry-After and none of the headers of a limit that admitted the request', async () => {
      const name = uniquePolicyName('other-rule');
      let answer: () => Promise<unknown> = async () => {
        throw new TooManyRequestsError(57, 'A code was sent less than a minute ago');
      };
      const { call } = pipeline([limitOf({ policy: { name, limit: 3, windowSec: 300 } })], {
        handle: () => answer(),
      });
      const thrown = await call(eventOf('203.0.113.70'));
      expect(thrown.statusCode).toBe(429);
      expect(thrown.headers['Retry-After']).toBe('57');
      expect(Object.keys(thrown.headers).filter((header) => /ratelimit/i.test(header))).toEqual([]);
      answer = async () => json(429, { message: 'Slow down' });
      const returned = await call(eventOf('203.0.113.70'));
      expect(Object.keys(returned.headers).filter((header) => /ratelimit/i.test(header))).toEqual([]);
      // The limit's own refusal still says which limit and when: it admitted two, refuses the fourth.
      answer = async () => undefined;
      expect((await call(eventOf('203.0.113.70'))).headers.RateLimit).toMatch(/r=0/);
      const refused = await call(eventOf('203.0.113.70'));
      expect(refused.statusCode).toBe(429);
      expect(refused.headers.RateLimit).toMatch(/r=0/);
      expect(refused.headers['RateLimit-Policy']).toContain(name);
    });
  });

  describe('the Retry-After of a 503 it admitted', () => {
    const dependencyDown = async () => {
      throw new ServiceUnavailableError('The table is throttling', 5);
    };

    it("is raised to the limit's wait for the unit a retry needs, so a client that waits as told is admitted", async () => {
      const name = uniquePolicyName('retry-after');
      const { call } = pipeline([limitOf({ policy: { name, limit: 1, windowSec: 60 } })], {
        handle: dependencyDown,
      });
      const refused = await call(eventOf('203.0.113.80'));
      expect(refused.statusCode).toBe(503);
      expect(refused.headers).toMatchObject({ 'Retry-After': '60', RateLimit: `"${name}";r=0;t=60` });
      // Retrying any sooner is refused by the limit.
      const tooSoon = await call(eventOf('203.0.113.80'));
      expect(tooSoon.statusCode).toBe(429);
      expect(tooSoon.headers['Retry-After']).toBe('60');
    });

    it('waits for every unit a request of several costs, and for the strictest of stacked limits', async () => {
      const name = uniquePolicyName('retry-after-cost');
      // 4 units a minute: one every 15 s. A request of cost 2 finds 2 left, then none: its retry needs two.
      const { call } = pipeline(
        [
          limitOf({ policy: { name: `${name}-a`, limit: 4, windowSec: 60 }, cost: 2 }),
          limitOf({ policy: { name: `${name}-b`, limit: 10, windowSec: 60 } }),
        ],
        { handle: dependencyDown },
      );
      expect((await call(eventOf('203.0.113.81'))).headers['Retry-After']).toBe('5');
      expect((await call(eventOf('203.0.113.81'))).headers['Retry-After']).toBe('30');
    });

    it('is left as the dependency gave it when units are left, when they were given back, and on other statuses', async () => {
      const name = uniquePolicyName('retry-after-kept');
      const unavailable = ({ response }: RateLimitEnding) => response.statusCode === 503;
      const longer = pipeline([limitOf({ policy: { name: `${name}-a`, limit: 2, windowSec: 60 } })], {
        handle: async () => {
          throw new ServiceUnavailableError('The queue is down', 90);
        },
      });
      await longer.call(eventOf('203.0.113.82'));
      // Out of units, but the dependency's own wait is the longer.
      expect((await longer.call(eventOf('203.0.113.82'))).headers['Retry-After']).toBe('90');

      const refunded = pipeline(
        [limitOf({ policy: { name: `${name}-b`, limit: 1, windowSec: 60 }, refundWhen: unavailable })],
        { handle: dependencyDown },
      );
      expect((await refunded.call(eventOf('203.0.113.82'))).headers['Retry-After']).toBe('5');
      expect((await refunded.call(eventOf('203.0.113.82'))).headers['Retry-After']).toBe('5');

      const dated = pipeline([limitOf({ policy: { name: `${name}-c`, limit: 1, windowSec: 60 } })], {
        handle: async () => json(503, {}, { 'retry-after': 'Wed, 21 Oct 2065 07:28:00 GMT' }),
      });
      expect((await dated.call(eventOf('203.0.113.82'))).headers['retry-after']).toBe(
        'Wed, 21 Oct 2065 07:28:00 GMT',
      );
      const conflict = pipeline([limitOf({ policy: { name: `${name}-d`, limit: 1, windowSec: 60 } })], {
        handle: async () => json(409, {}, { 'Retry-After': '1' }),
      });
      expect((await conflict.call(eventOf('203.0.113.82'))).headers['Retry-After']).toBe('1');
    });
  });

  describe('refundWhen', () => {
    const unavailable = ({ response }: RateLimitEnding) => response.statusCode === 503;
    /** Requests from `ip` answered 2xx until the limit refuses one: how many units the key had left. */
    async function unitsLeft(call: (event: APIGatewayProxyEventV2) => Promise<Answer>, ip: string) {
      for (let admitted = 0; admitted < 10; admitted += 1) {
        if ((await call(eventOf(ip))).statusCode === 429) return admitted;
      }
      throw new Error('the limit never refused');
    }

    it('gives the unit back for a 503 the handler threw or returned, so the client that retries is not refused', async () => {
      const name = uniquePolicyName('refund');
      let answer: () => Promise<unknown> = async () => {
        throw new ServiceUnavailableError('The email could not be queued', 60);
      };
      const { call } = pipeline(
        [limitOf({ policy: { name, limit: 2, windowSec: 60 }, refundWhen: unavailable })],
        {
          handle: () => answer(),
        },
      );
      for (let attempt = 0; attempt < 4; attempt += 1) {
        const refused = await call(eventOf('203.0.113.60'));
        expect(refused.statusCode).toBe(503);
        expect(refused.headers['Retry-After']).toBe('60');
      }
      answer = async () => json(503, { message: 'Try again' });
      for (let attempt = 0; attempt < 4; attempt += 1) {
        expect((await call(eventOf('203.0.113.60'))).statusCode).toBe(503);
      }
      answer = async () => undefined;
      expect(await unitsLeft(call, '203.0.113.60')).toBe(2);
    });

    it('keeps the unit of a 200, a 4xx and a 500 (a bug of ours), and of a 503 by default', async () => {
      const name = uniquePolicyName('no-refund');
      const failures: (Error | undefined)[] = [undefined, new ConflictError('Slot taken'), new Error('bug')];
      let failure: Error | undefined;
      const { call } = pipeline(
        [limitOf({ policy: { name, limit: 5, windowSec: 60 }, refundWhen: unavailable })],
        {
          handle: async () => {
            if (failure) throw failure;
          },
        },
      );
      for (failure of failures) await call(eventOf('203.0.113.61'));
      failure = undefined;
      expect(await unitsLeft(call, '203.0.113.61')).toBe(2);

      const byDefault = pipeline(
        [limitOf({ policy: { name: `${name}-default`, limit: 2, windowSec: 60 } })],
        {
          handle: async () => {
            throw new ServiceUnavailableError('Queue down', 60);
          },
        },
      );
      expect((await byDefault.call(eventOf('203.0.113.61'))).statusCode).toBe(503);
      expect((await byDefault.call(eventOf('203.0.113.61'))).statusCode).toBe(503);
      expect((await byDefault.call(eventOf('203.0.113.61'))).statusCode).toBe(429);
    });

    it('decides on the answer a later middleware gives early, and on the error behind a rendered one', async () => {
      const name = uniquePolicyName('refund-early');
      const seen: RateLimitEnding[] = [];
      const handler = lambdaHandler(
        middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
          .use(httpErrorHandler({ logger }))
          .use(
            limitOf({
              policy: { name, limit: 1, windowSec: 60 },
              refundWhen: (ending) => {
                seen.push(ending);
                return ending.error instanceof ServiceUnavailableError || unavailable(ending);
              },
            }),
          )
          .use({
            before: (request) =>
              request.event.rawPath === '/early'
                ? respondEarly(request, json(503, { message: 'Maintenance' }))
                : undefined,
          })
          .handler(async () => {
            throw new ServiceUnavailableError('Queue down', 60);
          }),
      );
      for (const path of ['/early', '/early', '/queue', '/queue']) {
        const answer = await handler(eventOf('203.0.113.62', { rawPath: path }), { ...lambdaContext });
        expect(answer.statusCode).toBe(503);
      }
      expect(seen.map(({ error }) => error?.constructor)).toEqual([
        undefined,
        undefined,
        ServiceUnavailableError,
        ServiceUnavailableError,
      ]);
      expect(seen[2]?.response.headers).toMatchObject({ 'Retry-After': '60' });
    });

    it('gives back only the units of the limiters told to, and nothing when the predicate throws', async () => {
      const name = uniquePolicyName('refund-stack');
      const refunding = limitOf({
        policy: { name: `${name}-a`, limit: 2, windowSec: 60 },
        refundWhen: unavailable,
      });
      const keeping = limitOf({ policy: { name: `${name}-b`, limit: 3, windowSec: 60 } });
      const throwing = limitOf({
        policy: { name: `${name}-c`, limit: 4, windowSec: 60 },
        refundWhen: () => {
          throw new Error('predicate bug');
        },
      });
      const { call } = pipeline([refunding, keeping, throwing], {
        handle: async () => {
          throw new ServiceUnavailableError('Queue down', 60);
        },
      });
      // Each 503 leaves the first limit whole and spends one unit of the second and third.
      expect((await call(eventOf('203.0.113.63'))).statusCode).toBe(503);
      const second = await call(eventOf('203.0.113.63'));
      expect(second.statusCode).toBe(503);
      const third = await call(eventOf('203.0.113.63'));
      expect(third.statusCode).toBe(503);
      expect(third.headers['RateLimit-Policy']).toContain(`"${name}-b";q=3`);
      expect((await call(eventOf('203.0.113.63'))).statusCode).toBe(429);
      const refusedBy = await call(eventOf('203.0.113.63'));
      expect(refusedBy.body.detail).toMatch(`policy ${name}-b`);
    });

    it('rejects a refundWhen that is not a function', () => {
      expect(() =>
        rateLimit({ policy: 'register', refundWhen: 503 as never, tableName } as RateLimitOptions),
      ).toThrow(/refundWhen must be a function/);
    });

    it('rejects, when built, a logger without warn() and an onEvent that is not a function', () => {
      // The logger is first called when the store fails, the listener's failure is swallowed: neither would show.
      expect(() =>
        rateLimit({ policy: 'register', tableName, logger: console.log as never, onEvent: {} as never }),
      ).toThrow(
        new InvalidOptionsError('rateLimit', [
          'logger must have warn() (a Powertools Logger fits)',
          'onEvent must be a function',
        ]),
      );
    });

    it('names its items by the keyed hash when given keyHashSecret, and refuses a guessable one', async () => {
      const name = uniquePolicyName('keyed');
      const policy = { name, limit: 2, windowSec: 300 };
      const keyHashSecret = 'm'.repeat(32);
      const { call } = pipeline([limitOf({ policy, keyHashSecret })]);
      expect((await call(eventOf('203.0.113.65'))).statusCode).toBe(200);
      const items = await itemsWithPrefix(counting.client, `RL#${name}#`);
      const keyed = new RateLimiter({ policy, tableName, client: counting.client, keyHashSecret });
      expect(items.map((item) => item.pk?.S)).toEqual([keyed.storageKeyOf('ip:203.0.113.65')]);
      expect(() => limitOf({ policy, keyHashSecret: 'short' })).toThrow(
        new InvalidOptionsError('rateLimit', [
          'keyHashSecret must be at least 32 characters besides whitespace, or 32 bytes',
        ]),
      );
    });

    it('takes a null logger, onEvent and refundWhen as left out', async () => {
      const name = uniquePolicyName('nulls');
      const nulls = { logger: null, onEvent: null, refundWhen: null } as never;
      const { call } = pipeline([
        limitOf({ policy: { name, limit: 2, windowSec: 300 }, ...(nulls as object) }),
      ]);
      expect((await call(eventOf('203.0.113.64'))).statusCode).toBe(200);
      expect((await call(eventOf('203.0.113.64'))).statusCode).toBe(200);
      expect((await call(eventOf('203.0.113.64'))).statusCode).toBe(429);
    });
  });

  describe('cost', () => {
    let name: string;
    beforeAll(() => {
      name = uniquePolicyName('cost');
    });

    it('takes `cost` units per request', async () => {
      const { call } = pipeline([limitOf({ policy: { name, limit: 10, windowSec: 60 }, cost: 4 })]);
      expect((await call(eventOf('198.51.100.98'))).headers['X-RateLimit-Remaining']).toBe('6');
      expect((await call(eventOf('198.51.100.98'))).headers['X-RateLimit-Remaining']).toBe('2');
      expect((await call(eventOf('198.51.100.98'))).statusCode).toBe(429);
    });
  });
});
