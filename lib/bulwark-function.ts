// A Node.js 22 arm64 Lambda function bundled locally with esbuild as ESM, with its own log group.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { metricNamespaceProblems } from '../middleware/metrics/catalog.js';
import { defaultMetricNamespace } from './metric-namespace.js';
import { shellWord } from './shell-word.js';

/**
 * The Bulwark checkout (the folder above lib/): the default project root, where the sample's handlers and
 * package-lock.json are.
 */
const bulwarkRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** ESM bundles have no `require`; some dependencies still call it for Node built-ins. */
const requireBanner =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/**
 * The default email transport of deployed functions: the stack sets EMAIL_TRANSPORT to it unless it is
 * given an SMTP relay, and bundles carry only it (`define` below), which leaves nodemailer (~240 KiB,
 * SMTP) out of the email worker.
 */
export const deployedEmailTransport = 'ses';

/**
 * Run on each source map after esbuild. esbuild writes `sources` relative to the bundle's folder, which CDK
 * puts inside the cloud assembly, so the map, and with it the asset hash, depended on where the assembly was
 * written: `cdk diff` against one written to another folder (`cdk synth -o`, a CI job) showed every
 * function's code changed. This names a source inside the project by its path from the root
 * (`middleware/errors.ts`), and a dependency outside it (a symlinked or hoisted node_modules) by its path from
 * `node_modules/`, as if it were inside. Under `--enable-source-maps` Node resolves them against the map in
 * /var/task, so a frame names `/var/task/middleware/errors.ts:<line>:<column>`. The root is taken by its real
 * path, as esbuild names sources by theirs; hooks run in a shell, hence a `node` program and not a function.
 */
const projectRelativeSourcesProgram = `
import { readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
const [bundleDir, projectRoot] = process.argv.slice(1);
const root = realpathSync(projectRoot);
for (const name of readdirSync(bundleDir).filter((name) => name.endsWith(".map"))) {
  const mapFile = join(bundleDir, name);
  const map = JSON.parse(readFileSync(mapFile, "utf8"));
  map.sources = map.sources.map((source) => {
    const path = resolve(bundleDir, source);
    const inProject = relative(root, path);
    const dependency = path.indexOf("/node_modules/");
    return inProject.startsWith("../") && dependency !== -1 ? path.slice(dependency + 1) : inProject;
  });
  writeFileSync(mapFile, JSON.stringify(map));
}
`;

/** The bundling hook running `projectRelativeSourcesProgram` on the bundle `outputDir` built from `inputDir`. */
const projectRelativeSourceMapHooks: nodejs.ICommandHooks = {
  beforeBundling: () => [],
  beforeInstall: () => [],
  afterBundling: (inputDir, outputDir) => [
    `node --input-type=module -e ${shellWord(projectRelativeSourcesProgram)} ${shellWord(outputDir)} ${shellWord(inputDir)}`,
  ],
};

/**
 * How every function is bundled (local esbuild, no Docker). Exported so the cold-start benchmark
 * (test/bench/cold-start.bench.ts) bundles exactly what gets deployed.
 */
export const bundlingOptions = {
  minify: true,
  sourceMap: true,
  // Stack traces need only the mappings; embedding every source made users' map 3.9 MB, which
  // `--enable-source-maps` reads at cold start.
  sourcesContent: false,
  commandHooks: projectRelativeSourceMapHooks,
  format: nodejs.OutputFormat.ESM,
  target: 'node22',
  // Prefer packages' ESM builds, which the ESM output can tree-shake.
  mainFields: ['module', 'main'],
  banner: requireBanner,
  // Unset where the sources run (local runtime, tests), so SMTP stays available there; constant here,
  // so esbuild drops the other transport's branch and its imports (functions/email-worker/transports.ts).
  define: { 'process.env.BULWARK_BUNDLED_EMAIL_TRANSPORT': JSON.stringify(deployedEmailTransport) },
  // The AWS SDK is bundled, not taken from the runtime (CDK's default for nodejs22.x externalises
  // `@aws-sdk/*`): the deployed code then runs the exact SDK versions of package-lock.json that the
  // tests ran, Powertools (idempotency, parameters) and @smithy/node-http-handler stay on the same
  // @smithy core as the clients they wrap, and esbuild tree-shakes the clients into the one ESM file.
  externalModules: [],
  forceDockerBundling: false,
} as const satisfies nodejs.BundlingOptions;

/**
 * Why the functions stay on nodejs22.x while both nag packs ask for the newest runtime aws-cdk-lib lists
 * (nodejs24.x).
 */
const runtimePinReason =
  'Pinned to nodejs22.x, the runtime esbuild targets (node22): moving to nodejs24.x, the newest runtime aws-cdk-lib lists, is a reviewed change of both, not a silent one. No test runs on Lambda: the tests and the local runtime run this code on Node 20 (README, Node versions), and nothing here has run on Node 24.';

/** A file or folder copied into a function's bundle, for code that reads it at run time. */
export interface BundledFile {
  /** Path relative to the project root (`projectRoot`), e.g. `functions/email-worker/templates`. */
  readonly from: string;
  /** Path relative to the bundle root (where `index.mjs` is), e.g. `templates`; missing folders are created. */
  readonly to: string;
}

export interface BulwarkFunctionProps {
  /**
   * Handler module, absolute or relative to `projectRoot`; it must export `handler` and lie inside
   * `projectRoot`.
   * @example 'functions/users/handler.ts'
   */
  readonly entry: string;
  /**
   * The folder bundling runs in: a relative `entry` and every `bundledFiles` `from` are resolved against it,
   * and the entry and the lock file must lie inside it. An app of your own passes its root here.
   * @default - the Bulwark checkout (the folder above lib/)
   */
  readonly projectRoot?: string;
  /**
   * The lock file of the dependencies the bundle is built from (npm, yarn, pnpm or bun), absolute or
   * relative to `projectRoot`; it must lie inside `projectRoot`.
   * @default - `package-lock.json` in `projectRoot`
   */
  readonly depsLockFilePath?: string;
  /** Name of the function in logs and metrics (`POWERTOOLS_SERVICE_NAME`), e.g. `users`. */
  readonly serviceName: string;
  /**
   * Memory in MB, a whole number from 128 to 10240; CPU scales with it.
   * @default 256
   */
  readonly memoryMb?: number;
  /**
   * Lambda timeout in seconds, a whole number from 1 to 900.
   * @default 10
   */
  readonly timeoutSec?: number;
  /**
   * The CloudWatch namespace its metrics go to (`POWERTOOLS_METRICS_NAMESPACE`, which `createMetrics`
   * reads); alarms and dashboards on them must use the same one, as they do on the same default.
   * @default - `Bulwark/<stack name>`, the stack's own, so another stack's metrics never page this one
   */
  readonly metricNamespace?: string;
  /**
   * Extra environment variables, added after the defaults (so they may override them), except
   * `POWERTOOLS_METRICS_NAMESPACE`: that is `metricNamespace`, which is checked as CloudWatch checks it.
   * @default - only NODE_OPTIONS and the Powertools variables
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * How long the function's log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Files or folders copied into the bundle after esbuild ran (esbuild bundles only what is imported).
   * @default - none
   */
  readonly bundledFiles?: readonly BundledFile[];
  /**
   * The email transport the bundle carries (an esbuild `define`): with `ses`, nodemailer stays out;
   * `smtp` bundles it, for a worker sending through an SMTP relay.
   * @default 'ses'
   */
  readonly emailTransport?: 'ses' | 'smtp';
}

const safePath = /^[\w.-]+(?:\/[\w.-]+)*$/;

/** Lambda's limits on memory (MB) and timeout (seconds), both whole numbers. */
const memoryMbRange = { min: 128, max: 10_240 };
const timeoutSecRange = { min: 1, max: 900 };

/** Every size Lambda would refuse at deploy, checked at synth: CloudFormation's own checks miss some (20000 MB, NaN). */
function sizeProblems(memoryMb: number, timeoutSec: number): string[] {
  return (
    [
      ['memoryMb', memoryMb, memoryMbRange],
      ['timeoutSec', timeoutSec, timeoutSecRange],
    ] as const
  ).flatMap(([prop, value, { min, max }]) =>
    Number.isInteger(value) && value >= min && value <= max
      ? []
      : [`${prop} must be a whole number from ${min} to ${max} (got ${value})`],
  );
}

/** Every problem with the bundled files, checked at synth so a typo fails there and not at cold start. */
function bundledFileProblems(projectRoot: string, files: readonly BundledFile[]): string[] {
  return files.flatMap((file) => {
    const problems: string[] = [];
    for (const [field, path] of [
      ['from', file.from],
      ['to', file.to],
    ] as const) {
      if (!safePath.test(path) || path.split('/').includes('..')) {
        problems.push(
          `bundledFiles ${field} ${JSON.stringify(path)} must be a relative path inside its root`,
        );
      }
    }
    if (safePath.test(file.from) && !existsSync(resolve(projectRoot, file.from))) {
      problems.push(`bundledFiles from ${JSON.stringify(file.from)} does not exist`);
    }
    return problems;
  });
}

/**
 * esbuild's afterBundling hook copying each file into the bundle. Local bundling runs it with `bash -c`, and
 * the directories are wherever the checkout is (a CI workspace named after a branch may hold `$(…)`), so
 * each path is one single-quoted word.
 */
export function bundledFileHooks(files: readonly BundledFile[]): nodejs.ICommandHooks {
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (inputDir, outputDir) =>
      files.map((file) => {
        const folder = file.to.split('/').slice(0, -1).join('/');
        const copy = `cp -R ${shellWord(`${inputDir}/${file.from}`)} ${shellWord(`${outputDir}/${file.to}`)}`;
        return folder === '' ? copy : `mkdir -p ${shellWord(`${outputDir}/${folder}`)} && ${copy}`;
      }),
  };
}

/**
 * A `NodejsFunction` with the project's runtime, bundling and logging settings.
 *
 * @example
 * const users = new BulwarkFunction(this, 'UsersFunction', {
 *   entry: 'functions/users/handler.ts',
 *   serviceName: 'users',
 *   memoryMb: 512,
 * });
 * table.grantTableActions(users.lambdaFunction, ['dynamodb:GetItem', 'dynamodb:PutItem']);
 */
export class BulwarkFunction extends Construct {
  /** The created function. */
  public readonly lambdaFunction: nodejs.NodejsFunction;
  /** The function's log group, created explicitly so retention and removal are set. */
  public readonly logGroup: logs.LogGroup;
  /** The execution role: no managed policy, only writes to its own log group plus what is granted. */
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: BulwarkFunctionProps) {
    super(scope, id);
    const namespace = props.metricNamespace ?? defaultMetricNamespace('BulwarkFunction', this);
    const projectRoot = resolve(props.projectRoot ?? bulwarkRoot);
    const memoryMb = props.memoryMb ?? 256;
    const timeoutSec = props.timeoutSec ?? 10;
    const problems = [
      ...sizeProblems(memoryMb, timeoutSec),
      ...bundledFileProblems(projectRoot, props.bundledFiles ?? []),
      ...metricNamespaceProblems(namespace).map((problem) => `metricNamespace ${problem}`),
      ...(props.environment?.POWERTOOLS_METRICS_NAMESPACE === undefined
        ? []
        : ['environment must not set POWERTOOLS_METRICS_NAMESPACE (set metricNamespace)']),
    ];
    if (problems.length > 0) throw new Error(`Invalid BulwarkFunction props: ${problems.join('; ')}`);
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    // Instead of AWSLambdaBasicExecutionRole (logs:* on every log group): its own log group only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.serviceName} function`,
    });
    this.logGroup.grantWrite(this.role);
    this.lambdaFunction = new nodejs.NodejsFunction(this, 'Function', {
      role: this.role,
      entry: resolve(projectRoot, props.entry),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: memoryMb,
      timeout: Duration.seconds(timeoutSec),
      projectRoot,
      depsLockFilePath: resolve(projectRoot, props.depsLockFilePath ?? 'package-lock.json'),
      logGroup: this.logGroup,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        POWERTOOLS_METRICS_NAMESPACE: namespace,
        ...props.environment,
      },
      bundling: {
        ...bundlingOptions,
        mainFields: [...bundlingOptions.mainFields],
        define: {
          ...bundlingOptions.define,
          'process.env.BULWARK_BUNDLED_EMAIL_TRANSPORT': JSON.stringify(
            props.emailTransport ?? deployedEmailTransport,
          ),
        },
        externalModules: [...bundlingOptions.externalModules],
        commandHooks: {
          ...bundlingOptions.commandHooks,
          afterBundling: (inputDir, outputDir) => [
            ...bundlingOptions.commandHooks.afterBundling(inputDir, outputDir),
            ...bundledFileHooks(props.bundledFiles ?? []).afterBundling(inputDir, outputDir),
          ],
        },
      },
    });
    Validations.of(this.lambdaFunction).acknowledge(
      { id: 'AwsSolutions-L1', reason: runtimePinReason },
      { id: 'Serverless-LambdaLatestVersion', reason: runtimePinReason },
      {
        id: 'Serverless-LambdaTracing',
        reason:
          'Requests are correlated by x-correlation-id in structured logs and audit events; X-Ray is not wired (no Powertools Tracer), and active tracing would add xray actions on "*".',
      },
    );
  }
}
