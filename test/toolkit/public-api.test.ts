// The public entry point exports what adopters use, not the helpers the toolkit's modules share among themselves,
// and README.md names every value it exports.
import { readFileSync } from 'node:fs';
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
    // The outcome and the metric createSecurityEventListener records for each event type.
    'securityEventOutcome',
    'securityEventMetrics',
    // How JwtVerifier reads a roles or aud claim; principals carry the list it makes.
    'listClaim',
    // The string signRequest signs; callers sign with signRequest, serviceAuthHeaders or createServiceSigner.
    'canonicalQuery',
    'canonicalRequest',
    // The backoff of SecretStore and JwksKeyStore after a failed fetch.
    'retryBackoffMs',
    // How recordMetric cleans a dimension value.
    'dimensionValue',
    // The keyBy kinds rateLimit's option check names.
    'rateLimitKeyKinds',
    // The option check of serviceCalls' and the service client's correlationIdHeader.
    'isHeaderName',
  ])('does not export the internal %s', (name) => {
    expect(Object.keys(toolkit)).not.toContain(name);
  });
});

/** README's code: its fenced blocks and its inline code spans, where an export is named as code. */
function readmeCode(): string {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const fence = /^```[^\n]*\n([\s\S]*?)^```/gm;
  const blocks = [...readme.matchAll(fence)].map((match) => match[1]);
  const spans = [...readme.replace(fence, '').matchAll(/`([^`]+)`/g)].map((match) => match[1]);
  return [...blocks, ...spans].join('\n');
}

describe('README.md', () => {
  it('names every value export of middleware/index.ts in its code', () => {
    const code = readmeCode();
    const exports = Object.keys(toolkit);
    expect(exports).toContain('renderProblem');
    const unnamed = exports.filter(
      (name) => !new RegExp(`(?<![\\w$])${name.replaceAll('$', '\\$')}(?![\\w$])`).test(code),
    );
    expect(unnamed).toEqual([]);
  });
});
