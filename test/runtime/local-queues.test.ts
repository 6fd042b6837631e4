import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { createTransport } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type LocalSqs, startLocalSqs } from '../../bin/runtime/local-sqs.js';
import { failedMessageIds, QueuePoller } from '../../bin/runtime/queue-poller.js';
import { type SmtpSink, startSmtpSink } from '../../bin/runtime/smtp-sink.js';

let sqs: LocalSqs;
const queues = ['batch', 'partial', 'redrive', 'crash', 'counted'].map((name) => ({
  name,
  maxReceiveCount: 2,
  visibilityTimeoutSec: 1,
}));

beforeAll(async () => {
  sqs = await startLocalSqs(queues);
});
afterAll(() => sqs.stop());

const arnOf = (name: string) => sqs.queueArns[name] as string;

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A poller stopped when its test ends, even by a failed wait: it must not take a later test's messages. */
function poller(name: string, invoke: (event: SQSEvent) => Promise<unknown>) {
  const client = sqs.createClient();
  const created = new QueuePoller({
    client,
    queueUrl: sqs.queueUrls[name] as string,
    queueArn: arnOf(name),
    maxConcurrency: 1,
    invoke,
    onError: () => {},
  });
  onTestFinished(() => created.stop());
  return created;
}

async function send(name: string, bodies: string[]) {
  const client = sqs.createClient();
  await client.send(
    new SendMessageBatchCommand({
      QueueUrl: sqs.queueUrls[name],
      Entries: bodies.map((body, index) => ({
        Id: String(index),
        MessageBody: body,
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'test' } },
      })),
    }),
  );
  client.destroy();
}

/** The bodies of the messages a queue has visible now (up to 10). */
async function visibleBodies(name: string): Promise<string[]> {
  const client = sqs.createClient();
  const { Messages } = await client.send(
    new ReceiveMessageCommand({ QueueUrl: sqs.queueUrls[name], MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
  );
  client.destroy();
  return (Messages ?? []).map((message) => message.Body ?? '');
}

/** Messages a queue holds: visible, in flight or delayed. */
const held = async (name: string) => (await sqs.countMessages())[name] ?? 0;

/**
 * What is left in a queue: nothing as soon as it holds no message, visible or in flight; otherwise,
 * after a deadline well past the visibility timeout (so that what was in flight is visible again),
 * the bodies it still holds.
 */
async function drain(name: string): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  while ((await held(name)) > 0) {
    if (Date.now() > deadline) return visibleBodies(name);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return [];
}

describe('local SQS event source', () => {
  it('hands messages to the worker as a Lambda SQSEvent', async () => {
    const seen: SQSRecord[] = [];
    const worker = poller('batch', async (event) => {
      seen.push(...event.Records);
    });
    worker.start();
    await send('batch', ['one', 'two']);
    await until(() => (seen.length === 2 ? true : undefined));
    await worker.stop();
    const record = seen.find((candidate) => candidate.body === 'one');
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: arnOf('batch'),
      awsRegion: 'us-east-1',
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes: { kind: { dataType: 'String', stringValue: 'test', stringListValues: [] } },
    });
    expect(arnOf('batch')).toMatch(/^arn:aws:sqs:us-east-1:\d{12}:batch$/);
    expect(arnOf('batch-dlq')).toMatch(/^arn:aws:sqs:us-east-1:\d{12}:batch-dlq$/);
    expect(record?.messageId).toMatch(/\S/);
    expect(record?.receiptHandle).toMatch(/\S/);
    expect(await drain('batch')).toEqual([]);
  });

  it('deletes the successful records of a batch and redelivers only the failed one', async () => {
    const deliveries: string[] = [];
    const worker = poller('partial', async (event) => {
      deliveries.push(...event.Records.map((record) => record.body));
      const failures = event.Records.filter(
        (record) => record.body === 'flaky' && record.attributes.ApproximateReceiveCount === '1',
      );
      return { batchItemFailures: failures.map((record) => ({ itemIdentifier: record.messageId })) };
    });
    worker.start();
    await send('partial', ['fine', 'flaky']);
    await until(() => (deliveries.filter((body) => body === 'flaky').length === 2 ? true : undefined));
    await worker.stop();
    expect(deliveries.filter((body) => body === 'fine')).toHaveLength(1);
    expect(await drain('partial')).toEqual([]);
  });

  it('moves a record that keeps failing to the dead-letter queue after maxReceiveCount receives', async () => {
    let attempts = 0;
    const worker = poller('redrive', async (event) => {
      attempts += event.Records.length;
      return { batchItemFailures: event.Records.map((record) => ({ itemIdentifier: record.messageId })) };
    });
    worker.start();
    await send('redrive', ['poison']);
    await until(async () => ((await held('redrive-dlq')) > 0 ? true : undefined));
    await worker.stop();
    expect(await visibleBodies('redrive-dlq')).toEqual(['poison']);
    expect(attempts).toBe(2);
    expect(await drain('redrive')).toEqual([]);
  });

  it('returns every record of a batch whose invocation failed', async () => {
    let crashedWith: string[] | undefined;
    const seenAgain = new Set<string>();
    const worker = poller('crash', async (event) => {
      const bodies = event.Records.map((record) => record.body);
      if (!crashedWith) {
        crashedWith = bodies;
        throw new Error('worker crashed');
      }
      for (const body of bodies) seenAgain.add(body);
      return { batchItemFailures: [] };
    });
    await send('crash', ['retry me', 'and me']);
    worker.start();
    await until(() =>
      crashedWith && crashedWith.length > 0 && crashedWith.every((body) => seenAgain.has(body))
        ? true
        : undefined,
    );
    await worker.stop();
    // The messages were sent together, so the crashed invocation held both (a receive takes up to 10).
    expect(crashedWith?.sort()).toEqual(['and me', 'retry me']);
    expect(await drain('crash')).toEqual([]);
  });
});

describe('local SQS message counts', () => {
  it('counts what each queue holds, received or not, and leaves empty queues out', async () => {
    await send('counted', ['one', 'two', 'three']);
    const client = sqs.createClient();
    await client.send(new ReceiveMessageCommand({ QueueUrl: sqs.queueUrls.counted, MaxNumberOfMessages: 1 }));
    client.destroy();
    const counts = await sqs.countMessages();
    expect(counts.counted).toBe(3);
    expect(counts['counted-dlq']).toBeUndefined();
  });
});

describe("Lambda's partial batch response rules", () => {
  const batch = [{ messageId: 'a' }, { messageId: 'b' }] as SQSRecord[];

  it('treat no response, null or an empty list as full success', () => {
    expect(failedMessageIds(undefined, batch).size).toBe(0);
    expect(failedMessageIds(null, batch).size).toBe(0);
    expect(failedMessageIds({}, batch).size).toBe(0);
    expect(failedMessageIds({ batchItemFailures: null }, batch).size).toBe(0);
    expect(failedMessageIds({ batchItemFailures: [] }, batch).size).toBe(0);
  });

  it('fail only the listed records', () => {
    expect([...failedMessageIds({ batchItemFailures: [{ itemIdentifier: 'b' }] }, batch)]).toEqual(['b']);
  });

  it('fail the whole batch on an unknown, empty or malformed identifier', () => {
    for (const response of [
      { batchItemFailures: [{ itemIdentifier: 'zzz' }] },
      { batchItemFailures: [{ itemIdentifier: '' }] },
      { batchItemFailures: [{ id: 'a' }] },
      { batchItemFailures: 'a' },
      'not an object',
    ]) {
      expect(failedMessageIds(response, batch).size).toBe(2);
    }
  });
});

describe('SMTP sink', () => {
  const email = {
    from: 'noreply@bulwark.local',
    to: 'alice@example.com',
    subject: 'Welcome',
    text: 'Hello Alice',
  };

  async function send(sink: SmtpSink, message: typeof email): Promise<void> {
    const transport = createTransport({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true });
    try {
      await transport.sendMail(message);
    } finally {
      transport.close();
    }
  }

  it('keeps each message in memory when there is no outbox', async () => {
    const sink = await startSmtpSink();
    onTestFinished(() => sink.stop());
    await send(sink, email);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]).toMatchObject({ from: 'noreply@bulwark.local', to: ['alice@example.com'] });
    expect(sink.messages[0]?.raw).toContain('Hello Alice');
  });

  it('writes each message as an .eml file to the outbox and keeps none in memory', async () => {
    const outboxDir = mkdtempSync(join(tmpdir(), 'outbox-'));
    onTestFinished(() => rmSync(outboxDir, { recursive: true, force: true }));
    const sink = await startSmtpSink({ outboxDir });
    onTestFinished(() => sink.stop());
    await send(sink, email);
    await send(sink, { ...email, subject: 'Again' });
    expect(sink.messages).toEqual([]);
    const files = readdirSync(outboxDir).sort();
    expect(files).toHaveLength(2);
    const eml = readFileSync(join(outboxDir, files[0] as string), 'utf8');
    expect(eml).toContain('Subject: Welcome');
    expect(eml).toContain('Hello Alice');
  });

  it('refuses a message over its size limit with 552 and keeps nothing of it', async () => {
    const outboxDir = mkdtempSync(join(tmpdir(), 'outbox-'));
    onTestFinished(() => rmSync(outboxDir, { recursive: true, force: true }));
    const sink = await startSmtpSink({ maxMessageBytes: 4096 });
    onTestFinished(() => sink.stop());
    const withOutbox = await startSmtpSink({ outboxDir, maxMessageBytes: 4096 });
    onTestFinished(() => withOutbox.stop());
    const oversized = { ...email, text: 'x'.repeat(8192) };

    await expect(send(sink, oversized)).rejects.toMatchObject({ responseCode: 552 });
    await expect(send(withOutbox, oversized)).rejects.toMatchObject({ responseCode: 552 });
    expect(sink.messages).toEqual([]);
    expect(readdirSync(outboxDir)).toEqual([]);
    await send(sink, email);
    expect(sink.messages).toHaveLength(1);
  });
});
