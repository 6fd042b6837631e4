// Cold-start proxy per function: bundle bytes and module init (fresh Node processes) next to a Middy + Powertools floor.
import { execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import { type BuildOptions, build, type Loader, type Metafile } from 'esbuild';
import ts from 'typescript';
import { scheduledEvent } from '../../bin/runtime/schedule.js';
import {
  catchAllFunction,
  catchAllRouteKey,
  type HttpFunctionName,
  httpFunctions,
  type RouteDefinition,
  routes,
} from '../../functions/routes.js';
import { scheduledFunctions } from '../../functions/schedules.js';
import { type WorkerName, workers } from '../../functions/workers.js';
import { type BundledFile, bundlingOptions } from '../../lib/bulwark-function.js';
import { httpFunctionBundledFiles, workerBundledFiles } from '../../lib/bulwark-stack.js';
import type { BenchSuite, Measurement } from './harness.js';

const processes = Number(process.env.BENCH_COLD_STARTS ?? 20);
/** Comma-separated function names to measure (all when unset); BENCH_COLD_START_KEEP keeps the bundles. */
const only = process.env.BENCH_COLD_START_ONLY?.split(',');
const keepBundles = process.env.BENCH_COLD_START_KEEP !== undefined;
const repositoryRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const baselineModule = join(repositoryRoot, 'test/bench/cold-start-baseline.ts');
const baselineDynamoDbModule = join(repositoryRoot, 'test/bench/cold-start-baseline-dynamodb.ts');
/** Lambda runs the bundles with the NODE_OPTIONS lib/bulwark-function.ts sets; source maps cost init time. */
const nodeOptions = ['--enable-source-maps'];

/**
 * esbuild options equal to the command line CDK's NodejsFunction builds from `bundling`
 * (aws-lambda-nodejs Bundling.buildEsbuildArgs in aws-cdk-lib 2.276): `--bundle --platform=node`,
 * the AWS SDK v3 external unless `bundleAwsSDK`, `index.mjs` for ESM. Settings this mapping does not
 * know stop the benchmark rather than being silently ignored.
 */
export function esbuildOptionsFor(bundling: BundlingOptions, outdir: string): BuildOptions {
  const known = new Set([
    'minify',
    'sourceMap',
    'sourceMapMode',
    'sourcesContent',
    'format',
    'target',
    'mainFields',
    'banner',
    'footer',
    'externalModules',
    'bundleAwsSDK',
    'define',
    'keepNames',
    'loader',
    'forceDockerBundling',
    // Not esbuild options: the benchmark runs them on each function's bundle after the build, as CDK does.
    'commandHooks',
  ]);
  const unknown = Object.keys(bundling).filter((key) => !known.has(key));
  if (unknown.length > 0) throw new Error(`cold-start bench: map these bundling options first: ${unknown}`);
  // CDK excludes @smithy/* too only behind this feature flag (cdk.json context).
  const context = (JSON.parse(readFileSync(join(repositoryRoot, 'cdk.json'), 'utf8')).context ??
    {}) as Record<string, unknown>;
  const sdkExternals =
    context['@aws-cdk/aws-lambda-nodejs:sdkV3ExcludeSmithyPackages'] === true
      ? ['@aws-sdk/*', '@smithy/*']
      : ['@aws-sdk/*'];
  const esm = bundling.format === 'esm';
  return {
    bundle: true,
    platform: 'node',
    target: bundling.target ?? 'node22',
    ...(bundling.format ? { format: bundling.format } : {}),
    outfile: join(outdir, esm ? 'index.mjs' : 'index.js'),
    minify: bundling.minify ?? false,
    // SourceMapMode.DEFAULT is a bare `--sourcemap`; the other modes are esbuild's own values.
    sourcemap:
      bundling.sourceMapMode === undefined || bundling.sourceMapMode === 'default'
        ? (bundling.sourceMap ?? bundling.sourceMapMode !== undefined)
        : bundling.sourceMapMode,
    sourcesContent: bundling.sourcesContent ?? true,
    external: bundling.externalModules ?? (bundling.bundleAwsSDK ? [] : sdkExternals),
    // CDK passes loader names through as strings; esbuild rejects an unknown one itself.
    ...(bundling.loader ? { loader: bundling.loader as Record<string, Loader> } : {}),
    ...(bundling.define ? { define: bundling.define } : {}),
    keepNames: bundling.keepNames ?? false,
    ...(bundling.banner ? { banner: { js: bundling.banner } } : {}),
    ...(bundling.footer ? { footer: { js: bundling.footer } } : {}),
    ...(bundling.mainFields ? { mainFields: [...bundling.mainFields] } : {}),
    absWorkingDir: repositoryRoot,
    metafile: true,
    logLevel: 'error',
  };
}

interface Bundle {
  readonly file: string;
  /** `export … from` lines naming exactly the AWS SDK bindings the repository's code in the bundle imports. */
  readonly sdkImports: readonly string[];
}

/**
 * The AWS SDK bindings (clients, commands, exceptions) that the repository's own modules in a bundle
 * import, statically or with `import()`: what a floor handler needs to import to load the same SDK
 * code. Read from the sources, so it holds whether the SDK is bundled (tree-shaken to those names) or
 * external.
 */
function sdkImportsOf(kept: ReadonlySet<string>): string[] {
  const names = new Map<string, Set<string>>();
  const bundledSdk = [...kept].some((input) => input.includes('node_modules/@aws-sdk/'));
  const add = (pkg: string, name: string) => {
    // A command whose module esbuild dropped (its caller was tree-shaken) is not loaded by the function.
    const command = /Command$/.test(name) ? `node_modules/${pkg}/dist-es/commands/${name}.js` : undefined;
    if (bundledSdk && command && !kept.has(command)) return;
    names.set(pkg, (names.get(pkg) ?? new Set()).add(name));
  };
  const ownSources = [...kept].filter(
    (input) =>
      !input.includes('node_modules/') &&
      /\.[cm]?tsx?$/.test(input) &&
      existsSync(resolve(repositoryRoot, input)),
  );
  for (const input of ownSources) {
    const source = ts.createSourceFile(
      input,
      readFileSync(resolve(repositoryRoot, input), 'utf8'),
      ts.ScriptTarget.Latest,
    );
    const visit = (node: ts.Node): void => {
      if (
        (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
        node.moduleSpecifier &&
        ts.isStringLiteral(node.moduleSpecifier) &&
        node.moduleSpecifier.text.startsWith('@aws-sdk/')
      ) {
        const pkg = node.moduleSpecifier.text;
        const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
        const typeOnlyImport = clause?.phaseModifier === ts.SyntaxKind.TypeKeyword;
        if (typeOnlyImport || (ts.isExportDeclaration(node) && node.isTypeOnly)) return;
        const bindings = clause?.namedBindings;
        if (bindings && ts.isNamedImports(bindings)) {
          for (const element of bindings.elements) {
            if (!element.isTypeOnly) add(pkg, (element.propertyName ?? element.name).text);
          }
        } else add(pkg, '*');
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteral(node.arguments[0]) &&
        node.arguments[0].text.startsWith('@aws-sdk/')
      ) {
        add(node.arguments[0].text, '*');
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return [...names.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([pkg, bound], index) =>
      bound.has('*')
        ? `export * as sdk${index} from '${pkg}';`
        : `export { ${[...bound].sort().join(', ')} } from '${pkg}';`,
    );
}

async function bundle(
  entry: Pick<BuildOptions, 'entryPoints'> | Pick<BuildOptions, 'stdin'>,
  outdir: string,
): Promise<Bundle> {
  const result = await build({ ...esbuildOptionsFor(bundlingOptions, outdir), ...entry });
  const metafile = result.metafile as Metafile;
  const output = Object.entries(metafile.outputs).find(([file]) => !file.endsWith('.map'));
  if (!output) throw new Error(`cold-start bench: esbuild wrote no bundle to ${outdir}`);
  const file = resolve(repositoryRoot, output[0]);
  const kept = new Set(
    Object.entries(output[1].inputs)
      .filter(([, input]) => input.bytesInOutput > 0)
      .map(([input]) => input),
  );
  return { file, sdkImports: sdkImportsOf(kept) };
}

/** The runner each fresh process executes: import the bundle, handle one event, report both times. */
const runnerSource = `
import { pathToFileURL } from 'node:url';
const [bundle, eventJson] = process.argv.slice(2);
const event = JSON.parse(eventJson);
const context = {
  functionName: 'bench', functionVersion: '$LATEST', memoryLimitInMB: '256', awsRequestId: 'cold-start-1',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:bench', logGroupName: '/aws/lambda/bench',
  logStreamName: 'bench', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 10000,
  done() {}, fail() {}, succeed() {},
};
const cpuAtStart = process.cpuUsage();
const started = performance.now();
const { handler } = await import(pathToFileURL(bundle).href);
const imported = performance.now();
const result = await handler(event, context);
const handled = performance.now();
const cpu = process.cpuUsage(cpuAtStart);
const outcome = result?.statusCode ?? (Array.isArray(result?.batchItemFailures) ? 'batch:' + result.batchItemFailures.length : 'none');
process.stdout.write('\\n@@cold-start ' + JSON.stringify({ importMs: imported - started, totalMs: handled - started, cpuMs: (cpu.user + cpu.system) / 1000, outcome }) + '\\n');
process.exit(0);
`;

interface Run {
  readonly importMs: number;
  readonly totalMs: number;
  /** CPU time of the process over the same span: far less sensitive to a busy machine than wall time. */
  readonly cpuMs: number;
  readonly outcome: string | number;
}

function runOnce(runner: string, file: string, event: unknown, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...nodeOptions, runner, file, JSON.stringify(event)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((text) => text.startsWith('@@cold-start '));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `cold-start run of ${file} failed (${code}): ${stderr.slice(-2000)}${stdout.slice(-500)}`,
          ),
        );
        return;
      }
      resolvePromise(JSON.parse(line.slice('@@cold-start '.length)) as Run);
    });
  });
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

function httpEvent(
  route: Pick<RouteDefinition, 'method' | 'path'>,
  routeKey = `${route.method} ${route.path}`,
): Record<string, unknown> {
  const rawPath = route.path.replace(/\{[^}]+\}/g, 'bench-id');
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: { host: 'api.example.com', 'user-agent': 'cold-start-bench' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'bench',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: {
        method: route.method,
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.10',
        userAgent: 'bench',
      },
      requestId: 'cold-start-1',
      routeKey,
      stage: '$default',
      time: '22/Nov/2025:12:00:00 +0000',
      timeEpoch: 1_763_812_800_000,
    },
    pathParameters: Object.fromEntries(
      [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => [m[1], 'bench-id']),
    ),
    isBase64Encoded: false,
  };
}

/**
 * What a function deploys: every file of its bundle folder (index.mjs and the files the stack copies in,
 * such as templates and phone metadata) except source maps, which Node reads only to format a stack trace.
 */
function deployedBytes(folder: string): number {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .map((name) => join(folder, name))
    .filter((path) => !path.endsWith('.map') && statSync(path).isFile())
    .reduce((sum, path) => sum + statSync(path).size, 0);
}

interface Case {
  readonly name: string;
  readonly entry: string;
  /** Copied next to the bundle, as the stack's `bundledFiles` are. */
  readonly bundledFiles: readonly BundledFile[];
  readonly describe: string;
  readonly event: unknown;
}

/**
 * One event per function that needs no network beyond the stub DynamoDB: health's real probe; for
 * other HTTP functions a protected route called without credentials (401, the cheapest rejection);
 * for the catch-all a known path with a method it lacks (405); for workers an empty batch; for scheduled
 * functions their schedule's event (the sweeper then queries each shard of an index the stub finds empty).
 */
function cases(): Case[] {
  const table: readonly RouteDefinition[] = routes;
  const http = Object.entries(httpFunctions).map(([name, definition]) => {
    if (name === catchAllFunction) {
      return {
        name,
        entry: definition.entry,
        bundledFiles: [],
        describe: `PATCH /users (${catchAllRouteKey} → 405)`,
        event: httpEvent({ method: 'PATCH', path: '/users' }, catchAllRouteKey),
      };
    }
    const own = table.filter((route) => route.function === name);
    const route = own.find((candidate) => candidate.auth.kind !== 'public') ?? own[0];
    if (!route) throw new Error(`cold-start bench: function ${name} has no route`);
    const event = httpEvent(route);
    return {
      name,
      entry: definition.entry,
      bundledFiles: httpFunctionBundledFiles[name as HttpFunctionName] ?? [],
      describe: `${route.method} ${route.path}${route.auth.kind === 'public' ? '' : ' (no token → 401)'}`,
      event,
    };
  });
  const queue = Object.entries(workers).map(([name, definition]) => ({
    name,
    entry: definition.entry,
    bundledFiles: workerBundledFiles[name as WorkerName] ?? [],
    describe: 'empty SQS batch',
    event: { Records: [] },
  }));
  const scheduled = Object.entries(scheduledFunctions).map(([name, definition]) => ({
    name,
    entry: definition.entry,
    bundledFiles: [],
    describe: 'its schedule event (nothing pending)',
    event: scheduledEvent(name, new Date(Date.UTC(2025, 10, 22, 12))),
  }));
  return [...http, ...queue, ...scheduled];
}

/** A DynamoDB endpoint on 127.0.0.1 that answers every call with `{}` (GetItem: no item). */
async function stubDynamoDb(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      response.end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

/** What the deployed stack gives the functions (lib/bulwark-stack.ts), with dummy values and no AWS. */
function lambdaEnvironment(name: string, dynamoDbUrl: string): NodeJS.ProcessEnv {
  const secretArn = (name: string) => `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`;
  return {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDBENCH',
    AWS_SECRET_ACCESS_KEY: 'bench-secret',
    AWS_SESSION_TOKEN: 'bench-session',
    AWS_LAMBDA_FUNCTION_NAME: name,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    LAMBDA_TASK_ROOT: '/var/task',
    // Every SDK client reads it; the functions' own DYNAMODB_ENDPOINT (local mode) stays unset, as in AWS.
    AWS_ENDPOINT_URL_DYNAMODB: dynamoDbUrl,
    POWERTOOLS_SERVICE_NAME: name,
    POWERTOOLS_LOG_LEVEL: 'INFO',
    APP_TABLE_NAME: 'bench-app',
    TOOLKIT_TABLE_NAME: 'bench-toolkit',
    BULWARK_STAGE: 'dev',
    KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001',
    KMS_BLIND_INDEX_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000002',
    AUTH_ISSUER: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench',
    AUTH_CLIENT_IDS: 'benchhumanclient,benchm2mclient',
    AUTH_TOKEN_USE: 'access',
    // Secrets by ARN, read at run time; none of the measured requests reads one.
    SERVICE_SIGNING_SECRET_ARN_BOOKINGS: secretArn('BookingsSigningSecret'),
    USERS_API_URL: 'https://api.example.com/',
    EMAIL_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bulwark-email',
    EMAIL_DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bulwark-email-dlq',
    WEBHOOK_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bulwark-webhook',
    WEBHOOK_DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bulwark-webhook-dlq',
    EMAIL_TRANSPORT: 'ses',
    SMS_TRANSPORT: 'sns',
    EMAIL_FROM: 'Bulwark <noreply@example.com>',
    VERIFICATION_LINK_SECRET_ARN: secretArn('VerificationLinkSecret'),
    APP_BASE_URL: 'https://app.example.com',
  };
}

const suite: BenchSuite = {
  name: 'cold-start',
  async run(): Promise<Measurement[]> {
    const workDir = mkdtempSync(join(tmpdir(), 'bulwark-cold-start-'));
    // External packages (the AWS SDK, as the Lambda runtime provides it) resolve from the repository.
    symlinkSync(join(repositoryRoot, 'node_modules'), join(workDir, 'node_modules'), 'dir');
    const runner = join(workDir, 'runner.mjs');
    writeFileSync(runner, runnerSource);
    const dynamoDb = await stubDynamoDb();
    const measurements: Measurement[] = [];
    const loads: number[] = [];
    try {
      for (const testCase of cases().filter((candidate) => !only || only.includes(candidate.name))) {
        if (!existsSync(join(repositoryRoot, testCase.entry))) {
          console.error(`cold-start: skipping ${testCase.name}: ${testCase.entry} does not exist yet`);
          continue;
        }
        const fnDir = join(workDir, testCase.name);
        const fn = await bundle({ entryPoints: [join(repositoryRoot, testCase.entry)] }, fnDir);
        for (const command of bundlingOptions.commandHooks.afterBundling(repositoryRoot, fnDir)) {
          execFileSync('bash', ['-c', command], { cwd: repositoryRoot, stdio: 'inherit' });
        }
        for (const copied of testCase.bundledFiles) {
          cpSync(join(repositoryRoot, copied.from), join(fnDir, copied.to), { recursive: true });
        }
        // The floor imports the same AWS SDK packages as the function's bundle, plus Middy and Powertools;
        // it constructs a DynamoDB client (and makes the DynamoDB calls health's and a sweep's events
        // need) only if the function's bundle imports DynamoDB, so a function with no SDK (the catch-all)
        // meets a floor with none.
        const usesDynamoDb = fn.sdkImports.some((line) =>
          /from '@aws-sdk\/(client|lib)-dynamodb';$/.test(line),
        );
        const baselineDir = join(workDir, `${testCase.name}-baseline`);
        const baseline = await bundle(
          {
            stdin: {
              contents: [
                ...fn.sdkImports,
                `import { createBaselineHandler } from ${JSON.stringify(baselineModule)};`,
                ...(usesDynamoDb
                  ? [
                      `import { floorProbes } from ${JSON.stringify(baselineDynamoDbModule)};`,
                      'export const handler = createBaselineHandler(floorProbes);',
                    ]
                  : ['export const handler = createBaselineHandler();']),
              ].join('\n'),
              resolveDir: repositoryRoot,
              sourcefile: `${testCase.name}-baseline.ts`,
              loader: 'ts',
            },
          },
          baselineDir,
        );
        const bytes = { fn: deployedBytes(fnDir), baseline: deployedBytes(baselineDir) };
        const env = lambdaEnvironment(testCase.name, dynamoDb.url);
        const runs = { fn: [] as Run[], baseline: [] as Run[] };
        // Alternate the two so a change in machine load hits both alike.
        for (let index = 0; index < processes; index += 1) {
          runs.fn.push(await runOnce(runner, fn.file, testCase.event, env));
          runs.baseline.push(await runOnce(runner, baseline.file, testCase.event, env));
          loads.push(loadavg()[0] ?? 0);
        }
        const outcomes = new Set(runs.fn.map((run) => String(run.outcome)));
        const baselineOutcomes = new Set(runs.baseline.map((run) => String(run.outcome)));
        // A floor answering differently (say 401 where the function answers 405) would not be doing the same work.
        if ([...outcomes].join() !== [...baselineOutcomes].join()) {
          throw new Error(
            `cold-start bench: ${testCase.name} answered ${[...outcomes]} but its floor ${[...baselineOutcomes]}`,
          );
        }
        const fnMs = median(runs.fn.map((run) => run.totalMs));
        const baselineMs = median(runs.baseline.map((run) => run.totalMs));
        const medianOf = (list: readonly Run[], field: 'importMs' | 'cpuMs') =>
          median(list.map((run) => run[field]));
        console.error(
          `cold-start ${testCase.name}: ${testCase.describe} → ${[...outcomes].join(', ')}; ` +
            `import alone ${medianOf(runs.fn, 'importMs').toFixed(1)} ms (floor ${medianOf(runs.baseline, 'importMs').toFixed(1)} ms); ` +
            `floor's SDK imports: ${fn.sdkImports.map((line) => line.replace(/^export /, '').replace(/;$/, '')).join('; ') || 'none'}` +
            `${usesDynamoDb ? " (floor constructs a DynamoDB client for health's and a sweep's reads)" : ''}`,
        );
        measurements.push(
          {
            id: `cold-start.${testCase.name}.bytes`,
            what: `${testCase.name}: deployed bundle (index.mjs + copied files, no maps; CDK esbuild settings)`,
            value: bytes.fn / 1024,
            unit: 'KiB',
            baseline: { name: 'Middy + Powertools + same SDK imports', value: bytes.baseline / 1024 },
            target: { ratio: 1.15, better: 'lower' },
          },
          {
            id: `cold-start.${testCase.name}.init`,
            what: `${testCase.name}: import + first event (${testCase.describe}), median of ${processes} processes`,
            value: fnMs,
            unit: 'ms',
            baseline: { name: 'Middy + Powertools + same SDK imports', value: baselineMs },
            target: { ratio: 1.15, better: 'lower' },
          },
          {
            id: `cold-start.${testCase.name}.cpu`,
            what: `${testCase.name}: CPU time over the same span (steadier than wall time on a busy machine)`,
            value: medianOf(runs.fn, 'cpuMs'),
            unit: 'ms',
            baseline: {
              name: 'Middy + Powertools + same SDK imports',
              value: medianOf(runs.baseline, 'cpuMs'),
            },
          },
        );
      }
    } finally {
      await dynamoDb.close();
      if (keepBundles) console.error(`cold-start: bundles kept in ${workDir}`);
      else rmSync(workDir, { recursive: true, force: true });
    }
    console.error(`cold-start: 1-minute load average during the runs: ${median(loads).toFixed(2)} (median)`);
    return measurements;
  },
};

export default suite;
