// What the queue workers write under npm start: the Lambda context on their lines and the ColdStart metric, as the HTTP functions do.
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { drained, emailsTo, sendRaw, until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { type Receiver, registerEndpoint, startReceiver } from '../webhooks/helpers.js';

// Read when the handler modules build their loggers, at the runtime's start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
enableMetricsOutput();
const output = captureStdout();
// Short retry bases: a send or a delivery that fails once on a busy machine (a store write past its timeout)
// is retried within seconds, so the queues still drain in the time the test waits; its lines carry the
// same correlation id.
const api = useLocalRuntime({ as: adminUser, emailRetryBaseDelaySec: 1, webhookRetryBaseDelaySec: 1 });
const receivers: Receiver[] = [];
afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.close()));
});

/** The log lines (not EMF) one function wrote. */
const linesOf = (service: string) =>
  output.json().filter((line) => line.service === service && line._aws === undefined);

describe('queue workers under npm start', () => {
  it.each([
    ['email-worker', 'bulwark-email'],
    ['webhook-worker', 'bulwark-webhook'],
  ])(
    '%s: Lambda context on every line, and ColdStart for the first invocation only',
    async (service, queue) => {
      // Two invocations: the second message is sent once the first is processed.
      for (const body of ['not json', '{"id":"no schema"}']) {
        await sendRaw(api.runtime(), body, queue);
        await drained(api.runtime(), queue);
      }
      const coldStarts = output
        .emf()
        .filter((line) => line.ColdStart !== undefined && line.service === service);
      expect(coldStarts).toEqual([
        expect.objectContaining({ ColdStart: 1, function_name: `bulwark-${service}` }),
      ]);
      const lines = linesOf(service);
      // Each rejected message: one error line and one audit line, of its invocation.
      expect(lines).toHaveLength(4);
      for (const line of lines) {
        expect(line).toMatchObject({
          function_name: `bulwark-${service}`,
          function_request_id: expect.any(String),
        });
      }
      expect(lines.map((line) => line.cold_start)).toEqual([true, true, false, false]);
      expect(new Set(lines.map((line) => line.function_request_id)).size).toBe(2);
    },
  );

  it("carries a registration's and a booking's correlation id onto every line the workers write for them", async () => {
    const email = `traced-${randomUUID()}@example.com`;
    const registered = await api.request('POST', '/users', {
      headers: { 'x-correlation-id': 'trace-registration' },
      body: { email, name: 'Traced' },
    });
    const userId = (registered.body as { id: string }).id;
    await emailsTo(api.runtime(), email, 2);
    await drained(api.runtime());

    const receiver = await startReceiver();
    receivers.push(receiver);
    await registerEndpoint(api, await api.token({ sub: userId }), receiver.url);
    const start = new Date(bookingDay(11)(9));
    const booked = await api.request('POST', '/bookings', {
      headers: { 'x-correlation-id': 'trace-booking' },
      body: {
        roomId: `room-${randomUUID()}`,
        userId,
        start: start.toISOString(),
        end: new Date(start.getTime() + 1_800_000).toISOString(),
      },
    });
    expect(booked.status).toBe(201);
    await until(() => (receiver.received.length > 0 ? true : undefined));
    await drained(api.runtime(), 'bulwark-webhook');

    // The sends and the delivery are audited: there are lines to check.
    expect(output.audit().map((event) => event.eventType)).toEqual(
      expect.arrayContaining(['email.sent', 'webhook.delivered']),
    );
    expect(new Set(linesOf('email-worker').map((line) => line.correlation_id))).toEqual(
      new Set(['trace-registration']),
    );
    expect(new Set(linesOf('webhook-worker').map((line) => line.correlation_id))).toEqual(
      new Set(['trace-booking']),
    );
  });
});
