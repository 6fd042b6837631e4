// The local development issuer: one RS256 key (kept in a file or in memory), Cognito-shaped tokens and its JWKS.
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type JSONWebKeySet, type JWK, SignJWT } from 'jose';
import { assertNoProblems, InvalidArgumentError, InvalidOptionsError } from '../errors.js';
import { arrayOption, requireOptionsObject, shownValue } from '../options.js';
import { notJsonProblem } from '../text.js';
import { defaultClaimMapping } from './claims-principal.js';

export interface DevIssuerOptions {
  /** The `iss` of minted tokens; its JWKS is expected at `<issuer>/.well-known/jwks.json`. */
  readonly issuer: string;
  /**
   * Where the private key is kept (created on first use, mode 0600); in memory when absent. A file that
   * holds no key is refused with an InvalidOptionsError naming its path, never quoting its text. @default undefined
   */
  readonly keyFile?: string | undefined;
  /** `client_id` of human users' tokens. @default 'bulwark-local' */
  readonly clientId?: string | undefined;
}

/** What a minted token says. */
export interface DevTokenOptions {
  /** The user's id (`sub`, also `username`); ignored for M2M tokens. @default 'dev-user' */
  readonly sub?: string | undefined;
  /** `cognito:groups`; ignored for M2M tokens. @default [] */
  readonly roles?: readonly string[] | undefined;
  /** The `scope` claim. @default [] */
  readonly scopes?: readonly string[] | undefined;
  /** `custom:tenant_id`. @default undefined */
  readonly tenant?: string | undefined;
  /** Ignored for M2M tokens. @default undefined */
  readonly email?: string | undefined;
  /** A client-credentials token (no user claims; `sub` is the client id). @default false */
  readonly m2m?: boolean | undefined;
  /** @default the issuer's clientId for users, 'svc-local' for M2M */
  readonly clientId?: string | undefined;
  /** Lifetime; negative for an already expired token (tests). @default 3600 */
  readonly expiresInSec?: number | undefined;
  /** Cognito `token_use`. @default 'access' */
  readonly tokenUse?: 'access' | 'id' | undefined;
  /** Anything else to put in the payload (tests use it for nbf, aud, other shapes). @default {} */
  readonly extraClaims?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * Refuses token options that would mint something other than what was asked: roles or scopes given as one
 * string (spread into letters), a lifetime that is no number, a token use Cognito has not.
 */
function assertMintable(options: DevTokenOptions): void {
  const problems: string[] = [];
  for (const field of ['roles', 'scopes'] as const) {
    for (const entry of arrayOption(problems, field, options[field], 'of names')) {
      if (typeof entry !== 'string' || entry.trim() === '') {
        problems.push(`${field} entries must be non-empty strings (got ${shownValue(entry)})`);
      }
    }
  }
  const lifetime = options.expiresInSec;
  if (lifetime !== undefined && !(typeof lifetime === 'number' && Number.isFinite(lifetime))) {
    problems.push(`expiresInSec must be a number of seconds (got ${shownValue(lifetime)})`);
  }
  if (options.tokenUse !== undefined && options.tokenUse !== 'access' && options.tokenUse !== 'id') {
    problems.push(`tokenUse must be 'access' or 'id' (got ${shownValue(options.tokenUse)})`);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`Cannot mint that token: ${problems.join('; ')}`);
}

interface StoredKey {
  readonly kid: string;
  readonly privateJwk: JWK;
}

/**
 * A key file that holds no key, told by its path and what to do. Never with the parser's or node:crypto's
 * message, which quote the file's text, private key and all.
 */
function damagedKeyFile(problem: string): InvalidOptionsError {
  return new InvalidOptionsError('DevIssuer', [
    `${problem}; delete it to make a new key (tokens signed with the old one stop verifying)`,
  ]);
}

function readKey(keyFile: string): { kid: string; privateKey: KeyObject } {
  const text = readFileSync(keyFile, 'utf8');
  let stored: Partial<StoredKey> | null;
  try {
    stored = JSON.parse(text) as Partial<StoredKey> | null;
  } catch (error) {
    throw damagedKeyFile(notJsonProblem(keyFile, error as SyntaxError));
  }
  const privateKey = rsaPrivateKeyOf(stored?.privateJwk);
  if (typeof stored?.kid !== 'string' || stored.kid === '' || privateKey === undefined) {
    throw damagedKeyFile(`${keyFile} holds no RSA signing key (kid and privateJwk)`);
  }
  return { kid: stored.kid, privateKey };
}

/** The RSA private key a JWK holds, if it holds one. */
function rsaPrivateKeyOf(jwk: unknown): KeyObject | undefined {
  try {
    const key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    return key.asymmetricKeyType === 'rsa' ? key : undefined;
  } catch {
    return undefined;
  }
}

function loadOrCreateKey(keyFile: string | undefined): { kid: string; privateKey: KeyObject } {
  if (keyFile !== undefined && existsSync(keyFile)) return readKey(keyFile);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateJwk = privateKey.export({ format: 'jwk' }) as JWK;
  const kid = `dev-${randomUUID().slice(0, 8)}`;
  if (keyFile !== undefined) {
    mkdirSync(dirname(keyFile), { recursive: true });
    try {
      // Owner-only: it signs tokens every local function trusts. 'wx' never overwrites a key that
      // `npm start` and `npm run token` raced to create; the loser reads the winner's.
      writeFileSync(keyFile, `${JSON.stringify({ kid, privateJwk } satisfies StoredKey)}\n`, {
        mode: 0o600,
        flag: 'wx',
      });
    } catch {
      return readKey(keyFile);
    }
  }
  return { kid, privateKey };
}

/**
 * Mints RS256 tokens shaped like Cognito's for local runs and tests; the local runtime serves
 * {@link DevIssuer.jwks} at `/.well-known/jwks.json`, so functions verify them exactly as in AWS.
 * Never deploy it: anyone with the key file can mint any identity.
 *
 * @example
 * const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:3000', keyFile: '.bulwark/dev-issuer-key.json' });
 * const token = await issuer.mint({ sub: 'alice', roles: ['admin'] });
 */
export class DevIssuer {
  readonly issuer: string;
  readonly clientId: string;
  readonly kid: string;
  private readonly privateKey: KeyObject;
  private readonly publicJwk: JWK;

  constructor(options: DevIssuerOptions) {
    requireOptionsObject('DevIssuer', options);
    const problems: string[] = [];
    if (!URL.canParse(options.issuer)) problems.push('issuer must be a URL');
    assertNoProblems('DevIssuer', problems);
    this.issuer = options.issuer.replace(/\/+$/, '');
    this.clientId = options.clientId ?? 'bulwark-local';
    const { kid, privateKey } = loadOrCreateKey(options.keyFile);
    this.kid = kid;
    this.privateKey = privateKey;
    this.publicJwk = {
      ...(createPublicKey(privateKey).export({ format: 'jwk' }) as JWK),
      kid,
      alg: 'RS256',
      use: 'sig',
    };
  }

  /** The public key set, as served at `/.well-known/jwks.json`. */
  jwks(): JSONWebKeySet {
    return { keys: [{ ...this.publicJwk }] };
  }

  /** A signed token: a human user's Cognito-style access token by default, or an M2M one. */
  async mint(options: DevTokenOptions = {}): Promise<string> {
    assertMintable(options);
    const m2m = options.m2m ?? false;
    const clientId = options.clientId ?? (m2m ? 'svc-local' : this.clientId);
    const sub = m2m ? clientId : (options.sub ?? 'dev-user');
    const tokenUse = options.tokenUse ?? 'access';
    const claims: Record<string, unknown> = {
      sub,
      token_use: tokenUse,
      // Cognito names the client in client_id on access tokens and in aud on id tokens.
      ...(tokenUse === 'access' ? { client_id: clientId } : { aud: clientId }),
      ...(options.scopes && options.scopes.length > 0 ? { scope: options.scopes.join(' ') } : {}),
      ...(m2m ? {} : { [tokenUse === 'id' ? 'cognito:username' : 'username']: sub }),
      ...(!m2m && options.roles && options.roles.length > 0
        ? { [defaultClaimMapping.rolesClaim]: [...options.roles] }
        : {}),
      ...(options.tenant === undefined ? {} : { [defaultClaimMapping.tenantClaim]: options.tenant }),
      ...(options.email === undefined || m2m ? {} : { email: options.email }),
      jti: randomUUID(),
    };
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: this.issuer, iat: now, exp: now + (options.expiresInSec ?? 3600), ...claims };
    return new SignJWT({ ...payload, ...options.extraClaims })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid, typ: 'JWT' })
      .sign(this.privateKey);
  }
}
