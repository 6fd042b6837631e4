import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SsrfGuard } from '../../functions/shared/ssrf-guard.js';
import { postWebhook } from '../../functions/webhook-worker/delivery.js';
import { until } from '../email-worker/helpers.js';

/** A receiver that never closes an idle keep-alive connection (as Go's net/http does by default). */
let server: Server;
let url: URL;
beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(204).end());
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const openConnections = () =>
  new Promise<number>((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );

const guard = new SsrfGuard({ allowlist: ['127.0.0.1/32'] });

describe('webhook delivery connections', () => {
  it('keeps at most 2 idle connections to a receiver after parallel POSTs, and closes them after 5 s idle', async () => {
    const posted = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        postWebhook(url, { 'webhook-id': `msg_${index}` }, '{}', { guard, timeoutMs: 5_000 }),
      ),
    );
    expect(posted.map((outcome) => outcome.statusCode)).toEqual(Array(10).fill(204));
    // Each answered POST frees its socket once its response has ended; the agent keeps 2 of them.
    expect(await until(async () => ((await openConnections()) <= 2 ? true : undefined), 2_000)).toBe(true);
    expect(await openConnections()).toBeGreaterThan(0);
    expect(await until(async () => ((await openConnections()) === 0 ? true : undefined), 8_000)).toBe(true);
  }, 15_000);
});
