import { describe, expect, it } from 'vitest';
import { maskRecipients } from '../../functions/email-worker/send-failure.js';

describe('maskRecipients', () => {
  it('masks addresses and phone numbers as providers quote them', () => {
    expect(
      maskRecipients(
        'The following identities failed the check in region US-EAST-1: carol@example.net, Bob.O+tag@mail.example.org',
      ),
    ).toBe('The following identities failed the check in region US-EAST-1: [email], [email]');
    expect(maskRecipients('No route to +447700900123 or 14155552671')).toBe('No route to [phone] or [phone]');
    expect(maskRecipients("450 4.2.2 <sean.o'brien@example.com>: Mailbox full")).toBe(
      '450 4.2.2 <[email]>: Mailbox full',
    );
  });

  it('keeps what is not personal: IP addresses, ports, dates, reply codes, durations', () => {
    const text =
      'connect ECONNREFUSED 10.0.12.7:587 at 2026-12-04; 550 5.1.1 rejected; email-smtp did not answer within 25000 ms';
    expect(maskRecipients(text)).toBe(text);
  });

  it('keeps a UUID whole when a group of it is all digits, and still masks a phone number beside it', () => {
    // Ids as randomUUID() returns them: one in forty has an 8- or 12-digit group with no letter.
    for (const id of ['91422294-868d-4970-ab0b-d8bc64f0619d', '22707FFF-6B5E-4E97-8F2B-527914303318']) {
      expect(maskRecipients(`Message ${id} rejected for +14155552671`)).toBe(
        `Message ${id} rejected for [phone]`,
      );
    }
    // The SMS outbox's file name, as a failed write quotes it.
    const outboxFile = "open '/outbox/2026-12-07T19-07-15-123Z-91422294-868d-4970-ab0b-d8bc64f0619d.sms.txt'";
    expect(maskRecipients(`ENOENT: no such file or directory, ${outboxFile}`)).toBe(
      `ENOENT: no such file or directory, ${outboxFile}`,
    );
    expect(maskRecipients('No route to +1-4155552671')).toBe('No route to +1-[phone]');
  });

  it('cuts a huge text before masking it, at the end of a whole word, so no recipient is cut in half', () => {
    // A long run without @ costs no more than a short one; with no word end in the head, nothing of it stays.
    expect(maskRecipients(`${'a'.repeat(300_000)} to ada@example.com`)).toBe('…[truncated 300019 chars]');
    for (const shift of [0, 3, 9, 20]) {
      const text = `${'x'.repeat(2040 - shift)} rejected ada.lovelace@example.com and +447700900123 for good`;
      const masked = maskRecipients(text);
      expect(masked).toMatch(/…\[truncated \d+ chars\]$/);
      expect(masked).not.toMatch(/ada|lovelace|4477|7700/);
    }
  });
});
