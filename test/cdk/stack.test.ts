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
import { tableKeyActions } from '../../lib/bulwark-table.js';
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
  /^(?:logs:(?:CreateLogStream|PutLogEvents)|dynamodb:(?:\w+Item|Query|Scan|Batch\w+|ConditionCheckItem|DescribeTable|GetRecords|GetShardIterator)|kms:(?:Decrypt|DescribeKey|Encrypt|GenerateDataKey\w*|ReEncrypt(?:From|To)|GenerateMac))$/;
/** The users function's envelope encryption (KMS key provider) and blind indexes, and nothing more. */
const usersKeyActions = { dataKey: ['kms:GenerateDataKey', 'kms:Decrypt'], blindIndexKey: 'kms:GenerateMac' };

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

    it('is deleted with the stack and has no deletion protection', () => {
      const table = tableResource(definition);
      expect(table.DeletionPolicy).toBe('Delete');
      expect(table.UpdateReplacePolicy).toBe('Delete');
      expect(table.Properties.Replicas).toEqual([
        expect.objectContaining({ DeletionProtectionEnabled: false }),
      ]);
    });
  });

  it('creates a table key and a data key, both symmetric with rotation, an HMAC_256 blind-index key and the alarm topic key', () => {
    dev.template.resourceCountIs('AWS::KMS::Key', 4);
    for (const key of [dev.stack.tableKey.key, dev.stack.dataKey.key]) {
      expect(
        resourceOf(dev.template, 'AWS::KMS::Key', logicalIdOf(dev.stack, key.keyArn)).Properties,
      ).toMatchObject({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT', EnableKeyRotation: true });
    }
    const blindIndexKey = dev.stack.blindIndexKey.key;
    expect(
      resourceOf(dev.template, 'AWS::KMS::Key', logicalIdOf(dev.stack, blindIndexKey.keyArn)).Properties,
    ).toMatchObject({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
  });

  it('schedules the keys for deletion with the dev stack', () => {
    for (const key of Object.values(dev.template.findResources('AWS::KMS::Key'))) {
      expect(key.DeletionPolicy).toBe('Delete');
    }
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
          // The functions behind protected routes trust the stack's user pool and both its clients.
          ...(name === 'health'
            ? {}
            : {
                AUTH_ISSUER: dev.stack.resolve(dev.stack.userPool.issuer),
                AUTH_CLIENT_IDS: {
                  'Fn::Join': [
                    '',
                    [
                      dev.stack.resolve(dev.stack.userPool.humanClient.userPoolClientId),
                      ',',
                      dev.stack.resolve(dev.stack.userPool.m2mClient.userPoolClientId),
                    ],
                  ],
                },
                AUTH_TOKEN_USE: 'access',
              }),
          // Only users encrypts personal fields, so only it learns the KMS key ids.
          ...(name === 'users'
            ? {
                KMS_KEY_ID: dev.stack.resolve(dev.stack.dataKey.key.keyArn),
                KMS_BLIND_INDEX_KEY_ID: dev.stack.resolve(dev.stack.blindIndexKey.key.keyArn),
              }
            : {}),
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

    it('has no wildcard action and no action outside its logs, DynamoDB data calls and the KMS calls it needs', () => {
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

    it('may use exactly the grantReadWriteData actions on exactly the tables it lists, and their key only via DynamoDB', () => {
      const tableStatements = definition.tables.flatMap((tableId) => {
        const arn = dev.stack.resolve(dev.stack.tables[tableId].table.tableArn);
        const resources = [arn, { 'Fn::Join': ['', [arn, '/index/*']] }];
        return [
          { Action: readWriteDataActions, Effect: 'Allow', Resource: resources },
          { Action: streamReadActions, Effect: 'Allow', Resource: resources },
        ];
      });
      // Both tables share one key; IAM merges the identical statements into one.
      const tableKeyStatement = {
        Action: tableKeyActions,
        Effect: 'Allow',
        Resource: dev.stack.resolve(dev.stack.tableKey.key.keyArn),
        Condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['dynamodb.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
          },
        },
      };
      const encryptionStatements =
        name === 'users'
          ? [
              {
                Action: usersKeyActions.dataKey,
                Effect: 'Allow',
                Resource: dev.stack.resolve(dev.stack.dataKey.key.keyArn),
              },
              {
                Action: usersKeyActions.blindIndexKey,
                Effect: 'Allow',
                Resource: dev.stack.resolve(dev.stack.blindIndexKey.key.keyArn),
              },
            ]
          : [];
      // Instead of AWSLambdaBasicExecutionRole: writes to its own log group only.
      const logStatement = {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: dev.stack.resolve(dev.stack.functions[name].logGroup.logGroupArn),
      };
      const expected = [logStatement, ...tableStatements, tableKeyStatement, ...encryptionStatements];
      expect([...policyStatements()].sort(byAttributeName)).toEqual(expected.sort(byAttributeName));
    });

    it(`${name === 'users' ? 'may' : 'may not'} use the envelope-encryption and blind-index keys`, () => {
      const keyArns = [dev.stack.dataKey.key.keyArn, dev.stack.blindIndexKey.key.keyArn].map((arn) =>
        JSON.stringify(dev.stack.resolve(arn)),
      );
      const onEncryptionKeys = policyStatements().filter((statement) =>
        keyArns.includes(JSON.stringify((statement as { Resource: unknown }).Resource)),
      );
      expect(onEncryptionKeys).toHaveLength(name === 'users' ? 2 : 0);
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

  it('outputs the API URL, both table names, the user pool, its client ids, the token URL, the dashboard URL and the alarm topic', () => {
    const outputs = dev.template.findOutputs('*');
    expect(Object.keys(outputs).sort()).toEqual([
      'AlarmTopicArn',
      'ApiUrl',
      'AppTableName',
      'DashboardUrl',
      'HumanClientId',
      'M2mClientId',
      'TokenUrl',
      'ToolkitTableName',
      'UserPoolId',
    ]);
    const { userPool } = dev.stack;
    expect(outputs.UserPoolId?.Value).toEqual(dev.stack.resolve(userPool.userPool.userPoolId));
    expect(outputs.HumanClientId?.Value).toEqual(dev.stack.resolve(userPool.humanClient.userPoolClientId));
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
    expect(routeScopes).toEqual(['bookings/read', 'bookings/write', 'users/read']);
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

  it('gives services an M2M client with a generated secret, only the client-credentials grant and every API scope', () => {
    const client = clientResource(dev.stack.userPool.m2mClient).Properties;
    expect(client).toMatchObject({ GenerateSecret: true, AllowedOAuthFlows: ['client_credentials'] });
    expect(scopeNames(client.AllowedOAuthScopes)).toEqual(routeScopes);
  });

  it('gives people a public client with the authorization-code grant, SRP and the API scopes', () => {
    const client = clientResource(dev.stack.userPool.humanClient).Properties;
    expect(client).toMatchObject({
      GenerateSecret: false,
      AllowedOAuthFlows: ['code'],
      ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
      PreventUserExistenceErrors: 'ENABLED',
    });
    expect(scopeNames(client.AllowedOAuthScopes)).toEqual(['email', 'openid', ...routeScopes].sort());
  });

  it('serves the token endpoint from a hosted domain named after the stack and account', () => {
    dev.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['', ['bulwark-dev-', { Ref: 'AWS::AccountId' }]] },
    });
  });

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

  it('retains the user pool and turns on its deletion protection', () => {
    const [pool] = Object.values(prod.template.findResources('AWS::Cognito::UserPool'));
    expect(pool?.DeletionPolicy).toBe('Retain');
    expect(pool?.Properties?.DeletionProtection).toBe('ACTIVE');
  });

  it('retains the four KMS keys (tables, data, blind index, alarm topic)', () => {
    const keys = Object.values(prod.template.findResources('AWS::KMS::Key'));
    expect(keys).toHaveLength(4);
    for (const key of keys) expect(key.DeletionPolicy).toBe('Retain');
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
