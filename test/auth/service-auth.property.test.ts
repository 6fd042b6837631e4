// Service request signing over generated paths, queries and bodies: what a caller signs verifies at the callee, and nothing else does.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalQuery,
  canonicalRequest,
  type NonceStore,
  ServiceRequestVerifier,
  serviceAuthHeaders,
} from '../../middleware/auth/service-auth.js';
import { InvalidArgumentError } from '../../middleware/errors.js';
import { percentDecodedPath } from '../../middleware/http/input.js';
import { anyText, wellFormedText } from '../helpers/arbitraries.js';
import { reasonOf } from './helpers.js';

const secret = 's'.repeat(40);

/** Nonces in memory: each verifier run claims its own. */
class NonceSet implements NonceStore {
  private readonly claimed = new Set<string>();

  async claim(key: string): Promise<boolean> {
    if (this.claimed.has(key)) return false;
    this.claimed.add(key);
    return true;
  }
}

/** Text from the characters URL parsing and percent-decoding treat specially, a lone surrogate among them. */
const urlText = (characters: readonly string[], maxLength: number) =>
  fc.array(fc.constantFrom(...characters), { maxLength }).map((parts) => parts.join(''));
const path = fc
  .array(
    urlText(
      [
        'a',
        'B',
        '%',
        '2',
        'F',
        '5',
        '0',
        'é',
        ' ',
        '+',
        '=',
        '&',
        ';',
        ':',
        '@',
        '~',
        '"',
        '.',
        '..',
        '\n',
        '?',
        '\ud800',
      ],
      8,
    ),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .map((segments) => `/${segments.join('/')}`);
const query = urlText(['a', '=', '&', '+', '%', '2', 'B', '0', ' ', '?', 'é', ';', '#x', '\ud800'], 16);
const body = fc.option(fc.oneof(wellFormedText(30), fc.uint8Array({ maxLength: 30 })), { nil: undefined });

describe('service request signing', () => {
  it('verifies what serviceAuthHeaders signs for a URL, read as an HTTP API hands it on, and not at another path', async () => {
    await fc.assert(
      fc.asyncProperty(
        path,
        query,
        body,
        fc.constantFrom('GET', 'post', 'Put'),
        async (pathText, queryText, content, method) => {
          let url: URL;
          try {
            url = new URL(`https://callee.example${pathText}${queryText === '' ? '' : `?${queryText}`}`);
          } catch {
            return;
          }
          const headers = serviceAuthHeaders(
            { serviceId: 'bookings', secret },
            { method, url, body: content },
          );
          const verifier = new ServiceRequestVerifier({
            services: { bookings: { current: secret } },
            nonceStore: new NonceSet(),
          });
          const received = {
            method: method.toUpperCase(),
            path: percentDecodedPath(url.pathname),
            rawQueryString: url.search.slice(1),
            body: Buffer.from(content ?? ''),
            headers: Object.fromEntries(
              Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
            ),
          };
          // Refused before its nonce is claimed, so the request as sent still passes after it.
          expect(await reasonOf(verifier.verify({ ...received, path: `${received.path}x` }))).toBe(
            'bad_signature',
          );
          expect(await verifier.verify(received)).toMatchObject({ id: 'bookings', authMethod: 'service' });
        },
      ),
      { numRuns: 400 },
    );
  });

  it('writes a canonical request each part can be read back from, so two requests never sign alike', () => {
    const pairs = fc.array(fc.tuple(wellFormedText(8), wellFormedText(8)), { maxLength: 5 });
    const sortedPairs = (entries: Iterable<[string, string]>) =>
      [...entries].map((pair) => JSON.stringify(pair)).sort();
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Z]{1,7}$/),
        wellFormedText(30),
        pairs,
        wellFormedText(20),
        fc.stringMatching(/^\d{1,12}$/),
        fc.stringMatching(/^[\w-]{16,40}$/),
        (method, requestPath, queryPairs, content, timestamp, nonce) => {
          const params = new URLSearchParams(queryPairs);
          const lines = canonicalRequest({
            method,
            path: requestPath,
            query: params,
            body: content,
            timestamp,
            nonce,
          }).split('\n');
          // The path may hold newlines; every other part is one line, so it is whatever lies between them.
          expect(lines[0]).toBe(method);
          expect(lines.slice(1, -4).join('\n')).toBe(requestPath);
          expect(sortedPairs(new URLSearchParams(lines.at(-4)))).toEqual(sortedPairs(params));
          expect(lines.at(-3)).toBe(createHash('sha256').update(content).digest('hex'));
          expect(lines.at(-2)).toBe(timestamp);
          expect(lines.at(-1)).toBe(nonce);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('canonicalises a query record as the same pairs in URLSearchParams, or refuses it with InvalidArgumentError', () => {
    const record = fc.dictionary(anyText(6), fc.oneof(anyText(6), fc.array(anyText(4), { maxLength: 3 })), {
      maxKeys: 4,
    });
    fc.assert(
      fc.property(record, (input) => {
        const pairs = Object.entries(input).flatMap(([key, value]) =>
          (typeof value === 'string' ? [value] : value).map((item): [string, string] => [key, item]),
        );
        if (pairs.every((pair) => pair.every((part) => part.isWellFormed()))) {
          expect(canonicalQuery(input)).toBe(canonicalQuery(new URLSearchParams(pairs)));
        } else {
          expect(() => canonicalQuery(input)).toThrow(InvalidArgumentError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
