import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  precompiledTemplatesFile,
  precompiledTemplatesModule,
  templateSourcesDir,
} from '../../functions/email-worker/template-sources.js';
import {
  EmailTemplates,
  precompiledTemplateSet,
  readableUtcTime,
} from '../../functions/email-worker/templates.js';
import { minutesInWords } from '../../functions/shared/in-words.js';

const sourceKeys = readdirSync(templateSourcesDir)
  .filter((file) => file.endsWith('.hbs'))
  .map((file) => file.slice(0, -'.hbs'.length))
  .sort();

/** Every variable any template uses, with a value HTML would have to escape. */
const data = {
  name: 'Ada <script>',
  verificationUrl: 'https://example.com/v?a=1&b=2',
  resetUrl: 'https://example.com/r?a=1&b=2',
  expiresAt: '2030-01-01T00:00:00Z',
  expiresAtUtc: '1 January 2030, 00:00 UTC',
  registrationLapsesAt: '2030-01-02T00:00:00Z',
  registrationLapsesAtUtc: '2 January 2030, 00:00 UTC',
  canAskForNewLink: true,
  expiresInMinutes: 30,
  expiresIn: '30 minutes',
  event: 'New <sign-in>',
  occurredAt: '2030-01-01T00:00:00Z',
  occurredAtUtc: '1 January 2030, 00:00 UTC',
  details: 'From "203.0.113.9"',
  code: '123456',
  subject: 'A <subject>',
};

describe('the precompiled templates', () => {
  it('match the .hbs sources (after editing a template, run `npm run templates`)', () => {
    expect(readFileSync(precompiledTemplatesFile, 'utf8')).toBe(precompiledTemplatesModule());
  });

  it('hold one template per source file', () => {
    expect(Object.keys(precompiledTemplateSet()).sort()).toEqual(sourceKeys);
  });

  it.each(sourceKeys)('render %s exactly as the source compiled at run time does', (key) => {
    const source = readFileSync(new URL(`${key}.hbs`, templateSourcesDir), 'utf8');
    const rendered = precompiledTemplateSet()[key]?.(data);
    expect(rendered).toBe(compileTemplate(key, source)(data));
    expect(rendered?.trim()).not.toBe('');
  });

  it('escape HTML parts only', () => {
    const templates = precompiledTemplateSet();
    expect(templates['welcome.html']?.(data)).toContain('Ada &lt;script&gt;');
    expect(templates['welcome.txt']?.(data)).toContain('Ada <script>');
    expect(templates['security-alert.subject']?.(data)?.trim()).toBe('Security alert: New <sign-in>');
    expect(templates['security-alert.html']?.(data)).toContain('New &lt;sign-in&gt;');
  });

  it('are strict: a variable the data lacks throws instead of rendering blank', () => {
    expect(() => precompiledTemplateSet()['welcome.txt']?.({})).toThrow('"name" not defined');
  });

  it('refuse a set that lacks a template a message type needs, naming it', () => {
    const { 'security-alert.html': _left, ...incomplete } = precompiledTemplateSet();
    expect(() => new EmailTemplates(incomplete)).toThrow(
      'Template security-alert.html is missing: every message type needs it',
    );
  });
});

describe('the HTML parts', () => {
  const messages = {
    welcome: { name: 'Ada' },
    verification: {
      name: 'Ada',
      verificationUrl: 'https://example.com/verify?t=1&u=2',
      expiresAt: '2026-12-07T05:06:14.000Z',
    },
    'password-reset': { name: 'Ada', resetUrl: 'https://example.com/reset?t=1&u=2', expiresInMinutes: 30 },
    'security-alert': {
      name: 'Ada',
      event: 'New <sign-in>',
      occurredAt: '2026-12-06T05:41:09.120Z',
      details: '',
    },
  } as const;
  const render = (type: keyof typeof messages) =>
    new EmailTemplates().render({
      id: '7f1c1f6e-0000-4000-8000-000000000004',
      to: 'ada@example.com',
      type,
      data: messages[type],
    } as Parameters<EmailTemplates['render']>[0]);

  it.each([
    ['welcome', 'Welcome to Bulwark'],
    ['verification', 'Verify your email address'],
    ['password-reset', 'Reset your password'],
    ['security-alert', 'Security alert: New &lt;sign-in&gt;'],
  ] as const)('declare the language, the charset and the subject as title (%s)', (type, title) => {
    const { html } = render(type);
    expect(html).toMatch(
      new RegExp(
        `^<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8">\n    <title>${title}</title>\n  </head>\n  <body>\n`,
      ),
    );
  });

  it.each([
    ['verification', 'Confirm your email address', 'https://example.com/verify?t&#x3D;1&amp;u&#x3D;2'],
    ['password-reset', 'Reset your password', 'https://example.com/reset?t&#x3D;1&amp;u&#x3D;2'],
  ] as const)(
    'name what the link does (%s) and show its address, escaped, as plain text beneath',
    (type, linkText, url) => {
      const { html } = render(type);
      expect(html).toContain(
        `    <p><a href="${url}">${linkText}</a></p>\n    <p>If the link does not open, copy this address into your browser:<br>${url}</p>\n`,
      );
      expect(html.split(url).length - 1).toBe(2);
    },
  );
});

describe('the verification email', () => {
  const message = {
    id: '7f1c1f6e-0000-4000-8000-000000000001',
    to: 'ada@example.com',
    type: 'verification',
    data: {
      name: 'Ada',
      verificationUrl: 'https://example.com/verify?t=1',
      expiresAt: '2026-12-07T05:06:14.000Z',
    },
  } as const;

  it("gives the link's expiry in words, in UTC, in both parts", () => {
    const rendered = new EmailTemplates().render(message);
    expect(rendered.text).toContain('The link works until 7 December 2026, 05:06 UTC.');
    expect(rendered.html).toContain('<p>The link works until 7 December 2026, 05:06 UTC.');
    expect(rendered.text).not.toContain('2026-12-07T');
  });

  it('gives both deadlines: the link, that an expired one still asks for a new one, and the registration', () => {
    const rendered = new EmailTemplates().render({
      ...message,
      data: { ...message.data, registrationLapsesAt: '2026-12-08T05:06:14.000Z' },
    });
    expect(rendered.text).toBe(
      [
        'Hello Ada,',
        '',
        'Please confirm your email address: open this link and press "Confirm my email address" on the page it shows.',
        '',
        'https://example.com/verify?t=1',
        '',
        'The link works until 7 December 2026, 05:06 UTC. If it has expired, opening it lets you ask for a new one.',
        'Confirm by 8 December 2026, 05:06 UTC or this registration is removed.',
        '',
      ].join('\n'),
    );
    expect(rendered.html).toContain(
      '    <p>The link works until 7 December 2026, 05:06 UTC. If it has expired, opening it lets you ask for a new one.</p>\n    <p>Confirm by 8 December 2026, 05:06 UTC or this registration is removed.</p>\n  </body>',
    );
  });

  it('offers no new link when the link ends with the registration (sent again late in the window)', () => {
    const rendered = new EmailTemplates().render({
      ...message,
      data: { ...message.data, registrationLapsesAt: message.data.expiresAt },
    });
    expect(rendered.text).toContain(
      'The link works until 7 December 2026, 05:06 UTC.\nConfirm by 7 December 2026, 05:06 UTC or this registration is removed.\n',
    );
    expect(rendered.html).toContain(
      '    <p>The link works until 7 December 2026, 05:06 UTC.</p>\n    <p>Confirm by 7 December 2026, 05:06 UTC or this registration is removed.</p>\n',
    );
    expect(rendered.text).not.toContain('ask for a new one');
  });

  it('still renders a message queued before it carried the lapse time, saying the registration may be removed', () => {
    expect(message.data).not.toHaveProperty('registrationLapsesAt');
    const rendered = new EmailTemplates().render(message);
    expect(rendered.text).toContain(
      'The link works until 7 December 2026, 05:06 UTC. If it has expired, opening it lets you ask for a new one.\nIf you do not confirm your address, this registration may be removed.\n',
    );
    expect(rendered.html).toContain(
      '    <p>If you do not confirm your address, this registration may be removed.</p>\n  </body>',
    );
    expect(rendered.text).not.toContain('Confirm by');
  });

  it('never rounds an expiry up, not even into the next year', () => {
    const rendered = new EmailTemplates().render({
      ...message,
      data: { ...message.data, expiresAt: '2026-12-31T23:59:59.999Z' },
    });
    expect(rendered.text).toContain('The link works until 31 December 2026, 23:59 UTC.');
  });
});

describe('the password-reset email', () => {
  const message = (expiresInMinutes: number) =>
    ({
      id: '7f1c1f6e-0000-4000-8000-000000000003',
      to: 'ada@example.com',
      type: 'password-reset',
      data: { name: 'Ada', resetUrl: 'https://example.com/reset?t=1', expiresInMinutes },
    }) as const;

  it.each([
    [10, '10 minutes'],
    [1, '1 minute'],
  ])("gives the link's lifetime of %i in words, singular or plural, in both parts", (minutes, lifetime) => {
    const rendered = new EmailTemplates().render(message(minutes));
    const sentence = `Someone asked to reset your password. If it was you, open this link within ${lifetime}:`;
    expect(rendered.text).toContain(`\n\n${sentence}\n\n`);
    expect(rendered.html).toContain(`<p>${sentence}</p>`);
  });
});

describe('minutesInWords', () => {
  it('writes one minute in the singular and any other number in the plural', () => {
    expect(minutesInWords(1)).toBe('1 minute');
    expect(minutesInWords(2)).toBe('2 minutes');
    expect(minutesInWords(1440)).toBe('1440 minutes');
  });
});

describe('the welcome email', () => {
  it('says that confirming the address comes first, in words still true once it is confirmed', () => {
    const rendered = new EmailTemplates().render({
      id: '7f1c1f6e-0000-4000-8000-000000000005',
      to: 'ada@example.com',
      type: 'welcome',
      data: { name: 'Ada' },
    });
    const confirmFirst =
      'Confirming your email address comes first: open the link in the verification email we sent you separately, by the time it gives, or this registration is removed. If you have confirmed it already, you are all set.';
    expect(rendered.text).toBe(
      [
        'Welcome, Ada!',
        '',
        confirmFirst,
        '',
        'Book a room whenever you need one.',
        '',
        'If you did not create this account, you can ignore this email.',
        '',
      ].join('\n'),
    );
    expect(rendered.html).toContain(
      `    <p>${confirmFirst}</p>\n    <p>Book a room whenever you need one.</p>\n`,
    );
    expect(rendered.html).not.toContain('account is ready');
  });
});

describe('readableUtcTime', () => {
  it('writes the day, month name, year and UTC time to the minute, seconds dropped', () => {
    expect(readableUtcTime('2026-12-07T05:06:14.000Z')).toBe('7 December 2026, 05:06 UTC');
    expect(readableUtcTime('2030-01-01T00:00:59Z')).toBe('1 January 2030, 00:00 UTC');
    expect(readableUtcTime('2027-06-15T01:30:00+02:00')).toBe('14 June 2027, 23:30 UTC');
  });
});

describe('the security alert', () => {
  it('says when the event happened in words, in UTC, in both parts', () => {
    const rendered = new EmailTemplates().render({
      id: '7f1c1f6e-0000-4000-8000-000000000002',
      to: 'ada@example.com',
      type: 'security-alert',
      data: { name: 'Ada', event: 'New sign-in', occurredAt: '2026-12-06T05:41:09.120Z', details: '' },
    });
    expect(rendered.text).toContain('New sign-in at 6 December 2026, 05:41 UTC.');
    expect(rendered.html).toContain('<strong>New sign-in</strong> at 6 December 2026, 05:41 UTC.</p>');
    expect(rendered.text).not.toContain('2026-12-06T');
  });
});

describe('the security alert email', () => {
  it('says what happened and leaves the next step to the details, which know it', () => {
    const rendered = new EmailTemplates().render({
      id: '7f1c1f6e-0000-4000-8000-000000000002',
      to: 'ada@example.com',
      type: 'security-alert',
      data: {
        name: 'Ada',
        event: 'Webhook endpoint disabled',
        occurredAt: '2026-12-07T05:06:14.000Z',
        details: 'No further events are sent to it; register it again once it works.',
      },
    });
    expect(rendered.subject).toBe('Security alert: Webhook endpoint disabled');
    expect(rendered.text).toBe(
      [
        'Hello Ada,',
        '',
        'We noticed this on your account: Webhook endpoint disabled at 7 December 2026, 05:06 UTC.',
        '',
        'No further events are sent to it; register it again once it works.',
        '',
      ].join('\n'),
    );
    expect(rendered.html).toContain(
      '<p>No further events are sent to it; register it again once it works.</p>\n  </body>',
    );
  });
});
