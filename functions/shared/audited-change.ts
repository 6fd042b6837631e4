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
 * Runs `write`, a change an audit line records on success, and when its outcome is unknown (see
 * {@link unknownOutcomeReason}) calls `auditUnknown` with the reason, so that the trail holds the
 * attempt, before rethrowing: a retry finds such a change made (a 404 for a deleted user, the same 200
 * for a verified email) and writes no line of its own, and a client that never retries writes none
 * either. `write` is given up {@link routeTimeoutEarlyMs} + {@link unknownOutcomeMarginMs} before the
 * invocation times out, with a {@link DeadlineExceededError} (504), and not started when less is left;
 * it runs to its own end without a Lambda deadline (a direct call).
 *
 * @example
 * await auditingUnknownOutcome(context, (reason) => auditLogger.log({ ...line, outcome: 'unknown', reason }), () => users.delete(id));
 * auditLogger.log(line);
 */
export async function auditingUnknownOutcome<T>(
  context: Partial<Pick<Context, 'getRemainingTimeInMillis'>>,
  auditUnknown: (reason: string) => void,
  write: () => Promise<T>,
): Promise<T> {
  if (typeof context.getRemainingTimeInMillis !== 'function') return auditing(auditUnknown, write());
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
    return await auditing(auditUnknown, untilAborted(controller.signal, write));
  } finally {
    clearTimeout(timer);
  }
}

async function auditing<T>(auditUnknown: (reason: string) => void, written: Promise<T>): Promise<T> {
  try {
    return await written;
  } catch (error) {
    const reason = unknownOutcomeReason(error);
    if (reason !== undefined) auditUnknown(reason);
    throw error;
  }
}
