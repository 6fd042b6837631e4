// Webhook deliveries/s through the whole queue path (SQS → poller → webhook worker → receiver) next to direct POSTs, and the cost of signing.
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import { createLocalSqsClient } from '../../bin/runtime/local-sqs.js';
import { newWebhookId } from '../../functions/shared/webhook-ids.js';
import { signWebhook } from '../../functions/webhook-worker/delivery.js';
import { workers } from '../../functions/workers.js';
import { type BenchSuite, type Measurement, percentile, timeSequential, waitUntil } from './harness.js';

const deliveryCount = Number(process.env.BENCH_WEBHOOKS ?? 500);
const signingSamples = Number(process.env.BENCH_WEBHOOK_SIGNING ?? 1000);
const definition = workers['webhook-worker'];
// POSTs in flight at once on the queue path: every record of a batch in parallel, one batch at a time (the
// local runtime runs each function as one execution environment; AWS runs up to maxConcurrency of them).
const inFlight = definition.batchSize;

/** A receiver that answers 204 to everything and counts what it got. */
async function startCountingReceiver(): Promise<{
  url: string;
  count: () => number;
  close(): Promise<void>;
}> {
  let count = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      count += 1;
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    count: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: inFlight });

function post(url: string, headers: Record<string, string>, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve());
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

const payload = (index: number) =>
  JSON.stringify({
    type: 'booking.created',
    timestamp: new Date().toISOString(),
    data: { id: `booking-${index}`, roomId: 'room-1', userId: 'user-1', status: 'confirmed' },
  });

const suite: BenchSuite = {
  name: 'webhooks',
  async run(): Promise<Measurement[]> {
    process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
    process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
    const runtime = await startLocalRuntime({ port: 0 });
    const receiver = await startCountingReceiver();
    try {
      const token = await runtime.auth.devIssuer.mint({ sub: 'bench-owner' });
      const registered = await fetch(`${runtime.url}/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: receiver.url, eventTypes: ['booking.created'] }),
      });
      const endpoint = (await registered.json()) as { id: string; secret: string; tenantId: string };

      // Floor: the same payloads POSTed straight to the receiver, unsigned, `inFlight` at a time.
      const directStart = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < deliveryCount) {
            next += 1;
            await post(receiver.url, {}, payload(next));
          }
        }),
      );
      const directPerSec = deliveryCount / ((performance.now() - directStart) / 1000);

      const before = receiver.count();
      const sqs = createLocalSqsClient(runtime.sqs.endpoint);
      const queueStart = performance.now();
      for (let offset = 0; offset < deliveryCount; offset += 10) {
        const size = Math.min(10, deliveryCount - offset);
        const createdAt = new Date().toISOString();
        await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: runtime.sqs.queueUrls[definition.queueName],
            Entries: Array.from({ length: size }, (_, index) => ({
              Id: String(index),
              MessageBody: JSON.stringify({
                id: newWebhookId('msg'),
                endpointId: endpoint.id,
                tenantId: endpoint.tenantId,
                eventType: 'booking.created',
                createdAt,
                payload: JSON.parse(payload(offset + index)),
              }),
            })),
          }),
        );
      }
      await waitUntil(() => receiver.count() - before >= deliveryCount, 180_000, 'webhooks');
      const queuedPerSec = deliveryCount / ((performance.now() - queueStart) / 1000);
      sqs.destroy();

      // Signing: signed and unsigned POSTs to the same receiver, interleaved so drift in load hits both.
      // The signing step is timed inside the same loop, so it runs under the same conditions as the POSTs
      // it is set against: signing back to back keeps its code and data hot, and measures far less.
      const body = payload(0);
      const unsigned: number[] = [];
      const signed: number[] = [];
      const signing: number[] = [];
      const warmup = 50;
      await timeSequential(
        signingSamples,
        async (index) => {
          const started = performance.now();
          const isSigned = index % 2 === 1;
          const headers = isSigned
            ? { ...signWebhook([endpoint.secret], newWebhookId('msg'), body, new Date()) }
            : {};
          const headersReady = performance.now();
          await post(receiver.url, headers, body);
          // Warm-up calls are not samples.
          if (index < warmup) return;
          (isSigned ? signed : unsigned).push(performance.now() - started);
          if (isSigned) signing.push(headersReady - started);
        },
        warmup,
      );
      const microseconds = (samples: number[]) => percentile(samples, 50) * 1000;
      // What a signed delivery costs over an unsigned one: the signed POST's p50 minus the unsigned one's.
      // It holds the signing and whatever else the signed request does (three more headers sent and
      // parsed), so it is printed beside the signing figure rather than read as the cost of signing.
      const signedExtra = microseconds(signed) - microseconds(unsigned);
      console.error(
        `webhook signing: signed POST p50 ${microseconds(signed).toFixed(1)} µs vs unsigned ` +
          `${microseconds(unsigned).toFixed(1)} µs, +${signedExtra.toFixed(1)} µs per delivery, of which ` +
          `signing measures ${microseconds(signing).toFixed(1)} µs (p50, in the same loop)`,
      );

      return [
        {
          id: 'webhook.queue-path',
          what: `${deliveryCount} webhooks enqueued → signed POSTs to a local receiver (one batch of ${definition.batchSize} at a time, idempotency + circuit + delivery history on)`,
          value: queuedPerSec,
          unit: 'deliveries/s',
          baseline: { name: `unsigned POSTs direct, ${inFlight} in flight`, value: directPerSec },
        },
        {
          id: 'webhook.signed-post',
          what: 'p50 of one signed POST (sign + 3 headers) to the local receiver, interleaved with unsigned ones',
          value: microseconds(signed),
          unit: 'µs',
          baseline: { name: 'p50 of one unsigned POST', value: microseconds(unsigned) },
        },
        {
          id: 'webhook.signed-post.extra',
          what: 'extra of one signed POST over an unsigned one: signed p50 minus unsigned p50 (signing included)',
          value: signedExtra,
          unit: 'µs',
          baseline: { name: 'p50 of one unsigned POST', value: microseconds(unsigned) },
        },
        {
          id: 'webhook.signing',
          what: 'p50 of the signing step (Standard Webhooks HMAC-SHA256 over id.timestamp.body, secret decode, headers), timed inside the same interleaved POST loop',
          value: microseconds(signing),
          unit: 'µs',
          baseline: { name: "the signed POST's extra over an unsigned one (row above)", value: signedExtra },
        },
      ];
    } finally {
      agent.destroy();
      await receiver.close();
      await runtime.stop();
    }
  },
};

export default suite;
