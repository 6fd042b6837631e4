// The local runtime: embedded DynamoDB, SQS and SMTP sink plus an HTTP server serving the route table through the real handlers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  catchAllFunction,
  catchAllRouteKey,
  type HttpFunctionName,
  httpFunctionNames,
  httpFunctions,
  routeKeyOf,
} from '../../functions/routes.js';
import { scheduledFunctionNames, scheduledFunctions } from '../../functions/schedules.js';
import type { SmsEnvironment } from '../../functions/shared/environment.js';
import { createRouteMatcher, type RouteMatch } from '../../functions/shared/route-matcher.js';
import { workerNames, workers } from '../../functions/workers.js';
import {
  ForbiddenError,
  HttpError,
  MethodNotAllowedError,
  ValidationError,
} from '../../middleware/errors.js';
import { percentDecodedPath } from '../../middleware/http/input.js';
import { renderProblem } from '../../middleware/http/problem.js';
import { pathAsUriReference } from '../../middleware/http/request-event.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { appTable, toolkitTable } from '../../middleware/store/tables.js';
import { type ProcessExit, startDynamoDbProcess } from './dynamodb-process.js';
import { FunctionHost } from './function-host.js';
import { parseRequestTarget, toHttpApiEvent, writeHttpApiResult } from './http-api-event.js';
import { createLocalAuth, jwksPath, type LocalAuth } from './local-auth.js';
import { crashedFunctionResult, isFailingLocally } from './local-failures.js';
import { localEncryptionKey } from './local-key.js';
import { asHostName, foreignHostReason } from './local-request-guard.js';
import { startLocalSqs } from './local-sqs.js';
import { QueuePoller } from './queue-poller.js';
import { IntervalSchedule } from './schedule.js';
import { type SmtpSink, startSmtpSink } from './smtp-sink.js';

export const repositoryRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface LocalRuntimeOptions {
  /** @default 3000; 0 picks a free port */
  readonly port?: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** Where DynamoDB data persists (`<dataDir>/dynamodb`); in memory when absent. */
  readonly dataDir?: string;
  /** Use an already running DynamoDB (the test suite's) instead of starting one. */
  readonly dynamoDbEndpoint?: string;
  /** @default { app: 'bulwark-app', toolkit: 'bulwark-toolkit' } */
  readonly tableNames?: { readonly app: string; readonly toolkit: string };
  /**
   * The largest event passed to a function, measured as its JSON: Lambda's synchronous invocation payload
   * limit, so a request whose event fits reaches the function and its own limit answers, as in AWS.
   * @default 6291456 (6 MiB)
   */
  readonly maxPayloadBytes?: number;
  /**
   * The functions' ENCRYPTION_KEY (base64 of 32 bytes).
   * @default `<dataDir>/encryption-key`, generated if absent; a fresh random key when there is no dataDir
   */
  readonly encryptionKey?: string;
  /** Client ids the functions accept in tokens (AUTH_CLIENT_IDS). @default any: the dev issuer is the only issuer */
  readonly authClientIds?: readonly string[];
  /** The email worker's first retry delay (EMAIL_RETRY_BASE_DELAY_SEC). @default 30 */
  readonly emailRetryBaseDelaySec?: number;
  /** The webhook worker's backoff base (WEBHOOK_RETRY_BASE_DELAY_SEC). @default 60 */
  readonly webhookRetryBaseDelaySec?: number;
  /**
   * CIDRs the SSRF guard lets through (SSRF_ALLOWLIST), so webhook receivers on this machine work.
   * @default ['127.0.0.0/8', '::1/128'] (loopback); [] to guard as in AWS
   */
  readonly ssrfAllowlist?: readonly string[];
  /**
   * The users function's SMS policy (SMS_REGIONS, SMS_PER_HOUR, SMS_PER_REGION_PER_HOUR); each setting
   * given replaces its variable.
   * @default the variables as the process has them (`SMS_REGIONS=GB,GG npm start`), else the functions' defaults
   */
  readonly sms?: Partial<SmsEnvironment>;
  /**
   * The booking event sweep: how often it runs (its schedule in AWS) and how long an event is pending
   * before it publishes it (BOOKING_EVENT_GRACE_SEC); `false` runs no sweep.
   * @default every 5 minutes (the stack's schedule), with the grace as the process has it, else the function's 60 s
   */
  readonly bookingEventSweep?: BookingEventSweepOptions | false;
  /**
   * Called when the embedded DynamoDB process ends without `stop()` (killed, out of memory): from then on
   * every function that reads a table fails, so the caller should stop the runtime.
   * @default nothing is called
   */
  readonly onDynamoDbExit?: (exit: ProcessExit) => void;
}

export interface BookingEventSweepOptions {
  /** Milliseconds from the end of one run to the start of the next. @default the stack's schedule, 5 minutes */
  readonly intervalMs?: number;
  /** Seconds an event is pending before the sweep publishes it. @default BOOKING_EVENT_GRACE_SEC, else 60 */
  readonly graceSec?: number;
}

export interface LocalRuntime {
  readonly url: string;
  readonly port: number;
  readonly dynamoDbEndpoint: string;
  readonly tableNames: { readonly app: string; readonly toolkit: string };
  /** The dev issuer (`auth.devIssuer.mint(...)` makes tokens the functions accept) and service secrets. */
  readonly auth: LocalAuth;
  /** The embedded SQS (local-aws-sqs) and every queue's URL by name (`<name>-dlq` for the DLQs). */
  readonly sqs: { readonly endpoint: string; readonly queueUrls: Readonly<Record<string, string>> };
  /** The SMTP sink the email worker sends to; without a dataDir, `smtp.messages` holds what it received. */
  readonly smtp: SmtpSink;
  /** Where the sink writes `.eml` files (`<dataDir>/outbox`); undefined without a dataDir (memory only). */
  readonly outboxDir: string | undefined;
  /**
   * Where the email worker writes each SMS as `<time>-<id>.sms.txt`: the outbox when there is a
   * dataDir, else a temporary folder removed by `stop()`.
   */
  readonly smsOutboxDir: string;
  /** Milliseconds between two runs of the booking event sweep; undefined when it does not run. */
  readonly bookingEventSweepIntervalMs: number | undefined;
  /** The workers' retry bases the functions got (EMAIL_RETRY_BASE_DELAY_SEC, WEBHOOK_RETRY_BASE_DELAY_SEC). */
  readonly retryBaseDelaySec: { readonly email: number; readonly webhook: number };
  /**
   * Stops taking requests at once, then stops everything once the requests in flight (up to the longest
   * function timeout), the sweep in progress and the workers' batches in flight are done.
   */
  stop(): Promise<LocalRuntimeStopReport>;
  /** What `stop()` would wait for now: requests being answered and worker batches being handled. */
  inFlight(): { readonly requests: number; readonly workerBatches: number };
  /**
   * For a caller about to exit without waiting for `stop()`: ends the embedded DynamoDB process at once,
   * so it does not outlive the caller holding the data folder's store.
   */
  stopNow(): void;
}

export interface LocalRuntimeStopReport {
  /**
   * Messages the queues still held when they stopped, by queue name (empty queues left out). Queues live
   * in memory, so these are gone; their delivery records in DynamoDB stay as they were (`pending`).
   */
  readonly messagesDropped: Readonly<Record<string, number>>;
}

class BodyTooLarge extends Error {}

/** Resolves after `ms`, without keeping the process alive for it. */
function delay(ms: number): Promise<void> {
  return new Promise((resolveDelay) => setTimeout(resolveDelay, ms).unref());
}

function payloadTooLarge(maxPayloadBytes: number): HttpError {
  return new HttpError(
    413,
    'PAYLOAD_TOO_LARGE',
    `The request's event exceeds Lambda's invocation payload of ${maxPayloadBytes} bytes`,
  );
}

/** What API Gateway invokes for a request: the function of the route it matches, or the catch-all. */
interface Integration {
  readonly functionName: HttpFunctionName;
  readonly routeKey: string;
  readonly pathParameters: Record<string, string>;
}

function integrationFor(found: RouteMatch): Integration {
  if (found.kind === 'found') {
    return {
      functionName: found.route.function,
      routeKey: routeKeyOf(found.route),
      pathParameters: found.pathParameters,
    };
  }
  return { functionName: catchAllFunction, routeKey: catchAllRouteKey, pathParameters: {} };
}

function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    if (Number(request.headers['content-length'] ?? 0) > maxBytes) {
      reject(new BodyTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        request.removeAllListeners('data');
        request.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolveBody(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** `rawPath`: the path as the client sent it, escapes and all. */
function writeProblem(response: ServerResponse, error: unknown, rawPath?: string): void {
  const instance = rawPath === undefined ? {} : { instance: pathAsUriReference(rawPath, true) };
  const { response: result } = renderProblem(error, instance);
  writeHttpApiResult(response, result);
}

/**
 * What Node answers a request its HTTP server refuses before any handler sees it, by error code: 408 for
 * headers not received in time, 431 for headers over its limit, 413 for chunk extensions over it, 400 for
 * anything its parser cannot read (a control character in a header value, a method that is not a token, or
 * one llhttp does not know, `FOO`, which Node refuses under the same code as a malformed one).
 */
export function refusalOf(code: string | undefined): HttpError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HttpError(408, 'CLIENT_ERROR', 'The request was not received in time');
    case 'HPE_HEADER_OVERFLOW':
      return new HttpError(431, 'CLIENT_ERROR', 'The request headers are too large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new HttpError(413, 'PAYLOAD_TOO_LARGE', 'The request chunk extensions are too large');
    default:
      return new ValidationError('The request is not valid HTTP/1.1');
  }
}

/**
 * Answers a request Node's HTTP server refused with the status Node would give it, as a problem like every
 * other refusal here instead of Node's bare status; then closes the connection, whose stream cannot be
 * read any further.
 */
function answerUnparsableRequest(error: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const { response } = renderProblem(refusalOf(error.code));
  const body = response.body ?? '';
  const headers = Object.entries({
    ...response.headers,
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  }).map(([name, value]) => `${name}: ${value}\r\n`);
  const { statusCode } = response;
  socket.end(`HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\n${headers.join('')}\r\n${body}`);
}

/**
 * Starts the whole sample system in this process. Sets the functions' environment variables, so
 * run one runtime per process.
 *
 * @example
 * const runtime = await startLocalRuntime({ port: 0 });
 * await fetch(`${runtime.url}/health`);
 * await runtime.stop();
 */
export async function startLocalRuntime(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
  const started: Stop[] = [];
  try {
    return await startParts(options, started);
  } catch (error) {
    // A retry must find the port, the data folder's database and the sink free again.
    await stopAll(started);
    throw error;
  }
}

/** Stops one part the runtime started. */
type Stop = () => Promise<void> | void;

/** Stops the parts last started first; a part that fails to stop is logged and the others still stop. */
async function stopAll(started: Stop[]): Promise<void> {
  for (let stop = started.pop(); stop; stop = started.pop()) {
    try {
      await stop();
    } catch (error) {
      console.error(JSON.stringify({ level: 'ERROR', message: 'Local runtime stop', error: String(error) }));
    }
  }
}

/** Starts every part, pushing each one's stop to `started` as soon as it runs. */
async function startParts(options: LocalRuntimeOptions, started: Stop[]): Promise<LocalRuntime> {
  const tableNames = options.tableNames ?? { app: 'bulwark-app', toolkit: 'bulwark-toolkit' };
  const sweepOptions = options.bookingEventSweep === false ? undefined : (options.bookingEventSweep ?? {});
  const sweeper = 'booking-event-sweeper';
  // Checked before anything starts: a bad interval fails the start, not the first run.
  const sweepSchedule =
    sweepOptions &&
    new IntervalSchedule({
      name: sweeper,
      intervalMs: sweepOptions.intervalMs ?? scheduledFunctions[sweeper].everyMinutes * 60_000,
      invoke: (event) => host.invoke(sweeper, event),
      onError: (error) =>
        console.error(
          JSON.stringify({
            level: 'ERROR',
            message: 'Scheduled run failed',
            function: sweeper,
            error: String(error),
          }),
        ),
    });
  // Before DynamoDB starts: whether its folder already holds data decides if a missing key may be made.
  const encryptionKey = options.encryptionKey ?? localEncryptionKey(options.dataDir);
  const maxPayloadBytes = options.maxPayloadBytes ?? 6 * 1024 * 1024;
  const requestDrainMs = Math.max(...httpFunctionNames.map((name) => httpFunctions[name].timeoutSec)) * 1000;
  const ownDynamoDb = options.dynamoDbEndpoint
    ? undefined
    : await startDynamoDbProcess(
        options.dataDir ? { path: join(options.dataDir, 'dynamodb') } : {},
        options.onDynamoDbExit,
      );
  if (ownDynamoDb) started.push(() => ownDynamoDb.stop());
  const dynamoDbEndpoint = options.dynamoDbEndpoint ?? (ownDynamoDb?.endpoint as string);

  const setupClient = createDynamoDbClient({ endpoint: dynamoDbEndpoint });
  try {
    await ensureTables(setupClient, [
      { definition: appTable, tableName: tableNames.app },
      { definition: toolkitTable, tableName: tableNames.toolkit },
    ]);
  } finally {
    setupClient.destroy();
  }

  const sqs = await startLocalSqs(
    workerNames.map((name) => ({ name: workers[name].queueName, ...workers[name] })),
  );
  started.push(() => sqs.stop());
  const outboxDir = options.dataDir ? join(options.dataDir, 'outbox') : undefined;
  const smtp = await startSmtpSink(outboxDir ? { outboxDir } : {});
  started.push(() => smtp.stop());
  const smsOutboxDir = outboxDir ?? mkdtempSync(join(tmpdir(), 'bulwark-sms-'));
  if (!outboxDir) started.push(() => rmSync(smsOutboxDir, { recursive: true, force: true }));

  const retryBaseDelaySec = {
    email: options.emailRetryBaseDelaySec ?? 30,
    webhook: options.webhookRetryBaseDelaySec ?? 60,
  };
  Object.assign(process.env, {
    APP_TABLE_NAME: tableNames.app,
    TOOLKIT_TABLE_NAME: tableNames.toolkit,
    DYNAMODB_ENDPOINT: dynamoDbEndpoint,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    // What Lambda sets: Powertools reports a function's first invocation as a cold start only with it.
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    ENCRYPTION_KEY: encryptionKey,
    SQS_ENDPOINT: sqs.endpoint,
    EMAIL_QUEUE_URL: sqs.queueUrls[workers['email-worker'].queueName],
    EMAIL_DLQ_URL: sqs.queueUrls[`${workers['email-worker'].queueName}-dlq`],
    EMAIL_TRANSPORT: 'smtp',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    EMAIL_RETRY_BASE_DELAY_SEC: String(retryBaseDelaySec.email),
    SMS_TRANSPORT: 'outbox',
    SMS_OUTBOX_DIR: smsOutboxDir,
    WEBHOOK_QUEUE_URL: sqs.queueUrls[workers['webhook-worker'].queueName],
    WEBHOOK_DLQ_URL: sqs.queueUrls[`${workers['webhook-worker'].queueName}-dlq`],
    WEBHOOK_RETRY_BASE_DELAY_SEC: String(retryBaseDelaySec.webhook),
    // Local receivers listen on loopback, which the guard blocks everywhere else.
    SSRF_ALLOWLIST: (options.ssrfAllowlist ?? ['127.0.0.0/8', '::1/128']).join(','),
    // Per run: verification links from an earlier run stop verifying, which is fine locally.
    VERIFICATION_LINK_SECRET: randomBytes(32).toString('base64url'),
    ...(options.sms?.regions ? { SMS_REGIONS: options.sms.regions.join(',') } : {}),
    ...(options.sms?.perHour ? { SMS_PER_HOUR: String(options.sms.perHour) } : {}),
    ...(options.sms?.perRegionPerHour
      ? { SMS_PER_REGION_PER_HOUR: String(options.sms.perRegionPerHour) }
      : {}),
    ...(sweepOptions?.graceSec === undefined
      ? {}
      : { BOOKING_EVENT_GRACE_SEC: String(sweepOptions.graceSec) }),
  });
  const host = new FunctionHost(
    repositoryRoot,
    [
      ...httpFunctionNames.map((name) => ({ name, ...httpFunctions[name] })),
      ...workerNames.map((name) => ({ name, ...workers[name] })),
      ...scheduledFunctionNames.map((name) => ({ name, ...scheduledFunctions[name] })),
    ],
    tableNames,
  );
  const match = createRouteMatcher();
  const listenHost = options.host ?? '127.0.0.1';
  // Set once the server listens: the dev issuer's URL includes the port.
  let auth: LocalAuth | undefined;

  const handleRequest = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const foreignHost = foreignHostReason(request, listenHost);
    if (foreignHost) return writeProblem(response, new ForbiddenError(foreignHost));
    const target = parseRequestTarget(request.url ?? '');
    if (!target) return writeProblem(response, new ValidationError('The request target must be a path'));
    const path = target.rawPath;
    // The path its function gets, which the catch-all matches a miss against: one path for both.
    const routedPath = percentDecodedPath(path);
    if (routedPath === jwksPath && auth) {
      // The path is the runtime's own, so no route and no catch-all 404 answers it.
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return writeProblem(response, new MethodNotAllowedError(['GET', 'HEAD']), path);
      }
      return writeHttpApiResult(response, {
        statusCode: 200,
        headers: { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=300' },
        body: JSON.stringify(auth.devIssuer.jwks()),
      });
    }
    const found = match(request.method ?? 'GET', routedPath);
    const { functionName, routeKey, pathParameters } = integrationFor(found);
    let body: Buffer;
    try {
      // A body over the limit makes an event over it too, so it is refused before it is all buffered.
      body = await readBody(request, maxPayloadBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      response.setHeader('connection', 'close');
      return writeProblem(response, payloadTooLarge(maxPayloadBytes), path);
    }
    const event = toHttpApiEvent({ request, target, body, routeKey, pathParameters });
    // Lambda counts the event, not the body: base64 and JSON escapes make it larger than the body.
    if (Buffer.byteLength(JSON.stringify(event)) > maxPayloadBytes) {
      return writeProblem(response, payloadTooLarge(maxPayloadBytes), path);
    }
    // BULWARK_LOCAL_FAIL=users: answer as a crashed users function would (to watch bookings degrade).
    if (isFailingLocally(functionName)) return writeHttpApiResult(response, crashedFunctionResult);
    try {
      writeHttpApiResult(response, await host.invoke(functionName, event));
    } catch (error) {
      // What API Gateway answers when the integration fails: the cause stays in the function's log.
      console.error(
        JSON.stringify({ level: 'ERROR', message: 'Invocation failed', routeKey, error: String(error) }),
      );
      writeHttpApiResult(response, {
        statusCode: 500,
        body: JSON.stringify({ message: 'Internal Server Error' }),
      });
    }
  };

  // Responses not yet sent: stopping lets them finish, each on a connection it then closes.
  const responsesInFlight = new Set<ServerResponse>();
  let draining = false;
  const server: Server = createServer((request, response) => {
    responsesInFlight.add(response);
    response.once('close', () => responsesInFlight.delete(response));
    if (draining) response.setHeader('connection', 'close');
    handleRequest(request, response).catch((error: unknown) => {
      console.error(
        JSON.stringify({ level: 'ERROR', message: 'Local runtime failure', error: String(error) }),
      );
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  server.on('clientError', answerUnparsableRequest);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 3000, listenHost, () => resolveListen());
  });
  started.push(
    () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  );
  const { port } = server.address() as AddressInfo;
  // An IPv6 address goes in brackets, or the port would read as part of it.
  const url = `http://${asHostName(listenHost)}:${port}`;
  auth = createLocalAuth(url, options.dataDir, options.authClientIds);
  // The functions read their environment when loaded, so they are loaded once it is complete.
  // Bookings calls users over HTTP: here both are served by this runtime.
  Object.assign(process.env, auth.environment, { USERS_API_URL: url, APP_BASE_URL: url });
  await host.loadAll();
  // One poller per worker: the event source mappings of the stack, with the same batch size. One batch at
  // a time: the host runs each function as one execution environment, so a second batch received now
  // would only wait, its visibility timeout running, where AWS would start another environment.
  const sqsClient = sqs.createClient();
  let workerBatchesInFlight = 0;
  const pollers = workerNames.map((name) => {
    const worker = workers[name];
    return new QueuePoller({
      client: sqsClient,
      queueUrl: sqs.queueUrls[worker.queueName] as string,
      queueArn: sqs.queueArns[worker.queueName] as string,
      batchSize: worker.batchSize,
      maxConcurrency: 1,
      invoke: async (event) => {
        workerBatchesInFlight += 1;
        try {
          return await host.invoke(name, event);
        } finally {
          workerBatchesInFlight -= 1;
        }
      },
      onError: (error) =>
        console.error(
          JSON.stringify({ level: 'ERROR', message: 'Queue poller', worker: name, error: String(error) }),
        ),
    });
  });
  for (const poller of pollers) poller.start();
  sweepSchedule?.start();

  let stopped: Promise<LocalRuntimeStopReport> | undefined;
  return {
    url,
    port,
    dynamoDbEndpoint,
    tableNames,
    auth,
    sqs: { endpoint: sqs.endpoint, queueUrls: sqs.queueUrls },
    smtp,
    outboxDir,
    smsOutboxDir,
    bookingEventSweepIntervalMs: sweepSchedule ? sweepSchedule.intervalMs : undefined,
    retryBaseDelaySec,
    stop: () => {
      stopped ??= (async () => {
        // No new requests from now on. Those in flight, the sweep's run and the workers' batches finish
        // together, while SQS, the sink and DynamoDB still answer; requests get until the longest
        // function timeout (a body still arriving then is cut).
        draining = true;
        const serverClosed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
        server.closeIdleConnections();
        for (const response of responsesInFlight) {
          if (!response.headersSent) response.setHeader('connection', 'close');
        }
        await Promise.all([
          Promise.race([serverClosed, delay(requestDrainMs)]),
          sweepSchedule?.stop(),
          ...pollers.map((poller) => poller.stop()),
        ]);
        server.closeAllConnections();
        sqsClient.destroy();
        const messagesDropped = await sqs.countMessages();
        await stopAll(started);
        return { messagesDropped };
      })();
      return stopped;
    },
    inFlight: () => ({ requests: responsesInFlight.size, workerBatches: workerBatchesInFlight }),
    stopNow: () => ownDynamoDb?.kill(),
  };
}
