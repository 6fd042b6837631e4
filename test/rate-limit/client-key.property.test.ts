// Who a request counts against, over generated addresses, forwarding chains and callers: no client can pick its own key, and no two callers share one.
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../middleware/auth/principal.js';
import { clientIpOf, type RateLimitKeyBy, rateLimitKeyOf } from '../../middleware/rate-limit/client-key.js';
import { MemoryCounterStore } from '../../middleware/rate-limit/counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { anyText } from '../helpers/arbitraries.js';
import { testPrincipal } from '../helpers/principals.js';

const eventFrom = (sourceIp: string, forwardedFor?: string): APIGatewayProxyEventV2 =>
  ({
    routeKey: 'GET /things',
    rawPath: '/things',
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    requestContext: { http: { method: 'GET', sourceIp } },
  }) as unknown as APIGatewayProxyEventV2;

/** Addresses in every spelling ipaddr.js reads, and text that is none. */
const address = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
  anyText(10),
  fc.constantFrom('unknown', '::ffff:1.2.3.4', 'fe80::1%eth0', '127.1', '0x7f.1', ' 1.2.3.4 '),
);

describe('clientIpOf', () => {
  it('ignores X-Forwarded-For with no trusted proxy, and gives unknown or a valid address', () => {
    fc.assert(
      fc.property(
        address,
        fc.array(address, { maxLength: 4 }),
        fc.integer({ min: 0, max: 128 }),
        (peer, forwarded, prefix) => {
          const options = { trustedProxyCount: 0, ipv6PrefixLength: prefix };
          const key = clientIpOf(eventFrom(peer), options);
          expect(clientIpOf(eventFrom(peer, forwarded.join(', ')), options)).toBe(key);
          if (key !== 'unknown') expect(ipaddr.isValid(key.split('/')[0] as string)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('behind n proxies, gives the same key whatever entries the client put before theirs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }).chain((proxies) =>
          fc.tuple(
            fc.constant(proxies),
            fc.ipV4(),
            // The entries the proxies appended: at least enough to reach past the client's own.
            fc.array(fc.ipV4(), { minLength: proxies, maxLength: 3 }),
            fc.array(address, { minLength: 1, maxLength: 3 }),
          ),
        ),
        ([proxies, peer, appended, forged]) => {
          const options = { trustedProxyCount: proxies, ipv6PrefixLength: 64 };
          expect(clientIpOf(eventFrom(peer, [...forged, ...appended].join(', ')), options)).toBe(
            clientIpOf(eventFrom(peer, appended.join(', ')), options),
          );
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('gives two IPv6 clients one key exactly when their addresses share the prefix', () => {
    const ipv6 = fc.ipV6().filter((text) => !(ipaddr.parse(text) as ipaddr.IPv6).isIPv4MappedAddress());
    fc.assert(
      fc.property(ipv6, ipv6, fc.integer({ min: 0, max: 128 }), (first, second, prefix) => {
        const options = { trustedProxyCount: 0, ipv6PrefixLength: prefix };
        const sameKey = clientIpOf(eventFrom(first), options) === clientIpOf(eventFrom(second), options);
        expect(sameKey).toBe(ipaddr.parse(first).match(ipaddr.parse(second), prefix));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('rateLimitKeyOf', () => {
  const caller = fc
    .record({
      id: anyText(6),
      tenantId: fc.option(anyText(4), { nil: undefined }),
      authMethod: fc.constantFrom<Principal['authMethod']>('jwt', 'apiKey', 'service'),
      isM2M: fc.boolean(),
      clientId: fc.option(anyText(4), { nil: undefined }),
    })
    .map((fields) => testPrincipal(fields));
  const request = fc.record({
    principal: caller,
    clientIp: fc.constantFrom('192.0.2.1', '192.0.2.2'),
    route: fc.constantFrom('GET /a', 'GET /b'),
  });
  type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;

  /**
   * The caller attributes each kind stands for, as values rather than text: a principal-based kind
   * with nothing to read falls back to the address, and a repeated attribute counts once.
   */
  function attributes(kinds: readonly RateLimitKeyBy[], { principal, clientIp, route }: Request): string {
    const ip = ['ip', clientIp];
    const resolved = kinds.map((kind) => {
      switch (kind) {
        case 'ip':
          return ip;
        case 'user':
          return ['user', principal.tenantId ?? null, principal.authMethod, principal.isM2M, principal.id];
        case 'clientId':
          return principal.clientId
            ? ['client', principal.tenantId ?? null, principal.authMethod, principal.clientId]
            : ip;
        case 'apiKey':
          return principal.authMethod === 'apiKey' ? ['apiKey', principal.id] : ip;
        case 'tenant':
          return principal.tenantId ? ['tenant', principal.tenantId] : ip;
        default:
          return ['route', route];
      }
    });
    return JSON.stringify([...new Set(resolved.map((attribute) => JSON.stringify(attribute)))]);
  }

  it('gives two requests one key exactly when every attribute it is made of is the same', () => {
    const kinds = fc.subarray(['ip', 'user', 'clientId', 'apiKey', 'tenant', 'route'] as RateLimitKeyBy[], {
      minLength: 1,
    });
    const keyOf = (keyBy: readonly RateLimitKeyBy[], { principal, clientIp, route }: Request) =>
      rateLimitKeyOf(keyBy, { event: { routeKey: route, headers: {} } as never, principal, clientIp }).key;
    fc.assert(
      fc.property(kinds, request, request, (keyBy, first, second) => {
        expect(keyOf(keyBy, first) === keyOf(keyBy, second)).toBe(
          attributes(keyBy, first) === attributes(keyBy, second),
        );
      }),
      { numRuns: 1500 },
    );
  });
});

describe('RateLimiter.storageKeyOf', () => {
  it('keeps a key with a lone surrogate apart from the same key with U+FFFD, as UTF-8 would not', () => {
    const limiter = new RateLimiter({
      policy: { limit: 5, windowSec: 60 },
      store: new MemoryCounterStore({ maxKeys: 10 }),
    });
    fc.assert(
      fc.property(
        anyText(8).filter((key) => !key.isWellFormed()),
        (key) => {
          expect(limiter.storageKeyOf(key)).not.toBe(limiter.storageKeyOf(key.toWellFormed()));
        },
      ),
      { numRuns: 300 },
    );
  });
});
