// README, "The local dev issuer": tokens for the tests of your own functions.
import { DevIssuer, JwtVerifier } from '../../../middleware/index.js';

const issuer = new DevIssuer({ issuer: 'http://127.0.0.1:3999' }); // a key in memory; keyFile keeps one
export const verifier = new JwtVerifier({
  issuers: [
    {
      issuer: issuer.issuer,
      tokenUse: 'access',
      clientId: [issuer.clientId, 'svc-reports'],
      jwks: issuer.jwks(), // preloaded: nothing is fetched
      jwksUri: null,
    },
  ],
});
export const adminToken = await issuer.mint({ sub: 'alice', roles: ['admin'], tenant: 'acme' });
export const machineToken = await issuer.mint({
  m2m: true,
  clientId: 'svc-reports',
  scopes: ['reports/read'],
});
