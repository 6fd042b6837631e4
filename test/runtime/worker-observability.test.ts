// What the queue workers write under npm start: the Lambda context on their lines and the ColdStart metric, as the HTTP functions do.
import { describe, expect, it } from 'vitest';
import { drained, sendRaw } from '../email-worker/helpers.js';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';

// Read when the handler modules build their loggers, at the runtime's start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
enableMetricsOutput();
const output = captureStdout();
const api = useLocalRuntime();

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
});
