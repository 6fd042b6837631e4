// A real esbuild bundle of the email worker: templates precompiled into the code, phone metadata shipped next to it, SDK bundled.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catchAllFunction, httpFunctions } from '../../functions/routes.js';
import { scheduledFunctions } from '../../functions/schedules.js';
import { workers } from '../../functions/workers.js';
import { BulwarkFunction, bundlingOptions } from '../../lib/bulwark-function.js';
import { httpFunctionBundledFiles, workerBundledFiles } from '../../lib/bulwark-stack.js';
import { BulwarkScheduledFunction } from '../../lib/scheduled-function.js';
import { BulwarkWorkerQueue } from '../../lib/worker-queue.js';
import { projectApp } from '../helpers/cdk-app.js';

const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));
const outdirs: string[] = [];
let bundleDir: string;

/** The environment the stack gives the email worker, with placeholder values (nothing is called at import). */
const workerEnvironment = {
  PATH: process.env.PATH ?? '',
  AWS_REGION: 'eu-west-1',
  APP_TABLE_NAME: 'app',
  TOOLKIT_TABLE_NAME: 'toolkit',
  EMAIL_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/email',
  EMAIL_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/email-dlq',
  EMAIL_TRANSPORT: 'ses',
  SMS_TRANSPORT: 'sns',
  BULWARK_STAGE: 'dev',
};

/** Imports a bundle in a fresh Node process, as Lambda's cold start does; returns what it printed. */
function importBundle(dir: string, environment: Readonly<Record<string, string>> = {}): string {
  return execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(join(dir, 'index.mjs'))}); console.log(typeof m.handler);`,
    ],
    { env: { ...workerEnvironment, ...environment }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  ).trim();
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  outdirs.push(dir);
  return dir;
}

/** Synthesises an app holding only the email worker and returns the folder of its bundled asset. */
function bundleEmailWorker(emailTransport?: 'ses' | 'smtp'): string {
  const outdir = tempDir('bulwark-bundle-');
  const app = projectApp({ outdir });
  const stack = new Stack(app, 'Bundle');
  new BulwarkWorkerQueue(stack, 'EmailWorker', {
    name: 'email-worker',
    definition: workers['email-worker'],
    encryptionKey: new kms.Key(stack, 'Key', { enableKeyRotation: true }),
    bundledFiles: workerBundledFiles['email-worker'] ?? [],
    ...(emailTransport ? { emailTransport } : {}),
  });
  app.synth();
  const [asset] = readdirSync(outdir).filter((entry) => entry.startsWith('asset.'));
  if (asset === undefined) throw new Error('No function asset was bundled');
  return join(outdir, asset);
}

beforeAll(() => {
  bundleDir = bundleEmailWorker();
}, 120_000);

afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

describe('the email worker bundle', () => {
  it('carries its templates precompiled, with the handlebars runtime and none of its compiler', () => {
    expect(readdirSync(bundleDir).sort()).toEqual(['index.mjs', 'index.mjs.map', 'node_modules']);
    const code = readFileSync(join(bundleDir, 'index.mjs'), 'utf8');
    // Messages only the compiler and parser carry (the control: they are there to be found).
    const compilerOnly = {
      'compiler/compiler.js': 'You must pass a string or Handlebars AST',
      'compiler/parser.js': 'Parse error on line',
    };
    for (const [file, message] of Object.entries(compilerOnly)) {
      expect(readFileSync(`node_modules/handlebars/dist/cjs/handlebars/${file}`, 'utf8')).toContain(message);
      expect(code.includes(message)).toBe(false);
    }
    // A precompiled template names the compiler revision it needs (`"compiler":[8,">= 4.3.0"]`, minified).
    expect(/compiler:\[8,">= 4\.3\.0"\]/.test(code)).toBe(true);
  });

  it('carries the min phone metadata where functions/shared/number-plan.ts resolves it', () => {
    const file = 'node_modules/libphonenumber-js/metadata.min.json';
    expect(readFileSync(join(bundleDir, file), 'utf8')).toBe(readFileSync(file, 'utf8'));
    expect(createRequire(join(bundleDir, 'index.mjs')).resolve('libphonenumber-js/metadata.min.json')).toBe(
      join(bundleDir, file),
    );
  });

  it('loads at cold start, where every template a message type needs is taken from the code', () => {
    expect(importBundle(bundleDir)).toBe('function');
  }, 30_000);

  it('carries only the deployed email transport: no nodemailer, and EMAIL_TRANSPORT=smtp fails the cold start', () => {
    expect(readFileSync(join(bundleDir, 'index.mjs'), 'utf8').includes('nodemailer')).toBe(false);
    expect(() => importBundle(bundleDir, { EMAIL_TRANSPORT: 'smtp' })).toThrow(
      /Invalid function environment: EMAIL_TRANSPORT \(this bundle carries only ses\)/,
    );
  }, 30_000);

  it('carries nodemailer when built for an SMTP relay, and starts with the relay settings', () => {
    const smtpDir = bundleEmailWorker('smtp');
    expect(readFileSync(join(smtpDir, 'index.mjs'), 'utf8').includes('nodemailer')).toBe(true);
    expect(
      importBundle(smtpDir, {
        EMAIL_TRANSPORT: 'smtp',
        SMTP_HOST: 'smtp.example.org',
        SMTP_PORT: '587',
        SMTP_CREDENTIALS_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:Smtp-AbCdEf',
      }),
    ).toBe('function');
  }, 120_000);

  it('bundles the AWS SDK instead of importing the runtime one, and starts with the require banner', () => {
    const code = readFileSync(join(bundleDir, 'index.mjs'), 'utf8');
    expect(code.startsWith(bundlingOptions.banner)).toBe(true);
    // Only the match is compared, so a failure does not print a 1.5 MB bundle. The SDK's own error
    // messages quote `[require("@aws-sdk/signature-v4-crt");]`, hence the lookbehind.
    expect(code.match(/\bfrom\s*["']@aws-sdk\/[^"']+/)?.[0]).toBeUndefined();
    expect(code.match(/(?<![[\w.$])(?:require|import)\(\s*["']@aws-sdk\/[^"']+/)?.[0]).toBeUndefined();
    expect(bundlingOptions.externalModules).toEqual([]);
  });
});

describe('the users bundle', () => {
  let usersDir: string;
  const metadataFile = 'node_modules/libphonenumber-js/metadata.mobile.json';

  beforeAll(() => {
    const outdir = tempDir('bulwark-users-bundle-');
    const app = projectApp({ outdir });
    new BulwarkFunction(new Stack(app, 'Users'), 'Users', {
      entry: httpFunctions.users.entry,
      serviceName: 'users',
      bundledFiles: httpFunctionBundledFiles.users ?? [],
    });
    app.synth();
    const [asset] = readdirSync(outdir).filter((entry) => entry.startsWith('asset.'));
    if (asset === undefined) throw new Error('No function asset was bundled');
    usersDir = join(outdir, asset);
  }, 120_000);

  it('carries the phone number plan as JSON where the number plan module resolves it, not as code', () => {
    const metadata = readFileSync(metadataFile, 'utf8');
    expect(readFileSync(join(usersDir, metadataFile), 'utf8')).toBe(metadata);
    expect(createRequire(join(usersDir, 'index.mjs')).resolve('libphonenumber-js/metadata.mobile.json')).toBe(
      join(usersDir, metadataFile),
    );
    // The US national number pattern, as a string literal in the code the metadata module would have been.
    const usPattern = (JSON.parse(metadata) as { countries: { US: [string, string, string] } }).countries
      .US[2];
    expect(readFileSync(join(usersDir, 'index.mjs'), 'utf8').includes(JSON.stringify(usPattern))).toBe(false);
  });
});

describe('the booking event sweeper bundle', () => {
  let sweeperDir: string;

  beforeAll(() => {
    const outdir = tempDir('bulwark-sweeper-bundle-');
    const app = projectApp({ outdir });
    new BulwarkScheduledFunction(new Stack(app, 'Sweeper'), 'Sweeper', {
      name: 'booking-event-sweeper',
      definition: scheduledFunctions['booking-event-sweeper'],
    });
    app.synth();
    const [asset] = readdirSync(outdir).filter((entry) => entry.startsWith('asset.'));
    if (asset === undefined) throw new Error('No function asset was bundled');
    sweeperDir = join(outdir, asset);
  }, 120_000);

  it('loads at cold start with the variables the stack gives it, its AWS SDK bundled', () => {
    expect(
      importBundle(sweeperDir, {
        WEBHOOK_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/webhook',
      }),
    ).toBe('function');
    const code = readFileSync(join(sweeperDir, 'index.mjs'), 'utf8');
    expect(code.startsWith(bundlingOptions.banner)).toBe(true);
    expect(code.match(/\bfrom\s*["']@aws-sdk\/[^"']+/)?.[0]).toBeUndefined();
  });
});

describe('the source maps', () => {
  /** Synthesises the catch-all function (the smallest bundle) into `outdir`: its S3 key and its map's sources. */
  function catchAllAsset(outdir: string): { s3Key: string; sources: string[] } {
    const app = projectApp({ outdir });
    new BulwarkFunction(new Stack(app, 'Maps'), 'CatchAll', {
      entry: httpFunctions[catchAllFunction].entry,
      serviceName: catchAllFunction,
    });
    const template = app.synth().getStackByName('Maps').template as {
      Resources: Record<string, { Type: string; Properties: { Code?: { S3Key: string } } }>;
    };
    const [s3Key] = Object.values(template.Resources).flatMap((resource) =>
      resource.Type === 'AWS::Lambda::Function' && resource.Properties.Code
        ? [resource.Properties.Code.S3Key]
        : [],
    );
    const [asset] = readdirSync(outdir).filter((entry) => entry.startsWith('asset.'));
    if (s3Key === undefined || asset === undefined) throw new Error('No function asset was bundled');
    const map = JSON.parse(readFileSync(join(outdir, asset, 'index.mjs.map'), 'utf8')) as {
      sources: string[];
    };
    return { s3Key, sources: map.sources };
  }

  it('name each source by its path in the project, so the asset hash does not depend on the output folder', () => {
    const shallow = catchAllAsset(tempDir('bulwark-maps-'));
    // As a CI job or another `cdk synth -o` writes it: deeper, so esbuild's paths from it climb further.
    const deep = catchAllAsset(join(tempDir('bulwark-maps-deep-'), 'ci/workspace/cdk.out'));
    expect(deep.s3Key).toBe(shallow.s3Key);
    expect(deep.sources).toEqual(shallow.sources);
    const ownFiles = shallow.sources.filter((source) => !source.startsWith('node_modules/'));
    expect(ownFiles).toContain(httpFunctions[catchAllFunction].entry);
    expect(ownFiles.filter((source) => !existsSync(join(repositoryRoot, source)))).toEqual([]);
    // Dependencies by their path from node_modules, wherever it resolves (a symlink in a git worktree). Not
    // every one exists: esbuild follows a package's own map, which may name sources it does not ship.
    const middy = shallow.sources.find((source) => source.startsWith('node_modules/@middy/core/'));
    expect(middy !== undefined && existsSync(join(repositoryRoot, middy))).toBe(true);
  }, 120_000);

  it('name a dependency outside the project (a hoisted or symlinked node_modules) by its path from node_modules', () => {
    const sandbox = tempDir('bulwark-map-hook-');
    // A checkout whose path a shell would split or expand, as the hook runs in bash.
    const projectRoot = join(sandbox, "workspace/app $(touch injected) it's");
    const bundleDir = join(projectRoot, 'cdk.out/bundling-temp-1');
    mkdirSync(bundleDir, { recursive: true });
    const workspace = join(sandbox, 'workspace');
    // The real paths esbuild bundled: the project's own, its node_modules, a workspace's hoisted one and one
    // a symlinked node_modules resolves to elsewhere on the machine.
    const bundled = [
      join(projectRoot, 'src/handler.ts'),
      join(projectRoot, 'node_modules/@middy/core/index.js'),
      join(workspace, 'node_modules/zod/v4/mini/index.js'),
      join(workspace, 'node_modules/a/node_modules/b/index.js'),
      '/opt/cache/node_modules/jose/dist/index.js',
    ];
    // As esbuild writes them: relative to the bundle's folder.
    const esbuildSources = bundled.map((path) => relative(bundleDir, path));
    writeFileSync(
      join(bundleDir, 'index.mjs.map'),
      JSON.stringify({ version: 3, sources: esbuildSources, mappings: '', names: [] }),
    );
    for (const command of bundlingOptions.commandHooks.afterBundling(projectRoot, bundleDir)) {
      execFileSync('bash', ['-c', command], { cwd: sandbox, stdio: 'pipe' });
    }
    expect(JSON.parse(readFileSync(join(bundleDir, 'index.mjs.map'), 'utf8'))).toEqual({
      version: 3,
      sources: [
        'src/handler.ts',
        'node_modules/@middy/core/index.js',
        'node_modules/zod/v4/mini/index.js',
        'node_modules/a/node_modules/b/index.js',
        'node_modules/jose/dist/index.js',
      ],
      mappings: '',
      names: [],
    });
    expect(existsSync(join(sandbox, 'injected'))).toBe(false);
  });
});

describe('BulwarkFunction bundledFiles', () => {
  it('rejects a source that does not exist and a target outside the bundle, naming both', () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Files');
    expect(
      () =>
        new BulwarkFunction(stack, 'Fn', {
          entry: 'functions/health/handler.ts',
          serviceName: 'health',
          bundledFiles: [
            { from: 'functions/email-worker/no-such-folder', to: 'templates' },
            { from: 'functions/email-worker', to: '../outside' },
          ],
        }),
    ).toThrow(
      'Invalid BulwarkFunction props: bundledFiles from "functions/email-worker/no-such-folder" does not exist; bundledFiles to "../outside" must be a relative path inside its root',
    );
  });
});

describe('BulwarkFunction memory and timeout', () => {
  it('refuses what Lambda would refuse at deploy, naming each prop, and takes its bounds', () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Sizes');
    const entry = 'functions/health/handler.ts';
    new BulwarkFunction(stack, 'Smallest', { entry, serviceName: 'health', memoryMb: 128, timeoutSec: 1 });
    new BulwarkFunction(stack, 'Largest', {
      entry,
      serviceName: 'health',
      memoryMb: 10_240,
      timeoutSec: 900,
    });
    expect(
      Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))
        .map((fn) => [fn.Properties.MemorySize, fn.Properties.Timeout])
        .sort(([a], [b]) => a - b),
    ).toEqual([
      [128, 1],
      [10_240, 900],
    ]);
    for (const [memoryMb, timeoutSec, message] of [
      [20_000, 10, 'memoryMb must be a whole number from 128 to 10240 (got 20000)'],
      [Number.NaN, 10, 'memoryMb must be a whole number from 128 to 10240 (got NaN)'],
      [127, 10, 'memoryMb must be a whole number from 128 to 10240 (got 127)'],
      [
        256.5,
        0,
        'memoryMb must be a whole number from 128 to 10240 (got 256.5); timeoutSec must be a whole number from 1 to 900 (got 0)',
      ],
      [256, 901, 'timeoutSec must be a whole number from 1 to 900 (got 901)'],
    ] as const) {
      expect(
        () =>
          new BulwarkFunction(stack, `Fn${memoryMb}-${timeoutSec}`, {
            entry,
            serviceName: 'health',
            memoryMb,
            timeoutSec,
          }),
      ).toThrow(`Invalid BulwarkFunction props: ${message}`);
    }
  });
});

describe('BulwarkFunction metricNamespace', () => {
  it("emits to its stack's own unless told, to the namespace given otherwise, and refuses one CloudWatch would", () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Namespaces');
    const entry = 'functions/health/handler.ts';
    new BulwarkFunction(stack, 'Default', { entry, serviceName: 'health' });
    new BulwarkFunction(stack, 'Own', { entry, serviceName: 'health', metricNamespace: 'Bulwark/staging' });
    const namespaces = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function')).map(
      (fn) => fn.Properties.Environment.Variables.POWERTOOLS_METRICS_NAMESPACE,
    );
    expect(namespaces.sort()).toEqual(['Bulwark/Namespaces', 'Bulwark/staging']);
    expect(
      () =>
        new BulwarkFunction(stack, 'Reserved', {
          entry,
          serviceName: 'health',
          metricNamespace: 'AWS/Lambda',
        }),
    ).toThrow('Invalid BulwarkFunction props: metricNamespace must not start with AWS/');
    // Through the environment, the namespace would skip that check and leave the alarms reading another one.
    expect(
      () =>
        new BulwarkFunction(stack, 'ThroughEnvironment', {
          entry,
          serviceName: 'health',
          environment: { POWERTOOLS_METRICS_NAMESPACE: 'AWS/Lambda' },
        }),
    ).toThrow(
      'Invalid BulwarkFunction props: environment must not set POWERTOOLS_METRICS_NAMESPACE (set metricNamespace)',
    );
  });
});
