// What a web page open in the developer's browser can no longer do to the local runtime's servers: send
// them cross-origin requests, or reach them under a name of its own by DNS rebinding.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalDynamoDb, startLocalDynamoDb } from '../../bin/runtime/local-dynamodb.js';
import { foreignHostReason } from '../../bin/runtime/local-request-guard.js';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';
import { type LocalSqs, startLocalSqs } from '../../bin/runtime/local-sqs.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { emailsTo } from '../email-worker/helpers.js';
import { useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request with exactly these headers (Host and Origin included), as a browser or curl could send it. */
function rawRequest(
  endpoint: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<RawAnswer> {
  const { hostname, port } = new URL(endpoint);
  const address = hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { hostname: address, port, method, path: '/', agent: false, headers },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () =>
          resolve({
            status: incoming.statusCode ?? 0,
            headers: incoming.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** The Authorization header a page would forge: the emulators check no signature, only its scheme. */
const forgedSignature =
  'AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00';
const pageOrigin = 'https://evil.example';

const pageRefusal = 'This local emulator does not serve web pages: the request has an Origin header';
const preflightRefusal = 'This local emulator answers no CORS preflight';
const unsignedRefusal = 'This local emulator serves signed requests only (an AWS4- Authorization header)';
const foreignHostRefusal = (port: number) =>
  `This local server answers only requests whose Host is 127.0.0.1:${port}, localhost:${port}: ` +
  'another host may be a web page reaching it by DNS rebinding';

/** A 403 in the AWS JSON error shape with `message`, and not one CORS header a browser would act on. */
function expectAwsRefusal(answer: RawAnswer, message: string): void {
  expect(answer.status).toBe(403);
  expect(answer.headers['content-type']).toBe('application/json');
  expect(JSON.parse(answer.text)).toEqual({
    __type: 'com.amazon.coral.service#AccessDeniedException',
    message,
  });
  expect(Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
}

describe('the embedded DynamoDB', () => {
  const tableName = 'guarded';
  const kept = { id: { S: 'victim' }, note: { S: 'kept' } };
  let dynamoDb: LocalDynamoDb;
  let client: DynamoDBClient;

  beforeAll(async () => {
    dynamoDb = await startLocalDynamoDb();
    client = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await client.send(new PutItemCommand({ TableName: tableName, Item: kept }));
  });
  afterAll(async () => {
    client.destroy();
    await dynamoDb.stop();
  });

  const host = () => `127.0.0.1:${dynamoDb.port}`;
  const call = (operation: string, input: unknown, headers: Record<string, string>) =>
    rawRequest(
      dynamoDb.endpoint,
      'POST',
      {
        host: host(),
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${operation}`,
        authorization: forgedSignature,
        ...headers,
      },
      JSON.stringify(input),
    );
  const storedItem = async () =>
    (await client.send(new GetItemCommand({ TableName: tableName, Key: { id: kept.id } }))).Item;

  it("refuses a page's CORS preflight, and an OPTIONS without an Origin, answering no CORS header", async () => {
    const preflight = await rawRequest(dynamoDb.endpoint, 'OPTIONS', {
      host: host(),
      origin: pageOrigin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,x-amz-target,authorization,x-amz-date',
    });
    expectAwsRefusal(preflight, pageRefusal);
    expectAwsRefusal(await rawRequest(dynamoDb.endpoint, 'OPTIONS', { host: host() }), preflightRefusal);
  });

  it('refuses a Scan from a page (an Origin) with a forged signature, showing it no item', async () => {
    const answer = await call('Scan', { TableName: tableName }, { origin: pageOrigin });
    expectAwsRefusal(answer, pageRefusal);
    expect(answer.text).not.toContain('victim');
  });

  it('refuses a DeleteItem and a TransactWriteItems from a page: the item stays as it was', async () => {
    expectAwsRefusal(
      await call('DeleteItem', { TableName: tableName, Key: { id: kept.id } }, { origin: pageOrigin }),
      pageRefusal,
    );
    expectAwsRefusal(
      await call(
        'TransactWriteItems',
        { TransactItems: [{ Delete: { TableName: tableName, Key: { id: kept.id } } }] },
        { origin: pageOrigin },
      ),
      pageRefusal,
    );
    expect(await storedItem()).toEqual(kept);
  });

  it('answers a GET from a page with the refusal, not the health line that would tell it the port', async () => {
    const answer = await rawRequest(dynamoDb.endpoint, 'GET', { host: host(), origin: pageOrigin });
    expectAwsRefusal(answer, pageRefusal);
  });

  it('refuses a request naming another host (DNS rebinding), Origin or not: the item stays', async () => {
    const rebound = `rebind.attacker.example:${dynamoDb.port}`;
    expectAwsRefusal(
      await call('DeleteItem', { TableName: tableName, Key: { id: kept.id } }, { host: rebound }),
      foreignHostRefusal(dynamoDb.port),
    );
    expectAwsRefusal(
      await call('Scan', { TableName: tableName }, { host: `127.0.0.1:${dynamoDb.port + 1}` }),
      foreignHostRefusal(dynamoDb.port),
    );
    expect(await storedItem()).toEqual(kept);
  });

  it('serves the SDK at its endpoint and at localhost, as the functions and the AWS CLI reach it', async () => {
    const item = { id: { S: randomUUID() }, note: { S: 'written' } };
    await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
    const byName = createDynamoDbClient({ endpoint: `http://localhost:${dynamoDb.port}` });
    try {
      const read = await byName.send(new GetItemCommand({ TableName: tableName, Key: { id: item.id } }));
      expect(read.Item).toEqual(item);
      await byName.send(new DeleteItemCommand({ TableName: tableName, Key: { id: item.id } }));
    } finally {
      byName.destroy();
    }
    expect(
      (await client.send(new GetItemCommand({ TableName: tableName, Key: { id: item.id } }))).Item,
    ).toBeUndefined();
  });
});

describe('the embedded SQS', () => {
  let sqs: LocalSqs;
  let queueUrl: string;

  beforeAll(async () => {
    sqs = await startLocalSqs([{ name: 'guarded', maxReceiveCount: 3, visibilityTimeoutSec: 30 }]);
    queueUrl = sqs.queueUrls.guarded as string;
  });
  afterAll(() => sqs.stop());

  const port = () => Number(new URL(sqs.endpoint).port);
  const host = () => `127.0.0.1:${port()}`;
  /** A form POST: a simple request, which a browser sends without a preflight. */
  const formSend = (headers: Record<string, string>, body = 'forged') =>
    rawRequest(
      sqs.endpoint,
      'POST',
      { host: host(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
      new URLSearchParams({ Action: 'SendMessage', QueueUrl: queueUrl, MessageBody: body }).toString(),
    );
  const jsonSend = (headers: Record<string, string>) =>
    rawRequest(
      sqs.endpoint,
      'POST',
      {
        host: host(),
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'AmazonSQS.SendMessage',
        authorization: forgedSignature,
        ...headers,
      },
      JSON.stringify({ QueueUrl: queueUrl, MessageBody: 'forged' }),
    );

  it("refuses a page's unsigned form POST of a SendMessage, which needs no preflight", async () => {
    expectAwsRefusal(await formSend({ origin: pageOrigin }), pageRefusal);
    expect(await sqs.countMessages()).toEqual({});
  });

  it('refuses an unsigned SendMessage and an unsigned ListQueues without an Origin too', async () => {
    expectAwsRefusal(await formSend({}), unsignedRefusal);
    // An Authorization of another scheme is no signature either.
    expectAwsRefusal(await formSend({ authorization: 'Bearer forged' }), unsignedRefusal);
    const list = await rawRequest(
      sqs.endpoint,
      'POST',
      { host: host(), 'content-type': 'application/x-www-form-urlencoded' },
      'Action=ListQueues',
    );
    expectAwsRefusal(list, unsignedRefusal);
    expect(list.text).not.toContain('guarded');
    expect(await sqs.countMessages()).toEqual({});
  });

  it('refuses a signed-looking request with an Origin, and a preflight, answering no CORS header', async () => {
    expectAwsRefusal(await jsonSend({ origin: pageOrigin }), pageRefusal);
    expectAwsRefusal(
      await rawRequest(sqs.endpoint, 'OPTIONS', {
        host: host(),
        origin: pageOrigin,
        'access-control-request-method': 'POST',
      }),
      pageRefusal,
    );
    expectAwsRefusal(await rawRequest(sqs.endpoint, 'OPTIONS', { host: host() }), preflightRefusal);
    expect(await sqs.countMessages()).toEqual({});
  });

  it('refuses a request naming another host (DNS rebinding)', async () => {
    expectAwsRefusal(
      await jsonSend({ host: `rebind.attacker.example:${port()}` }),
      foreignHostRefusal(port()),
    );
    expect(await sqs.countMessages()).toEqual({});
  });

  it('serves the SDK: the one message in the queue is the one it sent', async () => {
    const client = sqs.createClient();
    try {
      await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'from the SDK' }));
      const { Messages = [] } = await client.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      expect(Messages.map((message) => message.Body)).toEqual(['from the SDK']);
    } finally {
      client.destroy();
    }
  });
});

describe('the API', () => {
  const api = useLocalRuntime();
  const port = () => api.runtime().port;

  it('answers a request naming another host (DNS rebinding) with a 403 problem, on a route and on the JWKS', async () => {
    for (const path of ['/health', '/.well-known/jwks.json']) {
      const answer = await api.request('GET', path, {
        headers: { host: `rebind.attacker.example:${port()}` },
      });
      expect(answer.status, path).toBe(403);
      expect(answer.headers.get('content-type'), path).toBe('application/problem+json');
      expect(answer.body, path).toMatchObject({
        status: 403,
        code: 'FORBIDDEN',
        detail: foreignHostRefusal(port()),
      });
    }
  });

  it('refuses a registration naming another host before any function runs: the email registers afterwards', async () => {
    const email = `guard-${randomUUID()}@example.com`;
    const refused = await api.request('POST', '/users', {
      body: { email, name: 'Ada' },
      headers: { host: `rebind.attacker.example:${port()}` },
    });
    expect(refused.status).toBe(403);
    // Through the functions' SDK clients: the user is stored in DynamoDB, and its welcome email goes
    // through SQS and the email worker to the SMTP sink.
    const registered = await api.request('POST', '/users', { body: { email, name: 'Ada' } });
    expect(registered.status).toBe(201);
    await expect(emailsTo(api.runtime(), email, 1)).resolves.not.toHaveLength(0);
  });

  it('serves a Host of 127.0.0.1 or localhost with its port', async () => {
    for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`]) {
      expect((await api.request('GET', '/health', { headers: { host } })).status, host).toBe(200);
    }
  });
});

describe('foreignHostReason', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer((request, response) => response.end(foreignHostReason(request) ?? 'served'));
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves [::1] with its port on a server listening there, and refuses a rebound name', async () => {
    const endpoint = `http://[::1]:${port}`;
    for (const host of [`[::1]:${port}`, `localhost:${port}`, `LocalHost:${port}`]) {
      expect((await rawRequest(endpoint, 'GET', { host })).text, host).toBe('served');
    }
    for (const host of [`rebind.attacker.example:${port}`, '[::1]', `[::1]:${port}.attacker.example`]) {
      expect((await rawRequest(endpoint, 'GET', { host })).text, host).toBe(
        `This local server answers only requests whose Host is 127.0.0.1:${port}, localhost:${port}, [::1]:${port}: ` +
          'another host may be a web page reaching it by DNS rebinding',
      );
    }
  });
});

describe('foreignHostReason, on the request a server received', () => {
  /** A request as a server listening on `localAddress:localPort` receives it, naming `host`. */
  const received = (localAddress: string, localPort: number, host: string) =>
    ({ socket: { localAddress, localPort }, headers: { host } }) as unknown as IncomingMessage;

  it('serves the host its URL names (a server on 0.0.0.0), and a port-less Host on port 80 only', () => {
    expect(foreignHostReason(received('127.0.0.1', 3000, '0.0.0.0:3000'), '0.0.0.0')).toBeUndefined();
    expect(foreignHostReason(received('127.0.0.1', 3000, '0.0.0.0:3000'))).toBeDefined();
    expect(foreignHostReason(received('127.0.0.1', 80, 'localhost'))).toBeUndefined();
    expect(foreignHostReason(received('127.0.0.1', 3000, 'localhost'))).toBeDefined();
  });
});

describe('a runtime listening on ::1', () => {
  it('names itself with the address in brackets, so its dev issuer starts, and serves [::1] with its port', async () => {
    const runtime = await startLocalRuntime({
      port: 0,
      host: '::1',
      dynamoDbEndpoint: inject('dynamoDbEndpoint'),
      tableNames: testTableNames,
      encryptionKey: inject('encryptionKey'),
    });
    try {
      expect(runtime.url).toBe(`http://[::1]:${runtime.port}`);
      expect((await fetch(`${runtime.url}/health`)).status).toBe(200);
    } finally {
      await runtime.stop();
    }
  });
});
