// Rate-limit response headers: RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11) plus legacy X-RateLimit-*.
import type { RateLimitPolicy } from './policy.js';
import type { RateLimitResult } from './rate-limiter.js';

/** One limiter's answer for one request, with the policy it applied (after any trust multiplier). */
export interface PolicyOutcome {
  readonly policy: RateLimitPolicy;
  readonly result: RateLimitResult;
}

/**
 * The outcome that constrains the caller most: the fewest remaining units, then the latest reset.
 * Legacy `X-RateLimit-*` headers can describe only one policy, so they describe this one.
 */
export function strictestOutcome(outcomes: readonly PolicyOutcome[]): PolicyOutcome | undefined {
  let strictest: PolicyOutcome | undefined;
  for (const outcome of outcomes) {
    const { remaining, resetAt } = outcome.result;
    if (
      !strictest ||
      remaining < strictest.result.remaining ||
      (remaining === strictest.result.remaining && resetAt > strictest.result.resetAt)
    ) {
      strictest = outcome;
    }
  }
  return strictest;
}

/**
 * The headers for every policy a request went through. Policy names are restricted to a token-like
 * alphabet (see `policyProblems`), so they are valid sf-strings without escaping.
 *
 * @example
 * rateLimitHeaders([{ policy: { name: 'register', limit: 3, windowSec: 300 }, result }]);
 * // { 'RateLimit-Policy': '"register";q=3;w=300', RateLimit: '"register";r=2;t=100',
 * //   'X-RateLimit-Limit': '3', 'X-RateLimit-Remaining': '2', 'X-RateLimit-Reset': '1767225700' }
 */
export function rateLimitHeaders(outcomes: readonly PolicyOutcome[]): Record<string, string> {
  const strictest = strictestOutcome(outcomes);
  if (!strictest) return {};
  return {
    'RateLimit-Policy': outcomes
      .map(({ policy }) => `"${policy.name}";q=${policy.limit};w=${policy.windowSec}`)
      .join(', '),
    RateLimit: outcomes
      .map(({ policy, result }) => `"${policy.name}";r=${result.remaining};t=${result.refillInSec}`)
      .join(', '),
    'X-RateLimit-Limit': String(strictest.result.limit),
    'X-RateLimit-Remaining': String(strictest.result.remaining),
    // Epoch seconds, as GitHub and most X-RateLimit-* users send it.
    'X-RateLimit-Reset': String(Math.ceil(strictest.result.resetAt / 1000)),
  };
}
