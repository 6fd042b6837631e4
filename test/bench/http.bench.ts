// Requests/s and latency through the local runtime next to a bare node:http server answering the same JSON.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon, { type Options, type Result } from 'autocannon';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import type { BenchSuite, Measurement } from './harness.js';

const durationSec = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const connections = 10;

function cannon(options: Options): Promise<Result> {
  return new Promise((resolve, reject) => {
    autocannon({ duration: durationSec, connections, ...options }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

async function bareServer(healthBody: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = request.method === 'POST' ? Buffer.concat(chunks).toString('utf8') : healthBody;
      response.writeHead(request.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function bookingRequests(userId: string, prefix: string): Options['requests'] {
  let counter = 0;
  return [
    {
      method: 'POST',
      path: '/bookings',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => {
        counter += 1;
        const body = JSON.stringify({
          roomId: `${prefix}-${counter}`,
          userId,
          start: '2031-03-03T09:00:00Z',
          end: '2031-03-03T10:00:00Z',
        });
        return { ...request, body };
      },
    },
  ];
}

function measurements(id: string, what: string, ours: Result, floor: Result): Measurement[] {
  if (ours.non2xx > 0 || ours.errors > 0) {
    throw new Error(
      `${id}: ${ours.non2xx} non-2xx responses and ${ours.errors} errors; the benchmark is invalid`,
    );
  }
  const baseline = 'bare node:http';
  return [
    {
      id: `${id}.rps`,
      what: `${what}: requests/s (${connections} connections)`,
      value: ours.requests.average,
      unit: 'req/s',
      baseline: { name: baseline, value: floor.requests.average },
    },
    {
      id: `${id}.p50`,
      what: `${what}: p50 latency`,
      value: ours.latency.p50,
      unit: 'ms',
      baseline: { name: baseline, value: floor.latency.p50 },
    },
    {
      id: `${id}.p99`,
      what: `${what}: p99 latency`,
      value: ours.latency.p99,
      unit: 'ms',
      baseline: { name: baseline, value: floor.latency.p99 },
    },
  ];
}

const suite: BenchSuite = {
  name: 'local runtime HTTP',
  async run() {
    process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
    const runtime = await startLocalRuntime({ port: 0 });
    const health = await fetch(`${runtime.url}/health`);
    const bare = await bareServer(await health.text());
    try {
      const user = await fetch(`${runtime.url}/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `bench-${Date.now()}@example.com`, name: 'Bench' }),
      });
      const { id: userId } = (await user.json()) as { id: string };

      const oursHealth = await cannon({ url: `${runtime.url}/health` });
      const floorHealth = await cannon({ url: `${bare.url}/health` });
      const oursBookings = await cannon({
        url: runtime.url,
        requests: bookingRequests(userId, `bench-${Date.now()}`),
      });
      const floorBookings = await cannon({ url: bare.url, requests: bookingRequests(userId, 'bare') });
      return [
        ...measurements('http.health', 'GET /health', oursHealth, floorHealth),
        ...measurements('http.bookings', 'POST /bookings', oursBookings, floorBookings),
      ];
    } finally {
      await bare.close();
      await runtime.stop();
    }
  },
};

export default suite;
