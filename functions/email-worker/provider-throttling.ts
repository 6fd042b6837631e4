// Whether an email or SMS provider turned a send away for load ("slow down"), rather than failing.
import { dependencyFailure } from '../../middleware/dependency-failure.js';

/**
 * An SMTP reply asking the sender to slow down: 421 (a relay refusing more connections, `421 Too many
 * connected clients`), SES SMTP's `454 Throttling failure: Maximum sending rate exceeded`, or a 4xx with an
 * RFC 3463 4.7.x status that speaks of a rate (`451 4.7.1 … try again later`, `450 4.7.0 Rate limited`).
 * Other 454 and 4.7.x replies (`454 4.7.0 Temporary authentication failure`, `TLS not available`) are not:
 * they say the relay or its configuration is failing.
 */
const smtpThrottlingReply =
  /^421(?!\d)|^454[ -](?:4\.7\.\d{1,3} )?Throttling failure|^4\d\d[ -]4\.7\.\d{1,3}(?!\d).*(?:rate|throttl|too many|try again later)/i;

/**
 * A quota that no wait of the worker's lifts: SES's `Daily message quota exceeded` comes as a throttling
 * error (API) or a `454 Throttling failure` (SMTP), and counts against the circuit like an outage.
 */
const dailyQuota = /daily message quota/i;

/**
 * Whether `error` is a provider's throttling: SES v2 `TooManyRequestsException` (429), SNS
 * `ThrottledException`, or any throttling the AWS SDK reports (`dependencyFailure` kind `throttled`); an
 * SMTP reply of {@link smtpThrottlingReply}. The provider is up and answering: its circuit does not count
 * such a send, which is retried with the worker's jittered backoff. `SendingPausedException` (a paused
 * account), `LimitExceededException` and the daily sending quota ({@link dailyQuota}), which no wait of the
 * worker's lifts, are not throttling: a person must act.
 *
 * @example
 * isProviderThrottling(new TooManyRequestsException({ $metadata: {}, message: 'Maximum sending rate exceeded.' })); // true
 */
export function isProviderThrottling(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { message, responseCode, response } = error as {
    message?: unknown;
    responseCode?: unknown;
    response?: unknown;
  };
  if ([message, response].some((text) => typeof text === 'string' && dailyQuota.test(text))) return false;
  if (dependencyFailure(error)?.kind === 'throttled') return true;
  if (responseCode === 421) return true;
  return typeof response === 'string' && smtpThrottlingReply.test(response);
}
