// The local runtime's IAM for DynamoDB: a hosted function may make only the calls its declared table access grants.
import { AsyncLocalStorage } from 'node:async_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { TableAccess } from '../../functions/routes.js';
import type { TableDefinition } from '../../middleware/store/tables.js';

/** What one function's role allows on DynamoDB, by table name: as the stack grants its `TableAccess`. */
export interface TableGrants {
  /** The deployed function's name (`bulwark-<name>`), which refusals name as the caller. */
  readonly functionName: string;
  /** Per table name: the actions granted on the table itself, and the indexes `dynamodb:Query` is granted on. */
  readonly tables: ReadonlyMap<string, TableGrant>;
}

interface TableGrant {
  readonly actions: ReadonlySet<string>;
  readonly queriedIndexes: ReadonlySet<string>;
}

/** One permission a DynamoDB call needs: an IAM action on a table, on one of its indexes, or on `*`. */
export interface RequiredPermission {
  readonly action: string;
  /** Absent for an operation on no table (ListTables): IAM checks it against `*`. */
  readonly tableName?: string;
  readonly indexName?: string;
}

/** The grants the stack gives a function declaring `access`, on the tables named `tableNames`. */
export function tableGrantsOf(
  functionName: string,
  access: TableAccess,
  tableNames: Readonly<Record<TableDefinition['id'], string>>,
): TableGrants {
  const ids = Object.keys(tableNames) as TableDefinition['id'][];
  const tables = new Map<string, TableGrant>();
  for (const id of ids) {
    tables.set(tableNames[id], {
      actions: new Set(access.tableActions[id] ?? []),
      queriedIndexes: new Set(access.queriedIndexes?.[id] ?? []),
    });
  }
  return { functionName: `bulwark-${functionName}`, tables };
}

type Input = Readonly<Record<string, unknown>>;

/** The IAM action of a transaction item's kind; DynamoDB authorises each item as that single-item call. */
const transactionItemActions: Readonly<Record<string, string>> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
  Get: 'dynamodb:GetItem',
};

/**
 * The permissions IAM checks for one DynamoDB operation (`PutItem`, `TransactWriteItems`) with `input`: a
 * transaction's items one by one as the single-item calls they are, a batch as its own action on each
 * table, a Query or Scan of an index on that index, anything else as its own action on its table.
 */
export function permissionsFor(operation: string, input: Input): RequiredPermission[] {
  const action = `dynamodb:${operation}`;
  switch (operation) {
    case 'TransactWriteItems':
    case 'TransactGetItems':
      return ((input.TransactItems ?? []) as Input[]).flatMap((item) =>
        Object.entries(item).map(([kind, request]) => ({
          action: transactionItemActions[kind] ?? `dynamodb:${kind}`,
          tableName: String((request as Input).TableName),
        })),
      );
    case 'BatchGetItem':
    case 'BatchWriteItem':
      return Object.keys((input.RequestItems ?? {}) as Input).map((tableName) => ({ action, tableName }));
    default:
      if (typeof input.TableName !== 'string') return [{ action }];
      return [
        {
          action,
          tableName: input.TableName,
          ...(typeof input.IndexName === 'string' ? { indexName: input.IndexName } : {}),
        },
      ];
  }
}

/** Whether `grants` allow `permission`: on an index only Query of a listed one, on a table only its listed actions. */
function allows(grants: TableGrants, permission: RequiredPermission): boolean {
  const table = permission.tableName === undefined ? undefined : grants.tables.get(permission.tableName);
  if (!table) return false;
  if (permission.indexName !== undefined) {
    return permission.action === 'dynamodb:Query' && table.queriedIndexes.has(permission.indexName);
  }
  return table.actions.has(permission.action);
}

/** The first permission of `permissions` that `grants` do not allow, or undefined when they allow them all. */
export function firstDenied(
  grants: TableGrants,
  permissions: readonly RequiredPermission[],
): RequiredPermission | undefined {
  return permissions.find((permission) => !allows(grants, permission));
}

/** The ARN IAM names in a refusal; account and region are placeholders, as in the host's Lambda context. */
function resourceArn({ tableName, indexName }: RequiredPermission): string {
  if (tableName === undefined) return '*';
  const table = `arn:aws:dynamodb:local:000000000000:table/${tableName}`;
  return indexName === undefined ? table : `${table}/index/${indexName}`;
}

/** DynamoDB's answer to a call IAM refuses: a 400 whose body the SDK reads as an AccessDeniedException. */
function accessDeniedResponse(grants: TableGrants, denied: RequiredPermission) {
  const role = `arn:aws:sts::000000000000:assumed-role/${grants.functionName}/${grants.functionName}`;
  const body = JSON.stringify({
    __type: 'com.amazon.coral.service#AccessDeniedException',
    Message:
      `User: ${role} is not authorized to perform: ${denied.action} on resource: ${resourceArn(denied)} ` +
      `because no identity-based policy allows the ${denied.action} action (local runtime: the function's ` +
      'tableActions or queriedIndexes do not list it)',
  });
  return {
    statusCode: 400,
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'local-access-denied' },
    body: new TextEncoder().encode(body),
  };
}

const runningGrants = new AsyncLocalStorage<TableGrants>();

/** Runs `call` as the function `grants` belong to: the DynamoDB calls it makes, at once or later, are checked against them. */
export function runWithTableGrants<T>(grants: TableGrants, call: () => T): T {
  return runningGrants.run(grants, call);
}

/**
 * Where a refused call stops: innermost, just before the request would go out, so the SDK's own
 * deserialiser makes the error from DynamoDB's answer and every middleware of the client (retries, the
 * dependency naming) sees it as it would see IAM's.
 */
const grantCheckOptions = {
  name: 'bulwarkLocalTableGrants',
  step: 'deserialize',
  priority: 'low',
} as const;

/** Stacks that already check grants: a document client shares its DynamoDB client's stack. */
const checkedStacks = new WeakSet<object>();

function checkGrants(client: DynamoDBClient | DynamoDBDocumentClient): void {
  if (checkedStacks.has(client.middlewareStack)) return;
  checkedStacks.add(client.middlewareStack);
  (client as DynamoDBClient).middlewareStack.add(
    (next, context) => async (args) => {
      const grants = runningGrants.getStore();
      if (!grants) return next(args);
      const operation = String(context.commandName).replace(/Command$/, '');
      const denied = firstDenied(grants, permissionsFor(operation, args.input as Input));
      if (!denied) return next(args);
      // The function may handle the error quietly (a store failing open): the refusal is said here too.
      console.warn(
        JSON.stringify({
          level: 'WARN',
          message: "DynamoDB call refused: the function's tableActions or queriedIndexes do not allow it",
          function: grants.functionName,
          action: denied.action,
          resource: resourceArn(denied),
        }),
      );
      return { response: accessDeniedResponse(grants, denied), output: undefined as never };
    },
    grantCheckOptions,
  );
}

let enforcing = false;

/**
 * Makes every DynamoDB client in this process check, before each call, the grants of the hosted function
 * running it (see {@link runWithTableGrants}); a call made outside any hosted function (the runtime's own
 * table set-up, a test's fixtures) is not checked. The functions create their own clients, so the check
 * joins each client's middleware stack when it first sends. Safe to call more than once.
 */
export function enforceTableGrants(): void {
  if (enforcing) return;
  enforcing = true;
  for (const clientClass of [DynamoDBClient, DynamoDBDocumentClient]) {
    const prototype = clientClass.prototype as { send: DynamoDBClient['send'] };
    const send = prototype.send;
    Object.defineProperty(prototype, 'send', {
      configurable: true,
      writable: true,
      value: function sendCheckingGrants(this: DynamoDBClient, ...args: Parameters<typeof send>) {
        checkGrants(this);
        return Reflect.apply(send, this, args);
      },
    });
  }
}
