// cdk-nag (v3, through CDK's Validations plugin API): the AwsSolutions and Serverless packs find nothing unacknowledged.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, Stack, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, describe, expect, it } from 'vitest';
import { type ApiRoute, apiRoutes, routeKeyOf } from '../../functions/routes.js';
import { BulwarkStack, type Stage, stages } from '../../lib/bulwark-stack.js';
import { projectApp } from '../helpers/cdk-app.js';

interface ValidationReport {
  readonly pluginReports: readonly {
    readonly pluginName: string;
    readonly violations: readonly { readonly ruleName: string; readonly severity: string }[];
  }[];
}

const outdirs: string[] = [];

afterAll(() => {
  for (const outdir of outdirs) rmSync(outdir, { recursive: true, force: true });
});

/** Synthesises what `build` adds to a fresh app with both packs applied; returns the report and the app. */
function nag(build: (app: App) => void): { report: ValidationReport; app: App; synthError: unknown } {
  const outdir = mkdtempSync(join(tmpdir(), 'bulwark-nag-'));
  outdirs.push(outdir);
  // Bundling is irrelevant to the rules; skipping it keeps the test fast.
  const app = projectApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
  build(app);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  let synthError: unknown;
  try {
    app.synth();
  } catch (error) {
    synthError = error;
  }
  const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as ValidationReport;
  return { report, app, synthError };
}

const nagByStage = new Map<Stage, ReturnType<typeof nag>>();

/**
 * The stage's Bulwark stack as it is deployed, with both packs applied: synthesised once for the tests that read
 * its report or its acknowledgements, as each synthesis with the packs takes seconds.
 */
function nagStage(stage: Stage): ReturnType<typeof nag> {
  const known = nagByStage.get(stage);
  if (known !== undefined) return known;
  // Prod as it is deployed: a real callback URL (required there) and an SES identity (Cognito mails through it).
  const deployed =
    stage === 'prod'
      ? { callbackUrls: ['https://app.example.org/callback'], email: { identity: 'example.org' } }
      : {};
  const nagged = nag((app) => new BulwarkStack(app, `Bulwark-${stage}`, { stage, ...deployed }));
  nagByStage.set(stage, nagged);
  return nagged;
}

function violationsOf(report: ValidationReport): string[] {
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.map((violation) => `${plugin.pluginName}: ${violation.severity} ${violation.ruleName}`),
  );
}

/** Every acknowledgement recorded in the tree: `{ id: reason }` per construct. */
function acknowledgements(root: IConstruct): [string, unknown][] {
  return root.node
    .findAll()
    .flatMap((construct) =>
      construct.node.metadata
        .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((entry) => Object.entries(entry.data as Record<string, unknown>)),
    );
}

describe('cdk-nag', () => {
  it('reports an unacknowledged finding (the harness really runs both packs)', () => {
    const { report, synthError } = nag((app) => {
      const stack = new Stack(app, 'Control');
      new kms.Key(stack, 'UnrotatedKey', { enableKeyRotation: false });
    });
    expect(synthError).toBeInstanceOf(Error);
    expect(violationsOf(report)).toContain('AwsSolutions: error AwsSolutions-KMS5');
    // The file's first synthesis also builds the validation engine: seconds more on a busy machine.
  }, 60_000);

  it.each<Stage>([...stages])(
    'finds no unacknowledged error or warning in the %s stage',
    (stage) => {
      const { report, synthError } = nagStage(stage);
      expect(violationsOf(report)).toEqual([]);
      expect(synthError).toBeUndefined();
    },
    60_000,
  );

  it('acknowledges only exact rules, each with a written reason', () => {
    const { app } = nagStage('dev');
    const acknowledged = acknowledgements(app);
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const [id, reason] of acknowledged) {
      // A rule id, optionally narrowed to one finding (`AwsSolutions-IAM5[Resource::...]`); never a whole pack.
      // CDK records unqualified ids under its `Annotation::` namespace.
      expect(id).toMatch(/^Annotation::(?:AwsSolutions|Serverless)-[A-Za-z]+\d*(?:\[[^\]]+\])?$/);
      expect(typeof reason === 'string' && reason.length).toBeGreaterThanOrEqual(40);
    }
    // A new acknowledgement must be a reviewed change to this list.
    expect([...new Set(acknowledged.map(([id]) => id.replace(/\[.*\]$/, '[…]')))].sort()).toEqual([
      'Annotation::AwsSolutions-APIG4',
      'Annotation::AwsSolutions-COG8',
      'Annotation::AwsSolutions-L1',
      'Annotation::AwsSolutions-SMG4',
      'Annotation::Serverless-EventBusDLQ',
      'Annotation::Serverless-LambdaDLQ',
      'Annotation::Serverless-LambdaEventSourceMappingDestination',
      'Annotation::Serverless-LambdaLatestVersion',
      'Annotation::Serverless-LambdaTracing',
      'Annotation::Serverless-SQSRedrivePolicy',
    ]);
  });

  it('names in its reasons, from the route table, every public route (APIG4) and every route without a rate limit (COG8), HEAD routes included', () => {
    const { app } = nagStage('dev');
    const reasons = new Map(acknowledgements(app).map(([id, reason]) => [id, String(reason)]));
    const routeKeys = (include: (route: ApiRoute) => boolean) =>
      apiRoutes.filter(include).map(routeKeyOf).join(', ');
    const publicRoutes = routeKeys((route) => route.auth.kind === 'public');
    const unlimitedRoutes = routeKeys((route) => route.rateLimit === undefined);
    expect(publicRoutes).toContain('POST /users/{id}/phone-code');
    expect(publicRoutes).toContain('HEAD /health');
    expect(unlimitedRoutes).toContain('GET /users/{id}, HEAD /users/{id}');
    expect(reasons.get('Annotation::AwsSolutions-APIG4')).toContain(`: ${publicRoutes}.`);
    expect(reasons.get('Annotation::AwsSolutions-COG8')).toContain(`(${unlimitedRoutes})`);
  });

  it('acknowledges no wildcard resource: functions query table indexes by name', () => {
    const { app } = nagStage('dev');
    const wildcards = acknowledgements(app)
      .map(([id]) => id)
      .filter((id) => id.includes('IAM5'));
    expect(wildcards).toEqual([]);
  });
});
