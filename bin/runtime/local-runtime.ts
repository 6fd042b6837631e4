// The local runtime: embedded DynamoDB plus an HTTP server that serves the route table through the real handlers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpFunctionNames, httpFunctions, routeKeyOf } from '../../functions/routes.js';
import {
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ValidationError,
} from '../../middleware/errors.js';
import { renderProblem } from '../../middleware/http/problem.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { appTable, toolkitTable } from '../../middleware/store/tables.js';
import { startDynamoDbProcess } from './dynamodb-process.js';
import { FunctionHost } from './function-host.js';
import { toHttpApiEvent, writeHttpApiResult } from './http-api-event.js';
import { createLocalAuth, jwksPath, type LocalAuth } from './local-auth.js';
import { crashedFunctionResult, isFailingLocally } from './local-failures.js';
import { localEncryptionKey } from './local-key.js';
import { createRouteMatcher } from './route-matcher.js';

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
  /** API Gateway-style body limit. @default 1048576 (1 MiB) */
  readonly maxBodyBytes?: number;
  /**
   * The functions' ENCRYPTION_KEY (base64 of 32 bytes).
   * @default `<dataDir>/encryption-key`, generated if absent; a fresh random key when there is no dataDir
   */
  readonly encryptionKey?: string;
  /** Client ids the functions accept in tokens (AUTH_CLIENT_IDS). @default any: the dev issuer is the only issuer */
  readonly authClientIds?: readonly string[];
}

export interface LocalRuntime {
  readonly url: string;
  readonly port: number;
  readonly dynamoDbEndpoint: string;
  readonly tableNames: { readonly app: string; readonly toolkit: string };
  /** The dev issuer (`auth.devIssuer.mint(...)` makes tokens the functions accept) and service secrets. */
  readonly auth: LocalAuth;
  stop(): Promise<void>;
}

class BodyTooLarge extends Error {}

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

function writeProblem(response: ServerResponse, error: unknown, path: string): void {
  const { response: result } = renderProblem(error, { instance: path });
  writeHttpApiResult(response, result);
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
  const tableNames = options.tableNames ?? { app: 'bulwark-app', toolkit: 'bulwark-toolkit' };
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const ownDynamoDb = options.dynamoDbEndpoint
    ? undefined
    : await startDynamoDbProcess(options.dataDir ? { path: join(options.dataDir, 'dynamodb') } : {});
  const dynamoDbEndpoint = options.dynamoDbEndpoint ?? (ownDynamoDb?.endpoint as string);

  const setupClient = createDynamoDbClient({ endpoint: dynamoDbEndpoint });
  await ensureTables(setupClient, [
    { definition: appTable, tableName: tableNames.app },
    { definition: toolkitTable, tableName: tableNames.toolkit },
  ]);
  setupClient.destroy();

  Object.assign(process.env, {
    APP_TABLE_NAME: tableNames.app,
    TOOLKIT_TABLE_NAME: tableNames.toolkit,
    DYNAMODB_ENDPOINT: dynamoDbEndpoint,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    ENCRYPTION_KEY: options.encryptionKey ?? localEncryptionKey(options.dataDir),
  });
  const host = new FunctionHost(
    repositoryRoot,
    httpFunctionNames.map((name) => ({ name, ...httpFunctions[name] })),
  );
  const match = createRouteMatcher();
  // Set once the server listens: the dev issuer's URL includes the port.
  let auth: LocalAuth | undefined;

  const handleRequest = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === jwksPath && request.method === 'GET' && auth) {
      return writeHttpApiResult(response, {
        statusCode: 200,
        headers: { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=300' },
        body: JSON.stringify(auth.devIssuer.jwks()),
      });
    }
    let found: ReturnType<typeof match>;
    try {
      found = match(request.method ?? 'GET', path);
    } catch {
      writeProblem(response, new ValidationError('Malformed percent-encoding in the path'), path);
      return;
    }
    if (found.kind === 'not-found')
      return writeProblem(response, new NotFoundError(`No route for ${path}`), path);
    if (found.kind === 'method-not-allowed') {
      return writeProblem(response, new MethodNotAllowedError(found.allow), path);
    }
    let body: Buffer;
    try {
      body = await readBody(request, maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      response.setHeader('connection', 'close');
      return writeProblem(response, new PayloadTooLargeError(maxBodyBytes), path);
    }
    const routeKey = routeKeyOf(found.route);
    // BULWARK_LOCAL_FAIL=users: answer as a crashed users function would (to watch bookings degrade).
    if (isFailingLocally(found.route.function)) return writeHttpApiResult(response, crashedFunctionResult);
    const event = toHttpApiEvent({ request, body, routeKey, pathParameters: found.pathParameters });
    try {
      writeHttpApiResult(response, await host.invoke(found.route.function, event));
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

  const server: Server = createServer((request, response) => {
    handleRequest(request, response).catch((error: unknown) => {
      console.error(
        JSON.stringify({ level: 'ERROR', message: 'Local runtime failure', error: String(error) }),
      );
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 3000, options.host ?? '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  auth = createLocalAuth(url, options.dataDir, options.authClientIds);
  // The functions read their environment when loaded, so they are loaded once it is complete.
  // Bookings calls users over HTTP: here both are served by this runtime.
  Object.assign(process.env, auth.environment, { USERS_API_URL: url });
  try {
    await host.loadAll();
  } catch (error) {
    server.close();
    await ownDynamoDb?.stop();
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    dynamoDbEndpoint,
    tableNames,
    auth,
    stop: () => {
      stopped ??= (async () => {
        await new Promise<void>((resolveClose) => {
          server.close(() => resolveClose());
          server.closeAllConnections();
        });
        await ownDynamoDb?.stop();
      })();
      return stopped;
    },
  };
}
