// What the suite's fault-injecting DynamoDB proxies share: reading a request whole and passing it on to the embedded server.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';

export function readBody(message: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    message.on('data', (chunk: Buffer) => chunks.push(chunk));
    message.on('end', () => resolve(Buffer.concat(chunks)));
    message.on('error', reject);
  });
}

/**
 * Sends `request` (its method, path and headers, signature included, with `body`) on to `upstream` and
 * hands its answer to `onAnswer`; a failed connection ends `response` without an answer.
 */
export function forward(
  upstream: URL,
  request: IncomingMessage,
  response: ServerResponse,
  body: Buffer,
  onAnswer: (answer: IncomingMessage) => void,
): void {
  const forwarded = httpRequest(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: request.method,
      path: request.url,
      // The embedded server answers only a Host naming it; it checks no signature, so the signed Host
      // (the proxy's) may differ.
      headers: { ...request.headers, host: upstream.host },
    },
    onAnswer,
  );
  forwarded.on('error', () => response.destroy());
  forwarded.end(body);
}
