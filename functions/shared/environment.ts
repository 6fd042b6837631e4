// The sample functions' configuration, read from the environment once at cold start.
import { isUsableSecretValue } from '../../middleware/auth/hmac-secret.js';
import type { RotatingSecret } from '../../middleware/auth/service-auth.js';
import { encryptionKeyProblem, indexKeyProblem } from '../../middleware/encryption/local-key-provider.js';
import type { RotatingSecretSetting } from './rotating-secret.js';
import { isPublicHttpsUrl } from './ssrf-guard.js';
import {
  invalidEnvironment,
  localOnly,
  readTableEnvironment,
  refusesLocalSettings,
  type TableEnvironment,
  tableEnvironmentProblems,
} from './table-environment.js';
import { webhookQueueEnvironment, webhookQueueEnvironmentProblems } from './webhook-queue-environment.js';
import * as z from './zod.js';

const localKeySchema = z
  .string()
  .check(z.refine((value) => encryptionKeyProblem(value) === undefined, 'Must be base64 of 32 bytes'));

/**
 * A number read from a variable, within bounds, `fallback` when unset. Written out in digits: coercion
 * would read an empty or blank value as 0.
 */
const numberVariable = (min: number, max: number, fallback: number, unit: string) => {
  // Every check says the whole rule, so a refusal (`npm start`'s) can say what is valid.
  const rule = `a number of ${unit} from ${min} to ${max}`;
  return z._default(
    z.pipe(
      z.string().check(z.regex(/^\d+(\.\d+)?$/, rule)),
      z.pipe(z.transform(Number), z.number().check(z.minimum(min, rule), z.maximum(max, rule))),
    ),
    fallback,
  );
};

/** A whole number (of `unit`: seconds, hours) read from a variable, within bounds. */
const wholeNumber = (min: number, max: number, unit?: string) => {
  const rule = `a whole number${unit === undefined ? '' : ` of ${unit}`} from ${min} to ${max}`;
  return z.pipe(
    z.string().check(z.regex(/^\d+$/, rule)),
    z.pipe(z.transform(Number), z.number().check(z.minimum(min, rule), z.maximum(max, rule))),
  );
};

/** UNVERIFIED_USER_TTL_HOURS when unset. */
export const defaultUnverifiedUserTtlHours = 48;
/** A whole number read from a variable, within bounds, `fallback` when unset. */
const integerVariable = (min: number, max: number, fallback: number, unit?: string) =>
  z._default(wholeNumber(min, max, unit), fallback);

/** Where SMS codes go unless SMS_REGIONS says otherwise (the sample's own numbers are +1 415 …). */
export const defaultSmsRegions: readonly string[] = ['US'];
/** The deployment's SMS budget unless SMS_PER_HOUR says otherwise. */
export const defaultSmsPerHour = 100;
/** The largest SMS budget the variables take. */
export const maxSmsPerHour = 1_000_000;

/**
 * A region's SMS budget when none is given: half the deployment's, so that one region pumped to its
 * limit leaves the other half to everyone else.
 */
export function defaultSmsPerRegionPerHour(perHour: number): number {
  return Math.ceil(perHour / 2);
}

const environmentSchema = z.object({
  /** Base URL of the users service, which bookings calls over HTTP (the stack: the HTTP API; locally: the runtime). */
  USERS_API_URL: z.optional(z.url()),
  /** How many days ahead a booking may start (bookings refuses a later start with 400 on `body.start`). */
  BOOKING_HORIZON_DAYS: integerVariable(1, 3650, 365, 'days'),
  /**
   * Hours a registration has to get its email verified before it lapses and frees its address (users
   * only). 48: twice the verification link's day, so a user whose first link ran out unused can still
   * ask for another and use it, while an address someone else registered is free again within two days.
   */
  UNVERIFIED_USER_TTL_HOURS: integerVariable(1, 720, defaultUnverifiedUserTtlHours, 'hours'),
  /**
   * The regions whose mobile numbers users accepts and sends SMS codes to: comma-separated ISO 3166
   * alpha-2 codes as libphonenumber names them (`US,CA,GB,GG,JE,IM`). Every allowed region is an SMS
   * destination anyone can make the deployment pay for, so the default is one low-cost region.
   */
  SMS_REGIONS: z._default(
    z.string().check(z.regex(/^[A-Z]{2}(,[A-Z]{2})*$/, 'region codes such as US or GB, separated by commas')),
    defaultSmsRegions.join(','),
  ),
  /** SMS codes the whole deployment may send: a burst of this many, refilled evenly over an hour. */
  SMS_PER_HOUR: integerVariable(1, maxSmsPerHour, defaultSmsPerHour, 'SMS'),
  /** SMS codes to the numbers of one region, of the same shape. @default half of SMS_PER_HOUR, rounded up */
  SMS_PER_REGION_PER_HOUR: z.optional(wholeNumber(1, maxSmsPerHour, 'SMS')),
  /**
   * `prod` refuses the local key provider (see ALLOW_LOCAL_KEY_IN_PRODUCTION); the stack sets it. Required
   * in Lambda, where `local` declares an emulator and lifts the refusal of local-only settings.
   */
  BULWARK_STAGE: z._default(z.enum(['local', 'dev', 'prod']), 'local'),
  /** KMS key for envelope encryption; when set, KMS is used instead of ENCRYPTION_KEY. */
  KMS_KEY_ID: z.optional(z.string().check(z.minLength(1))),
  /**
   * Comma-separated KMS keys whose data keys are still unwrapped after KMS_KEY_ID moved to another key,
   * each as KMS_KEY_ID named it. KMS automatic rotation keeps the key id and needs none.
   */
  KMS_DECRYPT_KEY_IDS: z.optional(z.string().check(z.regex(/^[^,\s]+(,[^,\s]+)*$/))),
  /** HMAC_256 KMS key from which blind-index keys are derived (with KMS_KEY_ID). */
  KMS_BLIND_INDEX_KEY_ID: z.optional(z.string().check(z.minLength(1))),
  /** The local key provider's key: base64 of 32 bytes (the local runtime and tests set it). */
  ENCRYPTION_KEY: z.optional(localKeySchema),
  /** Comma-separated earlier ENCRYPTION_KEYs: they unwrap the records not yet re-encrypted. */
  ENCRYPTION_PREVIOUS_KEYS: z.optional(
    z
      .string()
      .check(
        z.refine(
          (value) => value.split(',').every((key) => encryptionKeyProblem(key) === undefined),
          'Must be comma-separated base64 of 32 bytes',
        ),
      ),
  ),
  /**
   * The local key blind indexes are derived from, or its index secret (`npm run -s index-secret`); unset,
   * ENCRYPTION_KEY. Set it to the index secret of the key the indexes were made with before rotating
   * ENCRYPTION_KEY, and keep it: unlike the key, it cannot unwrap data keys.
   */
  ENCRYPTION_INDEX_KEY: z.optional(
    z
      .string()
      .check(
        z.refine(
          (value) => indexKeyProblem(value) === undefined,
          'Must be base64 of 32 bytes, or an index secret ("index:" and base64 of 32 bytes)',
        ),
      ),
  ),
  ALLOW_LOCAL_KEY_IN_PRODUCTION: z._default(z.stringbool(), false),
  /** The JWT issuer (Cognito user pool URL, or the local dev issuer); without it no JWT is accepted. */
  AUTH_ISSUER: z.optional(z.url()),
  /** @default `<AUTH_ISSUER>/.well-known/jwks.json` */
  AUTH_JWKS_URI: z.optional(z.url()),
  /** Inline JWKS JSON to start from, so a cold start needs no fetch. */
  AUTH_JWKS: z.optional(z.string().check(z.minLength(1))),
  /** Comma-separated accepted client ids; required with AUTH_ISSUER; `*` deliberately accepts any client. */
  AUTH_CLIENT_IDS: z.optional(z.string().check(z.regex(/^(\*|[\w.-]+(,[\w.-]+)*)$/))),
  /** Cognito token_use to accept; `any` skips the check (issuers other than Cognito; needs AUTH_AUDIENCE). */
  AUTH_TOKEN_USE: z._default(z.enum(['access', 'id', 'any']), 'access'),
  /** Comma-separated `aud` values, one of which tokens must carry; required with AUTH_TOKEN_USE=any. */
  AUTH_AUDIENCE: z.optional(z.string().check(z.regex(/^[^,\s]+(,[^,\s]+)*$/))),
});

/** Authentication settings of the sample functions (see functions/shared/route-auth.ts). */
export interface AuthEnvironment {
  issuer: string | undefined;
  jwksUri: string | undefined;
  jwks: string | undefined;
  /** null: any client (AUTH_CLIENT_IDS=*). */
  clientIds: string[] | null;
  /** null: token_use not checked. */
  tokenUse: 'access' | 'id' | null;
  /** undefined: aud not checked (never with tokenUse null). */
  audience: string[] | undefined;
  serviceSecrets: Record<string, RotatingSecretSetting>;
}

/**
 * Request-signing secrets come one variable per calling service: `SERVICE_SIGNING_SECRET_ARN_<ID>`, the
 * ARN of a Secrets Manager secret read at run time (the stack), or `SERVICE_SIGNING_SECRET_<ID>`, the
 * value itself (local runs and tests). Either holds JSON `{ "current": "...", "previous": "..." }`
 * (previous only after a rotation), the shape the rotation function keeps.
 */
const signingSecretPrefix = 'SERVICE_SIGNING_SECRET_';
const signingSecretArnPrefix = 'SERVICE_SIGNING_SECRET_ARN_';
const secretArnSchema = z
  .string()
  .check(z.regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$/));
const hmacSecretSchema = z
  .string()
  .check(z.refine(isUsableSecretValue, 'Must hold at least 32 characters besides whitespace'));
/** A secret as the rotation function keeps it: the value in use and, after a rotation, the one before. */
const rotatingSecretSchema = z.pipe(
  z.string(),
  z.pipe(
    z.transform((text: string, context) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        context.issues.push({ code: 'custom', input: text, message: 'Must be JSON' });
        return z.NEVER;
      }
    }),
    z.strictObject({
      current: hmacSecretSchema,
      previous: z.optional(hmacSecretSchema),
    }),
  ),
);

function signingSecrets(env: NodeJS.ProcessEnv): AuthEnvironment['serviceSecrets'] {
  const secrets: AuthEnvironment['serviceSecrets'] = {};
  const invalid: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(signingSecretPrefix) || value === undefined) continue;
    const byArn = name.startsWith(signingSecretArnPrefix);
    const serviceId = name
      .slice((byArn ? signingSecretArnPrefix : signingSecretPrefix).length)
      .toLowerCase()
      .replaceAll('_', '-');
    const parsed = byArn ? secretArnSchema.safeParse(value) : rotatingSecretSchema.safeParse(value);
    // One source per service: a value and an ARN for the same caller would leave it unclear which is in force.
    if (!parsed.success || !/^[a-z0-9-]{1,64}$/.test(serviceId) || serviceId in secrets) {
      invalid.push(name);
      continue;
    }
    secrets[serviceId] = byArn
      ? { secretArn: parsed.data as string }
      : { value: parsed.data as RotatingSecret };
  }
  if (invalid.length > 0) throw invalidEnvironment(invalid);
  return secrets;
}

function authEnvironment(data: z.output<typeof environmentSchema>, env: NodeJS.ProcessEnv): AuthEnvironment {
  // Checked here rather than in the schema: which client ids are trusted is never left to a default, and
  // without token_use only aud tells this API's access tokens from ID tokens and tokens for other APIs.
  const issuer = data.AUTH_ISSUER !== undefined;
  const missing = [
    ...(issuer && data.AUTH_CLIENT_IDS === undefined ? ['AUTH_CLIENT_IDS (required with AUTH_ISSUER)'] : []),
    ...(issuer && data.AUTH_TOKEN_USE === 'any' && data.AUTH_AUDIENCE === undefined
      ? ['AUTH_AUDIENCE (required with AUTH_TOKEN_USE=any)']
      : []),
  ];
  if (missing.length > 0) throw new Error(`Invalid function environment: ${missing.join(', ')}`);
  return {
    issuer: data.AUTH_ISSUER,
    jwksUri: data.AUTH_JWKS_URI,
    jwks: data.AUTH_JWKS,
    clientIds:
      data.AUTH_CLIENT_IDS === undefined || data.AUTH_CLIENT_IDS === '*'
        ? null
        : data.AUTH_CLIENT_IDS.split(','),
    tokenUse: data.AUTH_TOKEN_USE === 'any' ? null : data.AUTH_TOKEN_USE,
    audience: data.AUTH_AUDIENCE?.split(','),
    serviceSecrets: signingSecrets(env),
  };
}

/** The users function's SMS policy (SMS_REGIONS, SMS_PER_HOUR, SMS_PER_REGION_PER_HOUR). */
export interface SmsEnvironment {
  /** Regions (ISO 3166 alpha-2) whose mobile numbers are accepted and sent codes. */
  readonly regions: readonly string[];
  /** The deployment's budget: a burst of this many SMS, then one every hour / perHour. */
  readonly perHour: number;
  /** Each region's budget, of the same shape. */
  readonly perRegionPerHour: number;
}

export interface FunctionEnvironment extends TableEnvironment {
  /** Where the users service answers; only the bookings function needs it (and checks it at cold start). */
  usersApiUrl: string | undefined;
  /** How many days ahead a booking may start; only the bookings function reads it. */
  bookingHorizonDays: number;
  /** Hours an unverified registration lives (UNVERIFIED_USER_TTL_HOURS); only the users function reads it. */
  unverifiedUserTtlHours: number;
  /** Where SMS codes may go and how many; only the users function reads it. */
  sms: SmsEnvironment;
  /** Key provider settings, for `createKeyProvider` (middleware/encryption). */
  encryption: {
    kmsKeyId: string | undefined;
    kmsDecryptKeyIds: string[];
    blindIndexKeyId: string | undefined;
    localKey: string | undefined;
    previousLocalKeys: string[];
    localIndexKey: string | undefined;
    production: boolean;
    allowLocalKeyInProduction: boolean;
  };
  auth: AuthEnvironment;
}

/** What a function needs beyond the variables every function reads. */
export interface EnvironmentNeeds {
  /**
   * The function computes blind indexes (users: the email claim, SMS budgets, phone codes). With
   * KMS_KEY_ID, KMS_BLIND_INDEX_KEY_ID is then required too, so its absence fails the cold start, not
   * every registration. With the local key, ENCRYPTION_PREVIOUS_KEYS (a rotation) requires
   * ENCRYPTION_INDEX_KEY, so that the rotation leaves every blind index as it was.
   * @default false
   */
  readonly blindIndexes?: boolean;
}

/** The encryption variables missing for `needs`, each with why. */
function encryptionProblems(env: NodeJS.ProcessEnv, needs: EnvironmentNeeds): string[] {
  if (!needs.blindIndexes) return [];
  if (env.KMS_KEY_ID) {
    return env.KMS_BLIND_INDEX_KEY_ID === undefined
      ? ['KMS_BLIND_INDEX_KEY_ID (required with KMS_KEY_ID for blind indexes)']
      : [];
  }
  // Without it the index key would be the rotated ENCRYPTION_KEY: every blind index would change.
  return env.ENCRYPTION_PREVIOUS_KEYS !== undefined && env.ENCRYPTION_INDEX_KEY === undefined
    ? ['ENCRYPTION_INDEX_KEY (required with ENCRYPTION_PREVIOUS_KEYS for blind indexes)']
    : [];
}

/** What a function needs of the queue variables beyond their checks. */
export interface QueueEnvironmentNeeds {
  /**
   * The function sends the emails and SMS (the email worker). In Lambda, EMAIL_TRANSPORT and SMS_TRANSPORT
   * are then required: unset, they are the local runtime's SMTP sink and outbox.
   * @default false
   */
  readonly transports?: boolean;
  /**
   * The function puts links in emails (users): in Lambda, APP_BASE_URL is then required, since unset it is
   * the local runtime's http://127.0.0.1:3000.
   * @default false
   */
  readonly links?: boolean;
}

/** The local key's variables: with them the key sits in the function's configuration, not in KMS. */
const localKeyVariables = ['ENCRYPTION_KEY', 'ENCRYPTION_PREVIOUS_KEYS', 'ENCRYPTION_INDEX_KEY'];

/**
 * The settings only a developer's machine may use, besides the tables' (`tableEnvironmentProblems`), when
 * Lambda refuses them (`refusesLocalSettings`). Both readers name them all, whichever reads the variable:
 * - an issuer or JWKS URL that is http, localhost or a private address (the dev issuer): whoever answers
 *   there mints tokens, and in Lambda 127.0.0.1:9001 is the Runtime API; likewise the users service's URL
 *   (where bookings sends signed calls) and the base of email links, which the stack sets to the API's;
 * - inline secrets (SERVICE_SIGNING_SECRET_<ID>, VERIFICATION_LINK_SECRET), where the stack passes ARNs,
 *   and the local key, unless ALLOW_LOCAL_KEY_IN_PRODUCTION records that decision;
 * - the local SQS (signed with static local credentials) and an SSRF allowlist;
 * - the local transports: the outbox, and SMTP without credentials (the sink).
 */
function localSettingsProblems(env: NodeJS.ProcessEnv, needs: QueueEnvironmentNeeds = {}): string[] {
  if (!refusesLocalSettings(env)) return [];
  const localKeyAllowed = z.stringbool().safeParse(env.ALLOW_LOCAL_KEY_IN_PRODUCTION).data === true;
  // Set, or unset where the function sends and its local default would be used.
  const inForce = (name: string) => env[name] !== undefined || needs.transports === true;
  return [
    // A value that is no URL at all is the schema's to name.
    ...['AUTH_ISSUER', 'AUTH_JWKS_URI', 'USERS_API_URL', 'APP_BASE_URL'].flatMap((name) => {
      const url = env[name];
      return url !== undefined && URL.canParse(url) && !isPublicHttpsUrl(url)
        ? [`${name} (in Lambda: https on a public host)`]
        : [];
    }),
    ...Object.entries(env)
      .filter(
        ([name, value]) =>
          value !== undefined &&
          name.startsWith(signingSecretPrefix) &&
          !name.startsWith(signingSecretArnPrefix),
      )
      .map(([name]) => localOnly(name)),
    ...(localKeyAllowed
      ? []
      : localKeyVariables
          .filter((name) => env[name] !== undefined)
          .map(
            (name) => `${name} (local only: refused in Lambda without ALLOW_LOCAL_KEY_IN_PRODUCTION=true)`,
          )),
    ...(needs.links === true && env.APP_BASE_URL === undefined ? ['APP_BASE_URL (required in Lambda)'] : []),
    ...['SQS_ENDPOINT', 'SSRF_ALLOWLIST', 'VERIFICATION_LINK_SECRET']
      .filter((name) => env[name] !== undefined)
      .map(localOnly),
    ...(inForce('EMAIL_TRANSPORT') &&
    (env.EMAIL_TRANSPORT ?? 'smtp') === 'smtp' &&
    env.SMTP_CREDENTIALS_SECRET_ARN === undefined
      ? ['EMAIL_TRANSPORT (in Lambda: ses, or smtp with SMTP_CREDENTIALS_SECRET_ARN)']
      : []),
    ...(inForce('SMS_TRANSPORT') && (env.SMS_TRANSPORT ?? 'outbox') === 'outbox'
      ? ['SMS_TRANSPORT (in Lambda: sns)']
      : []),
  ];
}

/**
 * Parses the environment, or fails the cold start naming every missing or invalid variable (never a
 * value), `alsoInvalid` (found by other checks) first.
 */
function parseEnvironment<S extends z.ZodMiniType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  alsoInvalid: readonly string[] = [],
): z.output<S> {
  const result = schema.safeParse(env);
  // A variable another check named (with why) is not named again, nor twice by two checks.
  const named = new Set(alsoInvalid.map((problem) => problem.split(' ')[0]));
  const names = [
    ...new Set(alsoInvalid),
    ...(result.error?.issues.map((issue) => issue.path.join('.')).filter((name) => !named.has(name)) ?? []),
  ];
  if (names.length > 0 || !result.success) throw invalidEnvironment(names);
  return result.data;
}

/** Fails the cold start with every missing or invalid variable named (never their values). */
export function readEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  needs: EnvironmentNeeds = {},
): FunctionEnvironment {
  const data = parseEnvironment(environmentSchema, env, [
    ...tableEnvironmentProblems(env),
    ...localSettingsProblems(env),
    ...encryptionProblems(env, needs),
  ]);
  return {
    ...readTableEnvironment(env),
    usersApiUrl: data.USERS_API_URL,
    bookingHorizonDays: data.BOOKING_HORIZON_DAYS,
    unverifiedUserTtlHours: data.UNVERIFIED_USER_TTL_HOURS,
    sms: {
      regions: data.SMS_REGIONS.split(','),
      perHour: data.SMS_PER_HOUR,
      perRegionPerHour: data.SMS_PER_REGION_PER_HOUR ?? defaultSmsPerRegionPerHour(data.SMS_PER_HOUR),
    },
    encryption: {
      kmsKeyId: data.KMS_KEY_ID,
      kmsDecryptKeyIds: data.KMS_DECRYPT_KEY_IDS?.split(',') ?? [],
      blindIndexKeyId: data.KMS_BLIND_INDEX_KEY_ID,
      localKey: data.ENCRYPTION_KEY,
      previousLocalKeys: data.ENCRYPTION_PREVIOUS_KEYS?.split(',') ?? [],
      localIndexKey: data.ENCRYPTION_INDEX_KEY,
      production: data.BULWARK_STAGE === 'prod',
      allowLocalKeyInProduction: data.ALLOW_LOCAL_KEY_IN_PRODUCTION,
    },
    auth: authEnvironment(data, env),
  };
}

const queueEnvironmentSchema = z.object({
  /** The email queue; without it, registering a user enqueues no email. */
  EMAIL_QUEUE_URL: z.optional(z.url()),
  /** The email queue's dead-letter queue: where the worker puts a message that can never be sent. */
  EMAIL_DLQ_URL: z.optional(z.url()),
  /** `ses` in AWS; `smtp` anywhere (the local runtime's SMTP sink). */
  EMAIL_TRANSPORT: z._default(z.enum(['ses', 'smtp']), 'smtp'),
  EMAIL_FROM: z._default(z.string().check(z.minLength(3)), 'Bulwark <noreply@bulwark.local>'),
  /** The SES configuration set the `ses` transport sends with (the stack's); unset: none. */
  SES_CONFIGURATION_SET: z.optional(
    z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, 'Must be 1-64 letters, digits, _ or -')),
  ),
  SMTP_HOST: z._default(z.string().check(z.minLength(1)), '127.0.0.1'),
  SMTP_PORT: integerVariable(1, 65_535, 1025),
  /** The relay's credentials, JSON { username, password } in Secrets Manager (the stack); unset: no AUTH (a local sink). */
  SMTP_CREDENTIALS_SECRET_ARN: z.optional(secretArnSchema),
  /** First retry delay; attempt n waits base × 2^(n-1) seconds (changed message visibility). */
  EMAIL_RETRY_BASE_DELAY_SEC: integerVariable(1, 3600, 30, 'seconds'),
  /** `sns` in AWS; `outbox` writes each SMS as a text file (the local runtime). */
  SMS_TRANSPORT: z._default(z.enum(['sns', 'outbox']), 'outbox'),
  /** Where the outbox SMS transport writes `<time>-<id>.sms.txt` files. */
  SMS_OUTBOX_DIR: z._default(z.string().check(z.minLength(1)), '.bulwark/outbox'),
  /** Alphanumeric SMS sender id (1-11 characters), where the destination country supports one. */
  SMS_SENDER_ID: z.optional(z.string().check(z.regex(/^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$/))),
  /**
   * HMAC secret of verification links: a string of at least 32 characters besides whitespace, or the
   * rotation shape `{ "current": "...", "previous": "..." }` (the stack's secret), so links signed before
   * a rotation still verify after it.
   */
  VERIFICATION_LINK_SECRET: z.optional(
    z.pipe(
      z.pipe(
        z.string(),
        z.transform((text: string) =>
          text.trimStart().startsWith('{') ? text : JSON.stringify({ current: text }),
        ),
      ),
      rotatingSecretSchema,
    ),
  ),
  /** The stack's form of VERIFICATION_LINK_SECRET: the Secrets Manager secret, read at run time. */
  VERIFICATION_LINK_SECRET_ARN: z.optional(secretArnSchema),
  /**
   * Base of the links put in emails. Only http(s): the email worker refuses any other link, so another
   * scheme would dead-letter every verification email rather than fail here, at cold start.
   */
  APP_BASE_URL: z._default(z.url({ protocol: /^https?$/ }), 'http://127.0.0.1:3000'),
  /** The webhook queue's dead-letter queue: where the worker puts a message that can never be delivered. */
  WEBHOOK_DLQ_URL: z.optional(z.url()),
  /** Webhook backoff: attempt n waits a random 0 … base × 2^(n-1) seconds (full jitter). */
  WEBHOOK_RETRY_BASE_DELAY_SEC: integerVariable(1, 3600, 60, 'seconds'),
  /**
   * The longest wait between two webhook attempts, Retry-After included. SQS allows 12 h from the
   * receive, so 43200 is shortened by the attempt's own time and a minute's margin.
   */
  WEBHOOK_MAX_RETRY_DELAY_SEC: integerVariable(1, 43_200, 3600, 'seconds'),
  /** Disable rule: consecutive deliveries failed for good that disable an endpoint. */
  WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES: integerVariable(1, 1000, 5, 'deliveries'),
  /** Disable rule: hours without a success after which the next failed delivery disables an endpoint. */
  WEBHOOK_DISABLE_AFTER_FAILING_HOURS: numberVariable(0, 24 * 30, 24, 'hours'),
  /** Endpoints one owner may register at a time (each event fans out one message per endpoint). */
  WEBHOOK_MAX_ENDPOINTS_PER_OWNER: integerVariable(1, 1000, 20, 'endpoints'),
  /** CIDRs the SSRF guard lets through although blocked (local runs and tests: loopback; refused in Lambda); read by ssrf-guard.ts. */
  SSRF_ALLOWLIST: z.optional(z.string()),
});

/** A variable the users, bookings and webhooks functions or the email and webhook workers read with a schema. */
export type FunctionVariable =
  | keyof typeof environmentSchema.shape
  | keyof typeof queueEnvironmentSchema.shape;

/**
 * The rule a function would find `value` of `variable` breaking (`a whole number of hours from 1 to 720`),
 * or undefined when it takes the value: `npm start` checks the variables it passes on from the shell with
 * it, so a bad one stops the start with the rule, not a cold start with the variable's name alone.
 */
export function functionVariableProblem(variable: FunctionVariable, value: string): string | undefined {
  const schema = { ...environmentSchema.shape, ...queueEnvironmentSchema.shape }[variable];
  return schema.safeParse(value).error?.issues[0]?.message;
}

/** Queue and email settings of the users function (producer) and the email worker (consumer). */
export interface QueueEnvironment {
  sqsEndpoint: string | undefined;
  emailQueueUrl: string | undefined;
  emailDlqUrl: string | undefined;
  emailTransport: 'ses' | 'smtp';
  emailFrom: string;
  smtp: { host: string; port: number; credentialsSecretArn: string | undefined };
  /** The SES transport's settings (the SMTP transport ignores them). */
  ses: { configurationSetName: string | undefined };
  sms: { transport: 'sns' | 'outbox'; outboxDir: string; senderId: string | undefined };
  retryBaseDelaySec: number;
  /** Links are signed with `current`; `previous` (after a rotation) still verifies the older ones. */
  verificationLinkSecret: RotatingSecretSetting | undefined;
  appBaseUrl: string;
  /** The webhook queue (producers: users, bookings; consumer: the webhook worker). */
  webhook: {
    queueUrl: string | undefined;
    dlqUrl: string | undefined;
    retryBaseDelaySec: number;
    maxRetryDelaySec: number;
    disableAfterFailedDeliveries: number;
    disableAfterFailingHours: number;
    maxEndpointsPerOwner: number;
  };
  /** Raw SSRF_ALLOWLIST, parsed by `ssrfAllowlistFromEnvironment`. */
  ssrfAllowlist: string | undefined;
}

/** Fails the cold start with every invalid variable named (never their values). */
export function readQueueEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  needs: QueueEnvironmentNeeds = {},
): QueueEnvironment {
  const data = parseEnvironment(queueEnvironmentSchema, env, [
    ...localSettingsProblems(env, needs),
    ...webhookQueueEnvironmentProblems(env),
  ]);
  const webhookQueue = webhookQueueEnvironment(env);
  if (data.VERIFICATION_LINK_SECRET !== undefined && data.VERIFICATION_LINK_SECRET_ARN !== undefined) {
    throw new Error(
      'Invalid function environment: VERIFICATION_LINK_SECRET, VERIFICATION_LINK_SECRET_ARN (give one)',
    );
  }
  return {
    sqsEndpoint: webhookQueue.sqsEndpoint,
    emailQueueUrl: data.EMAIL_QUEUE_URL,
    emailDlqUrl: data.EMAIL_DLQ_URL,
    emailTransport: data.EMAIL_TRANSPORT,
    emailFrom: data.EMAIL_FROM,
    smtp: {
      host: data.SMTP_HOST,
      port: data.SMTP_PORT,
      credentialsSecretArn: data.SMTP_CREDENTIALS_SECRET_ARN,
    },
    ses: { configurationSetName: data.SES_CONFIGURATION_SET },
    sms: { transport: data.SMS_TRANSPORT, outboxDir: data.SMS_OUTBOX_DIR, senderId: data.SMS_SENDER_ID },
    retryBaseDelaySec: data.EMAIL_RETRY_BASE_DELAY_SEC,
    verificationLinkSecret:
      data.VERIFICATION_LINK_SECRET_ARN !== undefined
        ? { secretArn: data.VERIFICATION_LINK_SECRET_ARN }
        : data.VERIFICATION_LINK_SECRET && { value: data.VERIFICATION_LINK_SECRET },
    appBaseUrl: data.APP_BASE_URL,
    webhook: {
      queueUrl: webhookQueue.webhook.queueUrl,
      dlqUrl: data.WEBHOOK_DLQ_URL,
      retryBaseDelaySec: data.WEBHOOK_RETRY_BASE_DELAY_SEC,
      maxRetryDelaySec: data.WEBHOOK_MAX_RETRY_DELAY_SEC,
      disableAfterFailedDeliveries: data.WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES,
      disableAfterFailingHours: data.WEBHOOK_DISABLE_AFTER_FAILING_HOURS,
      maxEndpointsPerOwner: data.WEBHOOK_MAX_ENDPOINTS_PER_OWNER,
    },
    ssrfAllowlist: data.SSRF_ALLOWLIST,
  };
}
