import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type JwtIssuerOptions,
  JwtVerifier,
  type JwtVerifierOptions,
} from '../../middleware/auth/jwt-verifier.js';
import { InvalidOptionsError, InvalidTokenError, ServiceUnavailableError } from '../../middleware/errors.js';
import {
  b64,
  ecKey,
  hmacToken,
  type JwksServer,
  nowSec,
  reasonOf,
  rsaKey,
  signToken,
  startJwksServer,
  type TestKey,
  userClaims,
} from './helpers.js';

let jwks: JwksServer;
let rsa: TestKey;
let ec: TestKey;

beforeAll(async () => {
  rsa = rsaKey('rsa-1');
  ec = ecKey('ec-1');
  jwks = await startJwksServer([rsa.jwk, ec.jwk]);
});

afterAll(async () => {
  await jwks.close();
});

afterEach(() => {
  vi.useRealTimers();
  jwks.up = true;
  jwks.keys = [rsa.jwk, ec.jwk];
});

function verifier(
  overrides: Partial<JwtVerifierOptions> = {},
  issuer: Partial<JwtVerifierOptions['issuers'][number]> = {},
) {
  return new JwtVerifier({
    issuers: [{ issuer: jwks.issuer, tokenUse: 'access', clientId: 'web-client', ...issuer }],
    ...overrides,
  });
}

const base64urlAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The segment with the lowest bit of its last character set: a spare bit when its length is 4n+2 or 4n+3. */
function withSpareBitSet(segment: string): string {
  const last = base64urlAlphabet.indexOf(segment.at(-1) as string);
  return segment.slice(0, -1) + base64urlAlphabet[last | 1];
}

/** The Retry-After of a verification refused with 503 (undefined when it has none). */
async function retryAfterOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ServiceUnavailableError);
  return (error as ServiceUnavailableError).headers['Retry-After'];
}

describe('JwtVerifier accepts', () => {
  it('an RS256 Cognito access token, fetching the JWKS from <issuer>/.well-known/jwks.json', async () => {
    const hitsBefore = jwks.hits;
    const { principal, claims } = await verifier().verify(signToken(rsa, userClaims(jwks.issuer)));
    expect(principal).toMatchObject({ id: 'user-1', isM2M: false, roles: ['admin'], authMethod: 'jwt' });
    expect(claims.username).toBe('alice');
    expect(jwks.hits).toBe(hitsBefore + 1);
  });

  it('an ES256 token', async () => {
    const { principal } = await verifier().verify(signToken(ec, userClaims(jwks.issuer)));
    expect(principal.id).toBe('user-1');
  });

  it('an HS256 token of an issuer configured with a shared secret', async () => {
    const secret = 's'.repeat(40);
    const hs = verifier({}, { algorithms: ['HS256'], sharedSecret: secret, jwksUri: null });
    const { principal } = await hs.verify(hmacToken(secret, userClaims(jwks.issuer)));
    expect(principal.id).toBe('user-1');
    expect(await reasonOf(hs.verify(hmacToken('t'.repeat(40), userClaims(jwks.issuer))))).toBe(
      'bad_signature',
    );
  });

  it('an M2M token, whose principal is the client', async () => {
    const claims = {
      token_use: 'access',
      client_id: 'web-client',
      scope: 'bookings/write',
      iss: jwks.issuer,
      exp: nowSec() + 60,
    };
    const { principal } = await verifier().verify(signToken(rsa, claims));
    expect(principal).toMatchObject({ id: 'web-client', isM2M: true, scopes: ['bookings/write'] });
  });

  it('a Cognito id token whose aud is an accepted client', async () => {
    const claims = userClaims(jwks.issuer, {
      token_use: 'id',
      aud: 'web-client',
      client_id: undefined,
      email: 'a@b.c',
    });
    const { principal } = await verifier({}, { tokenUse: ['id', 'access'] }).verify(signToken(rsa, claims));
    expect(principal.email).toBe('a@b.c');
  });

  it('a token expired by less than the clock tolerance, and not one expired by more', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cache: false });
    await expect(
      v.verify(signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() - 3 }))),
    ).resolves.toBeDefined();
    expect(await reasonOf(v.verify(signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() - 6 }))))).toBe(
      'expired',
    );
  });

  it('a token up to the tolerance edges as jose draws them (exp > now − tolerance, nbf ≤ now + tolerance), none past', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const toleranceSec = 5;
    const v = verifier({ cache: false, clockToleranceSec: toleranceSec });
    const token = (claims: Record<string, unknown>) => signToken(rsa, userClaims(jwks.issuer, claims));
    const now = nowSec();
    expect(await reasonOf(v.verify(token({ exp: now - toleranceSec })))).toBe('expired');
    await expect(v.verify(token({ exp: now - toleranceSec + 1 }))).resolves.toBeDefined();
    await expect(v.verify(token({ nbf: now + toleranceSec }))).resolves.toBeDefined();
    expect(await reasonOf(v.verify(token({ nbf: now + toleranceSec + 1 })))).toBe('not_yet_valid');
  });

  it('tokens from several issuers, each checked against its own keys', async () => {
    const other = rsaKey('other-1');
    const multi = new JwtVerifier({
      issuers: [
        { issuer: jwks.issuer, tokenUse: 'access', clientId: 'web-client' },
        {
          issuer: 'https://other.example',
          tokenUse: null,
          clientId: null,
          audience: null,
          jwks: { keys: [other.jwk] },
          jwksUri: null,
        },
      ],
    });
    await expect(
      multi.verify(signToken(other, { sub: 'x', iss: 'https://other.example', exp: nowSec() + 60 })),
    ).resolves.toBeDefined();
    // Signed with the first issuer's key but claiming the second issuer: the second's keys do not know rsa-1.
    expect(
      await reasonOf(
        multi.verify(signToken(rsa, { sub: 'x', iss: 'https://other.example', exp: nowSec() + 60 })),
      ),
    ).toBe('unknown_kid');
  });

  it('claims already verified by an API Gateway JWT authorizer, applying its own rules to them', () => {
    const v = verifier();
    const claims = {
      sub: 'user-1',
      username: 'alice',
      token_use: 'access',
      client_id: 'web-client',
      iss: jwks.issuer,
      exp: String(nowSec() + 60),
      'cognito:groups': '[admin auditors]',
    };
    expect(v.verifyAuthorizerClaims(claims).principal.roles).toEqual(['admin', 'auditors']);
    expect(() => v.verifyAuthorizerClaims({ ...claims, client_id: 'other' })).toThrow(InvalidTokenError);
    expect(() => v.verifyAuthorizerClaims({ ...claims, iss: 'https://evil.example' })).toThrow(
      InvalidTokenError,
    );
  });

  it('authorizer claims whose numeric date is decimal digits, with or without a fraction, and no other spelling Number() would read', async () => {
    const v = verifier();
    const exp = nowSec() + 60;
    const claims = { sub: 'user-1', token_use: 'access', client_id: 'web-client', iss: jwks.issuer };
    expect(v.verifyAuthorizerClaims({ ...claims, exp: String(exp) }).claims.exp).toBe(exp);
    expect(v.verifyAuthorizerClaims({ ...claims, exp: `${exp}.5` }).claims.exp).toBe(exp + 0.5);
    expect(
      await reasonOf(
        Promise.resolve().then(() => v.verifyAuthorizerClaims({ ...claims, exp: `${exp - 120}.5` })),
      ),
    ).toBe('expired');
    for (const spelling of [
      `0x${exp.toString(16)}`,
      `${exp / 1000}e3`,
      ` ${exp}`,
      `${exp}.`,
      `.${exp}`,
      `${exp}.5.5`,
      `${exp},5`,
      `-${exp}`,
    ]) {
      expect(
        await reasonOf(Promise.resolve().then(() => v.verifyAuthorizerClaims({ ...claims, exp: spelling }))),
        spelling,
      ).toBe('malformed');
    }
  });

  it('claims of a token with several audiences, which an API Gateway JWT authorizer flattens to "[a b]"', async () => {
    // Auth0's shape whenever openid is asked: its API and its userinfo endpoint.
    const v = verifier({}, { tokenUse: null, audience: 'https://api.example.org' });
    const claims = {
      sub: 'user-1',
      azp: 'web-client',
      iss: jwks.issuer,
      exp: String(nowSec() + 60),
      aud: '[https://api.example.org https://tenant.example/userinfo]',
    };
    expect(v.verifyAuthorizerClaims(claims).claims.aud).toEqual([
      'https://api.example.org',
      'https://tenant.example/userinfo',
    ]);
    const otherApi = { ...claims, aud: '[https://other.example https://tenant.example/userinfo]' };
    expect(await reasonOf(Promise.resolve().then(() => v.verifyAuthorizerClaims(otherApi)))).toBe(
      'wrong_audience',
    );
  });
});

describe('JwtVerifier rejects, with 401 and a reason', () => {
  it.each([
    ['not a JWT', 'hello', 'malformed'],
    ['two segments', 'abc.def', 'malformed'],
    ['four segments', 'a.b.c.d', 'malformed'],
    ['an empty segment', 'abc..def', 'malformed'],
    ['bad base64 characters', 'eyJhbGciOiJSUzI1NiJ9.e30!.c2ln', 'bad_base64'],
    ['base64 padding', 'eyJhbGciOiJSUzI1NiJ9.e30=.c2ln', 'bad_base64'],
    ['an impossible base64 length of the signature', 'eyJhbGciOiJSUzI1NiJ9.e30.c2lnx', 'bad_base64'],
    // Buffer would drop the stray last character and decode the payload {"a":"b"} as if it were not there.
    [
      'an impossible base64 length of the payload',
      `${b64({ alg: 'RS256', kid: 'rsa-1' })}.${b64({ a: 'b' })}A.c2ln`,
      'bad_base64',
    ],
    ['a header that is not JSON', `${b64('not json')}.${b64({})}.c2ln`, 'malformed'],
    ['a header that is an array', `${b64([1])}.${b64({})}.c2ln`, 'malformed'],
    ['a payload that is not JSON', `${b64({ alg: 'RS256', kid: 'rsa-1' })}.${b64('nope')}.c2ln`, 'malformed'],
  ])('%s', async (_name, token, reason) => {
    expect(await reasonOf(verifier().verify(token))).toBe(reason);
  });

  it('alg none, with or without a signature, in any case', async () => {
    const payload = userClaims(jwks.issuer);
    expect(await reasonOf(verifier().verify(`${b64({ alg: 'none' })}.${b64(payload)}.`))).toBe('alg_none');
    expect(await reasonOf(verifier().verify(`${b64({ alg: 'NoNe' })}.${b64(payload)}.c2ln`))).toBe(
      'alg_none',
    );
  });

  it('an HS256 token signed with the RSA public key as the HMAC secret (alg confusion)', async () => {
    const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' });
    const forged = hmacToken(pem, userClaims(jwks.issuer), { kid: 'rsa-1' });
    expect(await reasonOf(verifier().verify(forged))).toBe('alg_not_allowed');
    // Even an issuer that allows HS256 checks it against its shared secret only, never a JWKS key.
    const both = verifier({}, { algorithms: ['RS256', 'HS256'], sharedSecret: 'z'.repeat(32) });
    expect(await reasonOf(both.verify(forged))).toBe('bad_signature');
  });

  it('an RS256 header on a token signed with an EC key of the same kid', async () => {
    const confused = signToken(ec, userClaims(jwks.issuer), { alg: 'RS256', kid: 'ec-1' });
    expect(await reasonOf(verifier().verify(confused))).toBe('unknown_kid');
  });

  it('an algorithm outside the allow-list', async () => {
    expect(
      await reasonOf(verifier({}, { algorithms: ['RS256'] }).verify(signToken(ec, userClaims(jwks.issuer)))),
    ).toBe('alg_not_allowed');
    const ps = `${b64({ alg: 'PS256', kid: 'rsa-1' })}.${b64(userClaims(jwks.issuer))}.c2ln`;
    expect(await reasonOf(verifier().verify(ps))).toBe('alg_not_allowed');
  });

  it('a tampered payload', async () => {
    const [header, , signature] = signToken(rsa, userClaims(jwks.issuer)).split('.');
    const tampered = `${header}.${b64(userClaims(jwks.issuer, { 'cognito:groups': ['admin', 'root'] }))}.${signature}`;
    expect(await reasonOf(verifier().verify(tampered))).toBe('bad_signature');
  });

  it('a signature of the wrong length', async () => {
    const token = signToken(ec, userClaims(jwks.issuer));
    expect(
      await reasonOf(verifier().verify(`${token.slice(0, token.lastIndexOf('.'))}.${b64('short')}`)),
    ).toBe('bad_signature');
  });

  it.each([
    // A 256-byte signature is 342 characters, 4 bits of the last one spare: 60 of the 63 other last
    // characters only set spare bits, the other 3 change the last byte.
    ['RS256', () => signToken(rsa, userClaims(jwks.issuer)), 60],
    // 64 bytes, 86 characters: 4 spare bits.
    ['ES256', () => signToken(ec, userClaims(jwks.issuer)), 60],
    // 32 bytes, 43 characters: 2 spare bits, so 48 of 63 only set them.
    ['HS256', () => hmacToken('s'.repeat(40), userClaims(jwks.issuer)), 48],
  ] as const)(
    'an %s token whose signature spells the same bytes another way, as bad_base64',
    async (alg, token, spellings) => {
      const v = verifier(
        { cache: false },
        alg === 'HS256' ? { algorithms: [alg], sharedSecret: 's'.repeat(40), jwksUri: null } : {},
      );
      const signed = token();
      await v.verify(signed);
      const reasons: Record<string, number> = {};
      for (const last of base64urlAlphabet) {
        const variant = signed.slice(0, -1) + last;
        if (variant === signed) continue;
        const reason = await reasonOf(v.verify(variant));
        reasons[reason] = (reasons[reason] ?? 0) + 1;
      }
      expect(reasons).toEqual({ bad_base64: spellings, bad_signature: 63 - spellings });
    },
  );

  it('a header or payload that spells its bytes another way, as bad_base64', async () => {
    // Padded so each segment's length is 4n+2 or 4n+3, leaving spare bits in its last character.
    const token = signToken(rsa, userClaims(jwks.issuer, { pad: 'x' }), { pad: 'xy' });
    const [header = '', payload = '', signature = ''] = token.split('.');
    expect([header.length % 4, payload.length % 4]).toEqual([2, 3]);
    await verifier().verify(token);
    expect(await reasonOf(verifier().verify(`${withSpareBitSet(header)}.${payload}.${signature}`))).toBe(
      'bad_base64',
    );
    expect(await reasonOf(verifier().verify(`${header}.${withSpareBitSet(payload)}.${signature}`))).toBe(
      'bad_base64',
    );
  });

  it('an HS256 signature shorter or longer than 32 bytes, as bad_signature and not a RangeError', async () => {
    const secret = 's'.repeat(40);
    const hs = verifier({ cache: false }, { algorithms: ['HS256'], sharedSecret: secret, jwksUri: null });
    const token = hmacToken(secret, userClaims(jwks.issuer));
    const input = token.slice(0, token.lastIndexOf('.'));
    for (const signature of [Buffer.alloc(16), Buffer.alloc(48)]) {
      expect(await reasonOf(hs.verify(`${input}.${signature.toString('base64url')}`))).toBe('bad_signature');
    }
  });

  it('an expired token', async () => {
    expect(
      await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() - 60 })))),
    ).toBe('expired');
  });

  it('an expired token, naming whose it is on the error (for the audit line) as its signature checked out', async () => {
    const expired = signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() - 60 }));
    const error = await verifier()
      .verify(expired)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InvalidTokenError);
    expect((error as InvalidTokenError).credential).toEqual({
      verified: true,
      issuer: jwks.issuer,
      subject: 'user-1',
      clientId: 'web-client',
      tenantId: undefined,
    });
    // Refused by the verifier's own rules after an API Gateway authorizer verified it: as verified.
    const claims = userClaims(jwks.issuer, { client_id: 'other-client', exp: String(nowSec() + 60) });
    expect(() => verifier().verifyAuthorizerClaims(claims)).toThrow(
      expect.objectContaining({
        reason: 'wrong_client',
        credential: expect.objectContaining({ verified: true, subject: 'user-1', clientId: 'other-client' }),
      }),
    );
  });

  it('no credential on the error of a token whose signature does not check out, nor ids no claim may carry', async () => {
    const forged = signToken(rsaKey('rsa-1'), userClaims(jwks.issuer, { exp: nowSec() - 60 }));
    const forgedError = await verifier()
      .verify(forged)
      .catch((caught: unknown) => caught);
    expect(forgedError).toMatchObject({ reason: 'bad_signature', credential: undefined });
    const badIds = signToken(rsa, userClaims(jwks.issuer, { sub: 'a\u0000b', client_id: 'x'.repeat(300) }));
    const badIdsError = await verifier()
      .verify(badIds)
      .catch((caught: unknown) => caught);
    expect(badIdsError).toMatchObject({
      reason: 'wrong_client',
      credential: { verified: true, issuer: jwks.issuer, subject: undefined, clientId: undefined },
    });
  });

  it('a token whose nbf is in the future', async () => {
    expect(
      await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer, { nbf: nowSec() + 60 })))),
    ).toBe('not_yet_valid');
  });

  it.each([
    ['no exp', { exp: undefined }, 'missing_claim'],
    ['a string exp', { exp: 'tomorrow' }, 'malformed'],
    ['a string iat', { iat: 'today' }, 'malformed'],
    ['a wrong iss', { iss: 'https://evil.example' }, 'wrong_issuer'],
    ['no iss', { iss: undefined }, 'wrong_issuer'],
    ['a wrong client_id', { client_id: 'evil-client' }, 'wrong_client'],
    ['a wrong token_use', { token_use: 'id', aud: 'web-client' }, 'wrong_token_use'],
    ['no sub on a user token', { sub: undefined }, 'missing_claim'],
  ])('a token with %s', async (_name, overrides, reason) => {
    expect(await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer, overrides))))).toBe(
      reason,
    );
  });

  it('a token for another audience when one is required', async () => {
    const v = verifier({}, { audience: ['api://bookings'], clientId: null });
    await expect(
      v.verify(signToken(rsa, userClaims(jwks.issuer, { aud: ['api://bookings', 'x'] }))),
    ).resolves.toBeDefined();
    expect(await reasonOf(v.verify(signToken(rsa, userClaims(jwks.issuer, { aud: 'api://other' }))))).toBe(
      'wrong_audience',
    );
    expect(await reasonOf(v.verify(signToken(rsa, userClaims(jwks.issuer))))).toBe('wrong_audience');
  });

  it('a token whose JWS typ marks it for something other than access, and no plain or RFC 9068 one', async () => {
    const typed = (typ: unknown) => verifier().verify(signToken(rsa, userClaims(jwks.issuer), { typ }));
    for (const typ of ['logout+jwt', 'application/secevent+jwt', 'dpop+jwt', 'JOSE']) {
      expect(await reasonOf(typed(typ))).toBe('wrong_token_type');
    }
    for (const typ of [undefined, 'JWT', 'jwt', 'at+jwt', 'application/at+JWT']) {
      await expect(typed(typ)).resolves.toBeDefined();
    }
    expect(await reasonOf(typed(['JWT']))).toBe('malformed');
  });

  it('an ID token or another API’s token of an issuer without token_use, once an audience is set', async () => {
    const oidc = verifier({}, { tokenUse: null, clientId: 'spa', audience: 'bookings-api' });
    const claims = { sub: 'alice', iss: jwks.issuer, exp: nowSec() + 60, azp: 'spa' };
    await expect(oidc.verify(signToken(rsa, { ...claims, aud: 'bookings-api' }))).resolves.toBeDefined();
    expect(await reasonOf(oidc.verify(signToken(rsa, { ...claims, aud: 'spa' })))).toBe('wrong_audience');
    expect(await reasonOf(oidc.verify(signToken(rsa, { ...claims, aud: 'billing-api' })))).toBe(
      'wrong_audience',
    );
  });

  it('a token missing a configured required claim', async () => {
    const v = verifier({}, { requiredClaims: ['jti'] });
    expect(await reasonOf(v.verify(signToken(rsa, userClaims(jwks.issuer))))).toBe('missing_claim');
  });

  it('no verifier whose required claims are one name, which would require claims named j, t and i', () => {
    expect(() => verifier({}, { requiredClaims: 'jti' as never })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        `${jwks.issuer}: requiredClaims must be an array of claim names (got "jti")`,
      ]),
    );
    expect(() => verifier({}, { requiredClaims: [''] })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        `${jwks.issuer}: requiredClaims entries must be non-empty claim names (got "")`,
      ]),
    );
  });

  it('a token over 8 KiB, before parsing it', async () => {
    const big = signToken(rsa, userClaims(jwks.issuer, { padding: 'x'.repeat(9000) }));
    expect(await reasonOf(verifier().verify(big))).toBe('too_large');
  });

  it('critical header extensions and unencoded payloads', async () => {
    expect(
      await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer), { crit: ['exp'] }))),
    ).toBe('malformed');
    expect(await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer), { b64: false })))).toBe(
      'malformed',
    );
    expect(await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer), { kid: 7 })))).toBe(
      'malformed',
    );
  });

  it('a JWKS token without a kid', async () => {
    expect(
      await reasonOf(verifier().verify(signToken(rsa, userClaims(jwks.issuer), { kid: undefined }))),
    ).toBe('missing_kid');
  });

  it('a key embedded in the header (jwk/jku are never read)', async () => {
    const attacker = rsaKey('attacker');
    const token = signToken(attacker, userClaims(jwks.issuer), {
      jwk: attacker.jwk,
      jku: 'http://127.0.0.1:1/jwks.json',
    });
    expect(await reasonOf(verifier().verify(token))).toBe('unknown_kid');
  });
});

describe('JwtVerifier and the JWKS endpoint', () => {
  it('fetches at most once per cooldown for 1,000 unknown kids, then once more after it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ jwksCooldownMs: 30_000 });
    await v.verify(signToken(rsa, userClaims(jwks.issuer)));
    const hits = jwks.hits;
    const reasons = new Set<string>();
    for (let index = 0; index < 1000; index += 1) {
      // The kid is looked up before any signature check, so these need no real signature.
      const token = `${b64({ alg: 'RS256', kid: `unknown-${index}` })}.${b64(userClaims(jwks.issuer))}.c2ln`;
      reasons.add(await reasonOf(v.verify(token)));
    }
    expect(reasons).toEqual(new Set(['unknown_kid']));
    // The first token's fetch started the cooldown: none of the thousand fetched again.
    expect(jwks.hits - hits).toBe(0);
    vi.setSystemTime(Date.now() + 30_001);
    await reasonOf(v.verify(signToken({ ...rsa, kid: 'unknown-late' }, userClaims(jwks.issuer))));
    expect(jwks.hits - hits).toBe(1);
    expect(v.jwksFetchCount).toBe(2);
  });

  it('fetches once for concurrent first requests', async () => {
    const v = verifier();
    const hits = jwks.hits;
    const tokens = Array.from({ length: 20 }, (_, index) =>
      signToken(rsa, userClaims(jwks.issuer, { jti: String(index) })),
    );
    await Promise.all(tokens.map((token) => v.verify(token)));
    expect(jwks.hits - hits).toBe(1);
  });

  it('finds a key added to the JWKS after the cooldown (rotation)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier();
    await v.verify(signToken(rsa, userClaims(jwks.issuer)));
    const rotated = rsaKey('rsa-2');
    jwks.keys = [rsa.jwk, rotated.jwk];
    expect(await reasonOf(v.verify(signToken(rotated, userClaims(jwks.issuer))))).toBe('unknown_kid');
    vi.setSystemTime(Date.now() + 30_001);
    await expect(v.verify(signToken(rotated, userClaims(jwks.issuer, { jti: 'r' })))).resolves.toBeDefined();
  });

  it('keeps verifying with cached keys when the endpoint goes down after the first fetch', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cache: false, jwksMaxAgeMs: 60_000 });
    await v.verify(signToken(rsa, userClaims(jwks.issuer)));
    jwks.up = false;
    vi.setSystemTime(Date.now() + 10 * 60_000);
    const hits = jwks.hits;
    for (let index = 0; index < 5; index += 1) {
      await expect(
        v.verify(signToken(rsa, userClaims(jwks.issuer, { jti: String(index) }))),
      ).resolves.toBeDefined();
    }
    // The stale set was refreshed once (failed), not once per request.
    expect(jwks.hits - hits).toBe(1);
  });

  it('drops a key the issuer removed, once the set is refreshed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cache: false, jwksMaxAgeMs: 60_000 });
    await v.verify(signToken(rsa, userClaims(jwks.issuer)));
    jwks.keys = [ec.jwk];
    vi.setSystemTime(Date.now() + 61_000);
    expect(await reasonOf(v.verify(signToken(rsa, userClaims(jwks.issuer))))).toBe('unknown_kid');
    await expect(v.verify(signToken(ec, userClaims(jwks.issuer)))).resolves.toBeDefined();
  });

  it.each([
    ['preloaded', true],
    ['fetched', false],
  ])(
    'keeps an RSA and an EC key of one kid apart (%s), so a forged token cannot displace either',
    async (_name, preload) => {
      const sharedRsa = rsaKey('shared');
      const sharedEc = ecKey('shared');
      jwks.keys = [sharedRsa.jwk, sharedEc.jwk];
      const v = verifier({}, preload ? { jwks: { keys: jwks.keys } } : {});
      const forged = `${b64({ alg: 'ES256', kid: 'shared' })}.${b64(userClaims(jwks.issuer))}.${Buffer.alloc(64).toString('base64url')}`;

      expect(await reasonOf(v.verify(forged))).toBe('bad_signature');
      await expect(v.verify(signToken(sharedRsa, userClaims(jwks.issuer)))).resolves.toBeDefined();
      await expect(v.verify(signToken(sharedEc, userClaims(jwks.issuer)))).resolves.toBeDefined();
      expect(await reasonOf(v.verify(forged))).toBe('bad_signature');
    },
  );

  it('answers 503 (not 500) when the keys were never obtainable', async () => {
    jwks.up = false;
    const error = await verifier()
      .verify(signToken(rsa, userClaims(jwks.issuer)))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
  });

  it('lets a cold instance whose first JWKS fetch failed verify again as soon as its Retry-After says', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ jwksCooldownMs: 30_000 });
    const hits = jwks.hits;
    jwks.up = false;
    expect(await retryAfterOf(v.verify(signToken(rsa, userClaims(jwks.issuer))))).toBe('1');
    jwks.up = true;
    vi.setSystemTime(Date.now() + 1000);
    await expect(v.verify(signToken(rsa, userClaims(jwks.issuer)))).resolves.toBeDefined();
    expect(jwks.hits - hits).toBe(2);
  });

  it('while the keys were never obtained, retries the JWKS after 1 s, 2 s, 4 s... up to the cooldown, and Retry-After says when', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ jwksCooldownMs: 5000 });
    jwks.up = false;
    const hits = jwks.hits;
    const refusals = async (count: number) =>
      new Set(
        await Promise.all(
          Array.from({ length: count }, (_, index) =>
            retryAfterOf(v.verify(signToken(rsa, userClaims(jwks.issuer, { jti: String(index) })))),
          ),
        ),
      );
    const start = Date.now();
    const at = (ms: number) => vi.setSystemTime(start + ms);

    // Concurrent requests join one fetch; requests between fetches fetch nothing and hear the time left.
    expect(await refusals(20)).toEqual(new Set(['1']));
    expect(jwks.hits - hits).toBe(1);
    at(999);
    expect(await refusals(20)).toEqual(new Set(['1']));
    at(1000);
    expect(await refusals(1)).toEqual(new Set(['2']));
    at(1001);
    expect(await refusals(20)).toEqual(new Set(['2']));
    // 1.4 s left rounds up: a client retrying after 1 s would be refused again.
    at(1600);
    expect(await refusals(1)).toEqual(new Set(['2']));
    at(3000);
    expect(await refusals(1)).toEqual(new Set(['4']));
    at(7000);
    expect(await refusals(1)).toEqual(new Set(['5']));
    at(11_999);
    expect(await refusals(20)).toEqual(new Set(['1']));
    at(12_000);
    expect(await refusals(1)).toEqual(new Set(['5']));
    expect(jwks.hits - hits).toBe(5);
  });

  it('once the keys were obtained, lets a failed fetch start the whole cooldown, so unknown kids cannot fetch sooner', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ jwksCooldownMs: 30_000, jwksMaxAgeMs: 600_000 });
    await v.verify(signToken(rsa, userClaims(jwks.issuer)));
    jwks.up = false;
    const start = Date.now() + 30_000;
    const unknownKid = (index: number) =>
      `${b64({ alg: 'RS256', kid: `unknown-${index}` })}.${b64(userClaims(jwks.issuer))}.c2ln`;
    const hits = jwks.hits;
    for (const elapsed of [0, 1000, 2000, 4000, 8000, 16_000, 29_999]) {
      vi.setSystemTime(start + elapsed);
      expect(await reasonOf(v.verify(unknownKid(elapsed)))).toBe('unknown_kid');
    }
    expect(jwks.hits - hits).toBe(1);
    vi.setSystemTime(start + 30_000);
    expect(await reasonOf(v.verify(unknownKid(30_000)))).toBe('unknown_kid');
    expect(jwks.hits - hits).toBe(2);
    await expect(v.verify(signToken(rsa, userClaims(jwks.issuer)))).resolves.toBeDefined();
  });

  it('refuses at construction an issuer whose keys could never be obtained (no jwksUri, nothing preloaded)', () => {
    const noKeys = `${jwks.issuer}: no signing keys: give jwks, jwksFile or jwksUri (jwksUri: null never fetches), or allow only HS256`;
    expect(() => verifier({}, { jwksUri: null })).toThrow(new InvalidOptionsError('JwtVerifier', [noKeys]));
    expect(() => verifier({}, { jwksUri: null, jwks: { keys: [] } })).toThrow(
      new InvalidOptionsError('JwtVerifier', [noKeys]),
    );
    // Reported with the issuer's other problems, not instead of them.
    expect(() => verifier({}, { jwksUri: null, clientId: undefined })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        `${jwks.issuer}: clientId is required (null to skip the check)`,
        noKeys,
      ]),
    );
    expect(() =>
      verifier({}, { jwksUri: null, algorithms: ['HS256'], sharedSecret: 'x'.repeat(32) }),
    ).not.toThrow();
  });

  it('needs no fetch with a JWKS preloaded inline or from a file', async () => {
    const hits = jwks.hits;
    const inline = verifier({}, { jwks: JSON.stringify({ keys: [rsa.jwk] }) });
    await expect(inline.verify(signToken(rsa, userClaims(jwks.issuer)))).resolves.toBeDefined();
    const file = join(mkdtempSync(join(tmpdir(), 'bulwark-jwks-')), 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [rsa.jwk] }));
    const fromFile = verifier({}, { jwksFile: file, jwksUri: null });
    await expect(fromFile.verify(signToken(rsa, userClaims(jwks.issuer)))).resolves.toBeDefined();
    expect(jwks.hits).toBe(hits);
    expect(await reasonOf(fromFile.verify(signToken(ec, userClaims(jwks.issuer))))).toBe('unknown_kid');
  });

  it('refuses a JWKS key too weak for its algorithm', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const key: TestKey = {
      kid: 'weak',
      alg: 'RS256',
      privateKey: weak.privateKey,
      publicKey: weak.publicKey,
      jwk: { ...weak.publicKey.export({ format: 'jwk' }), kid: 'weak', alg: 'RS256' },
    };
    const v = verifier({}, { jwks: { keys: [key.jwk] }, jwksUri: null });
    expect(await reasonOf(v.verify(signToken(key, userClaims(jwks.issuer))))).toBe('alg_not_allowed');
  });
});

describe('JwtVerifier claims cache', () => {
  it('returns the same frozen result for a repeated token without a second signature check', async () => {
    const v = verifier();
    const token = signToken(rsa, userClaims(jwks.issuer));
    const first = await v.verify(token);
    // A second verification would build new objects: the very same one can only come from the cache.
    expect(await v.verify(token)).toBe(first);
    expect(Object.isFrozen(first.claims)).toBe(true);
    expect(Object.isFrozen(first.principal.roles)).toBe(true);
  });

  it('forgets a token once it expires, then rejects it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier();
    const token = signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() + 20 }));
    await v.verify(token);
    vi.setSystemTime(Date.now() + 26_000);
    expect(await reasonOf(v.verify(token))).toBe('expired');
  });

  it('caches at most maxEntries tokens, least recently used out first', async () => {
    const v = verifier({ cache: { maxEntries: 2, maxAgeSec: 60 } });
    const tokens = ['a', 'b', 'c'].map((jti) => signToken(rsa, userClaims(jwks.issuer, { jti })));
    const results = [];
    for (const token of tokens) results.push(await v.verify(token));
    expect(await v.verify(tokens[2] as string)).toBe(results[2]);
    expect(await v.verify(tokens[0] as string)).not.toBe(results[0]);
  });

  // Cache limits often come from configuration that may be unset: `{ maxEntries: config.tokenCacheSize }`.
  it.each<[string, JwtVerifierOptions['cache']]>([
    ['maxEntries', { maxEntries: undefined }],
    ['maxAgeSec', { maxAgeSec: undefined }],
  ])('keeps the default cache.%s when it is given as undefined', async (_name, cache) => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cache });
    const token = signToken(rsa, userClaims(jwks.issuer, { exp: nowSec() + 3600 }));
    const first = await v.verify(token);
    vi.setSystemTime(Date.now() + 299_000);
    expect(await v.verify(token)).toBe(first);
    vi.setSystemTime(Date.now() + 1_000);
    expect(await v.verify(token)).not.toBe(first);
  });

  it('keeps at most 64 parsed token headers, however many distinct ones callers make up', async () => {
    const v = verifier({ cache: false });
    for (let index = 0; index < 500; index += 1) {
      const token = `${b64({ alg: 'RS256', kid: `k${index}` })}.${b64({ iss: 'https://unknown.example' })}.c2ln`;
      expect(await reasonOf(v.verify(token))).toBe('wrong_issuer');
    }
    // Private: a bound on memory has no public effect to observe.
    expect((v as unknown as { headers: Map<string, unknown> }).headers.size).toBeLessThanOrEqual(64);
  });

  it('never hits the cache with a token differing in one character', async () => {
    const v = verifier();
    const token = signToken(rsa, userClaims(jwks.issuer));
    await v.verify(token);
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    expect(await reasonOf(v.verify(`${token.slice(0, -2)}${last}${token.at(-1)}`))).toBe('bad_signature');
  });
});

describe('JwtVerifier options', () => {
  it("refuses a cache.maxEntries past the safe integers as its own option, not the internal cache's", () => {
    for (const maxEntries of [2 ** 53, 1e21]) {
      expect(() => verifier({ cache: { maxEntries, maxAgeSec: 60 } })).toThrow(
        new InvalidOptionsError('JwtVerifier', ['cache.maxEntries must be a positive integer']),
      );
    }
  });

  it('lists every problem at once', () => {
    let error: unknown;
    try {
      new JwtVerifier({
        clockToleranceSec: -1,
        maxTokenBytes: 0,
        cache: { maxEntries: 0, maxAgeSec: 0 },
        issuers: [
          // @ts-expect-error tokenUse and clientId are required, on purpose
          { issuer: 'https://a.example' },
          {
            issuer: 'https://b.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            algorithms: ['HS256'],
          },
          {
            issuer: 'https://c.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            sharedSecret: 'short',
          },
          {
            issuer: 'https://d.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            // @ts-expect-error 'none' is not an algorithm
            algorithms: ['none'],
          },
          {
            issuer: 'https://e.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            jwks: 'not json',
            jwksUri: 'nope',
          },
          {
            issuer: 'https://f.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            jwks: { keys: [] },
            jwksFile: '/x',
          },
          { issuer: 'https://g.example', tokenUse: null, clientId: null, audience: null, algorithms: [] },
          {
            issuer: 'https://h.example',
            tokenUse: null,
            clientId: null,
            audience: null,
            jwks: '{"no":"keys"}',
          },
          // @ts-expect-error issuer is required
          { tokenUse: null, clientId: null, audience: null },
        ],
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    const problems = (error as InvalidOptionsError).problems.join('\n');
    for (const expected of [
      'clockToleranceSec',
      'maxTokenBytes',
      'cache.maxEntries',
      'cache.maxAgeSec',
      'https://a.example: tokenUse is required',
      'https://a.example: clientId is required',
      'https://b.example: HS256 needs a sharedSecret',
      'https://c.example: a sharedSecret needs HS256',
      'https://c.example: sharedSecret must be at least 32 characters besides whitespace',
      'https://d.example: algorithm none is not supported',
      'https://e.example: the preloaded JWKS is not JSON',
      'https://e.example: jwksUri is not an http(s) URL',
      'https://f.example: give jwks or jwksFile',
      'https://f.example: jwksFile cannot be read',
      'https://g.example: algorithms must not be empty',
      'https://h.example: the preloaded JWKS has no keys array',
      'every issuer needs an issuer string',
    ]) {
      expect(problems).toContain(expected);
    }
  });

  it('needs an audience, or an explicit null, for an issuer without token_use', async () => {
    // Without one, this issuer's ID token for the same client, or its access token for another API, passes.
    expect(() => verifier({}, { tokenUse: null, clientId: 'spa' })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        `${jwks.issuer}: audience is required when tokenUse is null (null to skip the check)`,
      ]),
    );
    const unchecked = verifier({}, { tokenUse: null, clientId: 'spa', audience: null });
    const idToken = { sub: 'alice', iss: jwks.issuer, exp: nowSec() + 60, aud: 'spa', azp: 'spa' };
    await expect(unchecked.verify(signToken(rsa, idToken))).resolves.toBeDefined();
    // A Cognito-style issuer keeps aud unchecked by default: token_use and client_id tell tokens apart.
    expect(() => verifier({}, { tokenUse: 'access', clientId: 'spa' })).not.toThrow();
  });

  it('refuses an issuer with edge whitespace, which no token’s iss matches', () => {
    for (const issuer of ['   ', ' https://a.example', 'https://a.example\n']) {
      expect(
        () =>
          new JwtVerifier({
            issuers: [{ issuer, tokenUse: null, clientId: null, audience: null, jwksUri: null }],
          }),
      ).toThrow(
        new InvalidOptionsError('JwtVerifier', [
          `${JSON.stringify(issuer)}: issuer has leading or trailing whitespace`,
        ]),
      );
    }
  });

  it('names a JWKS timeout with which every key fetch would fail among the other problems', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    for (const jwksTimeoutMs of [0, 2 ** 31]) {
      expect(() => new JwtVerifier({ issuers: [issuer], maxTokenBytes: 0, jwksTimeoutMs })).toThrow(
        new InvalidOptionsError('JwtVerifier', [
          'maxTokenBytes must be > 0',
          `jwksTimeoutMs must be an integer of milliseconds 1..2147483647 (got ${jwksTimeoutMs})`,
        ]),
      );
    }
  });

  it('refuses an issuer that is not an object, or algorithms given as a string, with InvalidOptionsError', () => {
    expect(() => new JwtVerifier({ issuers: [null as never] })).toThrow(
      new InvalidOptionsError('JwtVerifier', ['every issuer must be an object (got null)']),
    );
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    expect(() => new JwtVerifier({ issuers: [{ ...issuer, algorithms: 'RS256' as never }] })).toThrow(
      new InvalidOptionsError('JwtVerifier', ['https://a.example: algorithms must be a list (got "RS256")']),
    );
  });

  it('refuses a roles or tenant claim name that no token can carry', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    expect(() => new JwtVerifier({ issuers: [issuer], rolesClaim: '', tenantClaim: 7 as never })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        'rolesClaim must be a non-empty claim name (got "")',
        'tenantClaim must be a non-empty claim name (got 7)',
      ]),
    );
    // A list has a length too, but names no claim.
    expect(() => new JwtVerifier({ issuers: [issuer], rolesClaim: ['roles'] as never })).toThrow(
      new InvalidOptionsError('JwtVerifier', [
        'rolesClaim must be a non-empty claim name (got an array of 1)',
      ]),
    );
  });

  it('takes a clock tolerance of up to 300 s and refuses one above', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    expect(new JwtVerifier({ issuers: [issuer], clockToleranceSec: 300 })).toBeInstanceOf(JwtVerifier);
    expect(() => new JwtVerifier({ issuers: [issuer], clockToleranceSec: 301 })).toThrow(
      new InvalidOptionsError('JwtVerifier', ['clockToleranceSec must be a number 0..300 (got 301)']),
    );
  });

  it('refuses a clock tolerance or cache age given as a string, which would pass a comparison', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    expect(() => new JwtVerifier({ issuers: [issuer], clockToleranceSec: '5' as never })).toThrow(
      new InvalidOptionsError('JwtVerifier', ['clockToleranceSec must be a number 0..300 (got "5")']),
    );
    for (const maxAgeSec of ['300', Number.POSITIVE_INFINITY]) {
      expect(() => new JwtVerifier({ issuers: [issuer], cache: { maxAgeSec: maxAgeSec as number } })).toThrow(
        new InvalidOptionsError('JwtVerifier', ['cache.maxAgeSec must be a finite number > 0']),
      );
    }
  });

  it('names a JWKS cooldown or maximum age that is negative, NaN or not a number among the other problems', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    for (const [value, shown] of [
      [-1, '-1'],
      [Number.NaN, 'NaN'],
      [null, 'null'],
      ['30000', '"30000"'],
    ]) {
      expect(
        () =>
          new JwtVerifier({
            issuers: [issuer],
            maxTokenBytes: 0,
            jwksCooldownMs: value as number,
            jwksMaxAgeMs: value as number,
          }),
      ).toThrow(
        new InvalidOptionsError('JwtVerifier', [
          'maxTokenBytes must be > 0',
          `jwksCooldownMs must be a finite number of milliseconds >= 0 (got ${shown})`,
          `jwksMaxAgeMs must be a finite number of milliseconds >= 0 (got ${shown})`,
        ]),
      );
    }
  });

  it('refuses an HS256 secret of fewer than 32 characters besides whitespace, with which anyone could sign', () => {
    const issuer = {
      issuer: 'https://a.example',
      tokenUse: null,
      clientId: null,
      audience: null,
      algorithms: ['HS256' as const],
    };
    for (const sharedSecret of [' '.repeat(32), `short${' '.repeat(40)}`]) {
      expect(() => new JwtVerifier({ issuers: [{ ...issuer, sharedSecret }] })).toThrow(
        new InvalidOptionsError('JwtVerifier', [
          'https://a.example: sharedSecret must be at least 32 characters besides whitespace',
        ]),
      );
    }
    // Bytes keep the 32-byte floor; typed text passed as bytes (jose's own idiom) meets the text rule.
    expect(() => new JwtVerifier({ issuers: [{ ...issuer, sharedSecret: randomBytes(31) }] })).toThrow(
      'https://a.example: sharedSecret must be at least 32 bytes',
    );
    for (const sharedSecret of [
      new TextEncoder().encode(' '.repeat(32)),
      Buffer.from(`short${'\n'.repeat(40)}`),
    ]) {
      expect(() => new JwtVerifier({ issuers: [{ ...issuer, sharedSecret }] })).toThrow(
        'https://a.example: sharedSecret must be at least 32 characters besides whitespace',
      );
    }
    expect(
      new JwtVerifier({
        issuers: [{ ...issuer, sharedSecret: new TextEncoder().encode(`${'k'.repeat(31)}ey`) }],
      }),
    ).toBeInstanceOf(JwtVerifier);
    expect(new JwtVerifier({ issuers: [{ ...issuer, sharedSecret: randomBytes(32) }] })).toBeInstanceOf(
      JwtVerifier,
    );
  });

  it('refuses a blank, empty or misspelt tokenUse, clientId or audience, which would refuse every token', () => {
    const issuer = { issuer: 'https://a.example', tokenUse: 'access' as const, clientId: 'client' };
    for (const [override, problem] of [
      [{ tokenUse: 'acess' }, "tokenUse must be 'access', 'id' or both"],
      [{ tokenUse: [] }, 'tokenUse must be a non-empty string or list of them'],
      [{ clientId: '' }, 'clientId must be a non-empty string or list of them'],
      [{ clientId: ['client', ' '] }, 'clientId must be a non-empty string or list of them'],
      [{ audience: [] }, 'audience must be a non-empty string or list of them'],
    ] as const) {
      const options = { ...issuer, ...override } as unknown as JwtIssuerOptions;
      expect(() => new JwtVerifier({ issuers: [options] })).toThrow(`https://a.example: ${problem}`);
    }
    expect(new JwtVerifier({ issuers: [{ ...issuer, tokenUse: ['access', 'id'] }] })).toBeInstanceOf(
      JwtVerifier,
    );
  });

  it('refuses a jwksUri whose scheme no fetch can serve', () => {
    for (const jwksUri of ['ftp://a.example/jwks.json', 'file:///etc/jwks.json', 'not a url']) {
      expect(
        () =>
          new JwtVerifier({
            issuers: [
              { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null, jwksUri },
            ],
          }),
      ).toThrow('https://a.example: jwksUri is not an http(s) URL');
    }
  });

  it('rejects an empty or duplicated issuer list', () => {
    expect(() => new JwtVerifier({ issuers: [] })).toThrow(/issuers must not be empty/);
    const issuer = { issuer: 'https://a.example', tokenUse: null, clientId: null, audience: null };
    expect(() => new JwtVerifier({ issuers: [issuer, issuer] })).toThrow(/listed twice/);
  });
});

describe('JwtVerifier claim rules against jose jwtVerify', () => {
  /** jose's local JWKS and a JwtVerifier holding the same key and claim rules (audience api, 5 s tolerance). */
  function verifiersToCompare() {
    const local = createLocalJWKSet({ keys: [rsa.jwk] });
    const v = new JwtVerifier({
      issuers: [
        {
          issuer: jwks.issuer,
          tokenUse: null,
          clientId: null,
          audience: 'api',
          jwks: { keys: [rsa.jwk] },
          jwksUri: null,
        },
      ],
      clockToleranceSec: 5,
      cache: false,
    });
    return { local, v };
  }

  it('accepts and rejects exactly the tokens jose does (exp, nbf, iss, aud)', async () => {
    // One frozen clock for both verifiers, so no second boundary falls between them.
    vi.useFakeTimers({ toFake: ['Date'] });
    const { local, v } = verifiersToCompare();
    const offset = fc.integer({ min: -30, max: 30 });
    await fc.assert(
      fc.asyncProperty(
        offset,
        fc.option(offset, { nil: undefined }),
        fc.constantFrom(jwks.issuer, 'https://evil.example'),
        fc.constantFrom<unknown>('api', ['x', 'api'], 'other', ['x'], undefined),
        async (expOffset, nbfOffset, iss, aud) => {
          const now = nowSec();
          const claims = {
            sub: 'u',
            iss,
            aud,
            exp: now + expOffset,
            ...(nbfOffset === undefined ? {} : { nbf: now + nbfOffset }),
          };
          const token = signToken(rsa, claims);
          const ours = await v.verify(token).then(
            () => true,
            () => false,
          );
          const theirs = await jwtVerify(token, local, {
            issuer: jwks.issuer,
            audience: 'api',
            clockTolerance: 5,
          }).then(
            () => true,
            () => false,
          );
          expect(ours).toBe(theirs);
        },
      ),
      {
        numRuns: 150,
        // The tolerance edges, which 150 random runs over four dimensions rarely land on.
        examples: [
          [-5, undefined, jwks.issuer, 'api'],
          [-4, undefined, jwks.issuer, 'api'],
          [30, 5, jwks.issuer, 'api'],
          [30, 6, jwks.issuer, 'api'],
        ],
      },
    );
  });

  it('takes a fractional exp and nbf as jose does, in a token and as an API Gateway authorizer writes them', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { local, v } = verifiersToCompare();
    const offset = fc.double({ min: -30, max: 30, noNaN: true });
    await fc.assert(
      fc.asyncProperty(offset, fc.option(offset, { nil: undefined }), async (expOffset, nbfOffset) => {
        const now = nowSec();
        const claims = {
          sub: 'u',
          iss: jwks.issuer,
          aud: 'api',
          exp: now + expOffset,
          ...(nbfOffset === undefined ? {} : { nbf: now + nbfOffset }),
        };
        const token = signToken(rsa, claims);
        const accepted = (verifying: () => unknown) =>
          Promise.resolve()
            .then(verifying)
            .then(
              () => true,
              () => false,
            );
        const theirs = await accepted(() =>
          jwtVerify(token, local, { issuer: jwks.issuer, audience: 'api', clockTolerance: 5 }),
        );
        expect(await accepted(() => v.verify(token))).toBe(theirs);
        const asAuthorizerWritesThem = {
          ...claims,
          exp: String(claims.exp),
          ...(claims.nbf === undefined ? {} : { nbf: String(claims.nbf) }),
        };
        expect(await accepted(() => v.verifyAuthorizerClaims(asAuthorizerWritesThem))).toBe(theirs);
      }),
      {
        numRuns: 150,
        // Half a second either side of the tolerance edges.
        examples: [
          [-4.5, undefined],
          [-5.5, undefined],
          [30, 4.5],
          [30, 5.5],
        ],
      },
    );
  });
});
