// `npm start`: runs the whole sample system on 127.0.0.1 with data under .bulwark/.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { bookingEventGraceProblem } from '../functions/booking-event-sweeper/environment.js';
import { routes } from '../functions/routes.js';
import { type FunctionVariable, functionVariableProblem } from '../functions/shared/environment.js';
import {
  createDataDir,
  defaultDataDir,
  defaultPort,
  LocalStartError,
  portProblem,
  runtimeEnvironmentPrefix,
} from './runtime/local-defaults.js';
import { localFailProblem, localFailVariable, locallyFailingFunctions } from './runtime/local-failures.js';
import type { LocalRuntime } from './runtime/local-runtime.js';

// The SDK's notice that its 2027 releases need Node 22 is for maintainers (see README), not every start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// The data folder holds the outbox (working verification links, SMS codes) and the tables: only its owner
// reads what the runtime and its DynamoDB process (which inherits this) create.
process.umask(0o077);
const dataDir = resolve(process.env.BULWARK_DATA_DIR ?? defaultDataDir);

/** Exits with a message the user can act on, instead of a stack trace. */
function fail(message: string): never {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

/**
 * A variable from the shell, checked before anything starts: one `problemOf` (the rule it breaks) refuses
 * stops the start with its name, its value and that rule.
 */
function fromShell(variable: string, problemOf: (value: string) => string | undefined): string | undefined {
  const value = process.env[variable];
  if (value === undefined) return undefined;
  const rule = problemOf(value);
  if (rule !== undefined) fail(`${variable} must be ${rule} (got ${JSON.stringify(value)})`);
  return value;
}

/**
 * Whether `pid` is a local runtime: a live process whose command line names this entry point. Pids are
 * reused (in containers they repeat from run to run), so a file left by a killed runtime may name any
 * process; where /proc is missing, a live pid counts.
 */
function isLocalRuntime(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bin/local.ts');
  } catch {
    return !existsSync('/proc/self');
  }
}

// PORT=0 takes any free port; the banner prints the one it got.
const port = Number(fromShell('PORT', (value) => portProblem(value, { anyFreePort: true })) ?? defaultPort);

// The booking event sweep runs every 5 minutes, as deployed; BULWARK_SWEEP_INTERVAL_SEC=10 to watch it work.
const sweepIntervalSec = fromShell('BULWARK_SWEEP_INTERVAL_SEC', (value) =>
  /^[1-9]\d{0,5}$/.test(value) ? undefined : 'a whole number of seconds from 1 to 999999',
);

/**
 * The functions read every variable of the shell the runtime does not set itself; each is checked here by the
 * function's own rule, so a bad value stops the start rather than a cold start (or a worker's first batch)
 * with the variable's name alone. Short retry bases make a DLQ drill quick.
 */
const functionVariablesFromShell = (variables: readonly FunctionVariable[]) =>
  variables.map((variable) => fromShell(variable, (value) => functionVariableProblem(variable, value)));
const [emailRetryBaseDelaySec, webhookRetryBaseDelaySec] = functionVariablesFromShell([
  'EMAIL_RETRY_BASE_DELAY_SEC',
  'WEBHOOK_RETRY_BASE_DELAY_SEC',
]).map((seconds) => (seconds === undefined ? undefined : Number(seconds)));
functionVariablesFromShell([
  'BOOKING_HORIZON_DAYS',
  'UNVERIFIED_USER_TTL_HOURS',
  'SMS_REGIONS',
  'SMS_PER_HOUR',
  'SMS_PER_REGION_PER_HOUR',
  'WEBHOOK_MAX_RETRY_DELAY_SEC',
  'WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES',
  'WEBHOOK_DISABLE_AFTER_FAILING_HOURS',
  'WEBHOOK_MAX_ENDPOINTS_PER_OWNER',
]);
fromShell('BOOKING_EVENT_GRACE_SEC', bookingEventGraceProblem);
fromShell(localFailVariable, localFailProblem);
const failingFunctions = locallyFailingFunctions();

/** What to do about `error` if it is a permission denied, as one line naming the file. */
function permissionProblem(error: unknown): string | undefined {
  const { code, path } = error as NodeJS.ErrnoException;
  return (code === 'EACCES' || code === 'EPERM') && path !== undefined
    ? `permission denied on ${path}; make it yours, or point BULWARK_DATA_DIR at a folder you own`
    : undefined;
}

/** What to do about a file-system error on the data folder itself, as one line; undefined for others. */
function dataFolderProblem(error: unknown): string | undefined {
  const { code } = error as NodeJS.ErrnoException;
  return code === 'EEXIST' || code === 'ENOTDIR'
    ? `the data folder ${dataDir} is a file, or inside one; point BULWARK_DATA_DIR at a folder`
    : permissionProblem(error);
}

/** Runs a step on the data folder, stopping with one line on a file-system error it explains. */
function inDataFolder<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    const problem = dataFolderProblem(error);
    if (problem !== undefined) fail(problem);
    throw error;
  }
}

inDataFolder(() => createDataDir(dataDir));

// The embedded DynamoDB locks the data folder: a second runtime on it would fail deep inside dynalite.
const pidFile = join(dataDir, 'runtime.pid');
const runningPid = inDataFolder(() =>
  existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined,
);
if (
  runningPid !== undefined &&
  Number.isInteger(runningPid) &&
  runningPid > 0 &&
  isLocalRuntime(runningPid)
) {
  fail(
    `another local runtime (pid ${runningPid}) is using ${dataDir}; stop it first ` +
      `(or delete ${pidFile} if that pid is not an npm start)`,
  );
}
inDataFolder(() => writeFileSync(pidFile, String(process.pid)));

let runtime: LocalRuntime | undefined;
let stopping = false;
/** The exit code once stopped: a failure while stopping (the embedded DynamoDB dying) turns it to 1. */
let stopExitCode = 0;
/** Stops the runtime once (after `announce` says why) and exits with `exitCode`. */
function stop(announce: () => void, exitCode: number): void {
  if (stopping || runtime === undefined) return;
  stopping = true;
  stopExitCode = exitCode;
  announce();
  runtime.stop().then(
    ({ messagesDropped }) => {
      rmSync(pidFile, { force: true });
      const dropped = Object.entries(messagesDropped).map(([queue, count]) => `${count} in ${queue}`);
      if (dropped.length > 0) {
        console.log(`Dropped queued messages (queues live in memory): ${dropped.join(', ')}`);
      }
      process.exit(stopExitCode);
    },
    (error: unknown) => {
      rmSync(pidFile, { force: true });
      console.error(error);
      process.exit(1);
    },
  );
}
const counted = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;
/**
 * How long after the first stop signal another is a copy of it, not a second Ctrl-C: a terminal sends Ctrl-C
 * to the whole process group and npm forwards what it gets, so one key press arrives two or three times
 * within milliseconds.
 */
const signalCopyWindowMs = 1000;
let firstSignalAt: number | undefined;
/**
 * The first signal stops once what is in flight is done; a second (more than `signalCopyWindowMs` later)
 * stops at once, as a signal would. One during start-up stops at once: nothing is in flight yet.
 */
const onSignal = (signal: NodeJS.Signals) => {
  if (firstSignalAt !== undefined && performance.now() - firstSignalAt < signalCopyWindowMs) return;
  if (runtime === undefined || stopping) {
    // After a stop the parent watch or the embedded DynamoDB began, this is the user's first signal.
    const again = firstSignalAt === undefined ? '' : ' again';
    console.log(`${signal}${again}: stopping at once`);
    runtime?.stopNow();
    rmSync(pidFile, { force: true });
    process.exit(128 + constants.signals[signal]);
  }
  firstSignalAt = performance.now();
  const { requests, workerBatches } = runtime.inFlight();
  stop(() => {
    console.log(
      `\n${signal}: stopping; waiting for ${counted(requests, 'request', 'requests')} and ` +
        `${counted(workerBatches, 'worker batch', 'worker batches')} in flight (Ctrl-C again to stop at once)`,
    );
  }, 0);
};
// Before the start: a signal while it runs would otherwise end the process and leave runtime.pid behind.
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  // Loaded once the shell's settings and the data folder passed their checks: a refused start answers in
  // well under a second, without loading the runtime's modules (the AWS SDK, the local SQS and SMTP servers…).
  const { startLocalRuntime } = await import('./runtime/local-runtime.js');
  runtime = await startLocalRuntime({
    port,
    dataDir,
    ...(sweepIntervalSec === undefined
      ? {}
      : { bookingEventSweep: { intervalMs: Number(sweepIntervalSec) * 1000 } }),
    emailRetryBaseDelaySec,
    webhookRetryBaseDelaySec,
    onDynamoDbExit: ({ code, signal }) => {
      const line = `embedded DynamoDB exited (${signal ? `signal ${signal}` : `code ${code}`}); stopping`;
      if (runtime === undefined) {
        rmSync(pidFile, { force: true });
        fail(line);
      }
      // Every route reading a table would answer 503 from now on: stopping says why, once.
      if (stopping) {
        // Dying during a drain: the requests and batches still in flight fail, so the stop is no clean one.
        console.error(`npm start: ${line}`);
        stopExitCode = 1;
        return;
      }
      stop(() => console.error(`npm start: ${line}`), 1);
    },
  });
} catch (error) {
  rmSync(pidFile, { force: true });
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (code === 'EADDRINUSE') {
    fail(`port ${port} is in use; stop what holds it or pick another, e.g. PORT=3001 npm start`);
  }
  if (code === 'EACCES' && syscall === 'listen') {
    fail(`port ${port} is privileged (below 1024: root only); pick another, e.g. PORT=3001 npm start`);
  }
  if (error instanceof LocalStartError) fail(error.message);
  const problem = permissionProblem(error);
  if (problem !== undefined) fail(problem);
  throw error;
}

// A ready-made admin token, so the curl lines below work at once; `npm run token` makes others.
const adminToken = await runtime.auth.devIssuer.mint({
  sub: 'alice',
  roles: ['admin'],
  expiresInSec: 12 * 3600,
});

// Pasted into another shell, `npm run token` mints for this runtime only with its port and data folder.
const tokenCommand = `${runtimeEnvironmentPrefix({ port: runtime.port, dataDir })}npm run -s token --`;
const pathWidth = Math.max(...routes.map((route) => route.path.length));
const routeLines = routes.map(
  (route) => `    ${route.method.padEnd(6)} ${route.path.padEnd(pathWidth)} ${route.summary}`,
);
console.log(
  [
    '',
    'Bulwark local runtime',
    `  API              ${runtime.url}`,
    `  DynamoDB         ${runtime.dynamoDbEndpoint}  (tables ${runtime.tableNames.app}, ${runtime.tableNames.toolkit})`,
    // The CLI signs every request, so it wants a region and credentials; the embedded DynamoDB takes any.
    `                   AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws dynamodb scan --table-name ${runtime.tableNames.app} --region us-east-1 --endpoint-url ${runtime.dynamoDbEndpoint}`,
    `  Data folder      ${dataDir}`,
    `  Outbox           ${runtime.outboxDir}  (every email as an .eml file, SMTP sink ${runtime.smtp.host}:${runtime.smtp.port}; every SMS as a .sms.txt file)`,
    `  SQS              ${runtime.sqs.endpoint}  (queues ${Object.keys(runtime.sqs.queueUrls).join(', ')}; in memory: messages still queued at exit are dropped)`,
    `  Event sweep      every ${(runtime.bookingEventSweepIntervalMs ?? 0) / 1000} s: publishes booking events left pending (BULWARK_SWEEP_INTERVAL_SEC)`,
    `  Retry bases      email ${runtime.retryBaseDelaySec.email} s, webhooks ${runtime.retryBaseDelaySec.webhook} s (EMAIL_RETRY_BASE_DELAY_SEC, WEBHOOK_RETRY_BASE_DELAY_SEC)`,
    ...(failingFunctions.length === 0
      ? []
      : [
          `  Made to fail     ${failingFunctions.join(', ')}: their routes answer 503 (${localFailVariable})`,
        ]),
    '  Routes',
    ...routeLines,
    '',
    `  Try: curl -s ${runtime.url}/health`,
    `  Dev issuer       ${runtime.auth.devIssuer.issuer} (JWKS ${runtime.url}/.well-known/jwks.json, key in ${dataDir})`,
    `  Admin token      export TOKEN=${adminToken}`,
    `                   curl -s -H "Authorization: Bearer $TOKEN" "${runtime.url}/admin/users?limit=5"`,
    `  More tokens      ${tokenCommand} --sub bob`,
    `                   ${tokenCommand} --m2m --client-id svc-x --scope bookings/write --scope bookings/read`,
    '  Function logs (Powertools JSON) follow. Ctrl-C stops everything.',
    '',
  ].join('\n'),
);

// npm start runs this with BULWARK_WATCH_PARENT=1 (see package.json). Should npm be killed outright (kill -9:
// nothing relays a signal), the runtime would keep running, its port and data folder held, with no terminal to
// Ctrl-C it. A process whose parent dies is adopted, so its parent pid changes. Started otherwise
// (`nohup node --import tsx bin/local.ts &`), it is meant to outlive what started it.
if (process.env.BULWARK_WATCH_PARENT === '1') {
  const parentPid = process.ppid;
  const watchParent = setInterval(() => {
    if (process.ppid === parentPid) return;
    clearInterval(watchParent);
    stop(
      () => console.error(`npm start: the process that started it (pid ${parentPid}) is gone; stopping`),
      1,
    );
  }, 1000);
  watchParent.unref();
}
