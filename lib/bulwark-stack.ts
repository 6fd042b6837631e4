// The Bulwark stack: both tables, one function per route-table function, and the HTTP API.
import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import {
  type HttpFunctionDefinition,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
  routes,
} from '../functions/routes.js';
import { appTable, type TableDefinition, toolkitTable } from '../middleware/store/tables.js';
import { BulwarkFunction } from './bulwark-function.js';
import { BulwarkTable } from './bulwark-table.js';
import { BulwarkHttpApi } from './http-api.js';

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
   * The JWT issuer the functions trust (a Cognito user pool's
   * `https://cognito-idp.<region>.amazonaws.com/<pool id>`) and the app clients whose access tokens
   * they accept. Without it no JWT is accepted and routes that need a user answer 401.
   * @default - no JWT issuer (bin/app.ts reads `-c authIssuer=... -c authClientIds=a,b`)
   */
  readonly auth?: { readonly issuer: string; readonly clientIds: readonly string[] };
}

type TableId = TableDefinition['id'];

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
  /** The bookings service's request-signing secret (JSON `{ current, previous }`), shared with users. */
  public readonly bookingsSigningSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: BulwarkStackProps) {
    super(scope, id, props);
    const removalPolicy = props.stage === 'prod' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.tables = {
      toolkit: new BulwarkTable(this, 'ToolkitTable', { definition: toolkitTable, removalPolicy }),
      app: new BulwarkTable(this, 'AppTable', { definition: appTable, removalPolicy }),
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
      // Least privilege: data access to exactly the tables the route table lists, nothing else.
      for (const tableId of definition.tables) {
        this.tables[tableId].table.grantReadWriteData(fn.lambdaFunction);
      }
      return fn;
    });

    this.httpApi = new BulwarkHttpApi(this, 'HttpApi', {
      apiName: id,
      functions: mapHttpFunctions((name) => this.functions[name].lambdaFunction),
      accessLogRemovalPolicy: removalPolicy,
    });
    // Bookings checks users through the same API (signed, behind its circuit breaker). The URL is
    // built from the API's id alone, and the API resource depends on no function: no cycle.
    this.functions.bookings.lambdaFunction.addEnvironment('USERS_API_URL', this.httpApi.url);
    this.bookingsSigningSecret = this.addAuthEnvironment(props, removalPolicy);

    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.url, description: 'Invoke URL of the HTTP API' });
    new CfnOutput(this, 'AppTableName', { value: this.tables.app.table.tableName });
    new CfnOutput(this, 'ToolkitTableName', { value: this.tables.toolkit.table.tableName });
  }

  /**
   * Auth settings of the functions that serve protected routes, and the signing secret of the one
   * service-to-service call (bookings → users). The secret is generated in Secrets Manager and
   * resolved into both functions' environment at deploy time (JSON `{ current, previous }`); rotate
   * it by adding `previous` and redeploying.
   */
  private addAuthEnvironment(props: BulwarkStackProps, removalPolicy: RemovalPolicy): secretsmanager.Secret {
    const { auth } = props;
    if (auth !== undefined) {
      const problems = [
        ...(URL.canParse(auth.issuer) ? [] : ['auth.issuer must be a URL']),
        ...(auth.clientIds.length > 0 && auth.clientIds.every((id) => /^[\w.-]+$/.test(id))
          ? []
          : ['auth.clientIds must be one or more client ids']),
      ];
      if (problems.length > 0) throw new Error(`Invalid BulwarkStack props: ${problems.join('; ')}`);
    }
    if (auth !== undefined) {
      const protectedFunctions = new Set<HttpFunctionName>(
        routes.filter((route) => route.auth.kind !== 'public').map((route) => route.function),
      );
      for (const name of protectedFunctions) {
        const fn = this.functions[name].lambdaFunction;
        fn.addEnvironment('AUTH_ISSUER', auth.issuer);
        fn.addEnvironment('AUTH_CLIENT_IDS', auth.clientIds.join(','));
        fn.addEnvironment('AUTH_TOKEN_USE', 'access');
      }
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
