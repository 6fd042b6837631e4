// The deadline of work after a commit: when it passes, what it aborts, and work that takes no signal given up at it.
import middy from '@middy/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  afterCommitDeadline,
  afterCommitFailure,
  answerMarginMs,
  routeTimeoutEarlyMs,
  undoDeadline,
  undoMarginMs,
  untilAborted,
} from '../../functions/shared/post-commit.js';
import { DeadlineExceededError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';

afterEach(() => {
  vi.useRealTimers();
});

/** Runs work under the deadline that hands back its signal and waits until `finish` is called. */
function heldWork(remainingMs: number) {
  let finish: (outcome?: Error) => void = () => {};
  let signal: AbortSignal | undefined;
  const settled = afterCommitDeadline({ getRemainingTimeInMillis: () => remainingMs }, (deadline) => {
    signal = deadline;
    return new Promise<void>((resolve, reject) => {
      finish = (outcome) => (outcome ? reject(outcome) : resolve());
    });
  });
  return { settled, signal: () => signal, finish: (outcome?: Error) => finish(outcome) };
}

describe('afterCommitDeadline', () => {
  it("leaves a route's pipeline time to answer its committed change after the work hangs and its undo runs long", async () => {
    // Real timers: Middy's own timeout waits on node:timers/promises, which fake timers leave alone. The undo
    // ends 250 ms before the pipeline's timeout with the margin, 50 ms after it with the old 500 ms one.
    const silent = { error() {}, warn() {}, info() {}, debug() {} };
    const route = middy({ timeoutEarlyInMillis: routeTimeoutEarlyMs })
      .use(httpErrorHandler({ logger: silent }))
      .handler(async (_event: unknown, context: { getRemainingTimeInMillis(): number }) => {
        await afterCommitDeadline(context, (deadline) =>
          untilAborted(deadline, () => new Promise(() => {})).catch(
            () => new Promise((resolve) => setTimeout(resolve, undoMarginMs - 50)),
          ),
        );
        return { statusCode: 201, body: '{}' };
      });
    const end = Date.now() + 1200;
    const answer = await route(
      { headers: {}, rawPath: '/users', requestContext: { http: { method: 'POST', path: '/users' } } },
      { getRemainingTimeInMillis: () => end - Date.now() } as never,
    );
    expect(answer).toMatchObject({ statusCode: 201 });
  });

  it('aborts the margin before the invocation times out, with a DeadlineExceededError', async () => {
    vi.useFakeTimers();
    const work = heldWork(2000);
    vi.advanceTimersByTime(2000 - answerMarginMs - 1);
    expect(work.signal()?.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(work.signal()?.aborted).toBe(true);
    expect(work.signal()?.reason).toBeInstanceOf(DeadlineExceededError);
    expect(work.signal()?.reason).toHaveProperty(
      'message',
      `The work after the commit did not finish within the ${2000 - answerMarginMs} ms the invocation had left`,
    );
    work.finish();
    await work.settled;
  });

  it('has already passed when no more than the margin is left', async () => {
    for (const remainingMs of [answerMarginMs, 1, 0]) {
      const signal = await afterCommitDeadline(
        { getRemainingTimeInMillis: () => remainingMs },
        async (deadline) => deadline,
      );
      expect(signal?.aborted, String(remainingMs)).toBe(true);
      expect(signal?.reason).toHaveProperty(
        'message',
        'The work after the commit was not started: the invocation had no time left',
      );
    }
  });

  it('is none without a Lambda deadline (a direct call): the clients bound the work', async () => {
    expect(await afterCommitDeadline({}, async (deadline) => deadline)).toBeUndefined();
  });

  it("gives the work's answer, or its error", async () => {
    const context = { getRemainingTimeInMillis: () => 2000 };
    await expect(afterCommitDeadline(context, async () => 'queued')).resolves.toBe('queued');
    const failure = new Error('queue down');
    await expect(afterCommitDeadline(context, () => Promise.reject(failure))).rejects.toBe(failure);
  });

  it.each([
    ['answered', undefined],
    ['failed', new Error('queue down')],
  ])(
    'leaves no timer once the work has %s: its signal, and an undo deadline on it, never abort later',
    async (_, outcome) => {
      vi.useFakeTimers();
      const work = heldWork(2000);
      const undo = undoDeadline(work.signal());
      expect(vi.getTimerCount()).toBe(1);
      work.finish(outcome);
      await work.settled.catch(() => {});
      expect(vi.getTimerCount()).toBe(0);
      // Past the deadline and the undo's time: a later invocation would be running by then.
      vi.advanceTimersByTime(2000 + undoMarginMs);
      expect(work.signal()?.aborted).toBe(false);
      expect(undo?.aborted).toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    },
  );
});

describe('undoDeadline', () => {
  it('gives the undo its own time once the work has run out of its own', () => {
    vi.useFakeTimers();
    const work = new AbortController();
    const undo = undoDeadline(work.signal);
    // However long the work runs, the undo's time starts only when the work's deadline passes.
    vi.advanceTimersByTime(10 * undoMarginMs);
    expect(undo?.aborted).toBe(false);
    work.abort(new DeadlineExceededError('work after the commit', 0));
    vi.advanceTimersByTime(undoMarginMs - 1);
    expect(undo?.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(undo?.reason).toBeInstanceOf(DeadlineExceededError);
    expect(undo?.reason).toHaveProperty(
      'message',
      `Undoing the work after the commit did not finish within its ${undoMarginMs} ms`,
    );
  });

  it('starts at once after a deadline that has already passed, and stays within the answer margin', () => {
    vi.useFakeTimers();
    const passed = new AbortController();
    passed.abort(new DeadlineExceededError('work after the commit', 0));
    const undo = undoDeadline(passed.signal);
    expect(undo?.aborted).toBe(false);
    vi.advanceTimersByTime(undoMarginMs);
    expect(undo?.aborted).toBe(true);
    expect(undoMarginMs).toBeLessThan(answerMarginMs);
  });

  it('is none without a deadline for the work (a direct call)', () => {
    expect(undoDeadline(undefined)).toBeUndefined();
  });
});

describe('untilAborted', () => {
  it("gives the work's answer, or its error, while the signal holds", async () => {
    const signal = new AbortController().signal;
    await expect(untilAborted(signal, async () => 'done')).resolves.toBe('done');
    await expect(untilAborted(signal, () => Promise.reject(new Error('store down')))).rejects.toThrow(
      'store down',
    );
    await expect(untilAborted(undefined, async () => 'unbounded')).resolves.toBe('unbounded');
  });

  it("gives up on work still running when the signal aborts, with the signal's reason", async () => {
    const controller = new AbortController();
    const given = untilAborted(controller.signal, () => new Promise(() => {}));
    const reason = new DeadlineExceededError('work after the commit', 10);
    controller.abort(reason);
    await expect(given).rejects.toBe(reason);
  });

  it('never starts work once the signal has aborted', async () => {
    const controller = new AbortController();
    controller.abort(new DeadlineExceededError('work after the commit', 0));
    const work = vi.fn(async () => 'started');
    await expect(untilAborted(controller.signal, work)).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(work).not.toHaveBeenCalled();
  });
});

describe('afterCommitFailure', () => {
  it('names the deadline once it has passed, else the error itself', () => {
    const error = new Error('Request aborted');
    const controller = new AbortController();
    expect(afterCommitFailure(error, undefined)).toBe(error);
    expect(afterCommitFailure(error, controller.signal)).toBe(error);
    const reason = new DeadlineExceededError('work after the commit', 0);
    controller.abort(reason);
    expect(afterCommitFailure(error, controller.signal)).toBe(reason);
  });
});
