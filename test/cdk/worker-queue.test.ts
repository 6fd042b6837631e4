// Assertion tests for the worker-queue construct: redrive, encryption, SSL-only policies, event source, DLQ alarm, IAM.
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { NagRuleCompliance, rules } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { type WorkerDefinition, type WorkerName, workerNames, workers } from '../../functions/workers.js';
import {
  BulwarkWorkerQueue,
  consumerQueueActions,
  minimumVisibilityToTimeoutRatio,
  workerDefinitionProblems,
} from '../../lib/worker-queue.js';
import { projectApp } from '../helpers/cdk-app.js';
import { canonicalJson, grantsOf } from '../helpers/iam.js';

interface Built {
  stack: Stack;
  template: Template;
  workerQueue: BulwarkWorkerQueue;
  key: kms.Key;
  topic: sns.Topic;
}

function build(
  name: WorkerName,
  definition: WorkerDefinition = workers[name],
  producer?: (stack: Stack, workerQueue: BulwarkWorkerQueue) => void,
): Built {
  // Bundling is irrelevant here (test/cdk/bundling.test.ts bundles for real); skipping it keeps this fast.
  const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'Topic');
  const workerQueue = new BulwarkWorkerQueue(stack, 'Worker', {
    name,
    definition,
    encryptionKey: key,
    alarmTopic: topic,
  });
  producer?.(stack, workerQueue);
  return { stack, template: Template.fromStack(stack), workerQueue, key, topic };
}

function logicalId(stack: Stack, token: string): string {
  const resolved = stack.resolve(token) as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
  const id = resolved.Ref ?? resolved['Fn::GetAtt']?.[0];
  if (id === undefined) throw new Error(`Not a reference: ${JSON.stringify(resolved)}`);
  return id;
}

function viaSqs(actions: string[], key: kms.Key, stack: Stack): Record<string, unknown> {
  return {
    Action: actions.length === 1 ? actions[0] : actions,
    Effect: 'Allow',
    Resource: stack.resolve(key.keyArn),
    Condition: {
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['sqs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
      },
    },
  };
}

const workerCases = workerNames.map((name) => [name, workers[name]] as const);

describe.each(workerCases)('BulwarkWorkerQueue for the %s', (name, definition) => {
  const { stack, template, workerQueue, key, topic } = build(name);
  const queueId = logicalId(stack, workerQueue.queue.queueArn);
  const dlqId = logicalId(stack, workerQueue.deadLetterQueue.queueArn);
  const queues = template.findResources('AWS::SQS::Queue');

  it(`redrives to its DLQ after ${definition.maxReceiveCount} receives (its attempts)`, () => {
    expect(queues[queueId]?.Properties?.RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] },
      maxReceiveCount: definition.maxReceiveCount,
    });
    expect(queues[dlqId]?.Properties?.RedrivePolicy).toBeUndefined();
    expect(queues[dlqId]?.Properties?.MessageRetentionPeriod).toBe(14 * 24 * 3600);
  });

  it('retains the queue and its DLQ by default, with the messages in them', () => {
    expect(Object.keys(queues)).toHaveLength(2);
    for (const queue of Object.values(queues)) {
      expect(queue.DeletionPolicy).toBe('Retain');
      expect(queue.UpdateReplacePolicy).toBe('Retain');
    }
  });

  it('encrypts the queue and its DLQ with the given customer-managed key', () => {
    for (const id of [queueId, dlqId]) {
      expect(queues[id]?.Properties?.KmsMasterKeyId).toEqual(stack.resolve(key.keyArn));
    }
  });

  it('refuses every request to either queue that is not over TLS', () => {
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy'));
    const denied = policies.flatMap((policy) =>
      (policy.Properties.PolicyDocument.Statement as Record<string, unknown>[])
        .filter(
          (statement) =>
            statement.Effect === 'Deny' &&
            JSON.stringify(statement.Condition) ===
              JSON.stringify({ Bool: { 'aws:SecureTransport': 'false' } }),
        )
        .map(() => policy.Properties.Queues[0]),
    );
    expect(denied).toEqual(expect.arrayContaining([{ Ref: queueId }, { Ref: dlqId }]));
  });

  it(`has a visibility timeout of at least ${minimumVisibilityToTimeoutRatio} x the worker's timeout`, () => {
    const visibility = queues[queueId]?.Properties?.VisibilityTimeout as number;
    expect(visibility).toBe(definition.visibilityTimeoutSec);
    expect(visibility).toBeGreaterThanOrEqual(minimumVisibilityToTimeoutRatio * definition.timeoutSec);
  });

  it("passes cdk-nag's LambdaEventSourceSQSVisibilityTimeout rule (not in any pack, so applied here)", () => {
    const mapping = workerQueue.eventSourceMapping.node.defaultChild as lambda.CfnEventSourceMapping;
    expect(rules.lambda.LambdaEventSourceSQSVisibilityTimeout(mapping)).toBe(NagRuleCompliance.COMPLIANT);
  });

  it(`reads batches of ${definition.batchSize} with partial batch responses and at most ${definition.maxConcurrency} at once`, () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [queueId, 'Arn'] },
      FunctionName: { Ref: logicalId(stack, workerQueue.worker.lambdaFunction.functionName) },
      BatchSize: definition.batchSize,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: definition.maxConcurrency },
    });
  });

  it('runs the worker with the memory and timeout of the worker table', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: definition.memoryMb,
      Timeout: definition.timeoutSec,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: name }) },
    });
  });

  it('alarms on the first message visible in the DLQ, notifying the topic on alarm and recovery', () => {
    const topicRef = stack.resolve(topic.topicArn);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [
        Match.objectLike({
          MetricStat: {
            Metric: {
              MetricName: 'ApproximateNumberOfMessagesVisible',
              Namespace: 'AWS/SQS',
              Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }],
            },
            Period: 300,
            Stat: 'Maximum',
          },
        }),
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicRef],
      OKActions: [topicRef],
    });
  });

  it('lets the worker consume its queue, dead-letter to its DLQ and use the key only through SQS', () => {
    const roleId = logicalId(stack, workerQueue.worker.role.roleArn);
    const [policy] = Object.values(
      template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
    );
    const statements: unknown[] = policy?.Properties?.PolicyDocument?.Statement ?? [];
    const logWrites = statements.filter((statement) => canonicalJson(statement).includes('"logs:'));
    expect(grantsOf(logWrites).map((grant) => JSON.parse(grant).Action)).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ]);
    expect(grantsOf(statements)).toEqual(
      grantsOf([
        ...logWrites,
        { Action: consumerQueueActions, Effect: 'Allow', Resource: { 'Fn::GetAtt': [queueId, 'Arn'] } },
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
        viaSqs(['kms:GenerateDataKey', 'kms:Decrypt'], key, stack),
      ]),
    );
  });
});

describe('BulwarkWorkerQueue.grantSendMessages', () => {
  it('grants SendMessage on the work queue only and the key only through SQS', () => {
    let role: iam.Role | undefined;
    const { stack, template, workerQueue, key } = build('email-worker', undefined, (scope, built) => {
      role = new iam.Role(scope, 'Producer', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      built.grantSendMessages(role);
    });
    if (role === undefined) throw new Error('The producer role was not built');
    const [policy] = Object.values(
      template.findResources('AWS::IAM::Policy', {
        Properties: { Roles: [{ Ref: logicalId(stack, role.roleArn) }] },
      }),
    );
    expect(grantsOf(policy?.Properties?.PolicyDocument?.Statement ?? [])).toEqual(
      grantsOf([
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: stack.resolve(workerQueue.queue.queueArn) },
        viaSqs(['kms:GenerateDataKey', 'kms:Decrypt'], key, stack),
      ]),
    );
  });
});

describe('workerDefinitionProblems', () => {
  const valid = workers['email-worker'];

  it('finds none in the worker table', () => {
    for (const name of workerNames) expect(workerDefinitionProblems(workers[name])).toEqual([]);
  });

  it('names every problem of a bad definition at once', () => {
    expect(
      workerDefinitionProblems({
        ...valid,
        visibilityTimeoutSec: 60,
        maxReceiveCount: 0,
        batchSize: 11,
        maxConcurrency: 1,
      }),
    ).toEqual([
      'visibilityTimeoutSec (60) must be at least 6 x timeoutSec (30)',
      'maxReceiveCount must be a positive integer',
      'batchSize must be an integer from 1 to 10 (no batching window is configured)',
      'maxConcurrency must be an integer from 2 to 1000 (the event source mapping limits)',
    ]);
  });

  it('makes the construct refuse a visibility timeout below 6 x the function timeout', () => {
    expect(() => build('email-worker', { ...valid, visibilityTimeoutSec: 179 })).toThrow(
      'Invalid BulwarkWorkerQueue props (email-worker): visibilityTimeoutSec (179) must be at least 6 x timeoutSec (30)',
    );
  });
});
