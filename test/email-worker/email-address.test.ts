import { describe, expect, it } from 'vitest';
import { emailAddressSchema } from '../../functions/shared/schemas.js';
import { hasIdnaDomain, undeliverableMailSuffix } from '../../middleware/email-address.js';

/** A 252-character domain, the most an address of 254 with a one-character local part has room for. */
const longDomain = `${`${'b'.repeat(62)}.`.repeat(3)}${'b'.repeat(60)}.de`;

const refusal = /^Must be an address that can receive mail: domains under \.test, .* never can$/;

describe('undeliverableMailSuffix', () => {
  it.each([
    ['z@test.test', 'test'],
    ['x@example.invalid', 'invalid'],
    ['a@docs.example', 'example'],
    ['y@localhost', 'localhost'],
    ['y@app.localhost', 'localhost'],
    ['p@printer.local', 'local'],
    ['h@duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion', 'onion'],
    ['n@name.alt', 'alt'],
    ['r@router.home.arpa', 'home.arpa'],
    ['c@corp.internal', 'internal'],
    ['Z@Mail.TEST', 'test'],
    ['z@mail.test.', 'test'],
  ])('names the reserved name of %s', (address, suffix) => {
    expect(undeliverableMailSuffix(address)).toBe(suffix);
  });

  it.each([
    'ada@example.com',
    'ada@example.org',
    'ada@example.net',
    'u@testing.com',
    'u@test.com',
    'u@contest',
    'u@mylocal',
    'u@x.arpa',
    'u@home.arpa.example.com',
    'no-at-sign.test',
  ])('finds nothing reserved in %s', (address) => {
    expect(undeliverableMailSuffix(address)).toBeUndefined();
  });
});

describe('hasIdnaDomain', () => {
  it.each(['a@xn--.com', 'a@xn--zz.com', 'a@mail.xn--zz.com', 'bob@bü cher.de', 'a@'])(
    'finds no domain IDNA can write in %s',
    (address) => {
      expect(hasIdnaDomain(address)).toBe(false);
    },
  );

  it.each(['ada@example.com', 'bob@xn--bcher-kva.de', 'bob@XN--BCHER-KVA.DE', 'bob@bücher.de', 'no-at-sign'])(
    'accepts the domain of %s',
    (address) => {
      expect(hasIdnaDomain(address)).toBe(true);
    },
  );
});

describe('emailAddressSchema', () => {
  it.each(['a@xn--.com', 'a@xn--zz.com'])(
    'refuses %s, whose ASCII domain is broken punycode, as a malformed address',
    (address) => {
      const result = emailAddressSchema.safeParse(address);
      expect(result.error?.issues.map((issue) => issue.message)).toEqual(['Invalid email address']);
    },
  );

  it.each([
    'z@test.test',
    'x@example.invalid',
    'Z@MAIL.TEST',
    'p@printer.local',
    'r@router.home.arpa',
    'c@corp.internal',
    // The domain is judged in its ASCII form.
    'bob@bücher.test',
  ])('refuses %s, whose domain can never receive mail, with the reason', (address) => {
    const result = emailAddressSchema.safeParse(address);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([expect.stringMatching(refusal)]);
  });

  it.each(['a b@x.test', 'bob@bü cher.de'])(
    'gives %s, a malformed address, one reason: that it is malformed',
    (address) => {
      const result = emailAddressSchema.safeParse(address);
      expect(result.error?.issues.map((issue) => issue.message)).toEqual(['Invalid email address']);
    },
  );

  it.each([
    ['ada@example.com', 'ada@example.com'],
    ['victim+1@gmail.com', 'victim+1@gmail.com'],
    ['v.i.c.t.i.m@gmail.com', 'v.i.c.t.i.m@gmail.com'],
    ['bob@bücher.de', 'bob@xn--bcher-kva.de'],
    // Internationalised top-level domains, whose ASCII form is an xn-- label with digits and hyphens.
    ['u1@пример.рф', 'u1@xn--e1afmkfd.xn--p1ai'],
    ['info@例子.中国', 'info@xn--fsqu00a.xn--fiqs8s'],
    ['a@example.xn--p1ai', 'a@example.xn--p1ai'],
    ["o'neil@example.com", "o'neil@example.com"],
    // Exactly at each limit: 64 before the @, 63 in a label, 254 in all.
    [`${'a'.repeat(64)}@example.com`, `${'a'.repeat(64)}@example.com`],
    [`a@${'b'.repeat(63)}.com`, `a@${'b'.repeat(63)}.com`],
    [`a@${longDomain}`, `a@${longDomain}`],
  ])('takes %s as %s', (address, parsed) => {
    expect(emailAddressSchema.parse(address)).toBe(parsed);
  });

  it.each([
    'a@example.xn--zz',
    'a@example.xn--',
    'a@example.xn--p1ai-',
    'a@example.xn--abc--',
    'a@example.c0m',
    "o'@example.com",
    'a..b@example.com',
  ])('refuses %s as a malformed address', (address) => {
    const result = emailAddressSchema.safeParse(address);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual(['Invalid email address']);
  });

  it.each([
    [`${'a'.repeat(65)}@example.com`, 'Must have at most 64 characters before the @'],
    [
      `a@${'b'.repeat(64)}.com`,
      'Must have at most 63 characters between two dots of the domain, written in ASCII (IDNA)',
    ],
    // 72 characters as typed, a 79-character label in ASCII.
    [
      `a@${'bücherei'.repeat(9)}.de`,
      'Must have at most 63 characters between two dots of the domain, written in ASCII (IDNA)',
    ],
    [`ab@${longDomain}`, 'Must be at most 254 characters, with the domain written in ASCII (IDNA)'],
  ])('refuses %s, longer than mail can carry, with the one limit it breaks', (address, message) => {
    const result = emailAddressSchema.safeParse(address);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([message]);
  });
});
