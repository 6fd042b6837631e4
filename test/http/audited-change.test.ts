// An audited change whose write gets no answer: which failures leave its outcome unknown, and the route deadline that gives the handler the time to audit it.
import middy from '@middy/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  auditingUnknownOutcome,
  unknownOutcomeMarginMs,
  unknownOutcomeReason,
} from '../../functions/shared/audited-change.js';
import { routeTimeoutEarlyMs } from '../../functions/shared/post-commit.js';
import { DeadlineExceededError, DependencyTimeoutError, NotFoundError } from '../../middleware/errors.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';

afterEach(() => {
  vi.useRealTimers();
});

/** An error as the AWS SDK throws it once every attempt at a call has failed so. */
function sdkError(name: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, $metadata: { attempts: 3 }, ...fields });
}

const neverSettles = () => new Promise<never>(() => {});

/** A transaction DynamoDB refused: its condition failed, so it wrote nothing. */
const refusedTransaction = () =>
  sdkError('TransactionCanceledException', { CancellationReasons: [{ Code: 'ConditionalCheckFailed' }] });

describe('unknownOutcomeReason', () => {
  it.each([
    ['every attempt timed out', sdkError('TimeoutError'), 'store_timeout'],
    [
      'the connection dropped',
      Object.assign(new Error('reset'), { code: 'ECONNRESET' }),
      'store_unreachable',
    ],
    [
      'throttled after attempts whose answers may have been lost',
      sdkError('ThrottlingException'),
      'store_throttled',
    ],
    ['a 5xx', sdkError('InternalServerError', { $fault: 'server' }), 'store_unavailable'],
    ["the route's deadline", new DeadlineExceededError('the audited write', 100), 'deadline'],
    ['a guarded call that timed out', new DependencyTimeoutError('KMS', 2000), 'timeout'],
  ])('names %s', (_case, error, reason) => {
    expect(unknownOutcomeReason(error)).toBe(reason);
  });

  it.each([
    ['a failed condition', refusedTransaction()],
    ['a 404 of our own', new NotFoundError('User u1 not found')],
    ['a programming error', new TypeError('x is undefined')],
  ])('is undefined for %s: nothing was written', (_case, error) => {
    expect(unknownOutcomeReason(error)).toBeUndefined();
  });
});

describe('auditingUnknownOutcome', () => {
  const context = { getRemainingTimeInMillis: () => 10_000 };

  it('audits a write whose outcome is unknown with its reason, then rethrows its error', async () => {
    const reasons: string[] = [];
    const timedOut = sdkError('TimeoutError');
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        (sendWrite) => sendWrite(() => Promise.reject(timedOut)),
      ),
    ).rejects.toBe(timedOut);
    expect(reasons).toEqual(['store_timeout']);
  });

  it('audits nothing when the change fails before its write was sent: a read wrote nothing', async () => {
    const reasons: string[] = [];
    const write = vi.fn(async () => 'written');
    const readTimedOut = sdkError('TimeoutError');
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        async (sendWrite) => {
          await Promise.reject(readTimedOut);
          return sendWrite(write);
        },
      ),
    ).rejects.toBe(readTimedOut);
    expect(write).not.toHaveBeenCalled();
    expect(reasons).toEqual([]);
  });

  it('audits nothing when a read after a refused write fails: the refusal answered it', async () => {
    const reasons: string[] = [];
    const readTimedOut = sdkError('TimeoutError');
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        async (sendWrite) => {
          await sendWrite(() => Promise.reject(refusedTransaction())).catch(() => undefined);
          throw readTimedOut;
        },
      ),
    ).rejects.toBe(readTimedOut);
    expect(reasons).toEqual([]);
  });

  it('audits a write sent again after a refusal whose answer is then lost', async () => {
    const reasons: string[] = [];
    const timedOut = sdkError('TimeoutError');
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        async (sendWrite) => {
          await sendWrite(() => Promise.reject(refusedTransaction())).catch(() => undefined);
          return sendWrite(() => Promise.reject(timedOut));
        },
      ),
    ).rejects.toBe(timedOut);
    expect(reasons).toEqual(['store_timeout']);
  });

  it('audits nothing for a write that was refused or that succeeded', async () => {
    const reasons: string[] = [];
    const refused = new NotFoundError('User u1 not found');
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        (sendWrite) => sendWrite(() => Promise.reject(refused)),
      ),
    ).rejects.toBe(refused);
    await expect(
      auditingUnknownOutcome(
        context,
        (reason) => reasons.push(reason),
        (sendWrite) => sendWrite(async () => 'written'),
      ),
    ).resolves.toBe('written');
    await expect(
      auditingUnknownOutcome(
        {},
        (reason) => reasons.push(reason),
        (sendWrite) => sendWrite(async () => 'written directly'),
      ),
    ).resolves.toBe('written directly');
    expect(reasons).toEqual([]);
  });

  it('gives up a write still in flight at its deadline with a DeadlineExceededError, audited as deadline', async () => {
    vi.useFakeTimers();
    const reasons: string[] = [];
    const remainingMs = 2000;
    const settled = auditingUnknownOutcome(
      { getRemainingTimeInMillis: () => remainingMs },
      (reason) => reasons.push(reason),
      (sendWrite) => sendWrite(neverSettles),
    );
    const outcome = expect(settled).rejects.toBeInstanceOf(DeadlineExceededError);
    await vi.advanceTimersByTimeAsync(remainingMs - routeTimeoutEarlyMs - unknownOutcomeMarginMs - 1);
    expect(reasons).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await outcome;
    expect(reasons).toEqual(['deadline']);
  });

  it('audits nothing when its deadline gives up a read before the write', async () => {
    vi.useFakeTimers();
    const reasons: string[] = [];
    const write = vi.fn(async () => 'written');
    const remainingMs = 2000;
    const settled = auditingUnknownOutcome(
      { getRemainingTimeInMillis: () => remainingMs },
      (reason) => reasons.push(reason),
      async (sendWrite) => {
        await neverSettles();
        return sendWrite(write);
      },
    );
    const outcome = expect(settled).rejects.toBeInstanceOf(DeadlineExceededError);
    await vi.advanceTimersByTimeAsync(remainingMs - routeTimeoutEarlyMs - unknownOutcomeMarginMs);
    await outcome;
    expect(write).not.toHaveBeenCalled();
    expect(reasons).toEqual([]);
  });

  it('does not start a write when the invocation has no time left for it, and audits nothing', async () => {
    const write = vi.fn(async () => 'written');
    const reasons: string[] = [];
    await expect(
      auditingUnknownOutcome(
        { getRemainingTimeInMillis: () => routeTimeoutEarlyMs + unknownOutcomeMarginMs },
        (reason) => reasons.push(reason),
        (sendWrite) => sendWrite(write),
      ),
    ).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(write).not.toHaveBeenCalled();
    expect(reasons).toEqual([]);
  });

  it("audits a write that hangs before the route pipeline's own timeout answers the 504 without the handler", async () => {
    // Real timers: Middy's own timeout waits on node:timers/promises, which fake timers leave alone.
    const silent = { error() {}, warn() {}, info() {}, debug() {} };
    const reasons: string[] = [];
    const route = middy({ timeoutEarlyInMillis: routeTimeoutEarlyMs })
      .use(httpErrorHandler({ logger: silent }))
      .handler(async (_event: unknown, handlerContext: { getRemainingTimeInMillis(): number }) => {
        await auditingUnknownOutcome(
          handlerContext,
          (reason) => reasons.push(reason),
          (sendWrite) => sendWrite(neverSettles),
        );
        return { statusCode: 204 };
      });
    const end = Date.now() + 800;
    const answer = await route(
      {
        headers: {},
        rawPath: '/users/u1',
        requestContext: { http: { method: 'DELETE', path: '/users/u1' } },
      },
      { getRemainingTimeInMillis: () => end - Date.now() } as never,
    );
    expect(answer).toMatchObject({ statusCode: 504 });
    expect(reasons).toEqual(['deadline']);
  });
});
