// The toolkit's public API.
export {
  type AuditEvent,
  type AuditEventType,
  type AuditOutcome,
  outcomeForStatus,
} from './audit/audit-event.js';
export {
  type AuditEventInput,
  type AuditLineWriter,
  AuditLogger,
  type AuditLoggerOptions,
  type AuditRequestScope,
  auditLogKey,
} from './audit/audit-logger.js';
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
export {
  type AuditOptions,
  audit,
  type CorrelationContext,
  type CorrelationIdsOptions,
  type CorrelationLogger,
  correlationIds,
  passErrorToOuterAudit,
} from './audit/middy.js';
export {
  createRedactor,
  defaultRedactor,
  defaultSensitiveKeys,
  type RedactionOptions,
  type Redactor,
  redact,
  redactedValue,
} from './audit/redact.js';
export {
  createSecurityEventListener,
  defaultUnauditedEvents,
  type SecurityEventListenerOptions,
} from './audit/security-events.js';
export {
  type ApiKeyPepper,
  type ApiKeyRecord,
  type ApiKeyRevokeGuard,
  ApiKeyStore,
  type ApiKeyStoreOptions,
  type ApiKeyTenantScope,
  type CreateApiKeyOptions,
  type CreatedApiKey,
} from './auth/api-keys.js';
export { Authenticator, type AuthenticatorOptions } from './auth/authenticator.js';
export {
  type ClaimMapping,
  defaultClaimMapping,
  maxIdentifierLength,
  principalFromClaims,
} from './auth/claims-principal.js';
export {
  type AuthContext,
  assertAuthenticationRan,
  authenticationRan,
  type MarkedRequest,
  markAuthenticationRan,
  type OptionalAuthContext,
} from './auth/context.js';
export { type CsrfCheck, type CsrfFailure, type CsrfOptions, CsrfProtection } from './auth/csrf.js';
export { DevIssuer, type DevIssuerOptions, type DevTokenOptions } from './auth/dev-issuer.js';
export {
  type Denial,
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
} from './auth/guards.js';
export {
  type AsymmetricAlgorithm,
  JwksKeyStore,
  type JwksKeyStoreOptions,
  KeyLookupError,
  type KeyLookupFailure,
} from './auth/jwks-key-store.js';
export {
  type JwtAlgorithm,
  type JwtIssuerOptions,
  JwtVerifier,
  type JwtVerifierOptions,
  type TokenUse,
  type VerifiedJwt,
} from './auth/jwt-verifier.js';
export {
  type Claims,
  getClientId,
  getScopes,
  getTokenMetadata,
  isM2MToken,
  requiresUserContext,
  type TokenMetadata,
} from './auth/m2m.js';
export {
  type AuthMiddleware,
  authenticate,
  type CsrfContext,
  csrfProtection,
  type GuardOptions,
  requireHuman,
  requirePermissions,
  requireRoles,
  requireScopes,
  requireTenant,
  requireUser,
  serviceAuth,
} from './auth/middy.js';
export type { AuthMethod, Principal } from './auth/principal.js';
export { Rbac, type RbacOptions, type RoleDefinition } from './auth/rbac.js';
export {
  createServiceSigner,
  DynamoDbNonceStore,
  type IncomingSignedRequest,
  isUsableRotatingSecret,
  isUsableSecretValue,
  minRotatingSecretLength,
  type NonceStore,
  type OutgoingRequest,
  type QueryInput,
  type RotatingSecret,
  type ServiceAuthHeaders,
  type ServiceCredentials,
  ServiceRequestVerifier,
  type ServiceRequestVerifierOptions,
  type ServiceSecretSource,
  type ServiceSecrets,
  type SignableRequest,
  serviceAuthHeaders,
  signRequest,
} from './auth/service-auth.js';
export {
  CircuitBreaker,
  type CircuitBreakerEvents,
  type ExecuteOptions,
  type GuardedAction,
  type GuardedCall,
} from './circuit-breaker/circuit-breaker.js';
export {
  DynamoDbCircuitStateStore,
  type DynamoDbCircuitStateStoreOptions,
} from './circuit-breaker/dynamodb-store.js';
export {
  defaultMaxResponseBytes,
  type GuardedFetchOptions,
  type GuardedRequestInit,
  guardedFetch,
  isServerError,
  parseRetryAfter,
  type ResponseFailurePredicate,
  retryAfterSeconds,
} from './circuit-breaker/guarded-fetch.js';
export { MemoryCircuitStateStore } from './circuit-breaker/memory-store.js';
export {
  type BoundCallService,
  type ServiceCallsContext,
  type ServiceCallsOptions,
  serviceCalls,
} from './circuit-breaker/middy.js';
export {
  type CircuitBreakerOptions,
  type CircuitBreakerSettings,
  type CircuitLogger,
  type CircuitStoreChoice,
  circuitDefaults,
} from './circuit-breaker/options.js';
export {
  createServiceClient,
  defaultServiceTimeoutMs,
  type OutgoingServiceRequest,
  type RequestSigner,
  type RetryOptions,
  type ServiceCallInit,
  ServiceClient,
  type ServiceClientOptions,
  type ServiceOptions,
} from './circuit-breaker/service-client.js';
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
export {
  type ConfigLoader,
  createConfigLoader,
  type LoadConfigOptions,
  loadConfig,
} from './config/load-config.js';
export { type ConfigContext, provideConfig } from './config/middy.js';
export {
  configureSecretStore,
  type GetSecretOptions,
  getSecret,
  parseJsonSecret,
  SecretStore,
  type SecretStoreOptions,
  type SecretVersions,
  versionStages,
} from './config/secrets.js';
export {
  type DependencyFailure,
  type DependencyFailureKind,
  dependencyFailure,
  type NameableAwsClient,
  nameAwsDependency,
  storeFailureReason,
  underlyingDependencyFailure,
} from './dependency-failure.js';
export { createKeyProvider, type KeyProviderConfig } from './encryption/create-key-provider.js';
export {
  type BlindIndexOptions,
  type DataKeyCacheOptions,
  type DecryptFieldsOptions,
  defaultSensitiveFields,
  Encryptor,
  type EncryptorOptions,
  normalizeEmail,
  type WarmOptions,
} from './encryption/encryptor.js';
export { type DataKeyHeader, type EncryptionContext, fieldOverheadBytes } from './encryption/format.js';
export type { GeneratedDataKey, KeyProvider, WrappedDataKey } from './encryption/key-provider.js';
export {
  createKmsClient,
  type KmsClientOptions,
  KmsKeyProvider,
  type KmsKeyProviderOptions,
  kmsProviderId,
} from './encryption/kms-key-provider.js';
export {
  encryptionKeyProblem,
  generateEncryptionKey,
  indexKeyProblem,
  indexSecretOf,
  LocalKeyProvider,
  type LocalKeyProviderOptions,
  localProviderId,
} from './encryption/local-key-provider.js';
export { type EncryptorContext, type ProvideEncryptorOptions, provideEncryptor } from './encryption/middy.js';
export type {
  DecryptedRecord,
  EncryptedField,
  EncryptedRecord,
  FieldPathOf,
} from './encryption/record-types.js';
export type { FieldValue, JsonArray, JsonObject, JsonValue } from './encryption/value-codec.js';
export {
  type AuthFailureReason,
  BulwarkError,
  type BulwarkErrorCode,
  type BulwarkErrorOptions,
  CircuitOpenError,
  ConfigError,
  type ConfigProblem,
  ConflictError,
  DeadlineExceededError,
  DecryptionError,
  type DecryptionFailureReason,
  type DeliveryRefusal,
  DeliveryRejectedError,
  DependencyError,
  DependencyTimeoutError,
  EncryptionError,
  type EncryptionFailureReason,
  type FieldProblem,
  ForbiddenError,
  GoneError,
  HttpError,
  type HttpErrorOptions,
  IdempotencyKeyReusedError,
  InsufficientScopeError,
  InvalidArgumentError,
  InvalidOptionsError,
  InvalidTokenError,
  type InvalidTokenErrorOptions,
  isUnreadableRecord,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  problemStatuses,
  type RejectedCredential,
  SecretAccessError,
  type SecretFailureReason,
  ServiceUnavailableError,
  SsrfBlockedError,
  type SsrfBlockReason,
  TooManyRequestsError,
  UnauthorizedError,
  UnsupportedContentEncodingError,
  UnsupportedEventError,
  UnsupportedMediaTypeError,
  ValidationError,
} from './errors.js';
export {
  emitEvent,
  ignoreEvents,
  type SecurityEvent,
  type SecurityEventListener,
  type SecurityEventType,
} from './events.js';
export {
  defaultMaxBodyBytes,
  type InputSchemas,
  maxReportedProblems,
  type ParseInputOptions,
  parseInput,
  parseRawQuery,
  percentDecodedPath,
  readJsonBody,
  requestBodyBytes,
  type ValidatedInput,
} from './http/input.js';
export {
  type ErrorLogger,
  type HttpErrorHandlerOptions,
  httpErrorHandler,
  type InputContext,
  validateInput,
} from './http/middy.js';
export {
  type ProblemContext,
  type ProblemDetails,
  problemContentType,
  problemType,
  type RenderedProblem,
  renderProblem,
} from './http/problem.js';
export type { ApiGatewayEvent } from './http/request-event.js';
export { type HttpResult, type JsonResult, json, noContent } from './http/response.js';
export {
  type IdempotencyKeyContext,
  type IdempotencyOptions,
  type IdempotentContext,
  type IdempotentRequest,
  idempotency,
  replayedHeader,
  type ScopedIdempotencyKey,
  type StoredAnswer,
} from './idempotency.js';
export { idempotencyKeyHash } from './idempotency-key-hash.js';
export { type HandlerResult, lambdaHandler } from './lambda-handler.js';
export {
  type ExtraDimension,
  isCatalogMetric,
  type MetricDefinition,
  type MetricName,
  metricCatalog,
  metricDefinitions,
  metricNamespace,
  metricNamespaceProblems,
  serviceDimension,
} from './metrics/catalog.js';
export { type CaptureMetricsOptions, captureMetrics } from './metrics/middy.js';
export {
  type CreateMetricsOptions,
  createMetrics,
  type MetricDimensions,
  type RecordMetricArgs,
  recordMetric,
} from './metrics/record.js';
export {
  type ClientIpOptions,
  clientIpOf,
  isKeyedByPrincipal,
  keyOf,
  type RateLimitKey,
  type RateLimitKeyBy,
  type RateLimitRequest,
  rateLimitKeyOf,
  unknownClientIp,
} from './rate-limit/client-key.js';
export {
  type CounterStore,
  MemoryCounterStore,
  type MemoryCounterStoreOptions,
  type StoredTat,
  type TatAdvance,
  type TatRebase,
  type TatWrite,
  type TatWriteOutcome,
} from './rate-limit/counter-store.js';
export {
  DynamoDbCounterStore,
  type DynamoDbCounterStoreOptions,
} from './rate-limit/dynamodb-counter-store.js';
export { type PolicyOutcome, rateLimitHeaders } from './rate-limit/headers.js';
export {
  type RateLimitContext,
  type RateLimitEnding,
  type RateLimitOptions,
  rateLimit,
} from './rate-limit/middy.js';
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
export {
  createDocumentClient,
  createDynamoDbClient,
  type DynamoDbClientOptions,
} from './store/client.js';
export { ensureTables, toCreateTableInput } from './store/create-tables.js';
export { ToolkitIdempotencyStore, type ToolkitIdempotencyStoreOptions } from './store/idempotency-store.js';
export {
  appTable,
  type IndexDefinition,
  isExpired,
  isTableName,
  type KeyAttribute,
  type TableDefinition,
  tableDefinitions,
  toEpochSeconds,
  toolkitTable,
} from './store/tables.js';
