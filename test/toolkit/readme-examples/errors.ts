// README, "Errors": a handler answers a 4xx by throwing its class.
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import {
  GoneError,
  httpErrorHandler,
  json,
  lambdaHandler,
  MethodNotAllowedError,
  NotFoundError,
  TooManyRequestsError,
} from '../../../middleware/index.js';
import { invites } from './scaffolding.js';
// invites: your store

export const handler = lambdaHandler(
  middy<APIGatewayProxyEventV2>()
    .use(httpErrorHandler())
    .handler(async (event) => {
      if (event.requestContext.http.method !== 'POST') throw new MethodNotAllowedError(['POST']); // 405, Allow: POST
      const invite = await invites.find(event.pathParameters?.code ?? '');
      if (invite === undefined) throw new NotFoundError('No such invitation'); // 404 NOT_FOUND
      if (invite.acceptedAt !== undefined) throw new GoneError('The invitation was accepted'); // 410 GONE
      if (invite.failedAttempts >= 5) throw new TooManyRequestsError(600, 'Too many attempts'); // 429, Retry-After: 600
      return json(200, { team: invite.team });
    }),
);
