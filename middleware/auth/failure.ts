// One message per credential failure reason, so every 401 says what is wrong and never echoes the credential.
import { type AuthFailureReason, InvalidTokenError, type RejectedCredential } from '../errors.js';

/** Client-facing descriptions; they go into a quoted header parameter, so they hold no `"` or `\`. */
const messages: Readonly<Record<AuthFailureReason, string>> = {
  malformed: 'The credential is malformed',
  bad_base64: 'The token is not valid base64url',
  too_large: 'The token is too large',
  alg_none: 'Unsigned tokens are not accepted',
  alg_not_allowed: 'The token algorithm is not accepted for its key',
  missing_kid: 'The token names no signing key',
  unknown_kid: 'The token signing key is unknown',
  bad_signature: 'The signature is invalid',
  expired: 'The credential has expired',
  not_yet_valid: 'The token is not valid yet',
  wrong_issuer: 'The token issuer is not accepted',
  wrong_audience: 'The token audience is not accepted',
  wrong_client: 'The token client is not accepted',
  wrong_token_use: 'The token use is not accepted',
  wrong_token_type: 'The token type is not accepted',
  wrong_tenant: 'The token issuer may not speak for the token tenant',
  missing_claim: 'The token lacks a required claim',
  unknown_key: 'The API key is not valid',
  revoked: 'The credential has been revoked',
  unknown_service: 'The calling service is unknown',
  timestamp_skew: 'The request timestamp is outside the accepted window',
  replayed: 'The request nonce was already used',
};

/**
 * The 401 for a rejected credential.
 *
 * @example
 * throw credentialError('expired'); // 401, WWW-Authenticate: Bearer ... error="invalid_token"
 * throw credentialError('revoked', { credential: { verified: true, keyId } }); // keyId on the audit line only
 */
export function credentialError(
  reason: AuthFailureReason,
  details: { readonly cause?: unknown; readonly credential?: RejectedCredential | undefined } = {},
): InvalidTokenError {
  return new InvalidTokenError(reason, messages[reason], {
    ...(details.cause === undefined ? {} : { cause: details.cause }),
    credential: details.credential,
  });
}
