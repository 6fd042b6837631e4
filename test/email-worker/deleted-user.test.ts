// The deployed email worker handler's own user check, through the local runtime: a message naming a user who is not on the app table is dropped unsent.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { captureStdout } from '../helpers/log-capture.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { drained, sendRaw } from './helpers.js';

// Audit lines are Powertools INFO lines; read when the handler modules build their loggers, at the runtime's start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
const output = captureStdout();
const api = useLocalRuntime();

describe('the email worker handler, about a user who is not there', () => {
  it('sends nothing to the SMTP sink and audits the message as skipped, by ids alone', async () => {
    const userId = randomUUID();
    const to = `gone-${randomUUID()}@example.com`;
    const message = { id: randomUUID(), type: 'welcome', to, userId, data: { name: 'Gone Gina' } };
    await sendRaw(api.runtime(), JSON.stringify(message));
    await drained(api.runtime());

    expect(api.runtime().smtp.messages.filter((sent) => sent.to.includes(to))).toEqual([]);
    const audits = output.audit().filter((audit) => audit.userId === userId);
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'email.skipped',
        outcome: 'success',
        metadata: { messageId: message.id, type: 'welcome', reason: 'user_deleted' },
      }),
    ]);
    // Ids only: neither the address nor the name reaches the audit line.
    expect(JSON.stringify(audits)).not.toMatch(new RegExp(`${to}|Gone Gina`));
  });
});
