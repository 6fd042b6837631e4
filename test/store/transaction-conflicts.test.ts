// Transactions cancelled by contention alone are retried by every client createDynamoDbClient makes; a fake
// DynamoDB on 127.0.0.1 answers with the cancellations, since the embedded one serialises transactions.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TransactionCanceledException, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';

const cancelled = (codes: readonly string[]) => ({
  __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
  message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes.join(', ')}]`,
  CancellationReasons: codes.map((Code) => ({ Code })),
});

let server: Server | undefined;

/** Answers the first `failures` TransactWriteItems with `codes`, then succeeds; counts what it receives. */
async function fakeDynamoDb(failures: number, codes: readonly string[]) {
  const received: string[] = [];
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const target = String(request.headers['x-amz-target']).split('.').pop() ?? '';
      received.push(target);
      const fail = target === 'TransactWriteItems' && received.length <= failures;
      response.writeHead(fail ? 400 : 200, { 'content-type': 'application/x-amz-json-1.0' });
      response.end(JSON.stringify(fail ? cancelled(codes) : {}));
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, received };
}

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

const transaction = new TransactWriteCommand({
  TransactItems: [
    { Put: { TableName: 'app', Item: { pk: 'USER#1', sk: 'USER' } } },
    { Put: { TableName: 'app', Item: { pk: 'EMAIL#a', sk: 'EMAIL' } } },
  ],
});

describe('transactions cancelled by a TransactionConflict', () => {
  it('are sent again until they go through', async () => {
    const fake = await fakeDynamoDb(2, ['None', 'TransactionConflict']);
    const documents = createDocumentClient(createDynamoDbClient({ endpoint: fake.endpoint }));
    await expect(documents.send(transaction)).resolves.toBeDefined();
    expect(fake.received).toEqual(['TransactWriteItems', 'TransactWriteItems', 'TransactWriteItems']);
  });

  it('become a 409 ConflictError when the retries run out', async () => {
    const fake = await fakeDynamoDb(100, ['TransactionConflict', 'None']);
    const client = createDynamoDbClient({ endpoint: fake.endpoint, transactionConflictRetries: 2 });
    const error = await client
      .send(new TransactWriteItemsCommand({ TransactItems: [] }))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({ statusCode: 409, code: 'CONFLICT' });
    expect((error as ConflictError).cause).toBeInstanceOf(TransactionCanceledException);
    expect(fake.received).toHaveLength(3);
  });

  it('are not retried when a condition failed: the caller decides what that means', async () => {
    const fake = await fakeDynamoDb(100, ['ConditionalCheckFailed', 'TransactionConflict']);
    const documents = createDocumentClient(createDynamoDbClient({ endpoint: fake.endpoint }));
    const error = await documents.send(transaction).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TransactionCanceledException);
    expect(fake.received).toHaveLength(1);
  });
});
