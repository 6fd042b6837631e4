// Finds the caller's credential in an API Gateway v2 event (JWT, API key or service signature) and proves it.
import { headerValue } from '../audit/correlation.js';
import {
  assertNoProblems,
  InvalidTokenError,
  type RejectedCredential,
  ServiceUnavailableError,
  UnauthorizedError,
} from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import { requestBodyBytes } from '../http/input.js';
import {
  type ApiGatewayEvent,
  httpContextOf,
  methodOf,
  pathOf,
  signedPathOf,
} from '../http/request-event.js';
import { checkFunctionOption, checkMethodsOption, requireOptionsObject, shownValue } from '../options.js';
import type { ApiKeyStore } from './api-keys.js';
import { isUsableIdentifier, maxIdentifierLength } from './claims-principal.js';
import type { JwtVerifier } from './jwt-verifier.js';
import type { AuthMethod, Principal } from './principal.js';
import { type IncomingSignedRequest, ServiceRequestVerifier } from './service-auth.js';

export interface AuthenticatorOptions {
  /** Accept `Authorization: Bearer <JWT>`, verified by this verifier (build it once, at module scope). @default undefined */
  readonly jwt?: JwtVerifier | undefined;
  /**
   * Take the claims an API Gateway JWT authorizer already verified (`requestContext.authorizer.jwt.claims`)
   * instead of verifying the token twice; the verifier's issuer, token_use and client rules still apply.
   * @default false
   */
  readonly trustApiGatewayAuthorizer?: boolean | undefined;
  /** Accept `x-api-key` keys from this store. @default undefined */
  readonly apiKeys?: ApiKeyStore | undefined;
  /** Accept requests signed by another service (X-Service-Id, X-Timestamp, X-Nonce, X-Signature). @default undefined */
  readonly service?: ServiceRequestVerifier | undefined;
  /**
   * Let requests without any credential through with no principal (public routes that personalise).
   * A credential that is presented but invalid is still refused.
   * @default false
   */
  readonly optional?: boolean | undefined;
  /**
   * The tenant of a principal whose credential names none (a token without the tenant claim, an API key
   * created without a tenant, a signed service request), set as its `tenantId`: the guards, rate-limit
   * keys, idempotency scopes and audit lines then all read one tenant, where the raw absence made such a
   * caller another than the same one naming this tenant. @default undefined: such a principal has no tenant
   */
  readonly unclaimedTenant?: string | undefined;
  /** Receives auth.success, auth.failure, apiKey.used and replay.rejected. @default undefined */
  readonly onEvent?: SecurityEventListener | undefined;
}

type Headers = ApiGatewayEvent['headers'];

/** RFC 6750 §3.1: a request without credentials gets a challenge without an error code. */
const challenge = { 'WWW-Authenticate': 'Bearer realm="bulwark"' };

/** The token of an `Authorization: Bearer <token>` header (scheme in any case), without scanning the token. */
function bearerToken(value: string | undefined): string | undefined {
  if (value === undefined || value.length < 8 || value.slice(0, 7).toLowerCase() !== 'bearer ')
    return undefined;
  const token = value.slice(7).trim();
  return token.length > 0 ? token : undefined;
}

/** The service-signing headers, whatever their names' case (a REST API (v1) event keeps the client's). */
function signingHeaders(headers: Headers | undefined): IncomingSignedRequest['headers'] {
  return {
    'x-service-id': headerValue(headers, 'x-service-id'),
    'x-timestamp': headerValue(headers, 'x-timestamp'),
    'x-nonce': headerValue(headers, 'x-nonce'),
    'x-signature': headerValue(headers, 'x-signature'),
  };
}

/**
 * The `auth.failure` metadata naming a rejected credential: what its secret or signature vouches for under
 * its own names, and of an unverified one only the API key id the client wrote, apart, as `unverifiedKeyId`.
 */
function credentialFields(credential: RejectedCredential | undefined): Record<string, unknown> {
  if (credential === undefined) return {};
  if (!credential.verified) return { unverifiedKeyId: credential.keyId };
  const { verified: _verified, ...fields } = credential;
  return fields;
}

/**
 * Authenticates requests with whichever methods it is given, in this order: an API Gateway JWT
 * authorizer's claims (if trusted), a service signature, a Bearer JWT, an API key. The first
 * credential found decides; there is no fallback from an invalid credential to another one.
 *
 * @example
 * const authenticator = new Authenticator({ jwt: verifier, apiKeys });
 * const principal = await authenticator.authenticate(event); // throws 401
 */
export class Authenticator {
  private readonly options: AuthenticatorOptions;

  constructor(options: AuthenticatorOptions) {
    requireOptionsObject('authenticate', options);
    const problems: string[] = [];
    if (!options.jwt && !options.apiKeys && !options.service) {
      problems.push('give at least one of jwt, apiKeys and service');
    }
    if (options.trustApiGatewayAuthorizer && !options.jwt) {
      problems.push('trustApiGatewayAuthorizer needs jwt (its rules apply to the claims)');
    }
    // A verifier's options in place of the verifier (`jwt: { issuers }`) would fail every request with a
    // TypeError, a 500, instead of here.
    // Only the methods it will call: verifyAuthorizerClaims only when the authorizer's claims are trusted.
    const jwtMethods = options.trustApiGatewayAuthorizer ? ['verify', 'verifyAuthorizerClaims'] : ['verify'];
    checkMethodsOption(problems, 'jwt', options.jwt, jwtMethods, 'a JwtVerifier');
    checkMethodsOption(problems, 'apiKeys', options.apiKeys, ['verify'], 'an ApiKeyStore');
    checkMethodsOption(problems, 'service', options.service, ['verify'], 'a ServiceRequestVerifier');
    const { unclaimedTenant } = options;
    // It becomes a tenant id like a claim's, in keys and encryption contexts: held to the same rule.
    if (
      unclaimedTenant !== undefined &&
      !(typeof unclaimedTenant === 'string' && isUsableIdentifier(unclaimedTenant))
    )
      problems.push(
        `unclaimedTenant must be a tenant id a claim can carry: non-empty, at most ${maxIdentifierLength} characters, well-formed text without control characters (got ${shownValue(unclaimedTenant)})`,
      );
    // emitEvent swallows a listener's errors: one that is no function would lose every event, silently.
    checkFunctionOption(problems, 'onEvent', options.onEvent);
    assertNoProblems('authenticate', problems);
    this.options = options;
  }

  /**
   * The caller's principal, or undefined for a request without credentials in optional mode.
   * @throws UnauthorizedError (401) when there is no credential; InvalidTokenError (401) when it is
   * invalid; ServiceUnavailableError (503) when what it is checked against cannot be read.
   */
  async authenticate(event: ApiGatewayEvent): Promise<Principal | undefined> {
    const { jwt, apiKeys, service, onEvent } = this.options;
    const headers = event.headers;
    let method: AuthMethod | undefined;
    // Verification time, reported with the outcome (the AuthLatency metric of the catalog).
    const started = performance.now();
    try {
      const authorizerClaims = (
        event.requestContext as
          | {
              authorizer?: { jwt?: { claims?: Record<string, unknown> | undefined } | undefined } | undefined;
            }
          | undefined
      )?.authorizer?.jwt?.claims;
      if (this.options.trustApiGatewayAuthorizer && jwt && authorizerClaims) {
        method = 'jwt';
        return this.succeed(jwt.verifyAuthorizerClaims(authorizerClaims).principal, event, started);
      }
      const signing = service ? signingHeaders(headers) : undefined;
      if (service && signing && ServiceRequestVerifier.isSigned(signing)) {
        method = 'service';
        const principal = await service.verify({
          // A bare event (a direct invoke) names no method, a REST API (v1) event no signed path: the
          // signature then cannot match, a 401.
          method: httpContextOf(event)?.method ?? '',
          path: signedPathOf(event) ?? '',
          rawQueryString: ('rawQueryString' in event ? event.rawQueryString : undefined) ?? '',
          body: requestBodyBytes(event),
          headers: signing,
        });
        return this.succeed(principal, event, started);
      }
      const bearer = jwt ? bearerToken(headerValue(headers, 'authorization')) : undefined;
      if (jwt && bearer !== undefined) {
        method = 'jwt';
        return this.succeed((await jwt.verify(bearer)).principal, event, started);
      }
      const apiKey = apiKeys ? headerValue(headers, 'x-api-key') : undefined;
      if (apiKeys && apiKey !== undefined) {
        method = 'apiKey';
        const principal = this.withTenant(await apiKeys.verify(apiKey));
        emitEvent(onEvent, {
          type: 'apiKey.used',
          principal,
          // The owner too: once a revoked key's item is deleted, nothing else ties the key id to a person.
          metadata: { keyId: principal.id, owner: principal.claims['owner'], ...this.where(event) },
        });
        return this.succeed(principal, event, started);
      }
    } catch (error) {
      if (error instanceof InvalidTokenError) {
        emitEvent(onEvent, {
          type: 'auth.failure',
          reason: error.reason,
          metadata: { method, ...this.where(event), ...credentialFields(error.credential) },
          durationMs: performance.now() - started,
        });
        if (error.reason === 'replayed') {
          emitEvent(onEvent, {
            type: 'replay.rejected',
            metadata: { serviceId: headerValue(headers, 'x-service-id'), ...this.where(event) },
          });
        }
      } else if (error instanceof ServiceUnavailableError) {
        // The API key table, the nonce store, a run-time secret or the issuer's JWKS could not be read:
        // no verdict on the caller, but a request refused all the same, so it is reported as one.
        emitEvent(onEvent, {
          type: 'auth.failure',
          reason: 'store_unavailable',
          metadata: { method, ...this.where(event) },
          durationMs: performance.now() - started,
        });
      }
      throw error;
    }
    if (this.options.optional) return undefined;
    // Another Authorization scheme (Basic, Digest...) is not a credential this route accepts.
    const reason = headerValue(headers, 'authorization') === undefined ? 'missing' : 'unsupported_scheme';
    emitEvent(onEvent, { type: 'auth.failure', reason, metadata: this.where(event) });
    throw new UnauthorizedError('Authentication is required', { headers: challenge });
  }

  /** The principal, with `unclaimedTenant` as its tenant when its credential named none. */
  private withTenant(principal: Principal): Principal {
    const { unclaimedTenant } = this.options;
    if (unclaimedTenant === undefined || principal.tenantId !== undefined) return principal;
    // A copy: a verified token's principal is frozen and shared through the verifier's cache.
    return { ...principal, tenantId: unclaimedTenant };
  }

  private succeed(verified: Principal, event: ApiGatewayEvent, started: number): Principal {
    const principal = this.withTenant(verified);
    // Checked here, not only in emitEvent, so the hot path builds no event object nobody listens to.
    if (this.options.onEvent === undefined) return principal;
    emitEvent(this.options.onEvent, {
      type: 'auth.success',
      principal,
      metadata: { method: principal.authMethod, ...this.where(event) },
      durationMs: performance.now() - started,
    });
    return principal;
  }

  private where(event: ApiGatewayEvent): { path: string | undefined; httpMethod: string | undefined } {
    return { path: pathOf(event), httpMethod: methodOf(event) };
  }
}
