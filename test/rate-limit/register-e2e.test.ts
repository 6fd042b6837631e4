import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';

const api = useLocalRuntime();
const uniqueEmail = () => `rl-${randomUUID()}@example.com`;
/**
 * The seconds until the first request's unit is back (one every 100 s): 100 at that request, less by
 * each whole second since, which a loaded machine can let pass between the requests of a test.
 */
const secondsToFull = '(9[0-9]|100)';

describe('the register preset on POST /users, through the local runtime', () => {
  it('answers the 4th registration from one IP within 5 minutes with 429 and does not create the user', async () => {
    const client = randomLoopbackAddress();
    const register = (email: string, sourceIp = client) =>
      api.request('POST', '/users', { body: { email, name: 'Rate Limited' }, sourceIp });

    for (const remaining of [2, 1, 0]) {
      const created = await register(uniqueEmail());
      expect(created.status).toBe(201);
      expect(created.headers.get('ratelimit-policy')).toBe('"register";q=3;w=300');
      expect(created.headers.get('ratelimit')).toMatch(
        new RegExp(`^"register";r=${remaining};t=${secondsToFull}$`),
      );
      expect(created.headers.get('x-ratelimit-limit')).toBe('3');
      expect(created.headers.get('x-ratelimit-remaining')).toBe(String(remaining));
    }

    const fourthEmail = uniqueEmail();
    const fourth = await register(fourthEmail);
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get('content-type')).toBe('application/problem+json');
    expect(fourth.headers.get('retry-after')).toMatch(/^(9[0-9]|100)$/);
    expect(fourth.headers.get('ratelimit')).toBe(`"register";r=0;t=${fourth.headers.get('retry-after')}`);
    expect(fourth.body).toMatchObject({ status: 429, code: 'TOO_MANY_REQUESTS', instance: '/users' });

    // Had the 4th been created, its email would now be taken (409); from another client it registers.
    const elsewhere = await register(fourthEmail, randomLoopbackAddress());
    expect(elsewhere.status).toBe(201);
    expect(elsewhere.headers.get('ratelimit')).toBe('"register";r=2;t=100');
  });

  it('rejects the flood before parsing the body: a malformed request over the limit is still 429', async () => {
    const client = randomLoopbackAddress();
    for (let index = 0; index < 3; index += 1) {
      const invalid = await api.request('POST', '/users', { body: { email: 'nope' }, sourceIp: client });
      expect(invalid.status).toBe(400);
      expect(invalid.headers.get('x-ratelimit-remaining')).toBe(String(2 - index));
    }
    const flooded = await api.request('POST', '/users', { body: '{"email": ', sourceIp: client });
    expect(flooded.status).toBe(429);
  });
});
