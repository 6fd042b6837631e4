// The webhooks function: register an endpoint (retry-safe with an Idempotency-Key), read it, rotate its secret, enable it again once disabled, delete it, and read its delivery history (owner-scoped; an admin reads, enables and deletes any of the tenant's, audited).

import { isDeepStrictEqual } from 'node:util';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { Principal } from '../../middleware/auth/principal.js';
import {
  ConflictError,
  IdempotencyKeyReusedError,
  InsufficientScopeError,
  NotFoundError,
  type SsrfBlockedError,
} from '../../middleware/errors.js';
import { emitEvent } from '../../middleware/events.js';
import { type InputContext, validateInput } from '../../middleware/http/middy.js';
import { json, noContent } from '../../middleware/http/response.js';
import {
  type IdempotentContext,
  idempotency,
  replayedHeader,
  type StoredAnswer,
} from '../../middleware/idempotency.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ToolkitIdempotencyStore } from '../../middleware/store/idempotency-store.js';
import { auditingUnknownOutcome } from '../shared/audited-change.js';
import { callerOf } from '../shared/caller.js';
import { createFunctionEncryptor } from '../shared/encryption.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { createHttpFunction } from '../shared/http-function.js';
import { webhookSecretKeyContextFields } from '../shared/key-purposes.js';
import { functionObservability } from '../shared/observability.js';
import { idPathSchema, pageQuerySchema, smallBodyLimit } from '../shared/schemas.js';
import { SsrfGuard, ssrfAllowlistFromEnvironment } from '../shared/ssrf-guard.js';
import {
  EndpointIdRetiredError,
  EndpointIdTakenError,
  endpointIdFor,
  type KeyedRotation,
  type NewEndpoint,
  NotOwnedEndpointError,
  OwnerClosedError,
  ownerKindOf,
  publicEndpoint,
  rotationKeyOf,
  type StoredEndpoint,
  tenantOf,
  type WebhookEndpoint,
  WebhookStore,
} from '../shared/webhook-store.js';
import * as z from '../shared/zod.js';
import {
  type WebhookEventType,
  webhookEventTypeSchema,
  webhookEventTypes,
} from '../webhook-worker/messages.js';

const { logger, auditLogger, onEvent } = functionObservability('webhooks');
const environment = readEnvironment();
const queues = readQueueEnvironment();
const dynamoDb = createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint });
const store = new WebhookStore({
  documentClient: createDocumentClient(dynamoDb),
  tableName: environment.toolkitTableName,
  // Secrets' data keys carry their purpose, which this function's KMS grant requires.
  encryptor: createFunctionEncryptor(environment, onEvent, webhookSecretKeyContextFields),
  maxEndpointsPerOwner: queues.webhook.maxEndpointsPerOwner,
});
// The same guard the worker applies at delivery time; loopback only where SSRF_ALLOWLIST opens it.
const guard = new SsrfGuard({ allowlist: ssrfAllowlistFromEnvironment(queues.ssrfAllowlist) });

/** The longest endpoint URL, counted in the canonical form that is stored and called. */
const maxUrlLength = 2048;

/**
 * An endpoint URL is kept as its WHATWG `href`, the ASCII form the SSRF guard checks and the worker
 * POSTs to (`http://１２７.0.0.1/a\u202e` is `http://127.0.0.1/a%E2%80%AE`), so the URL its owner reads back
 * is the one called. A lone surrogate is refused: the parser would silently call U+FFFD in its place.
 * The length limit applies to the canonical form, which percent-encoding can make several times longer.
 * The format check aborts, so a string that is no URL never reaches `new URL`.
 */
const endpointUrlSchema = z
  .url({ protocol: /^https?$/, abort: true, error: 'Must be an absolute http or https URL' })
  .check(
    z.refine((url) => url.isWellFormed(), 'Must not contain a lone surrogate (ill-formed UTF-16)'),
    z.overwrite((url) => new URL(url).href),
    z.maxLength(maxUrlLength, `Must be at most ${maxUrlLength} characters once percent-encoded`),
  );

const registerBody = z.strictObject({
  url: endpointUrlSchema,
  eventTypes: z
    .array(webhookEventTypeSchema, { error: `Must be a list of ${webhookEventTypes.join(', ')}` })
    .check(z.minLength(1), z.maxLength(webhookEventTypes.length * 2)),
});

/**
 * How long an Idempotency-Key answers a registration's retry with the endpoint it made: long enough for a
 * client that timed out to retry with backoff, short enough that a key sent once does not hand out the
 * secret for a day.
 */
const registrationReplaySec = 60 * 60;

/** What a registration answers: the endpoint as the API shows it, and its signing secret. */
interface Registration {
  readonly id: string;
  readonly secret?: string;
}

/**
 * The endpoint's signing secret, read again to answer a registration's retry: only while it is still the
 * one the registration made. Once a rotation replaced it, a 409: the current secret was shown once, by
 * that rotation, and a registration's retry must not show it again (nor the registration's, which no
 * longer signs first). A secret sealed before secrets carried their purpose is one this function's KMS
 * grant may not decrypt: its retry answers 409 here as in AWS, instead of a KMS refusal that retrying
 * would never cure.
 */
async function secretAgain(endpoint: StoredEndpoint): Promise<string> {
  if (endpoint.secretRotatedAt !== undefined) {
    throw new ConflictError(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated after the registration this Idempotency-Key made; the registration's secret is not shown again`,
    );
  }
  if (!endpoint.sealedSecret.purposeBound) {
    throw new ConflictError(
      `Webhook endpoint ${endpoint.id} was registered before an upgrade and its secret can no longer be answered again; rotate it (POST /webhooks/${endpoint.id}/secret) for a new one`,
    );
  }
  return store.signingSecret(endpoint);
}

/**
 * The endpoint a registration with the caller's Idempotency-Key made. Once it is deleted, the key's retry
 * is answered as a registration with that key is while the endpoint's tombstone lasts, whether or not the
 * key's record still holds the answer: a person whose user was deleted (which deleted the endpoint) gets
 * the 403 that any registration of theirs gets, since no key helps; anyone else the tombstone's 409
 * (register with a new key).
 */
async function endpointMadeWithKey(endpointId: string, caller: Principal): Promise<StoredEndpoint> {
  try {
    return await store.getOwnedEndpoint(endpointId, caller);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    if (await store.isClosedOwner(caller)) throw new OwnerClosedError();
    if (await store.isRetired(endpointId)) throw new EndpointIdRetiredError(endpointId);
    throw error;
  }
}

/**
 * A registration's answer holds the endpoint's signing secret, which is stored nowhere in clear: the
 * idempotency record keeps the answer without it, and a replay reads the secret again from the endpoint,
 * where it is kept encrypted, for the caller that owns it (409 once the endpoint is deleted, see
 * {@link endpointMadeWithKey}) in the role it registered in (422 once that changed, see
 * {@link isRegistrationOf}).
 */
const registrationAnswer: StoredAnswer = {
  toRecord: (answer) => {
    const { secret: _secret, ...endpoint } = JSON.parse(answer.body as string) as Registration;
    return { ...answer, body: JSON.stringify(endpoint) };
  },
  fromRecord: async (kept, request) => {
    const registered = JSON.parse(kept.body as string) as Registration;
    const caller = callerOf(request.context.principal);
    const endpoint = await endpointMadeWithKey(registered.id, caller);
    // The record's payload matched the body; the owner kind the caller registers as is only on the endpoint.
    const { input } = request.context as IdempotentContext & InputContext<{ body: typeof registerBody }>;
    if (!isRegistrationOf(endpoint, input.body, caller)) throw new IdempotencyKeyReusedError();
    const secret = await secretAgain(endpoint);
    return { ...kept, body: JSON.stringify({ ...registered, secret }) };
  },
};

/**
 * What a registration's retry must repeat of its body: its canonical URL and the set of events it
 * subscribes to, so that one listing them in another order (or one twice) is the same request. It is the
 * key's record's payload, and is compared with the endpoint the key made after the record (see
 * {@link isRegistrationOf}).
 */
function registrationRequestOf(registration: Pick<NewEndpoint, 'url' | 'eventTypes'>) {
  return { url: registration.url, eventTypes: [...new Set(registration.eventTypes)].sort() };
}

/**
 * Whether a stored endpoint is what `requested` asks `caller` to register: the same body (see
 * {@link registrationRequestOf}) and the owner kind the caller registers as now. A person whose role
 * changed since (user ↔ admin) sends another request, which must not get back the endpoint fan-out chose
 * events for under the old role. One rule while the key's record lasts (the replay compares the kind,
 * the payload the rest) and after it ({@link retriedRegistration}). The kind is compared with the
 * endpoint, not hashed into the payload, so a record stored before the kind counted still replays.
 */
function isRegistrationOf(endpoint: StoredEndpoint, requested: NewEndpoint, caller: Principal): boolean {
  return (
    endpoint.ownerKind === ownerKindOf(caller) &&
    isDeepStrictEqual(registrationRequestOf(endpoint), registrationRequestOf(requested))
  );
}

/**
 * The answer to a registration sent again with its Idempotency-Key once the key's record is gone: the
 * first request's transaction landed but answered too late (a 504, which deleted the record), and the
 * endpoint it made is `endpointId`. The same registration gets that endpoint with its secret, read again,
 * and the first one's 201 and `Location`, marked as a replay, but only within the time a replay would have
 * answered it ({@link registrationReplaySec} from its creation): later, a 409 naming the endpoint, whose
 * secret is not shown again. Another request with the key (see {@link isRegistrationOf}) is 422, as
 * it is while the record exists; an endpoint deleted meanwhile is 409, as for a replay. It is audited apart
 * from the creation (`webhook.endpoint_creation_replayed`): the first request may have logged the creation
 * before its answer was lost (a record lost in a deploy) or stopped before (a 504), so this line neither
 * counts the creation twice nor leaves a secret answered again unlogged.
 */
async function retriedRegistration(
  endpointId: string,
  caller: Principal,
  requested: NewEndpoint,
  correlationId: string,
) {
  const endpoint = await endpointMadeWithKey(endpointId, caller);
  if (!isRegistrationOf(endpoint, requested, caller)) throw new IdempotencyKeyReusedError();
  if (Date.now() - Date.parse(endpoint.createdAt) > registrationReplaySec * 1000) {
    throw new ConflictError(
      `Webhook endpoint ${endpoint.id} was registered with this Idempotency-Key at ${endpoint.createdAt}; its signing secret is shown again only within ${registrationReplaySec / 60} minutes of registering. To get a new secret, rotate it (POST /webhooks/${endpoint.id}/secret)`,
    );
  }
  const secret = await secretAgain(endpoint);
  auditEndpointCreated(endpoint, caller, correlationId, { answeredAgain: true });
  return json(
    201,
    { ...publicEndpoint(endpoint), secret },
    { Location: `/webhooks/${endpoint.id}`, ...replayedHeader },
  );
}

/**
 * A registration's audit line; `answeredAgain` for a retry answered after the key's record was lost (see
 * {@link retriedRegistration}), which names when the endpoint was created instead of counting it again.
 */
function auditEndpointCreated(
  endpoint: WebhookEndpoint,
  caller: Principal,
  correlationId: string,
  { answeredAgain }: { answeredAgain: boolean } = { answeredAgain: false },
): void {
  auditLogger.log({
    eventType: answeredAgain ? 'webhook.endpoint_creation_replayed' : 'webhook.endpoint_created',
    outcome: 'success',
    principal: caller,
    correlationId,
    metadata: {
      endpointId: endpoint.id,
      eventTypes: endpoint.eventTypes,
      ownerKind: endpoint.ownerKind,
      ...(answeredAgain ? { createdAt: endpoint.createdAt } : {}),
    },
  });
}

/**
 * A registration retried with the same Idempotency-Key (and the same request, see
 * {@link registrationRequestOf}: another is 422) answers with the endpoint the first one made instead of
 * making a second, with a second secret; one without a key registers as it comes. Scoped to the caller,
 * so no one else's key ever replays this caller's secret.
 */
const registrationIdempotency = idempotency<IdempotentContext & InputContext<{ body: typeof registerBody }>>({
  persistenceStore: new ToolkitIdempotencyStore({
    name: 'webhooks',
    tableName: environment.toolkitTableName,
    client: dynamoDb,
  }),
  config: new IdempotencyConfig({
    eventKeyJmesPath: 'headers."idempotency-key"',
    expiresAfterSeconds: registrationReplaySec,
  }),
  payloadOf: ({ context }) => registrationRequestOf(context.input.body),
  storedAnswer: registrationAnswer,
  logger,
});

/** What a rotation answers: the endpoint as the API shows it after the rotation, and its new secret. */
interface Rotation {
  readonly id: string;
  readonly secretRotatedAt: string;
  readonly secret?: string;
}

/**
 * The secret a rotation made, read again to answer its retry: only while it is still the endpoint's
 * current one (its rotation id, unique where two rotations may share a millisecond) and within
 * {@link registrationReplaySec} of the rotation, as a registration's secret is shown again. Later, once
 * another rotation replaced it, or when the key's marker is gone (a record written before markers were),
 * a 409: a secret that is no longer the one deliveries are signed with first is not handed out.
 */
async function rotatedSecretAgain(
  endpoint: StoredEndpoint,
  rotation: KeyedRotation | undefined,
): Promise<string> {
  if (rotation === undefined || endpoint.secretRotationId !== rotation.rotationId) {
    throw new ConflictError(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated again after the rotation this Idempotency-Key made; its secret is not shown again`,
    );
  }
  const { rotatedAt } = rotation;
  if (Date.now() - Date.parse(rotatedAt) > registrationReplaySec * 1000) {
    throw new ConflictError(
      `The signing secret of webhook endpoint ${endpoint.id} was rotated with this Idempotency-Key at ${rotatedAt}; it is shown again only within ${registrationReplaySec / 60} minutes of the rotation. To get a new secret, rotate with a new key`,
    );
  }
  return store.signingSecret(endpoint);
}

/**
 * A rotation's answer holds the new secret, which the idempotency record keeps without it: a replay reads
 * it again from the endpoint (see {@link rotatedSecretAgain}), for the caller that owns it.
 */
const rotationAnswer: StoredAnswer = {
  toRecord: (answer) => {
    const { secret: _secret, ...endpoint } = JSON.parse(answer.body as string) as Rotation;
    return { ...answer, body: JSON.stringify(endpoint) };
  },
  fromRecord: async (kept, request) => {
    const rotated = JSON.parse(kept.body as string) as Rotation;
    const endpoint = await store.getOwnedEndpoint(rotated.id, callerOf(request.context.principal));
    const { scopedIdempotencyKey } = request.context;
    // A replay is only ever of a request with a key; the record names no rotation id, the key's marker does.
    const rotation =
      scopedIdempotencyKey === undefined
        ? undefined
        : await store.rotationWithKey(endpoint.id, rotationKeyOf(scopedIdempotencyKey));
    const secret = await rotatedSecretAgain(endpoint, rotation);
    return { ...kept, body: JSON.stringify({ ...rotated, secret }) };
  },
};

/**
 * A rotation retried with the same Idempotency-Key answers with the secret the first one made instead of
 * rotating again, which would make that secret (never seen by the client) the previous one and stop
 * signing with the secret the receiver knows. One without a key rotates as it comes.
 */
const rotationIdempotency = idempotency<IdempotentContext>({
  persistenceStore: new ToolkitIdempotencyStore({
    name: 'webhooks',
    tableName: environment.toolkitTableName,
    client: dynamoDb,
  }),
  config: new IdempotencyConfig({
    eventKeyJmesPath: 'headers."idempotency-key"',
    expiresAfterSeconds: registrationReplaySec,
  }),
  storedAnswer: rotationAnswer,
  logger,
});

function auditSecretRotated(endpoint: WebhookEndpoint, caller: Principal, correlationId: string): void {
  auditLogger.log({
    eventType: 'webhook.secret_rotated',
    outcome: 'success',
    principal: caller,
    correlationId,
    metadata: {
      endpointId: endpoint.id,
      ownerKind: endpoint.ownerKind,
      previousSecretExpiresAt: endpoint.previousSecretExpiresAt,
    },
  });
}

/**
 * The answer to a rotation sent again with its Idempotency-Key once the key's record is gone (the first
 * request's write landed but answered too late, a 504), found by the key's marker
 * ({@link WebhookStore.rotationWithKey}): the secret that rotation made, answered again as a replay would
 * while it is still the current one, else a 409; never a second rotation. It is audited apart from the
 * rotation (`webhook.secret_rotation_replayed`): the first request may have logged its rotation before
 * its answer was lost, or stopped before, so this line neither counts the rotation twice nor leaves a
 * secret answered again unlogged.
 */
async function retriedRotation(
  endpoint: StoredEndpoint,
  rotation: KeyedRotation,
  caller: Principal,
  correlationId: string,
) {
  const secret = await rotatedSecretAgain(endpoint, rotation);
  auditLogger.log({
    eventType: 'webhook.secret_rotation_replayed',
    outcome: 'success',
    principal: caller,
    correlationId,
    metadata: { endpointId: endpoint.id, ownerKind: endpoint.ownerKind, secretRotatedAt: rotation.rotatedAt },
  });
  return json(200, { ...publicEndpoint(endpoint), secret }, replayedHeader);
}

/**
 * An administrator read, deleted or enabled another owner's endpoint: an `admin.action` line naming it by
 * ids only (whose endpoint, of which kind), never its URL or its secret; with `unknownOutcome`, the line
 * of a change whose write got no answer (outcome `unknown`, its reason in the metadata).
 */
function auditAdminAction(
  action: string,
  endpoint: Pick<WebhookEndpoint, 'id' | 'ownerId' | 'ownerKind'>,
  caller: Principal,
  unknownOutcome?: { readonly reason: string },
): void {
  const details = { endpointId: endpoint.id, ownerId: endpoint.ownerId, ownerKind: endpoint.ownerKind };
  if (unknownOutcome === undefined) auditLogger.logAdminAction(action, details, caller);
  else auditLogger.logAdminAction(action, { ...details, ...unknownOutcome }, caller, 'unknown');
}

/**
 * A URL the SSRF guard refused at registration (a cloud metadata, private or loopback address…), reported
 * as an access.denied event (audited, counted) with the guard's reason and the host, never the whole URL:
 * the client's answer stays the 400 on `body.url`. A name with no address is a typo as often as a probe,
 * and stays only a 400.
 */
function reportBlockedUrl(
  caller: Principal,
  event: APIGatewayProxyEventV2,
  url: string,
  blocked: SsrfBlockedError,
): void {
  if (blocked.reason === 'unresolvable') return;
  const host = URL.canParse(url) ? new URL(url).hostname : undefined;
  emitEvent(onEvent, {
    type: 'access.denied',
    reason: blocked.reason,
    principal: caller,
    metadata: {
      guard: 'ssrf',
      path: event.rawPath,
      httpMethod: event.requestContext?.http?.method,
      ...(host === undefined ? {} : { host }),
      ...(blocked.address === undefined ? {} : { address: blocked.address }),
    },
  });
}

/**
 * Runs `work`, and reports a caller reaching for an endpoint that is not theirs ({@link NotOwnedEndpointError})
 * as an access.denied event (audited, counted), as bookings reports a booking not the caller's, before its
 * 404 goes on: the answer stays that of an endpoint that does not exist.
 */
async function reportingNotOwner<T>(
  caller: Principal,
  event: APIGatewayProxyEventV2,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof NotOwnedEndpointError) {
      emitEvent(onEvent, {
        type: 'access.denied',
        reason: 'not_owner',
        principal: caller,
        metadata: {
          path: event.rawPath,
          httpMethod: event.requestContext?.http?.method,
          endpointId: error.endpointId,
        },
      });
    }
    throw error;
  }
}

/** The caller's own endpoint (see {@link WebhookStore.getOwnedEndpoint}), someone else's reported. */
function ownedEndpoint(endpointId: string, caller: Principal, event: APIGatewayProxyEventV2) {
  return reportingNotOwner(caller, event, () => store.getOwnedEndpoint(endpointId, caller));
}

/** The scope that reads what each event carries, the same the route table asks to read it. */
const readScopeOf: Readonly<Record<WebhookEventType, string>> = {
  'booking.created': 'bookings/read',
  'booking.cancelled': 'bookings/read',
  'user.registered': 'users/read',
};

/**
 * A client (an integration) receives every event of the tenant, so it subscribes only to events it may
 * read: `webhooks/write` alone must not be a way round `bookings/read` or `users/read`. People are
 * held by the visibility rule instead (their own resources, or an admin's).
 */
function assertMayReceive(
  caller: Principal,
  eventTypes: readonly WebhookEventType[],
  event: APIGatewayProxyEventV2,
): void {
  if (!caller.isM2M) return;
  const missing = [...new Set(eventTypes.map((eventType) => readScopeOf[eventType]))].filter(
    (scope) => !caller.scopes.includes(scope),
  );
  if (missing.length > 0) {
    // Decided here, not by the route table: reported as the table's scope guard reports its refusals.
    emitEvent(onEvent, {
      type: 'access.denied',
      reason: 'insufficient_scope',
      principal: caller,
      metadata: {
        path: event.rawPath,
        httpMethod: event.requestContext?.http?.method,
        missingScopes: missing,
      },
    });
    throw new InsufficientScopeError(missing);
  }
}

export const handler = createHttpFunction(
  'webhooks',
  {
    'POST /webhooks': (route) =>
      route
        // Validation first: a body it refuses never touches the idempotency records.
        .use(validateInput({ body: registerBody }, smallBodyLimit))
        .use(registrationIdempotency)
        .handler(async (event, { input, principal, correlationId, scopedIdempotencyKey }) => {
          const caller = callerOf(principal);
          assertMayReceive(caller, input.body.eventTypes, event);
          await guard.assertSubmittedUrlAllowed(input.body.url, 'body.url', (blocked) =>
            reportBlockedUrl(caller, event, input.body.url, blocked),
          );
          // Named after the key when there is one, so that a retry meets the endpoint its first request made.
          const id =
            scopedIdempotencyKey === undefined
              ? undefined
              : endpointIdFor(scopedIdempotencyKey, ownerKindOf(caller));
          let registered: Awaited<ReturnType<typeof store.createEndpoint>>;
          try {
            registered = await store.createEndpoint(caller, { ...input.body, id });
          } catch (error) {
            if (!(error instanceof EndpointIdTakenError)) throw error;
            return retriedRegistration(error.endpointId, caller, input.body, correlationId);
          }
          const { endpoint, secret } = registered;
          auditEndpointCreated(endpoint, caller, correlationId);
          // The secret is shown this once (and to this caller's retry with the same Idempotency-Key); the
          // store keeps it encrypted and the API never returns it otherwise.
          return json(201, { ...publicEndpoint(endpoint), secret }, { Location: `/webhooks/${endpoint.id}` });
        }),

    'GET /webhooks': (route) =>
      route.use(validateInput({ query: pageQuerySchema })).handler(async (_event, { input, principal }) => {
        const page = await store.listOwnedEndpoints(
          callerOf(principal),
          input.query.limit,
          input.query.cursor,
        );
        const items = page.items.map((endpoint) => {
          if (!('unreadable' in endpoint)) return publicEndpoint(endpoint);
          logger.warn(
            'A listed webhook endpoint cannot be read by this version; it is listed without its fields',
            {
              endpointId: endpoint.id,
              reason: endpoint.unreadable,
            },
          );
          return endpoint;
        });
        return json(200, { ...page, items });
      }),

    'GET /webhooks/{id}': (route) =>
      route
        .use(validateInput({ path: idPathSchema }))
        .handler(async (event, { input, principal }) =>
          json(200, publicEndpoint(await ownedEndpoint(input.path.id, callerOf(principal), event))),
        ),

    'POST /webhooks/{id}/secret': (route) =>
      route
        .use(validateInput({ path: idPathSchema }))
        .use(rotationIdempotency)
        .handler(async (event, { input, principal, correlationId, scopedIdempotencyKey }) => {
          const caller = callerOf(principal);
          const endpoint = await ownedEndpoint(input.path.id, caller, event);
          const rotationKey =
            scopedIdempotencyKey === undefined ? undefined : rotationKeyOf(scopedIdempotencyKey);
          const earlier =
            rotationKey === undefined ? undefined : await store.rotationWithKey(endpoint.id, rotationKey);
          if (earlier !== undefined) {
            return retriedRotation(endpoint, earlier, caller, correlationId);
          }
          const { endpoint: rotated, secret } = await store.rotateSecret(endpoint, rotationKey);
          auditSecretRotated(rotated, caller, correlationId);
          // Shown this once (and to this caller's retry with the same Idempotency-Key), as at registration;
          // the previous secret is signed with too until previousSecretExpiresAt.
          return json(200, { ...publicEndpoint(rotated), secret });
        }),

    'POST /webhooks/{id}/enable': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (event, context) => {
        const { input, principal, correlationId } = context;
        const caller = callerOf(principal);
        const disabled = await ownedEndpoint(input.path.id, caller, event);
        const line = {
          eventType: 'webhook.endpoint_enabled',
          principal: caller,
          correlationId,
          metadata: {
            endpointId: disabled.id,
            ownerKind: disabled.ownerKind,
            disabledReason: disabled.disabledReason,
          },
        };
        const { endpoint, enabled } = await auditingUnknownOutcome(
          context,
          (reason) => auditLogger.log({ ...line, outcome: 'unknown', reason }),
          (sendWrite) => store.enableEndpoint(disabled, sendWrite),
        );
        // Only the call that enabled it is logged: enabling an enabled endpoint changes nothing.
        if (enabled) auditLogger.log({ ...line, outcome: 'success' });
        return json(200, publicEndpoint(endpoint));
      }),

    'DELETE /webhooks/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (event, context) => {
        const { input, principal, correlationId } = context;
        const caller = callerOf(principal);
        const line = {
          eventType: 'webhook.endpoint_deleted',
          principal: caller,
          correlationId,
          metadata: { endpointId: input.path.id },
        };
        await auditingUnknownOutcome(
          context,
          (reason) => auditLogger.log({ ...line, outcome: 'unknown', reason }),
          (sendWrite) =>
            reportingNotOwner(caller, event, () => store.deleteEndpoint(input.path.id, caller, sendWrite)),
        );
        auditLogger.log({ ...line, outcome: 'success' });
        return noContent();
      }),

    'DELETE /admin/webhooks/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, { input, principal }) => {
        const caller = callerOf(principal);
        const endpoint = await store.deleteTenantEndpoint(input.path.id, tenantOf(caller));
        auditAdminAction('webhook.endpoint_deleted', endpoint, caller);
        return noContent();
      }),

    'POST /admin/webhooks/{id}/enable': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, context) => {
        const caller = callerOf(context.principal);
        const disabled = await store.getTenantEndpoint(context.input.path.id, tenantOf(caller));
        const { endpoint, enabled } = await auditingUnknownOutcome(
          context,
          (reason) => auditAdminAction('webhook.endpoint_enabled', disabled, caller, { reason }),
          (sendWrite) => store.enableEndpoint(disabled, sendWrite),
        );
        if (enabled) auditAdminAction('webhook.endpoint_enabled', endpoint, caller);
        return json(200, publicEndpoint(endpoint));
      }),

    'GET /admin/webhooks/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, { input, principal }) => {
        const caller = callerOf(principal);
        const endpoint = await store.getTenantEndpoint(input.path.id, tenantOf(caller));
        auditAdminAction('webhook.endpoint_read', endpoint, caller);
        return json(200, publicEndpoint(endpoint));
      }),

    'GET /admin/webhooks/{id}/deliveries': (route) =>
      route
        .use(validateInput({ path: idPathSchema, query: pageQuerySchema }))
        .handler(async (_event, { input, principal }) => {
          const caller = callerOf(principal);
          const endpoint = await store.getTenantEndpoint(input.path.id, tenantOf(caller));
          // Read before the audit line: a cursor of another endpoint's list is a 400 that read nothing.
          const page = await store.listDeliveries(endpoint.id, input.query.limit, input.query.cursor);
          auditAdminAction('webhook.deliveries_read', endpoint, caller);
          return json(200, page);
        }),

    'GET /webhooks/{id}/deliveries': (route) =>
      route
        .use(validateInput({ path: idPathSchema, query: pageQuerySchema }))
        .handler(async (event, { input, principal }) => {
          const endpoint = await ownedEndpoint(input.path.id, callerOf(principal), event);
          return json(200, await store.listDeliveries(endpoint.id, input.query.limit, input.query.cursor));
        }),
  },
  logger,
);
