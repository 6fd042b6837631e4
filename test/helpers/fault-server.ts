// A dependency that answers badly: for tests of what a client makes of a 5xx, a throttling answer or garbage.
import { createServer } from 'node:http';
import { type LoopbackServer, listenOnLoopback } from './loopback-server.js';

/** One fixed answer: a status, its content type and a body, sent to every request. */
export interface FaultyAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** The answer of an AWS JSON service (DynamoDB, KMS…) to a request it refuses with the error `type`. */
export function awsJsonError(status: number, type: string, message = 'refused'): FaultyAnswer {
  return {
    status,
    contentType: 'application/x-amz-json-1.0',
    body: JSON.stringify({ __type: type, message }),
  };
}

/**
 * An HTTP server on 127.0.0.1 that reads each request whole, then sends `answer`, or, for `'reset'`,
 * drops the connection without a word (the client sees ECONNRESET).
 */
export function faultServer(answer: FaultyAnswer | 'reset'): Promise<LoopbackServer> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      if (answer === 'reset') request.socket.resetAndDestroy();
      else response.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body);
    });
  });
  return listenOnLoopback(server);
}
