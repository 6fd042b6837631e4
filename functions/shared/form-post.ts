// The body of a route that takes no fields but is posted by an HTML form: a browser sends it form-encoded, and empty.
import type { MiddlewareObj, Request } from '@middy/core';
import { headerValue } from '../../middleware/audit/correlation.js';
import {
  PayloadTooLargeError,
  UnsupportedContentEncodingError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../../middleware/errors.js';
import { isUnencoded, maxReportedProblems, requestBodyBytes } from '../../middleware/http/input.js';
import type { HttpEvent, HttpResponse } from './route-dispatch.js';
import { smallBodyLimit } from './schemas.js';

const formMediaType = 'application/x-www-form-urlencoded';

function mediaTypeOf(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase();
}

function refuseAnyBodyButAnEmptyForm(request: Request<HttpEvent, HttpResponse>): void {
  const { headers } = request.event;
  if (!isUnencoded(headerValue(headers, 'content-encoding'))) throw new UnsupportedContentEncodingError();
  const bytes = requestBodyBytes(request.event);
  if (bytes.length === 0) return;
  if (mediaTypeOf(headerValue(headers, 'content-type')) !== formMediaType) {
    throw new UnsupportedMediaTypeError(`${formMediaType}, or no body`);
  }
  if (bytes.length > smallBodyLimit.maxBodyBytes) throw new PayloadTooLargeError(smallBodyLimit.maxBodyBytes);
  const fields = [...new Set(new URLSearchParams(bytes.toString('utf8')).keys())];
  if (fields.length > 0) {
    throw new ValidationError(
      'This request takes no body fields',
      fields
        .slice(0, maxReportedProblems)
        .map((field) => ({ field: `body.${field}`, message: 'Unknown field' })),
    );
  }
}

/**
 * For a route an HTML form with only a button posts (the verification link's page): what a browser
 * sends then, `application/x-www-form-urlencoded` and empty, and what an API client sends, no body at
 * all, pass. A body of another type is a 415, one over {@link smallBodyLimit} a 413, and a form that
 * names any field a 400 listing them: the route reads nothing from its body, so nothing may ride in it.
 * A `Content-Encoding` other than `identity` is a 415, as for a JSON body.
 */
export const emptyFormBody: MiddlewareObj<HttpEvent, HttpResponse> = {
  before: refuseAnyBodyButAnEmptyForm,
};
