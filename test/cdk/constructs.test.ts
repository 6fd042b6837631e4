// Assertion tests for the constructs' own defaults, each in a bare stack.
import { readdirSync, readFileSync } from 'node:fs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { type HttpFunctionName, httpFunctionNames, routes } from '../../functions/routes.js';
import { catalogSumQuery } from '../../lib/alarms.js';
import { BulwarkBlindIndexKey } from '../../lib/blind-index-key.js';
import { BulwarkTable, tableKeyActions, tableKeyReadActions } from '../../lib/bulwark-table.js';
import { BulwarkEncryptionKey } from '../../lib/encryption-key.js';
import { BulwarkHttpApi } from '../../lib/http-api.js';
import { BulwarkScheduledFunction } from '../../lib/scheduled-function.js';
import { BulwarkSecretRotation } from '../../lib/secret-rotation.js';
import { BulwarkUserPool, type BulwarkUserPoolProps, isLocalCallbackUrl } from '../../lib/user-pool.js';
import { metricCatalog } from '../../middleware/metrics/catalog.js';
import { appTable, toolkitTable } from '../../middleware/store/tables.js';
import { projectApp } from '../helpers/cdk-app.js';

describe('BulwarkEncryptionKey', () => {
  it('is a retained symmetric key with rotation and a 30-day deletion window by default', () => {
    const stack = new Stack();
    new BulwarkEncryptionKey(stack, 'Key', { description: 'test' });
    Template.fromStack(stack).hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: {
        Description: 'test',
        KeySpec: 'SYMMETRIC_DEFAULT',
        EnableKeyRotation: true,
        PendingWindowInDays: 30,
      },
    });
  });
});

describe('BulwarkBlindIndexKey', () => {
  it('is a retained HMAC_256 MAC key by default, without automatic rotation (KMS has none for HMAC)', () => {
    const stack = new Stack();
    new BulwarkBlindIndexKey(stack, 'Key');
    const [key] = Object.values(Template.fromStack(stack).findResources('AWS::KMS::Key'));
    expect(key?.DeletionPolicy).toBe('Retain');
    expect(key?.Properties).toMatchObject({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
    expect(key?.Properties?.EnableKeyRotation).toBeUndefined();
  });
});

describe('BulwarkTable', () => {
  it('keeps DynamoDB-owned encryption and grants no key action without an encryption key', () => {
    const stack = new Stack();
    const table = new BulwarkTable(stack, 'Table', { definition: toolkitTable });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    table.grantTableActions(role, ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    const template = Template.fromStack(stack);
    const [resource] = Object.values(template.findResources('AWS::DynamoDB::GlobalTable'));
    expect(resource?.Properties?.SSESpecification).toBeUndefined();
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('kms:');
  });
});

describe('BulwarkTable examples', () => {
  it("grant through the construct in every TSDoc comment and README line: TableV2's grants miss the key", () => {
    const lib = new URL('../../lib/', import.meta.url);
    const documented = [
      ...readdirSync(lib)
        .filter((file) => file.endsWith('.ts'))
        .flatMap((file) =>
          readFileSync(new URL(file, lib), 'utf8')
            .split('\n')
            .filter((line) => /^\s*(?:\/\*\*|\*|\/\/)/.test(line))
            .map((line) => `lib/${file}: ${line.trim()}`),
        ),
      ...readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
        .split('\n')
        .map((line) => `README.md: ${line}`),
    ];
    expect(documented.filter((line) => /\.table\.grant\w*\(/.test(line))).toEqual([]);
  });
});

describe('BulwarkTable removal', () => {
  function tableWith(removalPolicy?: RemovalPolicy): Record<string, unknown> {
    const stack = new Stack();
    new BulwarkTable(stack, 'Table', {
      definition: toolkitTable,
      ...(removalPolicy === undefined ? {} : { removalPolicy }),
    });
    const [table] = Object.values(Template.fromStack(stack).findResources('AWS::DynamoDB::GlobalTable'));
    return {
      DeletionPolicy: table?.DeletionPolicy,
      UpdateReplacePolicy: table?.UpdateReplacePolicy,
      DeletionProtectionEnabled: table?.Properties?.Replicas?.[0]?.DeletionProtectionEnabled,
    };
  }

  it('is retained with deletion protection by default', () => {
    expect(tableWith()).toEqual({
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      DeletionProtectionEnabled: true,
    });
  });

  it('leaves deletion protection off with RETAIN_ON_UPDATE_OR_DELETE, so a failed create can roll back', () => {
    expect(tableWith(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)).toEqual({
      DeletionPolicy: 'RetainExceptOnCreate',
      UpdateReplacePolicy: 'Retain',
      DeletionProtectionEnabled: false,
    });
  });
});

describe('BulwarkTable exact grants', () => {
  it('grants exactly the listed actions on the table alone, and Query on a queried index by name', () => {
    const stack = new Stack();
    const table = new BulwarkTable(stack, 'Table', { definition: toolkitTable });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    table.grantTableActions(role, ['dynamodb:GetItem', 'dynamodb:Query']);
    table.grantIndexQuery(role, 'gsi1');
    const arn = stack.resolve(table.table.tableArn);
    const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
    expect(policy?.Properties?.PolicyDocument?.Statement).toEqual([
      { Action: ['dynamodb:GetItem', 'dynamodb:Query'], Effect: 'Allow', Resource: arn },
      { Action: 'dynamodb:Query', Effect: 'Allow', Resource: { 'Fn::Join': ['', [arn, '/index/gsi1']] } },
    ]);
  });
});

describe('BulwarkTable grants by call', () => {
  function grantedBy(grant: (table: BulwarkTable, role: iam.Role) => void) {
    const stack = new Stack();
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const table = new BulwarkTable(stack, 'Table', { definition: appTable, encryptionKey: key });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    grant(table, role);
    const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
    return {
      statements: policy?.Properties?.PolicyDocument?.Statement as { Action: unknown; Resource: unknown }[],
      tableArn: stack.resolve(table.table.tableArn),
      keyArn: stack.resolve(key.keyArn),
    };
  }
  const onKey = (statements: { Action: unknown; Resource: unknown }[], keyArn: unknown) =>
    statements.filter((statement) => JSON.stringify(statement.Resource) === JSON.stringify(keyArn));

  it('grants item calls on the table alone, with the key actions of a reader or, for a write, of a writer', () => {
    const reader = grantedBy((table, role) => table.grantTableActions(role, ['dynamodb:GetItem']));
    expect(reader.statements.find((statement) => statement.Action === 'dynamodb:GetItem')?.Resource).toEqual(
      reader.tableArn,
    );
    expect(onKey(reader.statements, reader.keyArn).map((statement) => statement.Action)).toEqual([
      tableKeyReadActions,
    ]);
    const writer = grantedBy((table, role) =>
      table.grantTableActions(role, ['dynamodb:GetItem', 'dynamodb:UpdateItem']),
    );
    expect(onKey(writer.statements, writer.keyArn).map((statement) => statement.Action)).toEqual([
      tableKeyActions,
    ]);
  });

  it('grants Query on one named index, and refuses an index the definition does not list', () => {
    const { statements, tableArn } = grantedBy((table, role) => table.grantIndexQuery(role, 'gsi3'));
    expect(statements.find((statement) => statement.Action === 'dynamodb:Query')?.Resource).toEqual({
      'Fn::Join': ['', [tableArn, '/index/gsi3']],
    });
    expect(() => grantedBy((table, role) => table.grantIndexQuery(role, 'gsi9'))).toThrow(
      'Invalid grant: Table has no index gsi9',
    );
  });
});

describe('BulwarkScheduledFunction', () => {
  const definition = { entry: 'functions/health/handler.ts', memoryMb: 128, timeoutSec: 5, everyMinutes: 15 };
  const bare = () => new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Scheduled');

  it('runs its function at its rate, and alarms on its failed runs without actions when given no topic', () => {
    const stack = bare();
    const scheduled = new BulwarkScheduledFunction(stack, 'Job', { name: 'job', definition });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      Targets: [Match.objectLike({ Arn: stack.resolve(scheduled.function.lambdaFunction.functionArn) })],
    });
    template.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 128, Timeout: 5 });
    const [alarm] = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarm?.Properties).toMatchObject({ Threshold: 1, TreatMissingData: 'notBreaching' });
    // One period per run: a failed run fires it once.
    expect(alarm?.Properties?.Metrics?.[0]?.MetricStat).toMatchObject({
      Metric: { MetricName: 'Errors', Namespace: 'AWS/Lambda' },
      Period: 900,
    });
    expect(alarm?.Properties).not.toHaveProperty('AlarmActions');
  });

  it('refuses a rate that is not a whole number of minutes, 1 or more', () => {
    for (const everyMinutes of [0, 1.5]) {
      expect(
        () =>
          new BulwarkScheduledFunction(bare(), 'Job', {
            name: 'job',
            definition: { ...definition, everyMinutes },
          }),
      ).toThrow(`definition.everyMinutes must be a whole number of minutes, 1 or more (got ${everyMinutes})`);
    }
  });
});

describe('BulwarkUserPool', () => {
  const base = { scopes: ['bookings/read'], groups: ['admin'], domainPrefix: 'bulwark-test' };

  it('is retained with deletion protection and required MFA by default', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', base);
    Template.fromStack(stack).hasResource('AWS::Cognito::UserPool', {
      DeletionPolicy: 'Retain',
      Properties: { DeletionProtection: 'ACTIVE', MfaConfiguration: 'ON' },
    });
  });

  it('leaves deletion protection off with RETAIN_ON_UPDATE_OR_DELETE, so a failed create can roll back', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', { ...base, removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE });
    const template = Template.fromStack(stack);
    template.hasResource('AWS::Cognito::UserPool', {
      DeletionPolicy: 'RetainExceptOnCreate',
      UpdateReplacePolicy: 'Retain',
      Properties: { DeletionProtection: 'INACTIVE' },
    });
    // Its configuration is kept with it, so a deleted stack leaves the pool its groups, clients and scopes.
    for (const [type, count] of [
      ['AWS::Cognito::UserPoolGroup', 1],
      ['AWS::Cognito::UserPoolClient', 2],
      ['AWS::Cognito::UserPoolResourceServer', 1],
    ] as const) {
      const policies = Object.values(template.findResources(type)).map(
        ({ DeletionPolicy, UpdateReplacePolicy }) => ({ DeletionPolicy, UpdateReplacePolicy }),
      );
      expect({ type, policies }).toEqual({
        type,
        policies: Array(count).fill({
          DeletionPolicy: 'RetainExceptOnCreate',
          UpdateReplacePolicy: 'Retain',
        }),
      });
    }
  });

  it("uses Cognito's built-in email sender and a localhost callback unless told otherwise", () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', base);
    const template = Template.fromStack(stack);
    const [pool] = Object.values(template.findResources('AWS::Cognito::UserPool'));
    expect(pool?.Properties?.EmailConfiguration).toBeUndefined();
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: ['http://localhost:3000/callback'],
    });
  });

  it('sends its emails the way it is given, and returns people to the callback URLs it is given', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', {
      ...base,
      callbackUrls: ['https://app.example.org/callback', 'http://localhost:8080/cb'],
      email: cognito.UserPoolEmail.withSES({ fromEmail: 'no-reply@example.org', sesRegion: 'eu-west-1' }),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      EmailConfiguration: { EmailSendingAccount: 'DEVELOPER', From: 'no-reply@example.org' },
    });
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: ['https://app.example.org/callback', 'http://localhost:8080/cb'],
    });
  });

  it('rejects an empty callback list, a non-URL and plain http off localhost, naming each', () => {
    const build = (callbackUrls: string[]) => () =>
      new BulwarkUserPool(new Stack(), 'Pool', { ...base, callbackUrls });
    expect(build([])).toThrow('Invalid BulwarkUserPool props: callbackUrls must name at least one URL');
    expect(build(['app/callback', 'http://app.example.org/callback'])).toThrow(
      'Invalid BulwarkUserPool props: callback URL "app/callback" is not a URL; callback URL "http://app.example.org/callback" must be https (http only for localhost)',
    );
    // Cognito allows plain http for the name localhost only, not for its addresses.
    expect(build(['http://127.0.0.1:8080/cb', 'http://[::1]:8080/cb', 'https://127.0.0.1:8080/cb'])).toThrow(
      'Invalid BulwarkUserPool props: callback URL "http://127.0.0.1:8080/cb" must be https (http only for localhost); callback URL "http://[::1]:8080/cb" must be https (http only for localhost)',
    );
  });

  it('gives people SRP (refresh rotates, through the token endpoint), and services refresh only (the flow Cognito requires in any list)', () => {
    const stack = new Stack();
    const pool = new BulwarkUserPool(stack, 'Pool', base);
    const clients = Template.fromStack(stack).findResources('AWS::Cognito::UserPoolClient');
    const flowsOf = (client: cognito.UserPoolClient) =>
      clients[stack.resolve(client.userPoolClientId).Ref]?.Properties?.ExplicitAuthFlows;
    // Cognito refuses REFRESH_TOKEN_AUTH on a client that rotates refresh tokens.
    expect(flowsOf(pool.humanClient)).toEqual(['ALLOW_USER_SRP_AUTH']);
    expect(flowsOf(pool.m2mClient)).toEqual(['ALLOW_REFRESH_TOKEN_AUTH']);
  });

  it('lets the M2M client request every API scope, or only those it is given, and refuses others', () => {
    const scopesOf = (props: Partial<BulwarkUserPoolProps>) => {
      const stack = new Stack();
      const pool = new BulwarkUserPool(stack, 'Pool', {
        ...base,
        scopes: ['bookings/read', 'bookings/write', 'users/read'],
        ...props,
      });
      const clients = Template.fromStack(stack).findResources('AWS::Cognito::UserPoolClient');
      const scopes: unknown[] =
        clients[stack.resolve(pool.m2mClient.userPoolClientId).Ref]?.Properties?.AllowedOAuthScopes ?? [];
      // Each scope is `<resource server ref>/<name>`: the server by its identifier, resolved here.
      return scopes.map((scope) => JSON.stringify(stack.resolve(scope)));
    };
    expect(scopesOf({})).toHaveLength(3);
    const narrowed = scopesOf({ m2mScopes: ['bookings/read'] });
    expect(narrowed).toHaveLength(1);
    expect(narrowed[0]).toMatch(/ResourceServerbookings.*\/read/);
    expect(() => scopesOf({ m2mScopes: ['users/write'] })).toThrow(
      'Invalid BulwarkUserPool props: m2mScopes "users/write" not among the scopes the API checks (bookings/read, bookings/write, users/read)',
    );
    expect(() => scopesOf({ m2mScopes: [] })).toThrow(
      'Invalid BulwarkUserPool props: m2mScopes must name at least one scope',
    );
  });

  it("keeps people's refresh tokens 12 hours and rotates them at each refresh, unless told another validity", () => {
    const refreshOf = (props: Partial<BulwarkUserPoolProps>) => {
      const stack = new Stack();
      const pool = new BulwarkUserPool(stack, 'Pool', { ...base, ...props });
      const clients = Template.fromStack(stack).findResources('AWS::Cognito::UserPoolClient');
      const { RefreshTokenValidity, TokenValidityUnits, RefreshTokenRotation } =
        clients[stack.resolve(pool.humanClient.userPoolClientId).Ref]?.Properties ?? {};
      return { RefreshTokenValidity, unit: TokenValidityUnits?.RefreshToken, RefreshTokenRotation };
    };
    const rotation = { Feature: 'ENABLED', RetryGracePeriodSeconds: 10 };
    expect(refreshOf({})).toEqual({
      RefreshTokenValidity: 720,
      unit: 'minutes',
      RefreshTokenRotation: rotation,
    });
    expect(refreshOf({ refreshTokenValidity: Duration.hours(2) })).toEqual({
      RefreshTokenValidity: 120,
      unit: 'minutes',
      RefreshTokenRotation: rotation,
    });
  });

  it('lets people write only their name, never their email, and keeps the old email until a new one is verified', () => {
    const stack = new Stack();
    const pool = new BulwarkUserPool(stack, 'Pool', base);
    const template = Template.fromStack(stack);
    const clients = template.findResources('AWS::Cognito::UserPoolClient');
    expect(
      clients[stack.resolve(pool.humanClient.userPoolClientId).Ref]?.Properties?.WriteAttributes,
    ).toEqual(['name']);
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameAttributes: ['email'],
      AutoVerifiedAttributes: ['email'],
      UserAttributeUpdateSettings: { AttributesRequireVerificationBeforeUpdate: ['email'] },
    });
  });

  it('signs people in by email whatever its case', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', base);
    Template.fromStack(stack).hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameConfiguration: { CaseSensitive: false },
    });
  });

  it('leaves the sign-in case out for a pool created without it, which Cognito would refuse to change', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', { ...base, signInCaseInsensitive: false });
    Template.fromStack(stack).hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameConfiguration: Match.absent(),
    });
  });

  it('counts every address of the machine a callback is opened on as local, and no other', () => {
    const local = [
      'http://localhost:3000/cb',
      'https://localhost.:3000/cb',
      'https://app.localhost/cb',
      'https://127.0.0.2/cb',
      'https://0x7f.1/cb',
      'https://0.0.0.0/cb',
      'https://[::1]/cb',
      'https://[0:0:0:0:0:0:0:1]/cb',
      'https://[::]/cb',
      'https://[::ffff:127.0.0.1]/cb',
      'https://[::ffff:127.1.2.3]/cb',
      'https://[::ffff:0.0.0.0]/cb',
    ];
    for (const url of local) expect(isLocalCallbackUrl(url), url).toBe(true);
    const remote = [
      'https://app.example.org/cb',
      'https://localhost.example.org/cb',
      'https://127.example/cb',
      'https://[::ffff:10.0.0.1]/cb',
      'not a url',
    ];
    for (const url of remote) expect(isLocalCallbackUrl(url), url).toBe(false);
  });

  it('rejects a scope without a resource-server prefix', () => {
    expect(() => new BulwarkUserPool(new Stack(), 'Pool', { ...base, scopes: ['read'] })).toThrow(
      'Invalid BulwarkUserPool props: scope "read" is not <server>/<scope>',
    );
  });

  it('creates each group and resource server once, however often the route table names them', () => {
    const stack = new Stack();
    new BulwarkUserPool(stack, 'Pool', {
      ...base,
      scopes: ['bookings/read', 'bookings/read', 'bookings/write'],
      groups: ['admin', 'admin'],
    });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Cognito::UserPoolGroup', 1);
    template.resourceCountIs('AWS::Cognito::UserPoolResourceServer', 1);
    template.hasResourceProperties('AWS::Cognito::UserPoolResourceServer', {
      Identifier: 'bookings',
      Scopes: [
        { ScopeName: 'read', ScopeDescription: 'bookings/read' },
        { ScopeName: 'write', ScopeDescription: 'bookings/write' },
      ],
    });
  });
});

describe('BulwarkHttpApi functions', () => {
  it('names the missing function and what is sent to it, instead of failing on undefined', () => {
    const stack = new Stack();
    const imported = (name: string) =>
      lambda.Function.fromFunctionArn(stack, name, `arn:aws:lambda:eu-west-1:111122223333:function:${name}`);
    const { 'catch-all': _catchAll, ...withoutCatchAll } = Object.fromEntries(
      httpFunctionNames.map((name) => [name, imported(name)]),
    ) as Record<HttpFunctionName, lambda.IFunction>;
    expect(
      () =>
        new BulwarkHttpApi(stack, 'NoCatchAll', {
          functions: withoutCatchAll as Record<HttpFunctionName, lambda.IFunction>,
        }),
    ).toThrow(
      'Invalid BulwarkHttpApi props: functions has no catch-all, which the $default route (every unmatched request) is sent to',
    );
    const { webhooks: _webhooks, ...withoutWebhooks } = { ...withoutCatchAll, 'catch-all': _catchAll };
    const firstWebhookRoute = routes.find((route) => route.function === 'webhooks');
    expect(
      () =>
        new BulwarkHttpApi(stack, 'NoWebhooks', {
          functions: withoutWebhooks as Record<HttpFunctionName, lambda.IFunction>,
        }),
    ).toThrow(
      `Invalid BulwarkHttpApi props: functions has no webhooks, which ${firstWebhookRoute?.method} ${firstWebhookRoute?.path} is sent to`,
    );
  });
});

describe('catalogSumQuery', () => {
  it('sums a catalog metric over its exact dimension schema', () => {
    expect(catalogSumQuery(metricCatalog.CircuitOpened)).toBe(
      'SELECT SUM(CircuitOpened) FROM SCHEMA("Bulwark", service, circuit)',
    );
  });
});

describe('BulwarkSecretRotation', () => {
  it('schedules rotations 3 to 1000 whole days apart: Secrets Manager may rotate anywhere in the UTC day', () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Rotation');
    const rotation = new BulwarkSecretRotation(stack, 'SecretRotation');
    const secret = new secretsmanager.Secret(stack, 'Signing');
    expect(rotation.rotate(secret, Duration.days(3)).rotationRules).toEqual({
      scheduleExpression: 'rate(3 days)',
    });
    // Unset means true: a schedule change rotates at once. `false` would make Secrets Manager run only
    // testSecret, which refuses any pending value its own createSecret did not make (README).
    expect(
      rotation.rotate(new secretsmanager.Secret(stack, 'Link'), Duration.days(3)).rotateImmediatelyOnUpdate,
    ).toBeUndefined();
    for (const every of [Duration.days(1), Duration.days(2), Duration.hours(60), Duration.days(1001)]) {
      expect(() => rotation.rotate(secret, every)).toThrow(
        'Invalid rotation of Signing: every must be 3 to 1000 whole days',
      );
    }
  });

  it("alarms on the function's failed steps, notifying the topic it is given on alarm and on recovery", () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Rotation');
    const topic = new sns.Topic(stack, 'Topic');
    const rotation = new BulwarkSecretRotation(stack, 'SecretRotation', { alarmTopic: topic });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: {
              Namespace: 'AWS/Lambda',
              MetricName: 'Errors',
              Dimensions: [
                {
                  Name: 'FunctionName',
                  Value: stack.resolve(rotation.rotationFunction.lambdaFunction.functionName),
                },
              ],
            },
          }),
        }),
      ],
      Threshold: 1,
      AlarmActions: [stack.resolve(topic.topicArn)],
      OKActions: [stack.resolve(topic.topicArn)],
    });
  });

  it("grants a secret's customer-managed key, through Secrets Manager only, to rotate it, imported secrets too", () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Rotation');
    const rotation = new BulwarkSecretRotation(stack, 'SecretRotation');
    const ownKey = new kms.Key(stack, 'OwnKey');
    const importedKey = new kms.Key(stack, 'ImportedKey');
    rotation.rotate(
      new secretsmanager.Secret(stack, 'Signing', { encryptionKey: ownKey }),
      Duration.days(30),
    );
    rotation.rotate(
      secretsmanager.Secret.fromSecretAttributes(stack, 'Imported', {
        secretCompleteArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:imported-AbCdEf',
        encryptionKey: importedKey,
      }),
      Duration.days(30),
    );
    rotation.rotate(new secretsmanager.Secret(stack, 'Plain'), Duration.days(30));
    const statements = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')).flatMap(
      (policy) => policy.Properties.PolicyDocument.Statement,
    );
    const keyStatements = statements.filter((statement) => JSON.stringify(statement.Action).includes('kms:'));
    const viaSecretsManager = {
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
      },
    };
    // One statement: CDK merges the two keys' statements, which differ only in the resource.
    expect(keyStatements).toEqual([
      {
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Effect: 'Allow',
        Resource: [stack.resolve(importedKey.keyArn), stack.resolve(ownKey.keyArn)],
        Condition: viaSecretsManager,
      },
    ]);
  });

  it('refuses a second secret with the same local id, naming both', () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Rotation');
    const rotation = new BulwarkSecretRotation(stack, 'SecretRotation');
    const first = new secretsmanager.Secret(new Construct(stack, 'Billing'), 'Secret');
    rotation.rotate(first, Duration.days(30));
    expect(() =>
      rotation.rotate(
        new secretsmanager.Secret(new Construct(stack, 'Shipping'), 'Secret'),
        Duration.days(30),
      ),
    ).toThrow(
      'Invalid rotation of Rotation/Shipping/Secret: Rotation/Billing/Secret is rotated already under the same id (Secret), which names its schedule; give one of the two secrets another id',
    );
    expect(() => rotation.rotate(first, Duration.days(30))).toThrow(
      'Invalid rotation of Rotation/Billing/Secret: it is rotated already',
    );
  });

  it('keeps the failure alarm without actions when given no topic', () => {
    const stack = new Stack(projectApp({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Rotation');
    new BulwarkSecretRotation(stack, 'SecretRotation');
    const [alarm] = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm'));
    expect(alarm?.Properties).not.toHaveProperty('AlarmActions');
    expect(alarm?.Properties).not.toHaveProperty('OKActions');
  });
});
