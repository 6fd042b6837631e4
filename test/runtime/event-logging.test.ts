// POWERTOOLS_LOGGER_LOG_EVENT, Powertools' stock debug switch, logs no function's whole event: bodies and queue messages carry personal data the redactor cannot name.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { drained, emailsTo } from '../email-worker/helpers.js';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';

// Both read when the handler modules build their loggers, at the runtime's start.
process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
process.env.POWERTOOLS_LOGGER_LOG_EVENT = 'true';
const output = captureStdout();
const api = useLocalRuntime();

describe('with POWERTOOLS_LOGGER_LOG_EVENT=true', () => {
  it('no HTTP function or worker logs its event: a registration’s name and address reach no line', async () => {
    const email = `logged-${randomUUID()}@example.com`;
    // Letters only, as a name must be; random, so no other test's line can hold it.
    const name = `Zebulon ${[...randomUUID().replace(/\W/g, '').slice(0, 8)].map((c) => String.fromCharCode(97 + (c.charCodeAt(0) % 26))).join('')}`;
    const registered = await api.request('POST', '/users', { body: { email, name } });
    expect(registered.status).toBe(201);
    // The welcome and verification emails went through the email worker, their messages naming both.
    await emailsTo(api.runtime(), email, 2);
    await drained(api.runtime());

    const lines = output.lines();
    expect(lines.some((line) => line.includes('"service":"users"'))).toBe(true);
    expect(lines.some((line) => line.includes('"service":"email-worker"'))).toBe(true);
    expect(lines.filter((line) => line.includes('Lambda invocation event'))).toEqual([]);
    expect(lines.filter((line) => line.includes(name) || line.includes(email))).toEqual([]);
  });
});
