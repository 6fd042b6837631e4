// The local runtime reports each function's first invocation as a cold start, as Lambda does.
import { describe, expect, it } from 'vitest';
import { captureStdout, enableMetricsOutput } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';

enableMetricsOutput();
const output = captureStdout();
const api = useLocalRuntime();

describe('cold starts under npm start', () => {
  it("emits ColdStart for the health function's first request only", async () => {
    expect((await api.request('GET', '/health')).status).toBe(200);
    expect((await api.request('GET', '/health')).status).toBe(200);
    const coldStarts = output.emf().filter((line) => line.ColdStart !== undefined);
    expect(coldStarts).toHaveLength(1);
    expect(coldStarts[0]).toMatchObject({ service: 'health', ColdStart: 1 });
  });
});
