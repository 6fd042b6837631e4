// The catch-all function, invoked as API Gateway's `$default` route invokes it.
import { beforeAll, describe, expect, it } from 'vitest';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { captureStdout } from '../helpers/log-capture.js';

const output = captureStdout();
let handler: typeof import('../../functions/catch-all/handler.js').handler;

beforeAll(async () => {
  // The suite silences Powertools; this file reads the function's audit lines, so its logger must write.
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  ({ handler } = await import('../../functions/catch-all/handler.js'));
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
});

function invoke(method: string, path: string) {
  return handler(httpEvent({ method, path, routeKey: '$default' }), lambdaContext());
}

describe('the catch-all function', () => {
  it('answers a path no route has with a 404 problem', async () => {
    const response = await invoke('GET', '/no/such/path');
    expect(response.statusCode).toBe(404);
    expect(response.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    expect(JSON.parse(response.body ?? '')).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      instance: '/no/such/path',
      requestId: 'api-request-1',
    });
  });

  it('answers a known path with a method it lacks with 405 and Allow listing the route table methods', async () => {
    const response = await invoke('PATCH', '/users');
    expect(response.statusCode).toBe(405);
    expect(response.headers).toMatchObject({
      Allow: 'POST',
      'Content-Type': 'application/problem+json',
    });
    expect(JSON.parse(response.body ?? '')).toMatchObject({ status: 405, code: 'METHOD_NOT_ALLOWED' });
    expect((await invoke('PUT', '/webhooks/ep_1')).headers).toMatchObject({ Allow: 'GET, HEAD, DELETE' });
  });

  it('answers HEAD with the status and headers of its problem, without the body', async () => {
    const unknown = await invoke('HEAD', '/no/such/path');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    expect(unknown).not.toHaveProperty('body');
    const postOnly = await invoke('HEAD', '/users');
    expect(postOnly.statusCode).toBe(405);
    expect(postOnly.headers).toMatchObject({ Allow: 'POST' });
    expect(postOnly).not.toHaveProperty('body');
  });

  it('names the path it is handed in a 404, never decoding it again, as the runtime routed on it', async () => {
    // Paths the table has a route for, which reach the catch-all only if API Gateway routed them elsewhere.
    for (const path of ['/users/%E0%A4%A', '/bookings/%zz', '/bookings/a%2Fb']) {
      const response = await invoke('GET', path);
      expect(response.statusCode).toBe(404);
      expect(JSON.parse(response.body ?? '')).toMatchObject({
        code: 'NOT_FOUND',
        detail: `No route for ${path}`,
      });
    }
  });

  it('answers an event without requestContext.http.method (a REST API one) with a 400 naming it', async () => {
    const { requestContext, ...event } = httpEvent({ method: 'GET', path: '/nowhere', routeKey: '$default' });
    const { http: _http, ...withoutHttp } = requestContext;
    const restApiEvent = {
      ...event,
      httpMethod: 'GET',
      requestContext: { ...withoutHttp, httpMethod: 'GET' },
    };
    const response = await handler(restApiEvent as never, lambdaContext());
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body ?? '')).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: 'The event has no requestContext.http.method',
      errors: [{ field: 'requestContext.http.method', message: 'Required' }],
    });
  });

  it('writes the audit line every HTTP function writes, naming the $default route', async () => {
    await invoke('PATCH', '/users');
    expect(output.audit()).toEqual([
      expect.objectContaining({
        eventType: 'http.request',
        outcome: 'failure',
        method: 'PATCH',
        path: '/users',
        statusCode: 405,
        metadata: expect.objectContaining({ routeKey: '$default' }),
      }),
    ]);
  });
});
