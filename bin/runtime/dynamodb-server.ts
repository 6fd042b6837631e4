// Child-process entry: serves the embedded DynamoDB on its own core and reports its endpoint over IPC.
import { type LocalDynamoDbOptions, startLocalDynamoDb } from './local-dynamodb.js';

const options = JSON.parse(process.argv[2] ?? '{}') as LocalDynamoDbOptions;
const dynamoDb = await startLocalDynamoDb(options);

const stop = () => {
  dynamoDb.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
// The parent going away (even by a crash) closes the IPC channel: never outlive it.
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.send?.({ endpoint: dynamoDb.endpoint, port: dynamoDb.port });
