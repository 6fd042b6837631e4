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
});
