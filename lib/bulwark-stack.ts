// The Bulwark stack: both tables, one function per route-table function, and the HTTP API.
import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  type HttpFunctionDefinition,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
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

    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.url, description: 'Invoke URL of the HTTP API' });
    new CfnOutput(this, 'AppTableName', { value: this.tables.app.table.tableName });
    new CfnOutput(this, 'ToolkitTableName', { value: this.tables.toolkit.table.tableName });
  }
}
