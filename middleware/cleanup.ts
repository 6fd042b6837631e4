// The one cleanup mechanism: work that must happen however a request ends, even when a middleware answers early.
import { cleanupMiddlewares, METRICS_KEY } from '@aws-lambda-powertools/commons';

/**
 * The part of a Middy request the mechanism uses. Middy skips every `after` when a `before` returns
 * a response (an "early response"), so audit, metrics flushing and response headers register here
 * instead of relying on `after` alone.
 */
export interface CleanupRequest {
  internal: Record<string, unknown>;
  response?: unknown;
  error?: unknown;
}

/** Receives the request with its final `response` (or `error`). */
export type Cleanup = (request: CleanupRequest) => void | Promise<void>;

/** Returns a copy of the response with something added (headers, a cookie); never changes the one given. */
export type ResponseEdit = (response: unknown) => unknown;

interface PendingCleanup {
  readonly name: string;
  readonly run: Cleanup;
  done: boolean;
  readonly editsResponse: boolean;
  /** The response its edit ended up in (later edits included), so a different one is edited again. */
  editedResponse?: unknown;
}

/** What Bulwark keeps for one request until it ends. */
interface RequestCleanups {
  readonly pending: PendingCleanup[];
  /** What held Powertools' cleanup key before Bulwark's hook took it: it runs after Bulwark's cleanups. */
  powertoolsCleanup: ((ended: CleanupRequest) => unknown) | undefined;
  powertoolsHookRan: boolean;
}

/**
 * Kept per request object, never on `request.internal`: Middy's `internal` option hands one object to
 * every invocation, where a registry would grow with each request and replay an earlier caller's edits
 * (its correlation id, its rate-limit headers) onto every later answer. Middy makes a new request object
 * per invocation, so this ends with it.
 */
const cleanupsByRequest = new WeakMap<CleanupRequest, RequestCleanups>();

function cleanupsOf(request: CleanupRequest): RequestCleanups {
  let cleanups = cleanupsByRequest.get(request);
  if (cleanups === undefined) {
    cleanups = { pending: [], powertoolsCleanup: undefined, powertoolsHookRan: false };
    cleanupsByRequest.set(request, cleanups);
  }
  return cleanups;
}

const noCleanups: readonly PendingCleanup[] = [];

function registry(request: CleanupRequest): readonly PendingCleanup[] {
  return cleanupsByRequest.get(request)?.pending ?? noCleanups;
}

/**
 * Middy drops the response when an `after` throws and answers from `onError` instead, so an edit
 * made on the dropped response is made again on the new one.
 */
function hasNewResponse(request: CleanupRequest, cleanup: PendingCleanup): boolean {
  const { response } = request;
  return (
    cleanup.editsResponse &&
    response !== undefined &&
    response !== null &&
    response !== cleanup.editedResponse
  );
}

async function runOne(request: CleanupRequest, cleanup: PendingCleanup): Promise<void> {
  if (cleanup.done && !hasNewResponse(request, cleanup)) return;
  cleanup.done = true;
  const given = request.response;
  try {
    await cleanup.run(request);
  } catch {
    // Observability work must never turn an answer into a failure; each cleanup handles its own errors.
  }
  if (!cleanup.editsResponse) return;
  // Edits that already ran are in the copy this one made: following it keeps them from running twice
  // (a second cookie).
  for (const other of registry(request)) {
    if (other.editsResponse && other.done && other.editedResponse === given) {
      other.editedResponse = request.response;
    }
  }
  cleanup.editedResponse = request.response;
}

/** Runs every pending Bulwark cleanup, last registered first (the order Middy runs `after`s in). */
export async function runRegisteredCleanups(request: CleanupRequest): Promise<void> {
  const pending = registry(request);
  for (let index = pending.length - 1; index >= 0; index -= 1) {
    const cleanup = pending[index];
    if (cleanup) await runOne(request, cleanup);
  }
}

/**
 * Bulwark's hook on Powertools' cleanup key. One function serves every request: it runs the cleanups of
 * the request Powertools hands it, so a hook an earlier invocation left on a shared `request.internal`
 * neither runs that invocation's cleanups again nor skips this one's.
 */
const powertoolsHook = async (ended: CleanupRequest): Promise<void> => {
  const cleanups = cleanupsByRequest.get(ended);
  if (cleanups === undefined || cleanups.powertoolsHookRan) return;
  cleanups.powertoolsHookRan = true;
  await runRegisteredCleanups(ended);
  await cleanups.powertoolsCleanup?.(ended);
};

/**
 * Powertools middlewares that answer early (idempotency replays) call only Powertools'
 * `cleanupMiddlewares`. Bulwark answers on its metrics key, which Powertools runs before the logger's
 * key reset, so the audit line still carries the logger's correlation id; whatever Powertools hook
 * held the key runs after Bulwark's cleanups. Re-checked at every registration because a Powertools
 * middleware's `before` replaces the key.
 */
function hookPowertoolsCleanup(request: CleanupRequest, cleanups: RequestCleanups): void {
  const current = request.internal[METRICS_KEY];
  if (current === powertoolsHook) return;
  cleanups.powertoolsCleanup =
    typeof current === 'function' ? (current as (ended: CleanupRequest) => unknown) : undefined;
  request.internal[METRICS_KEY] = powertoolsHook;
}

/**
 * Registers work that must run once when the request ends: from the middleware's own `after` /
 * `onError` (via {@link runCleanup}), from {@link respondEarly} when another middleware answers
 * first, or from Powertools' `cleanupMiddlewares` when a Powertools middleware does. Call it in `before`.
 *
 * @example
 * const before = (request: CleanupRequest) => registerCleanup(request, 'audit', (r) => writeAuditEvent(r));
 * const after = (request: CleanupRequest) => runCleanup(request, 'audit');
 */
export function registerCleanup(request: CleanupRequest, name: string, run: Cleanup): void {
  const cleanups = cleanupsOf(request);
  cleanups.pending.push({ name, run, done: false, editsResponse: false });
  hookPowertoolsCleanup(request, cleanups);
}

/**
 * Registers an edit of the answer (headers, a cookie) like {@link registerCleanup}, made once per
 * response: when a later `after` throws, Middy drops the edited response, and the edit is made again
 * on the answer `onError` gives.
 *
 * @example
 * const before = (request: CleanupRequest) => registerResponseCleanup(request, 'poweredBy', addPoweredByHeader);
 * const after = (request: CleanupRequest) => runCleanup(request, 'poweredBy');
 * const onError = (request: CleanupRequest) => runResponseCleanupOnError(request, 'poweredBy');
 */
export function registerResponseCleanup(request: CleanupRequest, name: string, edit: ResponseEdit): void {
  const run = (ended: CleanupRequest) => {
    ended.response = edit(ended.response);
  };
  const cleanups = cleanupsOf(request);
  cleanups.pending.push({ name, run, done: false, editsResponse: true });
  hookPowertoolsCleanup(request, cleanups);
}

/** Runs one registered cleanup now, unless it already ran for this request (on this response, for an edit). */
export async function runCleanup(request: CleanupRequest, name: string): Promise<void> {
  const cleanup = registry(request).find((candidate) => candidate.name === name);
  if (cleanup) await runOne(request, cleanup);
}

/**
 * Runs a response edit from `onError`, once there is a response to edit: while the error is not
 * rendered yet it stays pending for whoever renders it (`httpErrorHandler` runs the pending cleanups,
 * wherever it sits in the chain).
 */
export async function runResponseCleanupOnError(request: CleanupRequest, name: string): Promise<void> {
  if (request.response === undefined || request.response === null) return;
  await runCleanup(request, name);
}

/**
 * Runs every pending cleanup, last registered first, then Powertools' own (metrics flush, logger key reset) through its `cleanupMiddlewares`.
 */
export async function runCleanups(request: CleanupRequest): Promise<void> {
  await runRegisteredCleanups(request);
  await cleanupMiddlewares(request as Parameters<typeof cleanupMiddlewares>[0]);
}

/**
 * Answers a request early from a `before` middleware without losing what other middlewares do at the
 * end of a request (audit event, metrics flush, correlation id, security and rate-limit headers).
 * Return its result from `before`.
 *
 * @example
 * const rejectBefore = async (request: Request<APIGatewayProxyEventV2>) => {
 *   if (!allowed(request.event)) return respondEarly(request, json(429, { message: 'Slow down' }));
 * };
 */
export async function respondEarly<R>(request: CleanupRequest, response: R): Promise<R> {
  request.response = response;
  await runCleanups(request);
  return request.response as R;
}
