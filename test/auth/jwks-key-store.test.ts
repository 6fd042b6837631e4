import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksKeyStore } from '../../middleware/auth/jwks-key-store.js';
import { type JwksServer, rsaKey, startJwksServer, type TestKey } from './helpers.js';

let jwks: JwksServer;
let rsa: TestKey;

beforeAll(async () => {
  rsa = rsaKey('rsa-lazy');
  jwks = await startJwksServer([rsa.jwk]);
});

afterAll(async () => {
  await jwks.close();
});

describe('JwksKeyStore', () => {
  it('rejects a JWKS timeout that is not a non-negative integer at construction', () => {
    expect(() => new JwksKeyStore({ uri: jwks.url, timeoutMs: 1.5 })).toThrow(/timeoutMs/);
    expect(() => new JwksKeyStore({ uri: jwks.url, timeoutMs: -1 })).toThrow(/timeoutMs/);
  });

  it('rejects a JWKS uri that is not a URL at construction', () => {
    expect(() => new JwksKeyStore({ uri: 'not a url' })).toThrow();
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
});
