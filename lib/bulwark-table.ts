// A DynamoDB table built from one of the shared definitions in middleware/store/tables.ts.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import type { KeyAttribute, TableDefinition } from '../middleware/store/tables.js';

export interface BulwarkTableProps {
  /**
   * The table's schema: key attributes, TTL attribute and GSIs. Read from
   * `middleware/store/tables.ts` so that CDK and local table creation share one definition.
   */
  readonly definition: TableDefinition;
  /**
   * What happens to the table when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Whether DynamoDB refuses `DeleteTable` on this table.
   * @default true when `removalPolicy` is RETAIN, false otherwise
   */
  readonly deletionProtection?: boolean;
}

const attributeTypes = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
} as const satisfies Record<KeyAttribute['type'], dynamodb.AttributeType>;

function toAttribute(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: attributeTypes[key.type] };
}

/**
 * An on-demand `TableV2` with point-in-time recovery, TTL and the GSIs of a shared definition.
 *
 * @example
 * const toolkit = new BulwarkTable(this, 'ToolkitTable', { definition: toolkitTable });
 * toolkit.table.grantReadWriteData(fn);
 */
export class BulwarkTable extends Construct {
  /** The created table. */
  public readonly table: dynamodb.TableV2;
  /** The shared definition the table was built from. */
  public readonly definition: TableDefinition;

  constructor(scope: Construct, id: string, props: BulwarkTableProps) {
    super(scope, id);
    const { definition } = props;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.definition = definition;
    this.table = new dynamodb.TableV2(this, 'Table', {
      partitionKey: toAttribute(definition.partitionKey),
      sortKey: toAttribute(definition.sortKey),
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: definition.timeToLiveAttribute,
      globalSecondaryIndexes: definition.globalSecondaryIndexes.map((index) => ({
        indexName: index.indexName,
        partitionKey: toAttribute(index.partitionKey),
        sortKey: toAttribute(index.sortKey),
        projectionType: dynamodb.ProjectionType.ALL,
      })),
      removalPolicy,
      deletionProtection: props.deletionProtection ?? removalPolicy === RemovalPolicy.RETAIN,
    });
  }
}
