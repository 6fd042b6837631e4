// Starts the local runtime for one test file against the suite's DynamoDB, and a tiny JSON client for it.
import { randomInt, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, inject } from 'vitest';
import {
  type LocalRuntime,
  type LocalRuntimeOptions,
  startLocalRuntime,
} from '../../bin/runtime/local-runtime.js';
import type { SmsEnvironment } from '../../functions/shared/environment.js';
import type { DevTokenOptions } from '../../middleware/auth/dev-issuer.js';
import { testTableNames } from './tables.js';

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON when the response is JSON, the text otherwise. */
  body: unknown;
  text: string;
}

export interface RequestOptions {
  /** A value to send as JSON, or a string/Buffer sent as is. */
  body?: unknown;
  /** An array sends the header once per value, as separate fields. */
  headers?: Record<string, string | string[]>;
  /**
   * The client's source address, any of 127.0.0.0/8. By default each request comes from a random
   * loopback address, so to per-IP rate limits every request is a distinct client; pin one to act
   * as a single client.
   */
  sourceIp?: string;
  /** Bearer token to send; `null` sends none even when the API has a default identity. @default the default identity's */
  token?: string | null;
}

/** A random address in 127.0.0.0/8 (Linux routes the whole block to the loopback interface). */
export function randomLoopbackAddress(): string {
  return `127.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

/** One request over a connection bound to `localAddress`, so the server sees that address as its peer. */
function send(
  url: string,
  method: string,
  headers: Record<string, string | string[]>,
  body: string | Buffer | undefined,
  localAddress: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method,
        localAddress,
        agent: false,
        headers:
          body === undefined ? headers : { 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(incoming.headers)) {
            for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
              responseHeaders.append(name, item);
            }
          }
          resolve({
            status: incoming.statusCode ?? 0,
            headers: responseHeaders,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

export interface TestApi {
  readonly runtime: () => LocalRuntime;
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
  /** A token from the runtime's dev issuer (a human user's by default; `{ m2m: true }` for a client). */
  token(options?: DevTokenOptions): Promise<string>;
}

export interface UseLocalRuntimeOptions {
  /** The identity every request carries unless it passes `token`. @default none: requests are anonymous */
  as?: DevTokenOptions;
  /** Client ids the functions accept. @default any */
  authClientIds?: readonly string[];
  /** The email worker's first retry delay in seconds. @default the runtime's (30) */
  emailRetryBaseDelaySec?: number;
  /** The webhook worker's backoff base in seconds. @default the runtime's (60) */
  webhookRetryBaseDelaySec?: number;
  /**
   * A toolkit table of the file's own, so the circuits it opens on purpose (a transport it takes down)
   * do not reach other files' runtimes. @default the suite's shared toolkit table
   */
  ownToolkitTable?: boolean;
  /**
   * An app table of the file's own (users and bookings), so that a sweep it runs meets only its own
   * pending booking events. @default the suite's shared app table
   */
  ownAppTable?: boolean;
  /**
   * The booking event sweep (LocalRuntimeOptions.bookingEventSweep). @default none: on the suite's shared
   * app table, one file's sweep would publish the events other files leave pending on purpose
   */
  bookingEventSweep?: LocalRuntimeOptions['bookingEventSweep'];
  /**
   * The DynamoDB the functions call, read when the runtime starts (a proxy a test starts first, say).
   * @default the suite's embedded DynamoDB
   */
  dynamoDbEndpoint?: () => string;
  /**
   * The users function's SMS policy (LocalRuntimeOptions.sms). @default {@link sharedToolkitTableSms} on
   * the suite's shared toolkit table; the functions' defaults on the file's own
   */
  sms?: LocalRuntimeOptions['sms'];
}

/**
 * The SMS policy of runtimes on the suite's shared toolkit table. The deployment's SMS budget counts every
 * SMS sent through one toolkit table, and every file of the suite shares that one: with the default
 * budget, the files that send codes would spend it together and refuse each other's SMS by the order
 * they ran in. So there it is a budget no run of the suite reaches; tests of the budgets use a toolkit
 * table of their own (`ownToolkitTable`) with the defaults or budgets of their own.
 */
export const sharedToolkitTableSms = {
  regions: ['US'],
  perHour: 100_000,
  perRegionPerHour: 50_000,
} as const satisfies SmsEnvironment;

/** A human admin: passes every route of the sample (humans need no scopes; admin routes need role admin). */
export const adminUser: DevTokenOptions = { sub: 'e2e-admin', roles: ['admin'] };

/** Registers beforeAll/afterAll hooks that run the local runtime on a random port. */
export function useLocalRuntime(setup: UseLocalRuntimeOptions = {}): TestApi {
  let runtime: LocalRuntime | undefined;
  let defaultToken: string | undefined;
  beforeAll(async () => {
    runtime = await startLocalRuntime({
      port: 0,
      dynamoDbEndpoint: setup.dynamoDbEndpoint?.() ?? inject('dynamoDbEndpoint'),
      tableNames: {
        app: setup.ownAppTable ? `bulwark-app-${randomUUID().slice(0, 8)}` : testTableNames.app,
        toolkit: setup.ownToolkitTable
          ? `bulwark-toolkit-${randomUUID().slice(0, 8)}`
          : testTableNames.toolkit,
      },
      bookingEventSweep: setup.bookingEventSweep ?? false,
      encryptionKey: inject('encryptionKey'),
      ...(setup.authClientIds ? { authClientIds: setup.authClientIds } : {}),
      ...(setup.emailRetryBaseDelaySec ? { emailRetryBaseDelaySec: setup.emailRetryBaseDelaySec } : {}),
      ...(setup.webhookRetryBaseDelaySec ? { webhookRetryBaseDelaySec: setup.webhookRetryBaseDelaySec } : {}),
      ...(setup.sms || !setup.ownToolkitTable ? { sms: setup.sms ?? sharedToolkitTableSms } : {}),
    });
    if (setup.as) defaultToken = await runtime.auth.devIssuer.mint(setup.as);
  });
  afterAll(async () => {
    await runtime?.stop();
  });
  const current = () => {
    if (!runtime) throw new Error('The local runtime is not running');
    return runtime;
  };
  return {
    runtime: current,
    token: (options) => current().auth.devIssuer.mint(options),
    async request(method, path, options = {}) {
      const isRaw = typeof options.body === 'string' || Buffer.isBuffer(options.body);
      const token = options.token === undefined ? defaultToken : (options.token ?? undefined);
      const headers: Record<string, string | string[]> = {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(options.body !== undefined && !isRaw ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      };
      const body =
        options.body === undefined
          ? undefined
          : isRaw
            ? (options.body as string | Buffer)
            : JSON.stringify(options.body);
      const sourceIp = options.sourceIp ?? randomLoopbackAddress();
      const response = await send(`${current().url}${path}`, method, headers, body, sourceIp);
      const isJson = /json/.test(response.headers.get('content-type') ?? '');
      return { ...response, body: isJson && response.text ? JSON.parse(response.text) : response.text };
    },
  };
}
