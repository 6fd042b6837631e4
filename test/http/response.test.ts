// withHeadersAndCookies: what the toolkit's middlewares add to a handler's answer, header names compared whatever their case.
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../middleware/errors.js';
import { renderProblem } from '../../middleware/http/problem.js';
import { json, withHeadersAndCookies } from '../../middleware/http/response.js';

describe('withHeadersAndCookies', () => {
  it('replaces a header the result spells in another case, sending the value and spelling added', () => {
    const result = {
      statusCode: 200,
      headers: { 'X-Correlation-Id': 'handler-set', ratelimit: 'mine', 'Content-Type': 'text/plain' },
      body: 'x',
    };
    expect(
      withHeadersAndCookies(result, { headers: { 'x-correlation-id': 'caller', RateLimit: '"p";r=4;t=60' } }),
    ).toEqual({
      statusCode: 200,
      headers: { 'Content-Type': 'text/plain', 'x-correlation-id': 'caller', RateLimit: '"p";r=4;t=60' },
      body: 'x',
    });
    // The handler's object may be shared: it is never changed.
    expect(result.headers).toEqual({
      'X-Correlation-Id': 'handler-set',
      ratelimit: 'mine',
      'Content-Type': 'text/plain',
    });
  });

  it('keeps the value added over the result’s of the same spelling, as before', () => {
    expect(
      withHeadersAndCookies(
        { statusCode: 200, headers: { 'x-correlation-id': 'handler-set' } },
        {
          headers: { 'x-correlation-id': 'caller' },
        },
      ),
    ).toEqual({ statusCode: 200, headers: { 'x-correlation-id': 'caller' } });
  });

  it('drops a header added from multiValueHeaders, which a REST API (v1) would send beside it', () => {
    const result = {
      statusCode: 200,
      headers: {},
      multiValueHeaders: { 'X-Correlation-Id': ['mv'], Vary: ['Origin', 'Accept'] },
    };
    expect(withHeadersAndCookies(result, { headers: { 'x-correlation-id': 'caller' } })).toEqual({
      statusCode: 200,
      headers: { 'x-correlation-id': 'caller' },
      multiValueHeaders: { Vary: ['Origin', 'Accept'] },
    });
  });

  it('adds cookies sent as headers to the result’s own Set-Cookie, however it spells it, under one name', () => {
    const result = { statusCode: 200, multiValueHeaders: { 'set-cookie': ['theme=dark'], Vary: ['Origin'] } };
    expect(
      withHeadersAndCookies(result, { cookies: ['csrf=abc; Secure'], cookiesAs: 'set-cookie-headers' }),
    ).toEqual({
      statusCode: 200,
      multiValueHeaders: { Vary: ['Origin'], 'Set-Cookie': ['theme=dark', 'csrf=abc; Secure'] },
    });
  });

  it('moves a Set-Cookie in headers, however spelt, ahead of the others, since a REST API (v1) would drop it', () => {
    const result = {
      statusCode: 200,
      headers: { 'Content-Type': 'text/plain', 'set-cookie': 'session=abc; HttpOnly' },
      multiValueHeaders: { 'Set-Cookie': ['theme=dark'] },
      body: 'ok',
    };
    expect(
      withHeadersAndCookies(result, { cookies: ['csrf=abc; Secure'], cookiesAs: 'set-cookie-headers' }),
    ).toEqual({
      statusCode: 200,
      headers: { 'Content-Type': 'text/plain' },
      multiValueHeaders: { 'Set-Cookie': ['session=abc; HttpOnly', 'theme=dark', 'csrf=abc; Secure'] },
      body: 'ok',
    });
    expect(result.headers).toEqual({ 'Content-Type': 'text/plain', 'set-cookie': 'session=abc; HttpOnly' });
  });

  it('sends a cookie a result names in both headers and multiValueHeaders once', () => {
    const result = {
      statusCode: 200,
      headers: { 'Set-Cookie': 'theme=dark' },
      multiValueHeaders: { 'Set-Cookie': ['theme=dark'] },
    };
    expect(
      withHeadersAndCookies(result, { cookies: ['csrf=abc; Secure'], cookiesAs: 'set-cookie-headers' }),
    ).toEqual({
      statusCode: 200,
      headers: {},
      multiValueHeaders: { 'Set-Cookie': ['theme=dark', 'csrf=abc; Secure'] },
    });
  });
});

describe('the content type of an answer the toolkit builds', () => {
  it('is sent once by json(), whatever case a Content-Type among its headers is spelt in', () => {
    expect(json(200, { ok: true }, { 'content-type': 'text/plain', ETag: '"1"' })).toEqual({
      statusCode: 200,
      headers: { ETag: '"1"', 'Content-Type': 'application/json' },
      body: '{"ok":true}',
    });
  });

  it('is sent once by a problem, as is Cache-Control, whatever case the error’s headers spell them in', () => {
    const error = new ConflictError('Taken', {
      headers: { 'content-type': 'text/html', 'cache-control': 'max-age=60', Location: '/x' },
    });
    expect(renderProblem(error).response.headers).toEqual({
      Location: '/x',
      'Content-Type': 'application/problem+json',
      'Cache-Control': 'no-store',
    });
  });
});
