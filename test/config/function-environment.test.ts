// The sample functions' environment readers: every problem named at once, never a value, and health without a schema library.
import { build } from 'esbuild';
import { describe, expect, it, vi } from 'vitest';
import { httpFunctions } from '../../functions/routes.js';
import {
  defaultBookingEventGraceSec,
  readEnvironment,
  readQueueEnvironment,
} from '../../functions/shared/environment.js';
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

  it("reads the booking events' grace in whole seconds, 60 when unset (past the bookings function's timeout), 0 allowed", () => {
    expect(readEnvironment(tables).bookingEventGraceSec).toBe(60);
    expect(defaultBookingEventGraceSec).toBeGreaterThan(httpFunctions.bookings.timeoutSec);
    expect(readEnvironment({ ...tables, BOOKING_EVENT_GRACE_SEC: '0' }).bookingEventGraceSec).toBe(0);
    expect(readEnvironment({ ...tables, BOOKING_EVENT_GRACE_SEC: '86400' }).bookingEventGraceSec).toBe(
      86_400,
    );
    for (const invalid of ['', '-1', '1.5', '86401', 'a minute']) {
      expect(() => readEnvironment({ ...tables, BOOKING_EVENT_GRACE_SEC: invalid })).toThrow(
        new Error('Invalid function environment: BOOKING_EVENT_GRACE_SEC'),
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

it('leaves the schema library out of the health function, which reads only its tables', async () => {
  const result = await build({
    entryPoints: ['functions/health/handler.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    outdir: 'unused',
    metafile: true,
    logLevel: 'silent',
  });
  const [output] = Object.values(result.metafile.outputs);
  const kept = Object.entries(output?.inputs ?? {})
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path);
  expect(kept).toContain('functions/shared/table-environment.ts');
  expect(kept.filter((path) => path.includes('node_modules/zod/'))).toEqual([]);
});
