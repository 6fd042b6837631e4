// A DynamoDB table built from one of the shared definitions in middleware/store/tables.ts.
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import type { IndexDefinition, KeyAttribute, TableDefinition } from '../middleware/store/tables.js';

export interface BulwarkTableProps {
  /**
   * The table's schema: key attributes, TTL attribute and GSIs. Read from
   * `middleware/store/tables.ts` so that CDK and local table creation share one definition.
   */
  readonly definition: TableDefinition;
  /**
   * The customer-managed key that encrypts the table at rest. Each grant of this construct then also
   * lets the grantee use the key, only through DynamoDB.
   * @default - an AWS-owned key
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * What happens to the table when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Whether DynamoDB refuses `DeleteTable` on this table. Leave it off with RETAIN_ON_UPDATE_OR_DELETE:
   * the rollback of a failed create could not delete the table, and the rollback itself would fail.
   * @default true when `removalPolicy` is RETAIN, false otherwise
   */
  readonly deletionProtection?: boolean;
}

const attributeTypes = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
} as const satisfies Record<KeyAttribute['type'], dynamodb.AttributeType>;

/**
 * The key actions TableV2's `grantReadWriteData` grants on a customer-managed key (aws-cdk-lib 2.276),
 * with its `ReEncrypt*` and `GenerateDataKey*` spelled out minus the asymmetric key-pair calls that a
 * symmetric table key never serves.
 */
export const tableKeyActions = [
  'kms:Decrypt',
  'kms:DescribeKey',
  'kms:Encrypt',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
];

/** The key actions a reader needs: DynamoDB decrypts the table's data key with the caller's credentials. */
export const tableKeyReadActions = ['kms:Decrypt', 'kms:DescribeKey'];

const projectionTypes = {
  ALL: dynamodb.ProjectionType.ALL,
  KEYS_ONLY: dynamodb.ProjectionType.KEYS_ONLY,
} as const satisfies Record<NonNullable<IndexDefinition['projection']>, dynamodb.ProjectionType>;

function toAttribute(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: attributeTypes[key.type] };
}

/**
 * An on-demand `TableV2` with point-in-time recovery, TTL, optional customer-managed encryption and the GSIs
 * of a shared definition. Its grants name each call: there is no read-write grant of everything.
 *
 * @example
 * const toolkit = new BulwarkTable(this, 'ToolkitTable', { definition: toolkitTable });
 * // Its items and own keys, and its gsi1 by name.
 * toolkit.grantTableActions(fn, ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']);
 * toolkit.grantIndexQuery(fn, 'gsi1');
 */
export class BulwarkTable extends Construct {
  /**
   * The created table. Grant through this construct's own grant methods, not the table's: the key is set
   * on the table by property override, so TableV2's grants never include it, and with a customer-managed
   * key their grantee synths and deploys but is refused by KMS at run time.
   */
  public readonly table: dynamodb.TableV2;
  /** The shared definition the table was built from. */
  public readonly definition: TableDefinition;
  /** The customer-managed key encrypting the table, if any. */
  public readonly encryptionKey: kms.IKey | undefined;

  constructor(scope: Construct, id: string, props: BulwarkTableProps) {
    super(scope, id);
    const { definition } = props;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.definition = definition;
    this.encryptionKey = props.encryptionKey;
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
        projectionType: projectionTypes[index.projection ?? 'ALL'],
      })),
      removalPolicy,
      deletionProtection: props.deletionProtection ?? removalPolicy === RemovalPolicy.RETAIN,
    });
    if (props.encryptionKey !== undefined) this.encryptWith(props.encryptionKey);
  }

  /**
   * Grants `actions` (item calls by key, such as `dynamodb:GetItem` and `dynamodb:UpdateItem`, or
   * `dynamodb:Query` of the table's own keys) on the table alone, no index, and, with a customer-managed
   * key, the key actions DynamoDB performs with the caller's credentials: the writers' set when an action
   * writes, the readers' otherwise.
   */
  public grantTableActions(grantee: iam.IGrantable, actions: readonly string[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [...actions], resources: [this.table.tableArn] }),
    );
    const writes = actions.some((action) => /^dynamodb:(?:Put|Update|Delete|BatchWrite)Item$/.test(action));
    this.grantKeyThroughDynamoDb(grantee, writes ? tableKeyActions : tableKeyReadActions);
  }

  /**
   * Grants `dynamodb:Query` on one index of the table, named (no wildcard), and the key's read actions
   * through DynamoDB.
   */
  public grantIndexQuery(grantee: iam.IGrantable, indexName: string): void {
    if (!this.definition.globalSecondaryIndexes.some((index) => index.indexName === indexName)) {
      throw new Error(`Invalid grant: ${this.node.id} has no index ${indexName}`);
    }
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:Query'],
        resources: [`${this.table.tableArn}/index/${indexName}`],
      }),
    );
    this.grantKeyThroughDynamoDb(grantee, tableKeyReadActions);
  }

  private grantKeyThroughDynamoDb(grantee: iam.IGrantable, actions: readonly string[]): void {
    if (this.encryptionKey === undefined) return;
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [this.encryptionKey.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com` },
        },
      }),
    );
  }

  /**
   * TableV2's own `customerManagedKey` encryption needs a region-bound stack (it renders per-replica
   * keys), and `npm run synth` must stay region-agnostic. The table has one replica, in the stack's
   * region, so the SSE settings are written directly on it.
   */
  private encryptWith(key: kms.IKey): void {
    const cfnTable = this.table.node.defaultChild as dynamodb.CfnGlobalTable;
    cfnTable.addPropertyOverride('SSESpecification', { SSEEnabled: true, SSEType: 'KMS' });
    cfnTable.addPropertyOverride('Replicas.0.SSESpecification', { KMSMasterKeyId: key.keyArn });
  }
}
