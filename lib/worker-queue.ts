// A worker's SQS queue, its dead-letter queue (redrive + alarm) and the worker function fed by an event source mapping.
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { WorkerDefinition } from '../functions/workers.js';
import { BulwarkFunction, type BundledFile } from './bulwark-function.js';

/** AWS's guidance for SQS event sources, which cdk-nag's LambdaEventSourceSQSVisibilityTimeout checks. */
export const minimumVisibilityToTimeoutRatio = 6;

/**
 * The key calls SQS makes with a caller's credentials: GenerateDataKey to encrypt a sent message,
 * Decrypt to read one (and, per AWS's SQS SSE guidance, for senders too). Producers and workers (which
 * consume and also send to their DLQ) both need exactly these.
 */
const queueKeyActions = ['kms:GenerateDataKey', 'kms:Decrypt'];

/** The SQS calls a worker makes on its own queue: the event source mapping's polling plus visibility backoff. */
export const consumerQueueActions = [
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:GetQueueAttributes',
];

export interface BulwarkWorkerQueueProps {
  /** The worker's name, its Powertools service name, e.g. `email-worker`. */
  readonly name: string;
  /** Queue and function settings, from `functions/workers.ts`. */
  readonly definition: WorkerDefinition;
  /** The customer-managed key encrypting both queues; every grant is usable only through SQS. */
  readonly encryptionKey: kms.IKey;
  /**
   * Where the DLQ alarm (and its recovery) is published.
   * @default - the alarm has no action
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Extra environment variables of the worker; the queue URLs are not among them (see `queueEnvironment`).
   * @default - none
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * Files copied into the worker's bundle (e.g. templates it reads at run time).
   * @default - none
   */
  readonly bundledFiles?: readonly BundledFile[];
  /**
   * The folder the worker is bundled in, against which a relative `definition.entry` and `bundledFiles`
   * resolve (see `BulwarkFunctionProps.projectRoot`).
   * @default - the Bulwark checkout (the folder above lib/)
   */
  readonly projectRoot?: string;
  /**
   * The lock file of the bundle's dependencies (see `BulwarkFunctionProps.depsLockFilePath`).
   * @default - `package-lock.json` in `projectRoot`
   */
  readonly depsLockFilePath?: string;
  /**
   * The email transport the worker's bundle carries (see `BulwarkFunctionProps.emailTransport`).
   * @default 'ses'
   */
  readonly emailTransport?: 'ses' | 'smtp';
  /**
   * The CloudWatch namespace of the worker's metrics (see `BulwarkFunctionProps.metricNamespace`).
   * @default - `Bulwark/<stack name>`, the stack's own (as the other constructs' default)
   */
  readonly metricNamespace?: string;
  /**
   * How long an undelivered message stays in the DLQ for someone to look at it.
   * @default Duration.days(14)
   */
  readonly deadLetterRetention?: Duration;
  /**
   * How long the worker's log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the worker's log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * What happens to the queue and its DLQ (and the messages waiting in them) when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** Every problem with a worker definition that the queue or the mapping would reject or misbehave with. */
export function workerDefinitionProblems(definition: WorkerDefinition): string[] {
  const problems: string[] = [];
  if (definition.visibilityTimeoutSec < minimumVisibilityToTimeoutRatio * definition.timeoutSec) {
    problems.push(
      `visibilityTimeoutSec (${definition.visibilityTimeoutSec}) must be at least ${minimumVisibilityToTimeoutRatio} x timeoutSec (${definition.timeoutSec})`,
    );
  }
  if (definition.visibilityTimeoutSec > 43_200) problems.push('visibilityTimeoutSec must be at most 43200');
  if (!Number.isInteger(definition.maxReceiveCount) || definition.maxReceiveCount < 1) {
    problems.push('maxReceiveCount must be a positive integer');
  }
  if (!Number.isInteger(definition.batchSize) || definition.batchSize < 1 || definition.batchSize > 10) {
    problems.push('batchSize must be an integer from 1 to 10 (no batching window is configured)');
  }
  if (
    !Number.isInteger(definition.maxConcurrency) ||
    definition.maxConcurrency < 2 ||
    definition.maxConcurrency > 1000
  ) {
    problems.push('maxConcurrency must be an integer from 2 to 1000 (the event source mapping limits)');
  }
  return problems;
}

/**
 * An SSL-only, KMS-encrypted queue whose messages move to an equally protected DLQ after
 * `maxReceiveCount` receives, an alarm on any message in that DLQ, and the worker function reading
 * the queue through an event source mapping with partial batch responses. The worker may consume its
 * queue, change visibility (retry backoff) and send to its DLQ (messages that can never succeed);
 * producers get `grantSendMessages`.
 *
 * @example
 * const email = new BulwarkWorkerQueue(this, 'EmailWorker', {
 *   name: 'email-worker',
 *   definition: workers['email-worker'],
 *   encryptionKey: queueKey.key,
 *   alarmTopic: alarms.topic,
 * });
 * email.grantSendMessages(users.lambdaFunction);
 */
export class BulwarkWorkerQueue extends Construct {
  /** The work queue. */
  public readonly queue: sqs.Queue;
  /** Where messages go after `maxReceiveCount` receives, or when the worker dead-letters them itself. */
  public readonly deadLetterQueue: sqs.Queue;
  /** The worker function. */
  public readonly worker: BulwarkFunction;
  /** The event source mapping from the queue to the worker. */
  public readonly eventSourceMapping: lambda.EventSourceMapping;
  /** Any message visible in the DLQ. */
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  /** The key encrypting both queues. */
  public readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: BulwarkWorkerQueueProps) {
    super(scope, id);
    const { definition } = props;
    const problems = workerDefinitionProblems(definition);
    if (problems.length > 0) {
      throw new Error(`Invalid BulwarkWorkerQueue props (${props.name}): ${problems.join('; ')}`);
    }
    this.encryptionKey = props.encryptionKey;
    const protection = {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.encryptionKey,
      enforceSSL: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    } as const;
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      ...protection,
      retentionPeriod: props.deadLetterRetention ?? Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'Serverless-SQSRedrivePolicy',
      reason:
        'This is the dead-letter queue: its messages stay here (14 days, alarmed) for a person to inspect and redrive; a DLQ of the DLQ would only move them.',
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      ...protection,
      visibilityTimeout: Duration.seconds(definition.visibilityTimeoutSec),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: definition.maxReceiveCount },
    });

    this.worker = new BulwarkFunction(this, 'Worker', {
      entry: definition.entry,
      serviceName: props.name,
      memoryMb: definition.memoryMb,
      timeoutSec: definition.timeoutSec,
      ...(props.environment === undefined ? {} : { environment: props.environment }),
      ...(props.bundledFiles === undefined ? {} : { bundledFiles: props.bundledFiles }),
      ...(props.projectRoot === undefined ? {} : { projectRoot: props.projectRoot }),
      ...(props.depsLockFilePath === undefined ? {} : { depsLockFilePath: props.depsLockFilePath }),
      ...(props.logRetention === undefined ? {} : { logRetention: props.logRetention }),
      ...(props.logRemovalPolicy === undefined ? {} : { logRemovalPolicy: props.logRemovalPolicy }),
      ...(props.emailTransport === undefined ? {} : { emailTransport: props.emailTransport }),
      ...(props.metricNamespace === undefined ? {} : { metricNamespace: props.metricNamespace }),
    });
    const fn = this.worker.lambdaFunction;
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'Invoked only synchronously by its SQS event source mapping; failed records stay on the queue and SQS redrives them to the DLQ. A function DLQ only receives failed asynchronous invocations.',
    });
    this.queue.grant(fn, ...consumerQueueActions);
    this.deadLetterQueue.grant(fn, 'sqs:SendMessage');
    this.grantKeyThroughSqs(fn);

    this.eventSourceMapping = new lambda.EventSourceMapping(this, 'EventSource', {
      target: fn,
      eventSourceArn: this.queue.queueArn,
      batchSize: definition.batchSize,
      maxConcurrency: definition.maxConcurrency,
      // The worker answers with batchItemFailures: only the failed records come back.
      reportBatchItemFailures: true,
    });
    // Polling starts as soon as the mapping exists: the role must already allow it.
    const policy = this.worker.role.node.tryFindChild('DefaultPolicy');
    if (policy !== undefined) this.eventSourceMapping.node.addDependency(policy);
    Validations.of(this.eventSourceMapping).acknowledge({
      id: 'Serverless-LambdaEventSourceMappingDestination',
      reason:
        "SQS event source mappings take no DestinationConfig (Lambda supports on-failure destinations only for Kinesis, DynamoDB Streams, MSK and self-managed Kafka, and rejects it for SQS); the queue's redrive policy to its DLQ is the on-failure destination.",
    });

    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: 'Maximum',
        label: `${props.name} DLQ messages`,
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `A ${props.name} message ran out of attempts or can never succeed: it waits in the DLQ for a person.`,
    });
    if (props.alarmTopic !== undefined) {
      this.deadLetterAlarm.addAlarmAction(new actions.SnsAction(props.alarmTopic));
      this.deadLetterAlarm.addOkAction(new actions.SnsAction(props.alarmTopic));
    }
  }

  /**
   * The queue URLs a producer or the worker finds in its environment, named by the caller's
   * environment schema (e.g. `{ queue: 'EMAIL_QUEUE_URL', deadLetterQueue: 'EMAIL_DLQ_URL' }`).
   */
  public queueEnvironment(names: { queue: string; deadLetterQueue?: string }): Record<string, string> {
    return {
      [names.queue]: this.queue.queueUrl,
      ...(names.deadLetterQueue === undefined
        ? {}
        : { [names.deadLetterQueue]: this.deadLetterQueue.queueUrl }),
    };
  }

  /**
   * `sqs:SendMessage` on the work queue only (SendMessageBatch is authorised by it), and the key's
   * GenerateDataKey/Decrypt only through SQS. Narrower than `Queue.grantSendMessages`, which also
   * grants queue attributes and `kms:ReEncrypt*`/`kms:GenerateDataKey*` usable outside SQS.
   */
  public grantSendMessages(grantee: iam.IGrantable): void {
    this.queue.grant(grantee, 'sqs:SendMessage');
    this.grantKeyThroughSqs(grantee);
  }

  /** Identical statements are merged, so a function that produces to two queues gets this once. */
  private grantKeyThroughSqs(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: queueKeyActions,
        resources: [this.encryptionKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `sqs.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
  }
}
