// A finished Middy handler typed as Lambda invokes it: with the plain aws-lambda Context.
import type { MiddyfiedHandler } from '@middy/core';
import type { Context } from 'aws-lambda';

/**
 * The same handler, callable with a plain `Context`. Middy has one context type for the handler body and
 * the call, so the fields its middlewares add (`principal`, `input`, `rateLimit`…) are also demanded of
 * whoever calls it: the Lambda runtime, a test, or an `APIGatewayProxyHandlerV2` annotation. The toolkit's
 * middlewares set those fields before the body runs, so nothing needs to bring them; only a field no
 * middleware of this handler sets (a guard without `authenticate`) would be missing, as it would be anyway.
 *
 * @example
 * export const handler = lambdaHandler(
 *   middy<APIGatewayProxyEventV2>()
 *     .use(authenticate({ jwt: verifier }))
 *     .handler(async (_event, { principal }) => json(200, { hello: principal.id })),
 * );
 * await handler(event, context); // context: Context
 */
export function lambdaHandler<
  TEvent,
  TResult,
  TErr,
  TContext extends Context,
  TInternal extends Record<string, unknown>,
>(
  handler: MiddyfiedHandler<TEvent, TResult, TErr, TContext, TInternal>,
): MiddyfiedHandler<TEvent, NoInfer<TResult>, TErr, Context, TInternal> {
  return handler as unknown as MiddyfiedHandler<TEvent, TResult, TErr, Context, TInternal>;
}
