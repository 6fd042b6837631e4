// Runs the embedded DynamoDB in a child process, so it gets a core of its own beside the functions.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalStartError } from './local-defaults.js';
import type { LocalDynamoDb, LocalDynamoDbOptions } from './local-dynamodb.js';

const serverEntry = fileURLToPath(new URL('./dynamodb-server.ts', import.meta.url));
const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));

/** How a child process ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** What the child sends instead of its endpoint when it cannot start. */
export interface StartFailure {
  readonly startFailure: string;
  /** Whether `startFailure` is a message saying what to do (a LocalStartError) rather than a stack trace. */
  readonly actionable: boolean;
}

/** The embedded DynamoDB in its own process. */
export interface DynamoDbProcess extends LocalDynamoDb {
  /** Ends the process at once (SIGKILL): requests in progress are cut, what LevelDB logged is kept. */
  kill(): void;
}

/**
 * Starts the embedded DynamoDB in a child process (through tsx) and resolves once it listens.
 * The child exits when `stop()` is called or when this process goes away; `onUnexpectedExit` hears of
 * it ending any other way once started (killed, out of memory), after which every request to it fails.
 */
export function startDynamoDbProcess(
  options: LocalDynamoDbOptions = {},
  onUnexpectedExit?: (exit: ProcessExit) => void,
): Promise<DynamoDbProcess> {
  const child = fork(serverEntry, [JSON.stringify(options)], {
    cwd: repositoryRoot,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    // Piped, not inherited: a child that outlived this process would otherwise hold its output open, and
    // whatever reads that output (a terminal, CI) would wait for it.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  child.stdout?.pipe(process.stdout, { end: false });
  child.stderr?.pipe(process.stderr, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    // 'close', not 'exit': it comes after every message, so a start failure the child sent is heard first.
    child.once('close', (code) =>
      reject(new Error(`Embedded DynamoDB exited during start-up (code ${code})`)),
    );
    child.once('message', (message: { endpoint: string; port: number } | StartFailure) => {
      if ('startFailure' in message) {
        reject(
          message.actionable
            ? new LocalStartError(`embedded DynamoDB could not start: ${message.startFailure}`)
            : new Error(`Embedded DynamoDB could not start: ${message.startFailure}`),
        );
        return;
      }
      let stopping: Promise<void> | undefined;
      child.once('exit', (code, signal) => {
        if (!stopping) onUnexpectedExit?.({ code, signal });
      });
      resolve({
        endpoint: message.endpoint,
        port: message.port,
        stop: () => {
          if (!stopping) {
            if (child.exitCode === null) child.kill('SIGTERM');
            stopping = exited;
          }
          return stopping;
        },
        kill: () => {
          stopping ??= exited;
          child.kill('SIGKILL');
        },
      });
    });
  });
}
