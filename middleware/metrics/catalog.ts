// The one metric catalog: every metric Bulwark emits (name, unit, dimensions, meaning); the CDK dashboard reads it.
import { MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * The CloudWatch namespace of Bulwark metrics when nothing names another: `createMetrics` takes one, or
 * Powertools' `POWERTOOLS_METRICS_NAMESPACE`, which BulwarkStack sets to its own (`Bulwark/<stack name>`).
 */
export const metricNamespace = 'Bulwark';

/**
 * What CloudWatch refuses in a namespace: 1 to 255 of letters, digits, spaces and `. - _ / # :`, not all
 * spaces, and not starting with `AWS/` (reserved for AWS services). Empty when it is valid.
 */
export function metricNamespaceProblems(namespace: unknown): string[] {
  if (typeof namespace !== 'string') return ['must be a string'];
  const problems: string[] = [];
  if (namespace.length < 1 || namespace.length > 255) problems.push('must be 1 to 255 characters');
  if (!/^[A-Za-z0-9 .\-_/#:]*$/.test(namespace)) {
    problems.push('may hold only letters, digits, spaces and . - _ / # :');
  }
  if (namespace.trim() === '' && namespace.length > 0) problems.push('must not be only spaces');
  if (namespace.startsWith('AWS/')) problems.push('must not start with AWS/ (reserved for AWS services)');
  return problems;
}

/** Powertools adds `service` (the function's service name) to every metric as a default dimension. */
export const serviceDimension = 'service';

export interface MetricDefinition {
  readonly name: string;
  readonly unit: (typeof MetricUnit)[keyof typeof MetricUnit];
  /** The exact dimension set of every data point, `service` first. */
  readonly dimensions: readonly string[];
  /** What one data point means, for dashboards, alarms and the README. */
  readonly meaning: string;
  /** How a dashboard should aggregate it. */
  readonly statistic: 'Sum' | 'Average' | 'p99';
}

const count = MetricUnit.Count;

/**
 * Every metric, keyed by name. Emit them with `recordMetric` (typed against this catalog) so a name,
 * unit or dimension can never drift from what the dashboard and alarms expect.
 */
export const metricCatalog = {
  ColdStart: {
    name: 'ColdStart',
    unit: count,
    dimensions: [serviceDimension, 'function_name'],
    meaning: 'A new execution environment served its first invocation (emitted by Powertools).',
    statistic: 'Sum',
  },
  AuthSuccess: {
    name: 'AuthSuccess',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A credential (JWT, API key or signed service request) was verified.',
    statistic: 'Sum',
  },
  AuthFailure: {
    name: 'AuthFailure',
    unit: count,
    dimensions: [serviceDimension, 'reason'],
    meaning:
      'A credential was missing or rejected, or could not be checked; `reason` is the stable cause (expired, bad_signature, store_unavailable…).',
    statistic: 'Sum',
  },
  AuthLatency: {
    name: 'AuthLatency',
    unit: MetricUnit.Milliseconds,
    dimensions: [serviceDimension],
    meaning: 'Time spent verifying one credential, success or failure (JWKS fetches included).',
    statistic: 'p99',
  },
  AccessDenied: {
    name: 'AccessDenied',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'An authenticated caller lacked the role, scope or permission a route requires (403).',
    statistic: 'Sum',
  },
  ReplayRejected: {
    name: 'ReplayRejected',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A signed service request reused a nonce it had already used (a replay).',
    statistic: 'Sum',
  },
  CsrfRejected: {
    name: 'CsrfRejected',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A state-changing request failed the CSRF double-submit check.',
    statistic: 'Sum',
  },
  RateLimited: {
    name: 'RateLimited',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A request was refused with 429 because its key was over its limit.',
    statistic: 'Sum',
  },
  RateLimitStoreError: {
    name: 'RateLimitStoreError',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'The limiter could not reach DynamoDB and used its failure policy (local fallback limit).',
    statistic: 'Sum',
  },
  CircuitOpened: {
    name: 'CircuitOpened',
    unit: count,
    dimensions: [serviceDimension, 'circuit'],
    meaning: 'A circuit to a downstream service opened after repeated failures.',
    statistic: 'Sum',
  },
  CircuitRejected: {
    name: 'CircuitRejected',
    unit: count,
    dimensions: [serviceDimension, 'circuit'],
    meaning: 'A call was refused without being attempted because its circuit was open.',
    statistic: 'Sum',
  },
  CircuitStoreError: {
    name: 'CircuitStoreError',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A breaker could not read or write its shared state in DynamoDB and fell back to local state.',
    statistic: 'Sum',
  },
  DataKeyCacheHit: {
    name: 'DataKeyCacheHit',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'Envelope encryption reused a cached data key instead of calling KMS.',
    statistic: 'Sum',
  },
  KmsRequest: {
    name: 'KmsRequest',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A KMS GenerateDataKey or Decrypt request was made (cost and throttling driver).',
    statistic: 'Sum',
  },
  EmailSent: {
    name: 'EmailSent',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'The email worker handed a message to SES or SMTP.',
    statistic: 'Sum',
  },
  EmailFailed: {
    name: 'EmailFailed',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'An email send attempt failed (it is retried until its attempts run out), or a message that can never be sent was dead-lettered (a body that is not JSON counts here too).',
    statistic: 'Sum',
  },
  EmailSkipped: {
    name: 'EmailSkipped',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'The email worker dropped an email or SMS unsent because the user it is about was deleted, or their registration lapsed unverified, after it was queued.',
    statistic: 'Sum',
  },
  EmailRejected: {
    name: 'EmailRejected',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'The email worker dropped an email unsent because the provider refused its recipient for good (no such mailbox or domain): bad input, not an outage.',
    statistic: 'Sum',
  },
  SmsSent: {
    name: 'SmsSent',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'The email worker handed an SMS (a verification code) to SNS or the local outbox.',
    statistic: 'Sum',
  },
  SmsFailed: {
    name: 'SmsFailed',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'An SMS send attempt failed (it is retried until its attempts run out), or an SMS that can never be sent was dead-lettered (it fails the schema, no SMS transport, a template that cannot render).',
    statistic: 'Sum',
  },
  SmsRejected: {
    name: 'SmsRejected',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'The email worker dropped an SMS unsent because SNS refused its number for good: bad input, not an outage.',
    statistic: 'Sum',
  },
  SmsBudgetExhausted: {
    name: 'SmsBudgetExhausted',
    unit: count,
    dimensions: [serviceDimension, 'budget'],
    meaning:
      "An SMS code was not sent because the deployment's (`budget` deployment) or a region's (`budget` region) hourly SMS budget was spent: a registration without its code, or a requested code answered 429.",
    statistic: 'Sum',
  },
  WebhookDelivered: {
    name: 'WebhookDelivered',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A webhook endpoint acknowledged a delivery with a 2xx.',
    statistic: 'Sum',
  },
  WebhookFailed: {
    name: 'WebhookFailed',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'A webhook delivery attempt failed (non-2xx, timeout or blocked address), or the worker failed around the POST (KMS, DynamoDB); its lines and `webhook.failed` (reason worker_error) tell the two apart.',
    statistic: 'Sum',
  },
  WebhookEndpointDisabled: {
    name: 'WebhookEndpointDisabled',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'A webhook endpoint was disabled: it answered 410 Gone, or its deliveries kept failing.',
    statistic: 'Sum',
  },
  EmailEnqueueFailed: {
    name: 'EmailEnqueueFailed',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'An email or SMS was not enqueued: registration messages or an endpoint owner alert after a committed change (logged and audited), or a requested SMS code or verification email (503).',
    statistic: 'Sum',
  },
  WebhookEnqueueFailed: {
    name: 'WebhookEnqueueFailed',
    unit: count,
    dimensions: [serviceDimension],
    meaning: 'An event was committed but its webhook messages could not be enqueued (logged and audited).',
    statistic: 'Sum',
  },
  BookingEventsSwept: {
    name: 'BookingEventsSwept',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'Booking events and user.registered events the booking event sweep published and marked published, left pending by a request whose publishing failed (emitted once per run, 0 included).',
    statistic: 'Sum',
  },
  BookingEventsStillPending: {
    name: 'BookingEventsStillPending',
    unit: count,
    dimensions: [serviceDimension],
    meaning:
      'Booking events and user.registered events the booking event sweep tried and could not publish, or published but could not mark: they stay pending for its next run (emitted once per run, 0 included).',
    statistic: 'Sum',
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof metricCatalog;

/** The dimensions a metric carries beyond the default `service` dimension. */
export type ExtraDimension<N extends MetricName> = Exclude<
  (typeof metricCatalog)[N]['dimensions'][number],
  typeof serviceDimension
>;

/** The catalog as a list, in declaration order (dashboards, docs, tests). */
export const metricDefinitions: readonly MetricDefinition[] = Object.values(metricCatalog);

/** Whether a name is in the catalog. */
export function isCatalogMetric(name: string): name is MetricName {
  return Object.hasOwn(metricCatalog, name);
}
