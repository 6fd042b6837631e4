// Rate-limit policies: the presets from the seeds, validation of custom ones, and the GCRA constants they imply.
import { assertNoProblems } from '../errors.js';
import { shownValue } from '../options.js';

/** A named quota: at most `limit` units per `windowSec` seconds, with bursts of up to `limit` at once. */
export interface RateLimitPolicy {
  /** Appears in the `RL#<name>#…` storage key and in the `RateLimit` headers. */
  readonly name: string;
  /** Units (requests, unless a cost says otherwise) per window; a positive integer. */
  readonly limit: number;
  /** Window length in whole seconds. */
  readonly windowSec: number;
}

/**
 * The limits the seeds name: the Flask tiers (public, authenticated, admin, strict) and the auth
 * service's endpoint limits (login, register, password reset, MFA verify).
 */
export const rateLimitPresets = {
  public: { limit: 100, windowSec: 3600 },
  authenticated: { limit: 500, windowSec: 3600 },
  admin: { limit: 1000, windowSec: 3600 },
  strict: { limit: 10, windowSec: 60 },
  login: { limit: 10, windowSec: 60 },
  register: { limit: 3, windowSec: 300 },
  passwordReset: { limit: 5, windowSec: 60 },
  mfaVerify: { limit: 1, windowSec: 10 },
} as const satisfies Record<string, Omit<RateLimitPolicy, 'name'>>;

export type RateLimitPresetName = keyof typeof rateLimitPresets;

/** A preset by name, or a custom policy; a custom policy without a name is named after its numbers. */
export type RateLimitPolicyInput =
  | RateLimitPresetName
  | { readonly name?: string | undefined; readonly limit: number; readonly windowSec: number };

/** Longest window: DynamoDB TTL and the microsecond arithmetic below both stay well in range. */
export const maxWindowSec = 366 * 24 * 3600;

const microsPerSecond = 1_000_000;
/**
 * The emission interval is kept in whole microseconds, rounded up so a policy is never exceeded. At
 * 10,000 units per second the interval is 100 µs, so rounding costs at most 1 % of the limit; faster
 * policies would round far off (700,000/s would admit 500,000/s). One DynamoDB item takes about 1,000
 * writes per second anyway.
 */
export const maxUnitsPerSecond = 10_000;

// Names go into storage keys and into sf-string header values unescaped, so keep them to a safe alphabet.
const policyNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Whether a value names one of {@link rateLimitPresets}. */
export function isPresetName(value: unknown): value is RateLimitPresetName {
  return typeof value === 'string' && Object.hasOwn(rateLimitPresets, value);
}

/** Every problem with a policy input, as `<label>.<field> …` sentences; empty when it is valid. */
export function policyProblems(input: unknown, label = 'policy'): string[] {
  if (typeof input === 'string') {
    return isPresetName(input)
      ? []
      : [`${label} must be one of ${Object.keys(rateLimitPresets).join(', ')} (got ${shownValue(input)})`];
  }
  if (typeof input !== 'object' || input === null) {
    return [`${label} must be a preset name or { limit, windowSec }`];
  }
  const { name, limit, windowSec } = input as Record<string, unknown>;
  const problems: string[] = [];
  if (name !== undefined && (typeof name !== 'string' || !policyNamePattern.test(name))) {
    problems.push(
      `${label}.name must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  const limitOk = typeof limit === 'number' && Number.isSafeInteger(limit) && limit > 0;
  if (!limitOk) problems.push(`${label}.limit must be a positive integer (got ${shownValue(limit)})`);
  const windowOk =
    typeof windowSec === 'number' &&
    Number.isSafeInteger(windowSec) &&
    windowSec > 0 &&
    windowSec <= maxWindowSec;
  if (!windowOk) {
    problems.push(
      `${label}.windowSec must be a whole number of seconds in 1..${maxWindowSec} (got ${shownValue(windowSec)})`,
    );
  }
  if (limitOk && windowOk && limit > windowSec * maxUnitsPerSecond) {
    problems.push(`${label}.limit must be at most ${maxUnitsPerSecond} per second of window`);
  }
  return problems;
}

/**
 * Turns a preset name or custom policy into a validated {@link RateLimitPolicy}.
 *
 * @example
 * resolvePolicy('register'); // { name: 'register', limit: 3, windowSec: 300 }
 * resolvePolicy({ limit: 20, windowSec: 60 }); // { name: '20-per-60s', ... }
 */
export function resolvePolicy(input: RateLimitPolicyInput, component = 'rate limit'): RateLimitPolicy {
  assertNoProblems(component, policyProblems(input));
  if (typeof input === 'string') return { name: input, ...rateLimitPresets[input] };
  return {
    name: input.name ?? `${input.limit}-per-${input.windowSec}s`,
    limit: input.limit,
    windowSec: input.windowSec,
  };
}

/**
 * The policy for a caller whose trust multiplies the limit (2 → twice the quota). The limit is
 * rounded down but never below `minimum`, so a request's cost always fits an empty bucket.
 */
export function scalePolicy(policy: RateLimitPolicy, multiplier: number, minimum = 1): RateLimitPolicy {
  if (multiplier === 1) return policy;
  const limit = Math.max(minimum, Math.floor(policy.limit * multiplier));
  return { ...policy, limit: Math.min(limit, policy.windowSec * maxUnitsPerSecond) };
}

/** GCRA's constants for a policy, in integer microseconds so every sum is exact. */
export interface GcraParameters {
  readonly limit: number;
  /** Emission interval T: one unit refills every T µs (window / limit, rounded up to whole µs). */
  readonly intervalUs: number;
  /** Burst capacity limit × T: how far the theoretical arrival time may run ahead of now. */
  readonly capacityUs: number;
}

export function gcraParameters(policy: RateLimitPolicy): GcraParameters {
  const intervalUs = Math.ceil((policy.windowSec * microsPerSecond) / policy.limit);
  return { limit: policy.limit, intervalUs, capacityUs: intervalUs * policy.limit };
}

/**
 * The most units a policy admits in any span of `spanSec` seconds, its end excluded (as a CloudWatch
 * period is): the whole burst at its start, then one unit every emission interval until it ends. A
 * count of what it admitted over such a span (an hourly Sum) can never pass it.
 *
 * @example
 * mostAdmittedWithin({ name: 'sms', limit: 10, windowSec: 3600 }, 3600); // 19: 10 at once, then one every 6 minutes
 */
export function mostAdmittedWithin(policy: RateLimitPolicy, spanSec: number): number {
  const { limit, intervalUs } = gcraParameters(policy);
  return limit + Math.ceil((spanSec * microsPerSecond) / intervalUs) - 1;
}
