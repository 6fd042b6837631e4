import type { LookupAddress } from 'node:dns';
import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ResolvedAddress, SsrfGuard } from '../../functions/shared/ssrf-guard.js';
import { SsrfBlockedError } from '../../middleware/errors.js';

const publicV4 = '93.184.215.14';

/** A local server: `/redirect` answers 302 to a private address, anything else 200; counts requests. */
let server: Server;
let port: number;
let received = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    received += 1;
    if (req.url === '/redirect') {
      res.writeHead(302, { Location: 'http://10.0.0.1/internal' }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

/** A real `http.request` connecting through the guard's `lookup`; resolves with the response or rejects. */
function get(url: URL, guard: SsrfGuard): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { lookup: guard.lookup, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Answers `hostname` with each list in turn (the last one repeats): DNS that changes its mind. */
function sequenceDns(...answers: string[][]): (hostname: string) => Promise<ResolvedAddress[]> {
  let call = 0;
  return async () => {
    const addresses = answers[Math.min(call, answers.length - 1)] ?? [];
    call += 1;
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

describe('SsrfGuard.lookup at connect time', () => {
  it('connects to an allowlisted address it resolved itself (the lookup is what the socket uses)', async () => {
    const guard = new SsrfGuard({ allowlist: ['127.0.0.0/8'], resolve: sequenceDns(['127.0.0.1']) });
    // `hooks.test` exists in no DNS: the request can only reach the server through guard.lookup.
    const url = await guard.assertUrlAllowed(`http://hooks.test:${port}/ok`);
    const res = await get(url, guard);
    expect(res.statusCode).toBe(200);
  });

  it('refuses the connection when DNS answers public at check time and 127.0.0.1 at connect time', async () => {
    const before = received;
    const guard = new SsrfGuard({ resolve: sequenceDns([publicV4], ['127.0.0.1']) });
    // The check sees the public answer and passes...
    const url = await guard.assertUrlAllowed(`http://rebind.test:${port}/ok`);
    // ...the connection re-resolves, gets loopback, and never opens.
    const error = await get(url, guard).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SsrfBlockedError);
    expect(error).toMatchObject({ reason: 'loopback', address: '127.0.0.1' });
    expect(received).toBe(before);
  });

  it('does not follow a redirect, and the redirect target is refused', async () => {
    const guard = new SsrfGuard({ allowlist: ['127.0.0.0/8'], resolve: sequenceDns(['127.0.0.1']) });
    const url = await guard.assertUrlAllowed(`http://hooks.test:${port}/redirect`);
    const before = received;
    const res = await get(url, guard);
    // http.request never follows redirects: the 302 is the answer (a webhook delivery counts it as a failure).
    expect(res.statusCode).toBe(302);
    expect(received).toBe(before + 1);
    // Following it would mean a new URL, and that URL is refused, allowlist or not.
    const location = res.headers.location ?? '';
    expect(location).toBe('http://10.0.0.1/internal');
    await expect(guard.assertUrlAllowed(location)).rejects.toMatchObject({ reason: 'private' });
  });
});

describe('SsrfGuard.lookup as a LookupFunction', () => {
  function lookupOnce(
    guard: SsrfGuard,
    options: Parameters<SsrfGuard['lookup']>[1],
  ): Promise<{ error: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }> {
    return new Promise((resolve) => {
      guard.lookup('dual.test', options, (error, address, family) => resolve({ error, address, family }));
    });
  }
  const dual = new SsrfGuard({ resolve: sequenceDns([publicV4, '2606:4700:4700::1111']) });

  it('answers one address, or all of them, like dns.lookup', async () => {
    expect(await lookupOnce(dual, {})).toEqual({ error: null, address: publicV4, family: 4 });
    expect(await lookupOnce(dual, { family: 6 })).toEqual({
      error: null,
      address: '2606:4700:4700::1111',
      family: 6,
    });
    expect(await lookupOnce(dual, { family: 'IPv4', all: true })).toEqual({
      error: null,
      address: [{ address: publicV4, family: 4 }],
      family: undefined,
    });
    expect((await lookupOnce(dual, { all: true })).address).toHaveLength(2);
  });

  it('fails with ENOTFOUND when no answer has the requested family', async () => {
    const v4only = new SsrfGuard({ resolve: sequenceDns([publicV4]) });
    const { error } = await lookupOnce(v4only, { family: 'IPv6' });
    expect(error?.code).toBe('ENOTFOUND');
  });

  it('refuses when any answer is blocked, even one of another family than requested', async () => {
    const sneaky = new SsrfGuard({ resolve: sequenceDns([publicV4, '::1']) });
    const { error } = await lookupOnce(sneaky, { family: 4 });
    expect(error).toBeInstanceOf(SsrfBlockedError);
    expect(error).toMatchObject({ reason: 'loopback', address: '::1' });
  });
});
