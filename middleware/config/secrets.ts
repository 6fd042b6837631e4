// Secrets Manager reads through Powertools Parameters: cached (maxAge), per version stage, audited, never logged.
import { GetParameterError } from '@aws-lambda-powertools/parameters';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import type { SecretsGetOptions } from '@aws-lambda-powertools/parameters/secrets/types';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { dependencyFailure, nameAwsDependency, retryBackoffMs } from '../dependency-failure.js';
import { assertNoProblems, SecretAccessError, type SecretFailureReason } from '../errors.js';
import { emitEvent, type SecurityEventListener } from '../events.js';
import { checkFunctionOption } from '../options.js';
import { boundedRequestHandler } from '../request-handler.js';

/** Secrets Manager's staging labels; AWSPREVIOUS is the version before the last rotation. */
export const versionStages = {
  current: 'AWSCURRENT',
  previous: 'AWSPREVIOUS',
  pending: 'AWSPENDING',
} as const;

export interface SecretStoreOptions {
  /** @default a SecretsManagerClient with 2 s request and 1 s connection timeouts, 3 attempts */
  readonly client?: SecretsManagerClient | undefined;
  /** How long a fetched version is reused, in seconds. @default 300 */
  readonly maxAgeSec?: number | undefined;
  /**
   * When a value matches neither the current nor the previous version, the current one is fetched
   * again (it may have rotated since it was cached), at most once per this many seconds per secret,
   * so bad requests cannot drive Secrets Manager calls.
   * @default 30
   */
  readonly refreshOnMismatchSec?: number | undefined;
  /**
   * How long past maxAge a secret's last good value still stands in while Secrets Manager is `unreachable`
   * (throttling, a 5xx, no connection, a timeout), in seconds; 0 fails such reads with a 503 as soon as the
   * value is older than maxAge. An hour rides out a regional Secrets Manager incident (they last minutes to
   * tens of minutes) without failing every request that needs the secret, yet bounds how long a value can be
   * used after Secrets Manager last confirmed it. A secret it answers missing (`not_found`) or refused
   * (`misconfigured`) is never served stale; and as long as it answers, values are never older than maxAge.
   * @default 3600
   */
  readonly staleIfErrorSec?: number | undefined;
  /**
   * Receives one `secret.accessed` event per fetch from Secrets Manager (name, version stage), and,
   * while it is unreachable, one for the first read answered with a stale value after each failed fetch
   * (`outcome: 'stale'`; later reads until the next fetch are not reported, so an outage yields a bounded
   * number of events, not one per request). @default none
   */
  readonly onEvent?: SecurityEventListener | undefined;
}

export interface GetSecretOptions {
  /** @default 'AWSCURRENT' */
  readonly versionStage?: string | undefined;
  /** @default the store's maxAgeSec */
  readonly maxAgeSec?: number | undefined;
  /** Skip the cache for this read. @default false */
  readonly forceFetch?: boolean | undefined;
}

/** Both sides of a rotation: during it, values made with either are valid. */
export interface SecretVersions {
  readonly current: string;
  /** Absent until the secret has been rotated once. */
  readonly previous: string | undefined;
}

/**
 * The longest wait between tries of a secret during an outage (from 1 s, doubling: {@link retryBackoffMs}),
 * so a recovery is seen within half a minute.
 */
const maxRetryMs = 30_000;

/**
 * The key Powertools 2.35's BaseProvider.get files a value under in its cache (`store`):
 * `[name, transform].toString()`. The store never passes a transform.
 */
function powertoolsCacheKey(name: string): string {
  return [name, undefined].toString();
}

/** A value Secrets Manager returned, and when it was asked for it (epoch ms). */
interface FetchedValue {
  readonly value: string | Uint8Array | undefined;
  readonly at: number;
}

/**
 * A Powertools SecretsProvider that reports every real fetch (cache misses only). Powertools 2.35
 * keys its cache by name and transform but not by VersionStage (powertools-lambda-typescript#5622),
 * so the store keeps one provider per version stage.
 */
class AuditedSecretsProvider extends SecretsProvider {
  constructor(
    client: SecretsManagerClient,
    private readonly versionStage: string,
    private readonly onEvent: SecurityEventListener | undefined,
  ) {
    super({ awsSdkV3Client: client });
  }

  /** Each secret's last value fetched from Secrets Manager: what a stale read falls back on. */
  readonly lastFetched = new Map<string, FetchedValue>();
  /**
   * Secrets whose last fetch failed `unreachable`: how many times in a row, when to try again (epoch ms),
   * and whether a read served stale since that failure has been reported.
   */
  private readonly outages = new Map<
    string,
    { readonly failures: number; readonly retryAt: number; readonly staleReported: boolean }
  >();

  /** Whether a fetch of `name` failed `unreachable` so recently that it should not be tried yet. */
  isBackingOff(name: string, now: number): boolean {
    return now < (this.outages.get(name)?.retryAt ?? Number.NEGATIVE_INFINITY);
  }

  /**
   * Whether a read of `name` served stale is the first since its last failed fetch, the one reported:
   * later ones until the next fetch are not, so an outage yields one audit line per failed fetch, not
   * one per request.
   */
  isFirstStaleReadSinceFailure(name: string): boolean {
    const outage = this.outages.get(name);
    if (outage === undefined) return true;
    if (outage.staleReported) return false;
    this.outages.set(name, { ...outage, staleReported: true });
    return true;
  }

  /** Whether a read of `name` would go to Secrets Manager: Powertools holds no value for it that has not expired. */
  lacksCachedValue(name: string): boolean {
    return this.hasKeyExpiredInCache(powertoolsCacheKey(name));
  }

  override clearCache(): void {
    super.clearCache();
    this.lastFetched.clear();
    this.outages.clear();
  }

  protected override async _get(name: string, options?: NonNullable<SecretsGetOptions>) {
    const startedAt = Date.now();
    const value = await super._get(name, options).catch((error: unknown) => {
      if (fetchFailureReason(error) === 'unreachable') {
        const failures = (this.outages.get(name)?.failures ?? 0) + 1;
        const retryAt = Date.now() + retryBackoffMs(failures, maxRetryMs);
        this.outages.set(name, { failures, retryAt, staleReported: false });
      } else {
        // Missing, scheduled for deletion, access revoked: Secrets Manager's answer, so the old value must stop
        // working at once, for reads Powertools would answer from its cache until maxAge too.
        this.outages.delete(name);
        this.lastFetched.delete(name);
        this.store.delete(powertoolsCacheKey(name));
      }
      emitEvent(this.onEvent, {
        type: 'secret.accessed',
        reason: error instanceof Error ? error.name : 'Error',
        metadata: { name, versionStage: this.versionStage, outcome: 'error' },
      });
      throw error;
    });
    this.lastFetched.set(name, { value, at: startedAt });
    this.outages.delete(name);
    emitEvent(this.onEvent, {
      type: 'secret.accessed',
      metadata: { name, versionStage: this.versionStage, outcome: 'ok' },
    });
    return value;
  }
}

/**
 * The Secrets Manager client `SecretStore` makes when given none: 2 s per request, 1 s to connect, 3
 * attempts, so a Secrets Manager that hangs fails the call in about 6 s rather than holding it until the
 * function times out; named `Secrets Manager` in failure logs.
 *
 * @example
 * const rotator = new SecretRotator({ client: createSecretsManagerClient() });
 */
export function createSecretsManagerClient(): SecretsManagerClient {
  const client = new SecretsManagerClient({
    maxAttempts: 3,
    requestHandler: boundedRequestHandler({ requestTimeoutMs: 2000, connectionTimeoutMs: 1000 }),
  });
  nameAwsDependency(client);
  return client;
}

/**
 * Why a fetch failed: `unreachable` only for Secrets Manager's own passing failure (throttling, a 5xx, no
 * connection, a timeout), which a retry may get past; anything else but a missing secret (a missing IAM
 * permission, a KMS key it cannot use, a secret scheduled for deletion, a refused request, bad credentials,
 * a bug) is `misconfigured`: no retry helps.
 */
function fetchFailureReason(error: unknown): SecretFailureReason {
  const cause = error instanceof GetParameterError ? error.cause : error;
  if (cause instanceof Error && cause.name === 'ResourceNotFoundException') return 'not_found';
  return dependencyFailure(cause) === undefined ? 'misconfigured' : 'unreachable';
}

/** A fetched value as text; a binary secret (SecretBinary) is SecretAccessError `not_text`. */
function textOf(value: string | Uint8Array | undefined, name: string, versionStage: string): string {
  if (typeof value !== 'string') throw new SecretAccessError(name, versionStage, 'not_text');
  return value;
}

/**
 * A secret's text as the JSON object it must hold; anything else is SecretAccessError `not_json`.
 *
 * @example
 * const config = parseJsonSecret(await secrets.getSecret('bulwark/config'), 'bulwark/config');
 */
export function parseJsonSecret(
  text: string,
  name: string,
  versionStage: string = versionStages.current,
): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message may quote the secret; it is dropped on purpose.
    throw new SecretAccessError(name, versionStage, 'not_json');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SecretAccessError(name, versionStage, 'not_json');
  }
  return parsed as Record<string, unknown>;
}

/**
 * Reads secrets with caching and audit events. Create one per function, at module scope.
 *
 * @example
 * const secrets = new SecretStore({ onEvent });
 * const signingKey = await secrets.getSecret('bulwark/webhook-signing');
 * const stage = await secrets.matchVersion('bulwark/webhook-signing', (secret) => verify(body, secret));
 */
export class SecretStore {
  private readonly client: SecretsManagerClient;
  private readonly maxAgeSec: number;
  private readonly refreshOnMismatchMs: number;
  private readonly staleIfErrorMs: number;
  private readonly onEvent: SecurityEventListener | undefined;
  /**
   * One provider per version stage. clearCache replaces them: a fetch under way keeps writing to the
   * provider it started on, so a value asked for before the clear never enters the new cache.
   */
  private readonly providers = new Map<string, AuditedSecretsProvider>();
  /** Counts clearCache calls, so an answer asked for before one is not recorded after it. */
  private generation = 0;
  /** Fetches under way, by version stage and name, so concurrent callers make one request. */
  private readonly inFlight = new Map<
    string,
    { readonly value: Promise<string | Uint8Array | undefined>; readonly forced: boolean }
  >();
  private readonly lastForcedRefresh = new Map<string, number>();
  /**
   * When (epoch ms) Secrets Manager last answered that a secret has no AWSPREVIOUS version. Powertools
   * caches only values, so without this a secret never rotated would be fetched on every use.
   */
  private readonly previousAbsentAt = new Map<string, number>();

  constructor(options: SecretStoreOptions = {}) {
    const problems: string[] = [];
    const maxAgeSec = options.maxAgeSec ?? 300;
    const refreshOnMismatchSec = options.refreshOnMismatchSec ?? 30;
    const staleIfErrorSec = options.staleIfErrorSec ?? 3600;
    if (!Number.isFinite(maxAgeSec) || maxAgeSec < 0) problems.push('maxAgeSec must be >= 0');
    if (!Number.isFinite(refreshOnMismatchSec) || refreshOnMismatchSec < 0) {
      problems.push('refreshOnMismatchSec must be >= 0');
    }
    if (!Number.isFinite(staleIfErrorSec) || staleIfErrorSec < 0) {
      problems.push('staleIfErrorSec must be >= 0');
    }
    checkFunctionOption(problems, 'onEvent', options.onEvent);
    assertNoProblems('SecretStore', problems);
    this.client = options.client ?? createSecretsManagerClient();
    this.maxAgeSec = maxAgeSec;
    this.refreshOnMismatchMs = refreshOnMismatchSec * 1000;
    this.staleIfErrorMs = staleIfErrorSec * 1000;
    this.onEvent = options.onEvent;
  }

  /** Whether something Secrets Manager answered at `answeredAt` may still stand in for a fetch that cannot be made. */
  private mayServeStale(answeredAt: number, maxAgeSec: number, now: number): boolean {
    return now - answeredAt <= maxAgeSec * 1000 + this.staleIfErrorMs;
  }

  /**
   * Reports a read answered from what Secrets Manager last said (a value, or that there is no previous
   * version) because it could not be asked: its fetch failed `unreachable` just now (`fetch_failed`), or
   * one did so recently and the store waits before trying again (`retry_backoff`). Only the first such
   * read after each failed fetch of that secret and version stage is reported.
   */
  private reportStale(
    name: string,
    versionStage: string,
    answeredAt: number,
    staleReason: 'fetch_failed' | 'retry_backoff',
  ): void {
    if (!this.providerFor(versionStage).isFirstStaleReadSinceFailure(name)) return;
    emitEvent(this.onEvent, {
      type: 'secret.accessed',
      reason: 'unreachable',
      metadata: {
        name,
        versionStage,
        outcome: 'stale',
        staleReason,
        ageSec: Math.floor((Date.now() - answeredAt) / 1000),
      },
    });
  }

  private providerFor(versionStage: string): AuditedSecretsProvider {
    let provider = this.providers.get(versionStage);
    if (!provider) {
      provider = new AuditedSecretsProvider(this.client, versionStage, this.onEvent);
      this.providers.set(versionStage, provider);
    }
    return provider;
  }

  /**
   * A string secret (one version stage, AWSCURRENT by default), no older than maxAgeSec (this call's,
   * else the store's). Concurrent calls for one secret share one fetch. While Secrets Manager is
   * `unreachable`, the last value fetched stands in for up to staleIfErrorSec past maxAge, and after a
   * failed fetch Secrets Manager is not asked again for that secret for a backoff (1 s, doubling up to
   * 30 s), so an outage, even a hanging one, does not cost every read a failed call: a read with no value
   * to stand in fails at once during the backoff.
   */
  async getSecret(name: string, options: GetSecretOptions = {}): Promise<string> {
    const versionStage = options.versionStage ?? versionStages.current;
    const provider = this.providerFor(versionStage);
    const maxAgeSec = options.maxAgeSec ?? this.maxAgeSec;
    const now = Date.now();
    // Powertools keeps a value until the expiry its fetcher asked for: a caller wanting a fresher one
    // (a shorter maxAgeSec than whoever filled the cache) fetches it itself.
    const last = provider.lastFetched.get(name);
    const tooOld = last !== undefined && now - last.at >= maxAgeSec * 1000;
    const forceFetch = (options.forceFetch ?? false) || tooOld;
    // Powertools fetches too once its own entry expires, though this caller's maxAge has not run out
    // (a caller with a shorter maxAgeSec wrote it): the backoff holds for that fetch as well.
    const willFetch = forceFetch || provider.lacksCachedValue(name);
    if (
      willFetch &&
      last !== undefined &&
      provider.isBackingOff(name, now) &&
      this.mayServeStale(last.at, maxAgeSec, now)
    ) {
      this.reportStale(name, versionStage, last.at, 'retry_backoff');
      return textOf(last.value, name, versionStage);
    }
    // Nothing may stand in (a cold start during the outage, or a value too old): failing at once beats
    // every read waiting out another failing, perhaps hanging, fetch until the backoff ends.
    if (willFetch && provider.isBackingOff(name, now)) {
      throw new SecretAccessError(name, versionStage, 'unreachable');
    }
    const inFlightKey = `${versionStage}\u0000${name}`;
    const pending = this.inFlight.get(inFlightKey);
    // A caller that must see a fresh value joins only a fetch that was forced too.
    let fetching = pending && (pending.forced || !forceFetch) ? pending.value : undefined;
    if (!fetching) {
      const started = provider
        .get(name, { maxAge: maxAgeSec, forceFetch, sdkOptions: { VersionStage: versionStage } })
        .finally(() => {
          if (this.inFlight.get(inFlightKey)?.value === started) this.inFlight.delete(inFlightKey);
        });
      this.inFlight.set(inFlightKey, { value: started, forced: forceFetch });
      fetching = started;
    }
    let value: string | Uint8Array | undefined;
    try {
      value = await fetching;
    } catch (error) {
      const reason = fetchFailureReason(error);
      // Read again: a fetch that succeeded while this one was failing left a newer value.
      const lastGood = provider.lastFetched.get(name);
      if (reason === 'unreachable' && lastGood && this.mayServeStale(lastGood.at, maxAgeSec, Date.now())) {
        this.reportStale(name, versionStage, lastGood.at, 'fetch_failed');
        return textOf(lastGood.value, name, versionStage);
      }
      throw new SecretAccessError(name, versionStage, reason, { cause: error });
    }
    return textOf(value, name, versionStage);
  }

  /** A secret holding a JSON object (the usual shape for configuration). */
  async getJsonSecret(name: string, options: GetSecretOptions = {}): Promise<Record<string, unknown>> {
    const versionStage = options.versionStage ?? versionStages.current;
    return parseJsonSecret(await this.getSecret(name, options), name, versionStage);
  }

  /** The current and (when the secret has been rotated) previous versions. */
  async getSecretVersions(
    name: string,
    options: Omit<GetSecretOptions, 'versionStage'> = {},
  ): Promise<SecretVersions> {
    const [current, previous] = await Promise.all([
      this.getSecret(name, options),
      this.getPreviousVersion(name, options),
    ]);
    return { current, previous };
  }

  /**
   * AWSPREVIOUS, or undefined before the first rotation; its absence is cached as long as a value, and
   * stands in while Secrets Manager is unreachable as long as a stale value would.
   */
  private async getPreviousVersion(
    name: string,
    options: Omit<GetSecretOptions, 'versionStage'>,
  ): Promise<string | undefined> {
    const maxAgeSec = options.maxAgeSec ?? this.maxAgeSec;
    const generation = this.generation;
    const absentAt = this.previousAbsentAt.get(name);
    const now = Date.now();
    if (options.forceFetch !== true && absentAt !== undefined && now - absentAt < maxAgeSec * 1000) {
      return undefined;
    }
    if (
      absentAt !== undefined &&
      this.providerFor(versionStages.previous).isBackingOff(name, now) &&
      this.mayServeStale(absentAt, maxAgeSec, now)
    ) {
      this.reportStale(name, versionStages.previous, absentAt, 'retry_backoff');
      return undefined;
    }
    try {
      const previous = await this.getSecret(name, { ...options, versionStage: versionStages.previous });
      this.previousAbsentAt.delete(name);
      return previous;
    } catch (error) {
      if (!(error instanceof SecretAccessError)) throw error;
      if (error.reason === 'not_found') {
        if (generation === this.generation) this.previousAbsentAt.set(name, Date.now());
        return undefined;
      }
      if (
        error.reason === 'unreachable' &&
        absentAt !== undefined &&
        this.mayServeStale(absentAt, maxAgeSec, Date.now())
      ) {
        this.reportStale(name, versionStages.previous, absentAt, 'fetch_failed');
        return undefined;
      }
      throw error;
    }
  }

  /**
   * A secret kept as JSON `{ "current": "…", "previous": "…" }` in one version, the shape Bulwark's
   * rotation function writes (previous absent until the first rotation), cached for maxAgeSec. With
   * `refresh: true` (a value matched neither, so the secret may have rotated since it was cached) it is
   * fetched again, at most once per refreshOnMismatchSec, so bad requests cannot drive Secrets Manager calls.
   *
   * @example
   * const { current } = await secrets.getRotatingSecret(process.env.SIGNING_SECRET_ARN as string);
   */
  async getRotatingSecret(
    name: string,
    options: { readonly refresh?: boolean | undefined } = {},
  ): Promise<SecretVersions> {
    const now = Date.now();
    const forceFetch =
      options.refresh === true &&
      now - (this.lastForcedRefresh.get(name) ?? Number.NEGATIVE_INFINITY) >= this.refreshOnMismatchMs;
    if (forceFetch) this.lastForcedRefresh.set(name, now);
    const { current, previous } = await this.getJsonSecret(name, { forceFetch });
    if (typeof current !== 'string' || !(previous === undefined || typeof previous === 'string')) {
      throw new SecretAccessError(name, versionStages.current, 'not_rotating');
    }
    return { current, previous };
  }

  /**
   * Dual acceptance during rotation: the stage (AWSCURRENT, else AWSPREVIOUS) whose value passes
   * `check`, or undefined when none does. A miss re-reads the current version, rate-limited, in case
   * it rotated after it was cached.
   *
   * @example
   * const stage = await secrets.matchVersion('webhook-secret', (secret) => verifySignature(body, secret));
   * if (!stage) throw new UnauthorizedError('Bad signature');
   */
  async matchVersion(
    name: string,
    check: (secret: string) => boolean | Promise<boolean>,
  ): Promise<typeof versionStages.current | typeof versionStages.previous | undefined> {
    // AWSPREVIOUS only on a miss: a value made with the current version, the usual case, needs nothing
    // else, even while AWSPREVIOUS cannot be read.
    const current = await this.getSecret(name);
    if (await check(current)) return versionStages.current;
    const previous = await this.getPreviousVersion(name, {});
    if (previous !== undefined && (await check(previous))) return versionStages.previous;
    const now = Date.now();
    if (now - (this.lastForcedRefresh.get(name) ?? Number.NEGATIVE_INFINITY) < this.refreshOnMismatchMs) {
      return undefined;
    }
    this.lastForcedRefresh.set(name, now);
    const fresh = await this.getSecretVersions(name, { forceFetch: true });
    if (fresh.current !== current && (await check(fresh.current))) return versionStages.current;
    if (fresh.previous !== undefined && fresh.previous !== previous && (await check(fresh.previous))) {
      return versionStages.previous;
    }
    return undefined;
  }

  /**
   * Forgets every cached version, stale fallbacks and backoffs included (tests; or after an emergency
   * rotation). Reads after it fetch anew: they do not join a fetch already under way, whose answer (perhaps
   * the value just rotated away) is not cached.
   */
  clearCache(): void {
    for (const provider of this.providers.values()) provider.clearCache();
    this.providers.clear();
    this.inFlight.clear();
    this.generation += 1;
    this.lastForcedRefresh.clear();
    this.previousAbsentAt.clear();
  }
}

let defaultStore: SecretStore | undefined;

/**
 * Replaces the store behind {@link getSecret}, e.g. to attach the audit listener at cold start.
 *
 * @example
 * configureSecretStore({ onEvent: auditListener, maxAgeSec: 600 });
 */
export function configureSecretStore(options: SecretStoreOptions): SecretStore {
  defaultStore = new SecretStore(options);
  return defaultStore;
}

/**
 * Reads a string secret through a module-level {@link SecretStore} (created on first use).
 *
 * @example
 * const apiKey = await getSecret('bulwark/partner-api-key');
 * const old = await getSecret('bulwark/partner-api-key', { versionStage: 'AWSPREVIOUS' });
 */
export function getSecret(name: string, options: GetSecretOptions = {}): Promise<string> {
  defaultStore ??= new SecretStore();
  return defaultStore.getSecret(name, options);
}
