// An audited change whose write gets no answer may have been made all the same: its audit line is written with the outcome `unknown` before the error goes on.
import type { Context } from 'aws-lambda';
import { dependencyFailure, storeFailureReason } from '../../middleware/dependency-failure.js';
import { DeadlineExceededError, DependencyTimeoutError } from '../../middleware/errors.js';
import { routeTimeoutEarlyMs, untilAborted } from './post-commit.js';

/**
 * Kept back from the invocation's time left, besides the route pipeline's own timeout, so that a write
 * still in flight is given up before that timeout answers the 504 without a word to the handler: the
 * handler then writes the line of the unknown outcome (one synchronous log line) and throws.
 */
export const unknownOutcomeMarginMs = 100;

/** The `dependency` of the write deadline's {@link DeadlineExceededError}s. */
const auditedWrite = 'the audited write';

/**
 * Why the write that failed with `error` may have been made all the same, or undefined when it was not:
 * `deadline` when the route's deadline gave it up in flight; `store_` and the kind of the store's passing
 * failure (`store_timeout`, `store_unreachable`, `store_throttled`…: the SDK retried it, and an attempt
 * whose answer was lost may have applied it, which the last attempt's error does not tell); `timeout`
 * for another call that ran past its time. A refusal (a failed condition, a 404, a 410, a validation
 * error) wrote nothing.
 */
export function unknownOutcomeReason(error: unknown): string | undefined {
  if (error instanceof DeadlineExceededError) return 'deadline';
  if (error instanceof DependencyTimeoutError) return 'timeout';
  return dependencyFailure(error) === undefined ? undefined : storeFailureReason(error);
}

/**
 * How an audited change sends its write, given to it by {@link auditingUnknownOutcome}: the change's
 * outcome is unknown only while a write sent through it has had no answer. The change's reads (before
 * the write, or after a refusal) are not sent through it: their failure wrote nothing.
 */
export type SendAuditedWrite = <T>(write: () => Promise<T>) => Promise<T>;

/** Sends a change's write as it is: for a change run without {@link auditingUnknownOutcome}. */
export const sendDirectly: SendAuditedWrite = (write) => write();

/**
 * Runs `change`, which an audit line records on success, and when it fails while the write it sent
 * through its {@link SendAuditedWrite} has no answer (see {@link unknownOutcomeReason}) calls
 * `auditUnknown` with the reason, so that the trail holds the attempt, before rethrowing: a retry finds
 * such a change made (a 404 for a deleted user, the same 200 for a verified email) and writes no line of
 * its own, and a client that never retries writes none either. A failure before the write was sent (a
 * read), or after it was answered (a refusal, then a read), calls nothing. `change` is given up
 * {@link routeTimeoutEarlyMs} + {@link unknownOutcomeMarginMs} before the invocation times out, with a
 * {@link DeadlineExceededError} (504), and not started when less is left; it runs to its own end
 * without a Lambda deadline (a direct call).
 *
 * @example
 * await auditingUnknownOutcome(context, (reason) => auditLogger.log({ ...line, outcome: 'unknown', reason }), (sendWrite) => users.delete(id, sendWrite));
 * auditLogger.log(line);
 */
export async function auditingUnknownOutcome<T>(
  context: Partial<Pick<Context, 'getRemainingTimeInMillis'>>,
  auditUnknown: (reason: string) => void,
  change: (sendWrite: SendAuditedWrite) => Promise<T>,
): Promise<T> {
  if (typeof context.getRemainingTimeInMillis !== 'function') return auditing(auditUnknown, change);
  const budgetMs = context.getRemainingTimeInMillis() - routeTimeoutEarlyMs - unknownOutcomeMarginMs;
  if (budgetMs <= 0) {
    throw new DeadlineExceededError(auditedWrite, 0, {
      message: 'The change was not started: the invocation had no time left',
    });
  }
  const controller = new AbortController();
  // Unref'd: the write's own I/O holds the process open, never the deadline.
  const timer = setTimeout(
    () =>
      controller.abort(
        new DeadlineExceededError(auditedWrite, budgetMs, {
          message: `The change did not finish within the ${budgetMs} ms the invocation had left`,
        }),
      ),
    budgetMs,
  ).unref();
  try {
    return await auditing(auditUnknown, (sendWrite) =>
      untilAborted(controller.signal, () => change(sendWrite)),
    );
  } finally {
    clearTimeout(timer);
  }
}

async function auditing<T>(
  auditUnknown: (reason: string) => void,
  change: (sendWrite: SendAuditedWrite) => Promise<T>,
): Promise<T> {
  let writeUnanswered = false;
  const sendWrite: SendAuditedWrite = async (write) => {
    writeUnanswered = true;
    try {
      const answer = await write();
      writeUnanswered = false;
      return answer;
    } catch (error) {
      // A refusal is an answer: the change's read after it (which can fail too) is not the write.
      if (unknownOutcomeReason(error) === undefined) writeUnanswered = false;
      throw error;
    }
  };
  try {
    return await change(sendWrite);
  } catch (error) {
    const reason = writeUnanswered ? unknownOutcomeReason(error) : undefined;
    if (reason !== undefined) auditUnknown(reason);
    throw error;
  }
}
