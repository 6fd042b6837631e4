import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { JwksKeyStore, KeyLookupError } from '../../middleware/auth/jwks-key-store.js';
import { BulwarkError, InvalidOptionsError } from '../../middleware/errors.js';
import { ecKey, type JwksServer, rsaKey, startJwksServer, type TestKey } from './helpers.js';

let jwks: JwksServer;
let rsa: TestKey;

beforeAll(async () => {
  rsa = rsaKey('rsa-lazy');
  jwks = await startJwksServer([rsa.jwk]);
});

afterAll(async () => {
  await jwks.close();
});

afterEach(() => {
  vi.useRealTimers();
  jwks.up = true;
});

describe('JwksKeyStore', () => {
  it.each([0, 1.5, -1, 2 ** 31, Number.NaN])(
    'rejects a JWKS timeout of %s at construction, with which every fetch would fail',
    (timeoutMs) => {
      expect(() => new JwksKeyStore({ uri: jwks.url, timeoutMs })).toThrow(
        new InvalidOptionsError('JwksKeyStore', [
          `timeoutMs must be an integer of milliseconds 1..2147483647 (got ${timeoutMs})`,
        ]),
      );
    },
  );

  // A string is shown quoted: '30000' from the environment must not read as the number it looks like.
  it.each([
    [-1, '-1'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    ['30000', '"30000"'],
  ])(
    'rejects a cooldown or maximum age of %s at construction, with which the fetch bound is lost',
    (value, shown) => {
      for (const field of ['cooldownMs', 'maxAgeMs']) {
        expect(() => new JwksKeyStore({ uri: jwks.url, [field]: value })).toThrow(
          new InvalidOptionsError('JwksKeyStore', [
            `${field} must be a finite number of milliseconds >= 0 (got ${shown})`,
          ]),
        );
      }
    },
  );

  it('accepts a cooldown and a maximum age of 0', () => {
    expect(new JwksKeyStore({ uri: jwks.url, cooldownMs: 0, maxAgeMs: 0 })).toBeInstanceOf(JwksKeyStore);
  });

  it('fetches with the longest JWKS timeout it accepts', async () => {
    const store = new JwksKeyStore({ uri: jwks.url, timeoutMs: 2_147_483_647 });
    expect((await store.resolve('rsa-lazy', 'RS256')).asymmetricKeyType).toBe('rsa');
  });

  it('rejects a JWKS uri that is not a URL at construction', () => {
    expect(() => new JwksKeyStore({ uri: 'not a url' })).toThrow(
      new InvalidOptionsError('JwksKeyStore', ['uri is not a URL (got "not a url")']),
    );
  });

  it('fetches nothing until a key is asked for, then resolves it from the remote set', async () => {
    const before = jwks.hits;
    const store = new JwksKeyStore({ uri: jwks.url });
    expect(jwks.hits).toBe(before);
    expect(store.peek('rsa-lazy', 'RS256')).toBeUndefined();

    const key = await store.resolve('rsa-lazy', 'RS256');

    expect(key.asymmetricKeyType).toBe('rsa');
    expect(store.peek('rsa-lazy', 'RS256')).toBe(key);
    expect(jwks.hits).toBe(before + 1);
  });

  it('tells how long until it fetches again when it has no keys to give', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    jwks.up = false;
    const store = new JwksKeyStore({ uri: jwks.url, cooldownMs: 30_000 });

    const refusal = () => store.resolve('rsa-lazy', 'RS256').catch((caught: unknown) => caught);

    const afterFetch = await refusal();
    vi.setSystemTime(Date.now() + 250);
    const later = await refusal();

    expect(afterFetch).toBeInstanceOf(KeyLookupError);
    expect(afterFetch).toMatchObject({ failure: 'unavailable', retryInMs: 1000 });
    expect(later).toMatchObject({ failure: 'unavailable', retryInMs: 750 });
    expect(store.fetchCount).toBe(1);
  });

  it('holds the RSA and the EC key of one kid side by side, whichever is asked for first', async () => {
    const store = new JwksKeyStore({ preload: { keys: [rsaKey('both').jwk, ecKey('both').jwk] } });

    const ec = await store.resolve('both', 'ES256');
    const rsa = await store.resolve('both', 'RS256');

    expect([ec.asymmetricKeyType, rsa.asymmetricKeyType]).toEqual(['ec', 'rsa']);
    expect(store.peek('both', 'ES256')).toBe(ec);
    expect(store.peek('both', 'RS256')).toBe(rsa);
  });

  it('refuses a kid it does not hold with a toolkit error of stable code, named as written', async () => {
    const store = new JwksKeyStore({ preload: { keys: [rsa.jwk] } });
    const refusal = await store.resolve('no-such-kid', 'RS256').catch((caught: unknown) => caught);
    expect(refusal).toBeInstanceOf(BulwarkError);
    expect(refusal).toMatchObject({
      code: 'KEY_LOOKUP_FAILED',
      name: 'KeyLookupError',
      failure: 'unknown_kid',
    });
  });
});
