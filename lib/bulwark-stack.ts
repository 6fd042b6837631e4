// The Bulwark stack: KMS keys, tables, functions (from the route table), queues and workers, HTTP API, Cognito, secrets, dashboard, alarms.
import { createHash } from 'node:crypto';
import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ses from 'aws-cdk-lib/aws-ses';
import type { Construct } from 'constructs';
import { isSupportedCountry } from 'libphonenumber-js/min';
import {
  type ApiRoute,
  apiRoutes,
  catchAllFunction,
  type HttpFunctionDefinition,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
  type RouteDefinition,
  routeKeyOf,
  routes,
  type TableAccess,
  type TableAction,
} from '../functions/routes.js';
import { type ScheduledFunctionName, scheduledFunctions } from '../functions/schedules.js';
import {
  defaultSmsPerHour,
  defaultSmsPerRegionPerHour,
  defaultSmsRegions,
  maxSmsPerHour,
  type SmsEnvironment,
} from '../functions/shared/environment.js';
import { purposeContextMember, webhookSecretPurpose } from '../functions/shared/key-purposes.js';
import type { MetadataSet } from '../functions/shared/number-plan.js';
import { isPublicHttpsUrl } from '../functions/shared/ssrf-guard.js';
import { smsDeploymentPolicy, smsRegionPolicy } from '../functions/users/sms-budgets.js';
import {
  type WorkerDefinition,
  type WorkerName,
  webhookEndpointCircuit,
  workerNames,
  workers,
} from '../functions/workers.js';
import { metricCatalog } from '../middleware/metrics/catalog.js';
import { mostAdmittedWithin } from '../middleware/rate-limit/policy.js';
import { appTable, type TableDefinition, toolkitTable } from '../middleware/store/tables.js';
import { BulwarkAlarms, smsVolumePeriod } from './alarms.js';
import { BulwarkBlindIndexKey } from './blind-index-key.js';
import { BulwarkFunction, type BundledFile, deployedEmailTransport } from './bulwark-function.js';
import { BulwarkTable } from './bulwark-table.js';
import { BulwarkDashboard, type DashboardMetricServices } from './dashboard.js';
import { BulwarkEncryptionKey } from './encryption-key.js';
import { BulwarkHttpApi } from './http-api.js';
import { stackMetricNamespace } from './metric-namespace.js';
import { BulwarkScheduledFunction } from './scheduled-function.js';
import { BulwarkSecretRotation, isValidRotationDays, minimumRotationDays } from './secret-rotation.js';
import { BulwarkUserPool, defaultCallbackUrls, isLocalCallbackUrl } from './user-pool.js';
import { BulwarkWorkerQueue } from './worker-queue.js';

/** Deployment stages; `prod` keeps its data when the stack or a table is removed. */
export const stages = ['dev', 'prod'] as const;
export type Stage = (typeof stages)[number];

/** Reads the `stage` context value (`-c stage=dev|prod`); absent means `dev`. */
export function parseStage(value: unknown): Stage {
  if (value === undefined) return 'dev';
  const stage = stages.find((candidate) => candidate === value);
  if (stage === undefined) {
    throw new Error(`Unknown stage ${JSON.stringify(value)}; expected one of: ${stages.join(', ')}`);
  }
  return stage;
}

/** The AUTH_TOKEN_USE values functions/shared/environment.ts accepts; `any` skips the `token_use` check. */
export const authTokenUses = ['access', 'id', 'any'] as const;
export type AuthTokenUse = (typeof authTokenUses)[number];

/** Reads the `authTokenUse` context value (`-c authTokenUse=access|id|any`); absent means the issuer's default. */
export function parseAuthTokenUse(value: unknown): AuthTokenUse | undefined {
  if (value === undefined) return undefined;
  const tokenUse = authTokenUses.find((candidate) => candidate === value);
  if (tokenUse === undefined) {
    throw new Error(
      `Unknown authTokenUse ${JSON.stringify(value)}; expected one of: ${authTokenUses.join(', ')}`,
    );
  }
  return tokenUse;
}

/** A `-c name=true|false` value (a string on the command line, a boolean in cdk.json), or undefined when not given. */
export function contextBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new Error(`Context ${name} must be true or false (got ${JSON.stringify(value)})`);
}

/** A `-c name=value` value, or undefined when not given; anything but a string (from cdk.json) is refused. */
export function contextString(name: string, value: unknown): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new Error(`Context ${name} must be a string (got ${JSON.stringify(value)})`);
}

/**
 * A number given as context: a JSON number in cdk.json, or its decimal digits (`-c smsPerHour=100`);
 * undefined when not given. Anything else (`[100]`, `true`, `1e2`, ``) is refused, where `Number()` would
 * quietly make it 100 or 1 or 0. Whether the number fits is the prop's own check.
 */
export function contextNumber(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  throw new Error(`Context ${name} must be a number (got ${JSON.stringify(value)})`);
}

/**
 * A list given as context: `-c name=a,b` on the command line, or an array of strings in cdk.json. Any
 * other value is refused at synth rather than ignored (a deployment would otherwise get the default).
 */
export function contextList(name: string, value: unknown): string[] {
  if (typeof value === 'string') return value.split(',');
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return [...value];
  throw new Error(`Context ${name} must be a comma-separated string or an array of strings`);
}

/**
 * Every context option bin/app.ts reads (README, CDK and deploy). Its reader takes only these names, so an
 * option cannot be read without being listed here, and `refuseUnknownContext` refuses any other name.
 */
export const contextOptions = [
  'stage',
  'authIssuer',
  'authClientIds',
  'authTokenUse',
  'authAudience',
  'authJwksUri',
  'sesIdentity',
  'emailFrom',
  'sesSandboxRecipients',
  'smtpHost',
  'smtpPort',
  'callbackUrls',
  'm2mScopes',
  'signInCaseInsensitive',
  'cognitoDomainName',
  'smsRegions',
  'smsPerHour',
  'smsPerRegionPerHour',
  'smsAlarmThresholdPerHour',
] as const;
export type ContextOption = (typeof contextOptions)[number];

const knownContextOptions: ReadonlySet<string> = new Set(contextOptions);

/** What the CDK CLI itself writes to cdk.context.json under a name without a `:` (`cdk acknowledge`, `cdk cli-telemetry`). */
const cliContextKeys: ReadonlySet<string> = new Set(['acknowledged-issue-numbers', 'cli-telemetry']);

/**
 * Whether a context key has the shape of the app's own options. CDK's keys do not: feature flags start
 * with `@` (`@aws-cdk/core:...`), and what the CLI passes (`aws:cdk:bundling-stacks`) and the lookups it
 * caches in cdk.context.json (`availability-zones:account=...`) hold a `:`.
 */
function isAppContextKey(key: string): boolean {
  return !key.startsWith('@') && !key.includes(':') && !cliContextKeys.has(key);
}

/** Edits (insert, delete, replace, or swap two neighbours) that turn one name into the other, ignoring case. */
function editDistance(from: string, to: string): number {
  const a = from.toLowerCase();
  const b = to.toLowerCase();
  // rows[i][j]: the edits from a's first i characters to b's first j.
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const replaced = at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1);
      const swapped =
        i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]
          ? at(i - 2, j - 2) + 1
          : Number.POSITIVE_INFINITY;
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, replaced, swapped);
    }
  }
  return at(a.length, b.length);
}

const lettersOf = (name: string): string => [...name.toLowerCase()].sort().join('');

/** The option a misspelt key most likely meant: two edits away at most, or the same letters reordered. */
function likelyContextOption(key: string): ContextOption | undefined {
  let best: { option: ContextOption; distance: number } | undefined;
  for (const option of contextOptions) {
    const distance = editDistance(key, option);
    const close = distance <= 2 || lettersOf(key) === lettersOf(option);
    if (close && (best === undefined || distance < best.distance)) best = { option, distance };
  }
  return best?.option;
}

/**
 * Refuses a context key of the app's own shape (no `:`, not starting with `@`) that is not one of its
 * options: nothing would read it, so a misspelt `-c stgae=prod` or `-c sesIdentitiy=...` would deploy the
 * default unseen. Each unknown key is named, with the option it probably meant when one is close.
 */
export function refuseUnknownContext(context: Readonly<Record<string, unknown>>): void {
  const unknown = Object.keys(context).filter((key) => isAppContextKey(key) && !knownContextOptions.has(key));
  if (unknown.length === 0) return;
  const named = unknown.map((key) => {
    const meant = likelyContextOption(key);
    return meant === undefined ? key : `${key} (did you mean ${meant}?)`;
  });
  throw new Error(
    `Unknown context ${unknown.length === 1 ? 'option' : 'options'} ${named.join(', ')}: nothing reads ${unknown.length === 1 ? 'it' : 'them'}, so the deployment would get the default. The options are: ${contextOptions.join(', ')}`,
  );
}

/**
 * The `auth` prop from the context values `-c authIssuer=<url> -c authClientIds=a,b` (in cdk.json, an
 * array too) and, optionally, `-c authTokenUse=access|id|any -c authAudience=x,y -c authJwksUri=<url>`;
 * undefined (the stack's own pool) without authIssuer. A setting of an issuer given without one, or an
 * issuer that is not a string, is refused: ignoring either would deploy functions that trust the stack's pool.
 */
export function authFromContext(context: (key: ContextOption) => unknown): BulwarkStackProps['auth'] {
  const issuer = contextString('authIssuer', context('authIssuer'));
  const clientIdsValue = context('authClientIds');
  const clientIds = clientIdsValue === undefined ? undefined : contextList('authClientIds', clientIdsValue);
  const tokenUse = parseAuthTokenUse(context('authTokenUse'));
  const audience = context('authAudience');
  if (audience !== undefined && typeof audience !== 'string') {
    throw new Error('authAudience must be comma-separated audiences: -c authAudience=a,b');
  }
  const jwksUri = context('authJwksUri');
  if (jwksUri !== undefined && typeof jwksUri !== 'string') {
    throw new Error('authJwksUri must be one URL: -c authJwksUri=https://...');
  }
  if (issuer === undefined) {
    if (clientIds !== undefined) {
      throw new Error(
        "authClientIds applies to an authIssuer; the stack's own user pool trusts its own app clients",
      );
    }
    if (tokenUse !== undefined) {
      throw new Error(
        "authTokenUse applies to an authIssuer; the stack's own user pool always checks token_use=access",
      );
    }
    if (audience !== undefined) {
      throw new Error(
        "authAudience applies to an authIssuer; the stack's own user pool's tokens carry no aud",
      );
    }
    if (jwksUri !== undefined) {
      throw new Error("authJwksUri applies to an authIssuer; the stack's own user pool's keys are known");
    }
    return undefined;
  }
  return {
    issuer,
    clientIds: clientIds ?? [],
    ...(tokenUse === undefined ? {} : { tokenUse }),
    ...(audience === undefined ? {} : { audience: audience.split(',') }),
    ...(jwksUri === undefined ? {} : { jwksUri }),
  };
}

/** Whether an issuer URL is a Cognito user pool's, the only issuer that writes `token_use`. */
export function isCognitoIssuer(issuer: string): boolean {
  return (
    URL.canParse(issuer) &&
    /^cognito-idp\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$/.test(new URL(issuer).hostname)
  );
}

export interface BulwarkStackProps extends StackProps {
  /**
   * The deployment stage. `prod` retains the tables, their key and the user pool (`Retain`, with deletion
   * protection) and every other key, secret, queue and log group once created (`RetainExceptOnCreate`: the
   * rollback of a failed create deletes them); `dev` destroys them all with the stack.
   */
  readonly stage: Stage;
  /**
   * The JWT issuer the functions trust (e.g. another Cognito user pool's
   * `https://cognito-idp.<region>.amazonaws.com/<pool id>`) and the app clients whose tokens
   * they accept, instead of the stack's own user pool (which is still created). An https URL on a
   * public host: synth refuses http, `localhost` and loopback or private addresses (the local dev issuer's).
   * @default - the stack's user pool, both its app clients and `tokenUse: 'access'` (bin/app.ts reads `-c authIssuer=... -c authClientIds=a,b -c authTokenUse=... -c authAudience=... -c authJwksUri=...`)
   */
  readonly auth?: {
    readonly issuer: string;
    readonly clientIds: readonly string[];
    /**
     * The `token_use` claim tokens must carry (AUTH_TOKEN_USE). Only Cognito writes that claim, so
     * `any` (no check) is the only value under which another issuer's tokens can pass.
     * @default 'access' for a `cognito-idp.<region>.amazonaws.com` issuer, 'any' otherwise
     */
    readonly tokenUse?: AuthTokenUse;
    /**
     * The `aud` values tokens must carry one of (AUTH_AUDIENCE): the API's identifier at the issuer.
     * Required for an issuer other than Cognito and with `tokenUse: 'any'`: without `token_use`, only
     * `aud` tells access tokens for this API from the client's ID tokens and its tokens for other APIs.
     * Cognito access tokens carry no `aud`.
     * @default - none (Cognito issuers only)
     */
    readonly audience?: readonly string[];
    /**
     * Where the issuer publishes its signing keys (AUTH_JWKS_URI): the `jwks_uri` of its
     * `/.well-known/openid-configuration`, over https on a public host, as the issuer. Required for an issuer other than Cognito: synth
     * makes no network call to discover it, and most issuers (Keycloak, Okta, Entra ID) publish their keys
     * somewhere other than `<issuer>/.well-known/jwks.json`, where functions would otherwise look.
     * @default `<issuer>/.well-known/jwks.json` (Cognito issuers only)
     */
    readonly jwksUri?: string;
  };
  /**
   * The SES identity the email worker sends from: a verified domain (`example.com`) or address
   * (`noreply@example.com`); `ses:SendEmail` is granted on exactly this identity (and `sandboxRecipients`). `from` defaults to
   * `Bulwark <noreply@<domain>>` or the address itself; with SES, synth refuses a `from` whose address
   * is not the identity or at the identity's domain. With `smtp`, the worker sends through that
   * relay instead (STARTTLS required, or TLS on port 465), authenticating with the pair an operator
   * stores in the `SmtpCredentials` secret, which only the email worker may read; no SES permission is
   * granted then, and the worker's bundle carries nodemailer.
   * The `prod` stage refuses to synthesise without it, and with a From address at `example.com`.
   * @default { identity: 'example.com' } in dev (bin/app.ts reads `-c sesIdentity=... -c emailFrom=... -c smtpHost=... -c smtpPort=...`)
   */
  readonly email?: {
    readonly identity: string;
    readonly from?: string;
    /**
     * The verified identities (addresses or domains) the worker may send to while the account is in the
     * SES sandbox. There SES also authorises SendEmail on each recipient's identity, so a grant on the
     * sender's identity alone is refused for every message; `ses:SendEmail` is granted on these too.
     * Leave it out once the account has production access.
     * @default - none (bin/app.ts reads `-c sesSandboxRecipients=a@example.org,example.net`)
     */
    readonly sandboxRecipients?: readonly string[];
    /** @default - SES */
    readonly smtp?: { readonly host: string /** @default 587 */; readonly port?: number };
  };
  /**
   * Where Cognito's hosted sign-in may return people with an authorization code (the human app
   * client's callback URLs). The `prod` stage refuses any URL on the machine it is opened on (localhost
   * and its subdomains, loopback and unspecified addresses).
   * @default ['http://localhost:3000/callback'] (bin/app.ts reads `-c callbackUrls=url1,url2`)
   */
  readonly callbackUrls?: readonly string[];
  /**
   * The scopes the M2M app client may request, each one the route table checks.
   * @default every scope the route table checks (bin/app.ts reads `-c m2mScopes=bookings/read,bookings/write`)
   */
  readonly m2mScopes?: readonly string[];
  /**
   * Whether sign-in ignores the email's case. Cognito refuses to change this on an existing pool, and
   * the deploy then fails: pass `false` for a stack whose pool was created before Bulwark set it.
   * @default true (bin/app.ts reads `-c signInCaseInsensitive=false`)
   */
  readonly signInCaseInsensitive?: boolean;
  /**
   * The stack's part of its Cognito hosted domain prefix, `<cognitoDomainName>-<account id>` (the `TokenUrl`
   * host): lower-case letters, digits and hyphens, starting with a letter or digit, at most 50 characters
   * (the account id takes the rest of Cognito's 63) and none of the words `aws`, `amazon` or `cognito`.
   * A deploy that replaces the user pool replaces its domain too, and CloudFormation creates the new domain
   * before it deletes the old one, which still holds its prefix: give such a deploy a new name.
   * @default cognitoDomainName(stack id), e.g. `bulwark-prod` (bin/app.ts reads `-c cognitoDomainName=...`)
   */
  readonly cognitoDomainName?: string;
  /**
   * Days between rotations of the generated secrets (request signing, verification links), 3 to 1000.
   * Secrets Manager rotates at any time in the scheduled UTC day, so a 2-day rate could rotate twice
   * barely 24 hours apart and drop the value a 24-hour link was signed with by a warm instance whose
   * secret cache (5 minutes) still held it; from 3 days on, rotations are at least 48 hours apart.
   * @default 30
   */
  readonly secretRotationDays?: number;
  /**
   * How long every log group (functions and the API's access log) keeps events. They hold the audit lines
   * (user ids, client IPs, admin actions), and one year is a common audit requirement.
   * @default logs.RetentionDays.ONE_YEAR in prod, logs.RetentionDays.ONE_MONTH in dev
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Where the users function sends SMS verification codes. Anyone can register, so every region listed
   * is a destination anyone can make the deployment pay for (SMS pumping, toll fraud): list only the
   * regions your users' numbers are in.
   */
  readonly sms?: {
    /**
     * The regions whose mobile numbers are accepted at registration and sent codes (SMS_REGIONS): ISO
     * 3166 alpha-2 codes as libphonenumber names them (+44 7911 … is GG, not GB; there is no UK).
     * @default ['US'] (bin/app.ts reads `-c smsRegions=GB,GG,JE,IM`)
     */
    readonly regions?: readonly string[];
    /**
     * SMS codes the whole deployment may send (SMS_PER_HOUR): a burst of this many, then one every hour /
     * perHour. A registration past it gets no code; a requested code is a 429 with Retry-After.
     * @default 100 (bin/app.ts reads `-c smsPerHour=…`)
     */
    readonly perHour?: number;
    /**
     * SMS codes to the numbers of one region (SMS_PER_REGION_PER_HOUR), of the same shape: one region
     * pumped to its limit leaves the rest of the deployment's budget to the others.
     * @default half of perHour, rounded up (bin/app.ts reads `-c smsPerRegionPerHour=…`)
     */
    readonly perRegionPerHour?: number;
    /**
     * SMS sent in one hour that raise the SmsVolume alarm: more than your sign-ups explain. At most what
     * the budgets admit in an hour, each its burst and then its refill: the deployment's (19 for a perHour
     * of 10) or, when fewer, the listed regions' together (99 for each region at a perRegionPerHour of 50,
     * so 99 with the one default region): synth refuses a higher one, which SmsSent could never reach.
     * @default half of perHour, rounded up, or that most if fewer
     *   (bin/app.ts reads `-c smsAlarmThresholdPerHour=…`)
     */
    readonly alarmThresholdPerHour?: number;
  };
}

/** The default SES identity: enough to synthesise; a deployment names its own verified identity. */
export const defaultEmailIdentity = 'example.com';

/** Each worker's queue URL variables, as functions/shared/environment.ts names them. */
const workerQueueVariables = {
  'email-worker': { queue: 'EMAIL_QUEUE_URL', deadLetterQueue: 'EMAIL_DLQ_URL' },
  'webhook-worker': { queue: 'WEBHOOK_QUEUE_URL', deadLetterQueue: 'WEBHOOK_DLQ_URL' },
} as const satisfies Record<WorkerName, { queue: string; deadLetterQueue: string }>;

/**
 * A libphonenumber metadata set, read at run time as a package file (functions/shared/number-plan.ts)
 * when the first phone number comes, instead of bundled as code.
 */
const phoneMetadata = (set: MetadataSet): BundledFile => ({
  from: `node_modules/libphonenumber-js/metadata.${set}.json`,
  to: `node_modules/libphonenumber-js/metadata.${set}.json`,
});

/** Files a worker reads at run time, copied into its bundle next to index.mjs. */
export const workerBundledFiles: Partial<Record<WorkerName, BundledFile[]>> = {
  'email-worker': [phoneMetadata('min')],
};

/** Files an HTTP function reads at run time, copied into its bundle next to index.mjs. */
export const httpFunctionBundledFiles: Partial<Record<HttpFunctionName, BundledFile[]>> = {
  users: [phoneMetadata('mobile')],
};

/** The functions that fan events out to the webhook queue (functions/shared/webhook-fanout.ts). */
const webhookProducers = ['users', 'bookings'] as const satisfies readonly HttpFunctionName[];

type DataKeyUser = HttpFunctionName | WorkerName;
interface DataKeyUse {
  /** KMS calls on the envelope-encryption key. */
  readonly dataKey: readonly ('kms:GenerateDataKey' | 'kms:Decrypt')[];
  /** Whether it computes blind indexes (GenerateMac on the blind-index key). */
  readonly blindIndex: boolean;
  /**
   * The purpose every one of its data-key calls must carry in the KMS encryption context
   * (functions/shared/key-purposes.ts); without one, any data key on the key may be asked for.
   */
  readonly purpose?: string;
}

/** Who seals or opens encrypted fields, and with which KMS calls (functions/shared/encryption.ts). */
const dataKeyUses = {
  // Registers (seals email and phone, blind index for the unique email), reads users back.
  users: { dataKey: ['kms:GenerateDataKey', 'kms:Decrypt'], blindIndex: true },
  // Seals each new endpoint's signing secret, and opens it only to answer its registration's retry
  // (the same caller and Idempotency-Key: the idempotency record keeps the answer without the secret).
  // Only data keys of signing secrets: never one of users' fields, whose context has no purpose.
  webhooks: {
    dataKey: ['kms:GenerateDataKey', 'kms:Decrypt'],
    blindIndex: false,
    purpose: webhookSecretPurpose,
  },
  // Opens endpoint signing secrets (those sealed before secrets carried their purpose too), and a
  // disabled endpoint's owner's address to alert them: no purpose to require.
  'webhook-worker': { dataKey: ['kms:Decrypt'], blindIndex: false },
} as const satisfies Partial<Record<DataKeyUser, DataKeyUse>>;

/**
 * The functions that run circuit breakers with their state in the toolkit table: bookings (its calls to
 * users), the email worker (SES or SMTP, and SNS) and the webhook worker (one per endpoint).
 */
const circuitBreakerUsers = ['bookings', 'email-worker', 'webhook-worker'] as const satisfies readonly (
  | HttpFunctionName
  | WorkerName
)[];

interface SmsSettings {
  /** The users function's variables. */
  readonly environment: Record<string, string>;
  /** The SmsVolume alarm's threshold. */
  readonly alarmThresholdPerHour: number;
}

/**
 * The most SMS the budgets let out in the SmsVolume alarm's hour, and which budget bounds it. SmsSent
 * counts only SMS they admitted, and each SMS takes a unit of the deployment's budget and of its region's
 * (only listed regions are sent to): the smaller of the deployment's bound and every region's together.
 * The policies are the users function's own (functions/users/sms-budgets.ts).
 */
function mostSmsPerHour(sms: SmsEnvironment): { readonly count: number; readonly bound: string } {
  const periodSec = smsVolumePeriod.toSeconds();
  const deployment = mostAdmittedWithin(smsDeploymentPolicy(sms), periodSec);
  const perRegion = mostAdmittedWithin(smsRegionPolicy(sms), periodSec);
  const regionCount = sms.regions.length;
  if (regionCount * perRegion < deployment) {
    const listed = regionCount === 1 ? 'the region listed' : `the ${regionCount} regions listed`;
    return {
      count: regionCount * perRegion,
      bound: `SMS go only to ${listed} (sms.regions ${sms.regions.join(', ')}), each with its own budget (sms.perRegionPerHour ${sms.perRegionPerHour}) that admits at most ${perRegion} SMS in an hour (a burst of ${sms.perRegionPerHour}, then ${perRegion - sms.perRegionPerHour} more as it refills)${regionCount === 1 ? '' : `, ${regionCount * perRegion} in all`}`,
    };
  }
  return {
    count: deployment,
    bound: `the deployment's SMS budget (sms.perHour ${sms.perHour}) admits at most ${deployment} SMS in an hour (a burst of ${sms.perHour}, then ${deployment - sms.perHour} more as it refills)`,
  };
}

/** The SMS settings, checked. */
function smsSettings(sms: BulwarkStackProps['sms']): SmsSettings {
  const regions = sms?.regions ?? defaultSmsRegions;
  const distinctRegions = [...new Set(regions)];
  const perHour = sms?.perHour ?? defaultSmsPerHour;
  const perRegionPerHour = sms?.perRegionPerHour ?? defaultSmsPerRegionPerHour(perHour);
  const unknown = regions.filter((region) => !isSupportedCountry(region));
  const isBudget = (value: number) => Number.isInteger(value) && value >= 1 && value <= maxSmsPerHour;
  const budgets = { regions: distinctRegions, perHour, perRegionPerHour };
  const mostSent =
    distinctRegions.length > 0 && isBudget(perHour) && isBudget(perRegionPerHour)
      ? mostSmsPerHour(budgets)
      : undefined;
  // Pages while half the hour's budget is left, before real users are refused their codes; never above
  // what the budgets let out in that hour, which a small perRegionPerHour can make fewer.
  const alarmThresholdPerHour =
    sms?.alarmThresholdPerHour ?? Math.min(Math.ceil(perHour / 2), mostSent?.count ?? maxSmsPerHour);
  const problems = [
    ...(regions.length === 0 ? ['sms.regions must name at least one region'] : []),
    ...(unknown.length > 0
      ? [
          `sms.regions must be ISO 3166 alpha-2 codes of regions with a number plan; not ${unknown.join(', ')}`,
        ]
      : []),
    ...(isBudget(perHour) ? [] : [`sms.perHour must be a whole number from 1 to ${maxSmsPerHour}`]),
    ...(isBudget(perRegionPerHour)
      ? []
      : [`sms.perRegionPerHour must be a whole number from 1 to ${maxSmsPerHour}`]),
    ...(isBudget(alarmThresholdPerHour)
      ? []
      : [`sms.alarmThresholdPerHour must be a whole number from 1 to ${maxSmsPerHour}`]),
    ...(mostSent !== undefined && alarmThresholdPerHour > mostSent.count
      ? [
          `sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most ${mostSent.count}: ${mostSent.bound}, so ${metricCatalog.SmsSent.name} could never reach ${alarmThresholdPerHour} and the SmsVolume alarm would never fire`,
        ]
      : []),
  ];
  if (problems.length > 0) throw new Error(`Invalid BulwarkStack props: ${problems.join('; ')}`);
  return {
    environment: {
      SMS_REGIONS: distinctRegions.join(','),
      SMS_PER_HOUR: String(perHour),
      SMS_PER_REGION_PER_HOUR: String(perRegionPerHour),
    },
    alarmThresholdPerHour,
  };
}

/** Checks an SES identity (domain or address) and derives the From header. */
const domainName = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$/i;

interface EmailSettings {
  identity: string;
  from: string;
  smtp: { host: string; port: number } | undefined;
  sandboxRecipients: readonly string[];
}

const identityAddress = /^[^@\s<>]+@[a-z0-9.-]+\.[a-z]{2,}$/i;

function emailSettings(email: BulwarkStackProps['email']): EmailSettings {
  const identity = email?.identity ?? defaultEmailIdentity;
  const isAddress = identityAddress.test(identity);
  const problems: string[] = [];
  if (!isAddress && !domainName.test(identity)) {
    problems.push('email.identity must be a domain or an email address');
  }
  const sandboxRecipients = email?.sandboxRecipients ?? [];
  if (
    !sandboxRecipients.every((recipient) => identityAddress.test(recipient) || domainName.test(recipient))
  ) {
    problems.push('email.sandboxRecipients must be domains or email addresses');
  }
  const smtp = email?.smtp && { host: email.smtp.host, port: email.smtp.port ?? 587 };
  if (smtp && sandboxRecipients.length > 0) {
    problems.push('email.sandboxRecipients applies to SES; an SMTP relay sends without it');
  }
  if (smtp && !domainName.test(smtp.host)) problems.push('email.smtp.host must be a host name');
  if (smtp && !(Number.isInteger(smtp.port) && smtp.port >= 1 && smtp.port <= 65_535)) {
    problems.push('email.smtp.port must be an integer from 1 to 65535');
  }
  const from = email?.from ?? (isAddress ? identity : `Bulwark <noreply@${identity}>`);
  // SES authorises SendEmail on the identity the stack grants: the From address must be that identity.
  if (!smtp && problems.length === 0) {
    const address = fromAddress(from);
    if (address === undefined) {
      problems.push('email.from must be an address or `Name <address>`');
    } else if (!fromMatchesIdentity(address, identity)) {
      problems.push(
        `email.from (${address}) must be ${isAddress ? 'the SES identity' : 'an address at the SES identity'} ${identity}, the only identity ses:SendEmail is granted on`,
      );
    }
  }
  if (problems.length > 0) throw new Error(`Invalid BulwarkStack props: ${problems.join('; ')}`);
  return { identity, from, smtp, sandboxRecipients };
}

/**
 * Why prod cannot send with these email settings, if it cannot: without any, the email worker would send
 * from the placeholder `example.com` (which SES refuses) and Cognito from its built-in sender (about 50
 * emails a day, from no-reply@verificationemail.com); an SMTP relay given no From would use the placeholder.
 */
function prodEmailProblem(given: BulwarkStackProps['email'], { from }: EmailSettings): string | undefined {
  if (given === undefined) {
    return 'in prod, email must name the verified SES identity to send from (-c sesIdentity=example.org): without it the email worker sends from example.com, which SES refuses, and Cognito from its built-in sender (about 50 emails a day)';
  }
  const address = fromAddress(from);
  return address !== undefined && fromMatchesIdentity(address, defaultEmailIdentity)
    ? `in prod, email.from (${address}) must not be at the placeholder ${defaultEmailIdentity}: name your sender (-c sesIdentity=..., or -c emailFrom=... with -c smtpHost)`
    : undefined;
}

/** The address of a From header, `a@b.c` or `Name <a@b.c>`; undefined when it is neither. */
export function fromAddress(from: string): string | undefined {
  const match = /^(?:[^<>\r\n]*<([^<>\s]+)>|([^<>\s]+))$/.exec(from.trim());
  const address = match?.[1] ?? match?.[2];
  return address !== undefined && /^[^@\s]+@[^@\s]+$/.test(address) ? address : undefined;
}

/**
 * Cognito's own emails (temporary passwords, codes) through the stack's SES identity and From address,
 * instead of Cognito's built-in sender and its daily quota.
 */
function cognitoEmail({ identity, from }: EmailSettings): cognito.UserPoolEmail {
  // emailSettings has checked that the address is the identity or at its domain.
  const address = fromAddress(from) as string;
  const name = from.includes('<') ? from.slice(0, from.lastIndexOf('<')).trim() : '';
  const isDomain = !identity.includes('@');
  return cognito.UserPoolEmail.withSES({
    // The domain spelled as the identity, which CDK compares case-sensitively with sesVerifiedDomain.
    fromEmail: isDomain ? `${address.slice(0, address.lastIndexOf('@'))}@${identity}` : address,
    ...(name === '' ? {} : { fromName: name }),
    ...(isDomain ? { sesVerifiedDomain: identity } : {}),
    // The stack is region-agnostic: the identity is in the stack's region.
    sesRegion: Aws.REGION,
  });
}

/**
 * Whether `address` may be the From of `identity`: the identity itself when it is an address, an address
 * of exactly that domain when it is a domain. SES would also send from a subdomain, but Cognito is given
 * the same From, and its SES setting (`sesVerifiedDomain`) accepts only the domain itself.
 */
export function fromMatchesIdentity(address: string, identity: string): boolean {
  const lower = address.toLowerCase();
  const expected = identity.toLowerCase();
  return expected.includes('@') ? lower === expected : lower.slice(lower.lastIndexOf('@') + 1) === expected;
}

type TableId = TableDefinition['id'];

/** The route table widened to its declared type, so optional auth fields can be read on every route. */
const routeTable: readonly RouteDefinition[] = routes;

/** The functions serving at least one route that `include` picks, in the route table's order. */
function functionsServing(include: (route: RouteDefinition) => boolean): HttpFunctionName[] {
  return [...new Set(routeTable.filter(include).map((route) => route.function))];
}

/** The functions whose routes authenticate callers (a token or a signed service request). */
const authenticatingFunctions = functionsServing((route) => route.auth.kind !== 'public');

/**
 * The services whose code can emit each per-service security metric, from what each wires: the route
 * table's authentication and rate limits (users' SMS budgets run in a function with rate-limited routes
 * already), `dataKeyUses` and `circuitBreakerUsers`. The dashboard graphs a line for each and no other.
 */
export const securityMetricServices: DashboardMetricServices = {
  authenticating: authenticatingFunctions,
  rateLimiting: functionsServing((route) => route.rateLimit !== undefined),
  dataKeys: Object.keys(dataKeyUses),
  circuitBreakers: circuitBreakerUsers,
};

/**
 * The keys of the API's routes (the table's and their HEAD routes) that `include` picks, e.g.
 * `GET /health, HEAD /health, POST /users`, for acknowledgement reasons.
 */
function routeKeysWhere(include: (route: ApiRoute) => boolean): string {
  return apiRoutes.filter(include).map(routeKeyOf).join(', ');
}

/** Builds one value per entry of `httpFunctions`, keyed by function name. */
function mapHttpFunctions<V>(
  build: (name: HttpFunctionName, definition: HttpFunctionDefinition) => V,
): Record<HttpFunctionName, V> {
  // fromEntries widens keys to string; the entries are exactly httpFunctionNames.
  return Object.fromEntries(
    httpFunctionNames.map((name) => [name, build(name, httpFunctions[name])]),
  ) as Record<HttpFunctionName, V>;
}

/** Cognito's limit on a hosted domain prefix (lower-case letters, digits, inner hyphens). */
const cognitoDomainPrefixMaxLength = 63;
/** An account id's length: the prefix ends in `-<account id>`, a token until deploy when env-agnostic. */
const accountIdLength = 12;
/** Hex digits of the stack id's hash that keep shortened or cleaned names of different stacks apart. */
const domainNameHashLength = 8;

/**
 * Words Cognito refuses anywhere in a domain prefix ("Domain cannot contain reserved word: aws"); no hex
 * hash or account id can spell one.
 */
const cognitoReservedWords = /aws|amazon|cognito/g;

/** The room a domain prefix leaves for the stack's part, before `-<account id>`. */
const cognitoDomainNameMaxLength = cognitoDomainPrefixMaxLength - 1 - accountIdLength;

/**
 * Why Cognito would refuse `name` as the stack's part of its domain prefix `<name>-<account id>`, if it
 * would: checked at synth, since Cognito only refuses it at deploy, after the pool is created.
 */
export function cognitoDomainNameProblems(name: string): string[] {
  const reserved = [...new Set(name.match(cognitoReservedWords))];
  return [
    ...(/^[a-z0-9][a-z0-9-]*$/.test(name)
      ? []
      : [
          'cognitoDomainName must be lower-case letters, digits and hyphens, starting with a letter or digit',
        ]),
    ...(name.length <= cognitoDomainNameMaxLength
      ? []
      : [
          `cognitoDomainName must be at most ${cognitoDomainNameMaxLength} characters (the prefix adds - and the ${accountIdLength}-digit account id, within Cognito's ${cognitoDomainPrefixMaxLength})`,
        ]),
    ...(reserved.length === 0
      ? []
      : [`cognitoDomainName must not contain Cognito's reserved words (${reserved.join(', ')})`]),
  ];
}

/**
 * The stack's part of its Cognito domain prefix `<name>-<account id>`: the stack id in lower case when it
 * is made of letters, digits and hyphens, holds none of Cognito's reserved words and leaves room for the
 * 12-digit account id within Cognito's 63 characters (so `Bulwark-dev` keeps `bulwark-dev`). Any other id
 * gives as much of it as fits, cleaned to Cognito's characters and without the reserved words, then `-`
 * and a hash of the whole id: valid for every stack id, and distinct for ids that clean or shorten alike.
 */
export function cognitoDomainName(stackId: string): string {
  const lowerCase = stackId.toLowerCase();
  if (cognitoDomainNameProblems(lowerCase).length === 0) return lowerCase;
  const hash = createHash('sha256').update(stackId).digest('hex').slice(0, domainNameHashLength);
  const head = lowerCase
    .replace(cognitoReservedWords, '-')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, cognitoDomainNameMaxLength - 1 - domainNameHashLength)
    .replace(/-+$/, '');
  return head === '' ? hash : `${head}-${hash}`;
}

/**
 * Lets `grantee` read `secret`'s value and nothing more: functions read secrets through `SecretStore`
 * (Powertools' SecretsProvider), which calls only GetSecretValue. `Secret.grantRead` would add
 * DescribeSecret, which only the rotation function calls. The secrets are encrypted with the AWS-managed
 * key, which needs no grant.
 */
function grantSecretValue(secret: secretsmanager.ISecret, grantee: iam.IGrantable): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn] }),
  );
}

/** `email-worker` → `EmailWorker`, for construct ids. */
function pascalCase(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

/**
 * The sample system's foundation, built from the route table and the shared table definitions.
 *
 * @example
 * new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev' });
 */
export class BulwarkStack extends Stack {
  /** The toolkit and app tables, by definition id. */
  public readonly tables: Readonly<Record<TableId, BulwarkTable>>;
  /** One function per entry of `httpFunctions`, by name. */
  public readonly functions: Readonly<Record<HttpFunctionName, BulwarkFunction>>;
  /** The HTTP API serving the route table. */
  public readonly httpApi: BulwarkHttpApi;
  /** Encrypts both tables at rest; every function reaches it only through DynamoDB's table grants. */
  public readonly tableKey: BulwarkEncryptionKey;
  /** Wraps the data keys of the users function's envelope encryption (KMS_KEY_ID). */
  public readonly dataKey: BulwarkEncryptionKey;
  /** Derives the users function's blind-index keys (KMS_BLIND_INDEX_KEY_ID). */
  public readonly blindIndexKey: BulwarkBlindIndexKey;
  /** People and services sign in here; its issuer and clients feed the functions' auth settings. */
  public readonly userPool: BulwarkUserPool;
  /** Alarms on circuits, 5xx rate, auth failures, the rate limiter's store, enqueue failures, SMS, pending booking events and SES, to one SNS topic. */
  public readonly alarms: BulwarkAlarms;
  /** The deployment's CloudWatch dashboard. */
  public readonly dashboard: BulwarkDashboard;
  /** The bookings service's request-signing secret (JSON `{ current, previous }`), shared with users. */
  public readonly bookingsSigningSecret: secretsmanager.Secret;
  /** Encrypts the worker queues and their DLQs; usable only through SQS. */
  public readonly queueKey: BulwarkEncryptionKey;
  /** One queue, DLQ and worker function per entry of `functions/workers.ts`, by name. */
  public readonly workers: Readonly<Record<WorkerName, BulwarkWorkerQueue>>;
  /** HMAC secret of the email verification links (JSON `{ current, previous }`, rotated). */
  public readonly verificationLinkSecret: secretsmanager.Secret;
  /**
   * Credentials of an SMTP relay (JSON `{ username, password }`), set by an operator; not rotated here.
   * Read at run time by the email worker when the stack is given `email.smtp`.
   */
  public readonly smtpCredentials: secretsmanager.Secret;
  /** Rotates the signing and verification-link secrets; its failure alarm notifies the alarm topic. */
  public readonly secretRotation: BulwarkSecretRotation;
  /**
   * Publishes the booking events their requests left pending, every 5 minutes (functions/schedules.ts);
   * its failure alarm notifies the alarm topic.
   */
  public readonly bookingEventSweeper: BulwarkScheduledFunction;
  /** Where every function's metrics go and the only namespace its alarms and dashboard read. */
  public readonly metricNamespace: string;
  /**
   * The SES configuration set the email worker sends with: reputation metrics on, and recipients that
   * bounced or complained suppressed. Undefined when the stack sends through an SMTP relay.
   */
  public readonly emailConfigurationSet: ses.ConfigurationSet | undefined;

  constructor(scope: Construct, id: string, props: BulwarkStackProps) {
    super(scope, id, props);
    // prod: RetainExceptOnCreate (and UpdateReplacePolicy Retain) keeps a resource through later updates and
    // the stack's deletion, but lets the rollback of the create that made it delete it: a failed first deploy
    // leaves no keys, queues, secrets or log groups behind. dev deletes everything with the stack.
    const removalPolicy =
      props.stage === 'prod' ? RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE : RemovalPolicy.DESTROY;
    // The tables and the user pool stay Retain with deletion protection, which also refuses a DeleteTable or
    // DeleteUserPool from outside CloudFormation, and which a rollback could not get past (it would fail).
    // The table key follows the tables: DynamoDB makes a table whose key is deleted unreadable, then archives
    // it. What a failed first prod deploy leaves, and how to remove it: README, CDK and deploy.
    const protectedDataRemovalPolicy = props.stage === 'prod' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const logRetention =
      props.logRetention ??
      (props.stage === 'prod' ? logs.RetentionDays.ONE_YEAR : logs.RetentionDays.ONE_MONTH);
    this.metricNamespace = stackMetricNamespace(this.stackName);

    this.tableKey = new BulwarkEncryptionKey(this, 'TableKey', {
      description: `${id}: DynamoDB tables at rest`,
      removalPolicy: protectedDataRemovalPolicy,
    });
    this.dataKey = new BulwarkEncryptionKey(this, 'DataKey', {
      description: `${id}: envelope encryption of users' personal fields`,
      removalPolicy,
    });
    this.blindIndexKey = new BulwarkBlindIndexKey(this, 'BlindIndexKey', {
      description: `${id}: blind indexes of users' encrypted fields`,
      removalPolicy,
    });
    const encryptionKey = this.tableKey.key;
    this.tables = {
      toolkit: new BulwarkTable(this, 'ToolkitTable', {
        definition: toolkitTable,
        encryptionKey,
        removalPolicy: protectedDataRemovalPolicy,
      }),
      app: new BulwarkTable(this, 'AppTable', {
        definition: appTable,
        encryptionKey,
        removalPolicy: protectedDataRemovalPolicy,
      }),
    };

    this.functions = mapHttpFunctions((name, definition) => {
      const files = httpFunctionBundledFiles[name];
      const readsTables = Object.keys(definition.tableActions).length > 0;
      const fn = new BulwarkFunction(this, `${pascalCase(name)}Function`, {
        entry: definition.entry,
        serviceName: name,
        memoryMb: definition.memoryMb,
        timeoutSec: definition.timeoutSec,
        logRetention,
        logRemovalPolicy: removalPolicy,
        metricNamespace: this.metricNamespace,
        // The catch-all reads no table and holds no key, so it learns neither the tables nor the stage. A
        // function that reads the stage reads it with the table names (functions/shared/environment.ts), and
        // without them stops at cold start: no function can run in prod without learning that it is prod.
        environment: readsTables
          ? {
              APP_TABLE_NAME: this.tables.app.table.tableName,
              TOOLKIT_TABLE_NAME: this.tables.toolkit.table.tableName,
              // `prod` makes the functions refuse the local key provider (functions/shared/environment.ts).
              BULWARK_STAGE: props.stage,
            }
          : {},
        ...(files === undefined ? {} : { bundledFiles: files }),
      });
      Validations.of(fn.lambdaFunction).acknowledge({
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked only synchronously by the HTTP API, which returns the error to the caller; a DLQ only receives failed asynchronous invocations.',
      });
      this.grantTableAccess(fn.lambdaFunction, definition);
      return fn;
    });

    this.httpApi = new BulwarkHttpApi(this, 'HttpApi', {
      apiName: id,
      functions: mapHttpFunctions((name) => this.functions[name].lambdaFunction),
      accessLogRetention: logRetention,
      accessLogRemovalPolicy: removalPolicy,
    });
    Validations.of(this.httpApi.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: `API Gateway authorizes no route: routePipeline in each function enforces the route table's auth (Cognito JWT with scopes and roles, or a signed service request). Public by design, each for the reason its route-table entry gives: ${routeKeysWhere((route) => route.auth.kind === 'public')}. The $default route is public too: it reaches only the ${catchAllFunction} function, which answers 404 or 405 and holds no data access or key.`,
    });
    // Bookings checks users through the same API (signed, behind its circuit breaker). The URL is
    // built from the API's id alone, and the API resource depends on no function: no cycle.
    this.functions.bookings.lambdaFunction.addEnvironment('USERS_API_URL', this.httpApi.url);
    const email = emailSettings(props.email);
    if (props.stage === 'prod') {
      const problem = prodEmailProblem(props.email, email);
      if (problem !== undefined) throw new Error(`Invalid BulwarkStack props: ${problem}`);
    }
    const sms = smsSettings(props.sms);
    const callbackUrls = props.callbackUrls ?? defaultCallbackUrls;
    // A localhost callback in prod lets whoever runs a listener on that port of a person's machine receive
    // their authorization code; dev keeps them for a local app.
    const localCallbackUrls = callbackUrls.filter(isLocalCallbackUrl);
    if (props.stage === 'prod' && localCallbackUrls.length > 0) {
      throw new Error(
        `Invalid BulwarkStack props: in prod, callbackUrls must name only the app that receives sign-ins (-c callbackUrls=https://app.example.org/callback); these point at this machine: ${localCallbackUrls.join(', ')}`,
      );
    }
    const domainName = props.cognitoDomainName ?? cognitoDomainName(id);
    const domainNameProblems = cognitoDomainNameProblems(domainName);
    if (domainNameProblems.length > 0) {
      throw new Error(
        `Invalid BulwarkStack props: ${domainNameProblems.join('; ')} (got ${JSON.stringify(domainName)}; -c cognitoDomainName)`,
      );
    }
    this.userPool = new BulwarkUserPool(this, 'UserPool', {
      // The route table is the one source of the scopes and roles the API checks.
      scopes: routeTable.flatMap((route) =>
        route.auth.kind === 'principal' ? (route.auth.scopes ?? []) : [],
      ),
      groups: routeTable.flatMap((route) =>
        route.auth.kind === 'principal' ? (route.auth.roles ?? []) : [],
      ),
      // Hosted domain prefixes are global per region: the account id keeps them apart.
      domainPrefix: `${domainName}-${Aws.ACCOUNT_ID}`,
      callbackUrls,
      ...(props.m2mScopes === undefined ? {} : { m2mScopes: props.m2mScopes }),
      ...(props.signInCaseInsensitive === undefined
        ? {}
        : { signInCaseInsensitive: props.signInCaseInsensitive }),
      ...(props.email === undefined || email.smtp ? {} : { email: cognitoEmail(email) }),
      removalPolicy: protectedDataRemovalPolicy,
    });
    // Acknowledged here, not in BulwarkUserPool: the reason is this stack's routes and throttling.
    const { rateLimit, burstLimit } = this.httpApi.throttle;
    Validations.of(this.userPool.userPool).acknowledge({
      id: 'AwsSolutions-COG8',
      reason: `Threat protection (the Plus plan) is a paid per-user add-on; the pool stays on the default Essentials plan, with required TOTP MFA and no self sign-up. At the API, Bulwark rate-limits routes per client IP or principal; those without a limit in the route table (${routeKeysWhere((route) => route.rateLimit === undefined)}) and the $default route (the ${catchAllFunction} function's 404 and 405) have only the stage's default route throttling (${rateLimit} rps, burst ${burstLimit}). AuthFailureSpike alarms on rejected API credentials.`,
    });
    this.bookingsSigningSecret = this.addAuthEnvironment(props, removalPolicy);

    this.alarms = new BulwarkAlarms(this, 'Alarms', {
      httpApi: this.httpApi.api,
      metricNamespace: this.metricNamespace,
      customerEndpointCircuits: [webhookEndpointCircuit],
      smsSentPerHourThreshold: sms.alarmThresholdPerHour,
      bookingEventSweeperService: 'booking-event-sweeper' satisfies ScheduledFunctionName,
      bookingEventSweepInterval: Duration.minutes(scheduledFunctions['booking-event-sweeper'].everyMinutes),
      // Only SES's reputation is at stake here; an SMTP relay's provider keeps its own.
      sesReputation: email.smtp === undefined,
      removalPolicy,
    });

    this.queueKey = new BulwarkEncryptionKey(this, 'QueueKey', {
      description: `${id}: worker queues and their DLQs at rest`,
      removalPolicy,
    });
    this.workers = this.addWorkers(
      props.stage,
      { removalPolicy, logRetention },
      email.smtp ? 'smtp' : deployedEmailTransport,
    );
    // Only a webhook worker of this version signs a rotated endpoint's deliveries with its previous secret
    // too: a deploy updates the worker before the function whose route rotates, so an earlier worker starts
    // no batch once a rotation can be made (one still finishing a batch may sign a delivery with the new
    // secret alone, which the receiver refuses and the new worker retries signed with both).
    this.functions.webhooks.lambdaFunction.node.addDependency(
      this.workers['webhook-worker'].worker.lambdaFunction,
    );

    this.verificationLinkSecret = new secretsmanager.Secret(this, 'VerificationLinkSecret', {
      description:
        'HMAC secret of email verification links, JSON { current, previous }: rotated, and links signed with previous stay valid',
      // The rotation shape from the start, so the function always reads one format.
      generateSecretString: {
        secretStringTemplate: JSON.stringify({}),
        generateStringKey: 'current',
        passwordLength: 48,
        excludePunctuation: true,
      },
      removalPolicy,
    });
    this.smtpCredentials = new secretsmanager.Secret(this, 'SmtpCredentials', {
      description:
        'SMTP relay credentials, JSON { username, password }: store the pair your mail provider issues',
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username: 'replace-me' }),
        generateStringKey: 'password',
        passwordLength: 32,
        excludePunctuation: true,
      },
      removalPolicy,
    });
    Validations.of(this.smtpCredentials).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'SMTP credentials are issued and rotated by the mail provider (for SES SMTP they derive from an IAM access key); an operator stores each new pair here, so a Secrets Manager rotation function has nothing it could generate.',
    });
    this.secretRotation = new BulwarkSecretRotation(this, 'SecretRotation', {
      logRetention,
      logRemovalPolicy: removalPolicy,
      metricNamespace: this.metricNamespace,
      alarmTopic: this.alarms.topic,
    });
    const rotationDays = props.secretRotationDays ?? 30;
    if (!isValidRotationDays(rotationDays)) {
      throw new Error(
        `Invalid BulwarkStack props: secretRotationDays must be a whole number from ${minimumRotationDays} to 1000 (Secrets Manager rotates at any time in the scheduled UTC day, so shorter rates can drop a value 24-hour links still use)`,
      );
    }
    const rotationPeriod = Duration.days(rotationDays);
    this.secretRotation.rotate(this.bookingsSigningSecret, rotationPeriod);
    this.secretRotation.rotate(this.verificationLinkSecret, rotationPeriod);
    this.addEncryptionKeys();
    this.emailConfigurationSet = this.addEmail(email, sms.environment);
    this.addWebhooks();
    this.bookingEventSweeper = this.addBookingEventSweeper(props.stage, { removalPolicy, logRetention });

    const allFunctions: Record<string, BulwarkFunction> = {
      ...this.functions,
      ...Object.fromEntries(workerNames.map((name) => [name, this.workers[name].worker])),
      'secret-rotation': this.secretRotation.rotationFunction,
      'booking-event-sweeper': this.bookingEventSweeper.function,
    };
    this.dashboard = new BulwarkDashboard(this, 'Dashboard', {
      httpApi: this.httpApi.api,
      metricNamespace: this.metricNamespace,
      functions: Object.fromEntries(
        Object.entries(allFunctions).map(([name, fn]) => [name, fn.lambdaFunction]),
      ),
      metricServices: securityMetricServices,
      workers: workerNames.map((name) => ({
        service: name,
        queue: this.workers[name].queue,
        deadLetterQueue: this.workers[name].deadLetterQueue,
      })),
      logGroups: Object.values(allFunctions).map((fn) => fn.logGroup),
      alarms: [
        ...this.alarms.alarms,
        ...workerNames.map((name) => this.workers[name].deadLetterAlarm),
        this.secretRotation.failureAlarm,
        this.bookingEventSweeper.failureAlarm,
      ],
      bookingEventSweep: {
        failureAlarm: this.bookingEventSweeper.failureAlarm,
        stillPendingAlarm: this.alarms.bookingEventsStillPending,
      },
      emailReputationAlarms: [
        ...(this.alarms.sesBounceRate
          ? [{ title: 'SES bounce rate (whole account, 0.05 = 5 %)', alarm: this.alarms.sesBounceRate }]
          : []),
        ...(this.alarms.sesComplaintRate
          ? [
              {
                title: 'SES complaint rate (whole account, 0.001 = 0.1 %)',
                alarm: this.alarms.sesComplaintRate,
              },
            ]
          : []),
      ],
    });

    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.url, description: 'Invoke URL of the HTTP API' });
    new CfnOutput(this, 'AppTableName', { value: this.tables.app.table.tableName });
    new CfnOutput(this, 'ToolkitTableName', { value: this.tables.toolkit.table.tableName });
    new CfnOutput(this, 'UserPoolId', { value: this.userPool.userPool.userPoolId });
    new CfnOutput(this, 'HumanClientId', {
      value: this.userPool.humanClient.userPoolClientId,
      description:
        'App client for people (authorization code, SRP; public, no secret: send PKCE, which Cognito does not require)',
    });
    new CfnOutput(this, 'M2mClientId', {
      value: this.userPool.m2mClient.userPoolClientId,
      description: 'App client for services (client credentials); its secret is in the Cognito console',
    });
    new CfnOutput(this, 'DashboardUrl', { value: this.dashboard.url, description: 'CloudWatch dashboard' });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.alarms.topic.topicArn,
      description: 'SNS topic of every alarm: subscribe your on-call address',
    });
    new CfnOutput(this, 'TokenUrl', {
      value: this.userPool.tokenUrl,
      description: 'OAuth token endpoint (POST grant_type=client_credentials)',
    });
    for (const name of workerNames) {
      new CfnOutput(this, `${pascalCase(name)}DlqUrl`, {
        value: this.workers[name].deadLetterQueue.queueUrl,
        description: `Dead-letter queue of the ${name}: messages that ran out of attempts`,
      });
    }
  }

  /**
   * Least privilege on the tables: exactly the calls `access` lists on each table, on the table alone,
   * and Query on each index it names; nothing on a table it does not list.
   */
  private grantTableAccess(fn: iam.IGrantable, access: TableAccess): void {
    for (const [tableId, actions] of Object.entries(access.tableActions) as [
      TableDefinition['id'],
      readonly TableAction[],
    ][]) {
      this.tables[tableId].grantTableActions(fn, actions);
    }
    for (const [tableId, indexes] of Object.entries(access.queriedIndexes ?? {}) as [
      TableDefinition['id'],
      readonly string[],
    ][]) {
      for (const indexName of indexes) this.tables[tableId].grantIndexQuery(fn, indexName);
    }
  }

  /**
   * One queue, DLQ, alarm and worker function per entry of the worker table, each worker with its
   * queue URLs, the table access it lists and nothing else yet (transport permissions are added per worker).
   */
  private addWorkers(
    stage: Stage,
    { removalPolicy, logRetention }: { removalPolicy: RemovalPolicy; logRetention: logs.RetentionDays },
    emailTransport: 'ses' | 'smtp',
  ): Record<WorkerName, BulwarkWorkerQueue> {
    const built = workerNames.map((name): [WorkerName, BulwarkWorkerQueue] => {
      const definition: WorkerDefinition = workers[name];
      const files = workerBundledFiles[name];
      const workerQueue = new BulwarkWorkerQueue(this, pascalCase(name), {
        name,
        definition,
        encryptionKey: this.queueKey.key,
        alarmTopic: this.alarms.topic,
        environment: {
          APP_TABLE_NAME: this.tables.app.table.tableName,
          TOOLKIT_TABLE_NAME: this.tables.toolkit.table.tableName,
          BULWARK_STAGE: stage,
        },
        ...(files === undefined ? {} : { bundledFiles: files }),
        ...(name === 'email-worker' ? { emailTransport } : {}),
        metricNamespace: this.metricNamespace,
        logRetention,
        logRemovalPolicy: removalPolicy,
        removalPolicy,
      });
      const fn = workerQueue.worker.lambdaFunction;
      for (const [variable, value] of Object.entries(
        workerQueue.queueEnvironment(workerQueueVariables[name]),
      )) {
        fn.addEnvironment(variable, value);
      }
      this.grantTableAccess(fn, definition);
      return [name, workerQueue];
    });
    // fromEntries widens keys to string; the entries are exactly workerNames.
    return Object.fromEntries(built) as Record<WorkerName, BulwarkWorkerQueue>;
  }

  /**
   * Registration emails: users enqueues them (verification links signed with the rotated secret and
   * pointing at this API), and the email worker sends them through SES v2 from exactly one identity
   * with the returned configuration set, or through the given SMTP relay with the credentials secret.
   * SMS codes: users enqueues them within `sms` (its variables), and the worker publishes them through SNS.
   */
  private addEmail(
    { identity, from, smtp, sandboxRecipients }: EmailSettings,
    sms: Record<string, string>,
  ): ses.ConfigurationSet | undefined {
    const emailWorker = this.workers['email-worker'];
    const worker = emailWorker.worker.lambdaFunction;
    // A send its provider's open circuit turns away is sent back to the queue: a deferral that spends
    // none of the message's attempts.
    emailWorker.grantSendMessages(worker);
    worker.addEnvironment('EMAIL_FROM', from);
    let configurationSet: ses.ConfigurationSet | undefined;
    if (smtp) {
      worker.addEnvironment('EMAIL_TRANSPORT', 'smtp');
      worker.addEnvironment('SMTP_HOST', smtp.host);
      worker.addEnvironment('SMTP_PORT', String(smtp.port));
      worker.addEnvironment('SMTP_CREDENTIALS_SECRET_ARN', this.smtpCredentials.secretArn);
      grantSecretValue(this.smtpCredentials, worker);
    } else {
      worker.addEnvironment('EMAIL_TRANSPORT', deployedEmailTransport);
      // Anyone may register any address, so one that bounced or complained must not be mailed again: SES
      // adds it to the account's suppression list and drops later sends to it. With reputation metrics
      // on, SES publishes this set's own bounce and complaint rates too; the SesBounceRate and
      // SesComplaintRate alarms watch the account's, which are what SES judges.
      configurationSet = new ses.ConfigurationSet(this, 'EmailConfigurationSet', {
        reputationMetrics: true,
        suppressionReasons: ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
      });
      worker.addEnvironment('SES_CONFIGURATION_SET', configurationSet.configurationSetName);
      // SES v2 SendEmail is authorised on the From identity and on the configuration set it names, and
      // in the sandbox on each recipient's identity too.
      const sesArn = (resource: string) =>
        `arn:${Aws.PARTITION}:ses:${Aws.REGION}:${Aws.ACCOUNT_ID}:${resource}`;
      worker.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['ses:SendEmail'],
          resources: [
            ...[identity, ...new Set(sandboxRecipients)].map((name) => sesArn(`identity/${name}`)),
            sesArn(`configuration-set/${configurationSet.configurationSetName}`),
          ],
        }),
      );
    }
    // SMS (phone verification) goes straight to phone numbers through SNS. A phone number has no ARN,
    // so IAM cannot name it; NotResource excludes every SNS ARN (topics, platform endpoints), which
    // leaves exactly the direct-to-phone publishes instead of `Resource: *`.
    worker.addEnvironment('SMS_TRANSPORT', 'sns');
    worker.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sns:Publish'],
        notResources: [`arn:${Aws.PARTITION}:sns:*:*:*`],
      }),
    );
    const users = this.functions.users.lambdaFunction;
    for (const [variable, value] of Object.entries(sms)) users.addEnvironment(variable, value);
    emailWorker.grantSendMessages(users);
    users.addEnvironment('EMAIL_QUEUE_URL', emailWorker.queue.queueUrl);
    // Only an email worker of this version takes an SMS code's `expiresAt` (an earlier one refuses the
    // field and dead-letters the message): a deploy updates the worker before the function that queues it.
    users.node.addDependency(emailWorker.worker.lambdaFunction);
    users.addEnvironment('APP_BASE_URL', this.httpApi.url);
    // Read at run time, so a rotation reaches the function without a deploy and the value is never in its configuration.
    users.addEnvironment('VERIFICATION_LINK_SECRET_ARN', this.verificationLinkSecret.secretArn);
    grantSecretValue(this.verificationLinkSecret, users);
    return configurationSet;
  }

  /** A function of the stack by its service name: an HTTP function or a worker. */
  private functionNamed(name: DataKeyUser): BulwarkFunction {
    return name in this.workers
      ? this.workers[name as WorkerName].worker
      : this.functions[name as HttpFunctionName];
  }

  /**
   * Only the functions that seal or open encrypted fields learn the key ids, and each may make only
   * the KMS calls its code makes (see `dataKeyUses`).
   */
  private addEncryptionKeys(): void {
    for (const [name, use] of Object.entries(dataKeyUses) as [DataKeyUser, DataKeyUse][]) {
      const fn = this.functionNamed(name).lambdaFunction;
      fn.addEnvironment('KMS_KEY_ID', this.dataKey.key.keyArn);
      if (use.purpose === undefined) {
        this.dataKey.key.grant(fn, ...use.dataKey);
      } else {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: [...use.dataKey],
            resources: [this.dataKey.key.keyArn],
            conditions: {
              StringEquals: { [`kms:EncryptionContext:${purposeContextMember}`]: use.purpose },
            },
          }),
        );
      }
      if (use.blindIndex) {
        fn.addEnvironment('KMS_BLIND_INDEX_KEY_ID', this.blindIndexKey.key.keyArn);
        this.blindIndexKey.key.grant(fn, 'kms:GenerateMac');
      }
    }
  }

  /**
   * Webhooks: users and bookings fan their events out to the webhook queue; the worker sends a
   * message back to its own queue when the endpoint's circuit is open (a deferral that spends none of
   * the delivery's attempts), and alerts the owner of an endpoint it disables with a security-alert
   * email, so it produces to the email queue.
   * SSRF_ALLOWLIST is never set here: in AWS every private, loopback and metadata address stays blocked.
   */
  private addWebhooks(): void {
    const webhookQueue = this.workers['webhook-worker'];
    for (const name of webhookProducers) {
      const fn = this.functions[name].lambdaFunction;
      webhookQueue.grantSendMessages(fn);
      fn.addEnvironment('WEBHOOK_QUEUE_URL', webhookQueue.queue.queueUrl);
    }
    const emailQueue = this.workers['email-worker'];
    const worker = webhookQueue.worker.lambdaFunction;
    webhookQueue.grantSendMessages(worker);
    emailQueue.grantSendMessages(worker);
    worker.addEnvironment('EMAIL_QUEUE_URL', emailQueue.queue.queueUrl);
  }

  /**
   * The booking event sweeper, on its schedule, allowed exactly the calls it makes: its table access in
   * the scheduled-function table (the pending-events index, each booking and user by key and its mark,
   * the toolkit table's subscriptions), and SendMessage to the webhook queue, as the bookings function
   * publishes.
   */
  private addBookingEventSweeper(
    stage: Stage,
    { removalPolicy, logRetention }: { removalPolicy: RemovalPolicy; logRetention: logs.RetentionDays },
  ): BulwarkScheduledFunction {
    const name: ScheduledFunctionName = 'booking-event-sweeper';
    const webhookQueue = this.workers['webhook-worker'];
    const sweeper = new BulwarkScheduledFunction(this, 'BookingEventSweeper', {
      name,
      definition: scheduledFunctions[name],
      environment: {
        APP_TABLE_NAME: this.tables.app.table.tableName,
        TOOLKIT_TABLE_NAME: this.tables.toolkit.table.tableName,
        BULWARK_STAGE: stage,
        WEBHOOK_QUEUE_URL: webhookQueue.queue.queueUrl,
      },
      metricNamespace: this.metricNamespace,
      logRetention,
      logRemovalPolicy: removalPolicy,
      alarmTopic: this.alarms.topic,
    });
    const fn = sweeper.function.lambdaFunction;
    this.grantTableAccess(fn, scheduledFunctions[name]);
    webhookQueue.grantSendMessages(fn);
    return sweeper;
  }

  /**
   * Auth settings of the functions that serve protected routes, and the signing secret of the one
   * service-to-service call (bookings → users). The secret is generated in Secrets Manager as JSON
   * `{ current, previous }`; both functions get its ARN and read it at run time (cached 5 minutes).
   * The rotation function replaces it with `{ current: <new>, previous: <old current> }`: bookings
   * signs with the new value once its cache expires, and users accepts either, re-reading the
   * secret once when a signature matches neither. No deploy is needed, and the value never appears
   * in a function's configuration.
   */
  private addAuthEnvironment(props: BulwarkStackProps, removalPolicy: RemovalPolicy): secretsmanager.Secret {
    const auth = props.auth ?? {
      issuer: this.userPool.issuer,
      clientIds: [this.userPool.humanClient.userPoolClientId, this.userPool.m2mClient.userPoolClientId],
    };
    // Only Cognito puts `token_use` in its tokens: with any other issuer, checking it would reject them all.
    const tokenUse =
      props.auth === undefined
        ? 'access'
        : (auth.tokenUse ?? (isCognitoIssuer(auth.issuer) ? 'access' : 'any'));
    if (props.auth !== undefined) {
      const { audience, jwksUri } = props.auth;
      const problems = [
        // Functions fetch the issuer's keys over it: plain http, or a host on the function's own machine or
        // network (in Lambda, 127.0.0.1:9001 is the Runtime API), would let whoever answers there mint tokens.
        ...(URL.canParse(auth.issuer)
          ? isPublicHttpsUrl(auth.issuer)
            ? []
            : ['auth.issuer must be https on a public host (not localhost, loopback or private)']
          : ['auth.issuer must be a URL']),
        ...(auth.tokenUse === undefined || authTokenUses.includes(auth.tokenUse)
          ? []
          : [`auth.tokenUse must be one of: ${authTokenUses.join(', ')}`]),
        ...(auth.clientIds.length > 0 && auth.clientIds.every((id) => /^[\w.-]+$/.test(id))
          ? []
          : ['auth.clientIds must be one or more client ids']),
        ...(audience === undefined || (audience.length > 0 && audience.every((aud) => /^[^,\s]+$/.test(aud)))
          ? []
          : ['auth.audience must be one or more audiences without commas or spaces']),
        // Functions refuse tokenUse any without one at cold start: synth says so first, and for any issuer
        // other than Cognito, whose token_use claim (if it writes one) is nothing Bulwark can rely on.
        ...(audience === undefined && (tokenUse === 'any' || !isCognitoIssuer(auth.issuer))
          ? ['auth.audience is required for an issuer other than Cognito and with tokenUse any']
          : []),
        ...(jwksUri === undefined || isPublicHttpsUrl(jwksUri)
          ? []
          : ['auth.jwksUri must be an https URL on a public host (not localhost, loopback or private)']),
        ...(jwksUri === undefined && !isCognitoIssuer(auth.issuer)
          ? ['auth.jwksUri is required for an issuer other than Cognito (its openid-configuration names it)']
          : []),
      ];
      if (problems.length > 0) throw new Error(`Invalid BulwarkStack props: ${problems.join('; ')}`);
    }
    for (const name of authenticatingFunctions) {
      const fn = this.functions[name].lambdaFunction;
      fn.addEnvironment('AUTH_ISSUER', auth.issuer);
      fn.addEnvironment('AUTH_CLIENT_IDS', auth.clientIds.join(','));
      fn.addEnvironment('AUTH_TOKEN_USE', tokenUse);
      if (props.auth?.audience !== undefined)
        fn.addEnvironment('AUTH_AUDIENCE', props.auth.audience.join(','));
      if (props.auth?.jwksUri !== undefined) fn.addEnvironment('AUTH_JWKS_URI', props.auth.jwksUri);
    }
    const bookingsSigningSecret = new secretsmanager.Secret(this, 'BookingsSigningSecret', {
      description: 'Request-signing secret of the bookings service, JSON { current, previous }',
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'current',
        passwordLength: 48,
        excludePunctuation: true,
      },
      removalPolicy,
    });
    // The caller signs with it; the functions whose routes allow signed service requests verify with it.
    const signingFunctions = new Set<HttpFunctionName>([
      'bookings',
      ...routes.filter((route) => 'allowService' in route.auth).map((route) => route.function),
    ]);
    for (const name of signingFunctions) {
      const fn = this.functions[name].lambdaFunction;
      fn.addEnvironment('SERVICE_SIGNING_SECRET_ARN_BOOKINGS', bookingsSigningSecret.secretArn);
      grantSecretValue(bookingsSigningSecret, fn);
    }
    return bookingsSigningSecret;
  }
}
