import type { AddressInfo } from 'node:net';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { mockClient } from 'aws-sdk-client-mock';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SmtpSink, startSmtpSink } from '../../bin/runtime/smtp-sink.js';
import {
  SesEmailTransport,
  type SmtpCredentials,
  SmtpEmailTransport,
  sesFromAddress,
} from '../../functions/email-worker/transports.js';
import { DeliveryRejectedError } from '../../middleware/errors.js';
import { testEmail as email } from './helpers.js';

describe('the SES v2 transport', () => {
  it('sends a simple message with subject, HTML and text parts and returns the SES message id', async () => {
    const ses = mockClient(SESv2Client);
    ses.on(SendEmailCommand).resolves({ MessageId: 'ses-123' });
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    expect(await transport.send(email)).toBe('ses-123');
    expect(ses.commandCalls(SendEmailCommand)[0]?.args[0].input).toEqual({
      FromEmailAddress: email.from,
      Destination: { ToAddresses: [email.to] },
      Content: {
        Simple: {
          Subject: { Data: 'Hello', Charset: 'UTF-8' },
          Body: {
            Html: { Data: '<p>Hi Ada</p>', Charset: 'UTF-8' },
            Text: { Data: 'Hi Ada', Charset: 'UTF-8' },
          },
          Headers: [{ Name: 'X-Bulwark-Message-Id', Value: email.messageId }],
        },
      },
    });
    transport.close();
    ses.restore();
  });

  it('sends every message with the configuration set it is given', async () => {
    const ses = mockClient(SESv2Client);
    ses.on(SendEmailCommand).resolves({ MessageId: 'ses-125' });
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }), {
      configurationSetName: 'bulwark-email',
    });
    await transport.send(email);
    await transport.send({ ...email, to: 'bob@example.com' });
    expect(ses.commandCalls(SendEmailCommand).map((call) => call.args[0].input.ConfigurationSetName)).toEqual(
      ['bulwark-email', 'bulwark-email'],
    );
    expect(ses.commandCalls(SendEmailCommand)[1]?.args[0].input).toMatchObject({
      ConfigurationSetName: 'bulwark-email',
      Destination: { ToAddresses: ['bob@example.com'] },
      FromEmailAddress: email.from,
    });
    transport.close();
    ses.restore();
  });

  it('sends a non-ASCII display name as RFC 2047 encoded-words and leaves the address as it is', async () => {
    const ses = mockClient(SESv2Client);
    ses.on(SendEmailCommand).resolves({ MessageId: 'ses-124' });
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    await transport.send({ ...email, from: 'Société Générale <noreply@example.org>' });
    expect(ses.commandCalls(SendEmailCommand)[0]?.args[0].input.FromEmailAddress).toBe(
      `=?UTF-8?B?${Buffer.from('Société Générale').toString('base64')}?= <noreply@example.org>`,
    );
    transport.close();
    ses.restore();
  });

  it('keeps ASCII From addresses byte for byte', () => {
    for (const from of [
      'noreply@bulwark.local',
      'Bulwark <noreply@example.com>',
      '"Bulwark, Inc." <noreply@example.com>',
    ]) {
      expect(sesFromAddress(from)).toBe(from);
    }
  });

  it('quotes a display name that holds specials, so SES gets the name the SMTP transport sends', () => {
    expect(sesFromAddress('Bulwark, Inc. <noreply@example.com>')).toBe(
      '"Bulwark, Inc." <noreply@example.com>',
    );
    expect(sesFromAddress('Support (EU) <noreply@example.com>')).toBe('"Support (EU)" <noreply@example.com>');
    expect(sesFromAddress('A "B" C; D <noreply@example.com>')).toBe('"A \\"B\\" C; D" <noreply@example.com>');
    expect(sesFromAddress('Bulwark Inc. <noreply@example.com>')).toBe('Bulwark Inc. <noreply@example.com>');
    const encoded = sesFromAddress("O'Brien Café; Ltd <noreply@example.org>");
    expect(encoded).toBe(
      `=?UTF-8?B?${Buffer.from("O'Brien Café; Ltd").toString('base64')}?= <noreply@example.org>`,
    );
  });

  it('encodes the text of a quoted non-ASCII name, without its quotes, in words of at most 75 characters', () => {
    const decoded = (header: string) =>
      [...header.matchAll(/=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=/g)]
        .map((word) => Buffer.from(word[1] as string, 'base64').toString('utf8'))
        .join('');
    const quoted = sesFromAddress('"Müller, \\"Die\\" GmbH" <noreply@example.org>');
    expect(quoted).toMatch(/^=\?UTF-8\?B\?[^"]+\?= <noreply@example\.org>$/);
    expect(decoded(quoted)).toBe('Müller, "Die" GmbH');

    const long = '山田太郎の株式会社ブルワーク通知サービス'.repeat(3);
    const split = sesFromAddress(`${long} <noreply@example.org>`);
    const words = split.slice(0, split.lastIndexOf(' <')).split(' ');
    expect(words.length).toBeGreaterThan(1);
    for (const word of words) expect(word.length).toBeLessThanOrEqual(75);
    expect(decoded(split)).toBe(long);
  });

  it('turns a refusal of the message (MessageRejected) into a DeliveryRejectedError without its text', async () => {
    const ses = mockClient(SESv2Client);
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    const refusal = Object.assign(new Error(`Illegal address: ${email.to}`), { name: 'MessageRejected' });
    ses.on(SendEmailCommand).rejects(refusal);
    const error = await transport.send(email).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ provider: 'ses', providerCode: 'MessageRejected', refused: 'message' });
    expect(JSON.stringify(error)).not.toContain(email.to);
    expect((error as Error).message).not.toContain(email.to);
    ses.restore();
  });

  it('passes on a MessageRejected for an unverified identity and a BadRequest: our setup, so it counts', async () => {
    const ses = mockClient(SESv2Client);
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    const unverified = Object.assign(
      new Error(
        'Email address is not verified. The following identities failed the check: noreply@bulwark.local',
      ),
      { name: 'MessageRejected' },
    );
    const badRequest = Object.assign(new Error('Missing final @domain'), { name: 'BadRequestException' });
    for (const ours of [unverified, badRequest]) {
      ses.on(SendEmailCommand).rejects(ours);
      const error = await transport.send(email).catch((caught: unknown) => caught);
      expect(error).not.toBeInstanceOf(DeliveryRejectedError);
      expect(error).toMatchObject({ name: ours.name });
    }
    ses.restore();
  });

  it('passes errors that are ours or passing on as they are, so the breaker counts them', async () => {
    const ses = mockClient(SESv2Client);
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    for (const name of [
      'MailFromDomainNotVerifiedException',
      'AccountSuspendedException',
      'TooManyRequestsException',
    ]) {
      ses.on(SendEmailCommand).rejects(Object.assign(new Error(name), { name }));
      await expect(transport.send(email)).rejects.toMatchObject({ name });
    }
    ses.restore();
  });

  it('passes SES errors on, so the attempt counts as failed', async () => {
    const ses = mockClient(SESv2Client);
    ses.on(SendEmailCommand).rejects(new Error('Throttling'));
    const transport = new SesEmailTransport(new SESv2Client({ region: 'us-east-1' }));
    await expect(transport.send(email)).rejects.toThrow('Throttling');
    ses.restore();
  });
});

describe('the SMTP transport', () => {
  let sink: SmtpSink;
  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterAll(() => sink.stop());

  it('delivers a multipart message to a real SMTP server', async () => {
    const transport = new SmtpEmailTransport({ host: sink.host, port: sink.port });
    await transport.send(email);
    transport.close();
    expect(sink.messages).toHaveLength(1);
    const raw = sink.messages[0]?.raw ?? '';
    expect(raw).toContain('Subject: Hello');
    expect(raw).toMatch(new RegExp(`X-Bulwark-Message-Id: ${email.messageId}`, 'i'));
    expect(raw).toContain('multipart/alternative');
  });

  it('sends a display name with specials whole: quoted, or encoded with its specials', async () => {
    const transport = new SmtpEmailTransport({ host: sink.host, port: sink.port });
    const before = sink.messages.length;
    for (const from of [
      "O'Brien Café; Ltd <noreply@example.org>",
      'Bulwark (Support) <noreply@example.org>',
      'A "B" C <noreply@example.org>',
    ]) {
      await transport.send({ ...email, from });
    }
    transport.close();
    expect(sink.messages.slice(before).map((message) => /^From: .*$/m.exec(message.raw)?.[0])).toEqual([
      'From: =?UTF-8?Q?O=27Brien_Caf=C3=A9=3B_Ltd?= <noreply@example.org>',
      'From: "Bulwark (Support)" <noreply@example.org>',
      'From: "A \\"B\\" C" <noreply@example.org>',
    ]);
  });

  it('rejects when nothing listens on the port', async () => {
    const transport = new SmtpEmailTransport({ host: '127.0.0.1', port: 1, timeoutMs: 2000 });
    await expect(transport.send(email)).rejects.toThrow();
    transport.close();
  });
});

describe('the SMTP transport with a relay that requires AUTH', () => {
  let server: SMTPServer;
  let port: number;
  /** The one pair the relay accepts; a test replaces it to play a rotation at the provider. */
  let accepted = { username: 'relay-user', password: 'first-password' };
  const delivered: string[] = [];

  beforeAll(async () => {
    server = new SMTPServer({
      authMethods: ['PLAIN', 'LOGIN'],
      // Loopback only: the transport skips STARTTLS for 127.0.0.1, as it does for the local sink.
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      onAuth(auth, _session, callback) {
        if (auth.username === accepted.username && auth.password === accepted.password) {
          callback(null, { user: auth.username });
        } else callback(new Error('Invalid username or password'));
      },
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          delivered.push(String(session.user));
          callback();
        });
      },
      logger: false,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** A transport to the relay whose credential reads (`refresh` of each) are recorded. */
  function relayTransport(read: (refresh: boolean) => Promise<SmtpCredentials>) {
    const reads: boolean[] = [];
    const transport = new SmtpEmailTransport({
      host: '127.0.0.1',
      port,
      credentials: (refresh) => {
        reads.push(refresh);
        return read(refresh);
      },
    });
    return { transport, reads };
  }

  it('authenticates with the pair it reads (from the cache) before each send, and delivers', async () => {
    accepted = { username: 'relay-user', password: 'first-password' };
    const { transport, reads } = relayTransport(async () => accepted);
    await transport.send(email);
    await transport.send(email);
    transport.close();
    expect(delivered.slice(-2)).toEqual(['relay-user', 'relay-user']);
    expect(reads).toEqual([false, false]);
  });

  it('uses a pair that the read gives for the next send, with no refusal first', async () => {
    accepted = { username: 'relay-user', password: 'first-password' };
    let stored = accepted;
    const { transport, reads } = relayTransport(async () => stored);
    await transport.send(email);
    stored = { username: 'renamed-user', password: 'second-password' };
    accepted = stored;
    await transport.send(email);
    transport.close();
    expect(delivered.slice(-2)).toEqual(['relay-user', 'renamed-user']);
    expect(reads).toEqual([false, false]);
  });

  it('after the relay refused the pair, fetches it afresh and sends the message with the new one', async () => {
    const stale = { username: 'relay-user', password: 'first-password' };
    accepted = { username: 'relay-user', password: 'second-password' };
    const { transport, reads } = relayTransport(async (refresh) => (refresh ? accepted : stale));
    await transport.send(email);
    transport.close();
    // The cache again first (another send may have refreshed it), then a fetch past it.
    expect(reads).toEqual([false, false, true]);
  });

  it('rejects with the refusal when the fresh read gives the refused pair again', async () => {
    accepted = { username: 'relay-user', password: 'second-password' };
    const { transport, reads } = relayTransport(async () => ({
      username: 'relay-user',
      password: 'revoked-password',
    }));
    await expect(transport.send(email)).rejects.toMatchObject({ code: 'EAUTH' });
    transport.close();
    expect(reads).toEqual([false, false, true]);
  });

  it('fails the message when the pair cannot be read, and tries to read it again for the next one', async () => {
    accepted = { username: 'relay-user', password: 'first-password' };
    let failed = false;
    const { transport, reads } = relayTransport(async () => {
      if (!failed) {
        failed = true;
        throw new Error('Secrets Manager unreachable');
      }
      return accepted;
    });
    await expect(transport.send(email)).rejects.toThrow('Secrets Manager unreachable');
    await transport.send(email);
    transport.close();
    expect(reads).toEqual([false, false]);
  });
});

describe('the SMTP transport when its send is aborted (the breaker timed out)', () => {
  it('closes the connection, so a relay that answers late never receives the message', async () => {
    let rcptReached: () => void = () => {};
    const atRcpt = new Promise<void>((resolve) => {
      rcptReached = resolve;
    });
    let answerRcpt: () => void = () => {};
    let sessionClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      sessionClosed = resolve;
    });
    const delivered: string[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(_address, _session, callback) {
        answerRcpt = () => callback();
        rcptReached();
      },
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          delivered.push(session.id);
          callback();
        });
      },
      onClose: () => sessionClosed(),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as AddressInfo).port;
    const transport = new SmtpEmailTransport({ host: '127.0.0.1', port, timeoutMs: 2000 });
    try {
      const controller = new AbortController();
      const sending = transport.send(email, controller.signal);
      await atRcpt;
      controller.abort();
      await expect(sending).rejects.toMatchObject({ name: 'AbortError' });
      // The relay accepts the recipient only now; a send that went on would reach DATA before closing.
      answerRcpt();
      await closed;
      expect(delivered).toEqual([]);
    } finally {
      transport.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('the SMTP transport when the relay refuses the recipient', () => {
  let server: SMTPServer;
  let port: number;
  beforeAll(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onMailFrom(address, _session, callback) {
        if (!address.address.startsWith('refused')) return callback();
        callback(
          Object.assign(new Error('Sender address rejected: not owned by user'), { responseCode: 553 }),
        );
      },
      onRcptTo(address, _session, callback) {
        const [local = ''] = address.address.split('@');
        const responseCode = Number(local.replace(/\D/g, ''));
        if (responseCode === 0) return callback();
        // Postfix's wording: an unknown user is 5.1.1; relay access (our rights) and our sender's domain
        // are refused at RCPT TO too; Exim refuses relaying with no RFC 3463 status.
        const refusals: Record<string, string> = {
          relay: '5.7.1 Relay access denied',
          sender: '5.1.8 <noreply@bulwark.local>: Sender address rejected: Domain not found',
          exim: 'relay not permitted',
          nodomain: `5.1.2 <${address.address}>: Recipient address rejected: Domain not found`,
        };
        const refusal =
          refusals[local.replace(/\d/g, '')] ??
          `${responseCode >= 500 ? '5.1.1' : '4.2.0'} <${address.address}>: Recipient address rejected: User unknown`;
        callback(Object.assign(new Error(refusal), { responseCode }));
      },
      onData(stream, _session, callback) {
        stream.resume();
        stream.on('end', () => callback());
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** What one send to the refusing relay rejects with. */
  async function refusalOf(message: typeof email): Promise<unknown> {
    const transport = new SmtpEmailTransport({ host: '127.0.0.1', port });
    const error = await transport.send(message).catch((caught: unknown) => caught);
    transport.close();
    return error;
  }

  it('turns a 5xx to RCPT TO into a DeliveryRejectedError with the reply code, never the address', async () => {
    const error = await refusalOf({ ...email, to: 'nobody550@example.com' });
    expect(error).toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({
      provider: 'smtp',
      providerCode: 'EENVELOPE',
      responseCode: 550,
      refused: 'recipient',
    });
    expect((error as Error).message).toBe('smtp refused the recipient for good (EENVELOPE 550)');
    expect((error as Error).message).not.toContain('nobody550');
  });

  it('takes a 553 5.1.2 to RCPT TO (an unknown domain) for a refusal of the recipient too', async () => {
    const error = await refusalOf({ ...email, to: 'nodomain553@example.com' });
    expect(error).toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ responseCode: 553, refused: 'recipient' });
  });

  it('passes a 5.1.8 to RCPT TO (our sender refused, Postfix checks it there) on as it is: every message is refused', async () => {
    const error = await refusalOf({ ...email, to: 'sender553@example.com' });
    expect(error).not.toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 553 });
  });

  it('passes a 550 to RCPT TO with no RFC 3463 status on as it is: it may refuse our relay rights (Exim)', async () => {
    const error = await refusalOf({ ...email, to: 'exim550@example.com' });
    expect(error).not.toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550 });
  });

  it('passes a 5xx to RCPT TO that refuses our relay rights (5.7.1) on as it is: every message is refused', async () => {
    const error = await refusalOf({ ...email, to: 'relay554@example.com' });
    expect(error).not.toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 554 });
  });

  it('passes a 5xx to MAIL FROM on as it is: our sender is refused, so every message is', async () => {
    const error = await refusalOf({ ...email, from: 'refused@bulwark.local' });
    expect(error).not.toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ code: 'EENVELOPE', command: 'MAIL FROM', responseCode: 553 });
  });

  it('passes a 4xx to RCPT TO (greylisting, a full mailbox) on as it is: a later attempt may pass', async () => {
    const error = await refusalOf({ ...email, to: 'busy450@example.com' });
    expect(error).not.toBeInstanceOf(DeliveryRejectedError);
    expect(error).toMatchObject({ code: 'EENVELOPE', responseCode: 450 });
  });
});
