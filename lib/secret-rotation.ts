// One rotation function for the stack's generated secrets, with a schedule per secret it rotates and an alarm on its failures.
import { Aws, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { BulwarkFunction } from './bulwark-function.js';

/** Exactly the calls of functions/secret-rotation/secret-rotation.ts, on the rotated secrets only. */
export const rotationActions = [
  'secretsmanager:DescribeSecret',
  'secretsmanager:GetSecretValue',
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecretVersionStage',
];

/**
 * What Secrets Manager does with a secret's customer-managed key on the rotation function's behalf: decrypt
 * the value it reads and encrypt the one it puts.
 */
export const rotationKeyActions = ['kms:Decrypt', 'kms:GenerateDataKey'];

/**
 * The shortest rotation period: Secrets Manager rotates anywhere in the scheduled UTC day, so with two
 * days two rotations can be barely 24 hours apart (23:59, then 00:00 the day after next), and a warm
 * signer keeps the old value up to 5 minutes (its secret cache): a 24-hour verification link signed
 * then would outlive that value's time as `previous`. Three days keep rotations at least 48 hours apart.
 */
export const minimumRotationDays = 3;

/** Whether Secrets Manager can rotate every `days` days and keep rotations two days apart. */
export function isValidRotationDays(days: number): boolean {
  return Number.isInteger(days) && days >= minimumRotationDays && days <= 1000;
}

export interface BulwarkSecretRotationProps {
  /**
   * How long the rotation function's log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the rotation function's log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * The CloudWatch namespace of the rotation function's metrics (see BulwarkFunction).
   * @default - `Bulwark/<stack name>`, the stack's own (as the other constructs' default)
   */
  readonly metricNamespace?: string;
  /**
   * Where the failure alarm (and its recovery) is published.
   * @default - the alarm has no action
   */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * The rotation Lambda of functions/secret-rotation/ (createSecret, setSecret, testSecret,
 * finishSecret for random secrets) and an alarm on any failed step. Unlike
 * `Secret.addRotationSchedule`, which also grants `secretsmanager:GetRandomPassword` on `*` and lets any
 * account's Secrets Manager invoke the function, `rotate` grants only the four calls on the one secret
 * (and the use of its customer-managed key, if it has one, through Secrets Manager) and scopes the invoke
 * permission to this account and that secret.
 *
 * @example
 * const rotation = new BulwarkSecretRotation(this, 'SecretRotation', { alarmTopic: alarms.topic });
 * rotation.rotate(signingSecret, Duration.days(30));
 */
export class BulwarkSecretRotation extends Construct {
  /** The rotation function. */
  public readonly rotationFunction: BulwarkFunction;
  /**
   * A rotation step failed. Secrets Manager records a failed rotation only on the secret (and in
   * CloudTrail) and keeps the old value current, so without this alarm a secret that can no longer rotate
   * (a key added to its JSON by hand, a stale AWSPENDING) goes unnoticed.
   */
  public readonly failureAlarm: cloudwatch.Alarm;
  /** The path of each rotated secret, by the local id its schedule and invoke permission are named after. */
  private readonly rotatedSecrets = new Map<string, string>();

  constructor(scope: Construct, id: string, props: BulwarkSecretRotationProps = {}) {
    super(scope, id);
    this.rotationFunction = new BulwarkFunction(this, 'Function', {
      entry: 'functions/secret-rotation/handler.ts',
      serviceName: 'secret-rotation',
      memoryMb: 256,
      timeoutSec: 30,
      ...(props.logRetention === undefined ? {} : { logRetention: props.logRetention }),
      ...(props.logRemovalPolicy === undefined ? {} : { logRemovalPolicy: props.logRemovalPolicy }),
      ...(props.metricNamespace === undefined ? {} : { metricNamespace: props.metricNamespace }),
    });
    Validations.of(this.rotationFunction.lambdaFunction).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'Invoked by Secrets Manager, which records a failed step on the secret (RotationFailed in CloudTrail) and retries it; a function DLQ would hold only a copy of the step event.',
    });
    // The handler throws whenever a step fails (that is how Secrets Manager learns it failed), so Lambda's
    // own Errors count every failed step, and also a timeout or a cold start that crashed.
    this.failureAlarm = new cloudwatch.Alarm(this, 'FailureAlarm', {
      metric: this.rotationFunction.lambdaFunction.metricErrors({
        period: Duration.minutes(5),
        statistic: 'Sum',
        label: 'Failed rotation steps',
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No invocation, or none failing, is no failure: rotations run once every few days.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'A secret rotation step failed: the secret keeps its old value and is not rotated until the cause is fixed (see the Rotation step failed log line).',
    });
    if (props.alarmTopic !== undefined) {
      this.failureAlarm.addAlarmAction(new actions.SnsAction(props.alarmTopic));
      this.failureAlarm.addOkAction(new actions.SnsAction(props.alarmTopic));
    }
  }

  /**
   * Rotates `secret` every `every` whole days (3 to 1000). Secrets Manager may rotate at any time in
   * the scheduled UTC day, so `rate(1 day)` can rotate twice minutes apart (23:59, then 00:01), dropping
   * a value still in use; see {@link minimumRotationDays}.
   *
   * `RotateImmediatelyOnUpdate` stays unset (true): a deploy that changes the schedule rotates the
   * secret at once. With `false`, Secrets Manager would only run testSecret against a pending version
   * it creates itself, and testSecret refuses any value its own createSecret did not make.
   *
   * A secret encrypted with a customer-managed key (`encryptionKey`) gets that key's use too, only through
   * Secrets Manager. The schedule is named after the secret's local id, so two rotated secrets need
   * different ids.
   */
  public rotate(secret: secretsmanager.ISecret, every: Duration): secretsmanager.CfnRotationSchedule {
    const days = every.toDays({ integral: false });
    if (!isValidRotationDays(days)) {
      throw new Error(
        `Invalid rotation of ${secret.node.id}: every must be ${minimumRotationDays} to 1000 whole days (Secrets Manager rotates anywhere in the scheduled UTC day, so shorter rates can drop a value 24-hour links still use)`,
      );
    }
    const id = secret.node.id;
    const rotatedAlready = this.rotatedSecrets.get(id);
    if (rotatedAlready !== undefined) {
      throw new Error(
        rotatedAlready === secret.node.path
          ? `Invalid rotation of ${secret.node.path}: it is rotated already`
          : `Invalid rotation of ${secret.node.path}: ${rotatedAlready} is rotated already under the same id (${id}), which names its schedule; give one of the two secrets another id`,
      );
    }
    this.rotatedSecrets.set(id, secret.node.path);
    const fn = this.rotationFunction.lambdaFunction;
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: rotationActions, resources: [secret.secretArn] }));
    if (secret.encryptionKey !== undefined) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: rotationKeyActions,
          resources: [secret.encryptionKey.keyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
          },
        }),
      );
    }
    fn.addPermission(`InvokeFor${id}`, {
      principal: new iam.ServicePrincipal('secretsmanager.amazonaws.com'),
      sourceAccount: Aws.ACCOUNT_ID,
      sourceArn: secret.secretArn,
    });
    const schedule = new secretsmanager.CfnRotationSchedule(this, `Schedule${id}`, {
      secretId: secret.secretArn,
      rotationLambdaArn: fn.functionArn,
      rotationRules: { scheduleExpression: `rate(${days} days)` },
    });
    // Secrets Manager invokes the function as soon as the schedule exists: the grants come first.
    schedule.node.addDependency(this.rotationFunction);
    return schedule;
  }
}
