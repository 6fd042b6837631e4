// The public entry point exports what adopters use, not the helpers the toolkit's modules share among themselves.
import { describe, expect, it } from 'vitest';
import * as toolkit from '../../middleware/index.js';

describe('middleware/index.ts', () => {
  it.each([
    // The header names ServiceRequestVerifier.isSigned looks for; signers use serviceAuthHeaders().
    'serviceAuthHeaderNames',
    // The Retry-After of the toolkit's own dependency 503s, which httpErrorHandler and idempotency() set.
    'dependencyRetryAfterSec',
    // The retry classifier inside createDocumentClient.
    'isTransactionConflict',
  ])('does not export the internal %s', (name) => {
    expect(Object.keys(toolkit)).not.toContain(name);
  });
});
