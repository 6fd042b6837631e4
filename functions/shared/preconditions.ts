// The sample's answer to conditional requests: no route sends an entity tag, so an If-Match naming one is false.
import type { MiddlewareObj, Request } from '@middy/core';
import { headerValue } from '../../middleware/audit/correlation.js';
import { PreconditionFailedError } from '../../middleware/errors.js';
import type { HttpEvent, HttpResponse } from './route-dispatch.js';

function refuseFalseIfMatch(request: Request<HttpEvent, HttpResponse>): void {
  const ifMatch = headerValue(request.event.headers, 'if-match');
  if (ifMatch === undefined || ifMatch.trim() === '*') return;
  throw new PreconditionFailedError(
    'If-Match names an entity tag, and no resource here has one: the request was not applied',
  );
}

/** Methods whose conditions the sample does not judge: it sends no entity tag for a 304 to name. */
const safeMethods = new Set(['GET', 'HEAD']);

function refuseIfNoneMatchStar(request: Request<HttpEvent, HttpResponse>): void {
  const ifNoneMatch = headerValue(request.event.headers, 'if-none-match');
  if (ifNoneMatch === undefined || safeMethods.has(request.event.requestContext.http.method)) return;
  if (!ifNoneMatch.split(',').some((member) => member.trim() === '*')) return;
  throw new PreconditionFailedError(
    'If-None-Match: * holds only where no resource exists, and this request acts on one: the request was not applied',
  );
}

/**
 * Answers 412 to a request whose `If-Match` is anything but `*`, before the route's own middlewares
 * (validation, idempotency records) and its handler, so nothing is written. No route sends an `ETag`, so
 * no entity tag a client names can match, and RFC 9110 §13.1.1 forbids applying the method then; `*`
 * holds for any resource that exists, which the handler's own 404 covers. `If-None-Match: *` on any other
 * method than GET or HEAD is 412 too (§13.1.2: false where the resource exists): every such route acts on
 * a collection, which exists, or on an item it would 404 were it absent, so only a request that could not
 * succeed anyway is told 412 in place of its 404. `If-Unmodified-Since` is
 * ignored, as §13.1.4 has a server do when it keeps no modification date. Used after authentication and
 * the rate limit: their 401, 403 and 429 come first (§13.2.1: conditions only decide a request that
 * would otherwise succeed).
 */
export const entityTagPreconditions: MiddlewareObj<HttpEvent, HttpResponse> = {
  before: (request) => {
    refuseFalseIfMatch(request);
    refuseIfNoneMatchStar(request);
  },
};
