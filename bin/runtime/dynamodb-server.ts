// Child-process entry: serves the embedded DynamoDB on its own core and reports its endpoint over IPC.
import type { StartFailure } from './dynamodb-process.js';
import { LocalStartError } from './local-defaults.js';
import { damagedStoreProblem, type LocalDynamoDbOptions, startLocalDynamoDb } from './local-dynamodb.js';

const options = JSON.parse(process.argv[2] ?? '{}') as LocalDynamoDbOptions;

/** Tells the parent why the server could not start, then exits; a stack trace without a parent to tell. */
function reportStartFailure(error: unknown): Promise<never> {
  const send = process.send?.bind(process);
  if (!send) throw error;
  // The parent states the cause in its own line, rather than a stack trace here and an exit code there.
  const failure: StartFailure =
    error instanceof LocalStartError
      ? { startFailure: error.message, actionable: true }
      : { startFailure: String((error as Error).stack ?? error), actionable: false };
  return new Promise(() => send(failure, () => process.exit(1)));
}

// A damaged table file shows only when read: dynalite throws it from its request handler, which ends this
// process. One line naming the store says why, before the parent says it is gone.
process.on('uncaughtException', (error) => {
  const { code } = error as { code?: unknown };
  console.error(
    code === 'LEVEL_CORRUPTION' && options.path
      ? `npm start: embedded DynamoDB: ${damagedStoreProblem(options.path, error.message)}`
      : error,
  );
  process.exit(1);
});

const dynamoDb = await startLocalDynamoDb(options).catch(reportStartFailure);

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
