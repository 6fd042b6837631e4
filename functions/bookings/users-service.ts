// The users service as the bookings function sees it: GET /users/{id} over HTTP, behind a fleet-wide circuit breaker.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { retryAfterSeconds } from '../../middleware/circuit-breaker/guarded-fetch.js';
import type { BoundCallService } from '../../middleware/circuit-breaker/middy.js';
import type { CircuitLogger } from '../../middleware/circuit-breaker/options.js';
import {
  createServiceClient,
  type RequestSigner,
  type ServiceClient,
} from '../../middleware/circuit-breaker/service-client.js';
import { DependencyError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { unknownUserError } from './bookings-model.js';

/**
 * The users circuit: the seeds' thresholds, with a call timeout well inside the bookings function's
 * 10 s and a 15 s reset so that recovery can be watched locally. A user lookup is a GET, so it is
 * retried once after a short jittered pause; both attempts count toward the threshold.
 *
 * The failure window is 30 s, not the breaker's 10 s: a users service that hangs fails each call only
 * when it times out, so bookings sent one at a time add one failure per 3 s, and a 10 s window (aligned
 * to the epoch) never holds five. 2 × 5 × 3 s holds five of them wherever a window boundary cuts the run.
 * The sample's traffic is low, so a longer window costs it nothing; a busy service with rare failures
 * would see them add up over it.
 */
export const usersCircuit = {
  failureThreshold: 5,
  successThreshold: 2,
  timeoutMs: 3000,
  resetTimeoutMs: 15_000,
  rollingWindowMs: 30_000,
  retry: { retries: 1, baseDelayMs: 50, maxDelayMs: 200 },
} as const;

export interface UsersServiceOptions {
  /** The users API's base URL (USERS_API_URL). */
  readonly baseUrl: string;
  /** The toolkit table, where the circuit's state (`CB#users`) is shared by every bookings instance. */
  readonly tableName: string;
  readonly client: DynamoDBClient;
  /** Signs each call as service `bookings`; unsigned when absent. */
  readonly sign: RequestSigner | undefined;
  readonly onEvent: SecurityEventListener;
  readonly logger: CircuitLogger;
}

/** The service client the bookings function calls users with; create it once, at cold start. */
export function createUsersService(options: UsersServiceOptions): ServiceClient<'users'> {
  return createServiceClient({
    tableName: options.tableName,
    client: options.client,
    ...(options.sign ? { sign: options.sign } : {}),
    onEvent: options.onEvent,
    logger: options.logger,
    services: { users: { baseUrl: options.baseUrl, ...usersCircuit } },
  });
}

/**
 * Checks that a user exists by asking the users service. A 404 is the caller's mistake (400 on
 * `body.userId`); any other non-2xx answer means the call itself is broken (e.g. a rejected
 * signature), a server fault reported as 502, but a 429 with `Retry-After` is 503 with it. Outages surface as the breaker's own errors: 502
 * while failures are counted, 504 on a timeout, then 503 with Retry-After once the circuit opens.
 */
export async function assertUserExists(
  callService: BoundCallService<'users'>,
  userId: string,
): Promise<void> {
  const response = await callService('users', `users/${encodeURIComponent(userId)}`);
  if (response.status === 404) throw unknownUserError();
  if (!response.ok) {
    // A 429 the users service throttled with says when to come back: the caller gets 503 and that time.
    throw new DependencyError('users', `users answered ${response.status}`, {
      upstreamStatus: response.status,
      retryAfterSec: response.status === 429 ? retryAfterSeconds(response.headers) : undefined,
    });
  }
}
