import { describe, expect, it } from 'vitest';
import type { RouteDefinition } from '../../functions/routes.js';
import { createRouteMatcher } from '../../functions/shared/route-matcher.js';

const table: RouteDefinition[] = [
  { method: 'GET', path: '/items/{id}', function: 'users', auth: { kind: 'public' }, summary: '' },
  { method: 'GET', path: '/items/special', function: 'health', auth: { kind: 'public' }, summary: '' },
  { method: 'DELETE', path: '/items/{id}', function: 'users', auth: { kind: 'public' }, summary: '' },
];
const match = createRouteMatcher(table);

describe('route matcher', () => {
  it('takes path parameters from the decoded path as they are, never decoding them again', () => {
    expect(match('GET', '/items/a b')).toMatchObject({ kind: 'found', pathParameters: { id: 'a b' } });
    // From `/items/a%252Fb` sent: no second decode makes it `a/b`, so no parameter holds a slash.
    expect(match('GET', '/items/a%2Fb')).toMatchObject({ kind: 'found', pathParameters: { id: 'a%2Fb' } });
    expect(match('GET', '/items/50%')).toMatchObject({ kind: 'found', pathParameters: { id: '50%' } });
  });

  it('prefers a literal segment over a parameter', () => {
    expect(match('GET', '/items/special')).toMatchObject({ kind: 'found', route: { function: 'health' } });
  });

  it('lists the allowed methods of a known path, HEAD wherever GET is', () => {
    expect(match('POST', '/items/1')).toEqual({
      kind: 'method-not-allowed',
      allow: ['GET', 'HEAD', 'DELETE'],
    });
  });

  it("matches HEAD on a GET route to its HEAD route, with the GET route's function and parameters", () => {
    expect(match('HEAD', '/items/a b')).toEqual({
      kind: 'found',
      route: { ...table[0], method: 'HEAD' },
      pathParameters: { id: 'a b' },
    });
    expect(match('HEAD', '/items/special')).toMatchObject({ kind: 'found', route: { function: 'health' } });
  });

  it('has no HEAD route where the table has no GET route', () => {
    const postOnly = createRouteMatcher([
      { method: 'POST', path: '/things', function: 'users', auth: { kind: 'public' }, summary: '' },
    ]);
    expect(postOnly('HEAD', '/things')).toEqual({ kind: 'method-not-allowed', allow: ['POST'] });
  });

  it('does not match a parameter across slashes or an unknown path', () => {
    expect(match('GET', '/items/a/b')).toEqual({ kind: 'not-found' });
    expect(match('GET', '/other')).toEqual({ kind: 'not-found' });
  });
});
