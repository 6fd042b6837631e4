// Email and SMS templates: one handlebars set (subject, HTML, text) per email type and one text template per SMS, precompiled in strict mode.
import Handlebars from 'handlebars/runtime';
import { minutesInWords } from '../shared/in-words.js';
import type { EmailMessage, EmailMessageType, SmsMessage, SmsTemplateName } from './messages.js';
import { emailMessageTypes, smsCodeMinutesLeft, smsTemplateNames } from './messages.js';
import { precompiledTemplates } from './templates.generated.js';

/**
 * The longest SMS text accepted: SNS splits longer texts into segments and stops at 1,600 characters,
 * and a template rendering longer than that is a bug to catch, not to truncate.
 */
export const maxSmsLength = 1600;

const monthNames = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
] as const;

/**
 * An ISO instant as a reader reads it, in UTC to the minute: `7 December 2026, 05:06 UTC`. Built by hand,
 * not with Intl, whose wording changes between ICU versions. The seconds are dropped, not rounded: the
 * time shown is never later than the instant (a link is still valid at the time it says it expires).
 */
export function readableUtcTime(iso: string): string {
  const date = new Date(iso);
  const twoDigits = (value: number) => String(value).padStart(2, '0');
  return `${date.getUTCDate()} ${monthNames[date.getUTCMonth()]} ${date.getUTCFullYear()}, ${twoDigits(date.getUTCHours())}:${twoDigits(date.getUTCMinutes())} UTC`;
}

/**
 * What a message's templates see: its data, and what it carries in words (a verification email's
 * `expiresAtUtc` and, when it has one, `registrationLapsesAtUtc`; a security alert's `occurredAtUtc`; a
 * password reset's `expiresIn`). The message itself keeps the ISO instant and the number, so messages
 * queued before read the same. A verification email's `canAskForNewLink` says whether its link runs out
 * before its registration does: only then does the expired link's page offer a new one (a link sent late
 * in the window ends with the registration, and a new link cannot help).
 */
function templateData(message: EmailMessage): object {
  switch (message.type) {
    case 'verification': {
      const { expiresAt, registrationLapsesAt } = message.data;
      return {
        ...message.data,
        expiresAtUtc: readableUtcTime(expiresAt),
        canAskForNewLink:
          registrationLapsesAt === undefined || Date.parse(expiresAt) < Date.parse(registrationLapsesAt),
        ...(registrationLapsesAt === undefined
          ? {}
          : { registrationLapsesAtUtc: readableUtcTime(registrationLapsesAt) }),
      };
    }
    case 'password-reset':
      return { ...message.data, expiresIn: minutesInWords(message.data.expiresInMinutes) };
    case 'security-alert':
      return { ...message.data, occurredAtUtc: readableUtcTime(message.data.occurredAt) };
    default:
      return message.data;
  }
}

export interface RenderedEmail {
  readonly subject: string;
  readonly html: string;
  readonly text: string;
}

/** A rendering function, keyed `<name>.<part>` in a {@link TemplateSet} (e.g. `welcome.subject`). */
export type Template = (data: unknown) => string;
export type TemplateSet = Readonly<Record<string, Template>>;

/**
 * The templates of functions/email-worker/templates/, precompiled at build time (template-sources.ts):
 * the bundle carries handlebars' runtime only, reads no file and compiles nothing.
 */
export function precompiledTemplateSet(): TemplateSet {
  return Object.fromEntries(
    Object.entries(precompiledTemplates).map(([key, spec]) => [key, Handlebars.template(spec)]),
  );
}

function required(templates: TemplateSet, key: string): Template {
  const template = templates[key];
  if (!template) throw new Error(`Template ${key} is missing: every message type needs it`);
  return template;
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
    { subject: Template; html: Template; text: Template }
  >();
  private readonly smsTemplates = new Map<SmsTemplateName, Template>();

  /** Takes every template a message type needs now, so a missing one fails the cold start, not a message. */
  constructor(templates: TemplateSet = precompiledTemplateSet()) {
    for (const type of emailMessageTypes) {
      this.templates.set(type, {
        subject: required(templates, `${type}.subject`),
        html: required(templates, `${type}.html`),
        text: required(templates, `${type}.txt`),
      });
    }
    for (const name of smsTemplateNames) this.smsTemplates.set(name, required(templates, `${name}.txt`));
  }

  /**
   * The SMS text: its text-only template, rendered, trimmed, at most {@link maxSmsLength} characters. A
   * code's `expiresIn` is the minutes it has left at `nowMs`, the time it is sent.
   */
  renderSms(message: SmsMessage, nowMs: number = Date.now()): string {
    const template = this.smsTemplates.get(message.template);
    if (!template) throw new TemplateRenderError(message.template, 'no such template');
    let text: string;
    try {
      text = template({
        ...message.data,
        expiresIn: minutesInWords(smsCodeMinutesLeft(message, nowMs)),
      }).trim();
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
    const data = templateData(message);
    try {
      const subject = set.subject(data).trim();
      // The HTML part's <title> is the subject, so the two never disagree.
      return { subject, html: set.html({ ...data, subject }), text: set.text(data) };
    } catch (error) {
      throw new TemplateRenderError(message.type, error);
    }
  }
}
