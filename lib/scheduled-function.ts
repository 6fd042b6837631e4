// A function of the scheduled-function table, run by an EventBridge schedule, with an alarm on its failed runs.
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { TableAccess } from '../functions/routes.js';
import type { ScheduledFunctionDefinition } from '../functions/schedules.js';
import { BulwarkFunction } from './bulwark-function.js';

export interface BulwarkScheduledFunctionProps {
  /** Its name in the scheduled-function table: the function's service name in logs and metrics. */
  readonly name: string;
  /**
   * Its entry, memory, timeout and schedule (functions/schedules.ts); its table access there is granted
   * by whoever gives it the tables, as the stack does.
   */
  readonly definition: Omit<ScheduledFunctionDefinition, keyof TableAccess>;
  /**
   * Variables its code reads.
   * @default - none beyond BulwarkFunction's
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * The folder the function is bundled in, against which a relative `definition.entry` resolves (see
   * `BulwarkFunctionProps.projectRoot`).
   * @default - the Bulwark checkout (the folder above lib/)
   */
  readonly projectRoot?: string;
  /**
   * The lock file of its bundle's dependencies (see `BulwarkFunctionProps.depsLockFilePath`).
   * @default - `package-lock.json` in `projectRoot`
   */
  readonly depsLockFilePath?: string;
  /**
   * The CloudWatch namespace of its metrics (see BulwarkFunction).
   * @default - `Bulwark/<stack name>`, the stack's own (as the other constructs' default)
   */
  readonly metricNamespace?: string;
  /**
   * How long its log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to its log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Where the failure alarm (and its recovery) is published.
   * @default - the alarm has no action
   */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * A BulwarkFunction invoked every `definition.everyMinutes` minutes by an EventBridge rule, and an alarm
 * on its failed runs. Lambda retries a failed run as it retries any asynchronous invocation (up to twice,
 * within minutes): the function's runs must be safe to repeat and to overlap.
 *
 * @example
 * const sweep = new BulwarkScheduledFunction(this, 'BookingEventSweeper', {
 *   name: 'booking-event-sweeper',
 *   definition: scheduledFunctions['booking-event-sweeper'],
 *   alarmTopic: alarms.topic,
 * });
 */
export class BulwarkScheduledFunction extends Construct {
  /** The function. */
  public readonly function: BulwarkFunction;
  /** The schedule: `rate(n minutes)`, targeting the function. */
  public readonly rule: events.Rule;
  /** A run failed (its handler threw, timed out or could not start). */
  public readonly failureAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BulwarkScheduledFunctionProps) {
    super(scope, id);
    const { definition } = props;
    if (!Number.isInteger(definition.everyMinutes) || definition.everyMinutes < 1) {
      throw new Error(
        `Invalid BulwarkScheduledFunction props: definition.everyMinutes must be a whole number of minutes, 1 or more (got ${definition.everyMinutes})`,
      );
    }
    this.function = new BulwarkFunction(this, 'Function', {
      entry: definition.entry,
      serviceName: props.name,
      memoryMb: definition.memoryMb,
      timeoutSec: definition.timeoutSec,
      ...(props.environment === undefined ? {} : { environment: props.environment }),
      ...(props.projectRoot === undefined ? {} : { projectRoot: props.projectRoot }),
      ...(props.depsLockFilePath === undefined ? {} : { depsLockFilePath: props.depsLockFilePath }),
      ...(props.metricNamespace === undefined ? {} : { metricNamespace: props.metricNamespace }),
      ...(props.logRetention === undefined ? {} : { logRetention: props.logRetention }),
      ...(props.logRemovalPolicy === undefined ? {} : { logRemovalPolicy: props.logRemovalPolicy }),
    });
    const fn = this.function.lambdaFunction;
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'Invoked by its EventBridge schedule with an event that holds nothing but the time: a DLQ would keep only copies of it. A failed run leaves its work for the next run, and its failure alarm pages.',
    });
    this.rule = new events.Rule(this, 'Schedule', {
      description: `Runs the ${props.name} function every ${definition.everyMinutes} minutes`,
      schedule: events.Schedule.rate(Duration.minutes(definition.everyMinutes)),
      targets: [new targets.LambdaFunction(fn)],
    });
    Validations.of(this.rule).acknowledge({
      id: 'Serverless-EventBusDLQ',
      reason:
        'The schedule invokes with an event that holds nothing but the time: one EventBridge could not deliver has nothing to replay, and the next comes within minutes. A DLQ would keep only copies of missed ticks.',
    });
    this.failureAlarm = new cloudwatch.Alarm(this, 'FailureAlarm', {
      metric: fn.metricErrors({
        period: Duration.minutes(definition.everyMinutes),
        statistic: 'Sum',
        label: `Failed ${props.name} runs`,
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // A period without a run failing is no failure.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `A run of the ${props.name} function failed (see its log group); its work waits for the next run.`,
    });
    if (props.alarmTopic !== undefined) {
      this.failureAlarm.addAlarmAction(new actions.SnsAction(props.alarmTopic));
      this.failureAlarm.addOkAction(new actions.SnsAction(props.alarmTopic));
    }
  }
}
