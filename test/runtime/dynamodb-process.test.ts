import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startDynamoDbProcess } from '../../bin/runtime/dynamodb-process.js';

describe('the embedded DynamoDB process', () => {
  it('stops within its time limit while a client keeps a request half sent', async () => {
    const dynamoDb = await startDynamoDbProcess();
    const socket = connect(dynamoDb.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    // A request whose body never comes: the server's close waits for it.
    socket.write(
      `POST / HTTP/1.1\r\nHost: 127.0.0.1:${dynamoDb.port}\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 100\r\n\r\n{`,
    );
    const started = Date.now();
    await dynamoDb.stop();
    expect(Date.now() - started).toBeLessThan(15_000);
    socket.destroy();
  });
});
