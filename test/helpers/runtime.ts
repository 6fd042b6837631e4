// Starts the local runtime for one test file against the suite's DynamoDB, and a tiny JSON client for it.
import { afterAll, beforeAll, inject } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../bin/runtime/local-runtime.js';
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
  headers?: Record<string, string>;
}

export interface TestApi {
  readonly runtime: () => LocalRuntime;
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
}

/** Registers beforeAll/afterAll hooks that run the local runtime on a random port. */
export function useLocalRuntime(): TestApi {
  let runtime: LocalRuntime | undefined;
  beforeAll(async () => {
    runtime = await startLocalRuntime({
      port: 0,
      dynamoDbEndpoint: inject('dynamoDbEndpoint'),
      tableNames: testTableNames,
    });
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
    async request(method, path, options = {}) {
      const isRaw = typeof options.body === 'string' || Buffer.isBuffer(options.body);
      const headers: Record<string, string> = {
        ...(options.body !== undefined && !isRaw ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      };
      const body =
        options.body === undefined
          ? undefined
          : isRaw
            ? (options.body as string | Buffer)
            : JSON.stringify(options.body);
      const response = await fetch(`${current().url}${path}`, { method, headers, body });
      const text = await response.text();
      const isJson = /json/.test(response.headers.get('content-type') ?? '');
      return {
        status: response.status,
        headers: response.headers,
        text,
        body: isJson && text ? JSON.parse(text) : text,
      };
    },
  };
}
