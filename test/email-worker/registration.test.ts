import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readableUtcTime } from '../../functions/email-worker/templates.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { decodedEml, drained, emailsTo, receiveAll, sendRaw, until } from './helpers.js';

const api = useLocalRuntime({ emailRetryBaseDelaySec: 1 });

describe('registration emails through the local queue, worker and SMTP sink', () => {
  it('sends a welcome and a verification email with a signed, expiring link after registering', async () => {
    const email = `ada-${randomUUID()}@example.com`;
    const response = await api.request('POST', '/users', { body: { email, name: 'Ada Lovelace' } });
    expect(response.status).toBe(201);
    const { id: userId, expiresAt } = response.body as { id: string; expiresAt: string };

    const messages = await emailsTo(api.runtime(), email, 2);
    const raws = messages.map((message) => decodedEml(message.raw));
    const welcome = raws.find((raw) => raw.includes('Subject: Welcome to Bulwark'));
    const verification = raws.find((raw) => raw.includes('Subject: Verify your email address'));
    expect(welcome).toContain('Welcome, Ada Lovelace!');
    expect(welcome).toContain('Confirming your email address comes first:');
    expect(welcome).not.toContain('account is ready');
    // The time the registration answered with, as the lapse the verification email gives.
    expect(verification).toContain(
      `Confirm by ${readableUtcTime(expiresAt)} or this registration is removed.`,
    );
    // The link runs out a day before the registration: it says so, and that an expired one asks for a new one.
    expect(verification).toMatch(
      /The link works until \d{1,2} \w+ \d{4}, \d{2}:\d{2} UTC\. If it has expired, opening it lets you ask for a new one\./,
    );
    expect(verification).toMatch(
      new RegExp(`${api.runtime().url}/users/${userId}/verify\\?expires=\\d+&signature=[\\w-]{43}`),
    );
    expect(messages.every((message) => message.from === 'noreply@bulwark.local')).toBe(true);
    // Both parts went out: the HTML one escapes, the text one does not.
    expect(verification).toContain('Content-Type: text/html');
    expect(verification).toContain('Content-Type: text/plain');
  });

  it('sends nothing for a registration refused for a domain that can never receive mail', async () => {
    const refused = `bounce-${randomUUID()}@example.invalid`;
    const response = await api.request('POST', '/users', { body: { email: refused, name: 'Bounce' } });
    expect(response.status).toBe(400);
    // A registration after it has its two emails sent; the refused one queued none before it.
    const accepted = `after-${randomUUID()}@example.com`;
    expect((await api.request('POST', '/users', { body: { email: accepted, name: 'After' } })).status).toBe(
      201,
    );
    await emailsTo(api.runtime(), accepted, 2);
    await drained(api.runtime());
    expect(api.runtime().smtp.messages.filter((message) => message.to.includes(refused))).toEqual([]);
  });

  it('sends one email when the same message is enqueued twice', async () => {
    const to = `twice-${randomUUID()}@example.com`;
    const body = JSON.stringify({ id: randomUUID(), type: 'welcome', to, data: { name: 'Twice' } });
    await sendRaw(api.runtime(), body);
    await emailsTo(api.runtime(), to, 1);
    await sendRaw(api.runtime(), body);
    await drained(api.runtime());
    expect(api.runtime().smtp.messages.filter((message) => message.to.includes(to))).toHaveLength(1);
  });

  it('dead-letters a malformed message at once, with its reason, without retrying it', async () => {
    const cases = [
      'not json',
      JSON.stringify({ id: randomUUID(), type: 'fax', to: 'x@example.com', data: {} }),
      JSON.stringify({ id: randomUUID(), type: 'welcome', to: 'not-an-email', data: { name: 'X' } }),
      JSON.stringify({ id: randomUUID(), type: 'verification', to: 'x@example.com', data: { name: 'X' } }),
    ];
    for (const body of cases) await sendRaw(api.runtime(), body);
    const dead: Awaited<ReturnType<typeof receiveAll>> = [];
    await until(async () => {
      dead.push(...(await receiveAll(api.runtime(), 'bulwark-email-dlq')));
      return dead.length >= cases.length ? true : undefined;
    });
    expect(dead.map((message) => message.Body).sort()).toEqual([...cases].sort());
    for (const message of dead) {
      // The worker's reason travels with the copy, so whoever reads the DLQ sees why.
      expect(message.MessageAttributes?.['bulwark-dead-letter-reason']?.StringValue).toMatch(
        /JSON|Invalid message/,
      );
    }
    expect(await receiveAll(api.runtime(), 'bulwark-email')).toEqual([]);
  });
});
