import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  precompiledTemplatesFile,
  precompiledTemplatesModule,
  templateSourcesDir,
} from '../../functions/email-worker/template-sources.js';
import { EmailTemplates, precompiledTemplateSet } from '../../functions/email-worker/templates.js';

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
  expiresInMinutes: 30,
  event: 'New <sign-in>',
  occurredAt: '2030-01-01T00:00:00Z',
  details: 'From "203.0.113.9"',
  code: '123456',
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
