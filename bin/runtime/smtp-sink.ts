// A local SMTP server that accepts every message up to its size limit and writes it as an .eml file to the
// outbox folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { notAFolder } from './local-defaults.js';

export interface SmtpSinkMessage {
  readonly from: string | undefined;
  readonly to: readonly string[];
  /** The raw RFC 5322 message as received. */
  readonly raw: string;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  /** Messages received so far, oldest first; always empty with an outbox, whose files hold them instead. */
  readonly messages: readonly SmtpSinkMessage[];
  stop(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Folder for `<time>-<n>.eml` files; messages are only kept in memory when absent. */
  readonly outboxDir?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Largest accepted message. @default 10 MiB */
  readonly maxMessageBytes?: number;
}

/** Starts the sink on 127.0.0.1; plain SMTP, any (or no) credentials accepted, as a local catcher should. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  if (options.outboxDir) {
    try {
      mkdirSync(options.outboxDir, { recursive: true });
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      if (code !== 'EEXIST' && code !== 'ENOTDIR') throw error;
      throw notAFolder(options.outboxDir);
    }
  }
  const messages: SmtpSinkMessage[] = [];
  const maxMessageBytes = options.maxMessageBytes ?? 10 * 1024 * 1024;
  let counter = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    size: maxMessageBytes,
    logger: false,
    onAuth: (_auth, _session, callback) => callback(null, { user: 'local' }),
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        // The SIZE limit only advises the client: one that sends more is read to the end but not kept.
        if (!stream.sizeExceeded) chunks.push(chunk);
      });
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          const error = new Error(`Message exceeds fixed maximum message size ${maxMessageBytes}`);
          callback(Object.assign(error, { responseCode: 552 }));
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        if (options.outboxDir) {
          counter += 1;
          const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${counter}.eml`;
          writeFileSync(join(options.outboxDir, name), raw);
        } else {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined;
          messages.push({ from, to: session.envelope.rcptTo.map((rcpt) => rcpt.address), raw });
        }
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    messages,
    stop: () => {
      stopped ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return stopped;
    },
  };
}
