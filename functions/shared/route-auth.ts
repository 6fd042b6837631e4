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
} from '../../middleware/auth/middy.js';
import type { Principal } from '../../middleware/auth/principal.js';
import {
  createServiceSigner,
  DynamoDbNonceStore,
  type OutgoingRequest,
  type ServiceAuthHeaders,
  ServiceRequestVerifier,
} from '../../middleware/auth/service-auth.js';
import { UnauthorizedError } from '../../middleware/errors.js';
import type { SecurityEventListener } from '../../middleware/events.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import type { AuthRequirement } from '../routes.js';
import { type FunctionEnvironment, readEnvironment } from './environment.js';

/** What the sample's routes authenticate with; built once per function, at cold start. */
interface AuthComponents {
  readonly jwt: JwtVerifier | undefined;
  readonly apiKeys: ApiKeyStore;
  readonly services: ServiceRequestVerifier | undefined;
}

let components: AuthComponents | undefined;

function createComponents(environment: FunctionEnvironment): AuthComponents {
  const { auth } = environment;
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
                ...(auth.jwksUri === undefined ? {} : { jwksUri: auth.jwksUri }),
                ...(auth.jwks === undefined ? {} : { jwks: auth.jwks }),
              },
            ],
          }),
    apiKeys: new ApiKeyStore({ client: toolkit, tableName: environment.toolkitTableName }),
    services:
      Object.keys(auth.serviceSecrets).length === 0
        ? undefined
        : new ServiceRequestVerifier({
            services: auth.serviceSecrets,
            nonceStore: new DynamoDbNonceStore({ client: toolkit, tableName: environment.toolkitTableName }),
          }),
  };
}

/** Made on first use: functions whose routes are all public (health) never build any of it. */
function authComponents(): AuthComponents {
  components ??= createComponents(readEnvironment());
  return components;
}

/** Humans are governed by roles; a signed service request is authorised by the route accepting services at all. */
const scopesExempt = (principal: Principal) => !principal.isM2M || principal.authMethod === 'service';

/** No credential can satisfy the route here (no issuer configured and no other method): everyone gets 401. */
const noMethod: AuthMiddleware<AuthContext> = {
  name: 'authenticate',
  before: () => {
    throw new UnauthorizedError('Authentication is required', {
      headers: { 'WWW-Authenticate': 'Bearer realm="bulwark"' },
    });
  },
};

/**
 * The middlewares enforcing a route's auth requirement, in order: authenticate (JWT; API keys where
 * the route names scopes; signed service requests where it allows services), then requireHuman,
 * requireRoles and requireScopes (for machines) as the requirement says.
 *
 * @example
 * pipeline.use(routeAuth({ kind: 'principal', roles: ['admin'], humanOnly: true }));
 */
export function routeAuth(
  requirement: AuthRequirement,
  onEvent?: SecurityEventListener,
): AuthMiddleware<AuthContext>[] {
  if (requirement.kind === 'public') return [];
  const { jwt, apiKeys, services } = authComponents();
  const events = onEvent ? { onEvent } : {};
  const methods = {
    ...(jwt ? { jwt } : {}),
    // An API key is a machine credential with scopes: it fits exactly the routes that name scopes.
    ...(requirement.scopes ? { apiKeys } : {}),
    ...(requirement.allowService && services ? { service: services } : {}),
  };
  const middlewares: AuthMiddleware<AuthContext>[] = [
    Object.keys(methods).length === 0 ? noMethod : authenticate({ ...methods, ...events }),
  ];
  if (requirement.humanOnly) middlewares.push(requireHuman(events));
  if (requirement.roles) middlewares.push(requireRoles(requirement.roles, events));
  if (requirement.scopes)
    middlewares.push(requireScopes(requirement.scopes, { ...events, unless: scopesExempt }));
  return middlewares;
}

/**
 * Signs this function's outgoing calls to other Bulwark services with its current secret, or
 * undefined when the environment gives it none (see SERVICE_SIGNING_SECRET_<ID> in environment.ts).
 *
 * @example
 * const sign = serviceSigner('bookings');
 * await fetch(url, { headers: { ...sign?.({ method: 'GET', url }) } });
 */
export function serviceSigner(
  serviceId: string,
): ((request: OutgoingRequest) => ServiceAuthHeaders) | undefined {
  const secrets = readEnvironment().auth.serviceSecrets[serviceId];
  return secrets === undefined ? undefined : createServiceSigner({ serviceId, secret: secrets.current });
}
