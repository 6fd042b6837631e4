// Email and SMS templates: one handlebars set (subject, HTML, text) per email type and one text template per SMS, compiled once at cold start in strict mode.
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import type { EmailMessage, EmailMessageType, SmsMessage, SmsTemplateName } from './messages.js';
import { emailMessageTypes, smsTemplateNames } from './messages.js';

/**
 * The longest SMS text accepted: SNS splits longer texts into segments and stops at 1,600 characters,
 * and a template rendering longer than that is a bug to catch, not to truncate.
 */
export const maxSmsLength = 1600;

export interface RenderedEmail {
  readonly subject: string;
  readonly html: string;
  readonly text: string;
}

type Compiled = (data: unknown) => string;

/** The templates folder next to this module (bundlers must copy it; see the README). */
const defaultTemplatesDir = new URL('./templates/', import.meta.url);

function compile(dir: URL, file: string, escapeHtml: boolean): Compiled {
  const source = readFileSync(new URL(file, dir), 'utf8');
  // strict: a variable the data lacks throws instead of rendering as an empty string.
  return Handlebars.compile(source, { strict: true, noEscape: !escapeHtml });
}

/** A template referenced a variable the message does not carry: the message can never be rendered. */
export class TemplateRenderError extends Error {
  constructor(type: string, cause: unknown) {
    super(
      `Template ${type} could not be rendered: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        cause,
      },
    );
    this.name = 'TemplateRenderError';
  }
}

export class EmailTemplates {
  private readonly templates = new Map<
    EmailMessageType,
    { subject: Compiled; html: Compiled; text: Compiled }
  >();
  private readonly smsTemplates = new Map<SmsTemplateName, Compiled>();

  /** Reads and compiles every template now, so a missing file fails the cold start, not a message. */
  constructor(dir: URL = defaultTemplatesDir) {
    for (const type of emailMessageTypes) {
      this.templates.set(type, {
        subject: compile(dir, `${type}.subject.hbs`, false),
        html: compile(dir, `${type}.html.hbs`, true),
        text: compile(dir, `${type}.txt.hbs`, false),
      });
    }
    for (const name of smsTemplateNames) this.smsTemplates.set(name, compile(dir, `${name}.txt.hbs`, false));
  }

  /** The SMS text: its text-only template, rendered, trimmed, at most {@link maxSmsLength} characters. */
  renderSms(message: SmsMessage): string {
    const template = this.smsTemplates.get(message.template);
    if (!template) throw new TemplateRenderError(message.template, 'no such template');
    let text: string;
    try {
      text = template(message.data).trim();
    } catch (error) {
      throw new TemplateRenderError(message.template, error);
    }
    if (text.length > maxSmsLength) {
      throw new TemplateRenderError(message.template, `the text exceeds ${maxSmsLength} characters`);
    }
    return text;
  }

  render(message: EmailMessage): RenderedEmail {
    const set = this.templates.get(message.type);
    if (!set) throw new TemplateRenderError(message.type, 'no such template');
    try {
      return {
        subject: set.subject(message.data).trim(),
        html: set.html(message.data),
        text: set.text(message.data),
      };
    } catch (error) {
      throw new TemplateRenderError(message.type, error);
    }
  }
}
