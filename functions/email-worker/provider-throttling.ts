// Whether an email or SMS provider turned a send away for load ("slow down"), rather than failing.
import { dependencyFailure } from '../../middleware/dependency-failure.js';

/**
 * An SMTP reply asking the sender to slow down: 421 (a relay refusing more connections, `421 Too many
 * connected clients`), 454 (SES SMTP's `454 Throttling failure: Maximum sending rate exceeded`), or any 4xx
 * with an RFC 3463 4.7.x status (a relay's rate or policy limit, `451 4.7.1 … try again later`).
 */
const smtpThrottlingReply = /^(?:421|454)(?!\d)|^4\d\d[ -]4\.7\.\d{1,3}(?!\d)/;

/**
 * Whether `error` is a provider's throttling: SES v2 `TooManyRequestsException` (429), SNS
 * `ThrottledException`, or any throttling the AWS SDK reports (`dependencyFailure` kind `throttled`); an
 * SMTP reply of {@link smtpThrottlingReply}. The provider is up and answering: its circuit does not count
 * such a send, which is retried with the worker's jittered backoff. `SendingPausedException` (a paused
 * account) and `LimitExceededException` (a quota no wait lifts) are not throttling: a person must act.
 *
 * @example
 * isProviderThrottling(new TooManyRequestsException({ $metadata: {}, message: 'Maximum sending rate exceeded.' })); // true
 */
export function isProviderThrottling(error: unknown): boolean {
  if (dependencyFailure(error)?.kind === 'throttled') return true;
  if (typeof error !== 'object' || error === null) return false;
  const { responseCode, response } = error as { responseCode?: unknown; response?: unknown };
  if (responseCode === 421 || responseCode === 454) return true;
  return typeof response === 'string' && smtpThrottlingReply.test(response);
}
