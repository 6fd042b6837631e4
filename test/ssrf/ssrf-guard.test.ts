import { describe, expect, it } from 'vitest';
import {
  isPublicHttpsUrl,
  type ResolvedAddress,
  SsrfGuard,
  ssrfAllowlistFromEnvironment,
} from '../../functions/shared/ssrf-guard.js';
import { ConfigError, InvalidOptionsError, SsrfBlockedError } from '../../middleware/errors.js';
import { renderProblem } from '../../middleware/http/problem.js';

/** A resolver that answers from a fixed table, so no test depends on real DNS. */
function fakeDns(table: Record<string, string[]>): (hostname: string) => Promise<ResolvedAddress[]> {
  return async (hostname) => {
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

const publicV4 = '93.184.215.14';
const publicV6 = '2606:4700:4700::1111';

async function refusal(guard: SsrfGuard, url: string): Promise<SsrfBlockedError> {
  const error = await guard.assertUrlAllowed(url).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, `${url} should be refused`).toBeInstanceOf(SsrfBlockedError);
  return error as SsrfBlockedError;
}

describe('SsrfGuard.assertUrlAllowed', () => {
  const guard = new SsrfGuard({ resolve: fakeDns({ 'hooks.example.com': [publicV4, publicV6] }) });

  it.each([
    ['http://127.0.0.1/', 'loopback', '127.0.0.1'],
    ['http://10.0.0.1/', 'private', '10.0.0.1'],
    ['http://172.16.5.4/', 'private', '172.16.5.4'],
    ['http://192.168.1.1/', 'private', '192.168.1.1'],
    ['http://169.254.169.254/latest/meta-data/', 'cloud_metadata', '169.254.169.254'],
    // Every cloud-metadata entry is pinned by its reason: without its entry each address would get a
    // weaker reason (link_local, private, reserved…), and Azure's WireServer would pass.
    ['http://169.254.169.253/', 'cloud_metadata', '169.254.169.253'],
    ['http://169.254.169.123/', 'cloud_metadata', '169.254.169.123'],
    ['http://169.254.170.2/v2/credentials/', 'cloud_metadata', '169.254.170.2'],
    ['http://169.254.170.23/v1/credentials', 'cloud_metadata', '169.254.170.23'],
    ['http://168.63.129.16/machine?comp=goalstate', 'cloud_metadata', '168.63.129.16'],
    ['http://192.0.0.192/', 'cloud_metadata', '192.0.0.192'],
    ['http://169.254.10.10/', 'link_local', '169.254.10.10'],
    ['http://100.64.0.1/', 'carrier_grade_nat', '100.64.0.1'],
    ['http://100.100.100.200/', 'cloud_metadata', '100.100.100.200'],
    ['http://224.0.0.1/', 'multicast', '224.0.0.1'],
    ['http://0.0.0.0/', 'unspecified', '0.0.0.0'],
    ['http://255.255.255.255/', 'broadcast', '255.255.255.255'],
    ['http://198.18.0.1/', 'benchmarking', '198.18.0.1'],
    ['http://192.0.2.1/', 'documentation', '192.0.2.1'],
    ['http://240.0.0.1/', 'reserved', '240.0.0.1'],
    ['http://[::1]/', 'loopback', '::1'],
    ['http://[::]/', 'unspecified', '::'],
    ['http://[fe80::1]/', 'link_local', 'fe80::1'],
    ['http://[fc00::1]/', 'private', 'fc00::1'],
    ['http://[fd00:ec2::254]/', 'cloud_metadata', 'fd00:ec2::254'],
    ['http://[fd00:ec2::253]/', 'cloud_metadata', 'fd00:ec2::253'],
    ['http://[fd00:ec2::123]/', 'cloud_metadata', 'fd00:ec2::123'],
    ['http://[fd00:ec2::23]/', 'cloud_metadata', 'fd00:ec2::23'],
    ['http://[ff02::1]/', 'multicast', 'ff02::1'],
    ['http://[2001:db8::1]/', 'documentation', '2001:db8::1'],
    ['http://[4000::1]/', 'reserved', '4000::1'],
  ])('refuses %s as %s', async (url, reason, address) => {
    const error = await refusal(guard, url);
    expect(error.reason).toBe(reason);
    expect(error.address).toBe(address);
  });

  it.each([
    // WHATWG URL parsing normalises these before the guard sees them; each is 127.0.0.1.
    ['http://2130706433/', 'decimal'],
    ['http://0x7f.1/', 'hex + short form'],
    ['http://0x7f000001/', 'hex'],
    ['http://017700000001/', 'octal'],
    ['http://0177.0.0.1/', 'octal dotted'],
    ['http://127.1/', 'short form'],
    ['http://%31%32%37.0.0.1/', 'percent-encoded'],
  ])('refuses loopback written as %s (%s)', async (url) => {
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const error = await refusal(guard, url);
    expect(error).toMatchObject({ reason: 'loopback', address: '127.0.0.1' });
  });

  it.each([
    ['http://[::ffff:127.0.0.1]/', 'loopback'],
    ['http://[::ffff:7f00:1]/', 'loopback'],
    ['http://[::127.0.0.1]/', 'loopback'],
    ['http://[::ffff:0:127.0.0.1]/', 'loopback'],
    ['http://[::ffff:10.0.0.1]/', 'private'],
    ['http://[::ffff:169.254.169.254]/', 'cloud_metadata'],
    // NAT64, 6to4 and Teredo route to the IPv4 address they embed.
    ['http://[64:ff9b::7f00:1]/', 'loopback'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'cloud_metadata'],
    ['http://[64:ff9b:1::1]/', 'private'],
    ['http://[2002:a00:1::1]/', 'private'],
    ['http://[2002:7f00:1::]/', 'loopback'],
    // Teredo: server 65.54.227.120, client 10.0.0.1 stored XOR-ed (f5ff:fffe).
    ['http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/', 'private'],
  ])('judges the IPv6 form %s by the IPv4 address it embeds (%s)', async (url, reason) => {
    expect((await refusal(guard, url)).reason).toBe(reason);
  });

  it('refuses a host name that resolves to a private address', async () => {
    const dns = new SsrfGuard({ resolve: fakeDns({ 'intranet.example.com': ['10.1.2.3'] }) });
    const error = await refusal(dns, 'https://intranet.example.com/hook');
    expect(error).toMatchObject({ reason: 'private', address: '10.1.2.3' });
  });

  it('refuses a host name when any one of its addresses is blocked, not only the first', async () => {
    const dns = new SsrfGuard({ resolve: fakeDns({ 'mixed.example.com': [publicV4, publicV6, '::1'] }) });
    expect((await refusal(dns, 'https://mixed.example.com/')).reason).toBe('loopback');
  });

  it('refuses localhost, resolved for real', async () => {
    const error = await refusal(new SsrfGuard(), 'http://localhost:8080/');
    expect(error.reason).toBe('loopback');
    expect(['127.0.0.1', '::1']).toContain(error.address);
  });

  it.each([
    ['ftp://example.com/file', 'scheme_not_allowed'],
    ['file:///etc/passwd', 'scheme_not_allowed'],
    ['javascript:alert(1)', 'scheme_not_allowed'],
    ['gopher://127.0.0.1:6379/_INFO', 'scheme_not_allowed'],
    ['data:text/plain,hi', 'scheme_not_allowed'],
    ['not a url', 'invalid_url'],
    ['/relative/path', 'invalid_url'],
    ['http://user:secret@hooks.example.com/', 'credentials_in_url'],
    ['http://user@hooks.example.com/', 'credentials_in_url'],
    ['http://:secret@hooks.example.com/', 'credentials_in_url'],
    ['http://no-such-host.example.com/', 'unresolvable'],
  ])('refuses %s (%s)', async (url, reason) => {
    const error = await refusal(guard, url);
    expect(error.reason).toBe(reason);
    expect(error.address).toBeUndefined();
  });

  it('refuses a name that resolves to nothing', async () => {
    const empty = new SsrfGuard({ resolve: async () => [] });
    expect((await refusal(empty, 'http://void.example.com/')).reason).toBe('unresolvable');
  });

  it('passes on a DNS failure that is not "no such name", which may succeed on a retry', async () => {
    const flaky = new SsrfGuard({
      resolve: async () => {
        throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
      },
    });
    await expect(flaky.assertUrlAllowed('http://hooks.example.com/')).rejects.toMatchObject({
      code: 'EAI_AGAIN',
    });
  });

  it('refuses a DNS answer that is not an IP address', async () => {
    const odd = new SsrfGuard({ resolve: async () => [{ address: 'not-an-ip', family: 4 }] });
    expect((await refusal(odd, 'http://odd.example.com/')).reason).toBe('invalid_address');
  });

  it('allows public addresses and names, and returns the parsed URL', async () => {
    const url = await guard.assertUrlAllowed('https://hooks.example.com:8443/in?x=1');
    expect(url).toBeInstanceOf(URL);
    expect(url.href).toBe('https://hooks.example.com:8443/in?x=1');
    await expect(guard.assertUrlAllowed(`http://${publicV4}/`)).resolves.toBeInstanceOf(URL);
    await expect(guard.assertUrlAllowed(`http://[${publicV6}]/`)).resolves.toBeInstanceOf(URL);
    // A 6to4 address embedding a public IPv4 address is an ordinary public address.
    await expect(guard.assertUrlAllowed('http://[2002:5db8:d70e::1]/')).resolves.toBeInstanceOf(URL);
    await expect(guard.assertUrlAllowed(`http://[::ffff:${publicV4}]/`)).resolves.toBeInstanceOf(URL);
  });

  it('renders as a 400 problem whose detail names neither the address nor the reason', async () => {
    const dns = new SsrfGuard({ resolve: fakeDns({ 'db.internal.example.com': ['10.9.8.7'] }) });
    const error = await refusal(dns, 'http://db.internal.example.com/');
    const { problem } = renderProblem(error);
    expect(problem).toMatchObject({ status: 400, code: 'SSRF_BLOCKED' });
    expect(problem.detail).toBe("URL's host is not a public internet address");
    expect(JSON.stringify(problem)).not.toContain('10.9.8.7');
  });
});

describe('SsrfGuard allowlist', () => {
  it('un-blocks exactly the listed ranges, for the local runtime and tests', async () => {
    const guard = new SsrfGuard({ allowlist: ['127.0.0.0/8', '::1/128'] });
    await expect(guard.assertUrlAllowed('http://127.0.0.1:3000/')).resolves.toBeInstanceOf(URL);
    await expect(guard.assertUrlAllowed('http://127.9.9.9/')).resolves.toBeInstanceOf(URL);
    await expect(guard.assertUrlAllowed('http://[::1]/')).resolves.toBeInstanceOf(URL);
    await expect(guard.assertUrlAllowed('http://localhost/')).resolves.toBeInstanceOf(URL);
    // The mapped form is the same host, so the IPv4 entry covers it.
    await expect(guard.assertUrlAllowed('http://[::ffff:127.0.0.1]/')).resolves.toBeInstanceOf(URL);
    expect((await refusal(guard, 'http://10.0.0.1/')).reason).toBe('private');
    expect((await refusal(guard, 'http://[::ffff:10.0.0.1]/')).reason).toBe('private');
  });

  it('accepts a bare address as a single-address entry', async () => {
    const guard = new SsrfGuard({ allowlist: ['10.0.0.1'] });
    await expect(guard.assertUrlAllowed('http://10.0.0.1/')).resolves.toBeInstanceOf(URL);
    expect((await refusal(guard, 'http://10.0.0.2/')).reason).toBe('private');
  });

  it('never un-blocks cloud metadata, even under an entry that covers it', async () => {
    const guard = new SsrfGuard({ allowlist: ['169.254.0.0/16', 'fd00::/8', '0.0.0.0/0'] });
    await expect(guard.assertUrlAllowed('http://169.254.1.1/')).resolves.toBeInstanceOf(URL);
    expect((await refusal(guard, 'http://169.254.169.254/')).reason).toBe('cloud_metadata');
    expect((await refusal(guard, 'http://[fd00:ec2::254]/')).reason).toBe('cloud_metadata');
    expect((await refusal(guard, 'http://[::ffff:169.254.169.254]/')).reason).toBe('cloud_metadata');
  });

  it('un-blocks a translated address only when what it embeds is allowlisted too', async () => {
    const guard = new SsrfGuard({ allowlist: ['2002::/16'] });
    expect((await refusal(guard, 'http://[2002:7f00:1::]/')).reason).toBe('loopback');
    const both = new SsrfGuard({ allowlist: ['127.0.0.0/8', '2002::/16', '2001::/32'] });
    await expect(both.assertUrlAllowed('http://[2002:7f00:1::]/')).resolves.toBeInstanceOf(URL);
    // Teredo: server 127.0.0.1, client 127.0.0.2 (stored XOR 0xffff).
    await expect(both.assertUrlAllowed('http://[2001:0:7f00:1::80ff:fffd]/')).resolves.toBeInstanceOf(URL);
  });

  it('rejects invalid entries at construction, listing every one', () => {
    const construct = () =>
      new SsrfGuard({ allowlist: ['127.0.0.0/8', 'localhost', '10.0.0.0/33', '0x7f.1'] });
    expect(construct).toThrow(InvalidOptionsError);
    expect(construct).toThrow(/allowlist\[1\] "localhost".*allowlist\[2\] "10\.0\.0\.0\/33".*allowlist\[3\]/);
  });
});

describe('ssrfAllowlistFromEnvironment', () => {
  it('reads comma-separated CIDRs and ignores blanks', () => {
    expect(ssrfAllowlistFromEnvironment(' 127.0.0.0/8, ::1/128 ,,')).toEqual(['127.0.0.0/8', '::1/128']);
    expect(ssrfAllowlistFromEnvironment(undefined)).toEqual([]);
    expect(ssrfAllowlistFromEnvironment('')).toEqual([]);
  });

  it('fails with a ConfigError naming every invalid entry by position', () => {
    const read = () => ssrfAllowlistFromEnvironment('127.0.0.0/8,nonsense,::1/129');
    expect(read).toThrow(ConfigError);
    expect(read).toThrow('SSRF_ALLOWLIST (entry 2, entry 3 not a CIDR such as 127.0.0.0/8 or ::1/128)');
  });
});

describe('isPublicHttpsUrl', () => {
  it('accepts https on a DNS name or a public address', () => {
    for (const url of [
      'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X',
      'https://login.example.org/realms/app/protocol/openid-connect/certs',
      `https://${publicV4}/issuer`,
      `https://[${publicV6}]/issuer`,
      'https://localhost.example.org/',
    ]) {
      expect(isPublicHttpsUrl(url), url).toBe(true);
    }
  });

  it('refuses plain http, localhost and every address the guard blocks, however spelled', () => {
    for (const url of [
      'http://login.example.org/realms/app',
      'http://127.0.0.1:3000',
      'https://localhost:3000',
      'https://localhost.:3000',
      'https://auth.localhost/',
      'https://127.0.0.1:9001/',
      'https://0x7f.1/',
      'https://2130706433/',
      'https://[::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://0.0.0.0/',
      'https://10.0.0.5/issuer',
      'https://192.168.1.10/issuer',
      'https://169.254.169.254/latest',
      'https://[fd00:ec2::254]/',
      'ftp://login.example.org/',
      'not a url',
    ]) {
      expect(isPublicHttpsUrl(url), url).toBe(false);
    }
  });
});

describe('SsrfGuard DNS lookups that hang', () => {
  const hanging = () => new Promise<ResolvedAddress[]>(() => {});

  it('gives up on a lookup after resolveTimeoutMs with code ETIMEOUT', async () => {
    const guard = new SsrfGuard({ resolve: hanging, resolveTimeoutMs: 50 });
    await expect(guard.assertUrlAllowed('http://hooks.example.com/')).rejects.toMatchObject({
      code: 'ETIMEOUT',
    });
  });

  it('refuses a resolveTimeoutMs that is not a whole number of milliseconds', () => {
    expect(() => new SsrfGuard({ resolveTimeoutMs: 0 })).toThrow(InvalidOptionsError);
    expect(() => new SsrfGuard({ resolveTimeoutMs: 1.5 })).toThrow(/resolveTimeoutMs/);
  });
});

describe('SsrfGuard.assertSubmittedUrlAllowed', () => {
  it('answers a refused URL or a name without address with a 400 on the field', async () => {
    const guard = new SsrfGuard({ resolve: fakeDns({ 'intranet.example.com': ['10.1.2.3'] }) });
    for (const url of ['http://intranet.example.com/', 'http://void.example.com/']) {
      const error = await guard.assertSubmittedUrlAllowed(url, 'body.url').catch((thrown: unknown) => thrown);
      expect(renderProblem(error).response).toMatchObject({ statusCode: 400 });
      expect(error).toMatchObject({ fields: [{ field: 'body.url' }] });
    }
  });

  it('answers a DNS failure that may pass, or a lookup that hangs, with 503 and Retry-After', async () => {
    const flaky = new SsrfGuard({
      resolve: async () => {
        throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
      },
    });
    const hung = new SsrfGuard({ resolve: () => new Promise(() => {}), resolveTimeoutMs: 50 });
    for (const guard of [flaky, hung]) {
      const error = await guard
        .assertSubmittedUrlAllowed('http://hooks.example.com/', 'body.url')
        .catch((thrown: unknown) => thrown);
      const { response } = renderProblem(error);
      expect(response.statusCode).toBe(503);
      expect(response.headers).toMatchObject({ 'Retry-After': '5' });
    }
  });

  it('resolves with the parsed URL when it is allowed', async () => {
    const guard = new SsrfGuard({ resolve: fakeDns({ 'hooks.example.com': [publicV4] }) });
    expect((await guard.assertSubmittedUrlAllowed('https://hooks.example.com/in', 'body.url')).href).toBe(
      'https://hooks.example.com/in',
    );
  });
});
