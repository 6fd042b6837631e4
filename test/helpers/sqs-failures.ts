// The two ways a SendMessageBatch fails a producer: SQS unreachable, or SQS refusing one entry of the batch.
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { AwsClientStub } from 'aws-sdk-client-mock';

/**
 * One setup per failure mode, each resetting the mock first; `refusedEntryId` is the batch entry SQS
 * refuses (entries are numbered from 0 in send order).
 *
 * @example
 * for (const fail of sendMessageBatchFailures(sqsMock, '0')) { fail(); await expect(...).rejects... }
 */
export function sendMessageBatchFailures(
  sqs: AwsClientStub<SQSClient>,
  refusedEntryId: string,
): Array<() => void> {
  return [
    () => {
      sqs.reset();
      sqs.on(SendMessageBatchCommand).rejects(new Error('SQS down'));
    },
    () => {
      sqs.reset();
      sqs
        .on(SendMessageBatchCommand)
        .resolves({ Successful: [], Failed: [{ Id: refusedEntryId, Code: 'x', SenderFault: false }] });
    },
  ];
}
