// The HTML pages a person sees from the verification link: the confirm button, the confirmation, a refused link, and a new link asked for.
import type { MiddlewareObj, Request } from '@middy/core';
import { headerValue } from '../../middleware/audit/correlation.js';
import { GoneError, HttpError, ValidationError } from '../../middleware/errors.js';
import type { HttpResult } from '../../middleware/http/response.js';
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

/** A page of plain text; `title` and `paragraph` are escaped, `extra` is markup of this module's own. */
function page(statusCode: number, title: string, paragraph: string, extra = ''): HttpResult {
  const body = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title></head>`,
    `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(paragraph)}</p>${extra}</body>`,
    '</html>',
  ].join('\n');
  return { statusCode, headers: { ...verificationPageHeaders }, body };
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

/**
 * Renders the refusals of `statuses` as a page titled `title` for a browser (its `Accept`
 * {@link prefersHtml}): a person who pressed a button or clicked a link reads why. Other refusals (429,
 * and the 400/413/415 of a body a page's form never sends) and 5xx stay problem+json. Sets the answer
 * without returning it, so the route's other `onError` middlewares (the audit's, the rate limit's
 * headers) still run, and its httpErrorHandler leaves it as it is.
 */
function refusalPages(title: string, statuses: ReadonlySet<number>): MiddlewareObj<HttpEvent, HttpResponse> {
  return {
    onError: (request: Request<HttpEvent, HttpResponse>) => {
      const { error } = request;
      if (!(error instanceof HttpError) || !statuses.has(error.statusCode)) return;
      if (isBodyProblem(error) || !prefersHtml(request.event)) return;
      const extra = error instanceof ExpiredRenewableLinkError ? newLinkForm : '';
      request.response = page(error.statusCode, title, error.message, extra);
    },
  };
}

/**
 * The verification link's refusals as pages: invalid (400), no such user (404), expired or lapsed (410).
 * A genuine link that expired while its registration is open ({@link ExpiredRenewableLinkError}) gets
 * the button that asks for a new one; a forged link, a deleted user or a lapsed registration gets none.
 */
export const linkRefusalPages = refusalPages(
  'This verification link cannot be used',
  new Set([400, 404, 410]),
);

/**
 * The refusals of `POST /users/{id}/verification-email` (the expired link page's button) as pages: no
 * such user, or a lapsed registration (404), and an email verified already (409). Its 429 (the user's
 * budget, the per-address `register` limit) stays problem+json, as the link pages' does.
 */
export const newLinkRefusalPages = refusalPages('No new link was sent', new Set([404, 409]));
