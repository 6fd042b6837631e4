// The HTML pages a person sees from the verification link: the confirm button, the confirmation, a refused link, and a new link asked for.
import type { MiddlewareObj, Request } from '@middy/core';
import { headerValue } from '../../middleware/audit/correlation.js';
import { GoneError, HttpError, TooManyRequestsError, ValidationError } from '../../middleware/errors.js';
import type { HttpResult } from '../../middleware/http/response.js';
import { minutesInWords } from '../shared/in-words.js';
import type { HttpEvent, HttpResponse } from '../shared/route-dispatch.js';

/**
 * The answer headers' defaults (functions/shared/route-dispatch.ts) are a JSON API's; a page needs more:
 * nothing it may load or run (`default-src 'none'`, no `<base>`), its one form posting only back to this
 * API, and no Referer carrying the link's signature anywhere.
 */
const verificationPageHeaders: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
};

const htmlEscapes: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => htmlEscapes[character] as string);
}

/**
 * A page of plain text, its content in one `<main>` landmark; `title` and `paragraph` are escaped, `extra`
 * is markup of this module's own. `headers` are the refusal's own (Retry-After), under the page's.
 */
function page(
  statusCode: number,
  title: string,
  paragraph: string,
  extra = '',
  headers: Readonly<Record<string, string>> = {},
): HttpResult {
  const body = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title></head>`,
    `<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(paragraph)}</p>${extra}</main></body>`,
    '</html>',
  ].join('\n');
  return { statusCode, headers: { ...headers, ...verificationPageHeaders }, body };
}

/**
 * The link's page: one button that posts back to the page's own URL (a form without `action` submits to
 * its document's URL, path and query), so no part of the link is written into the page.
 */
export function confirmEmailPage(): HttpResult {
  return page(
    200,
    'Confirm your email address',
    'Press the button to confirm that this email address is yours. If you did not register, close this page: nothing changes.',
    '<form method="post"><button type="submit">Confirm my email address</button></form>',
  );
}

/** What a browser's form post to `POST /users/{id}/verification-email` gets once the email is queued. */
export function newLinkSentPage(): HttpResult {
  return page(
    202,
    'A new link is on its way',
    'A new link is on its way to your address. Open it from the newest email; you can close this page.',
  );
}

/** What a browser's form post gets once the address is verified. */
export function emailConfirmedPage(): HttpResult {
  return page(200, 'Email address confirmed', 'Your email address is confirmed. You can close this page.');
}

/**
 * What an address confirmed before says, whichever way it is reached again: its link opened again (200),
 * its link expired since (410), a new link asked for (409). No button: there is nothing left to do.
 */
const alreadyConfirmed = {
  title: 'Email address already confirmed',
  paragraph: 'Your email address is already confirmed. There is nothing more to do; you can close this page.',
} as const;

/** The link's page once its address is confirmed: opening it again offers no button to press. */
export function emailAlreadyConfirmedPage(): HttpResult {
  return page(200, alreadyConfirmed.title, alreadyConfirmed.paragraph);
}

type MediaRange = { readonly type: string; readonly subtype: string; readonly quality: number };

function mediaRangesOf(accept: string): MediaRange[] {
  return accept.split(',').flatMap((part) => {
    const [range = '', ...parameters] = part.split(';').map((piece) => piece.trim().toLowerCase());
    const [type, subtype] = range.split('/');
    if (!type || !subtype) return [];
    const q = parameters.find((parameter) => /^q\s*=/.test(parameter));
    const quality = q === undefined ? 1 : Number(q.slice(q.indexOf('=') + 1).trim());
    return Number.isFinite(quality) ? [{ type, subtype, quality }] : [];
  });
}

/** The quality `ranges` give `mediaType`, from the most specific range that matches it (RFC 9110 §12.5.1). */
function qualityOf(ranges: readonly MediaRange[], mediaType: string): number {
  const [type, subtype] = mediaType.split('/');
  const exact = ranges.find((range) => range.type === type && range.subtype === subtype);
  const ofType = ranges.find((range) => range.type === type && range.subtype === '*');
  const any = ranges.find((range) => range.type === '*' && range.subtype === '*');
  return (exact ?? ofType ?? any)?.quality ?? 0;
}

/**
 * Whether the request's `Accept` ranks HTML above JSON, as a browser's does (`text/html,…,*\/*;q=0.8`).
 * No `Accept`, or `*\/*` alone, ranks them alike: JSON, which API clients have always had here.
 */
export function prefersHtml(event: HttpEvent): boolean {
  const ranges = mediaRangesOf(headerValue(event.headers, 'accept') ?? '*/*');
  return qualityOf(ranges, 'text/html') > qualityOf(ranges, 'application/json');
}

/**
 * The 410 of a genuine link past its time whose registration is still open: a new link can be sent, so
 * its page offers the button that asks for one.
 */
export class ExpiredRenewableLinkError extends GoneError {
  constructor() {
    super('The verification link has expired; ask for a new one');
    this.name = 'ExpiredRenewableLinkError';
  }
}

/** The 410 of a genuine link past its time whose address was confirmed since: its page says so. */
export class ExpiredConfirmedLinkError extends GoneError {
  constructor() {
    super('The verification link has expired; the address is already confirmed');
    this.name = 'ExpiredConfirmedLinkError';
  }
}

/**
 * Posts to the sibling route `/users/{id}/verification-email`: relative to the link's path
 * `/users/{id}/verify` (query dropped), so neither the id nor the signature is written into the page, and
 * the origin stays the page's own, as `form-action 'self'` requires.
 */
const newLinkForm =
  '<form method="post" action="verification-email"><button type="submit">Send me a new link</button></form>';

/** A 400 about the request's body, which the page's form never gets wrong: no refusal of the link. */
function isBodyProblem(error: HttpError): boolean {
  return (
    error instanceof ValidationError &&
    error.fields.length > 0 &&
    error.fields.every(({ field }) => field === 'body' || field.startsWith('body.'))
  );
}

/** What a refusal's page says: a title, and a sentence of what happened and what to do next. */
type RefusalWording = { readonly title: string; readonly paragraph: string; readonly extra?: string };

/**
 * When to try again, in words, from the seconds `Retry-After` gives (rounded up: never sooner than it
 * says).
 */
function waitInWords(error: TooManyRequestsError): string {
  return minutesInWords(Math.max(1, Math.ceil(error.retryAfterSec / 60)));
}

/**
 * Renders the refusals `wordingOf` words as a page for a browser (its `Accept` {@link prefersHtml}): a
 * person who pressed a button or clicked a link reads what happened and what to do, in words of its own,
 * never the problem's detail (which names ids and fields). Refusals it has no words for (the 400/413/415
 * of a body a page's form never sends) and 5xx stay problem+json, as does every answer to an API client.
 * The page keeps the refusal's status and headers (a 429's Retry-After). Sets the answer without
 * returning it, so the route's other `onError` middlewares (the audit's, the rate limit's headers) still
 * run, and its httpErrorHandler leaves it as it is.
 */
function refusalPages(
  wordingOf: (error: HttpError) => RefusalWording | undefined,
): MiddlewareObj<HttpEvent, HttpResponse> {
  return {
    onError: (request: Request<HttpEvent, HttpResponse>) => {
      const { error } = request;
      if (!(error instanceof HttpError) || isBodyProblem(error) || !prefersHtml(request.event)) return;
      const wording = wordingOf(error);
      if (!wording) return;
      request.response = page(
        error.statusCode,
        wording.title,
        wording.paragraph,
        wording.extra,
        error.headers,
      );
    },
  };
}

const linkRefused = 'This verification link cannot be used';

/** A registration deleted, or lapsed before its address was confirmed: only registering again helps. */
const registrationGone = 'This registration no longer exists. Register again to get a new link.';

/**
 * The verification link's refusals as pages: invalid (400), no such user (404), expired or lapsed (410),
 * too many requests from one address (429). A genuine link that expired while its registration is open
 * ({@link ExpiredRenewableLinkError}) gets the button that asks for a new one; a forged link, a deleted
 * user or a lapsed registration gets none, and the expired link of an address confirmed since
 * ({@link ExpiredConfirmedLinkError}) says it is confirmed.
 */
export const linkRefusalPages = refusalPages((error) => {
  if (error instanceof ExpiredRenewableLinkError) {
    return {
      title: linkRefused,
      paragraph: 'This link has expired. Press the button to get a new link by email.',
      extra: newLinkForm,
    };
  }
  if (error instanceof ExpiredConfirmedLinkError) return alreadyConfirmed;
  if (error instanceof TooManyRequestsError) {
    return {
      title: 'Too many attempts',
      paragraph: `Too many requests came from your connection in a short time. Open the link again in ${waitInWords(error)}.`,
    };
  }
  switch (error.statusCode) {
    case 400:
      return {
        title: linkRefused,
        paragraph:
          'This link is incomplete or has been changed. Open the link from your newest verification email, or copy the whole address into your browser.',
      };
    case 404:
    case 410:
      return { title: linkRefused, paragraph: registrationGone };
    default:
      return undefined;
  }
});

/**
 * The refusals of `POST /users/{id}/verification-email` (the expired link page's button) as pages: no
 * such user, or a lapsed registration (404), an email verified already (409), and too many links asked
 * for (429: the user's budget, or the per-address `register` limit), which says when to ask again.
 */
export const newLinkRefusalPages = refusalPages((error) => {
  const title = 'No new link was sent';
  if (error instanceof TooManyRequestsError) {
    return {
      title,
      paragraph: `Too many new links were asked for in a short time. Try again in ${waitInWords(error)}, or use the link in your newest verification email if it has not expired.`,
    };
  }
  switch (error.statusCode) {
    case 404:
      return { title, paragraph: registrationGone };
    case 409:
      return alreadyConfirmed;
    default:
      return undefined;
  }
});
