// Service-to-service request signing: HMAC-SHA256 over a canonical request, a timestamp window and single-use nonces.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { assertNoProblems, InvalidArgumentError, ServiceUnavailableError } from '../errors.js';
import { parseRawQuery, percentDecodedPath } from '../http/input.js';
import { arrayOption, checkMethodsOption, requireOptionsObject, shownValue } from '../options.js';
import { checkTableName, toEpochSeconds } from '../store/tables.js';
import { credentialError } from './failure.js';
import { isUsableSecretValue } from './hmac-secret.js';
import type { Principal } from './principal.js';

/**
 * Query parameters in any of the shapes callers have at hand. A string is read as `URLSearchParams`
 * reads it: one leading `?` is the delimiter, as in `URL.search`, so `??a=1` names the key `?a`. A
 * record whose keys or values hold a lone surrogate is refused with `InvalidArgumentError`; a string or
 * `URLSearchParams` has it as U+FFFD already, as a URL would send it.
 */
export type QueryInput =
  | string
  | URLSearchParams
  | Readonly<Record<string, string | readonly string[] | undefined>>
  | undefined;

/** What a signature covers. */
export interface SignableRequest {
  readonly method: string;
  /**
   * The path without the query, percent-decoded ({@link percentDecodedPath}): `/users/café` for
   * `/users/caf%C3%A9`. An API Gateway HTTP API hands the callee its path decoded, a Function URL as sent
   * (the callee decodes it once): the decoded form is the one both can check. A REST API gives no raw
   * path, so signed calls through one are not verified.
   */
  readonly path: string;
  /** @default no query */
  readonly query?: QueryInput | undefined;
  /** The exact body bytes (a string is taken as UTF-8). @default empty */
  readonly body?: string | Uint8Array | undefined;
  /** Epoch seconds. */
  readonly timestamp: number | string;
  readonly nonce: string;
}

/** The four headers a signed request carries (a type, not an interface, so it fits `Record<string, string>`). */
export type ServiceAuthHeaders = {
  readonly 'X-Service-Id': string;
  readonly 'X-Timestamp': string;
  readonly 'X-Nonce': string;
  readonly 'X-Signature': string;
};

export interface ServiceCredentials {
  /** Who is calling, e.g. `bookings`. */
  readonly serviceId: string;
  /** The caller's current signing secret. */
  readonly secret: string;
}

/** The request a signer is asked to sign (the shape of a `fetch` call). */
export interface OutgoingRequest {
  readonly method: string;
  /** Absolute URL, or a path with an optional query. */
  readonly url: string | URL;
  /** @default empty */
  readonly body?: string | Uint8Array | undefined;
}

function queryPairs(query: QueryInput): [string, string][] {
  if (query === undefined) return [];
  if (typeof query === 'string') return [...new URLSearchParams(query)];
  if (query instanceof URLSearchParams) return [...query];
  return Object.entries(query).flatMap(([key, value]) =>
    value === undefined
      ? []
      : (typeof value === 'string' ? [value] : value).map((item): [string, string] => {
          // A lone surrogate has no UTF-8, so no percent-encoding: a URL would send U+FFFD instead.
          if (!key.isWellFormed() || !item.isWellFormed()) {
            throw new InvalidArgumentError(
              `Query parameter ${shownValue(key)} holds a lone surrogate, which no URL can carry`,
            );
          }
          return [key, item];
        }),
  );
}

/**
 * The query in canonical form: decoded pairs sorted by name then value, each part percent-encoded,
 * joined with `&`. Both sides compute it, so any encoding differences along the way cancel out.
 */
export function canonicalQuery(query: QueryInput): string {
  return queryPairs(query)
    .sort(([keyA, valueA], [keyB, valueB]) =>
      keyA < keyB ? -1 : keyA > keyB ? 1 : valueA < valueB ? -1 : valueA > valueB ? 1 : 0,
    )
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join('&');
}

/**
 * The string a signature covers: method, path, canonical query, SHA-256 of the body (hex),
 * timestamp and nonce, one per line.
 */
export function canonicalRequest(request: SignableRequest): string {
  const body = request.body ?? '';
  return [
    request.method.toUpperCase(),
    request.path,
    canonicalQuery(request.query),
    createHash('sha256').update(body).digest('hex'),
    String(request.timestamp),
    request.nonce,
  ].join('\n');
}

/**
 * The HMAC-SHA256 signature (lower-case hex) of a request.
 *
 * @example
 * const signature = signRequest(secret, { method: 'GET', path: '/users/42', timestamp: 1767225600, nonce });
 */
export function signRequest(secret: string, request: SignableRequest): string {
  return createHmac('sha256', secret).update(canonicalRequest(request)).digest('hex');
}

/**
 * The four headers that sign one outgoing request, with a fresh nonce and the current time.
 *
 * @example
 * const body = JSON.stringify({ name: 'x' });
 * await fetch(url, { method: 'POST', body, headers: { ...serviceAuthHeaders({ serviceId: 'bookings', secret }, { method: 'POST', url, body }) } });
 */
export function serviceAuthHeaders(
  credentials: ServiceCredentials,
  request: OutgoingRequest & { readonly timestamp?: number | undefined; readonly nonce?: string | undefined },
): ServiceAuthHeaders {
  const url = new URL(request.url, 'http://service.invalid');
  const timestamp = request.timestamp ?? toEpochSeconds(Date.now());
  const nonce = request.nonce ?? randomBytes(18).toString('base64url');
  const signature = signRequest(credentials.secret, {
    method: request.method,
    path: percentDecodedPath(url.pathname),
    query: url.searchParams,
    body: request.body,
    timestamp,
    nonce,
  });
  return {
    'X-Service-Id': credentials.serviceId,
    'X-Timestamp': String(timestamp),
    'X-Nonce': nonce,
    'X-Signature': signature,
  };
}

/** A service id the verifier accepts: letters, digits, `_`, `.` and `-`, at most 64. */
const serviceIdPattern = /^[\w.-]{1,64}$/;

/**
 * A signing hook for an HTTP client: give it each outgoing request, add the headers it returns. The
 * secret must be one the verifier accepts (at least 32 characters besides whitespace), so an unset
 * environment variable or a placeholder fails here, once, rather than on every call or at the callee.
 *
 * @example
 * const sign = createServiceSigner({ serviceId: 'bookings', secret });
 * await fetch(url, { headers: { ...sign({ method: 'GET', url }) } });
 */
export function createServiceSigner(
  credentials: ServiceCredentials,
): (request: OutgoingRequest) => ServiceAuthHeaders {
  requireOptionsObject('createServiceSigner', credentials);
  const { serviceId, secret } = credentials;
  const problems: string[] = [];
  if (typeof serviceId !== 'string' || !serviceIdPattern.test(serviceId))
    problems.push(`serviceId ${JSON.stringify(serviceId)} is invalid`);
  if (secret === undefined) problems.push('secret is undefined (an unset environment variable?)');
  else if (typeof secret !== 'string' || !isUsableSecretValue(secret))
    problems.push('secret must be a string of at least 32 characters besides whitespace');
  assertNoProblems('createServiceSigner', problems);
  return (request) => serviceAuthHeaders(credentials, request);
}

export { isUsableSecretValue, minRotatingSecretLength } from './hmac-secret.js';

/** Whether a rotating secret's values can key an HMAC (see {@link isUsableSecretValue}). */
export function isUsableRotatingSecret(secret: RotatingSecret): boolean {
  return [secret.current, secret.previous].every(
    (value, index) =>
      (index === 1 && value === undefined) || (typeof value === 'string' && isUsableSecretValue(value)),
  );
}

/** A run-time source's secret; one that cannot be read, or is unusable, is a 503, never a verdict on the caller. */
async function readSource(secrets: ServiceSecretSource, refresh: boolean): Promise<RotatingSecret> {
  let secret: RotatingSecret;
  try {
    secret = await secrets.source(refresh);
  } catch (error) {
    throw new ServiceUnavailableError('Service credentials are unavailable', 5, { cause: error });
  }
  if (!isUsableRotatingSecret(secret)) {
    throw new ServiceUnavailableError('Service credentials are unavailable', 5, {
      cause: new Error(
        'the signing secret source returned a secret of fewer than 32 characters besides whitespace',
      ),
    });
  }
  return secret;
}

/**
 * Remembers nonces until they expire; `claim` is true only for the first use of a nonce. A claimed nonce
 * can be claimed again only once `nowMs` reaches its `expiresAtSec`, which the verifier sets past the last
 * second at which any verifier, whatever its `toleranceSec`, accepts the request's timestamp.
 */
export interface NonceStore {
  claim(key: string, expiresAtSec: number, nowMs: number): Promise<boolean>;
}

/**
 * Nonces as `NONCE#<service>#<nonce>` items in the toolkit table, claimed with a conditional put. Each
 * claim writes a token of its own: when the put lands but its answer is lost or late, the SDK sends it
 * again and that repeat fails its condition on the item the first attempt wrote; the item it gets back
 * carrying this claim's token tells the claim succeeded, so a first use is not refused as a replay.
 *
 * @example
 * const nonces = new DynamoDbNonceStore({ client: documentClient, tableName: 'bulwark-toolkit' });
 */
export class DynamoDbNonceStore implements NonceStore {
  constructor(
    private readonly options: { readonly client: DynamoDBDocumentClient; readonly tableName: string },
  ) {
    const problems: string[] = [];
    if (!options?.client) problems.push('client is required');
    else checkMethodsOption(problems, 'client', options.client, ['send'], 'a DynamoDBDocumentClient');
    checkTableName(problems, options?.tableName);
    assertNoProblems('DynamoDbNonceStore', problems);
  }

  async claim(key: string, expiresAtSec: number, nowMs: number): Promise<boolean> {
    const claimToken = randomUUID();
    try {
      await this.options.client.send(
        new PutCommand({
          TableName: this.options.tableName,
          Item: { pk: `NONCE#${key}`, sk: 'NONCE', expiresAt: expiresAtSec, claimToken },
          // Two deliveries of one signed request race here: only the first put succeeds. An expired
          // item TTL has not deleted yet counts as absent.
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
          ExpressionAttributeValues: { ':now': toEpochSeconds(nowMs) },
          // Costs nothing on success; on failure it says whose claim the item is.
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (error) {
      // The document client leaves the item of a failed condition in DynamoDB's attribute-value form.
      if (error instanceof ConditionalCheckFailedException)
        return error.Item?.['claimToken']?.S === claimToken;
      throw error;
    }
  }
}

/** A secret during rotation: the value in use and, for a while after a rotation, the one before it. */
export interface RotatingSecret {
  readonly current: string;
  /** Still accepted while callers move to `current`. @default undefined */
  readonly previous?: string | undefined;
}

/** A calling service's secrets, fixed for the life of the verifier, and the scopes its principal carries. */
export interface ServiceSecrets extends RotatingSecret {
  /** Scopes its principal carries. @default [] */
  readonly scopes?: readonly string[] | undefined;
}

/**
 * A calling service whose secrets are read at run time, so a rotation takes effect without a deploy.
 * `source` is asked on every verification (keep it cached, e.g. `SecretStore.getRotatingSecret`), and
 * once more with `refresh: true` when a signature matches neither value, in case the secret rotated
 * since it was cached; the source decides how often such a refresh may really fetch.
 */
export interface ServiceSecretSource {
  readonly source: (refresh: boolean) => Promise<RotatingSecret>;
  /** Scopes its principal carries. @default [] */
  readonly scopes?: readonly string[] | undefined;
}

export interface ServiceRequestVerifierOptions {
  /** Known callers by service id: fixed secrets, or a source read at run time. */
  readonly services: Readonly<Record<string, ServiceSecrets | ServiceSecretSource>>;
  readonly nonceStore: NonceStore;
  /** Accepted distance between the request's timestamp and now, either way, in seconds. @default 300 */
  readonly toleranceSec?: number | undefined;
}

/** An incoming request as the verifier reads it (API Gateway v2 gives all of this). */
export interface IncomingSignedRequest {
  readonly method: string;
  /**
   * The path percent-decoded, as signers sign it and `signedPathOf` (middleware/http/request-event.ts)
   * reads it from the event: an HTTP API's `rawPath` as it is, a Function URL's decoded once. Compared as
   * given, never decoded again here: a second decoding would let `/a%2541`'s signature pass at `/a%41`.
   */
  readonly path: string;
  readonly rawQueryString: string;
  readonly body: Buffer;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
}

export const serviceAuthHeaderNames = ['x-service-id', 'x-timestamp', 'x-nonce', 'x-signature'] as const;

/** The widest `toleranceSec` a verifier accepts, and so how long every nonce is kept past its timestamp. */
const maxToleranceSec = 3600;

/**
 * Verifies signed service requests: known service id, timestamp within the window, signature by
 * the current or previous secret, and a nonce never seen before (claimed only once the signature
 * holds, so forged requests cannot fill the nonce table).
 *
 * @example
 * const secretStore = new SecretStore();
 * const services = new ServiceRequestVerifier({
 *   services: { bookings: { source: (refresh) => secretStore.getRotatingSecret(signingSecretArn, { refresh }) } },
 *   nonceStore: new DynamoDbNonceStore({ client, tableName }),
 * });
 */
export class ServiceRequestVerifier {
  private readonly services: ReadonlyMap<string, ServiceSecrets | ServiceSecretSource>;
  private readonly nonceStore: NonceStore;
  private readonly toleranceSec: number;

  constructor(options: ServiceRequestVerifierOptions) {
    requireOptionsObject('ServiceRequestVerifier', options);
    const problems: string[] = [];
    const services = new Map<string, ServiceSecrets | ServiceSecretSource>();
    for (const [serviceId, secrets] of Object.entries(options.services ?? {})) {
      if (!serviceIdPattern.test(serviceId))
        problems.push(`service id ${JSON.stringify(serviceId)} is invalid`);
      if (typeof secrets !== 'object' || secrets === null) {
        problems.push(`${serviceId}: must be { current, previous } secrets or a { source }`);
      } else if ('source' in secrets) {
        if (typeof secrets.source !== 'function') problems.push(`${serviceId}: source must be a function`);
      } else if (!isUsableRotatingSecret(secrets)) {
        problems.push(`${serviceId}: secrets must hold at least 32 characters besides whitespace`);
      }
      // A string would be the principal's scopes as it is, and a guard's includes() would match its substrings.
      if (typeof secrets === 'object' && secrets !== null) {
        for (const scope of arrayOption(problems, `${serviceId}: scopes`, secrets.scopes, 'of scope names')) {
          if (typeof scope !== 'string' || scope.length === 0) {
            problems.push(
              `${serviceId}: scopes entries must be non-empty scope names (got ${shownValue(scope)})`,
            );
          }
        }
      }
      services.set(serviceId, secrets);
    }
    if (services.size === 0) problems.push('services must name at least one caller');
    if (!options.nonceStore) problems.push('nonceStore is required');
    else checkMethodsOption(problems, 'nonceStore', options.nonceStore, ['claim'], 'a DynamoDbNonceStore');
    const toleranceSec = options.toleranceSec ?? 300;
    if (!(Number.isInteger(toleranceSec) && toleranceSec >= 1 && toleranceSec <= maxToleranceSec))
      problems.push(
        `toleranceSec must be an integer 1..${maxToleranceSec} (got ${shownValue(toleranceSec)})`,
      );
    assertNoProblems('ServiceRequestVerifier', problems);
    this.services = services;
    this.nonceStore = options.nonceStore;
    this.toleranceSec = toleranceSec;
  }

  /** Whether the request carries any of the signing headers (it then must carry all of them, valid). */
  static isSigned(headers: Readonly<Record<string, string | undefined>>): boolean {
    return serviceAuthHeaderNames.some((name) => headers[name] !== undefined);
  }

  /**
   * The calling service's principal.
   * @throws InvalidTokenError (401): malformed headers, unknown service, timestamp outside the
   * window, bad signature, replayed nonce; ServiceUnavailableError (503) when nonces cannot be stored.
   */
  async verify(request: IncomingSignedRequest): Promise<Principal> {
    const serviceId = request.headers['x-service-id'];
    const timestamp = request.headers['x-timestamp'];
    const nonce = request.headers['x-nonce'];
    const signature = request.headers['x-signature']?.toLowerCase();
    if (
      serviceId === undefined ||
      timestamp === undefined ||
      nonce === undefined ||
      signature === undefined ||
      !/^\d{1,12}$/.test(timestamp) ||
      !/^[\w-]{16,128}$/.test(nonce) ||
      !/^[0-9a-f]{64}$/.test(signature)
    ) {
      throw credentialError('malformed');
    }
    const secrets = this.services.get(serviceId);
    if (secrets === undefined) throw credentialError('unknown_service');
    const nowMs = Date.now();
    const requestSec = Number(timestamp);
    if (Math.abs(toEpochSeconds(nowMs) - requestSec) > this.toleranceSec)
      throw credentialError('timestamp_skew');
    // One path, decoded once by whoever built the request: trying a second form (decoding again, or the
    // path as received) would let a signature for one resource pass at another (`/a%2541` at `/a%41`).
    const signable: SignableRequest = {
      method: request.method,
      path: request.path,
      // As the signer read the URL it sent: `??a=1` must not verify as `?a=1`.
      query: parseRawQuery(request.rawQueryString),
      body: request.body,
      timestamp,
      nonce,
    };
    const presented = Buffer.from(signature, 'hex');
    const signedBy = (secret: RotatingSecret) =>
      [secret.current, secret.previous].some(
        (value) =>
          value !== undefined && timingSafeEqual(Buffer.from(signRequest(value, signable), 'hex'), presented),
      );
    const matches =
      'source' in secrets
        ? signedBy(await readSource(secrets, false)) || signedBy(await readSource(secrets, true))
        : signedBy(secrets);
    if (!matches) throw credentialError('bad_signature');
    // The nonce must be remembered as long as its timestamp is acceptable to any verifier, not only this
    // one: kept only for this toleranceSec, a request seen here would pass again after a deploy that raises
    // it, or at an instance still running a larger one. The store reads the nonce as expired only once
    // `expiresAt <= now`, and every verifier accepts only `now <= requestSec + toleranceSec`: one second
    // past the widest tolerance, the two never meet.
    let fresh: boolean;
    try {
      fresh = await this.nonceStore.claim(`${serviceId}#${nonce}`, requestSec + maxToleranceSec + 1, nowMs);
    } catch (error) {
      // Without the nonce store a replay cannot be told apart: refuse rather than accept blindly.
      throw new ServiceUnavailableError('Replay protection is unavailable', 5, { cause: error });
    }
    // Signed by the service's secret: a replay of one of its requests, whoever sends it again.
    if (!fresh) throw credentialError('replayed', { credential: { verified: true, subject: serviceId } });
    return {
      id: serviceId,
      isM2M: true,
      clientId: serviceId,
      email: undefined,
      scopes: secrets.scopes ?? [],
      roles: [],
      tenantId: undefined,
      authMethod: 'service',
      claims: { serviceId, timestamp: requestSec },
    };
  }
}
