// Email transports chosen by configuration: SES v2 in AWS, SMTP (nodemailer) anywhere, e.g. the local SMTP sink.
import { type SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import type { Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { DeliveryRejectedError } from '../../middleware/errors.js';
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

/**
 * Whether SES refused this one message (its recipient, its content) rather than every message. Only
 * `MessageRejected` does, and not its "Email address is not verified" form: that names an unverified
 * sender, or any recipient while the account is in the sandbox, which is our setup. A
 * `BadRequestException` is a request we built wrongly; a `MailFromDomainNotVerifiedException` or a paused
 * account is ours: those count against the breaker. Throttling is passing, retried without counting
 * (isProviderThrottling).
 */
function isSesMessageRejection(error: unknown): error is Error {
  return error instanceof Error && error.name === 'MessageRejected' && !/not verified/i.test(error.message);
}

/**
 * The From address as SES v2 takes it: SES refuses a display name with non-ASCII characters unless it is
 * an RFC 2047 encoded-word, while nodemailer encodes it itself for SMTP. Only such a name is encoded (an
 * ASCII one is only quoted where it holds specials, see {@link quotedDisplayName}, and the address stays
 * as configured); a quoted name loses its quotes first, since an encoded-word inside a quoted string is
 * not decoded.
 */
export function sesFromAddress(configured: string): string {
  const from = quotedDisplayName(configured);
  const { name, angleAddress } = displayNameOf(from);
  if (!/[\u0080-\uffff]/.test(name)) return from;
  return `${encodedWords(unquoted(name))} ${angleAddress}`;
}

/**
 * `from` with a display name that holds RFC 5322 specials (`Bulwark, Inc.`, `Support (EU)`, `A; B`) made a
 * quoted string, as a header must carry it: unquoted, SES took it as it was and nodemailer read `,` and `;`
 * as list separators and `(…)` as a comment, so the two transports sent different names. A name already
 * quoted, one without specials (a `.` is allowed in a name), and a bare address stay exactly as configured.
 */
export function quotedDisplayName(from: string): string {
  const { name, angleAddress } = displayNameOf(from);
  if (name === '' || isQuotedString(name) || !/[()<>[\]:;@\\,"]/.test(name)) return from;
  return `"${name.replace(/[\\"]/g, (special) => `\\${special}`)}" ${angleAddress}`;
}

/** A From value's display name (trimmed; empty for a bare address) and the `<address>` after it. */
function displayNameOf(from: string): { name: string; angleAddress: string } {
  const open = from.lastIndexOf('<');
  return open === -1
    ? { name: '', angleAddress: from }
    : { name: from.slice(0, open).trim(), angleAddress: from.slice(open) };
}

const isQuotedString = (name: string) => /^".*"$/s.test(name);

/** The text of an RFC 5322 quoted string (`"a \"b\""` is `a "b"`); any other name as it is. */
function unquoted(name: string): string {
  return isQuotedString(name) ? name.slice(1, -1).replace(/\\(.)/gs, '$1') : name;
}

/**
 * UTF-8 B encoded-words, each at most 75 characters (RFC 2047 section 2): 45 bytes of whole characters
 * give 60 base64 characters besides the 12 of `=?UTF-8?B?` and `?=`. The spaces between them are not
 * part of the decoded name.
 */
function encodedWords(text: string): string {
  const maxBytes = 45;
  const words: string[] = [];
  let chunk = '';
  for (const character of text) {
    if (Buffer.byteLength(chunk + character) > maxBytes) {
      words.push(chunk);
      chunk = '';
    }
    chunk += character;
  }
  words.push(chunk);
  return words.map((word) => `=?UTF-8?B?${Buffer.from(word, 'utf8').toString('base64')}?=`).join(' ');
}

export interface SesTransportOptions {
  /**
   * The SES configuration set every message is sent with (the stack's, `SES_CONFIGURATION_SET`): its
   * reputation metrics and its suppression of addresses that bounced or complained apply to them.
   * @default - none: the account's settings alone
   */
  readonly configurationSetName?: string;
}

/** SES v2 `SendEmail` with a simple (subject + HTML + text) content. */
export class SesEmailTransport implements EmailTransport {
  readonly name = 'ses';

  constructor(
    private readonly client: SESv2Client,
    private readonly options: SesTransportOptions = {},
  ) {}

  /**
   * Rejects with DeliveryRejectedError when SES refuses this message for good: a refusal of the message,
   * since SES does not say whether its recipient or its content was the cause.
   */
  async send(email: OutgoingEmail, signal?: AbortSignal): Promise<string> {
    try {
      return await this.sendEmail(email, signal);
    } catch (error) {
      if (isSesMessageRejection(error)) {
        throw new DeliveryRejectedError(this.name, error.name);
      }
      throw error;
    }
  }

  private async sendEmail(email: OutgoingEmail, signal?: AbortSignal): Promise<string> {
    const result = await this.client.send(
      new SendEmailCommand({
        ...(this.options.configurationSetName === undefined
          ? {}
          : { ConfigurationSetName: this.options.configurationSetName }),
        FromEmailAddress: sesFromAddress(email.from),
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

/** What an SMTP relay's provider issues: the stack's `SmtpCredentials` secret holds it as JSON. */
export interface SmtpCredentials {
  readonly username: string;
  readonly password: string;
}

export interface SmtpTransportOptions {
  readonly host: string;
  /** 465 speaks TLS from the start; any other port must upgrade with STARTTLS (except on loopback). */
  readonly port: number;
  /**
   * Reads the relay's credentials before each send, so a pair an operator stores reaches a running
   * function without a deploy. Without `refresh` it may answer from a cache (smtpCredentialsReader's
   * lasts 5 minutes); `refresh` after the relay refused the pair, which must then be fetched anew.
   * @default - no authentication (a local sink)
   */
  readonly credentials?: (refresh: boolean) => Promise<SmtpCredentials>;
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

/**
 * A reply refusing the recipient's address itself: 5xx with an RFC 3463 status about the destination,
 * 5.1.1 (no such mailbox), 5.1.2 (no such domain), 5.1.3 (a malformed address), 5.1.4 (an ambiguous
 * mailbox), 5.1.6 (a mailbox that moved) or 5.1.10 (a domain that accepts no mail, RFC 7505). The other
 * addressing statuses are about our sender (5.1.7, 5.1.8) or say nothing (5.1.0), and relays that check
 * the sender at RCPT TO (Postfix by default) answer with them there.
 */
const recipientRefusalReply = /^5\d\d[ -]5\.1\.(?:[12346]|10)(?!\d)/;

/**
 * The SMTP reply code of a relay's permanent refusal of the recipient, or undefined. Only a refusal of
 * the address at RCPT TO counts: relays often hold back their refusal of our sender or relay rights
 * until RCPT TO too (Postfix's `554 5.7.1 Relay access denied`, `553 5.1.8 Sender address rejected`),
 * and that refuses every message, as a 5xx to MAIL FROM or AUTH (535) does. So does a reply with no
 * RFC 3463 status, which cannot tell (Exim's `550 relay not permitted`). A 4xx (greylisting, a full
 * mailbox) may pass later.
 */
function permanentRecipientRefusal(error: unknown): number | undefined {
  const { code, command, responseCode, response } = error as {
    code?: unknown;
    command?: unknown;
    responseCode?: unknown;
    response?: unknown;
  };
  const refused =
    code === 'EENVELOPE' &&
    command === 'RCPT TO' &&
    typeof responseCode === 'number' &&
    typeof response === 'string' &&
    recipientRefusalReply.test(response);
  return refused ? responseCode : undefined;
}

/** Whether two reads gave the same pair (both undefined: no authentication). */
function samePair(a: SmtpCredentials | undefined, b: SmtpCredentials | undefined): boolean {
  return a?.username === b?.username && a?.password === b?.password;
}

/** SMTP through nodemailer (one transporter per process and credentials). */
export class SmtpEmailTransport implements EmailTransport {
  readonly name = 'smtp';
  private readonly options: SMTPTransport.Options;
  /** The transporter of the last pair read, replaced when a read gives another. */
  private current:
    | { readonly auth: SmtpCredentials | undefined; readonly transporter: Promise<Transporter> }
    | undefined;

  constructor(private readonly settings: SmtpTransportOptions) {
    const timeoutMs = settings.timeoutMs ?? 10_000;
    const loopback = settings.host === '127.0.0.1' || settings.host === 'localhost';
    this.options = {
      host: settings.host,
      port: settings.port,
      secure: settings.port === 465,
      // Credentials never cross the network in clear: a relay that offers no STARTTLS is refused.
      // Local sinks speak plain SMTP.
      ...(loopback ? { ignoreTLS: true } : { requireTLS: true }),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    };
  }

  private transporterFor(auth: SmtpCredentials | undefined): Promise<Transporter> {
    if (this.current && samePair(this.current.auth, auth)) return this.current.transporter;
    // Unpooled, nodemailer opens a connection per message: closing ends no send still under way.
    this.close();
    nodemailer ??= loadNodemailer();
    const transporter = nodemailer.then(({ createTransport }) =>
      createTransport({
        ...this.options,
        ...(auth ? { auth: { user: auth.username, pass: auth.password } } : {}),
      }),
    );
    this.current = { auth, transporter };
    return transporter;
  }

  /**
   * On `signal`'s abort (the breaker's timeout) nodemailer closes this send's connection, so a relay
   * still busy with an earlier command never receives the message: the retry is then its only copy.
   * Rejects with DeliveryRejectedError when the relay refuses the recipient for good.
   *
   * A pair the relay refuses (EAUTH, before any message data) is read again and, when that gives
   * another pair, the message is sent once more with it: an operator who revoked the old pair within
   * the cache time costs a refused login, not a failed message. Only a refusal of the fresh pair rejects.
   */
  async send(email: OutgoingEmail, signal?: AbortSignal): Promise<string> {
    const { credentials } = this.settings;
    const auth = await credentials?.(false);
    try {
      return await this.sendWith(auth, email, signal);
    } catch (error) {
      if (!credentials || (error as { code?: unknown }).code !== 'EAUTH') throw error;
      // The cache first: another send refused at the same time may have fetched the new pair already.
      let fresh = await credentials(false);
      if (samePair(fresh, auth)) fresh = await credentials(true);
      if (samePair(fresh, auth)) throw error;
      return await this.sendWith(fresh, email, signal);
    }
  }

  private async sendWith(
    auth: SmtpCredentials | undefined,
    email: OutgoingEmail,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const transporter = await this.transporterFor(auth);
    try {
      const info = await transporter.sendMail({
        from: quotedDisplayName(email.from),
        to: email.to,
        subject: email.subject,
        html: email.html,
        text: email.text,
        headers: { 'X-Bulwark-Message-Id': email.messageId },
        ...(signal ? { signal } : {}),
      });
      return String(info.messageId ?? '');
    } catch (error) {
      const refusal = permanentRecipientRefusal(error);
      if (refusal !== undefined) {
        throw new DeliveryRejectedError(this.name, 'EENVELOPE', {
          responseCode: refusal,
          refused: 'recipient',
        });
      }
      throw error;
    }
  }

  close(): void {
    const transporter = this.current?.transporter;
    this.current = undefined;
    void transporter?.then(
      (open) => open.close(),
      () => {},
    );
  }
}
