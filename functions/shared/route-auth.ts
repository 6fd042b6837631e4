// The route table's auth requirements as middlewares: authentication plus the guards each requirement names.
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import {
  type AuthContext,
  type AuthMiddleware,
  authenticate,
  requireHuman,
  requireRoles,
  requireScopes,
  requireTenant,
} from '../../middleware/auth/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import {
  DynamoDbNonceStore,
  type OutgoingRequest,
  type ServiceAuthHeaders,
  ServiceRequestVerifier,
  serviceAuthHeaders,
} from '../../middleware/auth/service-auth.js';
import { UnauthorizedError } from '../../middleware/errors.js';
import { emitEvent, type SecurityEventListener } from '../../middleware/events.js';
import { forDeclaredEvent, methodOf, pathOf } from '../../middleware/http/request-event.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import type { AuthRequirement } from '../routes.js';
import { type FunctionEnvironment, readEnvironment } from './environment.js';
import { rotatingSecretReader } from './rotating-secret.js';
import { defaultTenantId } from './tenant.js';

/** What the sample's routes authenticate with; built once per function, at cold start. */
interface AuthComponents {
  readonly jwt: JwtVerifier | undefined;
  readonly apiKeys: ApiKeyStore;
  readonly services: ServiceRequestVerifier | undefined;
}

let components: AuthComponents | undefined;

function createComponents(
  environment: FunctionEnvironment,
  onEvent: SecurityEventListener | undefined,
): AuthComponents {
  const { auth } = environment;
  // Secrets given as values are fixed for the container's life; secrets given by ARN are read at run time.
  const services = Object.fromEntries(
    Object.entries(auth.serviceSecrets).map(([serviceId, setting]) => [
      serviceId,
      'value' in setting ? setting.value : { source: rotatingSecretReader(setting, onEvent) },
    ]),
  );
  const toolkit = createDocumentClient(createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint }));
  return {
    jwt:
      auth.issuer === undefined
        ? undefined
        : new JwtVerifier({
            issuers: [
              {
                issuer: auth.issuer,
                tokenUse: auth.tokenUse,
                clientId: auth.clientIds,
                ...(auth.audience === undefined ? {} : { audience: auth.audience }),
                ...(auth.jwksUri === undefined ? {} : { jwksUri: auth.jwksUri }),
                ...(auth.jwks === undefined ? {} : { jwks: auth.jwks }),
              },
            ],
          }),
    apiKeys: new ApiKeyStore({ client: toolkit, tableName: environment.toolkitTableName, onEvent }),
    services:
      Object.keys(services).length === 0
        ? undefined
        : new ServiceRequestVerifier({
            services,
            nonceStore: new DynamoDbNonceStore({ client: toolkit, tableName: environment.toolkitTableName }),
          }),
  };
}

/** Made on first use: functions whose routes are all public (health) never build any of it. */
function authComponents(onEvent: SecurityEventListener | undefined): AuthComponents {
  components ??= createComponents(readEnvironment(), onEvent);
  return components;
}

/** Humans are governed by roles; a signed service request is authorised by the route accepting services at all. */
const scopesExempt = (principal: Principal) => !principal.isM2M || principal.authMethod === 'service';
/** On a route that names scopes, machines (tokens, API keys, services) are governed by them, not by roles. */
const rolesExempt = (principal: Principal) => principal.isM2M;

/**
 * No credential can satisfy the route here (no issuer configured and no other method): everyone gets
 * 401, reported as an auth.failure like every other 401, so a deployment left without an issuer shows.
 */
function noMethod(onEvent: SecurityEventListener | undefined): AuthMiddleware<AuthContext> {
  return forDeclaredEvent({
    name: 'authenticate',
    before: ({ event }) => {
      emitEvent(onEvent, {
        type: 'auth.failure',
        reason: 'no_auth_method',
        metadata: { path: pathOf(event), httpMethod: methodOf(event) },
      });
      throw new UnauthorizedError('Authentication is required', {
        headers: { 'WWW-Authenticate': 'Bearer realm="bulwark"' },
      });
    },
  });
}

/**
 * The middlewares enforcing a route's auth requirement, in order: authenticate (JWT; API keys where
 * the route names scopes; signed service requests where it allows services), then requireHuman,
 * requireRoles (for people; for everyone on a route without scopes) and requireScopes (for machines).
 *
 * @example
 * pipeline.use(routeAuth({ kind: 'principal', roles: ['admin'], humanOnly: true }));
 */
export function routeAuth(
  requirement: AuthRequirement,
  onEvent?: SecurityEventListener,
): AuthMiddleware<AuthContext>[] {
  if (requirement.kind === 'public') return [];
  const { jwt, apiKeys, services } = authComponents(onEvent);
  const events = onEvent ? { onEvent } : {};
  const methods = {
    ...(jwt ? { jwt } : {}),
    // An API key is a machine credential with scopes: it fits exactly the routes that name scopes.
    ...(requirement.scopes ? { apiKeys } : {}),
    ...(requirement.allowService && services ? { service: services } : {}),
  };
  // A caller whose credential names no tenant is the default tenant's from authentication on: its
  // rate-limit keys, idempotency scopes and audit lines are those of the same caller naming `default`, as
  // the records it stores already were (webhook-store.ts tenantOf).
  const authentication = { ...methods, unclaimedTenant: defaultTenantId, ...events };
  const middlewares: AuthMiddleware<AuthContext>[] = [
    Object.keys(methods).length === 0 ? noMethod(onEvent) : authenticate(authentication),
    // The sample serves one tenant: its users and bookings carry no tenant of their own, so a token of
    // another tenant would otherwise act on this one's data (and file webhooks where no event goes).
    requireTenant([defaultTenantId], events),
  ];
  if (requirement.humanOnly) middlewares.push(requireHuman(events));
  if (requirement.roles) {
    // Without scopes to hold machines to, roles apply to every caller: a machine has none, so gets 403.
    const exempt = requirement.scopes ? { unless: rolesExempt } : {};
    middlewares.push(requireRoles(requirement.roles, { ...events, ...exempt }));
  }
  if (requirement.scopes)
    middlewares.push(requireScopes(requirement.scopes, { ...events, unless: scopesExempt }));
  return middlewares;
}

/**
 * Signs this function's outgoing calls to other Bulwark services with its current secret (read at run
 * time when the environment names it by ARN), or undefined when the environment gives it none (see
 * SERVICE_SIGNING_SECRET_<ID> in environment.ts).
 *
 * @example
 * const sign = serviceSigner('bookings', onEvent);
 * await fetch(url, { headers: { ...(await sign?.({ method: 'GET', url })) } });
 */
export function serviceSigner(
  serviceId: string,
  onEvent?: SecurityEventListener,
): ((request: OutgoingRequest) => Promise<ServiceAuthHeaders>) | undefined {
  const setting = readEnvironment().auth.serviceSecrets[serviceId];
  if (setting === undefined) return undefined;
  const readSecret = rotatingSecretReader(setting, onEvent);
  return async (request) =>
    serviceAuthHeaders({ serviceId, secret: (await readSecret(false)).current }, request);
}
