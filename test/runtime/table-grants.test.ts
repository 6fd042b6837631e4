import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it, onTestFinished, vi } from 'vitest';
import { FunctionHost } from '../../bin/runtime/function-host.js';
import type { TableAccess } from '../../functions/routes.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import type { TableCall, TableCallOutcome } from '../fixtures/table-grants/handler.js';
import { testTableNames } from '../helpers/tables.js';

const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));
const endpoint = inject('dynamoDbEndpoint');
const { app, toolkit } = testTableNames;

/** Like a sample function's: some calls on the app table and one of its indexes, reads only on the toolkit's. */
const declaredAccess = {
  tableActions: {
    app: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
    toolkit: ['dynamodb:GetItem'],
  },
  queriedIndexes: { app: ['gsi1'] },
} as const satisfies TableAccess;

const host = new FunctionHost(
  repositoryRoot,
  [
    {
      name: 'granted',
      entry: 'test/fixtures/table-grants/handler.ts',
      memoryMb: 128,
      timeoutSec: 5,
      ...declaredAccess,
    },
  ],
  testTableNames,
);

function call(command: TableCall['command'], input: Record<string, unknown>): Promise<TableCallOutcome> {
  return host.invoke('granted', {
    endpoint,
    command,
    input,
  } satisfies TableCall) as Promise<TableCallOutcome>;
}

const newKey = () => ({ pk: `TABLE-GRANTS#${randomUUID()}`, sk: 'ITEM' });

/** What DynamoDB answers a call IAM refuses, as the function's SDK call throws it. */
function accessDenied(action: string, resource: string) {
  return {
    error: 'AccessDeniedException',
    fault: 'client',
    httpStatusCode: 400,
    message: expect.stringContaining(
      `User: arn:aws:sts::000000000000:assumed-role/bulwark-granted/bulwark-granted is not authorized to ` +
        `perform: ${action} on resource: ${resource} because no identity-based policy allows`,
    ),
  };
}

/** The lines written with console.warn during the test, parsed, none of them shown. */
function warningLines(): () => unknown[] {
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  onTestFinished(() => warn.mockRestore());
  return () => warn.mock.calls.map(([line]) => JSON.parse(String(line)) as unknown);
}

const tableArn = (name: string) => `arn:aws:dynamodb:local:000000000000:table/${name}`;

describe('the table grants of a hosted function', () => {
  it('let it make the calls its tableActions and queriedIndexes list', async () => {
    const warnings = warningLines();
    const key = newKey();
    const byIndex = { KeyConditionExpression: 'gsi1pk = :pk', ExpressionAttributeValues: { ':pk': key.pk } };
    const byKey = { KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': key.pk } };
    await expect(
      call('Put', { TableName: app, Item: { ...key, gsi1pk: key.pk, gsi1sk: 'A' } }),
    ).resolves.toEqual({ answered: true });
    for (const [command, input] of [
      ['Get', { TableName: app, Key: key }],
      ['Get', { TableName: toolkit, Key: key }],
      ['Query', { TableName: app, ...byKey }],
      ['Query', { TableName: app, IndexName: 'gsi1', ...byIndex }],
      ['TransactWrite', { TransactItems: [{ Put: { TableName: app, Item: newKey() } }] }],
    ] as const) {
      await expect(call(command, input)).resolves.toEqual({ answered: true });
    }
    expect(warnings()).toEqual([]);
  });

  it.each([
    [
      'a call its table does not list',
      'Put',
      { TableName: toolkit, Item: newKey() },
      'dynamodb:PutItem',
      toolkit,
    ],
    [
      'an action its table does not list',
      'Update',
      { TableName: app, Key: newKey() },
      'dynamodb:UpdateItem',
      app,
    ],
    [
      'a query of an index it does not list',
      'Query',
      {
        TableName: app,
        IndexName: 'gsi2',
        KeyConditionExpression: 'gsi2pk = :pk',
        ExpressionAttributeValues: { ':pk': 'none' },
      },
      'dynamodb:Query',
      `${app}/index/gsi2`,
    ],
    ['a scan', 'Scan', { TableName: app }, 'dynamodb:Scan', app],
    ['DescribeTable', 'DescribeTable', { TableName: app }, 'dynamodb:DescribeTable', app],
    [
      'a batch read',
      'BatchGet',
      { RequestItems: { [app]: { Keys: [newKey()] } } },
      'dynamodb:BatchGetItem',
      app,
    ],
    [
      'a batch write',
      'BatchWrite',
      { RequestItems: { [app]: [{ PutRequest: { Item: newKey() } }] } },
      'dynamodb:BatchWriteItem',
      app,
    ],
  ] as const)(
    'refuse %s with AccessDeniedException, as IAM would',
    async (_case, command, input, action, resource) => {
      const warnings = warningLines();
      await expect(call(command, input)).resolves.toEqual(accessDenied(action, tableArn(resource)));
      expect(warnings()).toEqual([
        {
          level: 'WARN',
          message: "DynamoDB call refused: the function's tableActions or queriedIndexes do not allow it",
          function: 'bulwark-granted',
          action,
          resource: tableArn(resource),
        },
      ]);
    },
  );

  it('refuse a call on no table against every resource', async () => {
    warningLines();
    await expect(call('ListTables', {})).resolves.toEqual(accessDenied('dynamodb:ListTables', '*'));
  });

  it('check each item of a transaction, and a refused one writes none of them', async () => {
    warningLines();
    const granted = newKey();
    const conditionChecked = {
      TransactItems: [
        { Put: { TableName: app, Item: granted } },
        {
          ConditionCheck: { TableName: app, Key: newKey(), ConditionExpression: 'attribute_not_exists(pk)' },
        },
      ],
    };
    await expect(call('TransactWrite', conditionChecked)).resolves.toEqual(
      accessDenied('dynamodb:ConditionCheckItem', tableArn(app)),
    );
    const onToolkit = {
      TransactItems: [
        { Put: { TableName: app, Item: granted } },
        { Put: { TableName: toolkit, Item: newKey() } },
      ],
    };
    await expect(call('TransactWrite', onToolkit)).resolves.toEqual(
      accessDenied('dynamodb:PutItem', tableArn(toolkit)),
    );
    const documents = createDocumentClient(createDynamoDbClient({ endpoint }));
    await expect(
      documents.send(new GetCommand({ TableName: app, Key: granted })),
    ).resolves.not.toHaveProperty('Item');
    documents.destroy();
  });

  it('leave calls made outside a hosted function unchecked', async () => {
    await host.loadAll();
    const client = createDynamoDbClient({ endpoint });
    const { Table } = await client.send(new DescribeTableCommand({ TableName: app }));
    client.destroy();
    expect(Table?.TableName).toBe(app);
  });
});
