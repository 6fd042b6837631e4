import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it } from 'vitest';
import { routeKeysOf } from '../../functions/routes.js';
import { createPublicHttpFunction } from '../../functions/shared/public-http-function.js';
import type { RouteBuilder } from '../../functions/shared/route-dispatch.js';

const unused: RouteBuilder = () => {
  throw new Error('must not be built');
};
const buildersFor = (keys: readonly string[]) => Object.fromEntries(keys.map((key) => [key, unused]));

describe('createPublicHttpFunction', () => {
  it('refuses a function with a route that needs auth or a rate limit, naming every such route', () => {
    expect(() =>
      createPublicHttpFunction('bookings', buildersFor(routeKeysOf('bookings')), new Logger()),
    ).toThrow(
      'Function bookings has routes that need auth or a rate limit: POST /bookings, GET /bookings, GET /bookings/{id}, DELETE /bookings/{id}; use createHttpFunction',
    );
  });

  it('refuses a public route that has a rate limit (POST /users)', () => {
    expect(() => createPublicHttpFunction('users', buildersFor(routeKeysOf('users')), new Logger())).toThrow(
      /need auth or a rate limit: POST \/users, GET \/users\/\{id\}, GET \/users\/\{id\}\/verify/,
    );
  });

  it('still checks the builders against the route table first', () => {
    expect(() => createPublicHttpFunction('health', {}, new Logger())).toThrow(
      'Function health does not match the route table: missing [GET /health], unknown []',
    );
  });
});
