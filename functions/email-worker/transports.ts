// Email transports chosen by configuration: SES v2 in AWS, SMTP (nodemailer) anywhere, e.g. the local SMTP sink.
import { type SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import type { Transporter } from 'nodemailer';
import type { RenderedEmail } from './templates.js';

export interface OutgoingEmail extends RenderedEmail {
  readonly from: string;
  readonly to: string;
  /** Sent as a header so a message can be traced from the queue to the inbox. */
  readonly messageId: string;
}

export interface EmailTransport {
  readonly name: 'ses' | 'smtp';
  /** Resolves with the provider's message id once the provider accepted the message. */
  send(email: OutgoingEmail, signal?: AbortSignal): Promise<string>;
  close(): void;
}

/** SES v2 `SendEmail` with a simple (subject + HTML + text) content. */
export class SesEmailTransport implements EmailTransport {
  readonly name = 'ses';

  constructor(private readonly client: SESv2Client) {}

  async send(email: OutgoingEmail, signal?: AbortSignal): Promise<string> {
    const result = await this.client.send(
      new SendEmailCommand({
        FromEmailAddress: email.from,
        Destination: { ToAddresses: [email.to] },
        Content: {
          Simple: {
            Subject: { Data: email.subject, Charset: 'UTF-8' },
            Body: {
              Html: { Data: email.html, Charset: 'UTF-8' },
              Text: { Data: email.text, Charset: 'UTF-8' },
            },
            Headers: [{ Name: 'X-Bulwark-Message-Id', Value: email.messageId }],
          },
        },
      }),
      signal ? { abortSignal: signal } : {},
    );
    return result.MessageId ?? '';
  }

  close(): void {
    this.client.destroy();
  }
}

export interface SmtpTransportOptions {
  readonly host: string;
  readonly port: number;
  /** @default 10000 */
  readonly timeoutMs?: number;
}

/**
 * nodemailer, loaded with the first SMTP message: in AWS the worker sends through SES and never pays
 * for evaluating it (about 25 ms of a cold start).
 */
let nodemailer: Promise<typeof import('nodemailer')> | undefined;

function loadNodemailer(): Promise<typeof import('nodemailer')> {
  // A constant in deployed bundles (`define` in lib/bulwark-function.ts): esbuild drops the dead
  // branch while parsing, and nodemailer with it. It does so only for an if/else, not for code after
  // a return, hence the else.
  if (process.env.BULWARK_BUNDLED_EMAIL_TRANSPORT === 'ses') {
    return Promise.reject(new Error('This bundle carries only the ses email transport'));
  } else {
    return import('nodemailer');
  }
}

/** Plain SMTP through nodemailer (one pooled transporter per process). */
export class SmtpEmailTransport implements EmailTransport {
  readonly name = 'smtp';
  private readonly options: Parameters<typeof import('nodemailer')['createTransport']>[0];
  private transporter: Promise<Transporter> | undefined;

  constructor(options: SmtpTransportOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.options = {
      host: options.host,
      port: options.port,
      secure: false,
      // Local sinks speak plain SMTP; a real relay would be configured with TLS and credentials.
      ignoreTLS: options.host === '127.0.0.1' || options.host === 'localhost',
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    };
  }

  private connect(): Promise<Transporter> {
    nodemailer ??= loadNodemailer();
    this.transporter ??= nodemailer.then(({ createTransport }) => createTransport(this.options));
    return this.transporter;
  }

  async send(email: OutgoingEmail): Promise<string> {
    const transporter = await this.connect();
    const info = await transporter.sendMail({
      from: email.from,
      to: email.to,
      subject: email.subject,
      html: email.html,
      text: email.text,
      headers: { 'X-Bulwark-Message-Id': email.messageId },
    });
    return String(info.messageId ?? '');
  }

  close(): void {
    const transporter = this.transporter;
    this.transporter = undefined;
    void transporter?.then((open) => open.close());
  }
}
