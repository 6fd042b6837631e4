// Shared fixtures of the audit and metrics tests: principals and API Gateway events.
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { Principal } from '../../middleware/auth/principal.js';

export const alice: Principal = {
  id: 'user-alice',
  isM2M: false,
  clientId: 'web-client',
  email: 'alice@example.com',
  scopes: ['bookings/read'],
  roles: ['admin'],
  tenantId: 'tenant-1',
  authMethod: 'jwt',
  claims: { sub: 'user-alice' },
};

export const reportingService: Principal = {
  id: 'svc-reporting',
  isM2M: true,
  clientId: 'svc-reporting',
  email: undefined,
  scopes: ['bookings/read'],
  roles: [],
  tenantId: undefined,
  authMethod: 'jwt',
  claims: { client_id: 'svc-reporting' },
};

export interface EventOverrides {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  isBase64Encoded?: boolean;
  routeKey?: string;
}

/** An HTTP API (payload v2) event like API Gateway sends. */
export function httpEvent(overrides: EventOverrides = {}): APIGatewayProxyEventV2 {
  const method = overrides.method ?? 'GET';
  const path = overrides.path ?? '/bookings';
  return {
    version: '2.0',
    routeKey: overrides.routeKey ?? `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'user-agent': 'vitest', ...overrides.headers },
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: {
        method,
        path,
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.9',
        userAgent: overrides.headers?.['user-agent'] ?? 'vitest',
      },
      requestId: 'api-request-1',
      routeKey: overrides.routeKey ?? `${method} ${path}`,
      stage: '$default',
      time: '02/Jan/2030:03:04:05 +0000',
      timeEpoch: 1_893_553_445_000,
    },
    ...(overrides.body === undefined ? {} : { body: overrides.body }),
    isBase64Encoded: overrides.isBase64Encoded ?? false,
  };
}

/** A Lambda context; `remainingMs` drives Middy's early timeout. */
export function lambdaContext(remainingMs = 10_000): Context {
  const deadline = Date.now() + remainingMs;
  const unsupported = () => {
    throw new Error('not supported');
  };
  const context: Context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'bulwark-users',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:bulwark-users',
    memoryLimitInMB: '512',
    awsRequestId: 'lambda-request-1',
    logGroupName: '/aws/lambda/bulwark-users',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
  return context;
}
