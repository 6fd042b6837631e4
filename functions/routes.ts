// The one route table: read by the CDK stack (HTTP API routes) and by the local runtime.
import type { RateLimitKeyBy } from '../middleware/rate-limit/client-key.js';
import type { RateLimitPresetName } from '../middleware/rate-limit/policy.js';
import type { TableDefinition } from '../middleware/store/tables.js';

/**
 * A call a function may make on a table itself: its items by key, and `dynamodb:Query` of its own keys.
 * TransactWriteItems has no IAM action of its own: each item in it is authorised as PutItem, UpdateItem,
 * DeleteItem or ConditionCheckItem. No Scan, batch, DescribeTable or stream read: what scans
 * (`RateLimiter.clearAll`, an admin operation, and bin/recount-webhook-owners.ts) runs in no function.
 */
export type TableAction =
  | 'dynamodb:GetItem'
  | 'dynamodb:PutItem'
  | 'dynamodb:UpdateItem'
  | 'dynamodb:DeleteItem'
  | 'dynamodb:ConditionCheckItem'
  | 'dynamodb:Query';

/**
 * What a function may do on the tables, read by the stack, which grants exactly this. The route, worker
 * and scheduled-function tables each declare it beside the function's other settings.
 */
export interface TableAccess {
  /**
   * The calls its code makes on each table it uses, by table: granted on the table alone (no index), and
   * on no table it does not name. A call made only on a rare path (a retry, a failure, old data) is listed
   * too, with that path in a comment: a missing one fails in production only.
   */
  readonly tableActions: Readonly<Partial<Record<TableDefinition['id'], readonly TableAction[]>>>;
  /**
   * The indexes of its tables it queries, by table: the stack grants `dynamodb:Query` on each of them,
   * named, and on no other index.
   */
  readonly queriedIndexes?: Readonly<Partial<Record<TableDefinition['id'], readonly string[]>>>;
}

/** Settings of one Lambda function that serves HTTP routes. */
export interface HttpFunctionDefinition extends TableAccess {
  /** Handler module, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  /** Lambda memory in MB; CPU scales with it. */
  readonly memoryMb: number;
  /** Lambda timeout; the local runtime enforces it too. */
  readonly timeoutSec: number;
}

export const httpFunctions = {
  health: {
    entry: 'functions/health/handler.ts',
    memoryMb: 256,
    timeoutSec: 5,
    // A public route: one GetItem per table shows both reachable, so that is all it may do.
    tableActions: { app: ['dynamodb:GetItem'], toolkit: ['dynamodb:GetItem'] },
  },
  users: {
    entry: 'functions/users/handler.ts',
    memoryMb: 512,
    timeoutSec: 10,
    tableActions: {
      // Users, their email claims and phone codes; its transactions put, update, delete and condition-check.
      app: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:ConditionCheckItem',
      ],
      toolkit: [
        // Rate limits and SMS budgets read a key whose refused write returned no item; API keys; a deleted
        // person's count item and endpoints.
        'dynamodb:GetItem',
        // Service request nonces; a removed endpoint's tombstone.
        'dynamodb:PutItem',
        // Rate limits and SMS budgets; API keys' last use; the deleted person's count item (closed, decremented).
        'dynamodb:UpdateItem',
        // A removed endpoint, its subscriptions, and its owner's count item with the last one.
        'dynamodb:DeleteItem',
        // Removing an endpoint whose closed owner's count item counts none (endpoints from before counting).
        'dynamodb:ConditionCheckItem',
        // The subscriptions its registration events fan out to.
        'dynamodb:Query',
      ],
    },
    // The users in order (app), and the webhook endpoints of a person it deletes (toolkit, by owner).
    queriedIndexes: { app: ['gsi1'], toolkit: ['gsi1'] },
  },
  bookings: {
    entry: 'functions/bookings/handler.ts',
    memoryMb: 512,
    timeoutSec: 10,
    tableActions: {
      // Bookings and their slots; its transactions put, update, delete and condition-check.
      app: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:ConditionCheckItem',
      ],
      toolkit: [
        // The users circuit; API keys; rate limits read a key whose refused write returned no item; an
        // idempotency record its conflicting put did not return.
        'dynamodb:GetItem',
        // Idempotency records; the users circuit's state changes.
        'dynamodb:PutItem',
        // Rate limits; API keys' last use; the users circuit's failures; idempotency records completed.
        'dynamodb:UpdateItem',
        // The idempotency record of a request that failed, so that its retry runs again.
        'dynamodb:DeleteItem',
        // The subscriptions its booking events fan out to.
        'dynamodb:Query',
      ],
    },
    // Every booking in order, and one user's.
    queriedIndexes: { app: ['gsi1', 'gsi2'] },
  },
  webhooks: {
    entry: 'functions/webhooks/handler.ts',
    memoryMb: 512,
    timeoutSec: 10,
    tableActions: {
      toolkit: [
        // Endpoints, count items, tombstones and rotation markers; API keys; rate limits read a key whose
        // refused write returned no item; an idempotency record its conflicting put did not return.
        'dynamodb:GetItem',
        // A registration's endpoint and subscriptions; an enable's subscriptions; a rotation's marker; a
        // removed endpoint's tombstone; idempotency records.
        'dynamodb:PutItem',
        // Endpoints and their owners' counts; rate limits; API keys' last use; idempotency records completed.
        'dynamodb:UpdateItem',
        // A removed endpoint, its subscriptions, and its owner's count item with the last one; the
        // idempotency record of a request that failed.
        'dynamodb:DeleteItem',
        // A registration checks no tombstone holds its id; a removal whose closed owner's count item counts none.
        'dynamodb:ConditionCheckItem',
        // An endpoint's deliveries.
        'dynamodb:Query',
      ],
    },
    // An owner's endpoints.
    queriedIndexes: { toolkit: ['gsi1'] },
  },
  // No route of the table: API Gateway's `$default` route sends it every request no route matches.
  'catch-all': {
    entry: 'functions/catch-all/handler.ts',
    memoryMb: 256,
    timeoutSec: 3,
    tableActions: {},
  },
} as const satisfies Record<string, HttpFunctionDefinition>;

export type HttpFunctionName = keyof typeof httpFunctions;

/**
 * Answers requests that match no route (404, or 405 with `Allow`), behind API Gateway's `$default`
 * route and in the local runtime alike.
 */
export const catchAllFunction = 'catch-all' satisfies HttpFunctionName;

/** API Gateway's route key for requests no route matches. */
export const catchAllRouteKey = '$default';

/** The function names, typed (Object.keys would widen them to string). */
export const httpFunctionNames = Object.keys(httpFunctions) as HttpFunctionName[];

/** The methods a route table entry names. HEAD is never written: {@link headRouteOf} derives it from GET. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * What a caller must present. Enforced by the auth middlewares; recorded here so the stack, the
 * local runtime and the README read one source.
 */
export type AuthRequirement =
  | { readonly kind: 'public' }
  | {
      readonly kind: 'principal';
      /**
       * Roles of which the caller needs at least one; `admin` for admin routes. Where `scopes` are named
       * too, machines are held to those instead, so the roles govern people only.
       */
      readonly roles?: readonly string[];
      /** OAuth scopes an M2M caller needs for this route. */
      readonly scopes?: readonly string[];
      /** Only a human user may call it (M2M tokens get 403). */
      readonly humanOnly?: boolean;
      /** Another Bulwark service may call it with a signed request instead of a token. */
      readonly allowService?: boolean;
    };

export interface RouteDefinition {
  readonly method: HttpMethod;
  /** API Gateway path template, e.g. `/users/{id}`. */
  readonly path: string;
  readonly function: HttpFunctionName;
  readonly auth: AuthRequirement;
  /** The route's rate limit, applied by `routePipeline`; none when absent. */
  readonly rateLimit?: RouteRateLimit;
  readonly summary: string;
}

/** A preset from `middleware/rate-limit/policy.ts`, counted per client IP or per principal (`user`). */
export interface RouteRateLimit {
  readonly preset: RateLimitPresetName;
  readonly keyBy: RateLimitKeyBy;
  /**
   * The route's 503s and 504s are failures of ours the client cannot provoke (it contacts no host the
   * client names), so either gives its unit back: a client retrying after `Retry-After`, or after a
   * timeout, is not refused once the dependency is back. Routes sharing a preset and key should agree.
   * @default every answer spends its unit
   */
  readonly refundUnavailable?: true;
}

export const routes = [
  {
    method: 'GET',
    path: '/health',
    function: 'health',
    auth: { kind: 'public' },
    summary: 'Tables reachable',
  },
  {
    method: 'POST',
    path: '/users',
    function: 'users',
    auth: { kind: 'public' },
    rateLimit: { preset: 'register', keyBy: 'ip', refundUnavailable: true },
    summary: 'Register a user',
  },
  {
    method: 'GET',
    path: '/users/{id}',
    function: 'users',
    // Email, name and phone, decrypted: an administrator, a client granted users/read, or the bookings service.
    auth: { kind: 'principal', roles: ['admin'], scopes: ['users/read'], allowService: true },
    summary: 'Get a user',
  },
  {
    method: 'GET',
    path: '/users/{id}/verify',
    function: 'users',
    // The link in the verification email is the credential: signed, expiring, checked in constant time.
    auth: { kind: 'public' },
    rateLimit: { preset: 'strict', keyBy: 'ip' },
    // Mail gateways and link scanners open links before anyone reads them: opening it shows a page
    // whose button posts the link back (below), and changes nothing, so HEAD is served as for any GET.
    summary: 'Check an email verification link, and show the page that confirms it',
  },
  {
    method: 'POST',
    path: '/users/{id}/verify',
    function: 'users',
    // The same credential, the same limit: the link, posted by its page's button or by an API client.
    auth: { kind: 'public' },
    rateLimit: { preset: 'strict', keyBy: 'ip' },
    summary: 'Verify an email (signed link)',
  },
  {
    method: 'POST',
    path: '/users/{id}/verify-phone',
    function: 'users',
    // The SMS code is the credential; each code also allows only 5 guesses in total (users-model.ts).
    auth: { kind: 'public' },
    rateLimit: { preset: 'mfaVerify', keyBy: 'ip' },
    summary: 'Verify a phone (SMS code)',
  },
  {
    method: 'POST',
    path: '/users/{id}/phone-code',
    function: 'users',
    // Anyone may ask (the code goes only to the stored phone); the model also caps codes per user.
    auth: { kind: 'public' },
    rateLimit: { preset: 'register', keyBy: 'ip', refundUnavailable: true },
    summary: 'Send a new SMS code',
  },
  {
    method: 'POST',
    path: '/users/{id}/verification-email',
    function: 'users',
    // Anyone may ask (the link goes only to the stored address); the function also caps emails per user.
    auth: { kind: 'public' },
    rateLimit: { preset: 'register', keyBy: 'ip', refundUnavailable: true },
    summary: 'Send the verification email again',
  },
  {
    method: 'GET',
    path: '/admin/users',
    function: 'users',
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary: 'List users (admin)',
  },
  {
    method: 'DELETE',
    path: '/admin/users/{id}',
    function: 'users',
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary: 'Delete a user (admin, audited)',
  },
  {
    method: 'POST',
    path: '/bookings',
    function: 'bookings',
    auth: { kind: 'principal', scopes: ['bookings/write'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Book a room',
  },
  {
    method: 'GET',
    path: '/bookings',
    function: 'bookings',
    auth: { kind: 'principal', scopes: ['bookings/read'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'List bookings (cursor-paginated)',
  },
  {
    method: 'GET',
    path: '/bookings/{id}',
    function: 'bookings',
    auth: { kind: 'principal', scopes: ['bookings/read'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Get a booking',
  },
  {
    method: 'DELETE',
    path: '/bookings/{id}',
    function: 'bookings',
    auth: { kind: 'principal', humanOnly: true },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Cancel a booking (frees its slots)',
  },
  {
    method: 'POST',
    path: '/webhooks',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/write'] },
    // Registration resolves the URL's host (the SSRF check) and is rare: the strict preset.
    rateLimit: { preset: 'strict', keyBy: 'user' },
    summary: 'Register a webhook endpoint (its signing secret is returned once)',
  },
  {
    method: 'GET',
    path: '/webhooks',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/read'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'List your webhook endpoints (cursor-paginated, newest first; never their secrets)',
  },
  {
    method: 'GET',
    path: '/webhooks/{id}',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/read'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Get one of your webhook endpoints (never its secret)',
  },
  {
    method: 'DELETE',
    path: '/webhooks/{id}',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/write'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Delete one of your webhook endpoints',
  },
  {
    method: 'POST',
    path: '/webhooks/{id}/secret',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/write'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary:
      "Rotate the signing secret of one of your webhook endpoints (the new secret is returned once; deliveries also carry the old secret's signature for 24 hours)",
  },
  {
    method: 'POST',
    path: '/webhooks/{id}/enable',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/write'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary:
      'Re-enable one of your disabled webhook endpoints (after a 410 Gone or repeated failed deliveries)',
  },
  {
    method: 'POST',
    path: '/admin/webhooks/{id}/enable',
    function: 'webhooks',
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary: "Enable any of the tenant's disabled webhook endpoints again (admin, audited)",
  },
  {
    method: 'DELETE',
    path: '/admin/webhooks/{id}',
    function: 'webhooks',
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary: "Delete any of the tenant's webhook endpoints (admin, audited)",
  },
  {
    method: 'GET',
    path: '/admin/webhooks/{id}',
    function: 'webhooks',
    // On-call reads another owner's endpoint and its deliveries after the webhook DLQ alarm, without their token.
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary: "Get any of the tenant's webhook endpoints, never its secret (admin, audited)",
  },
  {
    method: 'GET',
    path: '/admin/webhooks/{id}/deliveries',
    function: 'webhooks',
    auth: { kind: 'principal', roles: ['admin'], humanOnly: true },
    rateLimit: { preset: 'admin', keyBy: 'user' },
    summary:
      "Delivery history of any of the tenant's webhook endpoints (cursor-paginated, newest first; admin, audited)",
  },
  {
    method: 'GET',
    path: '/webhooks/{id}/deliveries',
    function: 'webhooks',
    auth: { kind: 'principal', scopes: ['webhooks/read'] },
    rateLimit: { preset: 'authenticated', keyBy: 'user' },
    summary: 'Delivery history of one of your webhook endpoints (cursor-paginated, newest first)',
  },
] as const satisfies readonly RouteDefinition[];

export type RouteKey = `${(typeof routes)[number]['method']} ${(typeof routes)[number]['path']}`;

/** A route API Gateway has: an entry of the table, or the HEAD route {@link headRouteOf} derives from a GET entry. */
export interface ApiRoute extends Omit<RouteDefinition, 'method'> {
  readonly method: HttpMethod | 'HEAD';
}

/**
 * The HEAD route of a GET route, with its function, auth and rate limit; none for other methods. RFC 9110
 * §9.1 has every general-purpose server support HEAD wherever it supports GET, and API Gateway sends a
 * HEAD only to a HEAD route (any other goes to `$default`), so each GET entry gets one, never written twice.
 */
export function headRouteOf(route: ApiRoute): ApiRoute | undefined {
  return route.method === 'GET' ? { ...route, method: 'HEAD' } : undefined;
}

/** `table` with each GET route followed by its HEAD route: the routes API Gateway and the local runtime serve. */
export function withHeadRoutes(table: readonly ApiRoute[]): ApiRoute[] {
  return table.flatMap((route) => {
    const head = headRouteOf(route);
    return head ? [route, head] : [route];
  });
}

/** Every route of the API: the route table's entries and their derived HEAD routes. */
export const apiRoutes: readonly ApiRoute[] = withHeadRoutes(routes);

/** The API Gateway route key (`METHOD /path/{param}`), which is also what handlers dispatch on. */
export function routeKeyOf(route: Pick<ApiRoute, 'method' | 'path'>): string {
  return `${route.method} ${route.path}`;
}

/** Route keys served by one function. */
export function routeKeysOf(functionName: HttpFunctionName): string[] {
  return routes.filter((route) => route.function === functionName).map(routeKeyOf);
}
