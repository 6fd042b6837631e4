// loadConfig: environment first, then the JSON secret; one error naming every bad key, never a value.
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { createConfigLoader, loadConfig } from '../../middleware/config/load-config.js';
import { SecretStore } from '../../middleware/config/secrets.js';
import { ConfigError, InvalidOptionsError } from '../../middleware/errors.js';
import type { SecurityEvent } from '../../middleware/events.js';

const secretsManager = mockClient(SecretsManagerClient);
let secretJson: string;

beforeEach(() => {
  secretJson = JSON.stringify({
    DB_PASSWORD: 'pa55word-from-secret',
    API_TOKEN: 'tok-from-secret',
    PORT: 5432,
  });
  secretsManager.reset();
  secretsManager.on(GetSecretValueCommand).callsFake(async () => ({ SecretString: secretJson }));
});

afterEach(() => {
  vi.useRealTimers();
});

const fetches = () => secretsManager.commandCalls(GetSecretValueCommand).length;

const schema = z.object({
  DB_HOST: z.string().min(1),
  DB_PASSWORD: z.string().min(8),
  API_TOKEN: z.string().min(6),
  PORT: z.coerce.number().int().min(1).max(65_535),
  DEBUG: z.stringbool().default(false),
});

describe('loadConfig precedence', () => {
  it('takes each key from the environment first and the rest from the secret', async () => {
    const config = await loadConfig(schema, {
      secretId: 'bulwark/config',
      env: { DB_HOST: 'db.internal', API_TOKEN: 'tok-from-env', DEBUG: 'true' },
    });
    expect(config).toEqual({
      DB_HOST: 'db.internal',
      DB_PASSWORD: 'pa55word-from-secret',
      API_TOKEN: 'tok-from-env',
      PORT: 5432,
      DEBUG: true,
    });
  });

  it('does not call Secrets Manager when the environment has every key', async () => {
    const env = { DB_HOST: 'h', DB_PASSWORD: 'pa55word', API_TOKEN: 'tok-123', PORT: '80', DEBUG: 'no' };
    expect(await loadConfig(schema, { secretId: 'bulwark/config', env })).toMatchObject({
      PORT: 80,
      DEBUG: false,
    });
    expect(fetches()).toBe(0);
  });

  it('treats an empty environment value as absent', async () => {
    const config = await loadConfig(schema, {
      secretId: 'bulwark/config',
      env: { DB_HOST: 'h', API_TOKEN: '' },
    });
    expect(config.API_TOKEN).toBe('tok-from-secret');
  });

  it('reads process.env by default and works without a secret', async () => {
    vi.stubEnv('BULWARK_TEST_URL', 'https://partner.example');
    const config = await loadConfig(z.object({ BULWARK_TEST_URL: z.url() }));
    expect(config.BULWARK_TEST_URL).toBe('https://partner.example');
    vi.unstubAllEnvs();
  });

  it('reports the secret fetch through onEvent, by name and stage only', async () => {
    const events: SecurityEvent[] = [];
    await loadConfig(schema, {
      secretId: 'bulwark/config',
      env: { DB_HOST: 'h' },
      onEvent: (event) => events.push(event),
    });
    expect(events).toEqual([
      {
        type: 'secret.accessed',
        metadata: { name: 'bulwark/config', versionStage: 'AWSCURRENT', outcome: 'ok' },
      },
    ]);
  });
});

describe('loadConfig validation', () => {
  it('lists every missing and invalid key in one ConfigError without printing any value', async () => {
    secretJson = JSON.stringify({ DB_PASSWORD: 'short', PORT: 'not-a-port' });
    const error = await loadConfig(schema, {
      secretId: 'bulwark/config',
      env: { API_TOKEN: 'tok', DEBUG: 'maybe' },
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((problem) => problem.key);
    expect(problems.sort()).toEqual(['API_TOKEN', 'DB_HOST', 'DB_PASSWORD', 'DEBUG', 'PORT']);
    const rendered = `${String(error)} ${JSON.stringify(error)}`;
    for (const value of ['short', 'not-a-port', 'maybe']) expect(rendered).not.toContain(value);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
  });

  it('says a key set nowhere is Required, as validateInput says of a field not sent', async () => {
    const error = await loadConfig(z.object({ A: z.string(), B: z.string().min(3) }), {
      env: { B: 'x' },
    }).catch((caught: unknown) => caught);
    expect((error as ConfigError).problems).toEqual([
      { key: 'A', message: 'Required' },
      { key: 'B', message: 'Too small: expected string to have >=3 characters' },
    ]);
  });

  it('masks a value that a custom rule quotes in its message', async () => {
    const quoting = z.object({
      TOKEN: z
        .string()
        .refine((value) => value.startsWith('tok_'), { error: (issue) => `bad token ${issue.input}` }),
    });
    const error = await loadConfig(quoting, { env: { TOKEN: 'hunter2-secret' } }).catch(
      (caught: unknown) => caught,
    );
    expect((error as ConfigError).problems).toEqual([{ key: 'TOKEN', message: 'bad token [redacted]' }]);
  });

  it('works with any Standard Schema when the keys are given, and demands them otherwise', async () => {
    const standard: StandardSchemaV1<unknown, { A: string }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (value) => {
          const input = value as Record<string, unknown>;
          return typeof input.A === 'string'
            ? { value: { A: input.A } }
            : { issues: [{ message: 'Required', path: [{ key: 'A' }] }, { message: 'Whole object is odd' }] };
        },
      },
    };
    expect(await loadConfig(standard, { keys: ['A'], env: { A: 'x' } })).toEqual({ A: 'x' });
    const error = await loadConfig(standard, { keys: ['A'], env: {} }).catch((caught: unknown) => caught);
    expect((error as ConfigError).problems.map((problem) => problem.key)).toEqual(['A', '(root)']);
    expect(() => createConfigLoader(standard)).toThrow(InvalidOptionsError);
  });

  it('rejects invalid options at construction', () => {
    expect(() => createConfigLoader({} as StandardSchemaV1, { secretId: '', maxAgeSec: -5 })).toThrow(
      /schema must be a Standard Schema; secretId must not be empty; maxAgeSec must be >= 0/,
    );
  });

  it('refuses keys given as one name, which would otherwise be looked up letter by letter', () => {
    const schema = z.object({ PARTNER_URL: z.string() });
    expect(() => createConfigLoader(schema, { keys: 'PARTNER_URL' as never })).toThrow(
      new InvalidOptionsError('loadConfig', [
        'keys must be an array of configuration key names (got "PARTNER_URL")',
      ]),
    );
    expect(() => createConfigLoader(schema, { keys: ['PARTNER_URL', ''] })).toThrow(
      new InvalidOptionsError('loadConfig', ['keys entries must be non-empty names (got "")']),
    );
    // Only undefined takes the schema's keys: a null would be walked at the first load().
    expect(() => createConfigLoader(schema, { keys: null as never })).toThrow(
      new InvalidOptionsError('loadConfig', ['keys must be an array of configuration key names (got null)']),
    );
  });

  it('refuses an onEvent that is not a function, whose secret.accessed events would be lost', () => {
    expect(() => createConfigLoader(z.object({ A: z.string() }), { onEvent: {} as never })).toThrow(
      new InvalidOptionsError('loadConfig', ['onEvent must be a function']),
    );
  });

  it('passes a secret-store failure through, typed', async () => {
    for (const notAnObject of ['not json', '["a list"]', 'null']) {
      secretJson = notAnObject;
      await expect(loadConfig(schema, { secretId: 'bulwark/config', env: {} })).rejects.toMatchObject({
        code: 'SECRET_UNAVAILABLE',
        reason: 'not_json',
      });
    }
  });
});

describe('createConfigLoader caching', () => {
  it('reuses the loaded configuration until maxAge, then reads the secret again', async () => {
    vi.useFakeTimers();
    const loader = createConfigLoader(schema, {
      secretId: 'bulwark/config',
      env: { DB_HOST: 'h' },
      maxAgeSec: 60,
    });
    const first = await loader.load();
    expect(await loader.load()).toBe(first);
    expect(fetches()).toBe(1);
    secretJson = JSON.stringify({ DB_PASSWORD: 'rotated-password', API_TOKEN: 'tok-222', PORT: 1 });
    vi.advanceTimersByTime(61_000);
    expect((await loader.load()).DB_PASSWORD).toBe('rotated-password');
    expect(fetches()).toBe(2);
  });

  it('shares one load between concurrent callers and keeps environment-only configuration for good', async () => {
    vi.useFakeTimers();
    const loader = createConfigLoader(z.object({ A: z.string() }), { env: { A: 'x' }, maxAgeSec: 1 });
    const [one, two] = await Promise.all([loader.load(), loader.load()]);
    expect(one).toBe(two);
    vi.advanceTimersByTime(10_000);
    expect(await loader.load()).toBe(one);
  });

  it('forgets a failed load so the next call retries', async () => {
    const env: Record<string, string> = {};
    const loader = createConfigLoader(z.object({ A: z.string() }), { env });
    await expect(loader.load()).rejects.toBeInstanceOf(ConfigError);
    env.A = 'now set';
    expect(await loader.load()).toEqual({ A: 'now set' });
  });

  it("serves a shared store's value no longer than maxAge after it was fetched, not after the loader read it", async () => {
    vi.useFakeTimers();
    const secrets = new SecretStore({ maxAgeSec: 300 });
    const options = { secretId: 'bulwark/config', env: { DB_HOST: 'h' }, secrets, maxAgeSec: 300 };
    await createConfigLoader(schema, options).load();
    // Another loader reads the same store just before its copy expires, then the secret rotates.
    vi.advanceTimersByTime(299_000);
    const late = createConfigLoader(schema, options);
    expect((await late.load()).DB_PASSWORD).toBe('pa55word-from-secret');
    secretJson = JSON.stringify({ DB_PASSWORD: 'rotated-password', API_TOKEN: 'tok-222', PORT: 1 });
    vi.advanceTimersByTime(2_000);
    expect((await late.load()).DB_PASSWORD).toBe('rotated-password');
    expect(fetches()).toBe(2);
  });

  it('builds the configuration from the same read of the secret its cache is keyed by', async () => {
    // maxAgeSec 0: every read fetches, as when the store's copy expires between two reads.
    let rotation = 0;
    secretsManager.on(GetSecretValueCommand).callsFake(async () => {
      rotation += 1;
      return {
        SecretString: JSON.stringify({ DB_PASSWORD: `password-v${rotation}`, API_TOKEN: 'tok-123', PORT: 1 }),
      };
    });
    const loader = createConfigLoader(schema, {
      secretId: 'bulwark/config',
      env: { DB_HOST: 'h' },
      maxAgeSec: 0,
    });
    expect((await loader.load()).DB_PASSWORD).toBe('password-v1');
    expect(fetches()).toBe(1);
  });

  it('uses a given SecretStore', async () => {
    const secrets = new SecretStore();
    await loadConfig(schema, { secretId: 'bulwark/config', env: { DB_HOST: 'h' }, secrets });
    await loadConfig(schema, { secretId: 'bulwark/config', env: { DB_HOST: 'h' }, secrets });
    expect(fetches()).toBe(1);
  });
});
