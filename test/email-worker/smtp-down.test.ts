import { randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useLocalRuntime } from '../helpers/runtime.js';
import { receiveAll, sendRaw, until } from './helpers.js';

// Its own runtime and toolkit table: the failures it causes count against the transport circuit, which
// must not open for every other file's email worker.
const api = useLocalRuntime({ emailRetryBaseDelaySec: 1, ownToolkitTable: true });

describe('the email worker when SMTP is down', () => {
  it('tries a message 3 times, then leaves it in the DLQ', async () => {
    const runtime = api.runtime();
    await runtime.smtp.stop();
    // Something on the sink's port that drops every connection: a mail server that is down.
    const attempts: number[] = [];
    const sockets = new Set<Socket>();
    const broken = createServer((socket) => {
      attempts.push(Date.now());
      sockets.add(socket);
      socket.destroy();
    });
    await new Promise<void>((resolve) => broken.listen(runtime.smtp.port, '127.0.0.1', resolve));
    try {
      const body = JSON.stringify({
        id: randomUUID(),
        type: 'welcome',
        to: 'down@example.com',
        data: { name: 'D' },
      });
      await sendRaw(runtime, body);
      const dead = await until(async () => {
        const messages = await receiveAll(runtime, 'bulwark-email-dlq');
        return messages.length > 0 ? messages : undefined;
      });
      expect(dead.map((message) => message.Body)).toEqual([body]);
      // Backoff by visibility, jittered (a random 0 … 1 s, then 0 … 2 s: email-worker.test.ts pins it).
      expect(attempts).toHaveLength(3);
      expect(await receiveAll(runtime, 'bulwark-email')).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  });
});
