import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { SsrfGuard } from '../../functions/shared/ssrf-guard.js';

const guard = new SsrfGuard({ resolve: async () => [] });

const toDotted = (value: number) => [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
const hexWords = (value: number) =>
  `${((value >>> 16) & 0xffff).toString(16)}:${(value & 0xffff).toString(16)}`;

/** An IPv4 address inside `base/bits`, as a 32-bit unsigned integer. */
const inCidr = (base: string, bits: number) => {
  const start = base.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  return fc.integer({ min: 0, max: 2 ** (32 - bits) - 1 }).map((offset) => start + offset);
};

const blockedV4 = fc.oneof(
  inCidr('127.0.0.0', 8),
  inCidr('10.0.0.0', 8),
  inCidr('172.16.0.0', 12),
  inCidr('192.168.0.0', 16),
  inCidr('169.254.0.0', 16),
  inCidr('100.64.0.0', 10),
  inCidr('0.0.0.0', 8),
  inCidr('224.0.0.0', 4),
  inCidr('240.0.0.0', 4),
  inCidr('198.18.0.0', 15),
);
const anyV4 = fc.integer({ min: 0, max: 2 ** 32 - 1 });

describe('SSRF guard properties', () => {
  it('blocks every address of the loopback, private, link-local, CGNAT, multicast and reserved ranges', () => {
    fc.assert(
      fc.property(blockedV4, (value) => {
        expect(guard.blockReason(toDotted(value))).toBeDefined();
      }),
    );
  });

  it('gives every spelling of an IPv4 address the verdict of its dotted form', async () => {
    await fc.assert(
      fc.asyncProperty(anyV4, async (value) => {
        const verdict = guard.blockReason(toDotted(value));
        for (const url of [
          `http://${value}/`,
          `http://0x${value.toString(16)}/`,
          `http://0${value.toString(8)}/`,
          `http://[::ffff:${toDotted(value)}]/`,
          `http://[::ffff:${hexWords(value)}]/`,
        ]) {
          const outcome = await guard.assertUrlAllowed(url).then(
            () => undefined,
            (error: { reason?: string }) => error.reason,
          );
          expect(outcome, url).toBe(verdict);
        }
      }),
    );
  });

  it('blocks a 6to4 or NAT64 address exactly when the IPv4 address it embeds is blocked', () => {
    fc.assert(
      fc.property(anyV4, fc.integer({ min: 0, max: 0xffff }), (value, subnet) => {
        const blocked = guard.blockReason(toDotted(value)) !== undefined;
        expect(guard.blockReason(`2002:${hexWords(value)}:${subnet.toString(16)}::1`) !== undefined).toBe(
          blocked,
        );
        expect(guard.blockReason(`64:ff9b::${hexWords(value)}`) !== undefined).toBe(blocked);
      }),
    );
  });

  it('never allows an IPv6 address outside global unicast unless it embeds a public IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const parts = ipaddr.IPv6.parse(address).parts;
        const first80Zero = parts.slice(0, 5).every((part) => part === 0);
        const nat64 = parts[0] === 0x64 && parts[1] === 0xff9b;
        const globalUnicast = ((parts[0] ?? 0) & 0xe000) === 0x2000;
        if (!globalUnicast && !first80Zero && !nat64) expect(guard.blockReason(address)).toBeDefined();
      }),
    );
  });
});
