// The alarms of one deployment, published to one encrypted, SSL-only SNS topic.
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import {
  type MetricDefinition,
  metricCatalog,
  metricNamespace,
  serviceDimension,
} from '../middleware/metrics/catalog.js';
import { BulwarkEncryptionKey } from './encryption-key.js';
import { checkedMetricNamespace } from './metric-namespace.js';

export interface BulwarkAlarmsProps {
  /**
   * The HTTP API whose 5xx rate is watched.
   * @default - no API 5xx alarm (`serverErrorRate` is undefined), for alarms in a stack without the API
   */
  readonly httpApi?: apigwv2.IHttpApi;
  /**
   * The topic every alarm publishes to: one that lives in a stack of its own, which both this stack and the
   * stacks of the alarmed functions (their `alarmTopic`) depend on, where the topic this construct creates
   * would make those stacks depend on each other. It must let CloudWatch publish to it (and, if encrypted,
   * use its key), as the created one does.
   * @default - a topic of its own, encrypted with its own key (`topicKey`)
   */
  readonly topic?: sns.ITopic;
  /**
   * The CloudWatch namespace the functions' metrics go to (their POWERTOOLS_METRICS_NAMESPACE): the
   * alarms count only its data points, so another deployment's never page this one.
   * @default - `Bulwark/<stack name>`, the stack's own (as the other constructs' default)
   */
  readonly metricNamespace?: string;
  /**
   * Percentage of API requests answered 5xx, in two of three periods, that raises the alarm.
   * @default 5
   */
  readonly serverErrorRatePercent?: number;
  /**
   * The fewest 5xx answers in a period that count toward ServerErrorRate: below it the period reads 0 %,
   * so one 5xx in a quiet night's period (100 % of one request) does not page.
   * @default 3
   */
  readonly serverErrorMinimumCount?: number;
  /**
   * Auth failures (every reason and service together) in one period that raise the alarm.
   * @default 50
   */
  readonly authFailureThreshold?: number;
  /**
   * Values of the `circuit` dimension whose opening is not a Bulwark outage: breakers guarding endpoints
   * that customers run (a receiver answering 500 opens one). The CircuitOpened alarm leaves them out, so
   * no customer can page on-call, or hold the alarm in ALARM and hide a real dependency failing.
   * @default - none: every circuit counts
   */
  readonly customerEndpointCircuits?: readonly string[];
  /**
   * Percentage of the email worker's emails refused for their recipient (`EmailRejected` of `EmailSent`
   * plus `EmailRejected`), over {@link emailRejectionWindow}, that raises the alarm. One mistyped address
   * is bad input; most of them refused at once is a relay refusing every recipient (a misconfigured relay
   * or a broken resolver answers 5.1.1 or 5.1.2 for all), which drops every email unsent.
   * @default 50
   */
  readonly emailRejectedPercent?: number;
  /**
   * Emails attempted (sent or refused) in {@link emailRejectionWindow} below which the rejection rate is
   * not judged: a couple of mistyped addresses on a quiet night are not an outage.
   * @default 5
   */
  readonly emailRejectionMinimumAttempts?: number;
  /**
   * The one window the email rejection rate is measured over, longer than `period` so that a quiet
   * deployment still sees enough emails to judge.
   * @default Duration.minutes(15)
   */
  readonly emailRejectionWindow?: Duration;
  /**
   * The email worker's `service` dimension (its function's service name), whose `EmailSent` and
   * `EmailRejected` the rejection rate is made of.
   * @default 'email-worker'
   */
  readonly emailWorkerService?: string;
  /**
   * The booking event sweeper's `service` dimension (its function's service name), whose
   * `BookingEventsStillPending` the BookingEventsStillPending alarm watches.
   * @default 'booking-event-sweeper'
   */
  readonly bookingEventSweeperService?: string;
  /**
   * How often the booking event sweeper runs. The BookingEventsStillPending alarm judges periods no shorter
   * than this: a `period` shorter than the sweep's interval would hold periods without a run, and the
   * alarm, which needs every period of its window to breach, could then never fire.
   * @default Duration.minutes(5)
   */
  readonly bookingEventSweepInterval?: Duration;
  /**
   * SMS the email worker sent (`SmsSent`) in one hour that raise the SMS volume alarm: more codes than
   * sign-ups explain is SMS pumping (registrations made to send codes to numbers someone is paid for).
   * Set it below the deployment's SMS budget, so it pages before real users are refused their codes.
   * @default 50 (BulwarkStack: half of its `sms.perHour`)
   */
  readonly smsSentPerHourThreshold?: number;
  /**
   * Whether to watch the account's SES reputation (`AWS/SES` `Reputation.BounceRate` and
   * `Reputation.ComplaintRate`): for a deployment that sends through SES.
   * @default false
   */
  readonly sesReputation?: boolean;
  /**
   * The account's SES bounce rate (a fraction, 0.05 is 5 %) at which the SesBounceRate alarm fires. The
   * default is where SES places an account under review; it pauses sending from 0.10.
   * @default 0.05
   */
  readonly sesBounceRateThreshold?: number;
  /**
   * The account's SES complaint rate (a fraction, 0.001 is 0.1 %) at which the SesComplaintRate alarm
   * fires. The default is where SES places an account under review; it pauses sending from 0.005.
   * @default 0.001
   */
  readonly sesComplaintRateThreshold?: number;
  /**
   * Period of every alarm but the email rejection rate (see {@link emailRejectionWindow}), the SMS
   * volume and the SES reputation's (an hour each).
   * @default Duration.minutes(5)
   */
  readonly period?: Duration;
  /**
   * What happens to the created topic's key when it leaves the stack (none is created with `topic`).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * A Metrics Insights query summing a catalog metric of `namespace` over all its dimension values (every
 * service, circuit or reason) but the `excluded` ones: alarms cannot use SEARCH, and the extra
 * dimensions' values are open-ended.
 */
export function catalogSumQuery(
  definition: MetricDefinition,
  excluded: Readonly<Record<string, readonly string[]>> = {},
  namespace: string = metricNamespace,
): string {
  const conditions = Object.entries(excluded).flatMap(([dimension, values]) =>
    values.map((value) => `${dimension} != '${value}'`),
  );
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  return `SELECT SUM(${definition.name}) FROM SCHEMA("${namespace}", ${definition.dimensions.join(', ')})${where}`;
}

/**
 * Consecutive periods in each of which the booking event sweep left an event pending at its every run (one
 * run per 5 minutes) that raise the BookingEventsStillPending alarm: one run's miss (a throttled read, a
 * publish the next run retries) is not an outage, the same misses run after run are.
 */
export const stillPendingPeriods = 3;

/** What the SmsVolume alarm sums `SmsSent` over: an hour, the span of the SMS budgets. */
export const smsVolumePeriod = Duration.hours(1);

/**
 * AuthFailure reasons the spike alarm leaves out: a request with no credential at all (every scanner and
 * logged-out client sends those) rejects nothing, and a store that could not be read (`store_unavailable`)
 * is an outage the 503s bring to ServerErrorRate, not a rejected credential.
 */
export const authFailureReasonsNotCounted = ['missing', 'store_unavailable'] as const;

/**
 * Alarms on what needs a person: a circuit to a dependency opening (it is down), API 5xx rate, a spike of
 * auth failures (credential stuffing or a broken client), the rate limiter losing its store (it
 * is then enforcing only per-instance fallback limits), webhook or email/SMS messages that could not
 * be enqueued (nothing retries them but the booking event sweep, for booking events), most emails refused for their recipient (a relay refusing
 * everyone: those emails are dropped, not dead-lettered), SMS pumping: more SMS in an hour than the
 * threshold, or an SMS budget spent, booking events the sweep leaves pending run after run, and, with
 * `sesReputation`, the account's SES bounce and complaint rates. All notify one topic.
 *
 * @example
 * const alarms = new BulwarkAlarms(this, 'Alarms', { httpApi: api.api });
 * alarms.topic.addSubscription(new subscriptions.EmailSubscription('oncall@example.com'));
 *
 * @example
 * // Split into stacks: the topic in a base stack both the alarms' and the functions' stacks use.
 * const alarms = new BulwarkAlarms(monitoringStack, 'Alarms', { topic: base.alarmTopic });
 */
export class BulwarkAlarms extends Construct {
  /** Where every alarm (and its recovery) is published: `topic`, else the one created. */
  public readonly topic: sns.ITopic;
  /**
   * Encrypts the created topic's messages; CloudWatch may use it only to publish alarms of this account.
   * Undefined when given a `topic`.
   */
  public readonly topicKey: BulwarkEncryptionKey | undefined;
  /** A circuit opened, other than one guarding a customer's endpoint. */
  public readonly circuitOpened: cloudwatch.Alarm;
  /** API 5xx rate over the threshold; undefined without `httpApi`. */
  public readonly serverErrorRate: cloudwatch.Alarm | undefined;
  /** Auth failures over the threshold. */
  public readonly authFailureSpike: cloudwatch.Alarm;
  /** The rate limiter could not reach DynamoDB. */
  public readonly rateLimitStoreErrors: cloudwatch.Alarm;
  /**
   * A committed change's webhook messages could not be enqueued: a user.registered's deliveries are lost,
   * a booking's event waits for the booking event sweep.
   */
  public readonly webhookEnqueueFailed: cloudwatch.Alarm;
  /** An email or SMS could not be enqueued: it is never sent unless the user asks again. */
  public readonly emailEnqueueFailed: cloudwatch.Alarm;
  /** Most emails were refused for their recipient: the relay refuses everyone, and they are dropped unsent. */
  public readonly emailRejectionRate: cloudwatch.Alarm;
  /** More SMS in an hour than the threshold: likely SMS pumping. */
  public readonly smsVolume: cloudwatch.Alarm;
  /** The deployment's or a region's SMS budget refused a code: users of it get none until it refills. */
  public readonly smsBudgetExhausted: cloudwatch.Alarm;
  /**
   * Every run of the booking event sweep for {@link stillPendingPeriods} periods left events pending: it
   * cannot read, publish or mark them, and its run does not fail, so its failure alarm stays quiet.
   */
  public readonly bookingEventsStillPending: cloudwatch.Alarm;
  /** The account's SES bounce rate reached the threshold (with `sesReputation`). */
  public readonly sesBounceRate: cloudwatch.Alarm | undefined;
  /** The account's SES complaint rate reached the threshold (with `sesReputation`). */
  public readonly sesComplaintRate: cloudwatch.Alarm | undefined;

  constructor(scope: Construct, id: string, props: BulwarkAlarmsProps) {
    super(scope, id);
    const namespace = checkedMetricNamespace('BulwarkAlarms', this, props.metricNamespace);
    const period = props.period ?? Duration.minutes(5);
    if (props.topic === undefined) {
      const { topic, topicKey } = this.createTopic(props.removalPolicy ?? RemovalPolicy.RETAIN);
      this.topic = topic;
      this.topicKey = topicKey;
    } else {
      this.topic = props.topic;
      this.topicKey = undefined;
    }

    const sumOf = (
      definition: MetricDefinition,
      label: string,
      excluded?: Readonly<Record<string, readonly string[]>>,
    ) =>
      new cloudwatch.MathExpression({
        expression: catalogSumQuery(definition, excluded, namespace),
        label,
        period,
      });
    // A catalog metric only the email worker emits: its own series, a plain metric.
    const emailWorkerSum = (definition: MetricDefinition, metricPeriod: Duration, label?: string) =>
      new cloudwatch.Metric({
        namespace,
        metricName: definition.name,
        dimensionsMap: { [serviceDimension]: props.emailWorkerService ?? 'email-worker' },
        statistic: 'Sum',
        period: metricPeriod,
        ...(label === undefined ? {} : { label }),
      });
    const atLeast = (
      alarmId: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
    ): cloudwatch.Alarm => {
      const alarm = new cloudwatch.Alarm(this, alarmId, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        // No data means nothing happened: these metrics are only emitted when something goes wrong.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      return this.notifying(alarm);
    };

    this.circuitOpened = atLeast(
      'CircuitOpened',
      sumOf(metricCatalog.CircuitOpened, 'Circuits opened', {
        circuit: props.customerEndpointCircuits ?? [],
      }),
      1,
      'A circuit to a downstream service opened: calls to it fail fast until it recovers.',
    );
    this.authFailureSpike = atLeast(
      'AuthFailureSpike',
      sumOf(metricCatalog.AuthFailure, 'Rejected credentials', { reason: authFailureReasonsNotCounted }),
      props.authFailureThreshold ?? 50,
      'Many rejected credentials: credential stuffing, a leaked-token probe or a misconfigured client.',
    );
    this.rateLimitStoreErrors = atLeast(
      'RateLimitStoreErrors',
      sumOf(metricCatalog.RateLimitStoreError, 'Rate-limit store errors'),
      1,
      "The rate limiter could not reach DynamoDB: the request limits fell back to per-instance limits, and the SMS budgets (fail-closed) refused every code (503, no SMS sent). The rateLimit.storeError audit line's metadata.failMode says which.",
    );

    this.webhookEnqueueFailed = atLeast(
      'WebhookEnqueueFailed',
      sumOf(metricCatalog.WebhookEnqueueFailed, 'Webhook enqueue failures'),
      1,
      "A committed change's webhook messages could not be enqueued (SQS down or refusing them): the booking event or user.registered stays pending for the booking event sweep, which keeps trying every run (users registered before the sweep covered user.registered are not on its index: theirs never happen).",
    );
    this.emailEnqueueFailed = atLeast(
      'EmailEnqueueFailed',
      sumOf(metricCatalog.EmailEnqueueFailed, 'Email enqueue failures'),
      1,
      'An email or SMS (registration, verification code, endpoint owner alert) could not be enqueued: it is not sent.',
    );

    this.emailRejectionRate = this.addEmailRejectionRate(props, emailWorkerSum);
    if (props.sesReputation) {
      this.sesBounceRate = this.addSesReputation(
        'SesBounceRate',
        'Reputation.BounceRate',
        props.sesBounceRateThreshold ?? 0.05,
        "The account's SES bounce rate reached the threshold (at 5 % SES reviews the account, at 10 % it may pause its sending): mail to addresses that do not exist, such as registrations with invented addresses.",
      );
      this.sesComplaintRate = this.addSesReputation(
        'SesComplaintRate',
        'Reputation.ComplaintRate',
        props.sesComplaintRateThreshold ?? 0.001,
        "The account's SES complaint rate reached the threshold (at 0.1 % SES reviews the account, at 0.5 % it may pause its sending): recipients marked our mail as spam, such as people registered by someone else.",
      );
    }

    // Only the email worker sends SMS: its own series, summed over the hour.
    this.smsVolume = atLeast(
      'SmsVolume',
      emailWorkerSum(metricCatalog.SmsSent, smsVolumePeriod, 'SMS sent in an hour'),
      props.smsSentPerHourThreshold ?? 50,
      'More SMS codes were sent in an hour than sign-ups explain: likely SMS pumping (registrations of numbers someone is paid for).',
    );
    this.smsBudgetExhausted = atLeast(
      'SmsBudgetExhausted',
      sumOf(metricCatalog.SmsBudgetExhausted, 'SMS codes refused by a budget'),
      1,
      "The deployment's or a region's hourly SMS budget is spent: registrations get no code and requested codes are refused until it refills.",
    );

    const sweepInterval = props.bookingEventSweepInterval ?? Duration.minutes(5);
    this.bookingEventsStillPending = this.addBookingEventsStillPending(
      props,
      namespace,
      sweepInterval.toSeconds() > period.toSeconds() ? sweepInterval : period,
    );

    const { httpApi } = props;
    this.serverErrorRate =
      httpApi === undefined
        ? undefined
        : this.notifying(
            new cloudwatch.Alarm(this, 'ServerErrorRate', {
              metric: new cloudwatch.MathExpression({
                expression: `IF(errors >= ${props.serverErrorMinimumCount ?? 3}, 100 * errors / requests, 0)`,
                usingMetrics: {
                  requests: httpApi.metricCount({ period, statistic: 'Sum' }),
                  errors: httpApi.metricServerError({ period, statistic: 'Sum' }),
                },
                label: 'API 5xx rate (%)',
                period,
              }),
              threshold: props.serverErrorRatePercent ?? 5,
              evaluationPeriods: 3,
              datapointsToAlarm: 2,
              comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
              treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
              alarmDescription:
                'More than the threshold percentage of API requests failed with a 5xx (periods with fewer than the minimum count of 5xx read 0).',
            }),
          );
  }

  /** A topic encrypted with a key of its own, to which CloudWatch may publish this account's alarms. */
  private createTopic(removalPolicy: RemovalPolicy): { topic: sns.Topic; topicKey: BulwarkEncryptionKey } {
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    const fromThisAccount = { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } };
    const topicKey = new BulwarkEncryptionKey(this, 'TopicKey', {
      description: 'Bulwark alarm topic',
      removalPolicy,
    });
    // CloudWatch publishes with its own credentials, so it needs the key to encrypt the message.
    topicKey.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: fromThisAccount,
      }),
    );
    const topic = new sns.Topic(this, 'Topic', { masterKey: topicKey.key, enforceSSL: true });
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: fromThisAccount,
      }),
    );
    return { topic, topicKey };
  }

  /** `alarm`, notifying the topic when it fires and when it recovers. */
  private notifying(alarm: cloudwatch.Alarm): cloudwatch.Alarm {
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    return alarm;
  }

  /**
   * The share of emails refused for their recipient. Both counts are the email worker's own series (only
   * it emits them), plain metrics, so the share is ordinary metric math. Each is FILLed with 0, since a
   * window with rejections and no sends is exactly the outage; too few attempts read 0, and a window
   * with none at all has no data, which is not breaching.
   */
  private addEmailRejectionRate(
    props: BulwarkAlarmsProps,
    emailWorkerSum: (definition: MetricDefinition, period: Duration) => cloudwatch.Metric,
  ): cloudwatch.Alarm {
    const window = props.emailRejectionWindow ?? Duration.minutes(15);
    const minimumAttempts = props.emailRejectionMinimumAttempts ?? 5;
    const rejected = emailWorkerSum(metricCatalog.EmailRejected, window);
    const attempted = new cloudwatch.MathExpression({
      expression: 'FILL(sent, 0) + FILL(rejected, 0)',
      usingMetrics: { sent: emailWorkerSum(metricCatalog.EmailSent, window), rejected },
      label: 'Emails attempted',
      period: window,
    });
    return this.notifying(
      new cloudwatch.Alarm(this, 'EmailRejectionRate', {
        metric: new cloudwatch.MathExpression({
          expression: `IF(attempted >= ${minimumAttempts}, 100 * FILL(rejected, 0) / attempted, 0)`,
          usingMetrics: { attempted, rejected },
          label: 'Emails refused for their recipient (%)',
          period: window,
        }),
        threshold: props.emailRejectedPercent ?? 50,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription:
          'Most emails were refused for their recipient (5.1.x): the relay refuses every address (its configuration, or its resolver), and those emails are dropped unsent.',
      }),
    );
  }

  /**
   * Booking events (and `user.registered`) still pending at every sweep run for {@link stillPendingPeriods}
   * periods. The sweep counts each run's leftovers, 0 included, so the fewest in a period is what its run
   * left; a period without a run (the sweeper not running, which its own alarm covers) is not breaching.
   */
  private addBookingEventsStillPending(
    props: BulwarkAlarmsProps,
    namespace: string,
    period: Duration,
  ): cloudwatch.Alarm {
    return this.notifying(
      new cloudwatch.Alarm(this, 'BookingEventsStillPending', {
        metric: new cloudwatch.Metric({
          namespace,
          metricName: metricCatalog.BookingEventsStillPending.name,
          dimensionsMap: { [serviceDimension]: props.bookingEventSweeperService ?? 'booking-event-sweeper' },
          statistic: 'Minimum',
          period,
          label: 'Booking events still pending after a sweep',
        }),
        threshold: 1,
        evaluationPeriods: stillPendingPeriods,
        datapointsToAlarm: stillPendingPeriods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `Every booking event sweep of ${stillPendingPeriods} periods in a row left booking events or user.registered pending: it cannot read, publish or mark them (a permission, the table key, throttling, SQS), and its runs do not fail. Their webhooks wait; if only the mark fails, each run publishes them again. The sweeper's error lines name each event and the error.`,
      }),
    );
  }

  /**
   * An alarm on one of the account's SES reputation rates, which SES publishes as a fraction (0 to 1) for
   * the whole account and region, not per stack. The rate is a standing level over SES's own recent
   * volume, so the highest value in an hour is judged, and an hour without a data point (an account
   * that never bounced has none) leaves the alarm as it was rather than calling it recovered.
   */
  private addSesReputation(
    alarmId: string,
    metricName: string,
    threshold: number,
    description: string,
  ): cloudwatch.Alarm {
    return this.notifying(
      new cloudwatch.Alarm(this, alarmId, {
        metric: new cloudwatch.Metric({
          namespace: 'AWS/SES',
          metricName,
          statistic: 'Maximum',
          period: Duration.hours(1),
        }),
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.IGNORE,
        alarmDescription: description,
      }),
    );
  }

  /** Every alarm, for a dashboard's alarm widget. */
  public get alarms(): cloudwatch.Alarm[] {
    return [
      this.circuitOpened,
      ...(this.serverErrorRate ? [this.serverErrorRate] : []),
      this.authFailureSpike,
      this.rateLimitStoreErrors,
      this.webhookEnqueueFailed,
      this.emailEnqueueFailed,
      this.emailRejectionRate,
      this.smsVolume,
      this.smsBudgetExhausted,
      this.bookingEventsStillPending,
      ...(this.sesBounceRate ? [this.sesBounceRate] : []),
      ...(this.sesComplaintRate ? [this.sesComplaintRate] : []),
    ];
  }
}
