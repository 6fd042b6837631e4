// Requests/s and latency through the local runtime next to a bare node:http server answering the same JSON.

import { closeSync, openSync, writeSync } from 'node:fs';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon, { type Options, type Result } from 'autocannon';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import { bookingDay } from '../helpers/booking-times.js';
import { type BenchSuite, type Measurement, percentile, timeSequential } from './harness.js';

const at = bookingDay(31);

const durationSec = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const connections = 10;
const latencySamples = 500;
const tokenPoolSize = 2500;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** One request on a kept-alive connection; rejects unless the status is 2xx. */
function send(url: string, method: string, body?: string, token?: string): Promise<void> {
  const headers = {
    'content-type': 'application/json',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, agent, headers }, (response) => {
      response.resume();
      response.on('end', () =>
        (response.statusCode ?? 500) < 300
          ? resolve()
          : reject(new Error(`${method} ${url}: ${response.statusCode}`)),
      );
    });
    request.on('error', reject);
    request.end(body);
  });
}

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

function bookingBody(userId: string, roomId: string): string {
  return JSON.stringify({ roomId, userId, start: at(9), end: at(10) });
}

/**
 * Each request books as a different caller (its own token), as real traffic would; one caller would hit
 * the `authenticated` rate limit (500 per hour) within a second and turn the run into 429s. The callers
 * are M2M clients with `bookings/write`: a person may only book for themselves, and every booking here
 * is for the one registered user.
 */
function bookingRequests(userId: string, prefix: string, tokens: readonly string[]): Options['requests'] {
  let counter = 0;
  return [
    {
      method: 'POST',
      path: '/bookings',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => {
        counter += 1;
        const token = tokens[counter % tokens.length] as string;
        return {
          ...request,
          headers: { ...request.headers, authorization: `Bearer ${token}` },
          body: bookingBody(userId, `${prefix}-${counter}`),
        };
      },
    },
  ];
}

interface Side {
  throughput: Result;
  latencies: number[];
}

function measurements(id: string, what: string, ours: Side, floor: Side): Measurement[] {
  if (ours.throughput.non2xx > 0 || ours.throughput.errors > 0) {
    throw new Error(
      `${id}: ${ours.throughput.non2xx} non-2xx and ${ours.throughput.errors} errors; invalid run`,
    );
  }
  const baseline = 'bare node:http';
  const latency = (p: number): Measurement => ({
    id: `${id}.p${p}`,
    what: `${what}: p${p} latency, 1 connection`,
    value: percentile(ours.latencies, p),
    unit: 'ms',
    baseline: { name: baseline, value: percentile(floor.latencies, p) },
  });
  return [
    {
      id: `${id}.rps`,
      what: `${what}: requests/s, ${connections} connections`,
      value: ours.throughput.requests.average,
      unit: 'req/s',
      baseline: { name: baseline, value: floor.throughput.requests.average },
    },
    latency(50),
    latency(99),
  ];
}

const suite: BenchSuite = {
  name: 'local runtime HTTP',
  async run() {
    // The level the stack deploys (lib/bulwark-function.ts), so every request's audit lines (written at
    // info) and EMF lines are serialised and written, as in Lambda; they go to /dev/null rather than onto
    // the results table. Counted, so a run that wrote no audit line shows it.
    process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
    const devNull = openSync('/dev/null', 'w');
    const stdoutWrite = process.stdout.write;
    const written = { lines: 0, audit: 0 };
    process.stdout.write = ((chunk: string | Uint8Array) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      writeSync(devNull, bytes);
      written.lines += 1;
      if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes('"message":"AUDIT ')) {
        written.audit += 1;
      }
      return true;
    }) as typeof process.stdout.write;
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
      // More tokens than requests in one run, so no subject books twice within the limit's window.
      const tokens: string[] = [];
      for (let index = 0; index < tokenPoolSize; index += 1) {
        tokens.push(
          await runtime.auth.devIssuer.mint({
            m2m: true,
            clientId: `bench-${index}`,
            scopes: ['bookings/write'],
          }),
        );
      }

      const health = async (url: string): Promise<Side> => ({
        latencies: await timeSequential(latencySamples, () => send(`${url}/health`, 'GET')),
        throughput: await cannon({ url: `${url}/health` }),
      });
      const bookings = async (url: string, prefix: string): Promise<Side> => ({
        latencies: await timeSequential(latencySamples, (index) =>
          send(`${url}/bookings`, 'POST', bookingBody(userId, `${prefix}-seq-${index}`), tokens[index]),
        ),
        throughput: await cannon({
          url,
          requests: bookingRequests(userId, prefix, tokens.slice(latencySamples + 50)),
        }),
      });
      const oursHealth = await health(runtime.url);
      const floorHealth = await health(bare.url);
      const oursBookings = await bookings(runtime.url, `bench-${Date.now()}`);
      const floorBookings = await bookings(bare.url, 'bare');
      return [
        ...measurements('http.health', 'GET /health', oursHealth, floorHealth),
        ...measurements('http.bookings', 'POST /bookings', oursBookings, floorBookings),
      ];
    } finally {
      await bare.close();
      await runtime.stop();
      process.stdout.write = stdoutWrite;
      closeSync(devNull);
      console.error(
        `http: the functions made ${written.lines} stdout writes (log and EMF lines, to /dev/null), ${written.audit} of them audit lines`,
      );
    }
  },
};

export default suite;
