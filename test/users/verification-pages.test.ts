// The verification link's pages: which requests get HTML, and what each refusal's page says.
import type { Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { HttpEvent, HttpResponse } from '../../functions/shared/route-dispatch.js';
import {
  confirmEmailPage,
  ExpiredConfirmedLinkError,
  ExpiredRenewableLinkError,
  emailAlreadyConfirmedPage,
  emailConfirmedPage,
  linkRefusalPages,
  newLinkRefusalPages,
  newLinkSentPage,
  prefersHtml,
} from '../../functions/users/verification-pages.js';
import {
  ConflictError,
  GoneError,
  HttpError,
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

/** A page's whole body: its title, once as the title and once as the heading, and its content in one `<main>`. */
const pageBody = (title: string, paragraph: string, extra = '') =>
  [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${title}</title></head>`,
    `<body><main><h1>${title}</h1><p>${paragraph}</p>${extra}</main></body>`,
    '</html>',
  ].join('\n');

const linkRefused = 'This verification link cannot be used';
const changedLink =
  'This link is incomplete or has been changed. Open the link from your newest verification email, or copy the whole address into your browser.';
const registrationGone = 'This registration no longer exists. Register again to get a new link.';
const alreadyConfirmed = [
  'Email address already confirmed',
  'Your email address is already confirmed. There is nothing more to do; you can close this page.',
] as const;

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
  it("words each refusal of the link itself, with a next step: never the problem's detail, ids or field names", async () => {
    const cases: [Error, string, string][] = [
      [new ValidationError('The verification link is invalid'), linkRefused, changedLink],
      [
        new ValidationError('Invalid request: query.expires, query.signature', [
          { field: 'query.expires', message: 'Required' },
          { field: 'query.signature', message: 'Required' },
        ]),
        linkRefused,
        changedLink,
      ],
      [
        new ValidationError('Invalid request: path.id', [{ field: 'path.id', message: 'Must be 1-64' }]),
        linkRefused,
        changedLink,
      ],
      [
        new NotFoundError('User 4b6ab929-a46d-431c-9a8c-4a6a90f2646b not found'),
        linkRefused,
        registrationGone,
      ],
      [
        new GoneError('The verification link has expired, and the registration with it; register again'),
        linkRefused,
        registrationGone,
      ],
      [
        new GoneError('The registration lapsed before its email was verified; register again'),
        linkRefused,
        registrationGone,
      ],
      [new ExpiredConfirmedLinkError(), ...alreadyConfirmed],
    ];
    for (const [error, title, paragraph] of cases) {
      const page = await answerTo(error, browser);
      expect({ detail: error.message, status: page?.statusCode, body: page?.body }).toEqual({
        detail: error.message,
        status: error instanceof HttpError ? error.statusCode : undefined,
        body: pageBody(title, paragraph),
      });
    }
  });

  it('answers a browser over the strict limit with a page saying when to open the link again, keeping 429 and Retry-After', async () => {
    const page = await answerTo(new TooManyRequestsError(7), browser);
    expect(page?.statusCode).toBe(429);
    expect(page?.headers['Retry-After']).toBe('7');
    expect(page?.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(page?.body).toBe(
      pageBody(
        'Too many attempts',
        'Too many requests came from your connection in a short time. Open the link again in 1 minute.',
      ),
    );
    expect(await answerTo(new TooManyRequestsError(7), 'application/json')).toBeUndefined();
  });

  it('leaves problem+json to a client that does not prefer HTML, and to refusals that are not about the link', async () => {
    expect(await answerTo(new ValidationError('The verification link is invalid'), '*/*')).toBeUndefined();
    expect(
      await answerTo(new ValidationError('The verification link is invalid'), undefined),
    ).toBeUndefined();
    expect(await answerTo(new TooManyRequestsError(10), '*/*')).toBeUndefined();
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
    expect(renewable?.body).toBe(
      pageBody(
        linkRefused,
        'This link has expired. Press the button to get a new link by email.',
        newLinkForm,
      ),
    );
    expect(renewable?.body.match(/<form\b/g)).toHaveLength(1);
    // A forged link, a deleted user, a lapsed registration: nothing to ask for.
    for (const error of [
      new ValidationError('The verification link is invalid'),
      new NotFoundError('User u1 not found'),
      new GoneError('The verification link has expired, and the registration with it; register again'),
      new GoneError('The registration lapsed before its email was verified; register again'),
      new ExpiredConfirmedLinkError(),
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
  const refusalOf = (error: Error, accept: string | undefined = browser) =>
    answerTo(error, accept, newLinkRefusalPages);

  it('words 404 and 409 itself, with a next step; other statuses and API clients stay problem+json', async () => {
    const unknown = await refusalOf(new NotFoundError('User 4b6ab929-a46d-431c-9a8c-4a6a90f2646b not found'));
    expect(unknown?.statusCode).toBe(404);
    expect(unknown?.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(unknown?.body).toBe(pageBody('No new link was sent', registrationGone));
    const verified = await refusalOf(new ConflictError('The email is already verified'));
    expect(verified?.statusCode).toBe(409);
    expect(verified?.body).toBe(pageBody(...alreadyConfirmed));
    expect(await refusalOf(new ValidationError('Invalid request: path.id'))).toBeUndefined();
    expect(await refusalOf(new ConflictError('The email is already verified'), '*/*')).toBeUndefined();
  });

  it('answers a browser over its limit with a page saying when to try again, in minutes rounded up, keeping 429 and Retry-After', async () => {
    const cases: [number, string, string][] = [
      [1200, '1200', '20 minutes'],
      [1199.2, '1200', '20 minutes'],
      [61, '61', '2 minutes'],
      [60, '60', '1 minute'],
      [0.4, '1', '1 minute'],
    ];
    for (const [retryAfterSec, header, wait] of cases) {
      const page = await refusalOf(
        new TooManyRequestsError(
          retryAfterSec,
          'Too many verification emails were sent to this user; try again later',
        ),
      );
      expect({ retryAfterSec, status: page?.statusCode, header: page?.headers['Retry-After'] }).toEqual({
        retryAfterSec,
        status: 429,
        header,
      });
      expect(page?.headers['Content-Type']).toBe('text/html; charset=utf-8');
      expect(page?.body).toBe(
        pageBody(
          'No new link was sent',
          `Too many new links were asked for in a short time. Try again in ${wait}, or use the link in your newest verification email if it has not expired.`,
        ),
      );
    }
    expect(await refusalOf(new TooManyRequestsError(1200), 'application/json')).toBeUndefined();
  });
});

describe('the pages', () => {
  it('hold their content in one main landmark', () => {
    for (const { body } of [
      confirmEmailPage(),
      emailConfirmedPage(),
      emailAlreadyConfirmedPage(),
      newLinkSentPage(),
    ]) {
      expect(String(body).match(/<main>/g)).toEqual(['<main>']);
      expect(body).toMatch(/<body><main><h1>[^<]+<\/h1><p>[^<]+<\/p>(?:<form\b.*<\/form>)?<\/main><\/body>/);
    }
    expect(emailAlreadyConfirmedPage()).toMatchObject({
      statusCode: 200,
      body: pageBody(...alreadyConfirmed),
    });
  });
});
