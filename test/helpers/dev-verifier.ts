// A JwtVerifier that accepts the access tokens of a local DevIssuer, for pipelines under test.
import type { DevIssuer } from '../../middleware/auth/dev-issuer.js';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';

/** Trusts `issuer`'s access tokens for its own client id, with its keys given inline (no JWKS fetch). */
export function devIssuerVerifier(issuer: DevIssuer): JwtVerifier {
  return new JwtVerifier({
    issuers: [
      {
        issuer: issuer.issuer,
        tokenUse: 'access',
        clientId: issuer.clientId,
        jwks: issuer.jwks(),
        jwksUri: null,
      },
    ],
  });
}
