// One rotation function for the stack's generated secrets, with a schedule per secret it rotates.
import { Aws, type Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BulwarkFunction } from './bulwark-function.js';

/** Exactly the calls of functions/secret-rotation/secret-rotation.ts, on the rotated secrets only. */
export const rotationActions = [
  'secretsmanager:DescribeSecret',
  'secretsmanager:GetSecretValue',
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecretVersionStage',
];

export interface BulwarkSecretRotationProps {
  /**
   * What happens to the rotation function's log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The rotation Lambda of functions/secret-rotation/ (createSecret, setSecret, testSecret,
 * finishSecret for random secrets). Unlike `Secret.addRotationSchedule`, which also grants
 * `secretsmanager:GetRandomPassword` on `*` and lets any account's Secrets Manager invoke the
 * function, `rotate` grants only the four calls on the one secret and scopes the invoke permission to
 * this account and that secret.
 *
 * @example
 * const rotation = new BulwarkSecretRotation(this, 'SecretRotation');
 * rotation.rotate(signingSecret, Duration.days(30));
 */
export class BulwarkSecretRotation extends Construct {
  /** The rotation function. */
  public readonly rotationFunction: BulwarkFunction;

  constructor(scope: Construct, id: string, props: BulwarkSecretRotationProps = {}) {
    super(scope, id);
    this.rotationFunction = new BulwarkFunction(this, 'Function', {
      entry: 'functions/secret-rotation/handler.ts',
      serviceName: 'secret-rotation',
      memoryMb: 256,
      timeoutSec: 30,
      ...(props.logRemovalPolicy === undefined ? {} : { logRemovalPolicy: props.logRemovalPolicy }),
    });
    Validations.of(this.rotationFunction.lambdaFunction).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'Invoked by Secrets Manager, which records a failed step on the secret (RotationFailed in CloudTrail) and retries it; a function DLQ would hold only a copy of the step event.',
    });
  }

  /** Rotates `secret` every `every` whole days (1 to 1000). */
  public rotate(secret: secretsmanager.Secret, every: Duration): secretsmanager.CfnRotationSchedule {
    const days = every.toDays({ integral: false });
    if (!Number.isInteger(days) || days < 1 || days > 1000) {
      throw new Error(`Invalid rotation of ${secret.node.id}: every must be 1 to 1000 whole days`);
    }
    const fn = this.rotationFunction.lambdaFunction;
    const id = secret.node.id;
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: rotationActions, resources: [secret.secretArn] }));
    fn.addPermission(`InvokeFor${id}`, {
      principal: new iam.ServicePrincipal('secretsmanager.amazonaws.com'),
      sourceAccount: Aws.ACCOUNT_ID,
      sourceArn: secret.secretArn,
    });
    const schedule = new secretsmanager.CfnRotationSchedule(this, `Schedule${id}`, {
      secretId: secret.secretArn,
      rotationLambdaArn: fn.functionArn,
      rotationRules: { scheduleExpression: days === 1 ? 'rate(1 day)' : `rate(${days} days)` },
    });
    // Secrets Manager invokes the function as soon as the schedule exists: the grants come first.
    schedule.node.addDependency(this.rotationFunction);
    return schedule;
  }
}
