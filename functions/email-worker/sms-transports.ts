// SMS transports chosen by configuration: SNS in AWS, and locally an outbox folder with one text file per SMS.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { DeliveryRejectedError } from '../../middleware/errors.js';

export interface OutgoingSms {
  /** E.164, validated before it gets here. */
  readonly to: string;
  readonly text: string;
  /** The queue message's id, so an SMS can be traced from the queue to the provider or the outbox. */
  readonly messageId: string;
}

export interface SmsTransport {
  readonly name: 'sns' | 'outbox';
  /** Resolves with the provider's message id once the provider accepted the SMS. */
  send(sms: OutgoingSms, signal?: AbortSignal): Promise<string>;
  close(): void;
}

export interface SnsSmsTransportOptions {
  /**
   * Alphanumeric sender id, where the destination country supports one.
   * @default none (the account's default origination number)
   */
  readonly senderId?: string;
}

/**
 * Whether SNS refused this one number for good: an `InvalidParameter` or `InvalidParameterValue` about
 * the `PhoneNumber` parameter (`Invalid parameter: PhoneNumber Reason: +… is not valid to publish to`, a
 * destination SNS cannot text), which no retry changes. Not one that mentions verification or the
 * sandbox: in the SMS sandbox every number the account has not verified is refused, which is our setup.
 * Other parameters (the message, the sender id) are ours, and `InternalError` is passing: those count
 * against the breaker. Throttling is retried without counting (isProviderThrottling). `Publish` never answers `OptedOut`: SNS accepts an SMS to a number
 * that opted out and drops it, so there is nothing to map for that.
 */
function isSnsRecipientRefusal(error: unknown): error is Error {
  return (
    error instanceof Error &&
    (error.name === 'InvalidParameterException' || error.name === 'InvalidParameterValueException') &&
    /\bPhoneNumber\b/.test(error.message) &&
    !/verified|sandbox/i.test(error.message)
  );
}

/**
 * SNS `Publish` straight to a phone number, as a Transactional SMS (verification codes must arrive
 * even to numbers that opted out of promotional messages, and are routed for reliability over cost).
 */
export class SnsSmsTransport implements SmsTransport {
  readonly name = 'sns';

  constructor(
    private readonly client: SNSClient,
    private readonly options: SnsSmsTransportOptions = {},
  ) {}

  /**
   * Rejects with DeliveryRejectedError (`refused: 'recipient'`) when SNS refuses the number for good, so
   * the worker drops it like a refused email address and the SMS breaker does not count it.
   */
  async send(sms: OutgoingSms, signal?: AbortSignal): Promise<string> {
    try {
      return await this.publish(sms, signal);
    } catch (error) {
      if (isSnsRecipientRefusal(error)) {
        throw new DeliveryRejectedError(this.name, error.name, { refused: 'recipient' });
      }
      throw error;
    }
  }

  private async publish(sms: OutgoingSms, signal?: AbortSignal): Promise<string> {
    const result = await this.client.send(
      new PublishCommand({
        PhoneNumber: sms.to,
        Message: sms.text,
        MessageAttributes: {
          'AWS.SNS.SMS.SMSType': { DataType: 'String', StringValue: 'Transactional' },
          ...(this.options.senderId
            ? { 'AWS.SNS.SMS.SenderID': { DataType: 'String', StringValue: this.options.senderId } }
            : {}),
        },
      }),
      signal ? { abortSignal: signal } : {},
    );
    return result.MessageId ?? '';
  }

  close(): void {
    this.client.destroy();
  }
}

/**
 * Writes each SMS as `<outboxDir>/<ISO time>-<message id>.sms.txt` (headers, a blank line, the text),
 * next to the SMTP sink's .eml files, so a local run shows every SMS it would have sent.
 */
export class OutboxSmsTransport implements SmsTransport {
  readonly name = 'outbox';

  constructor(private readonly outboxDir: string) {}

  async send(sms: OutgoingSms): Promise<string> {
    await mkdir(this.outboxDir, { recursive: true });
    const sentAt = new Date().toISOString();
    const file = join(this.outboxDir, `${sentAt.replace(/[:.]/g, '-')}-${sms.messageId}.sms.txt`);
    const content = `To: ${sms.to}\nDate: ${sentAt}\nX-Bulwark-Message-Id: ${sms.messageId}\n\n${sms.text}\n`;
    // `wx`: never overwrite; the id and the millisecond make the name unique.
    await writeFile(file, content, { flag: 'wx' });
    return file;
  }

  close(): void {}
}
