import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { HelpRequested } from '../../bin/command.js';
import { mintFromCommandLine, parseTokenArguments } from '../../bin/token.js';
import { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import { InvalidArgumentError, InvalidOptionsError } from '../../middleware/errors.js';
import { thrownBy } from '../encryption/helpers.js';

const issuerUrl = 'http://127.0.0.1:3999';
const tempDir = () => mkdtempSync(join(tmpdir(), 'bulwark-dev-issuer-'));
const deleteHint = 'delete it to make a new key (tokens signed with the old one stop verifying)';

/**
 * A key file made by the issuer, then damaged as a stray keystroke would: an `x` before the private
 * exponent's value. V8's message for that quotes the text around it, and names no position.
 */
function damagedKeyFile(dataDir: string): { keyFile: string; privateStart: string } {
  const keyFile = join(dataDir, 'dev-issuer-key.json');
  new DevIssuer({ issuer: issuerUrl, keyFile });
  const text = readFileSync(keyFile, 'utf8');
  const privateStart = (JSON.parse(text) as { privateJwk: { d: string } }).privateJwk.d.slice(0, 8);
  writeFileSync(keyFile, text.replace('"d":"', '"d":x"'));
  expect(() => JSON.parse(readFileSync(keyFile, 'utf8'))).toThrow(privateStart);
  return { keyFile, privateStart };
}

function verifierFor(issuer: DevIssuer): JwtVerifier {
  return new JwtVerifier({
    issuers: [
      {
        issuer: issuer.issuer,
        tokenUse: ['access', 'id'],
        clientId: null,
        jwks: issuer.jwks(),
        jwksUri: null,
      },
    ],
  });
}

describe('DevIssuer', () => {
  it("mints a human user's Cognito-shaped access token that the verifier accepts", async () => {
    const issuer = new DevIssuer({ issuer: `${issuerUrl}/` });
    const token = await issuer.mint({
      sub: 'alice',
      roles: ['admin'],
      tenant: 't1',
      email: 'alice@example.com',
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', kid: issuer.kid, typ: 'JWT' });
    expect(decodeJwt(token)).toMatchObject({
      iss: issuerUrl,
      sub: 'alice',
      username: 'alice',
      token_use: 'access',
      client_id: 'bulwark-local',
      'cognito:groups': ['admin'],
      'custom:tenant_id': 't1',
    });
    const { principal } = await verifierFor(issuer).verify(token);
    expect(principal).toMatchObject({
      id: 'alice',
      isM2M: false,
      roles: ['admin'],
      tenantId: 't1',
      email: 'alice@example.com',
    });
  });

  it('mints an M2M token with no user claims, whose principal is the client', async () => {
    const issuer = new DevIssuer({ issuer: issuerUrl });
    const token = await issuer.mint({
      m2m: true,
      clientId: 'svc-bookings',
      scopes: ['bookings/write'],
      roles: ['ignored'],
    });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'svc-bookings', client_id: 'svc-bookings', scope: 'bookings/write' });
    expect(claims).not.toHaveProperty('username');
    expect(claims).not.toHaveProperty('cognito:groups');
    expect((await verifierFor(issuer).verify(token)).principal).toMatchObject({
      id: 'svc-bookings',
      isM2M: true,
    });
  });

  it('mints id tokens naming the client in aud', async () => {
    const issuer = new DevIssuer({ issuer: issuerUrl });
    const claims = decodeJwt(await issuer.mint({ tokenUse: 'id' }));
    expect(claims).toMatchObject({ token_use: 'id', aud: 'bulwark-local', 'cognito:username': 'dev-user' });
  });

  it('keeps its key in an owner-only file and reuses it', async () => {
    const keyFile = join(tempDir(), 'nested', 'key.json');
    const first = new DevIssuer({ issuer: issuerUrl, keyFile });
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const second = new DevIssuer({ issuer: issuerUrl, keyFile });
    expect(second.kid).toBe(first.kid);
    await expect(verifierFor(first).verify(await second.mint())).resolves.toBeDefined();
  });

  it('rejects an issuer that is not a URL', () => {
    expect(() => new DevIssuer({ issuer: 'not a url' })).toThrow(InvalidOptionsError);
  });

  it("refuses a key file that is not JSON by its path, never quoting its private key as the parser's message does", () => {
    const { keyFile, privateStart } = damagedKeyFile(tempDir());
    const damaged = readFileSync(keyFile, 'utf8');
    const error = thrownBy(() => new DevIssuer({ issuer: issuerUrl, keyFile }));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(`Invalid DevIssuer options: ${keyFile} is not JSON; ${deleteHint}`);
    expect(error.message).not.toContain(privateStart);
    expect(error.cause).toBeUndefined();
    // The file stays as it was, for its owner to look at or delete.
    expect(readFileSync(keyFile, 'utf8')).toBe(damaged);
  });

  it.each([
    ['null', 'null'],
    ['no kid', '{"privateJwk":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"PRIVATE-d"}}'],
    ['a JWK that is no key', '{"kid":"dev-1","privateJwk":{"kty":"RSA","n":"x","e":"AQAB","d":"PRIVATE-d"}}'],
    ['a public key only', JSON.stringify({ kid: 'dev-1', privateJwk: { kty: 'RSA', n: 'x', e: 'AQAB' } })],
  ])('refuses a key file holding JSON but no RSA key (%s), never quoting it', (_, text) => {
    const keyFile = join(tempDir(), 'dev-issuer-key.json');
    writeFileSync(keyFile, text);
    const error = thrownBy(() => new DevIssuer({ issuer: issuerUrl, keyFile }));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(
      `Invalid DevIssuer options: ${keyFile} holds no RSA signing key (kid and privateJwk); ${deleteHint}`,
    );
    expect(readFileSync(keyFile, 'utf8')).toBe(text);
  });

  it('refuses a key file holding an EC key: it signs RS256 only', () => {
    const keyFile = join(tempDir(), 'dev-issuer-key.json');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(
      keyFile,
      JSON.stringify({ kid: 'dev-1', privateJwk: privateKey.export({ format: 'jwk' }) }),
    );
    expect(() => new DevIssuer({ issuer: issuerUrl, keyFile })).toThrow(
      `${keyFile} holds no RSA signing key (kid and privateJwk)`,
    );
  });

  it('refuses to mint roles or scopes given as one string, a lifetime that is no number or an unknown token use', async () => {
    const issuer = new DevIssuer({ issuer: issuerUrl, keyFile: join(tempDir(), 'key.json') });
    await expect(
      issuer.mint({
        roles: 'admin' as never,
        scopes: ['bookings/read', ''],
        expiresInSec: '60' as never,
        tokenUse: 'refresh' as never,
      }),
    ).rejects.toThrow(
      new InvalidArgumentError(
        'Cannot mint that token: roles must be an array of names (got "admin"); scopes entries must be non-empty strings (got ""); expiresInSec must be a number of seconds (got "60"); tokenUse must be \'access\' or \'id\' (got "refresh")',
      ),
    );
  });
});

describe('npm run token', () => {
  it('reads the README command lines', () => {
    expect(parseTokenArguments(['--sub', 'alice', '--roles', 'admin', '--tenant', 't1']).token).toMatchObject(
      {
        sub: 'alice',
        roles: ['admin'],
        tenant: 't1',
        m2m: false,
        tokenUse: 'access',
      },
    );
    expect(
      parseTokenArguments([
        '--m2m',
        '--client-id',
        'svc-bookings',
        '--scope',
        'bookings/write',
        '--scope',
        'a/b c/d',
      ]).token,
    ).toMatchObject({ m2m: true, clientId: 'svc-bookings', scopes: ['bookings/write', 'a/b', 'c/d'] });
    expect(parseTokenArguments(['--id-token', '--issuer', 'http://127.0.0.1:4000']).issuer).toBe(
      'http://127.0.0.1:4000',
    );
  });

  it('refuses unknown options, bad lifetimes and --sub with --m2m, showing the usage', () => {
    expect(() => parseTokenArguments(['--bogus'])).toThrow();
    expect(() => parseTokenArguments(['--expires-in', 'soon'])).toThrow(/Usage/);
    expect(() => parseTokenArguments(['--m2m', '--sub', 'x'])).toThrow(/Usage/);
  });

  it("names the runtime's PORT in the issuer, and refuses a PORT that is no port the runtime can serve on unless --issuer is given", () => {
    const shellPort = process.env.PORT;
    try {
      process.env.PORT = '3001';
      expect(parseTokenArguments([]).issuer).toBe('http://127.0.0.1:3001');
      // Each once made a token naming no port, which every function then refused as another issuer's.
      for (const port of ['abc', '0', '', '99999', '3000 ', '03000']) {
        process.env.PORT = port;
        expect(() => parseTokenArguments([]), port).toThrow(
          `PORT must be a whole number from 1 to 65535, no leading zero: the runtime's port (its banner's commands carry it) (got ${JSON.stringify(port)}), or give --issuer`,
        );
        expect(parseTokenArguments(['--issuer', 'http://127.0.0.1:4000']).issuer).toBe(
          'http://127.0.0.1:4000',
        );
      }
    } finally {
      if (shellPort === undefined) delete process.env.PORT;
      else process.env.PORT = shellPort;
    }
  });

  it('answers --help with the usage on stdout and exit code 0', () => {
    expect(() => parseTokenArguments(['--help'])).toThrow(HelpRequested);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/token.ts', '--help'], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage:/);
  });

  it('says the token went unread, without a stack trace, when its reader closes the pipe first', async () => {
    // As in a pasted `npm run -s token -- --sub bob | --m2m …`, whose second "command" reads nothing.
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/token.ts', '--sub', 'bob'], {
      env: { ...process.env, BULWARK_DATA_DIR: tempDir() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exitCode = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(stderr).toBe('npm run token: the output closed before the token was written\n');
    expect(exitCode).toBe(1);
  });

  it('creates a missing data folder owner-only, as npm start does, and says on stderr its key is new', () => {
    const parent = tempDir();
    const dataDir = join(parent, 'typo', 'data');
    const mint = () =>
      spawnSync(process.execPath, ['--import', 'tsx', 'bin/token.ts', '--sub', 'bob'], {
        env: { ...process.env, BULWARK_DATA_DIR: dataDir },
        encoding: 'utf8',
      });
    const first = mint();
    expect(first.status).toBe(0);
    // stdout is the token alone, for $(npm run -s token …).
    expect(first.stdout.trim().split('\n')).toHaveLength(1);
    expect(decodeJwt(first.stdout.trim())).toMatchObject({ sub: 'bob' });
    expect((statSync(join(parent, 'typo')).mode & 0o777).toString(8)).toBe('700');
    expect((statSync(dataDir).mode & 0o777).toString(8)).toBe('700');
    expect(first.stderr).toBe(
      `npm run token: created ${dataDir} with a new signing key; a runtime started on another data folder ` +
        'does not accept this token (give npm run token the BULWARK_DATA_DIR of the runtime)\n',
    );

    const second = mint();
    expect(second.status).toBe(0);
    expect(second.stderr).toBe('');
    expect(decodeProtectedHeader(second.stdout.trim()).kid).toBe(
      decodeProtectedHeader(first.stdout.trim()).kid,
    );
  });

  it('says a damaged key file is not JSON, as npm start does, without quoting its private key', () => {
    const dataDir = tempDir();
    const { keyFile, privateStart } = damagedKeyFile(dataDir);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/token.ts', '--sub', 'bob'], {
      env: { ...process.env, BULWARK_DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`Invalid DevIssuer options: ${keyFile} is not JSON; ${deleteHint}\n`);
    expect(run.stderr).not.toContain(privateStart);
  });

  it('mints with the key kept in the data folder', async () => {
    const dataDir = tempDir();
    const { token, createdDataDir } = await mintFromCommandLine(
      ['--sub', 'bob', '--expires-in', '60', '--email', 'b@example.com'],
      dataDir,
    );
    expect(createdDataDir).toBe(false);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'bob', email: 'b@example.com' });
    expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    const again = new DevIssuer({ issuer: issuerUrl, keyFile: join(dataDir, 'dev-issuer-key.json') });
    expect(decodeProtectedHeader(token).kid).toBe(again.kid);
  });
});
