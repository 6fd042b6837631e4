// The sample functions' environment readers: every problem named at once, never a value, and health and the
// booking event sweeper without a schema library.
import { build } from 'esbuild';
import { describe, expect, it, vi } from 'vitest';
import {
  defaultBookingEventGraceSec,
  readSweeperEnvironment,
} from '../../functions/booking-event-sweeper/environment.js';
import { httpFunctions } from '../../functions/routes.js';
import { readEnvironment, readQueueEnvironment } from '../../functions/shared/environment.js';
import { readTableEnvironment } from '../../functions/shared/table-environment.js';
import { generateEncryptionKey } from '../../middleware/encryption/local-key-provider.js';

const tables = { APP_TABLE_NAME: 'app', TOOLKIT_TABLE_NAME: 'toolkit' };
const dataKeyArn = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000001';
const indexKeyArn = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000002';

describe('readTableEnvironment', () => {
  it('reads any table name DynamoDB accepts, up to its 255 characters', () => {
    const names = { APP_TABLE_NAME: 'Bulwark-App_v2.prod', TOOLKIT_TABLE_NAME: `t${'-'.repeat(254)}` };
    expect(readTableEnvironment(names)).toMatchObject({
      appTableName: names.APP_TABLE_NAME,
      toolkitTableName: names.TOOLKIT_TABLE_NAME,
    });
    expect(() => readTableEnvironment({ ...tables, APP_TABLE_NAME: 'a'.repeat(256) })).toThrow(
      new Error('Invalid function environment: APP_TABLE_NAME'),
    );
  });

  it('reads the two tables and the local endpoint', () => {
    expect(readTableEnvironment({ ...tables, DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000' })).toEqual({
      appTableName: 'app',
      toolkitTableName: 'toolkit',
      dynamoDbEndpoint: 'http://127.0.0.1:8000',
    });
    expect(readTableEnvironment(tables).dynamoDbEndpoint).toBeUndefined();
  });

  it.each([
    [{}, 'APP_TABLE_NAME, TOOLKIT_TABLE_NAME'],
    [{ ...tables, APP_TABLE_NAME: '' }, 'APP_TABLE_NAME'],
    [{ ...tables, APP_TABLE_NAME: '   ' }, 'APP_TABLE_NAME'],
    [{ ...tables, TOOLKIT_TABLE_NAME: '\t' }, 'TOOLKIT_TABLE_NAME'],
    [{ ...tables, TOOLKIT_TABLE_NAME: 'toolkit\n' }, 'TOOLKIT_TABLE_NAME'],
    [{ ...tables, APP_TABLE_NAME: 'app table' }, 'APP_TABLE_NAME'],
    [{ ...tables, APP_TABLE_NAME: 'ap' }, 'APP_TABLE_NAME'],
    [{ ...tables, DYNAMODB_ENDPOINT: 'ftp://secret-host:21' }, 'DYNAMODB_ENDPOINT'],
    [{ TOOLKIT_TABLE_NAME: 'toolkit', DYNAMODB_ENDPOINT: 'not a url' }, 'APP_TABLE_NAME, DYNAMODB_ENDPOINT'],
  ])('names every missing or invalid variable and no value: %j', (env, names) => {
    expect(() => readTableEnvironment(env)).toThrow(new Error(`Invalid function environment: ${names}`));
  });
});

/** What Lambda sets in every function (the local runtime sets neither). */
const lambda = {
  AWS_LAMBDA_FUNCTION_NAME: 'Bulwark-prod-WebhooksFunction',
  AWS_LAMBDA_RUNTIME_API: '127.0.0.1:9001',
};
const localKey = generateEncryptionKey();
const signingSecret = JSON.stringify({ current: 'c'.repeat(40) });
const secretArn = (name: string) => `arn:aws:secretsmanager:eu-west-1:111122223333:secret:${name}-AbCdEf`;
/** The stack's settings, each the deployed form of a local-only one below. */
const deployed = {
  ...tables,
  BULWARK_STAGE: 'prod',
  KMS_KEY_ID: dataKeyArn,
  AUTH_ISSUER: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1',
  AUTH_CLIENT_IDS: 'web,m2m',
  SERVICE_SIGNING_SECRET_ARN_BOOKINGS: secretArn('signing'),
  VERIFICATION_LINK_SECRET_ARN: secretArn('links'),
  EMAIL_TRANSPORT: 'ses',
  SMS_TRANSPORT: 'sns',
};
/** What `npm start` gives the functions, less the tables. */
const localRuntime = {
  DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000',
  AUTH_ISSUER: 'http://127.0.0.1:3000',
  AUTH_CLIENT_IDS: '*',
  SERVICE_SIGNING_SECRET_BOOKINGS: signingSecret,
  ENCRYPTION_KEY: localKey,
  SQS_ENDPOINT: 'http://127.0.0.1:9324',
  SSRF_ALLOWLIST: '127.0.0.0/8,::1/128',
  VERIFICATION_LINK_SECRET: 'v'.repeat(43),
  EMAIL_TRANSPORT: 'smtp',
  SMTP_HOST: '127.0.0.1',
  SMS_TRANSPORT: 'outbox',
  USERS_API_URL: 'http://127.0.0.1:3000',
  APP_BASE_URL: 'http://127.0.0.1:3000',
};

describe('the local-only settings, in Lambda', () => {
  const refused = (names: string) => new Error(`Invalid function environment: ${names}`);

  it('refuses an unset stage and a DynamoDB endpoint, even to the health function, which reads only its tables', () => {
    expect(() => readTableEnvironment({ ...lambda, ...tables })).toThrow(
      refused('BULWARK_STAGE (required in Lambda)'),
    );
    for (const endpoint of ['http://127.0.0.1:8000', 'https://dynamodb.example.org', 'not a url']) {
      expect(() =>
        readTableEnvironment({ ...lambda, ...tables, BULWARK_STAGE: 'dev', DYNAMODB_ENDPOINT: endpoint }),
      ).toThrow(refused('DYNAMODB_ENDPOINT (local only: refused in Lambda)'));
    }
    expect(
      readTableEnvironment({ ...lambda, ...tables, BULWARK_STAGE: 'dev' }).dynamoDbEndpoint,
    ).toBeUndefined();
  });

  it('names every local-only setting of the local runtime at once, in either reader, and never a value', () => {
    const env = { ...lambda, ...tables, ...localRuntime };
    const all = [
      'AUTH_ISSUER (in Lambda: https on a public host)',
      'USERS_API_URL (in Lambda: https on a public host)',
      'APP_BASE_URL (in Lambda: https on a public host)',
      'SERVICE_SIGNING_SECRET_BOOKINGS (local only: refused in Lambda)',
      'ENCRYPTION_KEY (local only: refused in Lambda without ALLOW_LOCAL_KEY_IN_PRODUCTION=true)',
      'SQS_ENDPOINT (local only: refused in Lambda)',
      'SSRF_ALLOWLIST (local only: refused in Lambda)',
      'VERIFICATION_LINK_SECRET (local only: refused in Lambda)',
      'EMAIL_TRANSPORT (in Lambda: ses, or smtp with SMTP_CREDENTIALS_SECRET_ARN)',
      'SMS_TRANSPORT (in Lambda: sns)',
    ].join(', ');
    expect(() => readEnvironment(env)).toThrow(
      refused(
        `BULWARK_STAGE (required in Lambda), DYNAMODB_ENDPOINT (local only: refused in Lambda), ${all}`,
      ),
    );
    expect(() => readQueueEnvironment(env)).toThrow(refused(all));
  });

  it('refuses an issuer or JWKS URL that is plain http, localhost or a private address, and names it once', () => {
    for (const url of [
      'http://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1',
      'https://localhost:3000',
      'https://127.0.0.1:9001',
      'https://[::1]:3000',
      'https://10.0.0.5/realms/app',
      'https://169.254.169.254/latest',
    ]) {
      expect(() => readEnvironment({ ...lambda, ...deployed, AUTH_ISSUER: url }), url).toThrow(
        refused('AUTH_ISSUER (in Lambda: https on a public host)'),
      );
      expect(() => readEnvironment({ ...lambda, ...deployed, AUTH_JWKS_URI: url }), url).toThrow(
        refused('AUTH_JWKS_URI (in Lambda: https on a public host)'),
      );
    }
    expect(() => readEnvironment({ ...lambda, ...deployed, AUTH_ISSUER: 'not a url' })).toThrow(
      refused('AUTH_ISSUER'),
    );
  });

  it('refuses a users-service URL or email link base that is not https on a public host, and requires the link base where links are made', () => {
    const api = 'https://abc123.execute-api.eu-west-1.amazonaws.com/';
    for (const url of [
      'http://127.0.0.1:9001/',
      'https://localhost:3000',
      'https://10.0.0.5/',
      `http://${new URL(api).host}/`,
    ]) {
      expect(() => readEnvironment({ ...lambda, ...deployed, USERS_API_URL: url }), url).toThrow(
        refused('USERS_API_URL (in Lambda: https on a public host)'),
      );
      expect(
        () => readQueueEnvironment({ ...lambda, ...deployed, APP_BASE_URL: url }, { links: true }),
        url,
      ).toThrow(refused('APP_BASE_URL (in Lambda: https on a public host)'));
    }
    // Unset, the base would be the local runtime's http://127.0.0.1:3000 in every verification link.
    expect(() => readQueueEnvironment({ ...lambda, ...deployed }, { links: true })).toThrow(
      refused('APP_BASE_URL (required in Lambda)'),
    );
    expect(
      readQueueEnvironment({ ...lambda, ...deployed, APP_BASE_URL: api }, { links: true }).appBaseUrl,
    ).toBe(api);
    expect(readEnvironment({ ...lambda, ...deployed, USERS_API_URL: api }).usersApiUrl).toBe(api);
    // Outside Lambda, the local runtime's own.
    expect(readQueueEnvironment({ ...tables }, { links: true }).appBaseUrl).toBe('http://127.0.0.1:3000');
  });

  it('refuses the local key unless ALLOW_LOCAL_KEY_IN_PRODUCTION records that decision', () => {
    const withLocalKeys = {
      ...lambda,
      ...tables,
      BULWARK_STAGE: 'dev',
      ENCRYPTION_KEY: localKey,
      ENCRYPTION_PREVIOUS_KEYS: generateEncryptionKey(),
      ENCRYPTION_INDEX_KEY: generateEncryptionKey(),
    };
    const why = '(local only: refused in Lambda without ALLOW_LOCAL_KEY_IN_PRODUCTION=true)';
    expect(() => readEnvironment(withLocalKeys)).toThrow(
      refused(`ENCRYPTION_KEY ${why}, ENCRYPTION_PREVIOUS_KEYS ${why}, ENCRYPTION_INDEX_KEY ${why}`),
    );
    // Named once, though the schema refuses the value too.
    expect(() => readEnvironment({ ...withLocalKeys, ENCRYPTION_INDEX_KEY: 'short' })).toThrow(
      refused(`ENCRYPTION_KEY ${why}, ENCRYPTION_PREVIOUS_KEYS ${why}, ENCRYPTION_INDEX_KEY ${why}`),
    );
    // Set to false is no decision to allow it.
    expect(() => readEnvironment({ ...withLocalKeys, ALLOW_LOCAL_KEY_IN_PRODUCTION: 'false' })).toThrow(
      refused(`ENCRYPTION_KEY ${why}, ENCRYPTION_PREVIOUS_KEYS ${why}, ENCRYPTION_INDEX_KEY ${why}`),
    );
    const allowed = { ...withLocalKeys, ALLOW_LOCAL_KEY_IN_PRODUCTION: 'true' };
    expect(readEnvironment(allowed).encryption).toMatchObject({ localKey, allowLocalKeyInProduction: true });
  });

  it('requires the transports of the function that sends, whose unset ones are the SMTP sink and the outbox', () => {
    const { EMAIL_TRANSPORT: _email, SMS_TRANSPORT: _sms, ...unset } = deployed;
    expect(() => readQueueEnvironment({ ...lambda, ...unset }, { transports: true })).toThrow(
      refused(
        'EMAIL_TRANSPORT (in Lambda: ses, or smtp with SMTP_CREDENTIALS_SECRET_ARN), SMS_TRANSPORT (in Lambda: sns)',
      ),
    );
    // The functions that only enqueue get neither from the stack.
    expect(readQueueEnvironment({ ...lambda, ...unset }).sms.transport).toBe('outbox');
    // An SMTP relay, as the stack sets it: with its credentials secret.
    const relay = {
      ...lambda,
      ...deployed,
      EMAIL_TRANSPORT: 'smtp',
      SMTP_HOST: 'smtp.example.org',
      SMTP_CREDENTIALS_SECRET_ARN: secretArn('smtp'),
    };
    expect(readQueueEnvironment(relay, { transports: true }).smtp).toEqual({
      host: 'smtp.example.org',
      port: 1025,
      credentialsSecretArn: secretArn('smtp'),
    });
  });

  it("accepts the stack's settings, the same settings outside Lambda, and all of them in an emulator (BULWARK_STAGE=local)", () => {
    expect(readEnvironment({ ...lambda, ...deployed }).auth.serviceSecrets).toEqual({
      bookings: { secretArn: secretArn('signing') },
    });
    expect(readQueueEnvironment({ ...lambda, ...deployed }, { transports: true }).emailTransport).toBe('ses');
    for (const env of [
      { ...tables, ...localRuntime },
      { ...lambda, ...tables, ...localRuntime, BULWARK_STAGE: 'local' },
    ]) {
      expect(readEnvironment(env)).toMatchObject({
        dynamoDbEndpoint: 'http://127.0.0.1:8000',
        auth: { issuer: 'http://127.0.0.1:3000' },
      });
      expect(readQueueEnvironment(env, { transports: true })).toMatchObject({
        ssrfAllowlist: '127.0.0.0/8,::1/128',
        sms: { transport: 'outbox' },
      });
    }
  });

  it("fails the cold start of a deployed function given the local runtime's issuer and SSRF allowlist", async () => {
    // The tests' own DYNAMODB_ENDPOINT and ENCRYPTION_KEY (test/setup.ts) stay: local-only too.
    for (const [name, value] of Object.entries({
      ...lambda,
      BULWARK_STAGE: 'prod',
      KMS_KEY_ID: dataKeyArn,
      AUTH_ISSUER: 'http://127.0.0.1:3000',
      AUTH_CLIENT_IDS: '*',
      SSRF_ALLOWLIST: '127.0.0.0/8',
    })) {
      vi.stubEnv(name, value);
    }
    try {
      vi.resetModules();
      await expect(import('../../functions/webhooks/handler.js')).rejects.toThrow(
        refused(
          'DYNAMODB_ENDPOINT (local only: refused in Lambda), AUTH_ISSUER (in Lambda: https on a public host), ' +
            'ENCRYPTION_KEY (local only: refused in Lambda without ALLOW_LOCAL_KEY_IN_PRODUCTION=true), ' +
            'SSRF_ALLOWLIST (local only: refused in Lambda)',
        ),
      );
      // The control: the same function starts outside Lambda.
      vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', undefined);
      vi.resetModules();
      expect(typeof (await import('../../functions/webhooks/handler.js')).handler).toBe('function');
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe('readEnvironment', () => {
  it('reads the booking horizon in whole days, 365 when unset', () => {
    expect(readEnvironment(tables).bookingHorizonDays).toBe(365);
    expect(readEnvironment({ ...tables, BOOKING_HORIZON_DAYS: '30' }).bookingHorizonDays).toBe(30);
    for (const invalid of ['', '0', '1.5', '3651', 'a year']) {
      expect(() => readEnvironment({ ...tables, BOOKING_HORIZON_DAYS: invalid })).toThrow(
        new Error('Invalid function environment: BOOKING_HORIZON_DAYS'),
      );
    }
  });

  it("reads the unverified registrations' window in whole hours, 48 when unset", () => {
    expect(readEnvironment(tables).unverifiedUserTtlHours).toBe(48);
    expect(readEnvironment({ ...tables, UNVERIFIED_USER_TTL_HOURS: '1' }).unverifiedUserTtlHours).toBe(1);
    expect(readEnvironment({ ...tables, UNVERIFIED_USER_TTL_HOURS: '720' }).unverifiedUserTtlHours).toBe(720);
    for (const invalid of ['', '0', '1.5', '721', '2 days']) {
      expect(() => readEnvironment({ ...tables, UNVERIFIED_USER_TTL_HOURS: invalid })).toThrow(
        new Error('Invalid function environment: UNVERIFIED_USER_TTL_HOURS'),
      );
    }
  });

  it('reads where SMS codes may go and how many: US only, 100 an hour, half of them per region when unset', () => {
    expect(readEnvironment(tables).sms).toEqual({ regions: ['US'], perHour: 100, perRegionPerHour: 50 });
    expect(readEnvironment({ ...tables, SMS_REGIONS: 'GB,GG,JE,IM', SMS_PER_HOUR: '25' }).sms).toEqual({
      regions: ['GB', 'GG', 'JE', 'IM'],
      perHour: 25,
      perRegionPerHour: 13,
    });
    expect(readEnvironment({ ...tables, SMS_PER_REGION_PER_HOUR: '10' }).sms.perRegionPerHour).toBe(10);
    for (const [variable, invalid] of [
      ['SMS_REGIONS', ''],
      ['SMS_REGIONS', 'us'],
      ['SMS_REGIONS', 'US, GB'],
      ['SMS_REGIONS', 'USA'],
      ['SMS_REGIONS', 'US,'],
      ['SMS_PER_HOUR', '0'],
      ['SMS_PER_HOUR', ''],
      ['SMS_PER_HOUR', '1000001'],
      ['SMS_PER_REGION_PER_HOUR', '0.5'],
    ] as const) {
      expect(() => readEnvironment({ ...tables, [variable]: invalid })).toThrow(
        new Error(`Invalid function environment: ${variable}`),
      );
    }
  });

  it('refuses a blank number rather than reading it as 0', () => {
    for (const blank of ['', ' ']) {
      expect(() => readQueueEnvironment({ ...tables, WEBHOOK_DISABLE_AFTER_FAILING_HOURS: blank })).toThrow(
        'WEBHOOK_DISABLE_AFTER_FAILING_HOURS',
      );
      expect(() => readQueueEnvironment({ ...tables, SMTP_PORT: blank })).toThrow('SMTP_PORT');
    }
    expect(readQueueEnvironment({ ...tables, WEBHOOK_DISABLE_AFTER_FAILING_HOURS: '1.5' })).toMatchObject({
      webhook: { disableAfterFailingHours: 1.5 },
    });
  });

  it('refuses an APP_BASE_URL that is not http(s), the only links the email worker sends', () => {
    for (const invalid of [
      'javascript:alert(1)//',
      'ftp://app.example.com',
      'app.example.com',
      'httpx://app.example.com',
      'https-evil://x',
    ]) {
      expect(() => readQueueEnvironment({ ...tables, APP_BASE_URL: invalid })).toThrow(
        new Error('Invalid function environment: APP_BASE_URL'),
      );
    }
    expect(readQueueEnvironment({ ...tables, APP_BASE_URL: 'https://app.example.com' }).appBaseUrl).toBe(
      'https://app.example.com',
    );
  });

  it("reads the SES transport's configuration set, none when unset, and refuses a name SES would not take", () => {
    expect(readQueueEnvironment(tables).ses).toEqual({ configurationSetName: undefined });
    expect(readQueueEnvironment({ ...tables, SES_CONFIGURATION_SET: 'Email-Reputation_1' }).ses).toEqual({
      configurationSetName: 'Email-Reputation_1',
    });
    for (const invalid of ['', 'has space', 'a'.repeat(65), 'dots.not.allowed']) {
      expect(() => readQueueEnvironment({ ...tables, SES_CONFIGURATION_SET: invalid })).toThrow(
        new Error('Invalid function environment: SES_CONFIGURATION_SET'),
      );
    }
  });

  it('names the table problems together with the rest of the configuration', () => {
    expect(() => readEnvironment({ TOOLKIT_TABLE_NAME: 'toolkit', AUTH_ISSUER: 'not a url' })).toThrow(
      new Error('Invalid function environment: APP_TABLE_NAME, AUTH_ISSUER'),
    );
  });

  it('requires KMS_BLIND_INDEX_KEY_ID with KMS_KEY_ID only of a function that makes blind indexes', () => {
    const kms = { ...tables, KMS_KEY_ID: dataKeyArn };
    expect(() => readEnvironment(kms, { blindIndexes: true })).toThrow(
      new Error(
        'Invalid function environment: KMS_BLIND_INDEX_KEY_ID (required with KMS_KEY_ID for blind indexes)',
      ),
    );
    expect(readEnvironment(kms).encryption.kmsKeyId).toBe(dataKeyArn);
    const withIndexKey = { ...kms, KMS_BLIND_INDEX_KEY_ID: indexKeyArn };
    expect(readEnvironment(withIndexKey, { blindIndexes: true }).encryption.blindIndexKeyId).toBe(
      indexKeyArn,
    );
    const local = { ...tables, ENCRYPTION_KEY: generateEncryptionKey() };
    expect(readEnvironment(local, { blindIndexes: true }).encryption.kmsKeyId).toBeUndefined();
  });

  it('fails the users function at cold start, not at its first registration, without the blind-index key', async () => {
    vi.stubEnv('KMS_KEY_ID', dataKeyArn);
    try {
      vi.resetModules();
      await expect(import('../../functions/users/handler.js')).rejects.toThrow(/KMS_BLIND_INDEX_KEY_ID/);
      // The control: with the index key as well, the same cold start passes.
      vi.stubEnv('KMS_BLIND_INDEX_KEY_ID', indexKeyArn);
      vi.resetModules();
      expect(typeof (await import('../../functions/users/handler.js')).handler).toBe('function');
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });

  it('requires AUTH_AUDIENCE when token_use is not checked, and reads it as a list', () => {
    const issuer = { ...tables, AUTH_ISSUER: 'https://login.example.org/realms/app' };
    expect(() => readEnvironment({ ...issuer, AUTH_CLIENT_IDS: 'spa', AUTH_TOKEN_USE: 'any' })).toThrow(
      new Error('Invalid function environment: AUTH_AUDIENCE (required with AUTH_TOKEN_USE=any)'),
    );
    expect(() => readEnvironment({ ...issuer, AUTH_TOKEN_USE: 'any' })).toThrow(
      new Error(
        'Invalid function environment: AUTH_CLIENT_IDS (required with AUTH_ISSUER), AUTH_AUDIENCE (required with AUTH_TOKEN_USE=any)',
      ),
    );
    expect(() =>
      readEnvironment({ ...issuer, AUTH_CLIENT_IDS: 'spa', AUTH_TOKEN_USE: 'any', AUTH_AUDIENCE: 'a, b' }),
    ).toThrow(new Error('Invalid function environment: AUTH_AUDIENCE'));
    const any = { ...issuer, AUTH_CLIENT_IDS: 'spa', AUTH_TOKEN_USE: 'any' };
    expect(readEnvironment({ ...any, AUTH_AUDIENCE: 'https://api.example.org,bookings' }).auth).toMatchObject(
      {
        tokenUse: null,
        audience: ['https://api.example.org', 'bookings'],
      },
    );
    expect(readEnvironment({ ...issuer, AUTH_CLIENT_IDS: 'web' }).auth).toMatchObject({
      tokenUse: 'access',
      audience: undefined,
    });
  });

  it('keeps the tables it read next to the rest', () => {
    expect(readEnvironment({ ...tables, BULWARK_STAGE: 'dev' })).toMatchObject({
      appTableName: 'app',
      toolkitTableName: 'toolkit',
      dynamoDbEndpoint: undefined,
      encryption: { production: false },
    });
  });
});

/** The files and packages esbuild keeps in a function's bundle. */
async function bundledInputs(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    outdir: 'unused',
    metafile: true,
    logLevel: 'silent',
  });
  const [output] = Object.values(result.metafile.outputs);
  return Object.entries(output?.inputs ?? {})
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path);
}

it('leaves the schema library out of the health function, which reads only its tables', async () => {
  const kept = await bundledInputs('functions/health/handler.ts');
  expect(kept).toContain('functions/shared/table-environment.ts');
  expect(kept.filter((path) => path.includes('node_modules/zod/'))).toEqual([]);
});

it('leaves the schema library, the SSRF guard and the endpoint store out of the booking event sweeper', async () => {
  const kept = await bundledInputs('functions/booking-event-sweeper/handler.ts');
  expect(kept).toContain('functions/booking-event-sweeper/environment.ts');
  expect(kept).toContain('functions/shared/webhook-subscriptions.ts');
  expect(
    kept.filter((path) =>
      ['node_modules/zod/', 'node_modules/ipaddr.js/', 'ssrf-guard.ts', 'webhook-store.ts'].some((left) =>
        path.includes(left),
      ),
    ),
  ).toEqual([]);
});

it('leaves the endpoint store out of the bookings function, which only publishes events', async () => {
  const kept = await bundledInputs('functions/bookings/handler.ts');
  expect(kept).toContain('functions/shared/webhook-subscriptions.ts');
  expect(kept.filter((path) => path.includes('webhook-store.ts'))).toEqual([]);
});

it('reads the webhook queue variables the same way in the queue reader as in the sweeper', () => {
  expect(() =>
    readQueueEnvironment({ ...tables, SQS_ENDPOINT: 'ftp://127.0.0.1:9324', WEBHOOK_QUEUE_URL: 'queue' }),
  ).toThrow(new Error('Invalid function environment: SQS_ENDPOINT, WEBHOOK_QUEUE_URL'));
  const queueUrl = 'http://127.0.0.1:9324/000000000000/webhook';
  expect(
    readQueueEnvironment({ ...tables, SQS_ENDPOINT: 'http://127.0.0.1:9324', WEBHOOK_QUEUE_URL: queueUrl }),
  ).toMatchObject({ sqsEndpoint: 'http://127.0.0.1:9324', webhook: { queueUrl } });
});

describe('readSweeperEnvironment', () => {
  it("reads its tables, the webhook queue and the grace, 60 s when unset (past the bookings function's timeout)", () => {
    expect(readSweeperEnvironment(tables)).toEqual({
      appTableName: 'app',
      toolkitTableName: 'toolkit',
      dynamoDbEndpoint: undefined,
      sqsEndpoint: undefined,
      webhook: { queueUrl: undefined },
      bookingEventGraceSec: 60,
    });
    expect(defaultBookingEventGraceSec).toBeGreaterThan(httpFunctions.bookings.timeoutSec);
    const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/111122223333/webhook';
    expect(
      readSweeperEnvironment({
        ...tables,
        SQS_ENDPOINT: 'http://127.0.0.1:9324',
        WEBHOOK_QUEUE_URL: queueUrl,
        BOOKING_EVENT_GRACE_SEC: '0',
      }),
    ).toMatchObject({ sqsEndpoint: 'http://127.0.0.1:9324', webhook: { queueUrl }, bookingEventGraceSec: 0 });
    expect(readSweeperEnvironment({ ...tables, BOOKING_EVENT_GRACE_SEC: '86400' }).bookingEventGraceSec).toBe(
      86_400,
    );
  });

  it('names every invalid variable at once and no value', () => {
    for (const invalid of ['', '-1', '1.5', '86401', 'a minute', ' 60']) {
      expect(() => readSweeperEnvironment({ ...tables, BOOKING_EVENT_GRACE_SEC: invalid }), invalid).toThrow(
        new Error('Invalid function environment: BOOKING_EVENT_GRACE_SEC'),
      );
    }
    expect(() =>
      readSweeperEnvironment({
        TOOLKIT_TABLE_NAME: 'toolkit',
        SQS_ENDPOINT: 'ftp://127.0.0.1:9324',
        WEBHOOK_QUEUE_URL: 'not a url',
        BOOKING_EVENT_GRACE_SEC: 'soon',
      }),
    ).toThrow(
      new Error(
        'Invalid function environment: APP_TABLE_NAME, SQS_ENDPOINT, WEBHOOK_QUEUE_URL, BOOKING_EVENT_GRACE_SEC',
      ),
    );
  });

  it('refuses in Lambda the local SQS endpoint and an unset stage, as the other readers do', () => {
    expect(() =>
      readSweeperEnvironment({ ...lambda, ...tables, SQS_ENDPOINT: 'http://127.0.0.1:9324' }),
    ).toThrow(
      new Error(
        'Invalid function environment: BULWARK_STAGE (required in Lambda), SQS_ENDPOINT (local only: refused in Lambda)',
      ),
    );
    expect(
      readSweeperEnvironment({
        ...lambda,
        ...tables,
        BULWARK_STAGE: 'prod',
        WEBHOOK_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/webhook',
      }).webhook.queueUrl,
    ).toBe('https://sqs.eu-west-1.amazonaws.com/111122223333/webhook');
  });
});
