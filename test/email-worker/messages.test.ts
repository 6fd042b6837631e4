import { createHmac, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseEmailMessage } from '../../functions/email-worker/messages.js';
import { EmailTemplates } from '../../functions/email-worker/templates.js';
import {
  createVerificationLink,
  isValidVerification,
  verificationLinkProblem,
} from '../../functions/shared/verification-link.js';

const id = randomUUID();
const valid = {
  welcome: { id, type: 'welcome', to: 'a@example.com', data: { name: 'Ada' } },
  verification: {
    id,
    type: 'verification',
    to: 'a@example.com',
    data: {
      name: 'Ada',
      verificationUrl: 'http://127.0.0.1:3000/users/1/verify',
      expiresAt: '2030-01-01T00:00:00Z',
    },
  },
  'password-reset': {
    id,
    type: 'password-reset',
    to: 'a@example.com',
    data: { name: 'Ada', resetUrl: 'http://127.0.0.1:3000/reset?t=x', expiresInMinutes: 30 },
  },
  'security-alert': {
    id,
    type: 'security-alert',
    to: 'a@example.com',
    data: {
      name: 'Ada',
      event: 'New sign-in',
      occurredAt: '2030-01-01T00:00:00Z',
      details: 'From 203.0.113.9',
    },
  },
};

describe('email messages', () => {
  it('accept each of the four types and render every one of them', () => {
    const templates = new EmailTemplates();
    for (const message of Object.values(valid)) {
      const parsed = parseEmailMessage(JSON.stringify(message));
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      const rendered = templates.render(parsed.message);
      expect(rendered.subject.length).toBeGreaterThan(0);
      expect(rendered.text).toContain('Ada');
      expect(rendered.html).toContain('Ada');
    }
  });

  it('take a recipient at an internationalised domain in its ASCII form, and refuse one without', () => {
    const parsed = parseEmailMessage(JSON.stringify({ ...valid.welcome, to: 'bob@bücher.de' }));
    expect(parsed).toMatchObject({ ok: true, message: { to: 'bob@xn--bcher-kva.de' } });
    for (const to of ['bob@bü cher.de', 'josé@bücher.de']) {
      expect(parseEmailMessage(JSON.stringify({ ...valid.welcome, to }))).toMatchObject({ ok: false });
    }
  });

  it('take a recipient at an internationalised top-level domain in its ASCII form', () => {
    const parsed = parseEmailMessage(JSON.stringify({ ...valid.welcome, to: 'u1@пример.рф' }));
    expect(parsed).toMatchObject({ ok: true, message: { to: 'u1@xn--e1afmkfd.xn--p1ai' } });
  });

  it.each([
    [`${'v'.repeat(65)}@example.com`, 'Invalid message: to: Must have at most 64 characters before the @'],
    [
      `victim@${'b'.repeat(64)}.com`,
      'Invalid message: to: Must have at most 63 characters between two dots of the domain, written in ASCII (IDNA)',
    ],
  ])(
    'refuse a recipient longer than mail can carry, naming the field and the limit but not its value',
    (to, reason) => {
      expect(parseEmailMessage(JSON.stringify({ ...valid.welcome, to }))).toEqual({ ok: false, reason });
    },
  );

  it('refuse a recipient whose domain can never receive mail, naming the field but not its value', () => {
    const parsed = parseEmailMessage(JSON.stringify({ ...valid.welcome, to: 'victim@example.invalid' }));
    expect(parsed).toMatchObject({ ok: false, reason: expect.stringMatching(/to.*can receive mail/) });
    expect(JSON.stringify(parsed)).not.toContain('victim');
  });

  it('reject bad input with a reason that names the field but not its value', () => {
    const cases: [unknown, RegExp][] = [
      ['{not json', /not JSON/],
      [null, /Invalid message/],
      [{ ...valid.welcome, type: 'fax' }, /type/],
      [{ ...valid.welcome, id: 'not-a-uuid' }, /id/],
      [{ ...valid.welcome, to: 'secret-not-an-email' }, /to/],
      [{ ...valid.welcome, data: {} }, /data\.name/],
      [{ ...valid.welcome, data: { name: 'Ada', extra: 1 } }, /data/],
      [
        { ...valid.verification, data: { ...valid.verification.data, verificationUrl: 'nope' } },
        /verificationUrl/,
      ],
      [
        { ...valid['password-reset'], data: { ...valid['password-reset'].data, expiresInMinutes: 0 } },
        /expiresInMinutes/,
      ],
    ];
    for (const [body, reason] of cases) {
      const parsed = parseEmailMessage(typeof body === 'string' ? body : JSON.stringify(body));
      expect(parsed.ok).toBe(false);
      if (parsed.ok) continue;
      expect(parsed.reason).toMatch(reason);
      expect(parsed.reason).not.toContain('secret-not-an-email');
    }
  });

  const notSecureLink = 'Must be an absolute https URL, or http to localhost, 127.0.0.1 or ::1';
  const controls = 'Must not contain control, line separator or bidi characters';
  it.each([
    [
      'a javascript: verification link',
      'verification',
      { verificationUrl: 'javascript:alert(1)//' },
      'verificationUrl',
      notSecureLink,
    ],
    [
      'a data: reset link',
      'password-reset',
      { resetUrl: 'data:text/html,<script>alert(1)</script>' },
      'resetUrl',
      notSecureLink,
    ],
    [
      'an ftp: reset link',
      'password-reset',
      { resetUrl: 'ftp://example.com/reset' },
      'resetUrl',
      notSecureLink,
    ],
    // A loopback host is let through over http only: another scheme to it is refused all the same.
    [
      'an ftp: verification link to localhost',
      'verification',
      { verificationUrl: 'ftp://localhost/x' },
      'verificationUrl',
      notSecureLink,
    ],
    // file://localhost/x has an empty host (URL drops localhost there), so the loopback check alone would
    // refuse it: 127.0.0.1 keeps its host, and only the scheme check refuses it.
    [
      'a file: reset link to 127.0.0.1',
      'password-reset',
      { resetUrl: 'file://127.0.0.1/x' },
      'resetUrl',
      notSecureLink,
    ],
    [
      'a verification whose registration lapses at no ISO date-time',
      'verification',
      { registrationLapsesAt: 'tomorrow' },
      'registrationLapsesAt',
      'Invalid ISO datetime',
    ],
    // Schemes that only begin with http: the protocol must be http or https exactly.
    [
      'an httpx: verification link',
      'verification',
      { verificationUrl: 'httpx://example.com/verify' },
      'verificationUrl',
      notSecureLink,
    ],
    [
      'an https-evil: reset link',
      'password-reset',
      { resetUrl: 'https-evil://x' },
      'resetUrl',
      notSecureLink,
    ],
    // Plain http only to a loopback host: anywhere else a mis-set APP_BASE_URL mails links in clear text.
    [
      'an http: verification link to a public host',
      'verification',
      { verificationUrl: 'http://api.example.com/users/1/verify' },
      'verificationUrl',
      notSecureLink,
    ],
    [
      'an http: reset link to a private address',
      'password-reset',
      { resetUrl: 'http://10.0.0.5/reset' },
      'resetUrl',
      notSecureLink,
    ],
    [
      'an http: reset link to a host that only begins like localhost',
      'password-reset',
      { resetUrl: 'http://localhost.example.com/reset' },
      'resetUrl',
      notSecureLink,
    ],
    [
      "a CR-LF in the subject's event",
      'security-alert',
      { event: 'New sign-in\r\nBcc: x@example.com' },
      'event',
      controls,
    ],
    ['a tab in the event', 'security-alert', { event: 'New\tsign-in' }, 'event', controls],
    [
      'a bidi isolate in the event',
      'security-alert',
      { event: 'New \u2066sign-in\u2069' },
      'event',
      controls,
    ],
    [
      'a right-to-left mark in the event',
      'security-alert',
      { event: 'New \u200fsign-in' },
      'event',
      controls,
    ],
    [
      'a left-to-right mark in the details',
      'security-alert',
      { details: 'From \u200e203.0.113.9' },
      'details',
      controls,
    ],
    ['an Arabic letter mark in the name', 'security-alert', { name: 'Ada\u061c' }, 'name', controls],
    [
      'a line feed in the details',
      'security-alert',
      { details: 'From 203.0.113.9\nBcc: x@example.com' },
      'details',
      controls,
    ],
    [
      'a line separator in the details',
      'security-alert',
      { details: 'From\u2028203.0.113.9' },
      'details',
      controls,
    ],
    [
      'a C1 next line in the details',
      'security-alert',
      { details: 'From\u0085203.0.113.9' },
      'details',
      controls,
    ],
    ['a CR-LF in the name', 'welcome', { name: 'Ada\r\nBcc: x@example.com' }, 'name', controls],
    ['a NUL in the name', 'verification', { name: 'Ada\u0000Lovelace' }, 'name', controls],
    ['a bidi override in the name', 'password-reset', { name: 'Ada\u202eecalevoL' }, 'name', controls],
    ['a paragraph separator in the name', 'security-alert', { name: 'Ada\u2029Lovelace' }, 'name', controls],
  ] as const)('refuse %s, naming the field but not its value', (_what, type, data, field, problem) => {
    const message = valid[type];
    const parsed = parseEmailMessage(JSON.stringify({ ...message, data: { ...message.data, ...data } }));
    expect(parsed).toEqual({ ok: false, reason: `Invalid message: data.${field}: ${problem}` });
  });

  it.each([
    'https://api.example.com/users/1/verify',
    'http://127.0.0.1:3000/users/1/verify',
    'http://localhost:3000/users/1/verify',
    'http://[::1]:3000/users/1/verify',
  ])('accept the link %s: https, or http to a loopback host', (verificationUrl) => {
    const message = valid.verification;
    expect(
      parseEmailMessage(JSON.stringify({ ...message, data: { ...message.data, verificationUrl } })),
    ).toMatchObject({ ok: true, message: { data: { verificationUrl } } });
  });

  it('keep a name the users function refuses now, so users registered before still get their emails', () => {
    for (const name of ['Verify now at bulwarkꓸsupportꓸcom', 'p\u0430ypal', 'Ada\u3164', 'Ada 2nd']) {
      expect(parseEmailMessage(JSON.stringify({ ...valid.welcome, data: { name } }))).toMatchObject({
        ok: true,
        message: { data: { name } },
      });
    }
  });
});

describe('verification links', () => {
  const secret = 's'.repeat(32);
  const now = Date.parse('2030-01-01T00:00:00Z');
  const link = createVerificationLink({ baseUrl: 'http://127.0.0.1:3000', userId: 'user-1', secret, now });
  const params = new URL(link.url).searchParams;
  const expires = params.get('expires') ?? '';
  const signature = params.get('signature') ?? '';

  it('carry the user id, an expiry 24 hours ahead and a signature that verifies', () => {
    expect(link.url).toMatch(
      /^http:\/\/127\.0\.0\.1:3000\/users\/user-1\/verify\?expires=\d+&signature=[\w-]{43}$/,
    );
    expect(link.expiresAt.toISOString()).toBe('2030-01-02T00:00:00.000Z');
    expect(isValidVerification({ userId: 'user-1', expires, signature, secret, now })).toBe(true);
  });

  it('sign exactly verify-email.<user>.<expires>: links mailed by earlier releases keep verifying', () => {
    const known = createHmac('sha256', secret).update(`verify-email.user-1.${expires}`).digest('base64url');
    expect(signature).toBe(known);
    // The purpose prefix keeps an HMAC over the same user and expiry, made for another kind of link, from passing.
    const unprefixed = createHmac('sha256', secret).update(`user-1.${expires}`).digest('base64url');
    expect(verificationLinkProblem({ userId: 'user-1', expires, signature: unprefixed, secret, now })).toBe(
      'bad_signature',
    );
  });

  it.each([
    ['https://api.example.com', 'https://api.example.com/users/user-1/verify'],
    ['https://api.example.com/', 'https://api.example.com/users/user-1/verify'],
    ['https://example.com/api', 'https://example.com/api/users/user-1/verify'],
    ['https://example.com/api/', 'https://example.com/api/users/user-1/verify'],
    ['https://example.com/v1/bulwark', 'https://example.com/v1/bulwark/users/user-1/verify'],
  ])('keep the path of the base %s, as an API mapped under a base path needs', (baseUrl, path) => {
    const { url } = createVerificationLink({ baseUrl, userId: 'user-1', secret, now });
    expect(url.split('?')[0]).toBe(path);
    expect(new URL(url).searchParams.get('signature')).toBe(signature);
  });

  it('are refused when expired, tampered with, for another user or signed with another secret', () => {
    const later = now + 24 * 3600 * 1000;
    expect(isValidVerification({ userId: 'user-1', expires, signature, secret, now: later })).toBe(false);
    expect(
      isValidVerification({ userId: 'user-1', expires: String(Number(expires) + 1), signature, secret, now }),
    ).toBe(false);
    expect(isValidVerification({ userId: 'user-2', expires, signature, secret, now })).toBe(false);
    expect(isValidVerification({ userId: 'user-1', expires, signature, secret: 't'.repeat(32), now })).toBe(
      false,
    );
    expect(isValidVerification({ userId: 'user-1', expires: '1e12', signature, secret, now })).toBe(false);
    expect(isValidVerification({ userId: 'user-1', expires, signature: 'short', secret, now })).toBe(false);
  });

  it('are malformed when the expiry is not 1 to 12 decimal digits, even spelt as a number equal to the signed one', () => {
    for (const spelling of [`${expires}.0`, ` ${expires}`, `0x${Number(expires).toString(16)}`]) {
      expect(
        verificationLinkProblem({ userId: 'user-1', expires: spelling, signature, secret, now }),
        spelling,
      ).toBe('malformed');
    }
  });

  it('still verify after a rotation when signed with the previous secret, and only with that one', () => {
    const rotated = 'r'.repeat(32);
    const link = { userId: 'user-1', expires, signature, now };
    expect(verificationLinkProblem({ ...link, secret: rotated, previousSecret: secret })).toBeUndefined();
    expect(verificationLinkProblem({ ...link, secret: rotated })).toBe('bad_signature');
    expect(verificationLinkProblem({ ...link, secret: rotated, previousSecret: 'o'.repeat(32) })).toBe(
      'bad_signature',
    );
    const expiredAt = now + 24 * 3600 * 1000;
    expect(
      verificationLinkProblem({ ...link, secret: rotated, previousSecret: secret, now: expiredAt }),
    ).toBe('expired');
  });
});
