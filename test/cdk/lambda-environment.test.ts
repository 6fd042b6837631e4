// The environment the stack gives each function passes the functions' refusal of local-only settings in
// Lambda (functions/shared/environment.ts): each handler starts with it, AWS_LAMBDA_FUNCTION_NAME set.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it, vi } from 'vitest';
import { httpFunctions } from '../../functions/routes.js';
import { scheduledFunctions } from '../../functions/schedules.js';
import { workers } from '../../functions/workers.js';
import { BulwarkStack, type BulwarkStackProps } from '../../lib/bulwark-stack.js';
import { projectApp } from '../helpers/cdk-app.js';

const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));
const region = 'eu-west-1';
const account = '111122223333';

/** A resource's value as the deployed function would read it, by what the reference names. */
function resolveIntrinsic(value: unknown, types: Readonly<Record<string, string>>): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Record<string, unknown>;
  if ('Fn::Join' in intrinsic) {
    const [separator, parts] = intrinsic['Fn::Join'] as [string, unknown[]];
    return parts.map((part) => resolveIntrinsic(part, types)).join(separator);
  }
  if ('Ref' in intrinsic) {
    const id = intrinsic.Ref as string;
    const pseudo: Record<string, string> = {
      'AWS::Region': region,
      'AWS::AccountId': account,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    if (pseudo[id] !== undefined) return pseudo[id];
    if (types[id] === 'AWS::SecretsManager::Secret') {
      return `arn:aws:secretsmanager:${region}:${account}:secret:${id}-AbCdEf`;
    }
    if (types[id] === 'AWS::SQS::Queue') return `https://sqs.${region}.amazonaws.com/${account}/${id}`;
    // Table names, client ids, the pool, API and configuration set ids: the logical id fits each.
    return id;
  }
  if ('Fn::GetAtt' in intrinsic) {
    const [id] = intrinsic['Fn::GetAtt'] as [string, string];
    return `arn:aws:kms:${region}:${account}:key/${id}`;
  }
  throw new Error(`Unresolved value ${JSON.stringify(value)}`);
}

/** Each of the stack's own functions (those with a service name) by entry file, with its environment. */
function functionEnvironments(props: BulwarkStackProps): Map<string, Record<string, string>> {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  const template = Template.fromStack(new BulwarkStack(app, `Bulwark-${props.stage}`, props)).toJSON() as {
    Resources: Record<string, { Type: string; Properties?: { Environment?: { Variables?: object } } }>;
  };
  const types = Object.fromEntries(Object.entries(template.Resources).map(([id, { Type }]) => [id, Type]));
  const entries: Record<string, string> = {
    ...Object.fromEntries(Object.entries(httpFunctions).map(([name, { entry }]) => [name, entry])),
    ...Object.fromEntries(Object.entries(workers).map(([name, { entry }]) => [name, entry])),
    ...Object.fromEntries(Object.entries(scheduledFunctions).map(([name, { entry }]) => [name, entry])),
    'secret-rotation': 'functions/secret-rotation/handler.ts',
  };
  const environments = new Map<string, Record<string, string>>();
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = Object.fromEntries(
      Object.entries(resource.Properties?.Environment?.Variables ?? {}).map(([name, value]) => [
        name,
        resolveIntrinsic(value, types),
      ]),
    );
    const service = variables.POWERTOOLS_SERVICE_NAME;
    if (service === undefined) continue;
    const entry = entries[service];
    if (entry === undefined) throw new Error(`No entry for the ${service} function`);
    environments.set(entry, variables);
  }
  expect([...environments.keys()].sort()).toEqual(Object.values(entries).sort());
  return environments;
}

/** Imports `entry` in a fresh module graph with exactly the stack's variables (and the region Lambda sets). */
async function coldStart(entry: string, variables: Readonly<Record<string, string>>): Promise<unknown> {
  // The tests' own local settings (test/setup.ts) are no part of a deployed function's environment.
  vi.stubEnv('DYNAMODB_ENDPOINT', undefined);
  vi.stubEnv('ENCRYPTION_KEY', undefined);
  vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', `Bulwark-${entry.split('/')[1]}`);
  for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
  try {
    vi.resetModules();
    const module = (await import(join(repositoryRoot, entry))) as { handler?: unknown };
    return typeof module.handler;
  } finally {
    vi.unstubAllEnvs();
    vi.resetModules();
  }
}

describe("the stack's function environments, in Lambda", () => {
  it.each<[string, BulwarkStackProps]>([
    ['dev', { stage: 'dev' }],
    [
      'prod',
      {
        stage: 'prod',
        callbackUrls: ['https://app.example.org/callback'],
        email: { identity: 'example.org' },
      },
    ],
    [
      'dev, with an SMTP relay and an issuer other than Cognito',
      {
        stage: 'dev',
        email: { identity: 'example.org', smtp: { host: 'smtp.example.org' } },
        auth: {
          issuer: 'https://login.example.org/realms/app',
          clientIds: ['web'],
          audience: ['https://api.example.org'],
          jwksUri: 'https://login.example.org/realms/app/protocol/openid-connect/certs',
        },
      },
    ],
  ])(
    'starts every function: %s',
    async (_name, props) => {
      for (const [entry, variables] of functionEnvironments(props)) {
        expect(await coldStart(entry, variables), entry).toBe('function');
      }
    },
    120_000,
  );
});
