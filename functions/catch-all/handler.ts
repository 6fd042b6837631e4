// The catch-all function: every request no route matches, from API Gateway's `$default` route or the local runtime, gets a problem.
import {
  type HttpError,
  MethodNotAllowedError,
  NotFoundError,
  ValidationError,
} from '../../middleware/errors.js';
import { catchAllFunction } from '../routes.js';
import { functionObservability } from '../shared/observability.js';
import { withRequestMiddlewares } from '../shared/route-dispatch.js';
import { createRouteMatcher } from '../shared/route-matcher.js';

const observability = functionObservability(catchAllFunction);
const matchRoute = createRouteMatcher();

/** Why no route took the request, read from the route table API Gateway's routes come from. */
function unmatchedRequestError(method: string, path: string): HttpError {
  const match = matchRoute(method, path);
  if (match.kind === 'method-not-allowed') return new MethodNotAllowedError(match.allow);
  // A path the table matches yet API Gateway did not route has no function to answer it either.
  return new NotFoundError(`No route for ${path}`);
}

export const handler = withRequestMiddlewares(
  async (event) => {
    // A REST API (v1) event, which the middlewares read but the HTTP API never sends here: a client's mistake.
    const method = event.requestContext?.http?.method;
    if (method === undefined) {
      throw new ValidationError('The event has no requestContext.http.method', [
        { field: 'requestContext.http.method', message: 'Required' },
      ]);
    }
    throw unmatchedRequestError(method, event.rawPath);
  },
  observability.logger,
  observability,
);
