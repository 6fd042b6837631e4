// Who a request counts against: the client IP (X-Forwarded-For only behind trusted proxies) and principal-based keys.
import ipaddr from 'ipaddr.js';
import { type Principal, principalKindOf } from '../auth/principal.js';
import { type ApiGatewayEvent, routeOf, sourceIpOf } from '../http/request-event.js';

/** What a limit is counted per; several combine into one key (per IP and route, per tenant and user). */
export type RateLimitKeyBy = 'ip' | 'user' | 'clientId' | 'apiKey' | 'tenant' | 'route';

export const rateLimitKeyKinds: readonly RateLimitKeyBy[] = [
  'ip',
  'user',
  'clientId',
  'apiKey',
  'tenant',
  'route',
];

/** The request as a key or trust function sees it. */
export interface RateLimitRequest {
  /** An HTTP API (v2), Function URL or REST API (v1) event: narrow it to read a field of one version. */
  readonly event: ApiGatewayEvent;
  /** Set by the authentication middleware; absent on public routes. */
  readonly principal: Principal | undefined;
  /** The client address as the limiter resolved it (see `trustedProxyCount`), IPv6 grouped by prefix. */
  readonly clientIp: string;
}

export interface ClientIpOptions {
  /**
   * Proxies in front of API Gateway that append to X-Forwarded-For (CloudFront: 1). With 0 the
   * header is ignored, since any client can send it.
   */
  readonly trustedProxyCount: number;
  /** IPv6 clients are counted per prefix of this length: one host usually owns a whole /64. */
  readonly ipv6PrefixLength: number;
}

/** The key for requests whose address is missing or unreadable: they share one bucket, never none. */
export const unknownClientIp = 'unknown';

function normalizeIp(text: string | undefined, ipv6PrefixLength: number): string {
  if (text === undefined || !ipaddr.isValid(text)) return unknownClientIp;
  const address = ipaddr.parse(text);
  if (address.kind() === 'ipv4') return address.toString();
  const ipv6 = address as ipaddr.IPv6;
  if (ipv6.isIPv4MappedAddress()) return ipv6.toIPv4Address().toString();
  const bytes = ipv6.toByteArray().map((byte, index) => {
    const keep = Math.min(8, Math.max(0, ipv6PrefixLength - index * 8));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
  return `${(ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String()}/${ipv6PrefixLength}`;
}

/**
 * X-Forwarded-For whatever its name's case (a REST API event keeps the case the client or CloudFront
 * sent), or undefined when the event carries it under more than one spelling: which of them a trusted
 * proxy appended to cannot be told, and reading either would let the client pick its own key.
 */
function forwardedFor(headers: ApiGatewayEvent['headers'] | undefined): string | undefined {
  const spellings = Object.keys(headers ?? {}).filter((name) => name.toLowerCase() === 'x-forwarded-for');
  const [only] = spellings;
  return spellings.length === 1 && only !== undefined ? headers?.[only] : undefined;
}

/**
 * The client address: API Gateway's `sourceIp` (the TCP peer), or, behind `trustedProxyCount`
 * proxies, the X-Forwarded-For entry the outermost trusted proxy wrote. Entries left of it are
 * whatever the client claimed and are never used.
 */
export function clientIpOf(event: ApiGatewayEvent, options: ClientIpOptions): string {
  const sourceIp = sourceIpOf(event);
  let candidate: string | undefined = sourceIp;
  if (options.trustedProxyCount > 0) {
    const forwarded = (forwardedFor(event.headers) ?? '')
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry.length > 0);
    const chain = sourceIp ? [...forwarded, sourceIp] : forwarded;
    candidate = chain[Math.max(0, chain.length - 1 - options.trustedProxyCount)];
  }
  return normalizeIp(candidate, options.ipv6PrefixLength);
}

/** The key kinds read from `context.principal`: they count per caller only after authentication. */
const principalKeyKinds: ReadonlySet<RateLimitKeyBy> = new Set(['user', 'clientId', 'apiKey', 'tenant']);

/** Whether any of the kinds is read from `context.principal`, so the limit needs authentication to run first. */
export function isKeyedByPrincipal(keyBy: readonly RateLimitKeyBy[]): boolean {
  return keyBy.some((kind) => principalKeyKinds.has(kind));
}

/** One part of a key, and the kind it was made from: `ip` where a principal-based kind fell back to the address. */
interface KeyPart {
  readonly kind: RateLimitKeyBy;
  readonly part: string;
}

/**
 * The caller as a whole: an id alone is unique only within its tenant, its authentication method (a
 * service's id and an M2M client's id are both machines' names) and its kind (a person's `sub` may be a
 * client's id). The tuple is JSON, so no separator inside an id can make two callers' parts the same.
 */
function userPartOf(principal: Principal): string {
  const caller = [principal.tenantId ?? null, principal.authMethod, principalKindOf(principal), principal.id];
  return `user:${JSON.stringify(caller)}`;
}

/**
 * The client as a whole: a client id is unique only within its tenant and its authentication method (an
 * M2M client of one tenant, one of another, and a signing service may all be `svc-1`). JSON, as for
 * {@link userPartOf}. People count against the client their token names (an app's users share it).
 */
function clientPartOf(principal: Principal, clientId: string): string {
  return `client:${JSON.stringify([principal.tenantId ?? null, principal.authMethod, clientId])}`;
}

function partOf(kind: RateLimitKeyBy, request: RateLimitRequest): KeyPart {
  const { principal } = request;
  const ip: KeyPart = { kind: 'ip', part: `ip:${request.clientIp}` };
  switch (kind) {
    case 'ip':
      return ip;
    case 'user':
      return principal ? { kind, part: userPartOf(principal) } : ip;
    case 'clientId':
      return principal?.clientId ? { kind, part: clientPartOf(principal, principal.clientId) } : ip;
    case 'apiKey':
      return principal?.authMethod === 'apiKey' ? { kind, part: `apiKey:${principal.id}` } : ip;
    case 'tenant':
      return principal?.tenantId ? { kind, part: `tenant:${principal.tenantId}` } : ip;
    case 'route':
      return { kind, part: `route:${routeOf(request.event)}` };
  }
}

/** A request's key, and the kinds it was made from once fallbacks are taken (what a `rateLimit.hit` reports). */
export interface RateLimitKey {
  readonly key: string;
  readonly kinds: readonly RateLimitKeyBy[];
}

/**
 * The key a request counts against. Principal-based parts fall back to the client IP when the
 * request carries no such principal field (an anonymous caller of an optional-auth route), so an
 * anonymous caller is still limited; `kinds` then says `ip` for them.
 *
 * @example
 * rateLimitKeyOf(['ip', 'route'], request); // { key: '["ip:203.0.113.9","route:POST /login"]', kinds: ['ip', 'route'] }
 * rateLimitKeyOf(['user'], signedIn);       // { key: 'user:["t-1","jwt","person","u-1"]', kinds: ['user'] }
 * rateLimitKeyOf(['clientId'], machine);   // { key: 'client:["t-1","jwt","svc-1"]', kinds: ['clientId'] }
 * rateLimitKeyOf(['user'], anonymous);      // { key: 'ip:203.0.113.9', kinds: ['ip'] }
 */
export function rateLimitKeyOf(keyBy: readonly RateLimitKeyBy[], request: RateLimitRequest): RateLimitKey {
  const parts = new Map<string, RateLimitKeyBy>();
  for (const { kind, part } of keyBy.map((wanted) => partOf(wanted, request))) {
    if (!parts.has(part)) parts.set(part, kind);
  }
  const [only] = parts.keys();
  return {
    // JSON keeps a principal id containing a separator from forging another caller's composite key.
    key: parts.size === 1 ? (only as string) : JSON.stringify([...parts.keys()]),
    kinds: [...parts.values()],
  };
}

/**
 * The key alone (see {@link rateLimitKeyOf}).
 *
 * @example
 * keyOf(['ip', 'route'], request); // '["ip:203.0.113.9","route:POST /login"]'
 */
export function keyOf(keyBy: readonly RateLimitKeyBy[], request: RateLimitRequest): string {
  return rateLimitKeyOf(keyBy, request).key;
}
