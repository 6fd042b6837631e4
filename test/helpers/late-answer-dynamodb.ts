// A DynamoDB whose answer to a write comes too late: a proxy to the suite's embedded one that applies a
// picked request at once but holds its answer past the client's timeout, so the SDK sends it again.
import { createServer } from 'node:http';
import { forward, readBody } from './dynamodb-proxy.js';
import { listenOnLoopback } from './loopback-server.js';

/** Picks a request by its operation (`PutItem`, `UpdateItem`…) and JSON body. */
export type LateAnswerRule = (operation: string, body: string) => boolean;

export interface LateAnswerDynamoDb {
  /** The endpoint to give the code under test. */
  readonly endpoint: string;
  /**
   * The next request `rule` picks is passed on at once and answered `lateMs` later (or never, if the
   * client has hung up by then); the requests it picks after that, the SDK's repeats, pass as usual.
   */
  answerLate(rule: LateAnswerRule, lateMs: number): void;
  /** Requests the current rule has picked: the late one and every repeat of it. */
  readonly picked: () => number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 in front of `target`; it passes everything unchanged until a rule is set. */
export async function startLateAnswerDynamoDb(target: string): Promise<LateAnswerDynamoDb> {
  const upstream = new URL(target);
  let rule: LateAnswerRule | undefined;
  let lateMs = 0;
  let picked = 0;
  const server = createServer(async (request, response) => {
    const body = await readBody(request);
    const operation = String(request.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    let delayMs = 0;
    if (rule?.(operation, body.toString('utf8'))) {
      picked += 1;
      if (picked === 1) delayMs = lateMs;
    }
    forward(upstream, request, response, body, async (answer) => {
      // Read whole first: the write has landed by now, whenever its answer goes out.
      const answerBody = await readBody(answer);
      setTimeout(() => {
        if (response.destroyed) return;
        response.writeHead(answer.statusCode ?? 502, answer.headers).end(answerBody);
      }, delayMs);
    });
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return {
    endpoint,
    answerLate: (next, late) => {
      rule = next;
      lateMs = late;
      picked = 0;
    },
    picked: () => picked,
    close,
  };
}
