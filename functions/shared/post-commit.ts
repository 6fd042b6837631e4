// The deadline of what a handler does after its change is committed (emails, SMS codes, webhooks): the invocation's time left less what answering takes.
import type { Context } from 'aws-lambda';
import { DeadlineExceededError } from '../../middleware/errors.js';

/**
 * The time given to undoing what follow-up work did before it failed (a withdrawn SMS code and its
 * refunded budget unit: one DynamoDB write each, made side by side), so that the undo still runs once the
 * work's deadline has passed.
 */
export const undoMarginMs = 300;

/**
 * How long before the invocation's end a route's pipeline stops waiting for its handler
 * (`functions/shared/route-dispatch.ts`): the time its own error handler needs to answer a 504 with what
 * its middlewares leave pending (rate-limit headers, a register route's refunded unit: one DynamoDB write,
 * as an undo is given) before the dispatcher's own timeout, Middy's default 5 ms, answers without them.
 */
export const routeTimeoutEarlyMs = 300;

/**
 * Kept back from the invocation's remaining time once the change is committed: the route pipeline's own
 * timeout, the undo, and 200 ms for answering (the report, the audit line, the metrics), so the handler
 * answers before its pipeline's timeout turns the committed change into a 504, which the client would retry.
 */
export const answerMarginMs = routeTimeoutEarlyMs + undoMarginMs + 200;

/** The `dependency` of the after-commit deadlines' {@link DeadlineExceededError}s. */
const afterCommitWork = 'work after the commit';

/**
 * Runs `work`, what a handler does after its change is committed, under a signal that aborts
 * {@link answerMarginMs} before the invocation times out (at once when less is left), its reason a
 * {@link DeadlineExceededError}; the signal is undefined without a Lambda deadline (a direct call), where
 * the clients' own bounds apply. The work must then stop: the change is stored, so the handler owes its
 * success status, never a 5xx. The deadline's timer is cleared once the work settles, so it never aborts
 * the signal after the answer, inside a later invocation.
 *
 * @example
 * const booking = await bookings.create(input.body);
 * await afterCommitDeadline(context, (deadline) => webhooks.publish(event, correlationId, deadline));
 * return json(201, booking);
 */
export async function afterCommitDeadline<T>(
  context: Partial<Pick<Context, 'getRemainingTimeInMillis'>>,
  work: (deadline: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  if (typeof context.getRemainingTimeInMillis !== 'function') return work(undefined);
  const budgetMs = context.getRemainingTimeInMillis() - answerMarginMs;
  const controller = new AbortController();
  // Worded for the whole follow-up: the signal is shared by calls to DynamoDB, SQS, Secrets Manager and
  // the rate limiter, and its reason cannot tell which of them was running when it aborted.
  const expire = () =>
    controller.abort(
      new DeadlineExceededError(afterCommitWork, Math.max(0, budgetMs), {
        message:
          budgetMs > 0
            ? `The work after the commit did not finish within the ${budgetMs} ms the invocation had left`
            : 'The work after the commit was not started: the invocation had no time left',
      }),
    );
  if (budgetMs <= 0) {
    expire();
    return work(controller.signal);
  }
  // Unref'd: the work's own I/O holds the process open, never the deadline.
  const timer = setTimeout(expire, budgetMs).unref();
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The deadline of undoing what follow-up work under `signal` did before it failed: {@link undoMarginMs}
 * after `signal` aborts, or from now when it already has. The work's own signal cannot serve: once it has
 * aborted, every call given it is refused at once, and nothing would be undone. Undefined without
 * `signal` (a direct call), where the clients' own bounds apply.
 */
export function undoDeadline(signal: AbortSignal | undefined): AbortSignal | undefined {
  if (!signal) return undefined;
  const controller = new AbortController();
  const startUndoBudget = () =>
    setTimeout(
      () =>
        controller.abort(
          new DeadlineExceededError(afterCommitWork, undoMarginMs, {
            message: `Undoing the work after the commit did not finish within its ${undoMarginMs} ms`,
          }),
        ),
      undoMarginMs,
    ).unref();
  if (signal.aborted) startUndoBudget();
  else signal.addEventListener('abort', startUndoBudget, { once: true });
  return controller.signal;
}

/**
 * `work()` for work that takes no signal of its own (a rate limiter, a secret read), given up when `signal`
 * aborts: the promise then rejects with the signal's reason and `work` settles unobserved. Not started when
 * the signal has already aborted.
 */
export function untilAborted<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  if (!signal) return work();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const giveUp = () => reject(signal.reason);
    signal.addEventListener('abort', giveUp, { once: true });
    work()
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', giveUp));
  });
}

/**
 * What to report for follow-up work that failed: the deadline once it has passed (the error is then only
 * the aborted request it left behind), else the error itself.
 */
export function afterCommitFailure(error: unknown, signal: AbortSignal | undefined): unknown {
  return signal?.aborted ? signal.reason : error;
}
