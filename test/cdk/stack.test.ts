// Assertion tests for the Bulwark stack: tables from the shared definitions, functions and routes from the route table.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type HttpFunctionDefinition,
  httpFunctionNames,
  httpFunctions,
  routeKeyOf,
  routes,
} from '../../functions/routes.js';
import { BulwarkStack, parseStage, type Stage } from '../../lib/bulwark-stack.js';
import { type KeyAttribute, type TableDefinition, tableDefinitions } from '../../middleware/store/tables.js';

/** Everything `TableV2.grantReadWriteData` grants on a table without a customer-managed key (aws-cdk-lib 2.276). */
const readWriteDataActions = [
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:GetItem',
  'dynamodb:Scan',
  'dynamodb:ConditionCheckItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:DescribeTable',
];
/** grantReadWriteData adds these in a statement of their own (stream reads; the tables have no stream). */
const streamReadActions = ['dynamodb:GetRecords', 'dynamodb:GetShardIterator'];
const allowedActionPattern =
  /^dynamodb:(?:\w+Item|Query|Scan|Batch\w+|ConditionCheckItem|DescribeTable|GetRecords|GetShardIterator)$/;

const functionNames = httpFunctionNames;

// Tuples, so that test names show bare values (`the app table`, `sends GET /health to the health function`).
const tableCases = tableDefinitions.map((definition) => [definition.id, definition] as const);
const routeCases = routes.map((route) => [routeKeyOf(route), route.function, route] as const);

/** A template resource; `Properties` is always present (empty when the template has none). */
interface Resource {
  readonly Properties: Record<string, unknown>;
  readonly [key: string]: unknown;
}

interface Synthesised {
  stack: BulwarkStack;
  template: Template;
}

function synthesise(stage: Stage, context: Record<string, unknown> = {}): Synthesised {
  const app = new App({ context });
  const stack = new BulwarkStack(app, `Bulwark-${stage}`, { stage });
  return { stack, template: Template.fromStack(stack) };
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

const byAttributeName = (a: unknown, b: unknown): number =>
  JSON.stringify(a).localeCompare(JSON.stringify(b));

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

    it('has exactly the GSIs of the shared definition, each projecting all attributes', () => {
      expect(tableResource(definition).Properties.GlobalSecondaryIndexes).toEqual(
        definition.globalSecondaryIndexes.map((index) => ({
          IndexName: index.indexName,
          KeySchema: keySchemaOf(index.partitionKey, index.sortKey),
          Projection: { ProjectionType: 'ALL' },
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

    it('bills on demand (PAY_PER_REQUEST)', () => {
      expect(tableResource(definition).Properties.BillingMode).toBe('PAY_PER_REQUEST');
    });

    it('is deleted with the stack and has no deletion protection', () => {
      const table = tableResource(definition);
      expect(table.DeletionPolicy).toBe('Delete');
      expect(table.UpdateReplacePolicy).toBe('Delete');
      expect(table.Properties.Replicas).toEqual([
        expect.objectContaining({ DeletionProtectionEnabled: false }),
      ]);
    });
  });

  it('creates one Lambda function per httpFunctions entry', () => {
    dev.template.resourceCountIs('AWS::Lambda::Function', functionNames.length);
  });

  describe.each(functionNames)('the %s function', (name) => {
    const definition: HttpFunctionDefinition = httpFunctions[name];

    function functionResource(): Resource {
      const fn = dev.stack.functions[name];
      return resourceOf(
        dev.template,
        'AWS::Lambda::Function',
        logicalIdOf(dev.stack, fn.lambdaFunction.functionArn),
      );
    }

    function roleLogicalId(): string {
      const role = dev.stack.functions[name].lambdaFunction.role;
      if (role === undefined) throw new Error(`The ${name} function has no role`);
      return logicalIdOf(dev.stack, role.roleArn);
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

    it('runs nodejs22.x on arm64 with the memory and timeout of the route table', () => {
      expect(functionResource().Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: definition.memoryMb,
        Timeout: definition.timeoutSec,
      });
    });

    it('finds both table names, its stage, source maps and its Powertools service name in its environment', () => {
      expect(functionResource().Properties.Environment).toEqual({
        Variables: {
          APP_TABLE_NAME: dev.stack.resolve(dev.stack.tables.app.table.tableName),
          TOOLKIT_TABLE_NAME: dev.stack.resolve(dev.stack.tables.toolkit.table.tableName),
          BULWARK_STAGE: 'dev',
          NODE_OPTIONS: '--enable-source-maps',
          POWERTOOLS_SERVICE_NAME: name,
          POWERTOOLS_LOG_LEVEL: 'INFO',
          // Only bookings calls another service: users, through the stack's own HTTP API.
          ...(name === 'bookings' ? { USERS_API_URL: dev.stack.resolve(dev.stack.httpApi.url) } : {}),
          // Bookings signs that call and users verifies it, both with the generated signing secret.
          ...(name === 'health'
            ? {}
            : {
                SERVICE_SIGNING_SECRET_BOOKINGS: dev.stack.resolve(
                  dev.stack.bookingsSigningSecret.secretValue.unsafeUnwrap(),
                ),
              }),
        },
      });
    });

    it('logs to its own log group kept for one month', () => {
      const logGroupId = logicalIdOf(dev.stack, dev.stack.functions[name].logGroup.logGroupArn);
      expect(functionResource().Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
      expect(resourceOf(dev.template, 'AWS::Logs::LogGroup', logGroupId).Properties.RetentionInDays).toBe(30);
    });

    it('has no wildcard action and no action outside DynamoDB item, query, scan and describe calls', () => {
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

    it('may use exactly the grantReadWriteData actions on exactly the tables it lists', () => {
      const expected = definition.tables.flatMap((tableId) => {
        const arn = dev.stack.resolve(dev.stack.tables[tableId].table.tableArn);
        const resources = [arn, { 'Fn::Join': ['', [arn, '/index/*']] }];
        return [
          { Action: readWriteDataActions, Effect: 'Allow', Resource: resources },
          { Action: streamReadActions, Effect: 'Allow', Resource: resources },
        ];
      });
      expect(policyStatements()).toEqual(expected);
    });

    it('has no managed policy other than the basic execution role', () => {
      const role = resourceOf(dev.template, 'AWS::IAM::Role', roleLogicalId());
      const managed = role.Properties.ManagedPolicyArns;
      expect(managed).toHaveLength(1);
      expect(JSON.stringify(managed)).toContain(':iam::aws:policy/service-role/AWSLambdaBasicExecutionRole');
    });
  });

  it('creates one API route per route-table entry, keyed by routeKeyOf(route)', () => {
    const routeKeys = Object.values(dev.template.findResources('AWS::ApiGatewayV2::Route')).map(
      (route) => route.Properties.RouteKey,
    );
    expect(routeKeys.sort()).toEqual(routes.map(routeKeyOf).sort());
  });

  it.each(routeCases)('sends %s to the %s function', (_routeKey, _functionName, route) => {
    const functionArn = dev.stack.resolve(dev.stack.functions[route.function].lambdaFunction.functionArn);
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
      dev.template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKeyOf(route) } }),
    );
    expect(routeResources).toHaveLength(1);
    expect(routeResources[0]?.Properties?.Target).toEqual({
      'Fn::Join': ['', ['integrations/', { Ref: integrationIds[0] }]],
    });
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

  it('outputs the API URL and both table names', () => {
    const outputs = dev.template.findOutputs('*');
    expect(Object.keys(outputs).sort()).toEqual(['ApiUrl', 'AppTableName', 'ToolkitTableName']);
    expect(outputs.ApiUrl?.Value).toEqual(dev.stack.resolve(dev.stack.httpApi.url));
    expect(outputs.AppTableName?.Value).toEqual(dev.stack.resolve(dev.stack.tables.app.table.tableName));
    expect(outputs.ToolkitTableName?.Value).toEqual(
      dev.stack.resolve(dev.stack.tables.toolkit.table.tableName),
    );
  });
});

describe('BulwarkStack auth settings', () => {
  const issuer = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1';

  function synthesiseWithAuth(auth: { issuer: string; clientIds: string[] }): Template {
    // Only environment variables are read here; the dev synth already bundles the same functions.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    return Template.fromStack(new BulwarkStack(app, 'Bulwark-auth', { stage: 'dev', auth }));
  }

  it('gives the functions with protected routes the issuer, client ids and token use, and health none', () => {
    const template = synthesiseWithAuth({ issuer, clientIds: ['web', 'svc'] });
    const variables = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (fn) => fn.Properties.Environment.Variables as Record<string, unknown>,
    );
    const withIssuer = variables.filter((vars) => vars.AUTH_ISSUER !== undefined);
    expect(withIssuer.map((vars) => vars.POWERTOOLS_SERVICE_NAME).sort()).toEqual(['bookings', 'users']);
    for (const vars of withIssuer) {
      expect(vars).toMatchObject({
        AUTH_ISSUER: issuer,
        AUTH_CLIENT_IDS: 'web,svc',
        AUTH_TOKEN_USE: 'access',
      });
    }
  });

  it('rejects an issuer that is not a URL and an empty client list', () => {
    expect(() => synthesiseWithAuth({ issuer: 'cognito', clientIds: [] })).toThrow(
      'Invalid BulwarkStack props: auth.issuer must be a URL; auth.clientIds must be one or more client ids',
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

describe('BulwarkStack in the prod stage', () => {
  let prod: Synthesised;

  beforeAll(() => {
    // Only removal settings are read here; the dev synth already bundles the same functions.
    prod = synthesise('prod', { 'aws:cdk:bundling-stacks': [] });
  }, 60_000);

  it.each(tableCases)('retains the %s table and turns on its deletion protection', (_id, definition) => {
    const tableName = prod.stack.tables[definition.id].table.tableName;
    const table = resourceOf(prod.template, 'AWS::DynamoDB::GlobalTable', logicalIdOf(prod.stack, tableName));
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
    expect(table.Properties.Replicas).toEqual([expect.objectContaining({ DeletionProtectionEnabled: true })]);
  });

  it('retains the function and access log groups', () => {
    const logGroups = Object.values(prod.template.findResources('AWS::Logs::LogGroup'));
    expect(logGroups).toHaveLength(Object.keys(httpFunctions).length + 1);
    for (const logGroup of logGroups) expect(logGroup.DeletionPolicy).toBe('Retain');
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
