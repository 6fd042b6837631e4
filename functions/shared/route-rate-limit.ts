// The route table's rate limits as middlewares: one per policy and key, shared by every route of the function.
import { Logger } from '@aws-lambda-powertools/logger';
import { defaultRedactor } from '../../middleware/audit/redact.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { rateLimit } from '../../middleware/rate-limit/middy.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import type { RouteDefinition } from '../routes.js';
import { readEnvironment } from './environment.js';

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

let store: DynamoDbCounterStore | undefined;
// Its store-failure warnings carry the SDK error: redacted like every other line (middleware/audit/redact.ts).
const logger = new Logger({ serviceName: 'rate-limit', jsonReplacerFn: defaultRedactor.replacer });
// Per event listener (one per function; the local runtime hosts every function in one process).
const sharedByListener = new Map<SecurityEventListener | undefined, Map<string, RouteRateLimitMiddleware>>();

/** Made on first use, at cold start: functions without a limited route never create the client. */
function sharedStore(): DynamoDbCounterStore {
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
 * naming the same preset and key share one middleware, hence one budget and one local view.
 *
 * @example
 * const limit = routeRateLimit(route);
 * if (limit?.stage === 'beforeAuth') pipeline.use(limit.middleware);
 */
export function routeRateLimit(
  route: RouteDefinition,
  onEvent?: SecurityEventListener,
): RouteRateLimitMiddleware | undefined {
  if (!route.rateLimit) return undefined;
  const { preset, keyBy } = route.rateLimit;
  const id = `${preset}|${keyBy}`;
  let shared = sharedByListener.get(onEvent);
  if (!shared) {
    shared = new Map();
    sharedByListener.set(onEvent, shared);
  }
  let limit = shared.get(id);
  if (!limit) {
    limit = {
      stage: keyBy === 'ip' || keyBy === 'route' ? 'beforeAuth' : 'afterAuth',
      middleware: rateLimit({
        policy: preset,
        keyBy,
        store: sharedStore(),
        logger,
        ...(onEvent ? { onEvent } : {}),
      }),
    };
    shared.set(id, limit);
  }
  return limit;
}
