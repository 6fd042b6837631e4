// The one classifier of dependency failures, over errors shaped as the AWS SDK (v3) and Node throw them.
import {
  ConditionalCheckFailedException,
  DynamoDBServiceException,
  InternalServerError,
  LimitExceededException,
  ProvisionedThroughputExceededException,
  ReplicatedWriteConflictException,
  RequestLimitExceeded,
  ResourceNotFoundException,
  ThrottlingException,
  TransactionCanceledException,
  TransactionInProgressException,
} from '@aws-sdk/client-dynamodb';
import { KMSInternalException } from '@aws-sdk/client-kms';
import { TooManyRequestsException } from '@aws-sdk/client-sesv2';
import { KMSThrottlingException } from '@aws-sdk/client-sns';
import { KmsThrottled } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import {
  dependencyFailure,
  retryBackoffMs,
  underlyingDependencyFailure,
} from '../../middleware/dependency-failure.js';
import { DeadlineExceededError, ServiceUnavailableError } from '../../middleware/errors.js';
import { renderProblem } from '../../middleware/http/problem.js';

/** What Node's `net` throws for a failed connection, as the SDK passes it on (with its attempts). */
function systemError(code: string, name = 'Error'): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:1`), {
    name,
    code,
    $metadata: { attempts: 1, totalRetryDelay: 0 },
  });
}

/** What the SDK throws when it cannot parse an answer: the parser's error, with the raw answer hidden on it. */
function unparsedAnswer(httpStatusCode: number): Error {
  const error = Object.assign(new SyntaxError('Unexpected token'), { $metadata: { httpStatusCode } });
  Object.defineProperty(error, '$response', { value: { statusCode: httpStatusCode }, enumerable: false });
  return error;
}

const metadata = (httpStatusCode: number) => ({ $metadata: { httpStatusCode }, message: 'refused' });

/** What an `AbortSignal.timeout()` aborts with once its time has passed (Node's message included). */
const timeBoundReason = () => new DOMException('The operation was aborted due to timeout', 'TimeoutError');

describe('dependencyFailure', () => {
  it.each([
    ['ThrottlingException', new ThrottlingException(metadata(400))],
    ['ProvisionedThroughputExceededException', new ProvisionedThroughputExceededException(metadata(400))],
    ['RequestLimitExceeded', new RequestLimitExceeded(metadata(400))],
    ['TooManyRequestsException (SES)', new TooManyRequestsException(metadata(429))],
    ['KmsThrottled (SQS, an encrypted queue)', new KmsThrottled(metadata(400))],
    ['KMSThrottlingException (SNS, an encrypted topic)', new KMSThrottlingException(metadata(400))],
    ['an unmodelled 429', new DynamoDBServiceException({ name: 'Busy', $fault: 'client', ...metadata(429) })],
    [
      'an error the service marks as throttling',
      // The SDK sets `$retryable` from the error's model, not from constructor options.
      Object.assign(
        new DynamoDBServiceException({ name: 'SomethingNew', $fault: 'client', ...metadata(400) }),
        {
          $retryable: { throttling: true },
        },
      ),
    ],
  ])('calls %s throttled', (_label, error) => {
    expect(dependencyFailure(error)?.kind).toBe('throttled');
  });

  it('calls a TransactionInProgressException throttled, as the SDK does when it retries one', () => {
    expect(dependencyFailure(new TransactionInProgressException(metadata(400)))).toEqual({
      kind: 'throttled',
      dependency: undefined,
      errorName: 'TransactionInProgressException',
      errorCode: undefined,
    });
  });

  /** DynamoDB's cancellation of a transaction whose items it answered with `codes`, in order. */
  const cancelled = (...codes: string[]) =>
    new TransactionCanceledException({
      ...metadata(400),
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it.each([
    ['an item throttled', ['None', 'ThrottlingError']],
    ["an item over its table's provisioned throughput", ['ProvisionedThroughputExceeded', 'None']],
    ['an item throttled beside one in conflict', ['None', 'ThrottlingError', 'TransactionConflict']],
  ])('calls a transaction cancelled because %s throttled', (_label, codes) => {
    expect(dependencyFailure(cancelled(...codes))).toMatchObject({
      kind: 'throttled',
      errorName: 'TransactionCanceledException',
    });
  });

  it.each([
    [
      'a failed condition beside a throttled item: the caller reads it',
      ['ConditionalCheckFailed', 'ThrottlingError'],
    ],
    ['a validation error beside a throttled item', ['ThrottlingError', 'ValidationError']],
    ['an item collection over its size limit', ['ItemCollectionSizeLimitExceeded', 'None']],
    ['conflicts alone (the client retries those, then answers 409)', ['TransactionConflict', 'None']],
    ['no reason at all', []],
  ])('does not call a transaction cancelled with %s a dependency failure', (_label, codes) => {
    expect(dependencyFailure(cancelled(...codes))).toBeUndefined();
  });

  it.each([
    ['InternalServerError ($fault server)', new InternalServerError(metadata(500))],
    ['KMSInternalException', new KMSInternalException(metadata(500))],
    [
      'an unmodelled 503',
      new DynamoDBServiceException({ name: 'Unknown', $fault: 'client', ...metadata(503) }),
    ],
    ['a retryable conflict ($retryable)', new ReplicatedWriteConflictException(metadata(400))],
    ['a 502 page the SDK could not parse', unparsedAnswer(502)],
  ])('calls %s unavailable', (_label, error) => {
    expect(dependencyFailure(error)?.kind).toBe('unavailable');
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])(
    'calls %s unreachable',
    (code) => {
      expect(dependencyFailure(systemError(code))).toEqual({
        kind: 'unreachable',
        dependency: undefined,
        errorName: 'Error',
        errorCode: code,
      });
    },
  );

  it('calls a reset unreachable although the SDK renames it TimeoutError', () => {
    // @smithy/node-http-handler renames ECONNRESET, EPIPE and ETIMEDOUT errors `TimeoutError`.
    expect(dependencyFailure(systemError('ECONNRESET', 'TimeoutError'))?.kind).toBe('unreachable');
    expect(dependencyFailure(systemError('EPIPE', 'TimeoutError'))?.kind).toBe('unreachable');
  });

  it.each([
    [
      'the request timeout',
      Object.assign(new Error('exceeded requestTimeout'), { name: 'TimeoutError', code: 'ETIMEDOUT' }),
    ],
    [
      'the connection timeout (no code; the SDK adds $metadata)',
      Object.assign(new Error('no connection within 1000 ms'), {
        name: 'TimeoutError',
        $metadata: { attempts: 3, totalRetryDelay: 300 },
      }),
    ],
    ['a socket ETIMEDOUT', systemError('ETIMEDOUT')],
    [
      'a service RequestTimeout',
      new DynamoDBServiceException({ name: 'RequestTimeout', $fault: 'client', ...metadata(400) }),
    ],
    [
      'an AbortSignal.timeout() that ran out (its reason, as fetch and the circuit store throw it)',
      timeBoundReason(),
    ],
    [
      "the SDK's AbortError of a call whose AbortSignal.timeout() ran out",
      Object.assign(new Error('Request aborted', { cause: timeBoundReason() }), { name: 'AbortError' }),
    ],
  ])('calls %s a timeout', (_label, error) => {
    expect(dependencyFailure(error)?.kind).toBe('timeout');
  });

  it('calls a success the SDK could not parse a bad reply, and a 4xx it could not parse ours', () => {
    expect(dependencyFailure(unparsedAnswer(200))?.kind).toBe('bad_reply');
    expect(dependencyFailure(unparsedAnswer(403))).toBeUndefined();
    expect(dependencyFailure(unparsedAnswer(404))).toBeUndefined();
  });

  it.each([
    [
      'ValidationException',
      new DynamoDBServiceException({ name: 'ValidationException', $fault: 'client', ...metadata(400) }),
    ],
    ['ConditionalCheckFailedException', new ConditionalCheckFailedException(metadata(400))],
    ['ResourceNotFoundException', new ResourceNotFoundException(metadata(400))],
    [
      'AccessDeniedException',
      new DynamoDBServiceException({ name: 'AccessDeniedException', $fault: 'client', ...metadata(400) }),
    ],
    ['LimitExceededException (a quota no wait lifts)', new LimitExceededException(metadata(400))],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['an AbortError (our own abort)', Object.assign(new Error('Request aborted'), { name: 'AbortError' })],
    [
      'an AbortError for a deadline of ours',
      Object.assign(
        new Error('Request aborted', { cause: new DeadlineExceededError('work after the commit', 500) }),
        {
          name: 'AbortError',
        },
      ),
    ],
    ['an abort with no time bound (its reason an AbortError)', new DOMException('aborted', 'AbortError')],
    [
      "Middy's early timeout (a TimeoutError of the function's own, not of an SDK call)",
      Object.assign(new Error('[AbortError]: The operation was aborted.'), { name: 'TimeoutError' }),
    ],
    ['a string', 'boom'],
    ['null', null],
    ['undefined', undefined],
  ])('does not call %s a dependency failure', (_label, error) => {
    expect(dependencyFailure(error)).toBeUndefined();
  });

  it('reads only the error itself: one our code wrapped is that code to map', () => {
    const wrapped = new Error('lookup failed', { cause: systemError('ECONNREFUSED') });
    expect(dependencyFailure(wrapped)).toBeUndefined();
    expect(renderProblem(wrapped).response.statusCode).toBe(500);
  });
});

describe('underlyingDependencyFailure', () => {
  it('finds the failure behind a toolkit 503, for the log line', () => {
    const error = new ServiceUnavailableError('Replay protection is unavailable', 5, {
      cause: new ProvisionedThroughputExceededException(metadata(400)),
    });
    expect(underlyingDependencyFailure(error)).toMatchObject({
      kind: 'throttled',
      errorName: 'ProvisionedThroughputExceededException',
    });
  });

  it('ends on a cause cycle and on causes that are not failures', () => {
    const first = new Error('first');
    const second = new Error('second', { cause: first });
    Object.assign(first, { cause: second });
    expect(underlyingDependencyFailure(first)).toBeUndefined();
    expect(underlyingDependencyFailure(new Error('x', { cause: 'text' }))).toBeUndefined();
  });
});

describe('renderProblem of a dependency failure', () => {
  it('is a 503 with Retry-After that tells the client nothing of the error', () => {
    const rendered = renderProblem(
      new ThrottlingException({ ...metadata(400), message: 'Rate of table t exceeded' }),
      {
        instance: '/things',
      },
    );
    expect(rendered.response.statusCode).toBe(503);
    expect(rendered.response.headers['Retry-After']).toBe('5');
    expect(rendered.problem).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      detail: 'Service temporarily unavailable',
    });
    expect(rendered.response.body).not.toContain('Rate of table');
    expect(rendered).toMatchObject({ isServerFault: false, isDegraded: true });
  });

  it('is a 504 DEPENDENCY_TIMEOUT for a timeout', () => {
    const rendered = renderProblem(
      Object.assign(new Error('timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' }),
    );
    expect(rendered.response.statusCode).toBe(504);
    expect(rendered.problem.code).toBe('DEPENDENCY_TIMEOUT');
    expect(rendered.response.headers['Retry-After']).toBeUndefined();
    expect(rendered).toMatchObject({ isServerFault: false, isDegraded: true });
  });
});

describe('retryBackoffMs', () => {
  it('waits 1 s after a first failure, doubles with each further one, and never more than the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((failures) => retryBackoffMs(failures, 30_000))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
    expect(retryBackoffMs(1, 500)).toBe(500);
  });
});
