// The Bulwark stack: KMS keys, tables, functions (from the route table), HTTP API, Cognito, dashboard, alarms.
import { Aws, CfnOutput, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import {
  type HttpFunctionDefinition,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
  type RouteDefinition,
  routes,
} from '../functions/routes.js';
import { appTable, type TableDefinition, toolkitTable } from '../middleware/store/tables.js';
import { BulwarkAlarms } from './alarms.js';
import { BulwarkBlindIndexKey } from './blind-index-key.js';
import { BulwarkFunction } from './bulwark-function.js';
import { BulwarkTable } from './bulwark-table.js';
import { BulwarkDashboard } from './dashboard.js';
import { BulwarkEncryptionKey } from './encryption-key.js';
import { BulwarkHttpApi } from './http-api.js';
import { BulwarkUserPool } from './user-pool.js';

/** Deployment stages; `prod` keeps its data when the stack or a table is removed. */
export const stages = ['dev', 'prod'] as const;
export type Stage = (typeof stages)[number];

/** Reads the `stage` context value (`-c stage=dev|prod`); absent means `dev`. */
export function parseStage(value: unknown): Stage {
  if (value === undefined) return 'dev';
  const stage = stages.find((candidate) => candidate === value);
  if (stage === undefined) {
    throw new Error(`Unknown stage ${JSON.stringify(value)}; expected one of: ${stages.join(', ')}`);
  }
  return stage;
}

export interface BulwarkStackProps extends StackProps {
  /**
   * The deployment stage. `prod` retains tables and log groups and turns on deletion protection;
   * `dev` destroys them with the stack.
   */
  readonly stage: Stage;
  /**
   * The JWT issuer the functions trust (e.g. another Cognito user pool's
   * `https://cognito-idp.<region>.amazonaws.com/<pool id>`) and the app clients whose access tokens
   * they accept, instead of the stack's own user pool (which is still created).
   * @default - the stack's user pool and both its app clients (bin/app.ts reads `-c authIssuer=... -c authClientIds=a,b`)
   */
  readonly auth?: { readonly issuer: string; readonly clientIds: readonly string[] };
}

type TableId = TableDefinition['id'];

/** The route table widened to its declared type, so optional auth fields can be read on every route. */
const routeTable: readonly RouteDefinition[] = routes;

/** Builds one value per entry of `httpFunctions`, keyed by function name. */
function mapHttpFunctions<V>(
  build: (name: HttpFunctionName, definition: HttpFunctionDefinition) => V,
): Record<HttpFunctionName, V> {
  // fromEntries widens keys to string; the entries are exactly httpFunctionNames.
  return Object.fromEntries(
    httpFunctionNames.map((name) => [name, build(name, httpFunctions[name])]),
  ) as Record<HttpFunctionName, V>;
}

function pascalCase(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/**
 * The sample system's foundation, built from the route table and the shared table definitions.
 *
 * @example
 * new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev' });
 */
export class BulwarkStack extends Stack {
  /** The toolkit and app tables, by definition id. */
  public readonly tables: Readonly<Record<TableId, BulwarkTable>>;
  /** One function per entry of `httpFunctions`, by name. */
  public readonly functions: Readonly<Record<HttpFunctionName, BulwarkFunction>>;
  /** The HTTP API serving the route table. */
  public readonly httpApi: BulwarkHttpApi;
  /** Encrypts both tables at rest; every function reaches it only through DynamoDB's table grants. */
  public readonly tableKey: BulwarkEncryptionKey;
  /** Wraps the data keys of the users function's envelope encryption (KMS_KEY_ID). */
  public readonly dataKey: BulwarkEncryptionKey;
  /** Derives the users function's blind-index keys (KMS_BLIND_INDEX_KEY_ID). */
  public readonly blindIndexKey: BulwarkBlindIndexKey;
  /** People and services sign in here; its issuer and clients feed the functions' auth settings. */
  public readonly userPool: BulwarkUserPool;
  /** Alarms on circuits, 5xx rate, auth failures and the rate limiter's store, to one SNS topic. */
  public readonly alarms: BulwarkAlarms;
  /** The deployment's CloudWatch dashboard. */
  public readonly dashboard: BulwarkDashboard;
  /** The bookings service's request-signing secret (JSON `{ current, previous }`), shared with users. */
  public readonly bookingsSigningSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: BulwarkStackProps) {
    super(scope, id, props);
    const removalPolicy = props.stage === 'prod' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.tableKey = new BulwarkEncryptionKey(this, 'TableKey', {
      description: `${id}: DynamoDB tables at rest`,
      removalPolicy,
    });
    this.dataKey = new BulwarkEncryptionKey(this, 'DataKey', {
      description: `${id}: envelope encryption of users' personal fields`,
      removalPolicy,
    });
    this.blindIndexKey = new BulwarkBlindIndexKey(this, 'BlindIndexKey', {
      description: `${id}: blind indexes of users' encrypted fields`,
      removalPolicy,
    });
    const encryptionKey = this.tableKey.key;
    this.tables = {
      toolkit: new BulwarkTable(this, 'ToolkitTable', {
        definition: toolkitTable,
        encryptionKey,
        removalPolicy,
      }),
      app: new BulwarkTable(this, 'AppTable', { definition: appTable, encryptionKey, removalPolicy }),
    };

    this.functions = mapHttpFunctions((name, definition) => {
      const fn = new BulwarkFunction(this, `${pascalCase(name)}Function`, {
        entry: definition.entry,
        serviceName: name,
        memoryMb: definition.memoryMb,
        timeoutSec: definition.timeoutSec,
        logRemovalPolicy: removalPolicy,
        environment: {
          APP_TABLE_NAME: this.tables.app.table.tableName,
          TOOLKIT_TABLE_NAME: this.tables.toolkit.table.tableName,
          // `prod` makes the functions refuse the local key provider (functions/shared/environment.ts).
          BULWARK_STAGE: props.stage,
        },
      });
      Validations.of(fn.lambdaFunction).acknowledge({
        id: 'Serverless-LambdaDLQ',
        reason:
          'Invoked only synchronously by the HTTP API, which returns the error to the caller; a DLQ only receives failed asynchronous invocations.',
      });
      // Least privilege: data access to exactly the tables the route table lists, nothing else.
      for (const tableId of definition.tables) {
        this.tables[tableId].grantReadWriteData(fn.lambdaFunction);
      }
      return fn;
    });

    this.addEncryptionKeys();

    this.httpApi = new BulwarkHttpApi(this, 'HttpApi', {
      apiName: id,
      functions: mapHttpFunctions((name) => this.functions[name].lambdaFunction),
      accessLogRemovalPolicy: removalPolicy,
    });
    Validations.of(this.httpApi.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Every route is authorized in its function by routePipeline from the route table (Cognito JWT with scopes and roles, or a signed service request); GET /health is public by design.',
    });
    // Bookings checks users through the same API (signed, behind its circuit breaker). The URL is
    // built from the API's id alone, and the API resource depends on no function: no cycle.
    this.functions.bookings.lambdaFunction.addEnvironment('USERS_API_URL', this.httpApi.url);
    this.userPool = new BulwarkUserPool(this, 'UserPool', {
      // The route table is the one source of the scopes and roles the API checks.
      scopes: routeTable.flatMap((route) =>
        route.auth.kind === 'principal' ? (route.auth.scopes ?? []) : [],
      ),
      groups: routeTable.flatMap((route) =>
        route.auth.kind === 'principal' ? (route.auth.roles ?? []) : [],
      ),
      // Hosted domain prefixes are global per region: the account id keeps them apart.
      domainPrefix: `${id.toLowerCase()}-${Aws.ACCOUNT_ID}`,
      removalPolicy,
    });
    this.bookingsSigningSecret = this.addAuthEnvironment(props, removalPolicy);

    this.alarms = new BulwarkAlarms(this, 'Alarms', { httpApi: this.httpApi.api, removalPolicy });
    this.dashboard = new BulwarkDashboard(this, 'Dashboard', {
      httpApi: this.httpApi.api,
      functions: mapHttpFunctions((name) => this.functions[name].lambdaFunction),
      logGroups: httpFunctionNames.map((name) => this.functions[name].logGroup),
      alarms: this.alarms.alarms,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.url, description: 'Invoke URL of the HTTP API' });
    new CfnOutput(this, 'AppTableName', { value: this.tables.app.table.tableName });
    new CfnOutput(this, 'ToolkitTableName', { value: this.tables.toolkit.table.tableName });
    new CfnOutput(this, 'UserPoolId', { value: this.userPool.userPool.userPoolId });
    new CfnOutput(this, 'HumanClientId', {
      value: this.userPool.humanClient.userPoolClientId,
      description: 'App client for people (authorization code + PKCE, SRP)',
    });
    new CfnOutput(this, 'M2mClientId', {
      value: this.userPool.m2mClient.userPoolClientId,
      description: 'App client for services (client credentials); its secret is in the Cognito console',
    });
    new CfnOutput(this, 'DashboardUrl', { value: this.dashboard.url, description: 'CloudWatch dashboard' });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.alarms.topic.topicArn,
      description: 'SNS topic of every alarm: subscribe your on-call address',
    });
    new CfnOutput(this, 'TokenUrl', {
      value: this.userPool.tokenUrl,
      description: 'OAuth token endpoint (POST grant_type=client_credentials)',
    });
  }

  /**
   * Only the users function encrypts personal fields (functions/shared/encryption.ts), so only it
   * learns the key ids and may use the keys, with exactly the calls the KMS key provider makes.
   */
  private addEncryptionKeys(): void {
    const users = this.functions.users.lambdaFunction;
    users.addEnvironment('KMS_KEY_ID', this.dataKey.key.keyArn);
    users.addEnvironment('KMS_BLIND_INDEX_KEY_ID', this.blindIndexKey.key.keyArn);
    this.dataKey.key.grant(users, 'kms:GenerateDataKey', 'kms:Decrypt');
    this.blindIndexKey.key.grant(users, 'kms:GenerateMac');
  }

  /**
   * Auth settings of the functions that serve protected routes, and the signing secret of the one
   * service-to-service call (bookings → users). The secret is generated in Secrets Manager and
   * resolved into both functions' environment at deploy time (JSON `{ current, previous }`); rotate
   * it by adding `previous` and redeploying.
   */
  private addAuthEnvironment(props: BulwarkStackProps, removalPolicy: RemovalPolicy): secretsmanager.Secret {
    if (props.auth !== undefined) {
      const { auth } = props;
      const problems = [
        ...(URL.canParse(auth.issuer) ? [] : ['auth.issuer must be a URL']),
        ...(auth.clientIds.length > 0 && auth.clientIds.every((id) => /^[\w.-]+$/.test(id))
          ? []
          : ['auth.clientIds must be one or more client ids']),
      ];
      if (problems.length > 0) throw new Error(`Invalid BulwarkStack props: ${problems.join('; ')}`);
    }
    const auth = props.auth ?? {
      issuer: this.userPool.issuer,
      clientIds: [this.userPool.humanClient.userPoolClientId, this.userPool.m2mClient.userPoolClientId],
    };
    const protectedFunctions = new Set<HttpFunctionName>(
      routes.filter((route) => route.auth.kind !== 'public').map((route) => route.function),
    );
    for (const name of protectedFunctions) {
      const fn = this.functions[name].lambdaFunction;
      fn.addEnvironment('AUTH_ISSUER', auth.issuer);
      fn.addEnvironment('AUTH_CLIENT_IDS', auth.clientIds.join(','));
      fn.addEnvironment('AUTH_TOKEN_USE', 'access');
    }
    const bookingsSigningSecret = new secretsmanager.Secret(this, 'BookingsSigningSecret', {
      description: 'Request-signing secret of the bookings service, JSON { current, previous }',
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'current',
        passwordLength: 48,
        excludePunctuation: true,
      },
      removalPolicy,
    });
    Validations.of(bookingsSigningSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'No rotation function exists yet: rotate by adding `previous`, redeploying, then replacing `current` (the functions accept both during the overlap).',
    });
    // The caller signs with it; the functions whose routes allow signed service requests verify with it.
    const signingFunctions = new Set<HttpFunctionName>([
      'bookings',
      ...routes.filter((route) => 'allowService' in route.auth).map((route) => route.function),
    ]);
    for (const name of signingFunctions) {
      this.functions[name].lambdaFunction.addEnvironment(
        'SERVICE_SIGNING_SECRET_BOOKINGS',
        bookingsSigningSecret.secretValue.unsafeUnwrap(),
      );
    }
    return bookingsSigningSecret;
  }
}
