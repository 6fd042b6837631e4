// The route table's rate limits as middlewares: one per policy and key, shared by every route of the function.
import { isKeyedByPrincipal } from '../../middleware/rate-limit/client-key.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { type RateLimitEnding, rateLimit } from '../../middleware/rate-limit/middy.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import type { RouteDefinition } from '../routes.js';
import { readEnvironment } from './environment.js';
import type { FunctionObservability } from './observability.js';

/**
 * Where a route's limit sits in its pipeline: per-IP limits before authentication (a flood then
 * costs no token verification), per-principal limits after it (they need `context.principal`).
 * Both run before body parsing.
 */
export type RateLimitStage = 'beforeAuth' | 'afterAuth';

export interface RouteRateLimitMiddleware {
  readonly stage: RateLimitStage;
  readonly middleware: ReturnType<typeof rateLimit>;
}

/**
 * A 503 (a dependency down or throttling) or a 504 (a dependency, or the invocation, out of time), whether
 * the handler answered it or an error rendered as one: on these routes both are failures of ours.
 */
const answeredOutageOrTimeout = ({ response }: RateLimitEnding) =>
  response.statusCode === 503 || response.statusCode === 504;

let store: DynamoDbCounterStore | undefined;
// Per function (the local runtime hosts every function in one process).
const sharedByFunction = new Map<FunctionObservability, Map<string, RouteRateLimitMiddleware>>();

/**
 * The function's rate-limit store on the toolkit table, made on first use (functions without a limit
 * never create its client): the route table's limits use it, and so should a function's own limiters.
 */
export function rateLimitStore(): DynamoDbCounterStore {
  if (!store) {
    const environment = readEnvironment();
    store = new DynamoDbCounterStore({
      tableName: environment.toolkitTableName,
      // Tight bounds: the limiter sits in front of every limited request, so an outage must fail fast.
      client: createDynamoDbClient({
        endpoint: environment.dynamoDbEndpoint,
        requestTimeoutMs: 1000,
        connectionTimeoutMs: 500,
        maxAttempts: 2,
      }),
    });
  }
  return store;
}

/**
 * The rate-limit middleware a route table entry asks for, or `undefined` when it has none. Routes
 * naming the same preset, key and refund share one middleware, hence one budget and one local view.
 *
 * @example
 * const limit = routeRateLimit(route, functionObservability('users'));
 * if (limit?.stage === 'beforeAuth') pipeline.use(limit.middleware);
 */
export function routeRateLimit(
  route: RouteDefinition,
  observability: FunctionObservability,
): RouteRateLimitMiddleware | undefined {
  if (!route.rateLimit) return undefined;
  const { preset, keyBy, refundUnavailable } = route.rateLimit;
  const id = `${preset}|${keyBy}|${refundUnavailable === true}`;
  let shared = sharedByFunction.get(observability);
  if (!shared) {
    shared = new Map();
    sharedByFunction.set(observability, shared);
  }
  let limit = shared.get(id);
  if (!limit) {
    limit = {
      stage: isKeyedByPrincipal([keyBy]) ? 'afterAuth' : 'beforeAuth',
      middleware: rateLimit({
        policy: preset,
        keyBy,
        store: rateLimitStore(),
        // The function's own logger: redacted, and carrying the request's correlation id and context.
        logger: observability.logger,
        onEvent: observability.onEvent,
        ...(refundUnavailable ? { refundWhen: answeredOutageOrTimeout } : {}),
      }),
    };
    shared.set(id, limit);
  }
  return limit;
}
