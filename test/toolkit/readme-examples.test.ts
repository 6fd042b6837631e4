// The README examples kept in test/toolkit/readme-examples/: each file is its README block, but for the
// import path and the scaffolding it imports, so tsc checks the block and these tests run it, and a change
// to either side that the other does not follow fails here.
import { readdirSync, readFileSync } from 'node:fs';
import {
  GetSecretValueCommand,
  type GetSecretValueCommandInput,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ForbiddenError, generateEncryptionKey, localProviderId } from '../../middleware/index.js';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { testPrincipal } from '../helpers/principals.js';
import { events, invites } from './readme-examples/scaffolding.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const examplesFolder = new URL('./readme-examples/', import.meta.url);
const exampleFiles = readdirSync(examplesFolder).filter((name) => name !== 'scaffolding.ts');

/** A file as the README shows it: no header comment, no scaffolding import, imports from ./middleware. */
function asReadmeBlock(source: string): string {
  const lines = source.split('\n');
  const firstCode = lines.findIndex((line) => !line.startsWith('//'));
  return lines
    .slice(firstCode)
    .filter((line) => !line.includes("from './scaffolding.js'"))
    .join('\n')
    .replaceAll("'../../../middleware/index.js'", "'./middleware/index.js'");
}

describe('the README examples in readme-examples/', () => {
  it('are found', () => {
    expect(exampleFiles.sort()).toEqual([
      'config.ts',
      'dev-issuer.ts',
      'errors.ts',
      'guards.ts',
      'key-provider.ts',
    ]);
  });

  it.each(exampleFiles)('%s is a ```ts block of README.md, as it is', (name) => {
    const block = asReadmeBlock(readFileSync(new URL(name, examplesFolder), 'utf8'));
    expect(block).toContain("from './middleware/index.js'");
    const inReadme = readme.includes(`\`\`\`ts\n${block}\`\`\`\n`);
    expect(inReadme, `README.md has no \`\`\`ts block equal to readme-examples/${name}`).toBe(true);
  });
});

describe('the errors example', () => {
  const invite = async (method: string, code: string) => {
    const { handler } = await import('./readme-examples/errors.js');
    const event = httpEvent({ method, path: `/invites/${code}` });
    event.pathParameters = { code };
    const response = await handler(event, lambdaContext());
    return { ...response, problem: JSON.parse(response.body ?? '{}') as { code?: string; team?: string } };
  };

  it('answers each class with its status, code and headers', async () => {
    invites.byCode.set('open', { team: 'blue', failedAttempts: 0 });
    invites.byCode.set('used', { team: 'blue', acceptedAt: '2030-01-01T00:00:00Z', failedAttempts: 0 });
    invites.byCode.set('guessed', { team: 'blue', failedAttempts: 5 });

    expect(await invite('GET', 'open')).toMatchObject({
      statusCode: 405,
      headers: { Allow: 'POST', 'Content-Type': 'application/problem+json' },
      problem: { code: 'METHOD_NOT_ALLOWED' },
    });
    expect(await invite('POST', 'nope')).toMatchObject({ statusCode: 404, problem: { code: 'NOT_FOUND' } });
    expect(await invite('POST', 'used')).toMatchObject({ statusCode: 410, problem: { code: 'GONE' } });
    expect(await invite('POST', 'guessed')).toMatchObject({
      statusCode: 429,
      headers: { 'Retry-After': '600' },
      problem: { code: 'TOO_MANY_REQUESTS' },
    });
    expect(await invite('POST', 'open')).toMatchObject({ statusCode: 200, problem: { team: 'blue' } });
  });
});

describe('the guards example', () => {
  beforeEach(() => {
    events.length = 0;
  });

  it('lets the owner and the roles through, and refuses anyone else with a reported 403', async () => {
    const { assertMayRead } = await import('./readme-examples/guards.js');
    const booking = { userId: 'u-1' };
    expect(() => assertMayRead(testPrincipal({ id: 'u-1' }), booking)).not.toThrow();
    expect(() => assertMayRead(testPrincipal({ roles: ['support'] }), booking)).not.toThrow();
    expect(events).toEqual([]);

    const stranger = testPrincipal({ roles: ['viewer'] });
    expect(() => assertMayRead(stranger, booking)).toThrow(
      new ForbiddenError('Requires role admin or support'),
    );
    expect(events).toEqual([{ type: 'access.denied', reason: 'missing_role', principal: stranger }]);
  });
});

describe('the dev issuer example', () => {
  it('mints tokens its verifier accepts, a person and a machine', async () => {
    const { adminToken, machineToken, verifier } = await import('./readme-examples/dev-issuer.js');
    expect((await verifier.verify(adminToken)).principal).toMatchObject({
      id: 'alice',
      isM2M: false,
      roles: ['admin'],
      tenantId: 'acme',
    });
    expect((await verifier.verify(machineToken)).principal).toMatchObject({
      id: 'svc-reports',
      isM2M: true,
      scopes: ['reports/read'],
    });
  });
});

describe('the key provider example', () => {
  const variables = [
    'KMS_KEY_ID',
    'KMS_DECRYPT_KEY_IDS',
    'KMS_BLIND_INDEX_KEY_ID',
    'ENCRYPTION_KEY',
    'ENCRYPTION_PREVIOUS_KEYS',
    'ENCRYPTION_INDEX_KEY',
    'BULWARK_STAGE',
    'ALLOW_LOCAL_KEY_IN_PRODUCTION',
  ];
  const saved = Object.fromEntries(variables.map((name) => [name, process.env[name]]));
  afterAll(() => {
    for (const name of variables) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('takes the local key when no KMS key is configured, and seals with it', async () => {
    for (const name of variables) delete process.env[name];
    process.env.ENCRYPTION_KEY = generateEncryptionKey();
    const { encryptor, testEncryptor } = await import('./readme-examples/key-provider.js');
    for (const sealing of [encryptor, testEncryptor]) {
      const context = { tenantId: 'acme', userId: 'u-1' };
      const sealed = await sealing.encryptFields({ email: 'a@example.com' }, ['email'], context);
      const header = Buffer.from((sealed as unknown as { _dataKey: Uint8Array })._dataKey);
      expect(header.includes(localProviderId)).toBe(true);
      expect(await sealing.decryptFields(sealed, ['email'], context)).toEqual({ email: 'a@example.com' });
    }
  });
});

describe('the configuration example', () => {
  const secretsManager = mockClient(SecretsManagerClient);
  const saved = process.env.PARTNER_URL;
  afterAll(() => {
    secretsManager.restore();
    if (saved === undefined) delete process.env.PARTNER_URL;
    else process.env.PARTNER_URL = saved;
  });

  it('reads the environment first and the secret for the rest, and getSecret through the configured store', async () => {
    const secrets: Record<string, string> = {
      'bulwark/partner': JSON.stringify({
        PARTNER_URL: 'https://ignored.example',
        PARTNER_TOKEN: 't'.repeat(24),
      }),
      'bulwark/partner-webhook-key': 'whk-1',
    };
    secretsManager.on(GetSecretValueCommand).callsFake(async ({ SecretId }: GetSecretValueCommandInput) => ({
      SecretString: secrets[SecretId ?? ''],
    }));
    process.env.PARTNER_URL = 'https://partner.example/api/';
    events.length = 0;

    const { partnerRequest, partnerWebhookKey } = await import('./readme-examples/config.js');
    const request = await partnerRequest('orders');
    expect(request.url).toBe('https://partner.example/api/orders');
    expect(request.headers.get('authorization')).toBe(`Bearer ${'t'.repeat(24)}`);
    expect(await partnerWebhookKey()).toBe('whk-1');
    expect(events.map((event) => [event.type, event.metadata?.name])).toEqual([
      ['secret.accessed', 'bulwark/partner'],
      ['secret.accessed', 'bulwark/partner-webhook-key'],
    ]);
  });
});
