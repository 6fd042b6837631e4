// Child-process entry: serves the embedded DynamoDB on its own core and reports its endpoint over IPC.
import { type LocalDynamoDbOptions, startLocalDynamoDb } from './local-dynamodb.js';

const options = JSON.parse(process.argv[2] ?? '{}') as LocalDynamoDbOptions;
const dynamoDb = await startLocalDynamoDb(options);

/**
 * How long stopping may take: the server waits for requests in progress, and a client that never
 * finishes one must not keep this process, and the output it shares with the parent, alive.
 */
const stopTimeLimitMs = 5000;

const stop = () => {
  setTimeout(() => process.exit(1), stopTimeLimitMs).unref();
  dynamoDb.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
// The parent going away (even by a crash) closes the IPC channel: never outlive it.
process.on('disconnect', stop);
process.on('SIGTERM', stop);
// Ctrl-C reaches the whole process group: the parent stops its workers first (their batches still
// write here) and then ends this process with SIGTERM.
process.on('SIGINT', () => undefined);
process.send?.({ endpoint: dynamoDb.endpoint, port: dynamoDb.port });
