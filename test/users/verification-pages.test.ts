// The verification link's pages: which requests get HTML, and that a refusal's text is escaped into it.
import type { Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { HttpEvent, HttpResponse } from '../../functions/shared/route-dispatch.js';
import { linkRefusalPages, prefersHtml } from '../../functions/users/verification-pages.js';
import { GoneError, NotFoundError, TooManyRequestsError, ValidationError } from '../../middleware/errors.js';

function eventAccepting(accept: string | undefined): HttpEvent {
  return {
    version: '2.0',
    routeKey: 'POST /users/{id}/verify',
    rawPath: '/users/u1/verify',
    rawQueryString: '',
    headers: accept === undefined ? {} : { accept },
    isBase64Encoded: false,
    requestContext: { requestId: 'r1', http: { method: 'POST' } } as HttpEvent['requestContext'],
  };
}

/** The answer linkRefusalPages leaves for `error` (undefined: it left the error to problem+json). */
async function answerTo(error: Error, accept: string | undefined) {
  const request = {
    event: eventAccepting(accept),
    context: {} as Context,
    response: undefined,
    error,
    internal: {},
  } as unknown as Request<HttpEvent, HttpResponse>;
  await linkRefusalPages.onError?.(request);
  return request.response as
    | { statusCode: number; headers: Record<string, string>; body: string }
    | undefined;
}

const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

describe('prefersHtml', () => {
  it('is true only where Accept ranks text/html above JSON', () => {
    const cases: [string | undefined, boolean][] = [
      [browser, true],
      ['text/html', true],
      ['text/*', true],
      ['application/json;q=0.5, text/html', true],
      [undefined, false],
      ['*/*', false],
      ['application/json', false],
      ['text/html;q=0.5, application/json', false],
      ['text/html;q=0.9, */*', false],
      ['text/html;q=0', false],
      ['TEXT/HTML;Q=0.2, application/json;q=0.1', true],
      ['text/html;q=x, application/json;q=0.1', false],
    ];
    for (const [accept, expected] of cases) {
      expect({ accept, html: prefersHtml(eventAccepting(accept)) }).toEqual({ accept, html: expected });
    }
  });
});

describe('linkRefusalPages', () => {
  it("renders a refusal of the link as a page for a browser, the error's text escaped", async () => {
    const page = await answerTo(
      new NotFoundError('User <script>alert("x")</script> & co not found'),
      browser,
    );
    expect(page?.statusCode).toBe(404);
    expect(page?.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(page?.body).toContain(
      '<p>User &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co not found</p>',
    );
    expect(page?.body).not.toContain('<script');
    expect((await answerTo(new GoneError("It's gone"), browser))?.body).toContain('<p>It&#39;s gone</p>');
  });

  it('leaves problem+json to a client that does not prefer HTML, and to refusals that are not about the link', async () => {
    expect(await answerTo(new ValidationError('The verification link is invalid'), '*/*')).toBeUndefined();
    expect(
      await answerTo(new ValidationError('The verification link is invalid'), undefined),
    ).toBeUndefined();
    expect(await answerTo(new TooManyRequestsError(10), browser)).toBeUndefined();
    expect(await answerTo(new Error('boom'), browser)).toBeUndefined();
    const bodyFields = new ValidationError('This request takes no body fields', [
      { field: 'body.a', message: 'Unknown field' },
    ]);
    expect(await answerTo(bodyFields, browser)).toBeUndefined();
    // A ValidationError of the query, by contrast, is the link's.
    const query = new ValidationError('Invalid request: query.signature', [
      { field: 'query.signature', message: 'Required' },
    ]);
    expect((await answerTo(query, browser))?.statusCode).toBe(400);
  });
});
