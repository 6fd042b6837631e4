// A finished Middy handler typed as Lambda invokes it: with the plain aws-lambda Context.
import type { MiddyfiedHandler } from '@middy/core';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';

/**
 * The result a handler declared. One declared with none (`middy<APIGatewayProxyEventV2>()`) has Middy's
 * `any`, which let a test read anything off `await handler(event, context)`: for an API Gateway event it is
 * the structured result its version reads, as every toolkit answer and `json()` is; for any other event it
 * stays as it is.
 */
export type HandlerResult<TEvent, TResult> = 0 extends 1 & TResult
  ? TEvent extends APIGatewayProxyEventV2
    ? APIGatewayProxyStructuredResultV2
    : TEvent extends APIGatewayProxyEvent
      ? APIGatewayProxyResult
      : TResult
  : TResult;

/**
 * The same handler, callable with a plain `Context`. Middy has one context type for the handler body and
 * the call, so the fields its middlewares add (`principal`, `input`, `rateLimit`…) are also demanded of
 * whoever calls it: the Lambda runtime, a test, or an `APIGatewayProxyHandlerV2` annotation. The toolkit's
 * middlewares set those fields before the body runs, so nothing needs to bring them; only a field no
 * middleware of this handler sets (a guard without `authenticate`) would be missing, as it would be anyway.
 * A handler that declared no result type answers the structured result of its API Gateway event's version
 * ({@link HandlerResult}).
 *
 * @example
 * export const handler = lambdaHandler(
 *   middy<APIGatewayProxyEventV2>()
 *     .use(authenticate({ jwt: verifier }))
 *     .handler(async (_event, { principal }) => json(200, { hello: principal.id })),
 * );
 * const result = await handler(event, context); // context: Context; result: APIGatewayProxyStructuredResultV2
 */
export function lambdaHandler<
  TEvent,
  TResult,
  TErr,
  TContext extends Context,
  TInternal extends Record<string, unknown>,
>(
  handler: MiddyfiedHandler<TEvent, TResult, TErr, TContext, TInternal>,
): MiddyfiedHandler<TEvent, HandlerResult<TEvent, NoInfer<TResult>>, TErr, Context, TInternal> {
  return handler as unknown as MiddyfiedHandler<
    TEvent,
    HandlerResult<TEvent, TResult>,
    TErr,
    Context,
    TInternal
  >;
}
