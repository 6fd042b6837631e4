// Each error class is typed with the one code it is built with, so narrowing by class narrows the code.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { KeyLookupError } from '../middleware/auth/jwks-key-store.js';
import {
  BulwarkError,
  type BulwarkErrorCode,
  ConfigError,
  DeadlineExceededError,
  DecryptionError,
  DependencyError,
  HttpError,
  InvalidOptionsError,
  TooManyRequestsError,
  UnsupportedContentEncodingError,
} from '../middleware/errors.js';

describe('error codes', () => {
  it('types the code of an error narrowed by its class as that class builds it', () => {
    const caught: unknown[] = [
      new InvalidOptionsError('rateLimit', ['limit must be > 0']),
      new ConfigError([{ key: 'PORT', message: 'Required' }]),
      new TooManyRequestsError(3),
    ];
    for (const error of caught) {
      if (error instanceof InvalidOptionsError) {
        expectTypeOf(error.code).toEqualTypeOf<'INVALID_OPTIONS'>();
        expect(error.code).toBe('INVALID_OPTIONS');
      } else if (error instanceof ConfigError) {
        expectTypeOf(error.code).toEqualTypeOf<'CONFIG_INVALID'>();
        expect([error.code, error.problems]).toEqual([
          'CONFIG_INVALID',
          [{ key: 'PORT', message: 'Required' }],
        ]);
      } else if (error instanceof TooManyRequestsError) {
        expectTypeOf(error.code).toEqualTypeOf<'TOO_MANY_REQUESTS'>();
        expect(error.code).toBe('TOO_MANY_REQUESTS');
      } else {
        throw new Error(`not narrowed: ${String(error)}`);
      }
    }
  });

  it('types a subclass of a subclass with the code it inherits, and a two-code class with both', () => {
    expectTypeOf(new UnsupportedContentEncodingError().code).toEqualTypeOf<'UNSUPPORTED_MEDIA_TYPE'>();
    expectTypeOf(new DeadlineExceededError('users', 0).code).toEqualTypeOf<'DEPENDENCY_TIMEOUT'>();
    expectTypeOf(new DecryptionError('truncated', 'x').code).toEqualTypeOf<'DECRYPTION_FAILED'>();
    expectTypeOf(new KeyLookupError('unknown_kid').code).toEqualTypeOf<'KEY_LOOKUP_FAILED'>();
    const failed = new DependencyError('users', 'down');
    const unavailable = new DependencyError('users', 'down', { retryAfterSec: 5 });
    expectTypeOf(failed.code).toEqualTypeOf<'DEPENDENCY_FAILED' | 'DEPENDENCY_UNAVAILABLE'>();
    expect([failed.code, unavailable.code]).toEqual(['DEPENDENCY_FAILED', 'DEPENDENCY_UNAVAILABLE']);
  });

  it('keeps any code on BulwarkError and HttpError, which may be built with a subclass’s code', () => {
    const built = new HttpError(422, 'VALIDATION_FAILED', 'built directly');
    expectTypeOf(built.code).toEqualTypeOf<BulwarkErrorCode>();
    expectTypeOf(new BulwarkError('INTERNAL', 'x').code).toEqualTypeOf<BulwarkErrorCode>();
    expect(built).not.toHaveProperty('fields');
  });
});
