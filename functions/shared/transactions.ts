// Reads which items of a cancelled DynamoDB transaction failed their condition.
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';

/**
 * The indexes of TransactItems that failed with ConditionalCheckFailed, or undefined when the error
 * is not a transaction cancellation (and so must be rethrown).
 */
export function failedConditionIndexes(error: unknown): number[] | undefined {
  if (!(error instanceof TransactionCanceledException)) return undefined;
  return (error.CancellationReasons ?? []).flatMap((reason, index) =>
    reason.Code === 'ConditionalCheckFailed' ? [index] : [],
  );
}
