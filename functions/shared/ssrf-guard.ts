// SSRF guard: refuses URLs, DNS answers and connections that could reach anything but the public internet.
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import {
  ConfigError,
  InvalidOptionsError,
  ServiceUnavailableError,
  SsrfBlockedError,
  type SsrfBlockReason,
  ValidationError,
} from '../../middleware/errors.js';
import { checkTimeLimit } from '../../middleware/time-limits.js';

type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = readonly [IpAddress, number];

/** One DNS answer, as `dns.promises.lookup(host, { all: true })` gives it. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

export interface SsrfGuardOptions {
  /**
   * CIDRs (`127.0.0.0/8`, `::1/128`; a bare address means that one address) that are allowed although
   * they would be blocked. An explicit opt-in for the local runtime and tests; it only ever un-blocks.
   * Cloud metadata addresses stay blocked whatever it says.
   * @default [] (nothing un-blocked)
   */
  readonly allowlist?: readonly string[];
  /**
   * Resolves a hostname to every address it has. Injected by tests to play DNS answers.
   * @default `dns.promises.lookup(hostname, { all: true })`
   */
  readonly resolve?: (hostname: string) => Promise<ResolvedAddress[]>;
  /**
   * How long a DNS lookup may take before it fails with code `ETIMEOUT`: `dns.lookup` has no bound of its
   * own (getaddrinfo waits as long as the resolver configuration says, retries included), and a hung lookup
   * would otherwise hold a registration until the function times out.
   * @default 3000
   */
  readonly resolveTimeoutMs?: number;
}

/** Seconds a client is asked to wait after a DNS failure that may pass (a timeout, SERVFAIL, EAI_AGAIN). */
const dnsRetryAfterSec = 5;

function cidr(text: string): Cidr {
  return ipaddr.parseCIDR(text);
}

/**
 * Instance metadata and platform endpoints of the clouds: credentials live behind them. Checked
 * before the allowlist, so no allowlist entry (not even `169.254.0.0/16`) can open them.
 */
const cloudMetadataCidrs = [
  // AWS IMDS, GCP, Azure IMDS, Oracle, DigitalOcean, OpenStack; AWS DNS resolver and time sync.
  '169.254.169.254/32',
  '169.254.169.253/32',
  '169.254.169.123/32',
  // ECS task metadata / credentials, EKS Pod Identity agent.
  '169.254.170.2/32',
  '169.254.170.23/32',
  // AWS IMDS, DNS, time sync and EKS Pod Identity over IPv6 (Nitro).
  'fd00:ec2::254/128',
  'fd00:ec2::253/128',
  'fd00:ec2::123/128',
  'fd00:ec2::23/128',
  // Alibaba Cloud metadata.
  '100.100.100.200/32',
  // Azure WireServer: a public address that only the platform answers on.
  '168.63.129.16/32',
  // Oracle Cloud's legacy metadata address.
  '192.0.0.192/32',
];

/**
 * Ranges whose ipaddr.js name is too coarse (`reserved`) for a useful reason, or that it does not
 * name at all. Checked before `range()`.
 */
const namedRangeCidrs: readonly { readonly reason: SsrfBlockReason; readonly range: string }[] = [
  // RFC 2544 benchmarking, RFC 5180 for IPv6.
  { reason: 'benchmarking', range: '198.18.0.0/15' },
  { reason: 'benchmarking', range: '2001:2::/48' },
  // RFC 5737 TEST-NET-1/2/3, RFC 3849 and RFC 9637 for IPv6.
  { reason: 'documentation', range: '192.0.2.0/24' },
  { reason: 'documentation', range: '198.51.100.0/24' },
  { reason: 'documentation', range: '203.0.113.0/24' },
  { reason: 'documentation', range: '2001:db8::/32' },
  { reason: 'documentation', range: '3fff::/20' },
  // RFC 8215 local-use NAT64 prefix: translated by a local gateway, so whatever it embeds is local.
  { reason: 'private', range: '64:ff9b:1::/48' },
];

/** IANA's global unicast block: an IPv6 address outside it (and not embedding IPv4) is unallocated or special. */
const ipv6GlobalUnicastCidr = '2000::/3';

interface BlockedRanges {
  readonly cloudMetadata: readonly Cidr[];
  readonly named: readonly { readonly reason: SsrfBlockReason; readonly range: Cidr }[];
  readonly ipv6GlobalUnicast: Cidr;
}

let parsedRanges: BlockedRanges | undefined;

/**
 * The ranges above, parsed with the first address checked rather than at cold start (~1.5 ms): most
 * requests of a function holding a guard (reading or deleting a webhook endpoint) check no address.
 */
function blockedRanges(): BlockedRanges {
  parsedRanges ??= {
    cloudMetadata: cloudMetadataCidrs.map(cidr),
    named: namedRangeCidrs.map(({ reason, range }) => ({ reason, range: cidr(range) })),
    ipv6GlobalUnicast: cidr(ipv6GlobalUnicastCidr),
  };
  return parsedRanges;
}

/** ipaddr.js range names, as reasons. Every name not listed here (but `unicast`) is `reserved`. */
const reasonByRange: Readonly<Record<string, SsrfBlockReason>> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link_local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier_grade_nat',
  private: 'private',
  uniqueLocal: 'private',
  // Site-local (fec0::/10) was IPv6's first private range; deprecated but still routable inside sites.
  deprecatedSiteLocal: 'private',
  benchmarking: 'benchmarking',
};

const blockedMessages: Readonly<Record<SsrfBlockReason, string>> = {
  invalid_url: 'URL is not a valid absolute URL',
  scheme_not_allowed: 'URL must use http or https',
  credentials_in_url: 'URL must not contain a user name or password',
  unresolvable: "URL's host name does not resolve",
  invalid_address: "URL's host is not a public internet address",
  cloud_metadata: "URL's host is not a public internet address",
  loopback: "URL's host is not a public internet address",
  private: "URL's host is not a public internet address",
  link_local: "URL's host is not a public internet address",
  carrier_grade_nat: "URL's host is not a public internet address",
  multicast: "URL's host is not a public internet address",
  unspecified: "URL's host is not a public internet address",
  broadcast: "URL's host is not a public internet address",
  benchmarking: "URL's host is not a public internet address",
  documentation: "URL's host is not a public internet address",
  reserved: "URL's host is not a public internet address",
};

/**
 * One message for every address reason: telling a caller *why* its host name was refused would let
 * it map which internal names resolve to what.
 */
function blocked(reason: SsrfBlockReason, address?: string): SsrfBlockedError {
  return new SsrfBlockedError(reason, blockedMessages[reason], address === undefined ? {} : { address });
}

function inRange(address: IpAddress, [network, bits]: Cidr): boolean {
  return address.kind() === network.kind() && address.match(network, bits);
}

function ipv4FromWords(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

/**
 * The IPv4 address an IPv6 address stands for or routes to, if it has one:
 * - mapped `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d` and compat `::a.b.c.d`: the same host, so
 *   judged (and allowlisted) as that IPv4 address;
 * - NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::` and Teredo (server, and client XOR-obfuscated):
 *   a gateway forwards to the embedded address, so it is blocked whenever that one is.
 */
function embeddedIpv4(address: ipaddr.IPv6): { ipv4: ipaddr.IPv4[]; sameHost: boolean } | undefined {
  const p = address.parts as [number, number, number, number, number, number, number, number];
  const zeros = (from: number, to: number) => p.slice(from, to).every((part) => part === 0);
  if (zeros(0, 5) && p[5] === 0xffff) return { ipv4: [ipv4FromWords(p[6], p[7])], sameHost: true };
  if (zeros(0, 4) && p[4] === 0xffff && p[5] === 0)
    return { ipv4: [ipv4FromWords(p[6], p[7])], sameHost: true };
  // `::` and `::1` are IPv6's own unspecified and loopback, judged as such rather than as 0.0.0.x.
  if (zeros(0, 6) && (p[6] !== 0 || p[7] > 1)) return { ipv4: [ipv4FromWords(p[6], p[7])], sameHost: true };
  if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6))
    return { ipv4: [ipv4FromWords(p[6], p[7])], sameHost: false };
  if (p[0] === 0x2002) return { ipv4: [ipv4FromWords(p[1], p[2])], sameHost: false };
  if (p[0] === 0x2001 && p[1] === 0) {
    return {
      ipv4: [ipv4FromWords(p[2], p[3]), ipv4FromWords(p[6] ^ 0xffff, p[7] ^ 0xffff)],
      sameHost: false,
    };
  }
  return undefined;
}

/** Why an address (no embedding, no allowlist) is not public, or undefined when it is. */
function ownBlockReason(address: IpAddress): SsrfBlockReason | undefined {
  const { named, ipv6GlobalUnicast } = blockedRanges();
  for (const { reason, range } of named) if (inRange(address, range)) return reason;
  const name = address.range();
  if (name === 'unicast') {
    return address.kind() === 'ipv6' && !inRange(address, ipv6GlobalUnicast) ? 'reserved' : undefined;
  }
  return reasonByRange[name] ?? 'reserved';
}

/** Parses a CIDR or a bare address (a /32 or /128), or undefined when it is neither. */
function parseAllowlistEntry(entry: string): Cidr | undefined {
  const text = entry.trim();
  if (ipaddr.isValidCIDR(text)) return cidr(text);
  // isIP, not ipaddr.isValid: ipaddr also accepts loose IPv4 spellings (`0x7f.1`) nobody means in a config.
  if (isIP(text) !== 0) {
    const address = ipaddr.parse(text);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  }
  return undefined;
}

/**
 * Checks URLs before a request and addresses at connect time, so that a user-supplied URL (a webhook
 * endpoint) can only reach the public internet. Blocked: loopback, private (RFC 1918, fc00::/7),
 * link-local, CGNAT, multicast, unspecified, broadcast, reserved, benchmarking, documentation and cloud
 * metadata addresses, IPv4 and IPv6, including IPv6 forms that embed a blocked IPv4 address (mapped,
 * compat, NAT64, 6to4, Teredo).
 *
 * Use both halves: `assertUrlAllowed` before the request (it also covers IP literals, for which Node
 * never calls `lookup`), and `lookup` in the request options, so the address actually connected to is
 * checked and DNS rebinding between the check and the connection cannot slip through. Never follow
 * redirects with it: a 3xx is an answer, not a new URL to fetch.
 *
 * @example
 * const guard = new SsrfGuard({ allowlist: ssrfAllowlistFromEnvironment(process.env.SSRF_ALLOWLIST) });
 * const url = await guard.assertUrlAllowed(endpoint.url); // SsrfBlockedError (400) if refused
 * const request = https.request(url, { method: 'POST', lookup: guard.lookup, timeout: 10_000 });
 */
export class SsrfGuard {
  private readonly allowlist: readonly Cidr[];
  private readonly resolve: (hostname: string) => Promise<ResolvedAddress[]>;
  private readonly resolveTimeoutMs: number;

  constructor(options: SsrfGuardOptions = {}) {
    const problems: string[] = [];
    this.resolveTimeoutMs = options.resolveTimeoutMs ?? 3000;
    checkTimeLimit(problems, 'resolveTimeoutMs', this.resolveTimeoutMs);
    const allowlist: Cidr[] = [];
    for (const [index, entry] of (options.allowlist ?? []).entries()) {
      const parsed = parseAllowlistEntry(entry);
      if (parsed) allowlist.push(parsed);
      else problems.push(`allowlist[${index}] "${entry}" is not a CIDR such as 127.0.0.0/8 or ::1/128`);
    }
    if (problems.length > 0) throw new InvalidOptionsError('SsrfGuard', problems);
    this.allowlist = allowlist;
    this.resolve = options.resolve ?? ((hostname) => dnsLookup(hostname, { all: true, verbatim: true }));
  }

  /**
   * Why `address` must not be connected to, or undefined when it may. An address that is not an IP
   * address at all is refused.
   */
  blockReason(address: string): SsrfBlockReason | undefined {
    if (isIP(address) === 0) return 'invalid_address';
    const parsed = ipaddr.parse(address);
    const embedded = parsed.kind() === 'ipv6' ? embeddedIpv4(parsed as ipaddr.IPv6) : undefined;
    const candidates: IpAddress[] = [parsed, ...(embedded?.ipv4 ?? [])];
    const { cloudMetadata } = blockedRanges();
    if (candidates.some((candidate) => cloudMetadata.some((range) => inRange(candidate, range)))) {
      return 'cloud_metadata';
    }
    if (embedded?.sameHost) {
      // Another spelling of an IPv4 address: exactly as that address, allowlist included.
      const [ipv4] = embedded.ipv4 as [ipaddr.IPv4];
      return this.allowlisted(ipv4) ? undefined : ownBlockReason(ipv4);
    }
    // A gateway forwards to what is embedded, so that address must pass on its own, allowlist or not.
    for (const ipv4 of embedded?.ipv4 ?? []) {
      const reason = ownBlockReason(ipv4);
      if (reason !== undefined && !this.allowlisted(ipv4)) return reason;
    }
    if (this.allowlisted(parsed)) return undefined;
    // The translation prefixes themselves are not global unicast; what they embed was judged above.
    if (embedded) return undefined;
    return ownBlockReason(parsed);
  }

  /** Throws {@link SsrfBlockedError} when `address` must not be connected to. */
  assertAddressAllowed(address: string): void {
    const reason = this.blockReason(address);
    if (reason !== undefined) throw blocked(reason, address);
  }

  /**
   * Parses `url` and checks it: http or https only, no credentials, and its host, an IP literal or
   * every address its name resolves to, public (or allowlisted). Resolves with the parsed URL.
   * WHATWG parsing first normalises IPv4 spellings (`http://2130706433`, `http://0x7f.1` are 127.0.0.1).
   * A failed DNS lookup other than "no such name" (a timeout, say) rejects with the DNS error itself:
   * it says nothing about the URL and may pass on a retry.
   */
  async assertUrlAllowed(url: string): Promise<URL> {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    if (!parsed) throw blocked('invalid_url');
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw blocked('scheme_not_allowed');
    if (parsed.username !== '' || parsed.password !== '') throw blocked('credentials_in_url');
    // IPv6 literals keep their brackets in `hostname`.
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0) {
      this.assertAddressAllowed(host);
      return parsed;
    }
    const answers = await this.resolveAll(host);
    // Every answer, not only the first: a client may connect to any of them.
    for (const { address } of answers) this.assertAddressAllowed(address);
    return parsed;
  }

  /**
   * {@link assertUrlAllowed} for a URL a client submits (a webhook endpoint being registered), as the HTTP
   * error the client should see: a refused URL or a name with no address is a 400 on `field`; a DNS failure
   * that may pass on a retry (a timeout, SERVFAIL, EAI_AGAIN) is a 503 with Retry-After, as it says nothing
   * about the URL. `onBlocked` hears the guard's own refusal first (its reason and address), which the 400
   * does not tell apart from a malformed field: for a caller to audit it.
   */
  async assertSubmittedUrlAllowed(
    url: string,
    field: string,
    onBlocked?: (blocked: SsrfBlockedError) => void,
  ): Promise<URL> {
    try {
      return await this.assertUrlAllowed(url);
    } catch (error) {
      if (error instanceof SsrfBlockedError) {
        onBlocked?.(error);
        throw new ValidationError(`Invalid request: ${field}`, [{ field, message: error.message }]);
      }
      if (typeof (error as NodeJS.ErrnoException).code === 'string') {
        throw new ServiceUnavailableError(
          "The URL's host name could not be resolved right now",
          dnsRetryAfterSec,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  }

  /**
   * A `net.LookupFunction` for `http.request`, `https.request`, `net.connect` or undici's `connect`
   * options: resolves like `dns.lookup`, then refuses (with {@link SsrfBlockedError}) unless every
   * answer is allowed, so the connection can only go to a checked address.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    this.resolveAll(hostname)
      .then((answers) => {
        for (const { address } of answers) this.assertAddressAllowed(address);
        const usable = answers.filter((answer) => family === 0 || answer.family === family);
        const [first] = usable;
        if (!first)
          throw Object.assign(new Error(`No IPv${family} address for ${hostname}`), { code: 'ENOTFOUND' });
        if (options.all)
          callback(
            null,
            usable.map(({ address, family }) => ({ address, family })),
          );
        else callback(null, first.address, first.family);
      })
      .catch((error: NodeJS.ErrnoException) => callback(error, ''));
  };

  private allowlisted(address: IpAddress): boolean {
    return this.allowlist.some((range) => inRange(address, range));
  }

  private async resolveAll(hostname: string): Promise<ResolvedAddress[]> {
    let answers: ResolvedAddress[];
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            Object.assign(new Error(`DNS lookup of ${hostname} took over ${this.resolveTimeoutMs} ms`), {
              code: 'ETIMEOUT',
            }),
          ),
        this.resolveTimeoutMs,
      );
    });
    try {
      answers = await Promise.race([this.resolve(hostname), timedOut]);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') throw blocked('unresolvable');
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (answers.length === 0) throw blocked('unresolvable');
    return answers;
  }
}

/**
 * Parses `SSRF_ALLOWLIST`: comma-separated CIDRs (or bare addresses), blanks ignored; unset or empty
 * means nothing is un-blocked. Fails naming every invalid entry by position.
 *
 * @example
 * ssrfAllowlistFromEnvironment('127.0.0.0/8, ::1/128'); // ['127.0.0.0/8', '::1/128']
 */
export function ssrfAllowlistFromEnvironment(value: string | undefined): string[] {
  const entries = (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const invalid = entries.flatMap((entry, index) =>
    parseAllowlistEntry(entry) === undefined ? [`entry ${index + 1}`] : [],
  );
  if (invalid.length > 0) {
    throw new ConfigError([
      {
        key: 'SSRF_ALLOWLIST',
        message: `${invalid.join(', ')} not a CIDR such as 127.0.0.0/8 or ::1/128`,
      },
    ]);
  }
  return entries;
}

/**
 * Whether `url` is an https URL another machine answers: its host neither `localhost` (nor a name under
 * it) nor an address the guard blocks (loopback, private, link-local, metadata…). A DNS name is taken as
 * written: configuration is checked without a lookup, at cold start and at synth.
 *
 * @example
 * isPublicHttpsUrl('https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X'); // true
 * isPublicHttpsUrl('http://127.0.0.1:3000'); // false
 */
export function isPublicHttpsUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const { protocol, hostname } = new URL(url);
  if (protocol !== 'https:') return false;
  // The parser has put an IPv4 host in dotted decimal; IPv6 literals keep their brackets.
  const host = hostname.replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost' || host.endsWith('.localhost')) return false;
  return isIP(host) === 0 || new SsrfGuard().blockReason(host) === undefined;
}
