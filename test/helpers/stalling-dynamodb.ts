// A DynamoDB that hangs some requests: a proxy to the suite's embedded one that never answers the requests a test picks,
// or applies them and never answers (a write that lands while its client times out).
import { createServer } from 'node:http';
import { forward, readBody } from './dynamodb-proxy.js';
import { listenOnLoopback } from './loopback-server.js';

/** Picks the requests to leave unanswered by their JSON body (table name, key, expression). */
export type StallRule = (body: string) => boolean;

export interface StallOptions {
  /**
   * Pass the picked requests on and hold only their answers: the write lands, its client never hears
   * of it (every attempt times out). The SDK's retries of a transaction carry its ClientRequestToken, so
   * DynamoDB applies it once.
   * @default false: the picked requests never reach DynamoDB
   */
  readonly applied?: boolean;
}

export interface StallingDynamoDb {
  /** The endpoint to give the code under test. */
  readonly endpoint: string;
  /** From now on, requests `rule` picks are never answered (their clients time out); none: all pass. */
  stall(rule: StallRule | undefined, options?: StallOptions): void;
  /** Requests left unanswered so far. */
  readonly stalled: () => number;
  close(): Promise<void>;
}

/**
 * Starts a proxy on 127.0.0.1 in front of `target` (the suite's DynamoDB): requests pass through
 * unchanged, signature included (the embedded server checks that requests are signed, not by whom),
 * but those the current rule picks are held open and never answered, as a DynamoDB that hangs (or, with
 * `applied`, passed on and only their answers held, as a DynamoDB whose answers are lost).
 */
export async function startStallingDynamoDb(target: string): Promise<StallingDynamoDb> {
  const upstream = new URL(target);
  let rule: StallRule | undefined;
  let applyStalled = false;
  let stalled = 0;
  const server = createServer(async (request, response) => {
    const body = await readBody(request);
    const picked = rule?.(body.toString('utf8')) === true;
    if (picked) stalled += 1;
    if (picked && !applyStalled) return;
    forward(upstream, request, response, body, (answer) => {
      if (picked) {
        answer.resume();
        return;
      }
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return {
    endpoint,
    stall: (next, options = {}) => {
      rule = next;
      applyStalled = options.applied ?? false;
    },
    stalled: () => stalled,
    close,
  };
}
