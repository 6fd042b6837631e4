// The verification link's pages: which requests get HTML, and that a refusal's text is escaped into it.
import type { Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { HttpEvent, HttpResponse } from '../../functions/shared/route-dispatch.js';
import {
  ExpiredRenewableLinkError,
  linkRefusalPages,
  newLinkRefusalPages,
  prefersHtml,
} from '../../functions/users/verification-pages.js';
import {
  ConflictError,
  GoneError,
  NotFoundError,
  TooManyRequestsError,
  ValidationError,
} from '../../middleware/errors.js';

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

/** The answer `pages` (linkRefusalPages unless given) leaves for `error` (undefined: it left the error to problem+json). */
async function answerTo(error: Error, accept: string | undefined, pages = linkRefusalPages) {
  const request = {
    event: eventAccepting(accept),
    context: {} as Context,
    response: undefined,
    error,
    internal: {},
  } as unknown as Request<HttpEvent, HttpResponse>;
  await pages.onError?.(request);
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
      // A range without q has quality 1, above any q below it.
      ['application/json;q=0.95, text/html', true],
      // A range whose q is no number is dropped, not ranked: JSON is then not acceptable at all.
      ['application/json;q=x, text/html;q=0.5', true],
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

/** The expired link page's form: one button, posting to the sibling route by a relative action. */
const newLinkForm =
  '<form method="post" action="verification-email"><button type="submit">Send me a new link</button></form>';

describe('the expired link page', () => {
  it('offers a new link only for a genuine link whose registration is still open', async () => {
    const renewable = await answerTo(new ExpiredRenewableLinkError(), browser);
    expect(renewable?.statusCode).toBe(410);
    expect(renewable?.body).toContain(
      `<p>The verification link has expired; ask for a new one</p>${newLinkForm}</body>`,
    );
    expect(renewable?.body.match(/<form\b/g)).toHaveLength(1);
    // A forged link, a deleted user, a lapsed registration: nothing to ask for.
    for (const error of [
      new ValidationError('The verification link is invalid'),
      new NotFoundError('User u1 not found'),
      new GoneError('The verification link has expired, and the registration with it; register again'),
      new GoneError('The registration lapsed before its email was verified; register again'),
    ]) {
      const page = await answerTo(error, browser);
      expect(page?.statusCode, error.message).toBe(error.statusCode);
      expect(page?.body, error.message).not.toContain('<form');
    }
    // An API client still gets the problem, with the same detail.
    expect(await answerTo(new ExpiredRenewableLinkError(), 'application/json')).toBeUndefined();
  });

  it("posts to /users/{id}/verification-email wherever the API is mounted, within the page's form-action 'self'", async () => {
    const renewable = await answerTo(new ExpiredRenewableLinkError(), browser);
    expect(renewable?.headers['Content-Security-Policy']).toContain("form-action 'self'");
    const action = /action="([^"]*)"/.exec(renewable?.body ?? '')?.[1] ?? '';
    for (const [link, expected] of [
      [
        'https://api.example.com/users/u1/verify?expires=1&signature=s',
        'https://api.example.com/users/u1/verification-email',
      ],
      [
        'https://abc.execute-api.eu-west-1.amazonaws.com/prod/users/u1/verify?expires=1&signature=s',
        'https://abc.execute-api.eu-west-1.amazonaws.com/prod/users/u1/verification-email',
      ],
    ] as const) {
      expect(new URL(action, link).href).toBe(expected);
    }
  });
});

describe('newLinkRefusalPages', () => {
  it('renders 404 and 409 as pages for a browser; 429, other statuses and API clients stay problem+json', async () => {
    const verified = await answerTo(
      new ConflictError('The email is already verified'),
      browser,
      newLinkRefusalPages,
    );
    expect(verified?.statusCode).toBe(409);
    expect(verified?.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(verified?.body).toContain('<title>No new link was sent</title>');
    expect(verified?.body).toContain('<p>The email is already verified</p></body>');
    expect(
      (await answerTo(new NotFoundError('User u1 not found'), browser, newLinkRefusalPages))?.statusCode,
    ).toBe(404);
    expect(await answerTo(new TooManyRequestsError(10), browser, newLinkRefusalPages)).toBeUndefined();
    expect(
      await answerTo(new ValidationError('Invalid request: path.id'), browser, newLinkRefusalPages),
    ).toBeUndefined();
    expect(
      await answerTo(new ConflictError('The email is already verified'), undefined, newLinkRefusalPages),
    ).toBeUndefined();
  });
});
