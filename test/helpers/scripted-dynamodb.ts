// A DynamoDB that fails or holds the requests a test picks, and records every request: a proxy to the suite's embedded one.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { dynamoDbError, forward, readBody } from './dynamodb-proxy.js';
import type { FaultyAnswer } from './fault-server.js';
import { listenOnLoopback } from './loopback-server.js';

/** Picks requests by their operation (`Query`, `UpdateItem`…) and JSON body. */
export type PickRule = (operation: string, body: string) => boolean;

/** What a refused request is answered, chosen by its JSON body (see `dynamoDbError`, `cancelledTransaction`). */
export type Refusal = (body: string) => FaultyAnswer;

/** A request the proxy received. */
export interface SeenRequest {
  readonly operation: string;
  readonly body: string;
}

/** Requests held by {@link ScriptedDynamoDb.hold}. */
export interface Hold {
  /** Resolves when the first picked request arrives. */
  readonly arrived: Promise<void>;
  /** Stops holding: passes on the held requests whose client still waits for them, drops the others. */
  release(): void;
}

export interface ScriptedDynamoDb {
  /** The endpoint to give the code under test. */
  readonly endpoint: string;
  /**
   * From now on, requests `rule` picks are answered at once with `refusal`'s answer (by default DynamoDB's
   * InternalServerError, which the SDK retries and then reports); none: all pass.
   */
  refuse(rule: PickRule | undefined, refusal?: Refusal): void;
  /** From now on, requests `rule` picks are neither passed on nor answered until the hold is released. */
  hold(rule: PickRule): Hold;
  /** Every request received since the proxy started, in order. */
  readonly seen: readonly SeenRequest[];
  close(): Promise<void>;
}

const internalServerError: Refusal = () =>
  dynamoDbError(500, 'InternalServerError', 'Internal server error (refused by the test)');

/** Starts the proxy on 127.0.0.1 in front of `target`; it passes everything unchanged until told otherwise. */
export async function startScriptedDynamoDb(target: string): Promise<ScriptedDynamoDb> {
  const upstream = new URL(target);
  const seen: SeenRequest[] = [];
  let refused: PickRule | undefined;
  let refusal = internalServerError;
  let held: { rule: PickRule; requests: (() => void)[]; arrive: () => void } | undefined;
  const pass = (request: IncomingMessage, response: ServerResponse, body: Buffer) =>
    forward(upstream, request, response, body, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
  const server = createServer(async (request, response) => {
    const body = await readBody(request);
    const operation = String(request.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    const text = body.toString('utf8');
    seen.push({ operation, body: text });
    if (refused?.(operation, text)) {
      const answer = refusal(text);
      response.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body);
      return;
    }
    if (held?.rule(operation, text)) {
      held.arrive();
      held.requests.push(() => {
        // A client that gave up on it (its attempt timed out) gets nothing: its retry is held too.
        if (!response.destroyed && !request.socket.destroyed) pass(request, response, body);
      });
      return;
    }
    pass(request, response, body);
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return {
    endpoint,
    refuse: (rule, answer = internalServerError) => {
      refused = rule;
      refusal = answer;
    },
    hold: (rule) => {
      let arrive = () => {};
      const arrived = new Promise<void>((resolve) => {
        arrive = resolve;
      });
      const current = { rule, requests: [] as (() => void)[], arrive };
      held = current;
      return {
        arrived,
        release: () => {
          if (held === current) held = undefined;
          for (const passOn of current.requests.splice(0)) passOn();
        },
      };
    },
    seen,
    close,
  };
}
