// The toolkit's public API.
export * from './audit/audit-event.js';
export * from './audit/audit-logger.js';
export {
  type CorrelationIdSource,
  correlationHeaders,
  correlationIdFromMessage,
  correlationIdHeader,
  correlationMessageAttributes,
  isValidCorrelationId,
  type MessageWithAttributes,
  type ResolvedCorrelationId,
  resolveCorrelationId,
  type StringMessageAttribute,
} from './audit/correlation.js';
export * from './audit/middy.js';
export * from './audit/redact.js';
export * from './audit/security-events.js';
export * from './auth/api-keys.js';
export * from './auth/authenticator.js';
export * from './auth/claims-principal.js';
export * from './auth/context.js';
export * from './auth/csrf.js';
export * from './auth/dev-issuer.js';
export * from './auth/guards.js';
export * from './auth/jwks-key-store.js';
export * from './auth/jwt-verifier.js';
export * from './auth/m2m.js';
export * from './auth/middy.js';
export type { AuthMethod, Principal } from './auth/principal.js';
export * from './auth/rbac.js';
export * from './auth/service-auth.js';
export * from './auth/token-cache.js';
export * from './circuit-breaker/circuit-breaker.js';
export * from './circuit-breaker/dynamodb-store.js';
export * from './circuit-breaker/guarded-fetch.js';
export * from './circuit-breaker/memory-store.js';
export * from './circuit-breaker/middy.js';
export {
  type CircuitBreakerOptions,
  type CircuitBreakerSettings,
  type CircuitLogger,
  type CircuitStoreChoice,
  circuitDefaults,
} from './circuit-breaker/options.js';
export * from './circuit-breaker/service-client.js';
export {
  type CircuitRecord,
  CircuitState,
  type CircuitStateName,
  type CircuitStateStore,
  type ReplaceResult,
} from './circuit-breaker/state.js';
export {
  type Cleanup,
  type CleanupRequest,
  type ResponseEdit,
  registerCleanup,
  registerResponseCleanup,
  respondEarly,
  runCleanup,
} from './cleanup.js';
export * from './config/load-config.js';
export * from './config/middy.js';
export * from './config/secrets.js';
export * from './dependency-failure.js';
export * from './encryption/create-key-provider.js';
export * from './encryption/encryptor.js';
export { type DataKeyHeader, type EncryptionContext, fieldOverheadBytes } from './encryption/format.js';
export * from './encryption/key-provider.js';
export * from './encryption/kms-key-provider.js';
export * from './encryption/local-key-provider.js';
export * from './encryption/middy.js';
export * from './encryption/record-types.js';
export type { FieldValue, JsonArray, JsonObject, JsonValue } from './encryption/value-codec.js';
export * from './errors.js';
export * from './events.js';
export * from './http/input.js';
export * from './http/middy.js';
export * from './http/problem.js';
export { type HttpResult, isHeaderName, json, noContent } from './http/response.js';
export * from './idempotency.js';
export * from './lambda-handler.js';
export * from './metrics/catalog.js';
export * from './metrics/middy.js';
export * from './metrics/record.js';
export * from './rate-limit/client-key.js';
export * from './rate-limit/counter-store.js';
export {
  DynamoDbCounterStore,
  type DynamoDbCounterStoreOptions,
} from './rate-limit/dynamodb-counter-store.js';
export { type PolicyOutcome, rateLimitHeaders } from './rate-limit/headers.js';
export * from './rate-limit/middy.js';
export {
  isPresetName,
  maxUnitsPerSecond,
  maxWindowSec,
  type RateLimitPolicy,
  type RateLimitPolicyInput,
  type RateLimitPresetName,
  rateLimitPresets,
  resolvePolicy,
} from './rate-limit/policy.js';
export {
  type FailMode,
  maxLeaseMs,
  RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
  type RateLimitSource,
  rateLimitHitEvent,
  type WarnLogger,
} from './rate-limit/rate-limiter.js';
export { boundedRequestHandler, type RequestTimeouts } from './request-handler.js';
export * from './store/client.js';
export * from './store/create-tables.js';
export * from './store/tables.js';
