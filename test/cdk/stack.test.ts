// Assertion tests for the Bulwark stack: tables from the shared definitions, functions and routes from the route table.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as ses from 'aws-cdk-lib/aws-ses';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  apiRoutes,
  catchAllFunction,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
  routeKeyOf,
  routes,
} from '../../functions/routes.js';
import {
  type ScheduledFunctionName,
  scheduledFunctionNames,
  scheduledFunctions,
} from '../../functions/schedules.js';
import { type WorkerName, workerNames, workers } from '../../functions/workers.js';
import type { BulwarkFunction } from '../../lib/bulwark-function.js';
import {
  authFromContext,
  BulwarkStack,
  type BulwarkStackProps,
  cognitoDomainName,
  cognitoDomainNameProblems,
  contextBoolean,
  contextList,
  contextNumber,
  contextOptions,
  contextString,
  defaultEmailIdentity,
  isCognitoIssuer,
  parseAuthTokenUse,
  parseStage,
  refuseUnknownContext,
  type Stage,
  stages,
} from '../../lib/bulwark-stack.js';
import { tableKeyActions, tableKeyReadActions } from '../../lib/bulwark-table.js';
import { rotationActions } from '../../lib/secret-rotation.js';
import { consumerQueueActions } from '../../lib/worker-queue.js';
import { type KeyAttribute, type TableDefinition, tableDefinitions } from '../../middleware/store/tables.js';
import { projectApp, projectContext } from '../helpers/cdk-app.js';
import { canonicalJson, grantsOf } from '../helpers/iam.js';

/** An SES ARN in the stack's account, partition and region, as it writes them: `resource` parts follow `:`. */
const sesArn = (...resource: unknown[]) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':ses:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      ...resource,
    ],
  ],
});

/** The ARN of an SES identity as the stack writes it into policies and Cognito's email settings. */
const sesIdentityArn = (identity: string) => sesArn(`:identity/${identity}`);

/**
 * The ARN of the stack's SES configuration set as its policy names it: SES v2 SendEmail authorises the
 * configuration set a message names as well as the identity.
 */
function sesConfigurationSetArn(stack: BulwarkStack): unknown {
  const { emailConfigurationSet } = stack;
  if (emailConfigurationSet === undefined)
    throw new Error('The stack sends through no SES configuration set');
  return sesArn(':configuration-set/', stack.resolve(emailConfigurationSet.configurationSetName));
}

/**
 * Exactly the calls users and bookings make on the app table's items: GetItem, UpdateItem, DeleteItem and
 * TransactWriteItems, whose items IAM authorises as Put/Update/DeleteItem and ConditionCheckItem. No Query:
 * each of their queries names an index (`indexQueries`).
 */
const appModelActions = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:ConditionCheckItem',
];
const allowedActionPattern =
  /^(?:logs:(?:CreateLogStream|PutLogEvents)|dynamodb:(?:(?:Get|Put|Update|Delete|ConditionCheck)Item|Query)|kms:(?:Decrypt|DescribeKey|Encrypt|GenerateDataKey\w*|ReEncrypt(?:From|To)|GenerateMac)|sqs:(?:SendMessage|ReceiveMessage|DeleteMessage|ChangeMessageVisibility|GetQueueAttributes)|ses:SendEmail|sns:Publish|secretsmanager:(?:DescribeSecret|GetSecretValue|PutSecretValue|UpdateSecretVersionStage))$/;

type FunctionName = HttpFunctionName | WorkerName | ScheduledFunctionName | 'secret-rotation';
type SecretName = 'bookingsSigningSecret' | 'verificationLinkSecret';

/** Every function of the stack: the route table's, the worker table's, the scheduled ones and the rotation function. */
const allFunctionNames: FunctionName[] = [
  ...httpFunctionNames,
  ...workerNames,
  ...scheduledFunctionNames,
  'secret-rotation',
];

function isWorker(name: FunctionName): name is WorkerName {
  return (workerNames as string[]).includes(name);
}

function isHttpFunction(name: FunctionName): name is HttpFunctionName {
  return (httpFunctionNames as string[]).includes(name);
}

function isScheduled(name: FunctionName): name is ScheduledFunctionName {
  return (scheduledFunctionNames as string[]).includes(name);
}

function functionSettings(name: FunctionName): { memoryMb: number; timeoutSec: number } {
  if (isWorker(name)) return workers[name];
  if (isHttpFunction(name)) return httpFunctions[name];
  if (isScheduled(name)) return scheduledFunctions[name];
  return { memoryMb: 256, timeoutSec: 30 };
}

function bulwarkFunction(stack: BulwarkStack, name: FunctionName): BulwarkFunction {
  if (isWorker(name)) return stack.workers[name].worker;
  if (isHttpFunction(name)) return stack.functions[name];
  if (isScheduled(name)) return stack.bookingEventSweeper.function;
  return stack.secretRotation.rotationFunction;
}

/**
 * What each function may do beyond its log group: pinned here by hand, so widening a grant in the stack
 * (or in the route, worker or scheduled-function table it reads) is a reviewed change of this table.
 */
interface Access {
  /** Calls on the envelope-encryption key. */
  readonly dataKey?: readonly string[];
  /** The `purpose` those calls must carry in their KMS encryption context; any data key without. */
  readonly dataKeyPurpose?: string;
  readonly blindIndex?: boolean;
  /** Queues it sends to (producers). */
  readonly sends?: readonly WorkerName[];
  /** The queue it consumes (and whose DLQ it dead-letters to). */
  readonly consumes?: WorkerName;
  readonly sesSendEmail?: boolean;
  readonly smsPublish?: boolean;
  readonly rotates?: readonly SecretName[];
  /** Secrets it reads at run time (GetSecretValue, and no DescribeSecret, on exactly those). */
  readonly readsSecrets?: readonly SecretName[];
  /** Calls on each table alone, no index: exactly those, so an added or a lost one fails. */
  readonly tableCalls?: readonly {
    readonly table: TableDefinition['id'];
    readonly actions: readonly string[];
  }[];
  /** Indexes it queries, each by name: `dynamodb:Query` on those indexes alone, never `index/*`. */
  readonly indexQueries?: readonly { readonly table: TableDefinition['id']; readonly index: string }[];
}

const expectedAccess: Record<FunctionName, Access> = {
  // One item of each table by key: no write, query, scan or index.
  health: {
    tableCalls: [
      { table: 'app', actions: ['dynamodb:GetItem'] },
      { table: 'toolkit', actions: ['dynamodb:GetItem'] },
    ],
  },
  users: {
    dataKey: ['kms:GenerateDataKey', 'kms:Decrypt'],
    blindIndex: true,
    sends: ['email-worker', 'webhook-worker'],
    readsSecrets: ['bookingsSigningSecret', 'verificationLinkSecret'],
    tableCalls: [
      { table: 'app', actions: appModelActions },
      // Rate limits, SMS budgets, API keys, service nonces, the subscriptions its events fan out to, and a
      // deleted person's endpoints removed (a condition check where a closed owner's count counts none).
      {
        table: 'toolkit',
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:Query',
        ],
      },
    ],
    // Users in order; a deleted person's webhook endpoints.
    indexQueries: [
      { table: 'app', index: 'gsi1' },
      { table: 'toolkit', index: 'gsi1' },
    ],
  },
  bookings: {
    sends: ['webhook-worker'],
    readsSecrets: ['bookingsSigningSecret'],
    tableCalls: [
      { table: 'app', actions: appModelActions },
      // Rate limits, API keys, the users circuit, idempotency records and the subscriptions its events fan
      // out to: no condition check (its transactions are on the app table).
      {
        table: 'toolkit',
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
        ],
      },
    ],
    // Every booking in order; one user's bookings.
    indexQueries: [
      { table: 'app', index: 'gsi1' },
      { table: 'app', index: 'gsi2' },
    ],
  },
  // Decrypt only for a registration's replay, which reads the endpoint's secret again; both calls only
  // on data keys of signing secrets. Written out, not imported: changing the purpose would leave every
  // secret sealed under the old one unreadable to this function.
  webhooks: {
    dataKey: ['kms:GenerateDataKey', 'kms:Decrypt'],
    dataKeyPurpose: 'webhook-signing-secret',
    // Endpoints, their transactions (a registration's tombstone check among them) and deliveries; rate
    // limits, API keys and idempotency records.
    tableCalls: [
      {
        table: 'toolkit',
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:Query',
        ],
      },
    ],
    // An owner's endpoints.
    indexQueries: [{ table: 'toolkit', index: 'gsi1' }],
  },
  // Answers 404/405 from the route table in its bundle: nothing beyond its own log group.
  'catch-all': {},
  // Its user's item by key; the providers' circuits and idempotency records: no query, no transaction.
  'email-worker': {
    consumes: 'email-worker',
    // Its own queue: a send deferred while the provider's circuit is open is sent back there.
    sends: ['email-worker'],
    sesSendEmail: true,
    smsPublish: true,
    tableCalls: [
      { table: 'app', actions: ['dynamodb:GetItem'] },
      {
        table: 'toolkit',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      },
    ],
  },
  'webhook-worker': {
    dataKey: ['kms:Decrypt'],
    consumes: 'webhook-worker',
    // Its own queue: a delivery deferred while the endpoint's circuit is open is sent back there.
    sends: ['webhook-worker', 'email-worker'],
    // An owner's user item by key; endpoints and deliveries by key, the endpoints' circuits and idempotency
    // records: no query, no condition check.
    tableCalls: [
      { table: 'app', actions: ['dynamodb:GetItem'] },
      {
        table: 'toolkit',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      },
    ],
  },
  'secret-rotation': { rotates: ['bookingsSigningSecret', 'verificationLinkSecret'] },
  // The pending-events index, each booking and user by key and its mark, the subscriptions its fan-out reads, and
  // the webhook queue: no scan, no other index, no delete, no transaction.
  'booking-event-sweeper': {
    sends: ['webhook-worker'],
    indexQueries: [{ table: 'app', index: 'gsi3' }],
    tableCalls: [
      { table: 'app', actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'] },
      { table: 'toolkit', actions: ['dynamodb:Query'] },
    ],
  },
};

function oneOrMany(actions: readonly string[]): string | string[] {
  return actions.length === 1 ? (actions[0] as string) : [...actions];
}

function expectedStatements(stack: BulwarkStack, name: FunctionName): unknown[] {
  const access = expectedAccess[name];
  const resolve = (token: string) => stack.resolve(token);
  const viaService = (service: string) => ({
    StringEquals: {
      'kms:ViaService': { 'Fn::Join': ['', [`${service}.`, { Ref: 'AWS::Region' }, '.amazonaws.com']] },
    },
  });
  const statements: unknown[] = [
    // Instead of AWSLambdaBasicExecutionRole: writes to its own log group only.
    {
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Effect: 'Allow',
      Resource: resolve(bulwarkFunction(stack, name).logGroup.logGroupArn),
    },
  ];
  // On the table alone: no item call ever applies to an index, and queries name theirs.
  for (const { table, actions } of access.tableCalls ?? []) {
    statements.push({
      Action: oneOrMany(actions),
      Effect: 'Allow',
      Resource: resolve(stack.tables[table].table.tableArn),
    });
  }
  for (const { table, index } of access.indexQueries ?? []) {
    statements.push({
      Action: 'dynamodb:Query',
      Effect: 'Allow',
      Resource: { 'Fn::Join': ['', [resolve(stack.tables[table].table.tableArn), `/index/${index}`]] },
    });
  }
  const writesByKey = (access.tableCalls ?? []).some(({ actions }) =>
    actions.some((action) => /^dynamodb:(?:Put|Update|Delete)Item$/.test(action)),
  );
  if (access.indexQueries || access.tableCalls) {
    statements.push({
      Action: tableKeyReadActions,
      Effect: 'Allow',
      Resource: resolve(stack.tableKey.key.keyArn),
      Condition: viaService('dynamodb'),
    });
  }
  // Both tables share one key; IAM merges the identical statements into one.
  if (writesByKey) {
    statements.push({
      Action: tableKeyActions,
      Effect: 'Allow',
      Resource: resolve(stack.tableKey.key.keyArn),
      Condition: viaService('dynamodb'),
    });
  }
  if (access.dataKey) {
    statements.push({
      Action: oneOrMany(access.dataKey),
      Effect: 'Allow',
      Resource: resolve(stack.dataKey.key.keyArn),
      ...(access.dataKeyPurpose === undefined
        ? {}
        : { Condition: { StringEquals: { 'kms:EncryptionContext:purpose': access.dataKeyPurpose } } }),
    });
  }
  if (access.blindIndex) {
    statements.push({
      Action: 'kms:GenerateMac',
      Effect: 'Allow',
      Resource: resolve(stack.blindIndexKey.key.keyArn),
    });
  }
  if (access.consumes) {
    const queue = stack.workers[access.consumes];
    statements.push(
      { Action: consumerQueueActions, Effect: 'Allow', Resource: resolve(queue.queue.queueArn) },
      { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: resolve(queue.deadLetterQueue.queueArn) },
    );
  }
  for (const worker of access.sends ?? []) {
    statements.push({
      Action: 'sqs:SendMessage',
      Effect: 'Allow',
      Resource: resolve(stack.workers[worker].queue.queueArn),
    });
  }
  // One statement for every queue: they share the queue key.
  if (access.consumes || access.sends) {
    statements.push({
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Effect: 'Allow',
      Resource: resolve(stack.queueKey.key.keyArn),
      Condition: viaService('sqs'),
    });
  }
  if (access.sesSendEmail) {
    statements.push({
      Action: 'ses:SendEmail',
      Effect: 'Allow',
      Resource: [sesIdentityArn('example.com'), sesConfigurationSetArn(stack)],
    });
  }
  if (access.smsPublish) {
    // Phone numbers have no ARN: every SNS ARN (topics, endpoints) is excluded instead of allowing `*`.
    statements.push({
      Action: 'sns:Publish',
      Effect: 'Allow',
      NotResource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sns:*:*:*']] },
    });
  }
  for (const secret of access.readsSecrets ?? []) {
    statements.push({
      Action: 'secretsmanager:GetSecretValue',
      Effect: 'Allow',
      Resource: resolve(stack[secret].secretArn),
    });
  }
  for (const secret of access.rotates ?? []) {
    statements.push({ Action: rotationActions, Effect: 'Allow', Resource: resolve(stack[secret].secretArn) });
  }
  return statements;
}

/** The variables each function's code reads (functions/shared/environment.ts), exactly. */
function expectedEnvironment(stack: BulwarkStack, name: FunctionName): Record<string, unknown> {
  const resolve = (token: string) => stack.resolve(token);
  const base = {
    NODE_OPTIONS: '--enable-source-maps',
    POWERTOOLS_SERVICE_NAME: name,
    POWERTOOLS_LOG_LEVEL: 'INFO',
    // The stack's own namespace, which its alarms and dashboard read (observability.test.ts).
    POWERTOOLS_METRICS_NAMESPACE: 'Bulwark/Bulwark-dev',
  };
  // Neither reads a table or holds a key.
  if (name === 'secret-rotation' || name === catchAllFunction) return base;
  const tablesAndStage = {
    APP_TABLE_NAME: resolve(stack.tables.app.table.tableName),
    TOOLKIT_TABLE_NAME: resolve(stack.tables.toolkit.table.tableName),
    BULWARK_STAGE: 'dev',
  };
  const queueUrl = (worker: WorkerName) => resolve(stack.workers[worker].queue.queueUrl);
  const dlqUrl = (worker: WorkerName) => resolve(stack.workers[worker].deadLetterQueue.queueUrl);
  const dataKeyId = { KMS_KEY_ID: resolve(stack.dataKey.key.keyArn) };
  const auth = {
    AUTH_ISSUER: resolve(stack.userPool.issuer),
    AUTH_CLIENT_IDS: {
      'Fn::Join': [
        '',
        [
          resolve(stack.userPool.humanClient.userPoolClientId),
          ',',
          resolve(stack.userPool.m2mClient.userPoolClientId),
        ],
      ],
    },
    AUTH_TOKEN_USE: 'access',
  };
  // Secrets by ARN only, read at run time: no secret value is ever part of a function's configuration.
  const signing = {
    SERVICE_SIGNING_SECRET_ARN_BOOKINGS: resolve(stack.bookingsSigningSecret.secretArn),
  };
  const byFunction: Record<
    Exclude<FunctionName, 'secret-rotation' | typeof catchAllFunction>,
    Record<string, unknown>
  > = {
    health: {},
    // Publishes as bookings does, with no auth, key or signing secret: it answers no request.
    'booking-event-sweeper': { WEBHOOK_QUEUE_URL: queueUrl('webhook-worker') },
    users: {
      ...auth,
      ...signing,
      ...dataKeyId,
      KMS_BLIND_INDEX_KEY_ID: resolve(stack.blindIndexKey.key.keyArn),
      // Registration enqueues the welcome and verification emails, with links to this API.
      EMAIL_QUEUE_URL: queueUrl('email-worker'),
      APP_BASE_URL: resolve(stack.httpApi.url),
      VERIFICATION_LINK_SECRET_ARN: resolve(stack.verificationLinkSecret.secretArn),
      WEBHOOK_QUEUE_URL: queueUrl('webhook-worker'),
      // SMS codes go only to US numbers, at most 100 an hour and 50 per region, unless the stack is told otherwise.
      SMS_REGIONS: 'US',
      SMS_PER_HOUR: '100',
      SMS_PER_REGION_PER_HOUR: '50',
    },
    bookings: {
      ...auth,
      ...signing,
      // Bookings checks users through the stack's own HTTP API, signed.
      USERS_API_URL: resolve(stack.httpApi.url),
      WEBHOOK_QUEUE_URL: queueUrl('webhook-worker'),
    },
    webhooks: { ...auth, ...dataKeyId },
    'email-worker': {
      EMAIL_QUEUE_URL: queueUrl('email-worker'),
      EMAIL_DLQ_URL: dlqUrl('email-worker'),
      EMAIL_TRANSPORT: 'ses',
      EMAIL_FROM: 'Bulwark <noreply@example.com>',
      // By name, which CloudFormation generates: the SES transport sends every message with it.
      SES_CONFIGURATION_SET: resolve(
        (stack.emailConfigurationSet as ses.ConfigurationSet).configurationSetName,
      ),
      SMS_TRANSPORT: 'sns',
    },
    'webhook-worker': {
      ...dataKeyId,
      WEBHOOK_QUEUE_URL: queueUrl('webhook-worker'),
      WEBHOOK_DLQ_URL: dlqUrl('webhook-worker'),
      EMAIL_QUEUE_URL: queueUrl('email-worker'),
    },
  };
  return { ...base, ...tablesAndStage, ...byFunction[name] };
}

// Tuples, so that test names show bare values (`the app table`, `sends GET /health to the health function`).
const tableCases = tableDefinitions.map((definition) => [definition.id, definition] as const);
const routeCases = apiRoutes.map((route) => [routeKeyOf(route), route.function, route] as const);

/** A template resource; `Properties` is always present (empty when the template has none). */
interface Resource {
  readonly Properties: Record<string, unknown>;
  readonly [key: string]: unknown;
}

interface Synthesised {
  stack: BulwarkStack;
  template: Template;
}

/** Where prod returns people after sign-in: prod refuses any localhost URL. */
const prodCallbackUrls = ['https://app.example.org/callback'];
/** The sender prod requires: without one it would mail from example.com and Cognito's built-in sender. */
const prodEmail = { identity: 'example.org' };

const synthesisedByStageAndContext = new Map<string, Synthesised>();

/**
 * The stage's stack and template, synthesised once per stage and context for the whole file: each synthesis
 * takes about a second, and the tests only read the stack and its template, never add to them.
 */
function synthesise(stage: Stage, context: Record<string, unknown> = {}): Synthesised {
  const key = JSON.stringify([stage, context]);
  const known = synthesisedByStageAndContext.get(key);
  if (known !== undefined) return known;
  const app = projectApp({ context });
  const stack = new BulwarkStack(app, `Bulwark-${stage}`, {
    stage,
    ...(stage === 'prod' ? { callbackUrls: prodCallbackUrls, email: prodEmail } : {}),
  });
  const synthesised = { stack, template: Template.fromStack(stack) };
  synthesisedByStageAndContext.set(key, synthesised);
  return synthesised;
}

/** A resource of a template as `cdk synth` writes it. */
interface TemplateResource {
  readonly Type: string;
  readonly Properties: Record<string, unknown>;
}

/** The keys `cdk synth` adds to the app's context itself (bundling none of the stacks, as the tests do not need it). */
const cliContext = {
  'aws:cdk:enable-path-metadata': true,
  'aws:cdk:enable-asset-metadata': true,
  'aws:cdk:version-reporting': true,
  'aws:cdk:bundling-stacks': [],
};

/** How a run of the CDK app ended: its exit status (null when a signal ended it) and what it wrote to stderr. */
interface CdkAppRun {
  readonly status: number | null;
  readonly stderr: string;
}

/**
 * Runs the CDK app (bin/app.ts) as `cdk synth` does, with `context` as `-c` options over cdk.json's context and
 * the keys the CLI adds (no bundling), and resolves to the process and, when it succeeded, the Bulwark-<stage>
 * template. Asynchronous, so that a test's runs (each a whole Node process) go side by side.
 */
async function synthesiseCdkApp(context: Record<string, unknown>): Promise<{
  run: CdkAppRun;
  template: { Resources: Record<string, TemplateResource> } | undefined;
}> {
  const outdir = mkdtempSync(join(tmpdir(), 'bulwark-app-context-'));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({ ...projectContext, ...cliContext, ...context }),
        CDK_OUTDIR: outdir,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const [status] = (await once(child, 'close')) as [number | null];
    const run = { status, stderr };
    const stage = typeof context.stage === 'string' ? context.stage : 'dev';
    const template =
      run.status === 0
        ? JSON.parse(readFileSync(join(outdir, `Bulwark-${stage}.template.json`), 'utf8'))
        : undefined;
    return { run, template };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** A deployment's options recorded in cdk.json's context, in the shape README shows. */
const recordedContext = {
  sesIdentity: 'example.org',
  sesSandboxRecipients: ['ada@example.net', 'example.net'],
  callbackUrls: ['https://app.example.org/callback', 'https://admin.example.org/callback'],
  m2mScopes: ['bookings/read'],
  smsRegions: ['GB', 'GG'],
  smsPerHour: 200,
  signInCaseInsensitive: false,
  cognitoDomainName: 'bulwark-dev-2',
};

let recordedContextSynthesis: ReturnType<typeof synthesiseCdkApp> | undefined;

/**
 * The CDK app run once with the recorded options for the tests of those options and of the domain name: a run that
 * synthesises takes several seconds of CPU, the largest part building CloudFormation validation's engine.
 */
function synthesiseRecordedContext(): ReturnType<typeof synthesiseCdkApp> {
  recordedContextSynthesis ??= synthesiseCdkApp(recordedContext);
  return recordedContextSynthesis;
}

/** The logical id behind a token that resolves to `{ Ref }` or `{ Fn::GetAtt: [id, attr] }`. */
function logicalIdOf(stack: BulwarkStack, token: string): string {
  const resolved: unknown = stack.resolve(token);
  if (typeof resolved === 'object' && resolved !== null) {
    if ('Ref' in resolved && typeof resolved.Ref === 'string') return resolved.Ref;
    if ('Fn::GetAtt' in resolved && Array.isArray(resolved['Fn::GetAtt'])) {
      const [id] = resolved['Fn::GetAtt'];
      if (typeof id === 'string') return id;
    }
  }
  throw new Error(`Not a resource reference: ${JSON.stringify(resolved)}`);
}

function resourceOf(template: Template, type: string, logicalId: string): Resource {
  const resource = template.findResources(type)[logicalId];
  if (resource === undefined) throw new Error(`No ${type} with logical id ${logicalId}`);
  const { Properties = {}, ...rest } = resource;
  return { ...rest, Properties };
}

function keySchemaOf(partitionKey: KeyAttribute, sortKey: KeyAttribute): unknown[] {
  return [
    { AttributeName: partitionKey.name, KeyType: 'HASH' },
    { AttributeName: sortKey.name, KeyType: 'RANGE' },
  ];
}

function attributeDefinitionsOf(definition: TableDefinition): unknown[] {
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalSecondaryIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
  ];
  const unique = new Map(keys.map((key) => [key.name, key.type]));
  return [...unique].map(([name, type]) => ({ AttributeName: name, AttributeType: type }));
}

const byAttributeName = (a: unknown, b: unknown): number => canonicalJson(a).localeCompare(canonicalJson(b));

describe('BulwarkStack in the dev stage', () => {
  let dev: Synthesised;

  beforeAll(() => {
    dev = synthesise('dev');
  }, 60_000);

  function tableResource(definition: TableDefinition): Resource {
    const tableName = dev.stack.tables[definition.id].table.tableName;
    return resourceOf(dev.template, 'AWS::DynamoDB::GlobalTable', logicalIdOf(dev.stack, tableName));
  }

  it('creates exactly one table per shared definition', () => {
    dev.template.resourceCountIs('AWS::DynamoDB::GlobalTable', tableDefinitions.length);
    expect(tableDefinitions.map((definition) => definition.id).sort()).toEqual(['app', 'toolkit']);
  });

  describe.each(tableCases)('the %s table', (_id, definition) => {
    it('has the key schema of the shared definition', () => {
      expect(tableResource(definition).Properties.KeySchema).toEqual(
        keySchemaOf(definition.partitionKey, definition.sortKey),
      );
    });

    it('declares every key attribute of the table and its indexes with the shared type', () => {
      const declared = tableResource(definition).Properties.AttributeDefinitions;
      expect(Array.isArray(declared) && [...declared].sort(byAttributeName)).toEqual(
        attributeDefinitionsOf(definition).sort(byAttributeName),
      );
    });

    it('has exactly the GSIs of the shared definition, each with its projection', () => {
      expect(tableResource(definition).Properties.GlobalSecondaryIndexes).toEqual(
        definition.globalSecondaryIndexes.map((index) => ({
          IndexName: index.indexName,
          KeySchema: keySchemaOf(index.partitionKey, index.sortKey),
          Projection: { ProjectionType: index.projection ?? 'ALL' },
        })),
      );
    });

    it('expires items by the shared TTL attribute', () => {
      expect(tableResource(definition).Properties.TimeToLiveSpecification).toEqual({
        AttributeName: definition.timeToLiveAttribute,
        Enabled: true,
      });
    });

    it('has point-in-time recovery on', () => {
      expect(tableResource(definition).Properties.Replicas).toEqual([
        expect.objectContaining({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } }),
      ]);
    });

    it("is encrypted at rest with the stack's customer-managed table key", () => {
      const table = tableResource(definition);
      expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true, SSEType: 'KMS' });
      expect(table.Properties.Replicas).toEqual([
        expect.objectContaining({
          SSESpecification: { KMSMasterKeyId: dev.stack.resolve(dev.stack.tableKey.key.keyArn) },
        }),
      ]);
    });

    it('bills on demand (PAY_PER_REQUEST)', () => {
      expect(tableResource(definition).Properties.BillingMode).toBe('PAY_PER_REQUEST');
    });
  });

  it('creates table, data and queue keys, symmetric with rotation, an HMAC_256 blind-index key and the alarm topic key', () => {
    dev.template.resourceCountIs('AWS::KMS::Key', 5);
    for (const key of [dev.stack.tableKey.key, dev.stack.dataKey.key, dev.stack.queueKey.key]) {
      expect(
        resourceOf(dev.template, 'AWS::KMS::Key', logicalIdOf(dev.stack, key.keyArn)).Properties,
      ).toMatchObject({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT', EnableKeyRotation: true });
    }
    const blindIndexKey = dev.stack.blindIndexKey.key;
    expect(
      resourceOf(dev.template, 'AWS::KMS::Key', logicalIdOf(dev.stack, blindIndexKey.keyArn)).Properties,
    ).toMatchObject({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
  });

  it('creates one Lambda function per httpFunctions entry, per worker, per scheduled function and the rotation function', () => {
    dev.template.resourceCountIs('AWS::Lambda::Function', allFunctionNames.length);
  });

  it('runs the booking event sweeper every 5 minutes from an EventBridge schedule, which alone may invoke it', () => {
    const fn = dev.stack.bookingEventSweeper.function.lambdaFunction;
    const rule = dev.stack.bookingEventSweeper.rule;
    expect(
      Object.values(dev.template.findResources('AWS::Events::Rule')).map((resource) => resource.Properties),
    ).toEqual([
      {
        Description: 'Runs the booking-event-sweeper function every 5 minutes',
        ScheduleExpression: 'rate(5 minutes)',
        State: 'ENABLED',
        Targets: [{ Arn: dev.stack.resolve(fn.functionArn), Id: 'Target0' }],
      },
    ]);
    expect(
      Object.values(dev.template.findResources('AWS::Lambda::Permission'))
        .map((resource) => resource.Properties)
        .filter(
          (permission) =>
            canonicalJson(permission.FunctionName) === canonicalJson(dev.stack.resolve(fn.functionArn)),
        ),
    ).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: dev.stack.resolve(fn.functionArn),
        Principal: 'events.amazonaws.com',
        SourceArn: dev.stack.resolve(rule.ruleArn),
      },
    ]);
  });

  describe.each(allFunctionNames)('the %s function', (name) => {
    const settings = functionSettings(name);
    const access = expectedAccess[name];

    function functionResource(): Resource {
      const fn = bulwarkFunction(dev.stack, name);
      return resourceOf(
        dev.template,
        'AWS::Lambda::Function',
        logicalIdOf(dev.stack, fn.lambdaFunction.functionArn),
      );
    }

    function roleLogicalId(): string {
      return logicalIdOf(dev.stack, bulwarkFunction(dev.stack, name).role.roleArn);
    }

    function policyStatements(): unknown[] {
      const policies = Object.values(
        dev.template.findResources('AWS::IAM::Policy', {
          Properties: { Roles: [{ Ref: roleLogicalId() }] },
        }),
      );
      expect(policies).toHaveLength(1);
      const statements: unknown = policies[0]?.Properties?.PolicyDocument?.Statement;
      if (!Array.isArray(statements)) throw new Error('The policy has no statement list');
      return statements;
    }

    it('runs nodejs22.x on arm64 with the memory and timeout of its table', () => {
      expect(functionResource().Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: settings.memoryMb,
        Timeout: settings.timeoutSec,
      });
    });

    it('finds exactly the variables its code reads in its environment', () => {
      expect(functionResource().Properties.Environment).toEqual({
        Variables: expectedEnvironment(dev.stack, name),
      });
    });

    it('logs to its own log group kept for one month', () => {
      const logGroupId = logicalIdOf(dev.stack, bulwarkFunction(dev.stack, name).logGroup.logGroupArn);
      expect(functionResource().Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
      expect(resourceOf(dev.template, 'AWS::Logs::LogGroup', logGroupId).Properties.RetentionInDays).toBe(30);
    });

    it('has no wildcard action and no action outside the data, key, queue and mail calls it needs', () => {
      const actions = policyStatements().flatMap((statement) => {
        const action = (statement as { Action: unknown }).Action;
        return Array.isArray(action) ? action : [action];
      });
      expect(actions.length).toBeGreaterThan(0);
      for (const action of actions) {
        expect(action).not.toContain('*');
        expect(action).toMatch(allowedActionPattern);
      }
    });

    it('may make exactly the calls pinned for it, on exactly its resources', () => {
      const expected = expectedStatements(dev.stack, name);
      expect(grantsOf(policyStatements())).toEqual(grantsOf(expected));
    });

    it(`${access.dataKey ? 'may' : 'may not'} use the envelope-encryption key, and ${access.blindIndex ? 'may' : 'may not'} use the blind-index key`, () => {
      const onKey = (key: { keyArn: string }) =>
        policyStatements().filter(
          (statement) =>
            JSON.stringify((statement as { Resource: unknown }).Resource) ===
            JSON.stringify(dev.stack.resolve(key.keyArn)),
        );
      expect(onKey(dev.stack.dataKey.key)).toHaveLength(access.dataKey ? 1 : 0);
      expect(onKey(dev.stack.blindIndexKey.key)).toHaveLength(access.blindIndex ? 1 : 0);
    });

    it('has no AWS-managed policy and may be assumed only by Lambda', () => {
      const role = resourceOf(dev.template, 'AWS::IAM::Role', roleLogicalId());
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument).toEqual({
        Statement: [
          { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
        ],
        Version: '2012-10-17',
      });
    });
  });

  it('updates the webhook worker before the webhooks function, whose route rotates secrets the worker signs with', () => {
    const webhooks = resourceOf(
      dev.template,
      'AWS::Lambda::Function',
      logicalIdOf(dev.stack, dev.stack.functions.webhooks.lambdaFunction.functionArn),
    );
    expect(webhooks.DependsOn).toContain(
      logicalIdOf(dev.stack, dev.stack.workers['webhook-worker'].worker.lambdaFunction.functionArn),
    );
  });

  it('updates the email worker before the users function, whose SMS codes carry a field only this worker reads', () => {
    const users = resourceOf(
      dev.template,
      'AWS::Lambda::Function',
      logicalIdOf(dev.stack, dev.stack.functions.users.lambdaFunction.functionArn),
    );
    expect(users.DependsOn).toContain(
      logicalIdOf(dev.stack, dev.stack.workers['email-worker'].worker.lambdaFunction.functionArn),
    );
  });

  it('lets the public health function only read one item of each table by key: no write, query or scan', () => {
    const roleId = logicalIdOf(dev.stack, dev.stack.functions.health.role.roleArn);
    const [policy] = Object.values(
      dev.template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
    );
    const statements = (policy?.Properties?.PolicyDocument?.Statement ?? []) as { Action: unknown }[];
    const actions = new Set(statements.flatMap((statement) => [statement.Action].flat()));
    expect([...actions].sort()).toEqual([
      'dynamodb:GetItem',
      'kms:Decrypt',
      'kms:DescribeKey',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ]);
  });

  it('lets the email worker only GetItem on the app table (no index, query, scan or write): whether a user still exists', () => {
    const roleId = logicalIdOf(dev.stack, dev.stack.workers['email-worker'].worker.role.roleArn);
    const [policy] = Object.values(
      dev.template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
    );
    const statements = (policy?.Properties?.PolicyDocument?.Statement ?? []) as {
      Action: unknown;
      Resource: unknown;
    }[];
    const appTableArn = JSON.stringify(dev.stack.resolve(dev.stack.tables.app.table.tableArn));
    const onAppTable = statements.filter((statement) =>
      JSON.stringify(statement.Resource ?? null).includes(appTableArn),
    );
    expect(onAppTable.map((statement) => statement.Action)).toEqual(['dynamodb:GetItem']);
    expect(JSON.stringify(onAppTable[0]?.Resource)).toBe(appTableArn);
  });

  it('never sets SSRF_ALLOWLIST: in AWS every private, loopback and metadata address stays blocked', () => {
    for (const fn of Object.values(dev.template.findResources('AWS::Lambda::Function'))) {
      expect(Object.keys(fn.Properties.Environment.Variables)).not.toContain('SSRF_ALLOWLIST');
    }
  });

  it('lets the public catch-all function do nothing but write its own logs', () => {
    const roleId = logicalIdOf(dev.stack, dev.stack.functions[catchAllFunction].role.roleArn);
    const [policy] = Object.values(
      dev.template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
    );
    const statements = (policy?.Properties?.PolicyDocument?.Statement ?? []) as { Action: unknown }[];
    expect(statements.flatMap((statement) => [statement.Action].flat()).sort()).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
    ]);
  });

  it('creates one API route per route-table entry, a HEAD route per GET entry, and the $default route', () => {
    const routeKeys = Object.values(dev.template.findResources('AWS::ApiGatewayV2::Route')).map(
      (route) => route.Properties.RouteKey,
    );
    const headRouteKeys = routes
      .filter((route) => route.method === 'GET')
      .map((route) => `HEAD ${route.path}`);
    expect(headRouteKeys).toContain('HEAD /health');
    // Opening the verification link only shows its page (safe, so HEAD too); its button posts it, which verifies.
    expect(routeKeys).toContain('GET /users/{id}/verify');
    expect(routeKeys).toContain('HEAD /users/{id}/verify');
    expect(routeKeys).toContain('POST /users/{id}/verify');
    expect(routeKeys.sort()).toEqual([...routes.map(routeKeyOf), ...headRouteKeys, '$default'].sort());
  });

  /**
   * Checks that exactly one route has `routeKey` and that it targets the one Lambda proxy integration
   * (payload v2) of `name`; returns that function's resolved ARN.
   */
  function expectRouteToFunction(routeKey: string, name: HttpFunctionName): unknown {
    const functionArn = dev.stack.resolve(dev.stack.functions[name].lambdaFunction.functionArn);
    const integrationIds = Object.keys(
      dev.template.findResources('AWS::ApiGatewayV2::Integration', {
        Properties: {
          IntegrationType: 'AWS_PROXY',
          PayloadFormatVersion: '2.0',
          IntegrationUri: functionArn,
        },
      }),
    );
    expect(integrationIds).toHaveLength(1);
    const routeResources = Object.values(
      dev.template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } }),
    );
    expect(routeResources).toHaveLength(1);
    expect(routeResources[0]?.Properties?.Target).toEqual({
      'Fn::Join': ['', ['integrations/', { Ref: integrationIds[0] }]],
    });
    return functionArn;
  }

  it('sends every request no route matches ($default) to the catch-all function', () => {
    const functionArn = expectRouteToFunction('$default', catchAllFunction);
    // Only this API may invoke it (CDK scopes a `$default` route's permission to every stage and method of it).
    const permissions = Object.values(
      dev.template.findResources('AWS::Lambda::Permission', {
        Properties: { Action: 'lambda:InvokeFunction', FunctionName: functionArn },
      }),
    );
    expect(permissions).toHaveLength(1);
    expect(JSON.stringify(permissions[0]?.Properties?.SourceArn)).toContain(
      `:execute-api:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":",${JSON.stringify(dev.stack.resolve(dev.stack.httpApi.api.apiId))},"/*/*"`,
    );
  });

  it.each(routeCases)('sends %s to the %s function', (_routeKey, _functionName, route) => {
    expectRouteToFunction(routeKeyOf(route), route.function);
  });

  it("lets API Gateway invoke each function once per path of its routes, whatever the routes' methods", () => {
    const apiId = dev.stack.resolve(dev.stack.httpApi.api.apiId);
    const granted = Object.values(
      dev.template.findResources('AWS::Lambda::Permission', {
        Properties: { Principal: 'apigateway.amazonaws.com' },
      }),
    ).map((permission) => {
      // arn:<partition>:execute-api:<region>:<account>:<api id>/<stage>/<method><path>
      const arnParts: unknown[] = permission.Properties.SourceArn['Fn::Join'][1];
      expect(arnParts.at(-2)).toEqual(apiId);
      const stageMethodPath = String(arnParts.at(-1));
      expect(stageMethodPath.startsWith('/*/*')).toBe(true);
      return `${JSON.stringify(permission.Properties.FunctionName)} ${stageMethodPath.slice('/*/*'.length)}`;
    });
    const routed = [...routes, { function: catchAllFunction as HttpFunctionName, path: '' }].map(
      (route) =>
        `${JSON.stringify(dev.stack.resolve(dev.stack.functions[route.function].lambdaFunction.functionArn))} ${route.path}`,
    );
    expect(routes.filter((route) => route.path === '/bookings').length).toBeGreaterThan(1);
    expect(granted.sort()).toEqual([...new Set(routed)].sort());
  });

  it('uses one integration per function', () => {
    dev.template.resourceCountIs('AWS::ApiGatewayV2::Integration', Object.keys(httpFunctions).length);
  });

  it('throttles the $default stage at 100 requests per second with bursts of 200', () => {
    dev.template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    dev.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
    });
  });

  it('writes JSON access logs with the request id to a log group', () => {
    const accessLogGroupId = logicalIdOf(dev.stack, dev.stack.httpApi.accessLogGroup.logGroupArn);
    const [stage] = Object.values(dev.template.findResources('AWS::ApiGatewayV2::Stage'));
    const settings = stage?.Properties?.AccessLogSettings;
    expect(settings?.DestinationArn).toEqual({ 'Fn::GetAtt': [accessLogGroupId, 'Arn'] });
    expect(JSON.parse(settings?.Format)).toMatchObject({ requestId: '$context.requestId' });
  });

  it("names the access log group under /aws/vendedlogs/, with the API's id, which changes with each create", () => {
    const accessLogGroupId = logicalIdOf(dev.stack, dev.stack.httpApi.accessLogGroup.logGroupArn);
    const apiId = logicalIdOf(dev.stack, dev.stack.httpApi.api.apiId);
    const group = dev.template.findResources('AWS::Logs::LogGroup')[accessLogGroupId];
    // API Gateway adds no group under this prefix to the account's CloudWatch Logs resource policy.
    expect(group?.Properties?.LogGroupName).toEqual({
      'Fn::Join': ['', ['/aws/vendedlogs/apigateway/Bulwark-dev/', { Ref: apiId }, '/access-logs']],
    });
  });

  it('outputs the API URL, both table names, the user pool, its client ids, the token URL, the dashboard URL and the alarm topic', () => {
    const outputs = dev.template.findOutputs('*');
    expect(Object.keys(outputs).sort()).toEqual([
      'AlarmTopicArn',
      'ApiUrl',
      'AppTableName',
      'DashboardUrl',
      'EmailWorkerDlqUrl',
      'HumanClientId',
      'M2mClientId',
      'TokenUrl',
      'ToolkitTableName',
      'UserPoolId',
      'WebhookWorkerDlqUrl',
    ]);
    const { userPool } = dev.stack;
    expect(outputs.UserPoolId?.Value).toEqual(dev.stack.resolve(userPool.userPool.userPoolId));
    expect(outputs.HumanClientId?.Value).toEqual(dev.stack.resolve(userPool.humanClient.userPoolClientId));
    // Cognito accepts a code request without PKCE: the output says the app must send it, not that it is enforced.
    expect(outputs.HumanClientId?.Description).toBe(
      'App client for people (authorization code, SRP; public, no secret: send PKCE, which Cognito does not require)',
    );
    expect(outputs.M2mClientId?.Value).toEqual(dev.stack.resolve(userPool.m2mClient.userPoolClientId));
    expect(outputs.TokenUrl?.Value).toEqual({
      'Fn::Join': [
        '',
        [
          'https://',
          dev.stack.resolve(userPool.domain.domainName),
          '.auth.',
          { Ref: 'AWS::Region' },
          '.amazoncognito.com/oauth2/token',
        ],
      ],
    });
    expect(outputs.ApiUrl?.Value).toEqual(dev.stack.resolve(dev.stack.httpApi.url));
    expect(outputs.AppTableName?.Value).toEqual(dev.stack.resolve(dev.stack.tables.app.table.tableName));
    expect(outputs.ToolkitTableName?.Value).toEqual(
      dev.stack.resolve(dev.stack.tables.toolkit.table.tableName),
    );
  });
});

describe('BulwarkStack user pool', () => {
  let dev: Synthesised;
  /** Every scope the route table checks, e.g. `bookings/write`. */
  const routeScopes = [
    ...new Set(
      routes.flatMap((route): readonly string[] =>
        route.auth.kind === 'principal' && 'scopes' in route.auth ? route.auth.scopes : [],
      ),
    ),
  ].sort();

  beforeAll(() => {
    dev = synthesise('dev', { 'aws:cdk:bundling-stacks': [] });
  }, 60_000);

  function clientResource(client: { userPoolClientId: string }): Resource {
    return resourceOf(
      dev.template,
      'AWS::Cognito::UserPoolClient',
      logicalIdOf(dev.stack, client.userPoolClientId),
    );
  }

  /** `{ Fn::Join: ['', [{ Ref: server }, '/read']] }` back to `bookings/read`. */
  function scopeNames(scopes: unknown): string[] {
    const servers = dev.template.findResources('AWS::Cognito::UserPoolResourceServer');
    return (scopes as unknown[])
      .map((scope) => {
        if (typeof scope === 'string') return scope;
        const [ref, suffix] = (scope as { 'Fn::Join': [string, [{ Ref: string }, string]] })['Fn::Join'][1];
        return `${servers[ref.Ref]?.Properties?.Identifier}${suffix}`;
      })
      .sort();
  }

  it('tests the scopes the route table actually uses', () => {
    expect(routeScopes).toEqual([
      'bookings/read',
      'bookings/write',
      'users/read',
      'webhooks/read',
      'webhooks/write',
    ]);
  });

  it("creates one resource server per scope prefix with exactly the route table's scopes", () => {
    const servers = Object.values(dev.template.findResources('AWS::Cognito::UserPoolResourceServer'));
    const scopes = servers.flatMap((server) =>
      (server.Properties.Scopes as { ScopeName: string }[]).map(
        (scope) => `${server.Properties.Identifier}/${scope.ScopeName}`,
      ),
    );
    expect(scopes.sort()).toEqual(routeScopes);
  });

  it('creates the admin group that admin routes require', () => {
    dev.template.resourceCountIs('AWS::Cognito::UserPoolGroup', 1);
    dev.template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'admin' });
  });

  it('lets only administrators create accounts, with a strong password policy and required TOTP MFA', () => {
    dev.template.hasResourceProperties('AWS::Cognito::UserPool', {
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      Policies: { PasswordPolicy: { MinimumLength: 12, RequireSymbols: true, RequireNumbers: true } },
      MfaConfiguration: 'ON',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
    });
  });

  it('signs people in by email whatever its case, and keeps the old email until a new one is verified', () => {
    dev.template.hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameAttributes: ['email'],
      UsernameConfiguration: { CaseSensitive: false },
      UserAttributeUpdateSettings: { AttributesRequireVerificationBeforeUpdate: ['email'] },
    });
  });

  it('gives services an M2M client with a generated secret, only the client-credentials grant and every API scope', () => {
    const client = clientResource(dev.stack.userPool.m2mClient).Properties;
    expect(client).toMatchObject({ GenerateSecret: true, AllowedOAuthFlows: ['client_credentials'] });
    expect(scopeNames(client.AllowedOAuthScopes)).toEqual(routeScopes);
  });

  it('lets the M2M client sign no user in: refresh, the flow Cognito requires in any list, is its only auth flow', () => {
    // Without the list Cognito would allow ALLOW_USER_SRP_AUTH and ALLOW_CUSTOM_AUTH on this client too.
    expect(clientResource(dev.stack.userPool.m2mClient).Properties.ExplicitAuthFlows).toEqual([
      'ALLOW_REFRESH_TOKEN_AUTH',
    ]);
  });

  it('gives people a public client with the authorization-code grant, SRP, the API scopes, 12-hour rotating refresh tokens and only their name to write', () => {
    const client = clientResource(dev.stack.userPool.humanClient).Properties;
    expect(client).toMatchObject({
      GenerateSecret: false,
      AllowedOAuthFlows: ['code'],
      // Refresh goes through the token endpoint: Cognito refuses REFRESH_TOKEN_AUTH where tokens rotate.
      ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH'],
      RefreshTokenValidity: 720,
      TokenValidityUnits: { RefreshToken: 'minutes' },
      RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 10 },
      WriteAttributes: ['name'],
      PreventUserExistenceErrors: 'ENABLED',
    });
    expect(scopeNames(client.AllowedOAuthScopes)).toEqual(['email', 'openid', ...routeScopes].sort());
  });

  it('serves the token endpoint from a hosted domain named after the stack and account', () => {
    dev.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['', ['bulwark-dev-', { Ref: 'AWS::AccountId' }]] },
    });
  });

  it("keeps the hosted domain prefix within Cognito's 63 characters for a 60-character stack id", () => {
    const id = 'Bulwark-dev-feature-webhook-retries-alice-sandbox-eu-central';
    expect(id).toHaveLength(60);
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(new BulwarkStack(app, id, { stage: 'dev' }));
    const [domain] = Object.values(template.findResources('AWS::Cognito::UserPoolDomain'));
    const [separator, [name, account]] = domain?.Properties?.Domain?.['Fn::Join'] ?? [];
    expect([separator, account]).toEqual(['', { Ref: 'AWS::AccountId' }]);
    // The longest account id there is, as CloudFormation would put it in.
    const prefix = `${name}123456789012`;
    expect(prefix.length).toBeLessThanOrEqual(63);
    expect(prefix).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
    expect(name).toMatch(/^bulwark-dev-feature-webhook-retries-alice-[0-9a-f]{8}-$/);
  });

  it('names the domain after the stack id as it was whenever that fits, and after a cleaned, hashed id otherwise', () => {
    expect(cognitoDomainName('Bulwark-dev')).toBe('bulwark-dev');
    const longest = `B${'x'.repeat(49)}`;
    expect(cognitoDomainName(longest)).toBe(longest.toLowerCase());
    for (const id of [`${longest}y`, 'Bulwark_dev', 'Bulwark.dev', '-Bulwark', '___', 'z'.repeat(200)]) {
      const name = cognitoDomainName(id);
      expect(`${name}-123456789012`, id).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
      expect(cognitoDomainName(id), id).toBe(name);
    }
    // Ids that clean or shorten to the same text still get different domains.
    expect(cognitoDomainName('Bulwark_dev')).not.toBe(cognitoDomainName('Bulwark.dev'));
    expect(cognitoDomainName(`${longest}y`)).not.toBe(cognitoDomainName(`${longest}z`));
  });

  it("keeps Cognito's reserved words (aws, amazon, cognito) out of the domain, whatever the stack id", () => {
    for (const id of ['Bulwark-AWS-prod', 'Jaws-dev', 'Cognito-Test', 'Amazon-Shop', 'aws']) {
      const name = cognitoDomainName(id);
      expect(name, id).not.toMatch(/aws|amazon|cognito/);
      expect(`${name}-123456789012`, id).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
    }
    expect(cognitoDomainName('Jaws-dev')).toMatch(/^j-dev-[0-9a-f]{8}$/);
  });

  it('names the domain cognitoDomainName-<account id> when given one, for a deploy that replaces the pool', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev', cognitoDomainName: 'bulwark-dev-2' });
    Template.fromStack(stack).hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['', ['bulwark-dev-2-', { Ref: 'AWS::AccountId' }]] },
    });
  });

  it('refuses at synth a cognitoDomainName Cognito would refuse at deploy, naming each rule it breaks', () => {
    expect(cognitoDomainNameProblems('bulwark-prod-2')).toEqual([]);
    expect(cognitoDomainNameProblems('x'.repeat(50))).toEqual([]);
    const characters =
      'cognitoDomainName must be lower-case letters, digits and hyphens, starting with a letter or digit';
    for (const name of ['Bulwark-prod', 'bulwark_prod', 'bulwark.prod', '-bulwark', '']) {
      expect(cognitoDomainNameProblems(name), name).toEqual([characters]);
    }
    expect(cognitoDomainNameProblems('x'.repeat(51))).toEqual([
      "cognitoDomainName must be at most 50 characters (the prefix adds - and the 12-digit account id, within Cognito's 63)",
    ]);
    expect(cognitoDomainNameProblems('jaws-amazon-aws')).toEqual([
      "cognitoDomainName must not contain Cognito's reserved words (aws, amazon)",
    ]);
    expect(cognitoDomainNameProblems('my-cognito')).toEqual([
      "cognitoDomainName must not contain Cognito's reserved words (cognito)",
    ]);
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(
      () => new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev', cognitoDomainName: 'Bulwark_aws' }),
    ).toThrow(
      `Invalid BulwarkStack props: ${characters}; cognitoDomainName must not contain Cognito's reserved words (aws) (got "Bulwark_aws"; -c cognitoDomainName)`,
    );
  });

  it('reads -c cognitoDomainName in the CDK app, into the domain it synthesises or as the error it stops with', async () => {
    const synthesiseApp = (cognitoDomainName: unknown) => synthesiseCdkApp({ cognitoDomainName });
    const [{ run, template }, { run: refused }, { run: refusedNumber }] = await Promise.all([
      // The recorded options name cognitoDomainName bulwark-dev-2.
      synthesiseRecordedContext(),
      synthesiseApp('bulwark-amazon'),
      synthesiseApp(2),
    ]);
    expect(run.stderr).toBe('');
    const domains = Object.values(template?.Resources ?? {}).filter(
      (resource) => resource.Type === 'AWS::Cognito::UserPoolDomain',
    );
    expect(domains.map((domain) => domain.Properties.Domain)).toEqual([
      { 'Fn::Join': ['', ['bulwark-dev-2-', { Ref: 'AWS::AccountId' }]] },
    ]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(
      `Invalid BulwarkStack props: cognitoDomainName must not contain Cognito's reserved words (amazon) (got "bulwark-amazon"; -c cognitoDomainName)`,
    );
    // A number in cdk.json's context is refused, not ignored for the default.
    expect(refusedNumber.stderr).toContain('Context cognitoDomainName must be a string (got 2)');
  }, 120_000);

  it("feeds the functions the pool's issuer URL, as Cognito writes it in `iss`", () => {
    expect(dev.stack.resolve(dev.stack.userPool.issuer)).toEqual({
      'Fn::Join': [
        '',
        [
          'https://cognito-idp.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          '/',
          dev.stack.resolve(dev.stack.userPool.userPool.userPoolId),
        ],
      ],
    });
  });
});

describe('BulwarkStack auth settings', () => {
  const issuer = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1';

  const templatesByAuth = new Map<string, Template>();

  /** The template for these auth settings, synthesised once for the tests that read it. */
  function synthesiseWithAuth(auth: NonNullable<BulwarkStackProps['auth']>): Template {
    const key = JSON.stringify(auth);
    const known = templatesByAuth.get(key);
    if (known !== undefined) return known;
    // Only environment variables are read here; the dev synth already bundles the same functions.
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(new BulwarkStack(app, 'Bulwark-auth', { stage: 'dev', auth }));
    templatesByAuth.set(key, template);
    return template;
  }

  it('gives the functions with protected routes the issuer, client ids and token use, and health none', () => {
    const template = synthesiseWithAuth({ issuer, clientIds: ['web', 'svc'] });
    const variables = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (fn) => fn.Properties.Environment.Variables as Record<string, unknown>,
    );
    const withIssuer = variables.filter((vars) => vars.AUTH_ISSUER !== undefined);
    expect(withIssuer.map((vars) => vars.POWERTOOLS_SERVICE_NAME).sort()).toEqual([
      'bookings',
      'users',
      'webhooks',
    ]);
    for (const vars of withIssuer) {
      expect(vars).toMatchObject({
        AUTH_ISSUER: issuer,
        AUTH_CLIENT_IDS: 'web,svc',
        AUTH_TOKEN_USE: 'access',
      });
    }
  });

  /** AUTH_TOKEN_USE of every function with protected routes. */
  function tokenUses(template: Template): unknown[] {
    return Object.values(template.findResources('AWS::Lambda::Function'))
      .map((fn) => (fn.Properties.Environment.Variables as Record<string, unknown>).AUTH_TOKEN_USE)
      .filter((value) => value !== undefined);
  }

  /** AUTH_AUDIENCE of every function with protected routes (none when unset). */
  function audiences(template: Template): unknown[] {
    return Object.values(template.findResources('AWS::Lambda::Function'))
      .map((fn) => (fn.Properties.Environment.Variables as Record<string, unknown>).AUTH_AUDIENCE)
      .filter((value) => value !== undefined);
  }

  /** AUTH_JWKS_URI of every function with protected routes (none when unset). */
  function jwksUris(template: Template): unknown[] {
    return Object.values(template.findResources('AWS::Lambda::Function'))
      .map((fn) => (fn.Properties.Environment.Variables as Record<string, unknown>).AUTH_JWKS_URI)
      .filter((value) => value !== undefined);
  }

  const keycloakJwksUri = 'https://login.example.org/realms/app/protocol/openid-connect/certs';

  it('skips the token_use check (any) for an issuer other than Cognito, which never writes that claim', () => {
    const template = synthesiseWithAuth({
      issuer: 'https://login.example.org/realms/app',
      clientIds: ['web'],
      audience: ['bookings-api', 'https://api.example.org'],
      jwksUri: keycloakJwksUri,
    });
    expect(tokenUses(template)).toEqual(['any', 'any', 'any']);
    expect(audiences(template)).toEqual(Array(3).fill('bookings-api,https://api.example.org'));
    expect(jwksUris(template)).toEqual(Array(3).fill(keycloakJwksUri));
  });

  it('refuses an issuer other than Cognito without the jwks_uri its openid-configuration names', () => {
    const required = 'auth.jwksUri is required for an issuer other than Cognito';
    expect(() =>
      synthesiseWithAuth({
        issuer: 'https://login.example.org/realms/app',
        clientIds: ['web'],
        audience: ['bookings-api'],
      }),
    ).toThrow(`Invalid BulwarkStack props: ${required}`);
    for (const jwksUri of ['http://login.example.org/certs', 'certs']) {
      expect(() =>
        synthesiseWithAuth({
          issuer: 'https://login.example.org/realms/app',
          clientIds: ['web'],
          audience: ['bookings-api'],
          jwksUri,
        }),
      ).toThrow('auth.jwksUri must be an https URL');
    }
  });

  it('sets AUTH_JWKS_URI for a Cognito issuer only when given one', () => {
    expect(jwksUris(synthesiseWithAuth({ issuer, clientIds: ['web'] }))).toEqual([]);
    const mirrored = 'https://keys.example.org/jwks.json';
    expect(jwksUris(synthesiseWithAuth({ issuer, clientIds: ['web'], jwksUri: mirrored }))).toEqual(
      Array(3).fill(mirrored),
    );
  });

  it('refuses an issuer other than Cognito, or tokenUse any, without an audience', () => {
    const required = 'auth.audience is required for an issuer other than Cognito and with tokenUse any';
    expect(() =>
      synthesiseWithAuth({
        issuer: 'https://login.example.org/realms/app',
        clientIds: ['web'],
        jwksUri: keycloakJwksUri,
      }),
    ).toThrow(`Invalid BulwarkStack props: ${required}`);
    expect(() =>
      synthesiseWithAuth({
        issuer: 'https://login.example.org/',
        clientIds: ['web'],
        tokenUse: 'access',
        jwksUri: keycloakJwksUri,
      }),
    ).toThrow(required);
    expect(() => synthesiseWithAuth({ issuer, clientIds: ['web'], tokenUse: 'any' })).toThrow(required);
    expect(() => synthesiseWithAuth({ issuer, clientIds: ['web'], audience: [] })).toThrow(
      'auth.audience must be one or more audiences without commas or spaces',
    );
    expect(() => synthesiseWithAuth({ issuer, clientIds: ['web'], audience: ['a,b'] })).toThrow(
      'auth.audience must be one or more audiences without commas or spaces',
    );
  });

  it('sets no audience for a Cognito issuer unless given one', () => {
    expect(audiences(synthesiseWithAuth({ issuer, clientIds: ['web'] }))).toEqual([]);
    const idTokens = synthesiseWithAuth({ issuer, clientIds: ['web'], tokenUse: 'id', audience: ['web'] });
    expect(audiences(idTokens)).toEqual(['web', 'web', 'web']);
  });

  it('uses the token use it is given, for a Cognito issuer or another', () => {
    expect(tokenUses(synthesiseWithAuth({ issuer, clientIds: ['web'], tokenUse: 'id' }))).toEqual([
      'id',
      'id',
      'id',
    ]);
    const other = synthesiseWithAuth({
      issuer: 'https://login.example.org/',
      clientIds: ['web'],
      tokenUse: 'access',
      audience: ['bookings-api'],
      jwksUri: keycloakJwksUri,
    });
    expect(tokenUses(other)).toEqual(['access', 'access', 'access']);
  });

  it('rejects a token use that functions/shared/environment.ts would refuse at cold start', () => {
    expect(() => synthesiseWithAuth({ issuer, clientIds: ['web'], tokenUse: 'refresh' as 'access' })).toThrow(
      'auth.tokenUse must be one of: access, id, any',
    );
  });

  it('recognises Cognito issuers by host only', () => {
    expect(isCognitoIssuer(issuer)).toBe(true);
    expect(isCognitoIssuer('https://cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_X')).toBe(true);
    expect(isCognitoIssuer('https://cognito-idp.eu-west-1.amazonaws.com.evil.example/x')).toBe(false);
    expect(isCognitoIssuer('https://example.org/cognito-idp.eu-west-1.amazonaws.com')).toBe(false);
    expect(isCognitoIssuer('not a url')).toBe(false);
  });

  it('reads -c authTokenUse=access|id|any, absent meaning the default, and refuses anything else', () => {
    expect(parseAuthTokenUse(undefined)).toBeUndefined();
    expect(['access', 'id', 'any'].map(parseAuthTokenUse)).toEqual(['access', 'id', 'any']);
    expect(() => parseAuthTokenUse('ID')).toThrow('expected one of: access, id, any');
  });

  it('rejects an issuer that is not a URL and an empty client list', () => {
    expect(() => synthesiseWithAuth({ issuer: 'cognito', clientIds: [], audience: ['api'] })).toThrow(
      'Invalid BulwarkStack props: auth.issuer must be a URL; auth.clientIds must be one or more client ids',
    );
  });

  it('refuses, in dev and prod, an issuer or jwks_uri that is plain http or on this machine or its network', () => {
    const synthesiseIn = (stage: Stage, auth: NonNullable<BulwarkStackProps['auth']>) => () =>
      new BulwarkStack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), `Bulwark-${stage}`, {
        stage,
        auth,
        ...(stage === 'prod' ? { callbackUrls: prodCallbackUrls, email: prodEmail } : {}),
      });
    const issuerProblem =
      'Invalid BulwarkStack props: auth.issuer must be https on a public host (not localhost, loopback or private)';
    const jwksProblem =
      'Invalid BulwarkStack props: auth.jwksUri must be an https URL on a public host (not localhost, loopback or private)';
    for (const stage of stages) {
      for (const local of [
        'http://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1',
        'http://127.0.0.1:3000',
        'https://localhost:3000',
        'https://[::1]:3000',
        'https://10.0.0.5/realms/app',
      ]) {
        // With the audience and jwks_uri an issuer other than Cognito needs, so the issuer is all that is wrong.
        expect(
          synthesiseIn(stage, {
            issuer: local,
            clientIds: ['web'],
            audience: ['api'],
            jwksUri: keycloakJwksUri,
          }),
          local,
        ).toThrow(new Error(issuerProblem));
        expect(
          synthesiseIn(stage, { issuer, clientIds: ['web'], jwksUri: `${local}/.well-known/jwks.json` }),
          local,
        ).toThrow(new Error(jwksProblem));
      }
      // The control: the same synth passes with a public https issuer and jwks_uri.
      expect(
        synthesiseIn(stage, { issuer, clientIds: ['web'], jwksUri: `${issuer}/.well-known/jwks.json` }),
      ).not.toThrow();
    }
  });

  it('reads a list from context as -c gives it or as cdk.json does, and refuses any other value', () => {
    expect(contextList('smsRegions', 'GB,GG')).toEqual(['GB', 'GG']);
    expect(contextList('smsRegions', ['GB', 'GG'])).toEqual(['GB', 'GG']);
    for (const value of [7, ['GB', 1], { GB: true }]) {
      expect(() => contextList('smsRegions', value)).toThrow(
        'Context smsRegions must be a comma-separated string or an array of strings',
      );
    }
  });

  it('reads a number from context as -c gives it or as cdk.json does, and refuses what Number() would bend into one', () => {
    expect(contextNumber('smsPerHour', '200')).toBe(200);
    expect(contextNumber('smsPerHour', 200)).toBe(200);
    expect(contextNumber('smtpPort', undefined)).toBeUndefined();
    for (const value of [[100], true, '1e2', '', ' 100', null, Number.NaN]) {
      expect(() => contextNumber('smsPerHour', value)).toThrow(
        `Context smsPerHour must be a number (got ${JSON.stringify(value)})`,
      );
    }
  });

  it('reads a string from context, absent meaning undefined, and refuses any other value', () => {
    expect(contextString('cognitoDomainName', 'bulwark-prod-2')).toBe('bulwark-prod-2');
    expect(contextString('cognitoDomainName', undefined)).toBeUndefined();
    expect(() => contextString('cognitoDomainName', ['bulwark'])).toThrow(
      'Context cognitoDomainName must be a string (got ["bulwark"])',
    );
  });

  it("reads the CDK app's list options as arrays and its text options as strings from cdk.json's context, refusing other values", async () => {
    const textRefusals = [
      ['sesIdentity', ['example.org']],
      ['smtpHost', 587],
    ] as const;
    const [{ run, template }, textRuns, numberRun] = await Promise.all([
      synthesiseRecordedContext(),
      Promise.all(
        textRefusals.map(async ([name, value]) => ({
          name,
          value,
          ...(await synthesiseCdkApp({ [name]: value })),
        })),
      ),
      synthesiseCdkApp({ smsPerHour: [100] }),
    ]);
    expect(run.stderr).toBe('');
    const resources = Object.values(template?.Resources ?? {});
    const callbackUrls = resources
      .filter((resource) => resource.Type === 'AWS::Cognito::UserPoolClient')
      .flatMap((client) => (client.Properties.CallbackURLs as string[] | undefined) ?? []);
    expect(callbackUrls).toEqual(['https://app.example.org/callback', 'https://admin.example.org/callback']);
    const sesResources = JSON.stringify(
      resources.filter(
        (resource) =>
          resource.Type === 'AWS::IAM::Policy' && JSON.stringify(resource).includes('ses:SendEmail'),
      ),
    );
    for (const identity of ['example.org', 'ada@example.net', 'example.net']) {
      expect(sesResources).toContain(`:identity/${identity}"`);
    }
    for (const { name, value, run: refused } of textRuns) {
      expect(refused.stderr, name).toContain(
        `Context ${name} must be a string (got ${JSON.stringify(value)})`,
      );
    }
    // Number() made [100] a budget of 100 and true a port of 1.
    expect(numberRun.run.stderr).toContain('Context smsPerHour must be a number (got [100])');
  }, 120_000);

  it('stops the CDK app on a list or text option of another type, and on sandbox recipients without an SES identity', async () => {
    // Each synth stops at its first refusal, so each case is a run of its own.
    const refusals: [Record<string, unknown>, string][] = [
      [{ callbackUrls: 5 }, 'Context callbackUrls must be a comma-separated string or an array of strings'],
      [
        { sesIdentity: 'example.org', sesSandboxRecipients: true },
        'Context sesSandboxRecipients must be a comma-separated string or an array of strings',
      ],
      [{ emailFrom: 1 }, 'Context emailFrom must be a string (got 1)'],
      [
        { sesSandboxRecipients: 'a@example.org' },
        'sesSandboxRecipients needs the sesIdentity the worker sends from',
      ],
    ];
    const runs = await Promise.all(
      refusals.map(async ([context, message]) => ({
        context,
        message,
        ...(await synthesiseCdkApp(context)),
      })),
    );
    for (const { context, message, run } of runs) {
      expect(run.status, JSON.stringify(context)).not.toBe(0);
      expect(run.stderr, JSON.stringify(context)).toContain(message);
    }
  }, 120_000);

  it('refuses a context key the CDK app does not read, naming the option it probably meant', () => {
    expect(() =>
      refuseUnknownContext({ ...projectContext, ...cliContext, stage: 'dev', stgae: 'prod' }),
    ).toThrow(
      `Unknown context option stgae (did you mean stage?): nothing reads it, so the deployment would get the default. The options are: ${contextOptions.join(', ')}`,
    );
    const meant = (key: string) => {
      try {
        refuseUnknownContext({ [key]: 'x' });
      } catch (error) {
        return /\(did you mean (\w+)\?\)/.exec(String(error))?.[1] ?? 'none';
      }
      return 'accepted';
    };
    // A letter more, fewer, wrong or swapped (twice at most), the case, or the same letters in another order.
    expect(
      [
        'sesIdentitiy',
        'smsPerHuor',
        'callbackUrl',
        'authIsuer',
        'smtport',
        'Stage',
        'SMSREGIONS',
        'gatse',
      ].map(meant),
    ).toEqual([
      'sesIdentity',
      'smsPerHour',
      'callbackUrls',
      'authIssuer',
      'smtpPort',
      'stage',
      'smsRegions',
      'stage',
    ]);
    // Nothing close: named alone.
    expect(['region', 'cognitoDomain', 'smsBudget'].map(meant)).toEqual(['none', 'none', 'none']);
    // Each unknown key is named.
    expect(() => refuseUnknownContext({ sesIdentitiy: 'example.org', region: 'eu-west-1' })).toThrow(
      'Unknown context options sesIdentitiy (did you mean sesIdentity?), region: nothing reads them,',
    );
  });

  it("accepts the app's options, cdk.json's feature flags and what the CLI adds or caches in cdk.context.json", () => {
    const accepted = {
      ...projectContext,
      ...cliContext,
      ...Object.fromEntries(contextOptions.map((option) => [option, 'x'])),
      // cdk.context.json: a cached lookup, `cdk acknowledge` and `cdk cli-telemetry --disable`.
      'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a'],
      'acknowledged-issue-numbers': [34892],
      'cli-telemetry': false,
      '@aws-cdk/core:someFutureFlag': true,
    };
    expect(() => refuseUnknownContext(accepted)).not.toThrow();
  });

  it('knows exactly the options README documents for the CDK app', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const deploySection = readme.slice(readme.indexOf('\n## CDK and deploy\n'));
    const section = deploySection.slice(0, deploySection.indexOf('\n## ', 1));
    const listed = /The options are ([^.]+)\./.exec(section)?.[1] ?? '';
    const named = (text: string, pattern: RegExp) =>
      new Set([...text.matchAll(pattern)].map((match) => match[1]));
    expect(named(listed, /`(\w+)`/g)).toEqual(new Set(contextOptions));
    // Every `-c name=` in the section's examples is an option the app reads.
    expect(named(section, /-c (\w+)=/g)).toEqual(new Set(contextOptions));
  });

  it('stops the CDK app on a misspelt context key before it synthesises, and synthesises with cdk.json and the CLI keys alone', async () => {
    const [refused, { run, template }] = await Promise.all([
      synthesiseCdkApp({ stage: 'dev', stgae: 'prod' }),
      // What `npm run synth` hands the app.
      synthesiseCdkApp({}),
    ]);
    expect(refused.run.status).not.toBe(0);
    expect(refused.run.stderr).toContain(
      'Unknown context option stgae (did you mean stage?): nothing reads it, so the deployment would get the default.',
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const userPools = Object.values(template?.Resources ?? {}).filter(
      (resource) => resource.Type === 'AWS::Cognito::UserPool',
    );
    expect(userPools).toHaveLength(1);
  }, 120_000);

  it('reads a true or false from context as -c gives it or as cdk.json does, and refuses any other value', () => {
    expect(contextBoolean('signInCaseInsensitive', 'false')).toBe(false);
    expect(contextBoolean('signInCaseInsensitive', true)).toBe(true);
    expect(contextBoolean('signInCaseInsensitive', undefined)).toBeUndefined();
    expect(() => contextBoolean('signInCaseInsensitive', 'no')).toThrow(
      'Context signInCaseInsensitive must be true or false (got "no")',
    );
  });

  it('keeps an existing pool deployable: signInCaseInsensitive false leaves its sign-in case out', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-dev-old-pool', {
      stage: 'dev',
      signInCaseInsensitive: false,
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameConfiguration: Match.absent(),
    });
  });

  it('reads the auth prop from -c authIssuer, authClientIds, authTokenUse, authAudience and authJwksUri', () => {
    const fromContext = (context: Record<string, unknown>) =>
      authFromContext((key) => projectApp({ context }).node.tryGetContext(key));
    expect(fromContext({})).toBeUndefined();
    expect(
      fromContext({
        authIssuer: 'https://login.example.org/realms/app',
        authClientIds: 'spa,svc',
        authTokenUse: 'any',
        authAudience: 'bookings-api,https://api.example.org',
        authJwksUri: keycloakJwksUri,
      }),
    ).toEqual({
      issuer: 'https://login.example.org/realms/app',
      clientIds: ['spa', 'svc'],
      tokenUse: 'any',
      audience: ['bookings-api', 'https://api.example.org'],
      jwksUri: keycloakJwksUri,
    });
    expect(fromContext({ authIssuer: issuer, authClientIds: 'web' })).toEqual({ issuer, clientIds: ['web'] });
    expect(() => fromContext({ authAudience: 'bookings-api' })).toThrow(
      'authAudience applies to an authIssuer',
    );
    expect(() => fromContext({ authTokenUse: 'id' })).toThrow('authTokenUse applies to an authIssuer');
    expect(() => fromContext({ authJwksUri: keycloakJwksUri })).toThrow(
      'authJwksUri applies to an authIssuer',
    );
    expect(() => fromContext({ authIssuer: issuer, authJwksUri: 1 })).toThrow('authJwksUri must be one URL');
    expect(() => fromContext({ authIssuer: issuer, authAudience: ['a'] })).toThrow(
      'authAudience must be comma-separated audiences',
    );
  });

  it('takes authClientIds as an array from cdk.json, and refuses what would silently leave the stack trusting its own pool', () => {
    const fromContext = (context: Record<string, unknown>) =>
      authFromContext((key) => projectApp({ context }).node.tryGetContext(key));
    expect(fromContext({ authIssuer: issuer, authClientIds: ['web', 'svc'] })).toEqual({
      issuer,
      clientIds: ['web', 'svc'],
    });
    expect(() => fromContext({ authIssuer: { url: issuer }, authClientIds: 'web' })).toThrow(
      'Context authIssuer must be a string (got {"url":',
    );
    expect(() => fromContext({ authClientIds: 'web' })).toThrow('authClientIds applies to an authIssuer');
    expect(() => fromContext({ authIssuer: issuer, authClientIds: [1] })).toThrow(
      'Context authClientIds must be a comma-separated string or an array of strings',
    );
  });

  it('generates the signing secret in Secrets Manager as JSON with a 48-character current value', () => {
    const template = synthesiseWithAuth({ issuer, clientIds: ['web'] });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: {
        SecretStringTemplate: '{}',
        GenerateStringKey: 'current',
        PasswordLength: 48,
        ExcludePunctuation: true,
      },
    });
  });
});

describe('BulwarkStack secrets, rotation and email settings', () => {
  let dev: Synthesised;

  beforeAll(() => {
    dev = synthesise('dev', { 'aws:cdk:bundling-stacks': [] });
  }, 60_000);

  function secretId(secret: { secretArn: string }): string {
    return logicalIdOf(dev.stack, secret.secretArn);
  }

  it.each([
    ['bookingsSigningSecret', 'rate(30 days)'],
    ['verificationLinkSecret', 'rate(30 days)'],
  ] as const)('rotates the %s with the rotation function, %s', (secret, schedule) => {
    const schedules = Object.values(
      dev.template.findResources('AWS::SecretsManager::RotationSchedule'),
    ).filter(
      (resource) =>
        JSON.stringify(resource.Properties.SecretId) === JSON.stringify({ Ref: secretId(dev.stack[secret]) }),
    );
    expect(schedules).toHaveLength(1);
    expect(schedules[0]?.Properties).toEqual({
      SecretId: { Ref: secretId(dev.stack[secret]) },
      RotationLambdaARN: dev.stack.resolve(
        dev.stack.secretRotation.rotationFunction.lambdaFunction.functionArn,
      ),
      RotationRules: { ScheduleExpression: schedule },
    });
  });

  it("lets only this account's Secrets Manager invoke the rotation function, for exactly the rotated secrets", () => {
    const permissions = Object.values(dev.template.findResources('AWS::Lambda::Permission')).filter(
      (permission) => permission.Properties.Principal === 'secretsmanager.amazonaws.com',
    );
    expect(permissions.map((permission) => permission.Properties.SourceArn).sort(byAttributeName)).toEqual(
      [
        { Ref: secretId(dev.stack.bookingsSigningSecret) },
        { Ref: secretId(dev.stack.verificationLinkSecret) },
      ].sort(byAttributeName),
    );
    for (const permission of permissions) {
      expect(permission.Properties.SourceAccount).toEqual({ Ref: 'AWS::AccountId' });
    }
  });

  it('generates the verification-link secret in the rotation shape { current } and an SMTP credentials placeholder', () => {
    expect(
      resourceOf(dev.template, 'AWS::SecretsManager::Secret', secretId(dev.stack.verificationLinkSecret))
        .Properties,
    ).toMatchObject({
      GenerateSecretString: {
        SecretStringTemplate: '{}',
        GenerateStringKey: 'current',
        PasswordLength: 48,
        ExcludePunctuation: true,
      },
    });
    expect(
      resourceOf(dev.template, 'AWS::SecretsManager::Secret', secretId(dev.stack.smtpCredentials)).Properties,
    ).toMatchObject({
      GenerateSecretString: {
        SecretStringTemplate: '{"username":"replace-me"}',
        GenerateStringKey: 'password',
      },
    });
    dev.template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 2);
  });

  it('puts no secret value in any function configuration: functions get secret ARNs and read them at run time', () => {
    const functions = Object.values(dev.template.findResources('AWS::Lambda::Function'));
    expect(functions.length).toBeGreaterThan(5);
    for (const fn of functions) {
      expect(JSON.stringify(fn.Properties.Environment ?? {})).not.toContain('resolve:secretsmanager');
    }
    // The control: the secrets exist, and the functions that use them name them.
    const variables = functions.flatMap((fn) => Object.keys(fn.Properties.Environment?.Variables ?? {}));
    expect(variables).toContain('SERVICE_SIGNING_SECRET_ARN_BOOKINGS');
    expect(variables).toContain('VERIFICATION_LINK_SECRET_ARN');
  });

  it("sends Cognito's own emails through the SES identity and From address when given an SES identity", () => {
    const sesPool = (id: string, email: NonNullable<BulwarkStackProps['email']>) =>
      Object.values(
        Template.fromStack(
          new BulwarkStack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), id, {
            stage: 'dev',
            email,
          }),
        ).findResources('AWS::Cognito::UserPool'),
      )[0]?.Properties?.EmailConfiguration;
    expect(
      sesPool('Bulwark-ses-domain', { identity: 'example.org', from: 'App <no-reply@example.org>' }),
    ).toEqual({
      EmailSendingAccount: 'DEVELOPER',
      From: 'App <no-reply@example.org>',
      SourceArn: sesIdentityArn('example.org'),
    });
    expect(sesPool('Bulwark-ses-address', { identity: 'noreply@example.org' })).toEqual({
      EmailSendingAccount: 'DEVELOPER',
      From: 'noreply@example.org',
      SourceArn: sesIdentityArn('noreply@example.org'),
    });
    // SMTP is not SES: Cognito keeps its built-in sender.
    expect(
      sesPool('Bulwark-ses-smtp', { identity: 'example.org', smtp: { host: 'smtp.example.org' } }),
    ).toBeUndefined();
  });

  it("leaves Cognito's built-in email sender without an SES identity", () => {
    const [pool] = Object.values(dev.template.findResources('AWS::Cognito::UserPool'));
    expect(pool?.Properties?.EmailConfiguration).toBeUndefined();
  });

  it('sends email from the SES identity and From address it is given', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-mail', {
      stage: 'dev',
      email: { identity: 'noreply@mail.example.org' },
    });
    const template = Template.fromStack(stack);
    const workerId = logicalIdOf(stack, stack.workers['email-worker'].worker.lambdaFunction.functionArn);
    expect(resourceOf(template, 'AWS::Lambda::Function', workerId).Properties.Environment).toMatchObject({
      Variables: { EMAIL_FROM: 'noreply@mail.example.org', EMAIL_TRANSPORT: 'ses' },
    });
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).toContain(
      ':identity/noreply@mail.example.org"',
    );
  });

  it('sends through an SMTP relay when given one: the credentials secret by ARN, read only by the worker, and no SES permission', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-smtp', {
      stage: 'dev',
      email: { identity: 'example.org', smtp: { host: 'smtp.example.org' } },
    });
    const template = Template.fromStack(stack);
    const worker = stack.workers['email-worker'].worker;
    const workerId = logicalIdOf(stack, worker.lambdaFunction.functionArn);
    expect(resourceOf(template, 'AWS::Lambda::Function', workerId).Properties.Environment).toMatchObject({
      Variables: {
        EMAIL_TRANSPORT: 'smtp',
        SMTP_HOST: 'smtp.example.org',
        SMTP_PORT: '587',
        SMTP_CREDENTIALS_SECRET_ARN: stack.resolve(stack.smtpCredentials.secretArn),
      },
    });
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const statementsOf = (roleArn: string) =>
      policies
        .filter((policy) => JSON.stringify(policy.Properties.Roles).includes(logicalIdOf(stack, roleArn)))
        .flatMap(
          (policy) => policy.Properties.PolicyDocument.Statement as { Action: unknown; Resource: unknown }[],
        );
    expect(grantsOf(statementsOf(worker.role.roleArn))).toEqual(
      expect.arrayContaining(
        grantsOf([
          {
            Action: 'secretsmanager:GetSecretValue',
            Effect: 'Allow',
            Resource: stack.resolve(stack.smtpCredentials.secretArn),
          },
        ]),
      ),
    );
    expect(JSON.stringify(policies)).not.toContain('ses:');
    // Nor an SES configuration set, nor its name in the worker's environment, nor alarms on SES's reputation.
    expect(stack.emailConfigurationSet).toBeUndefined();
    expect([stack.alarms.sesBounceRate, stack.alarms.sesComplaintRate]).toEqual([undefined, undefined]);
    expect(JSON.stringify(template.findResources('AWS::CloudWatch::Alarm'))).not.toContain('AWS/SES');
    template.resourceCountIs('AWS::SES::ConfigurationSet', 0);
    expect(resourceOf(template, 'AWS::Lambda::Function', workerId).Properties.Environment).not.toHaveProperty(
      'Variables.SES_CONFIGURATION_SET',
    );
    // No other function may read the relay's credentials.
    const readers = policies.filter((policy) =>
      JSON.stringify(policy.Properties.PolicyDocument).includes(
        JSON.stringify(stack.resolve(stack.smtpCredentials.secretArn)),
      ),
    );
    expect(readers).toHaveLength(1);
  });

  it('sends through one SES configuration set with reputation metrics on and bounces and complaints suppressed', () => {
    const sets = Object.values(dev.template.findResources('AWS::SES::ConfigurationSet'));
    expect(sets).toHaveLength(1);
    expect(sets[0]?.Properties).toEqual({
      ReputationOptions: { ReputationMetricsEnabled: true },
      SuppressionOptions: { SuppressedReasons: ['BOUNCE', 'COMPLAINT'] },
    });
    // The worker names it in every SendEmail, and may send with it and with no other.
    const worker = dev.stack.workers['email-worker'].worker.lambdaFunction;
    const workerId = logicalIdOf(dev.stack, worker.functionArn);
    const configurationSetName = dev.stack.resolve(dev.stack.emailConfigurationSet?.configurationSetName);
    expect(resourceOf(dev.template, 'AWS::Lambda::Function', workerId).Properties.Environment).toMatchObject({
      Variables: { SES_CONFIGURATION_SET: configurationSetName },
    });
    expect(JSON.stringify(dev.template.findResources('AWS::IAM::Policy'))).not.toContain(
      ':configuration-set/*',
    );
  });

  it('reads the SMTP credentials in no function when sending through SES', () => {
    const secretArn = JSON.stringify(dev.stack.resolve(dev.stack.smtpCredentials.secretArn));
    for (const fn of Object.values(dev.template.findResources('AWS::Lambda::Function'))) {
      expect(fn.Properties.Environment?.Variables?.SMTP_CREDENTIALS_SECRET_ARN).toBeUndefined();
    }
    expect(JSON.stringify(dev.template.findResources('AWS::IAM::Policy'))).not.toContain(secretArn);
  });

  it('rejects an SMTP relay without a host name or with a port out of range, naming both', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(
      () =>
        new BulwarkStack(app, 'Bulwark-bad-smtp', {
          stage: 'dev',
          email: { identity: 'example.org', smtp: { host: 'smtp example', port: 70_000 } },
        }),
    ).toThrow(
      'Invalid BulwarkStack props: email.smtp.host must be a host name; email.smtp.port must be an integer from 1 to 65535',
    );
  });

  it('rotates every 3 days at the shortest, refusing a 2-day rate whose rotations can fall 24 hours apart', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-rotation', { stage: 'dev', secretRotationDays: 3 });
    for (const schedule of Object.values(
      Template.fromStack(stack).findResources('AWS::SecretsManager::RotationSchedule'),
    )) {
      expect(schedule.Properties.RotationRules).toEqual({ ScheduleExpression: 'rate(3 days)' });
    }
    for (const days of [1, 2, 2.5, 1001]) {
      expect(
        () =>
          new BulwarkStack(app, `Bulwark-rotation-${days}`.replace('.', '-'), {
            stage: 'dev',
            secretRotationDays: days,
          }),
      ).toThrow('Invalid BulwarkStack props: secretRotationDays must be a whole number from 3 to 1000');
    }
  });

  it('refuses a From address outside the SES identity, which ses:SendEmail is not granted on', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const build = (id: string, identity: string, from: string) =>
      new BulwarkStack(app, id, { stage: 'dev', email: { identity, from } });
    expect(() => build('Bulwark-from-1', 'example.org', 'Bulwark <no-reply@example.com>')).toThrow(
      'Invalid BulwarkStack props: email.from (no-reply@example.com) must be an address at the SES identity example.org',
    );
    expect(() => build('Bulwark-from-2', 'example.org', 'no-reply@mail.example.org')).toThrow(
      'email.from (no-reply@mail.example.org) must be an address at the SES identity example.org',
    );
    expect(() => build('Bulwark-from-3', 'noreply@example.org', 'other@example.org')).toThrow(
      'email.from (other@example.org) must be the SES identity noreply@example.org',
    );
    expect(() => build('Bulwark-from-4', 'example.org', 'Bulwark')).toThrow(
      'email.from must be an address or `Name <address>`',
    );
    // Accepted: the domain's addresses (any case), the address identity itself with a display name.
    expect(() => build('Bulwark-from-5', 'example.org', 'Bulwark <No-Reply@Example.org>')).not.toThrow();
    expect(() => build('Bulwark-from-6', 'noreply@example.org', 'App <noreply@example.org>')).not.toThrow();
    // An SMTP relay is not SES: its From is the relay's business.
    expect(
      () =>
        new BulwarkStack(app, 'Bulwark-from-7', {
          stage: 'dev',
          email: {
            identity: 'example.com',
            from: 'no-reply@example.org',
            smtp: { host: 'smtp.example.org' },
          },
        }),
    ).not.toThrow();
  });

  it('grants ses:SendEmail on the sandbox recipients given, since the SES sandbox authorises each recipient too', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-sandbox', {
      stage: 'dev',
      email: {
        identity: 'example.org',
        sandboxRecipients: ['ada@example.net', 'example.net', 'ada@example.net'],
      },
    });
    const sends = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')).flatMap(
      (policy) =>
        (policy.Properties.PolicyDocument.Statement as { Action: unknown; Resource: unknown }[]).filter(
          (statement) => statement.Action === 'ses:SendEmail',
        ),
    );
    // The repeated recipient is granted once.
    expect(sends.flatMap((statement) => [statement.Resource].flat())).toHaveLength(4);
    expect(grantsOf(sends)).toEqual(
      grantsOf([
        {
          Action: 'ses:SendEmail',
          Effect: 'Allow',
          Resource: [
            sesIdentityArn('example.org'),
            sesIdentityArn('ada@example.net'),
            sesIdentityArn('example.net'),
            sesConfigurationSetArn(stack),
          ],
        },
      ]),
    );
    const build = (id: string, email: NonNullable<BulwarkStackProps['email']>) => () =>
      new BulwarkStack(app, id, { stage: 'dev', email });
    expect(
      build('Bulwark-sandbox-bad', { identity: 'example.org', sandboxRecipients: ['*', 'a b'] }),
    ).toThrow('Invalid BulwarkStack props: email.sandboxRecipients must be domains or email addresses');
    expect(
      build('Bulwark-sandbox-smtp', {
        identity: 'example.org',
        smtp: { host: 'smtp.example.org' },
        sandboxRecipients: ['ada@example.net'],
      }),
    ).toThrow('email.sandboxRecipients applies to SES');
  });

  it('rejects an SES identity that is neither a domain nor an address', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(
      () => new BulwarkStack(app, 'Bulwark-bad', { stage: 'dev', email: { identity: 'not an identity' } }),
    ).toThrow('Invalid BulwarkStack props: email.identity must be a domain or an email address');
  });
});

describe('BulwarkStack SMS settings', () => {
  const usersVariables = (sms: BulwarkStackProps['sms']) => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, 'Bulwark-sms', { stage: 'dev', ...(sms ? { sms } : {}) });
    const usersId = logicalIdOf(stack, stack.functions.users.lambdaFunction.functionArn);
    return resourceOf(Template.fromStack(stack), 'AWS::Lambda::Function', usersId).Properties.Environment as {
      Variables: Record<string, unknown>;
    };
  };

  it('sends SMS codes to the regions it is given, each once', () => {
    expect(usersVariables({ regions: ['GB', 'GG', 'JE', 'IM', 'GB'] }).Variables).toMatchObject({
      SMS_REGIONS: 'GB,GG,JE,IM',
    });
    expect(usersVariables(undefined).Variables).toMatchObject({ SMS_REGIONS: 'US' });
  });

  it('gives the deployment and each region the SMS budgets it is given, each region half the deployment’s by default', () => {
    expect(usersVariables({ perHour: 30, perRegionPerHour: 5 }).Variables).toMatchObject({
      SMS_PER_HOUR: '30',
      SMS_PER_REGION_PER_HOUR: '5',
    });
    expect(usersVariables({ perHour: 25 }).Variables).toMatchObject({
      SMS_PER_HOUR: '25',
      SMS_PER_REGION_PER_HOUR: '13',
    });
    for (const [sms, problem] of [
      [{ perHour: 0 }, 'sms.perHour must be a whole number from 1 to 1000000'],
      [{ perHour: 2.5 }, 'sms.perHour must be a whole number from 1 to 1000000'],
      [{ perHour: Number('x') }, 'sms.perHour must be a whole number from 1 to 1000000'],
      [{ perRegionPerHour: 1_000_001 }, 'sms.perRegionPerHour must be a whole number from 1 to 1000000'],
    ] as const) {
      expect(() => usersVariables(sms)).toThrow(`Invalid BulwarkStack props: ${problem}`);
    }
  });

  it('refuses an empty region list and codes libphonenumber has no number plan for', () => {
    expect(() => usersVariables({ regions: [] })).toThrow(
      'Invalid BulwarkStack props: sms.regions must name at least one region',
    );
    expect(() => usersVariables({ regions: ['GB', 'UK', 'us'] })).toThrow(
      'Invalid BulwarkStack props: sms.regions must be ISO 3166 alpha-2 codes of regions with a number plan; not UK, us',
    );
  });
});

describe('BulwarkStack in the prod stage', () => {
  // A construct renamed or moved gets a new logical id, and CloudFormation creates a new, empty resource in
  // place of the old one, which prod keeps outside the stack: the app's users and bookings would vanish, the
  // keys that sealed them go, the clients' ids change. Changing this list is an upgrade note in the README.
  it.each(['dev', 'prod'] as const)(
    'keeps the logical id of every resource that holds data in %s',
    (stage) => {
      const { template } = synthesise(stage, { 'aws:cdk:bundling-stacks': [] });
      const idsOf = (type: string) => Object.keys(template.findResources(type)).sort();
      expect({
        tables: idsOf('AWS::DynamoDB::GlobalTable'),
        keys: idsOf('AWS::KMS::Key'),
        userPools: idsOf('AWS::Cognito::UserPool'),
        userPoolClients: idsOf('AWS::Cognito::UserPoolClient'),
        secrets: idsOf('AWS::SecretsManager::Secret'),
        queues: idsOf('AWS::SQS::Queue'),
        logGroups: idsOf('AWS::Logs::LogGroup'),
      }).toEqual({
        tables: ['AppTableA64782C6', 'ToolkitTable564EF7A7'],
        keys: [
          'AlarmsTopicKey11E839D9',
          'BlindIndexKeyF86C06E0',
          'DataKey2A0DE9E6',
          'QueueKey5CB3BD8B',
          'TableKey256F1BD5',
        ],
        userPools: ['UserPoolDAD9161D'],
        userPoolClients: ['UserPoolHumanClientEBBF325F', 'UserPoolM2mClientEC7E2860'],
        secrets: [
          'BookingsSigningSecret61CED192',
          'SmtpCredentials745AE4B4',
          'VerificationLinkSecretFB9F9542',
        ],
        queues: [
          'EmailWorkerDeadLetterQueueC95922B6',
          'EmailWorkerQueue1ABBEC99',
          'WebhookWorkerDeadLetterQueueA0981B99',
          'WebhookWorkerQueue007E547C',
        ],
        logGroups: [
          'BookingEventSweeperFunctionLogGroup0DECE596',
          'BookingsFunctionLogGroup139B2DB9',
          'CatchAllFunctionLogGroup9650E526',
          'EmailWorkerLogGroupC450543B',
          'HealthFunctionLogGroup8350B222',
          'HttpApiAccessLogsDED8C7A4',
          'SecretRotationFunctionLogGroup2E9EF0C3',
          'UsersFunctionLogGroup08AD9B83',
          'WebhookWorkerLogGroupBC47AAE5',
          'WebhooksFunctionLogGroupE3BB8888',
        ],
      });
    },
  );

  it('returns people to the callback URLs it is given', () => {
    const prod = synthesise('prod', { 'aws:cdk:bundling-stacks': [] });
    prod.template.hasResourceProperties('AWS::Cognito::UserPoolClient', { CallbackURLs: prodCallbackUrls });
  });

  it('refuses to synthesise with any callback URL on this machine, the default included, naming each', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const message =
      'Invalid BulwarkStack props: in prod, callbackUrls must name only the app that receives sign-ins (-c callbackUrls=https://app.example.org/callback); these point at this machine:';
    expect(() => new BulwarkStack(app, 'Bulwark-prod-default', { stage: 'prod', email: prodEmail })).toThrow(
      `${message} http://localhost:3000/callback`,
    );
    expect(
      () =>
        new BulwarkStack(app, 'Bulwark-prod-local', {
          stage: 'prod',
          email: prodEmail,
          callbackUrls: [
            'https://app.example.org/callback',
            'http://localhost:3000/callback',
            'https://127.0.0.2:8080/callback',
            'https://[::1]:8443/callback',
            'https://app.localhost/callback',
          ],
        }),
    ).toThrow(
      `${message} http://localhost:3000/callback, https://127.0.0.2:8080/callback, https://[::1]:8443/callback, https://app.localhost/callback`,
    );
  });

  it('still lets dev return people to a local app beside a real one', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const callbackUrls = ['https://app.example.org/callback', 'http://localhost:3000/callback'];
    const stack = new BulwarkStack(app, 'Bulwark-dev-local', { stage: 'dev', callbackUrls });
    Template.fromStack(stack).hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: callbackUrls,
    });
  });

  it('refuses to synthesise without an email sender, naming the context flag', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(
      () => new BulwarkStack(app, 'Bulwark-prod-no-email', { stage: 'prod', callbackUrls: prodCallbackUrls }),
    ).toThrow(
      'Invalid BulwarkStack props: in prod, email must name the verified SES identity to send from (-c sesIdentity=example.org): without it the email worker sends from example.com, which SES refuses, and Cognito from its built-in sender (about 50 emails a day)',
    );
  });

  it('refuses an SMTP relay sending from the placeholder example.com, and accepts it with a real From', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const smtp = { host: 'smtp.example.org' };
    // What bin/app.ts passes for `-c smtpHost=...` without `-c sesIdentity` or `-c emailFrom`.
    expect(
      () =>
        new BulwarkStack(app, 'Bulwark-prod-smtp-placeholder', {
          stage: 'prod',
          callbackUrls: prodCallbackUrls,
          email: { identity: defaultEmailIdentity, smtp },
        }),
    ).toThrow(
      'Invalid BulwarkStack props: in prod, email.from (noreply@example.com) must not be at the placeholder example.com: name your sender (-c sesIdentity=..., or -c emailFrom=... with -c smtpHost)',
    );
    const stack = new BulwarkStack(app, 'Bulwark-prod-smtp', {
      stage: 'prod',
      callbackUrls: prodCallbackUrls,
      email: { identity: defaultEmailIdentity, from: 'Bulwark <no-reply@example.org>', smtp },
    });
    const worker = resourceOf(
      Template.fromStack(stack),
      'AWS::Lambda::Function',
      logicalIdOf(stack, stack.workers['email-worker'].worker.lambdaFunction.functionArn),
    );
    expect(worker.Properties.Environment).toMatchObject({
      Variables: { EMAIL_FROM: 'Bulwark <no-reply@example.org>', EMAIL_TRANSPORT: 'smtp' },
    });
  });

  it("sends Cognito's emails through the SES identity it is given", () => {
    synthesise('prod', { 'aws:cdk:bundling-stacks': [] }).template.hasResourceProperties(
      'AWS::Cognito::UserPool',
      {
        EmailConfiguration: Match.objectLike({
          EmailSendingAccount: 'DEVELOPER',
          From: 'Bulwark <noreply@example.org>',
        }),
      },
    );
  });
});

interface RemovalPolicies {
  readonly DeletionPolicy: string;
  readonly UpdateReplacePolicy: string;
}
const deletedWithStack: RemovalPolicies = { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' };
const retained: RemovalPolicies = { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' };
/** Kept through updates and stack deletion, deleted by the rollback of the create that made it. */
const retainedExceptOnCreate: RemovalPolicies = {
  DeletionPolicy: 'RetainExceptOnCreate',
  UpdateReplacePolicy: 'Retain',
};

/** Every role the route table checks, each once: one group each. */
const routeRoles = [
  ...new Set(
    routes.flatMap((route): readonly string[] =>
      route.auth.kind === 'principal' && 'roles' in route.auth ? route.auth.roles : [],
    ),
  ),
];
/** Every resource server the route table's scopes name (`bookings` of `bookings/read`), each once. */
const routeScopeServers = [
  ...new Set(
    routes.flatMap((route): readonly string[] =>
      route.auth.kind === 'principal' && 'scopes' in route.auth
        ? route.auth.scopes.map((scope) => scope.slice(0, scope.lastIndexOf('/')))
        : [],
    ),
  ),
];

/** Every kind of resource that has removal policies: its type, how many the stack has, and its prod policies. */
const removalCases = [
  ['tables', 'AWS::DynamoDB::GlobalTable', tableDefinitions.length, retained],
  ['user pool', 'AWS::Cognito::UserPool', 1, retained],
  // Kept with the pool, so that a renamed or dropped role keeps its members and a kept pool stays whole.
  ['user pool groups', 'AWS::Cognito::UserPoolGroup', routeRoles.length, retainedExceptOnCreate],
  ['app clients (human and M2M)', 'AWS::Cognito::UserPoolClient', 2, retainedExceptOnCreate],
  [
    'resource servers',
    'AWS::Cognito::UserPoolResourceServer',
    routeScopeServers.length,
    retainedExceptOnCreate,
  ],
  ['secrets', 'AWS::SecretsManager::Secret', 3, retainedExceptOnCreate],
  ['worker queues and DLQs', 'AWS::SQS::Queue', 2 * workerNames.length, retainedExceptOnCreate],
  [
    'function and access log groups',
    'AWS::Logs::LogGroup',
    allFunctionNames.length + 1,
    retainedExceptOnCreate,
  ],
] as const;

describe.each(['dev', 'prod'] as const)('BulwarkStack removal policies in the %s stage', (stage) => {
  let synthesised: Synthesised;
  const inStage = (prod: RemovalPolicies): RemovalPolicies => (stage === 'prod' ? prod : deletedWithStack);

  beforeAll(() => {
    // Only removal settings are read here: no bundling.
    synthesised = synthesise(stage, { 'aws:cdk:bundling-stacks': [] });
  }, 60_000);

  /** Just the two policies, so that a resource without one shows `undefined` in a failure. */
  function policiesOf(resource: { DeletionPolicy?: unknown; UpdateReplacePolicy?: unknown }): unknown {
    return { DeletionPolicy: resource.DeletionPolicy, UpdateReplacePolicy: resource.UpdateReplacePolicy };
  }

  it.each(removalCases)('gives the %s their stage policies', (_kind, type, count, prod) => {
    const resources = Object.values(synthesised.template.findResources(type));
    expect(resources).toHaveLength(count);
    for (const resource of resources) expect(policiesOf(resource)).toEqual(inStage(prod));
  });

  it('names the hosted domain after the stack and account by default, as every existing deployment has it', () => {
    synthesised.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['', [`bulwark-${stage}-`, { Ref: 'AWS::AccountId' }]] },
    });
  });

  it('deletes the hosted domain with the stack, even in prod: kept, it would hold its prefix from the next stack', () => {
    const domains = Object.values(synthesised.template.findResources('AWS::Cognito::UserPoolDomain'));
    expect(domains.map(policiesOf)).toEqual([{ DeletionPolicy: undefined, UpdateReplacePolicy: undefined }]);
  });

  it('keeps every log group (functions, workers, rotation, API access) a year in prod and a month in dev', () => {
    const groups = Object.values(synthesised.template.findResources('AWS::Logs::LogGroup'));
    expect(groups).toHaveLength(allFunctionNames.length + 1);
    for (const group of groups) expect(group.Properties.RetentionInDays).toBe(stage === 'prod' ? 365 : 30);
  });

  it('keeps every log group as long as logRetention says, when given', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new BulwarkStack(app, `Bulwark-${stage}-retention`, {
      stage,
      ...(stage === 'prod' ? { callbackUrls: prodCallbackUrls, email: prodEmail } : {}),
      logRetention: logs.RetentionDays.TWO_YEARS,
    });
    const groups = Object.values(Template.fromStack(stack).findResources('AWS::Logs::LogGroup'));
    expect(groups).toHaveLength(allFunctionNames.length + 1);
    for (const group of groups) expect(group.Properties.RetentionInDays).toBe(731);
  });

  it('keeps the table key as long as the tables, and the other four keys like the queues', () => {
    const { stack, template } = synthesised;
    const keys = template.findResources('AWS::KMS::Key');
    expect(Object.keys(keys)).toHaveLength(5);
    const tableKeyId = logicalIdOf(stack, stack.tableKey.key.keyArn);
    for (const [logicalId, key] of Object.entries(keys)) {
      expect(policiesOf(key)).toEqual(inStage(logicalId === tableKeyId ? retained : retainedExceptOnCreate));
    }
  });

  it('turns deletion protection on exactly where the policy is Retain: a rollback could not delete it', () => {
    const { template } = synthesised;
    for (const table of Object.values(template.findResources('AWS::DynamoDB::GlobalTable'))) {
      expect(table.Properties.Replicas).toEqual([
        expect.objectContaining({ DeletionProtectionEnabled: stage === 'prod' }),
      ]);
    }
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      DeletionProtection: stage === 'prod' ? 'ACTIVE' : 'INACTIVE',
    });
  });

  it('retains nothing else: every other resource, the alarm topic included, is deleted with the stack', () => {
    const keptTypes = new Set<string>(['AWS::KMS::Key', ...removalCases.map(([, type]) => type)]);
    const others = Object.values(
      synthesised.template.toJSON().Resources as Record<string, Record<string, unknown>>,
    ).filter((resource) => !keptTypes.has(resource.Type as string));
    expect(others.length).toBeGreaterThan(0);
    for (const resource of others) {
      expect([undefined, 'Delete']).toContain(resource.DeletionPolicy);
      expect([undefined, 'Delete']).toContain(resource.UpdateReplacePolicy);
    }
    expect(Object.keys(synthesised.template.findResources('AWS::SNS::Topic'))).toHaveLength(1);
  });
});

describe('parseStage', () => {
  it('defaults to dev when no stage is given', () => {
    expect(parseStage(undefined)).toBe('dev');
  });

  it('accepts dev and prod', () => {
    expect(parseStage('dev')).toBe('dev');
    expect(parseStage('prod')).toBe('prod');
  });

  it('rejects an unknown stage, naming the accepted ones', () => {
    expect(() => parseStage('staging')).toThrow('Unknown stage "staging"; expected one of: dev, prod');
  });
});
