// The constructs used from an app of one's own: handlers, bundled files and lock file outside the Bulwark checkout.
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduledFunctions } from '../../functions/schedules.js';
import { workers } from '../../functions/workers.js';
import { BulwarkFunction } from '../../lib/bulwark-function.js';
import { BulwarkScheduledFunction } from '../../lib/scheduled-function.js';
import { BulwarkWorkerQueue } from '../../lib/worker-queue.js';
import { projectApp } from '../helpers/cdk-app.js';

const marker = 'own-project-handler-ran';
const temporaryDirs: string[] = [];
/** An app of one's own in the system's temp folder: a handler, a template file and a lock file. */
let ownRoot: string;

function temporaryDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirs.push(dir);
  return dir;
}

beforeAll(() => {
  ownRoot = temporaryDir('bulwark-own-project-');
  mkdirSync(join(ownRoot, 'src'));
  mkdirSync(join(ownRoot, 'templates'));
  writeFileSync(join(ownRoot, 'src/handler.ts'), `export const handler = async () => '${marker}';\n`);
  writeFileSync(join(ownRoot, 'templates/greeting.txt'), 'hello\n');
  writeFileSync(join(ownRoot, 'package.json'), '{"name":"own-project","private":true}\n');
  writeFileSync(join(ownRoot, 'package-lock.json'), '{"name":"own-project","lockfileVersion":3}\n');
  writeFileSync(join(ownRoot, 'pnpm-lock.yaml'), "lockfileVersion: '9.0'\n");
  // The app's own installed dependencies, where bundling finds esbuild.
  symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(ownRoot, 'node_modules'));
});

afterAll(() => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});

describe('BulwarkFunction in an app of its own', () => {
  it('bundles a handler and files of the app given as projectRoot, outside the Bulwark checkout', () => {
    const outdir = temporaryDir('bulwark-own-project-out-');
    const app = projectApp({ outdir });
    const stack = new Stack(app, 'Own');
    new BulwarkFunction(stack, 'Fn', {
      projectRoot: ownRoot,
      entry: 'src/handler.ts',
      serviceName: 'own',
      bundledFiles: [{ from: 'templates', to: 'templates' }],
    });
    app.synth();
    const [fn] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'));
    expect(fn?.Properties?.Handler).toBe('index.handler');
    const asset = `asset.${String(fn?.Properties?.Code?.S3Key).replace(/\.zip$/, '')}`;
    expect(readdirSync(join(outdir, asset)).sort()).toEqual(['index.mjs', 'index.mjs.map', 'templates']);
    expect(readFileSync(join(outdir, asset, 'index.mjs'), 'utf8')).toContain(marker);
    expect(readFileSync(join(outdir, asset, 'templates/greeting.txt'), 'utf8')).toBe('hello\n');
  }, 60_000);

  it("takes an absolute entry and the app's own lock file, and passes both on from a worker and a schedule", () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Own');
    const entry = join(ownRoot, 'src/handler.ts');
    const own = { projectRoot: ownRoot, depsLockFilePath: join(ownRoot, 'pnpm-lock.yaml') };
    new BulwarkFunction(stack, 'Fn', { ...own, entry, serviceName: 'own' });
    new BulwarkWorkerQueue(stack, 'Worker', {
      ...own,
      name: 'own-worker',
      definition: { ...workers['email-worker'], entry: 'src/handler.ts' },
      encryptionKey: new kms.Key(stack, 'Key'),
    });
    new BulwarkScheduledFunction(stack, 'Schedule', {
      ...own,
      name: 'own-schedule',
      definition: { ...scheduledFunctions['booking-event-sweeper'], entry },
    });
    const services = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function')).map(
      (fn) => fn.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME,
    );
    expect(services.sort()).toEqual(['own', 'own-schedule', 'own-worker']);
  });
});
