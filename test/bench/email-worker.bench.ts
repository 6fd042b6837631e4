// Emails/s through the whole queue path (SQS → poller → email worker → SMTP sink) next to nodemailer sending straight to the sink.
import { randomUUID } from 'node:crypto';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createTransport } from 'nodemailer';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import { createLocalSqsClient } from '../../bin/runtime/local-sqs.js';
import { workers } from '../../functions/workers.js';
import { type BenchSuite, type Measurement, waitUntil } from './harness.js';

const emailCount = Number(process.env.BENCH_EMAILS ?? 300);
// Sends in flight at once on the queue path: every record of a batch in parallel, one batch at a time (the
// local runtime runs each function as one execution environment; AWS runs up to maxConcurrency of them).
const concurrency = workers['email-worker'].batchSize;

const suite: BenchSuite = {
  name: 'email-worker',
  async run(): Promise<Measurement[]> {
    process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
    process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
    const runtime = await startLocalRuntime({ port: 0 });
    try {
      const sink = runtime.smtp;
      // Floor: the same messages straight to the sink with nodemailer, `concurrency` at a time.
      const transport = createTransport({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true });
      const directStart = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < emailCount) {
            next += 1;
            await transport.sendMail({
              from: 'noreply@bulwark.local',
              to: `direct-${next}@example.com`,
              subject: 'Welcome to Bulwark',
              text: 'Welcome!',
              html: '<p>Welcome!</p>',
            });
          }
        }),
      );
      const directPerSec = emailCount / ((performance.now() - directStart) / 1000);
      transport.close();

      const before = sink.messages.length;
      const sqs = createLocalSqsClient(runtime.sqs.endpoint);
      const queueStart = performance.now();
      for (let offset = 0; offset < emailCount; offset += 10) {
        const size = Math.min(10, emailCount - offset);
        await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: runtime.sqs.queueUrls[workers['email-worker'].queueName],
            Entries: Array.from({ length: size }, (_, index) => ({
              Id: String(index),
              MessageBody: JSON.stringify({
                id: randomUUID(),
                type: 'welcome',
                to: `queued-${offset + index}@example.com`,
                data: { name: 'Bench' },
              }),
            })),
          }),
        );
      }
      await waitUntil(() => sink.messages.length - before >= emailCount, 120_000, 'emails');
      const queuedPerSec = emailCount / ((performance.now() - queueStart) / 1000);
      sqs.destroy();
      return [
        {
          id: 'email.queue-path',
          what: `${emailCount} welcome emails enqueued → SMTP sink (up to ${concurrency} sends in flight, idempotency + breaker on)`,
          value: queuedPerSec,
          unit: 'emails/s',
          baseline: { name: `nodemailer direct, ${concurrency} at a time`, value: directPerSec },
        },
      ];
    } finally {
      await runtime.stop();
    }
  },
};

export default suite;
