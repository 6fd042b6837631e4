// Middy adapters for the auth core: authenticate, serviceAuth, the guards and CSRF protection.
import { IDEMPOTENCY_KEY } from '@aws-lambda-powertools/commons';
import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { headerValue } from '../audit/correlation.js';
import { registerResponseCleanup, runCleanup, runResponseCleanupOnError } from '../cleanup.js';
import { assertNoProblems, ForbiddenError, InvalidOptionsError } from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import {
  type ApiGatewayEvent,
  assertApiGatewayEvent,
  cookiesOf,
  forDeclaredEvent,
  isRestApiEvent,
  methodOf,
  pathOf,
} from '../http/request-event.js';
import { withHeadersAndCookies } from '../http/response.js';
import { checkFunctionOption, checkMethodsOption, requireOptionsObject } from '../options.js';
import { Authenticator, type AuthenticatorOptions } from './authenticator.js';
import {
  type AuthContext,
  assertAuthenticationRan,
  markAuthenticationRan,
  type OptionalAuthContext,
} from './context.js';
import { type CsrfFailure, type CsrfOptions, CsrfProtection } from './csrf.js';
import {
  type ExemptionOptions,
  type Guard,
  humanGuard,
  permissionsGuard,
  rolesGuard,
  type ScopesGuardOptions,
  scopesGuard,
  type TenantGuardOptions,
  tenantGuard,
  userGuard,
} from './guards.js';
import type { Rbac } from './rbac.js';
import type { ServiceRequestVerifier } from './service-auth.js';

export type { AuthContext, OptionalAuthContext } from './context.js';

type Event = ApiGatewayEvent;
type Result = APIGatewayProxyStructuredResultV2;

/** An auth middleware: it adds `C` to the context and leaves the handler's event type as declared. */
export type AuthMiddleware<C> = MiddlewareObj<unknown, Result, Error, Context & C>;

/** Where Powertools' idempotency middleware (also inside Bulwark's `idempotency()`) keeps its handler once its `before` ran. */
const idempotencyHandlerKey = `${IDEMPOTENCY_KEY}.idempotencyHandler`;

/** `request.internal` objects authentication has seen: `middy({ internal })` passes the same one every time. */
const internalsSeen = new WeakSet<object>();

/**
 * An idempotency middleware before authentication keys its records without the caller: Powertools'
 * `makeHandlerIdempotent` would replay one caller's answer to anyone sending the same key. Refused on
 * the first request that reaches authentication, so its record is released and nothing is stored.
 * Checked once per `request.internal`: one shared across invocations (Middy's `internal` option) keeps
 * the handler an earlier invocation's idempotency left there, which says nothing about the order.
 */
function assertNoIdempotencyBefore(request: { internal: Record<string, unknown> }, middleware: string): void {
  const { internal } = request;
  if (internal === undefined || internalsSeen.has(internal)) return;
  internalsSeen.add(internal);
  if (internal[idempotencyHandlerKey] === undefined) return;
  throw new InvalidOptionsError(middleware, [
    `an idempotency middleware ran before ${middleware}(), so its records are not scoped to the caller and one caller's stored answer would be replayed to another: put makeHandlerIdempotent() or idempotency() after ${middleware}()`,
  ]);
}

/**
 * Authenticates the request and puts the caller on `context.principal` (typed). Accepts the
 * methods it is given: Bearer JWT, `x-api-key`, signed service requests. 401 problem+json
 * (`WWW-Authenticate: Bearer`) when the credential is missing or invalid. With `optional: true` an
 * anonymous caller's `context.principal` is set to undefined. It marks each request it lets through
 * (`markAuthenticationRan`): the guards, `rateLimit` by principal and `idempotency()` refuse to run
 * before it, `audit()` after it.
 *
 * @example
 * const verifier = new JwtVerifier({ issuers: [{ issuer, tokenUse: 'access', clientId }] }); // module scope
 * export const handler = middy<APIGatewayProxyEventV2>()
 *   .use(httpErrorHandler())
 *   .use(authenticate({ jwt: verifier }))
 *   .handler(async (_event, { principal }) => json(200, { hello: principal.id }));
 */
export function authenticate(
  options: AuthenticatorOptions & { readonly optional: true },
): AuthMiddleware<OptionalAuthContext>;
export function authenticate(
  options: AuthenticatorOptions & { readonly optional?: false | undefined },
): AuthMiddleware<AuthContext>;
/** `optional` known only at run time (a route's flag, an `AuthenticatorOptions` value): it may be true. */
export function authenticate(options: AuthenticatorOptions): AuthMiddleware<OptionalAuthContext>;
export function authenticate(options: AuthenticatorOptions): AuthMiddleware<OptionalAuthContext> {
  const authenticator = new Authenticator(options);
  const authenticateBefore = async (
    request: Request<Event, Result, Error, Context & OptionalAuthContext>,
  ) => {
    assertApiGatewayEvent(request.event, 'authenticate');
    assertNoIdempotencyBefore(request, 'authenticate');
    request.context.principal = await authenticator.authenticate(request.event);
    markAuthenticationRan(request);
  };
  return forDeclaredEvent({ name: 'authenticate', before: authenticateBefore });
}

/**
 * Accepts only requests signed by a known service (shorthand for `authenticate({ service })`).
 *
 * @example
 * middy().use(httpErrorHandler()).use(serviceAuth({ verifier: services })).handler(...)
 */
export function serviceAuth(options: {
  readonly verifier: ServiceRequestVerifier;
  /** @default undefined */
  readonly onEvent?: SecurityEventListener | undefined;
}): AuthMiddleware<AuthContext> {
  requireOptionsObject('serviceAuth', options);
  const problems: string[] = [];
  if (options.verifier === undefined || options.verifier === null) {
    problems.push('verifier is required (a ServiceRequestVerifier fits)');
  }
  checkMethodsOption(problems, 'verifier', options.verifier, ['verify'], 'a ServiceRequestVerifier');
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  assertNoProblems('serviceAuth', problems);
  return authenticate({
    service: options.verifier,
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
}

export interface GuardOptions {
  /** Receives access.denied events. @default undefined */
  readonly onEvent?: SecurityEventListener | undefined;
}

function guardMiddleware<C>(name: string, guard: Guard, options: GuardOptions): AuthMiddleware<C> {
  const problems: string[] = [];
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  assertNoProblems(name, problems);
  const guardBefore = (request: Request<Event, Result, Error, Context & Partial<OptionalAuthContext>>) => {
    // Before authentication every caller looks anonymous: a valid token would get 401, and nothing would say why.
    assertAuthenticationRan(request, name, 'it checks the caller on context.principal');
    const principal = request.context.principal;
    const denial = guard(principal);
    if (denial === undefined) return;
    emitEvent(options.onEvent, {
      type: 'access.denied',
      reason: denial.reason,
      ...(principal ? { principal } : {}),
      metadata: {
        guard: name,
        path: pathOf(request.event),
        httpMethod: methodOf(request.event),
      },
    });
    throw denial.error;
  };
  return { name, before: guardBefore } as AuthMiddleware<C>;
}

/**
 * Any authenticated caller (401 otherwise); after `authenticate({ optional: true })` it also narrows
 * `context.principal` to `Principal`.
 *
 * @example
 * middy().use(authenticate({ jwt: verifier, optional: true })).use(requireUser()).handler(...)
 */
export function requireUser(options: GuardOptions = {}): AuthMiddleware<AuthContext> {
  return guardMiddleware('requireUser', userGuard(), options);
}

/**
 * Only human users: M2M tokens, API keys and services get 403 "This endpoint requires a human user".
 *
 * @example
 * middy().use(authenticate({ jwt: verifier })).use(requireHuman()).handler(...)
 */
export function requireHuman(options: GuardOptions = {}): AuthMiddleware<AuthContext> {
  return guardMiddleware('requireHuman', humanGuard(), options);
}

/**
 * At least one of the roles (`cognito:groups` or the verifier's roles claim); 403 otherwise.
 * `unless` exempts callers the roles do not govern, e.g. machines checked by scopes instead.
 *
 * @example
 * middy().use(authenticate({ jwt: verifier })).use(requireRoles(['admin'])).handler(...)
 * // People need admin; machines are held to their scopes.
 * middy()
 *   .use(authenticate({ jwt: verifier }))
 *   .use(requireRoles(['admin'], { unless: (principal) => principal.isM2M }))
 *   .use(requireScopes(['users/read'], { unless: (principal) => !principal.isM2M }))
 */
export function requireRoles(
  roles: readonly string[],
  options: GuardOptions & ExemptionOptions = {},
): AuthMiddleware<AuthContext> {
  return guardMiddleware('requireRoles', rolesGuard(roles, options), options);
}

/**
 * Every one of the scopes; 403 `insufficient_scope` (with the scopes in `WWW-Authenticate`) otherwise.
 *
 * @example
 * middy().use(authenticate({ jwt: verifier, apiKeys })).use(requireScopes(['bookings/read'])).handler(...)
 */
export function requireScopes(
  scopes: readonly string[],
  options: GuardOptions & ScopesGuardOptions = {},
): AuthMiddleware<AuthContext> {
  return guardMiddleware('requireScopes', scopesGuard(scopes, options), options);
}

/**
 * A principal of one of the tenants (the token's tenant claim, `custom:tenant_id` by default); 403
 * otherwise. `unclaimedTenant` is the tenant of a principal whose token names none, for this guard only:
 * `authenticate`'s `unclaimedTenant` gives it to the principal, for the keys and audit lines after it too.
 *
 * @example
 * // A single-tenant deployment: tokens of other tenants get 403, tokens without a tenant are ours.
 * middy().use(authenticate({ jwt: verifier })).use(requireTenant(['acme'], { unclaimedTenant: 'acme' }))
 */
export function requireTenant(
  tenants: readonly string[],
  options: GuardOptions & TenantGuardOptions = {},
): AuthMiddleware<AuthContext> {
  return guardMiddleware('requireTenant', tenantGuard(tenants, options), options);
}

/**
 * Every one of the permissions, granted by the principal's roles through an {@link Rbac} engine.
 *
 * @example
 * const rbac = new Rbac({ roles: { admin: ['*'], clerk: ['read:*', 'write:bookings'] } });
 * middy().use(authenticate({ jwt: verifier })).use(requirePermissions(rbac, ['delete:users'])).handler(...)
 */
export function requirePermissions(
  rbac: Rbac,
  permissions: readonly string[],
  options: GuardOptions = {},
): AuthMiddleware<AuthContext> {
  return guardMiddleware('requirePermissions', permissionsGuard(rbac, permissions), options);
}

/** What {@link csrfProtection} adds: the request's CSRF token, to render into pages and forms. */
export interface CsrfContext {
  csrfToken: string;
}

/**
 * What the client must mend. A wrong token and a cookie this server never issued (forged, or signed
 * under an earlier secret) share one wording: both are mended by fetching a fresh token, and telling
 * them apart would say whether a planted cookie passed the signature check.
 */
function csrfRefusal(failure: CsrfFailure, csrf: CsrfProtection): string {
  const cookie = csrf.cookieName;
  switch (failure) {
    case 'missing_cookie':
      return `CSRF cookie ${cookie} not sent (it is Secure: never sent over plain HTTP); a GET sets it`;
    case 'missing_header':
      return `CSRF header ${csrf.headerName} not sent; echo the ${cookie} cookie's token in it`;
    case 'mismatch':
    case 'bad_token':
      return `CSRF header ${csrf.headerName} does not match a token this server issued in ${cookie}; a GET issues a fresh one`;
  }
}

/**
 * Double-submit CSRF protection for cookie-authenticated browser routes. Safe methods pass and get
 * a token cookie if they lack one; unsafe methods need the cookie's token in `X-CSRF-Token`
 * (403 otherwise). The token is on `context.csrfToken`; the answer gets the cookie, early answers
 * and rendered errors included.
 *
 * @example
 * const secret = process.env.CSRF_SECRET;
 * if (secret === undefined) throw new Error('CSRF_SECRET is not set');
 * middy().use(httpErrorHandler()).use(csrfProtection({ secret })).handler(...)
 */
export function csrfProtection(options: CsrfOptions & GuardOptions = {}): AuthMiddleware<CsrfContext> {
  const problems: string[] = [];
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  assertNoProblems('csrfProtection', problems);
  const csrf = new CsrfProtection(options);
  const csrfCleanup = 'bulwark.csrf';
  type CsrfRequest = Request<Event, Result, Error, Context & CsrfContext>;
  const csrfBefore = (request: CsrfRequest) => {
    assertApiGatewayEvent(request.event, 'csrfProtection');
    const { event } = request;
    // Never undefined past the check above; an empty method would be an unsafe one, needing the token.
    const method = methodOf(event) ?? '';
    // Whatever the name's case: API Gateway v2 lower-cases header names, a REST API event or a direct invoke may not.
    const result = csrf.check(method, cookiesOf(event), headerValue(event.headers, csrf.headerName));
    if (!result.ok) {
      emitEvent(options.onEvent, {
        type: 'csrf.rejected',
        reason: result.failure,
        metadata: { path: pathOf(event), httpMethod: method },
      });
      throw new ForbiddenError(csrfRefusal(result.failure, csrf));
    }
    const token = result.token ?? csrf.issueToken();
    request.context.csrfToken = token;
    if (result.token !== undefined) return;
    registerResponseCleanup(request, csrfCleanup, (response) =>
      withHeadersAndCookies(response, {
        cookies: [csrf.cookie(token)],
        cookiesAs: isRestApiEvent(event) ? 'set-cookie-headers' : 'cookies',
      }),
    );
  };
  const csrfAfter = (request: CsrfRequest) => runCleanup(request, csrfCleanup);
  const csrfOnError = (request: CsrfRequest) => runResponseCleanupOnError(request, csrfCleanup);
  return {
    name: 'csrfProtection',
    before: csrfBefore,
    after: csrfAfter,
    onError: csrfOnError,
  } as AuthMiddleware<CsrfContext>;
}
