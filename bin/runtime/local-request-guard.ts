// Keeps the local runtime's HTTP servers to the developer's own tools. Loopback keeps other machines out,
// not the web pages open in the developer's browser: a page can send a cross-origin POST or fetch to
// 127.0.0.1 (a simple one goes without asking first), or reach a server by DNS rebinding (a name of the
// page's own that resolves to 127.0.0.1, so the browser takes the server for the page's origin).
import type { IncomingMessage, ServerResponse } from 'node:http';

// DynamoDB's own type for a request it refuses to serve; the SDKs name the error by the part after `#`.
const ACCESS_DENIED = 'com.amazon.coral.service#AccessDeniedException';

/** A host name as Host and URLs write it: an IPv6 address in brackets. */
export function asHostName(name: string): string {
  return name.includes(':') ? `[${name}]` : name.toLowerCase();
}

/**
 * Why `request` names a host other than the loopback server it reached, or undefined when it names that
 * server: `127.0.0.1`, `localhost`, the address it arrived on (`[::1]` on a server listening there) or
 * `listenHost` (the host the server's URL names), with the server's port. A page reaching the server by
 * DNS rebinding names its own host, so it is refused before anything serves it.
 */
export function foreignHostReason(request: IncomingMessage, listenHost?: string): string | undefined {
  const { localAddress, localPort } = request.socket;
  const names = new Set(
    ['127.0.0.1', 'localhost', localAddress, listenHost].flatMap((name) => (name ? [asHostName(name)] : [])),
  );
  const served = [...names].map((name) => `${name}:${localPort}`);
  // Clients leave HTTP's default port out of Host.
  const accepted = new Set(localPort === 80 ? [...served, ...names] : served);
  if (accepted.has(request.headers.host?.toLowerCase() ?? '')) return undefined;
  return (
    `This local server answers only requests whose Host is ${served.join(', ')}: ` +
    'another host may be a web page reaching it by DNS rebinding'
  );
}

export interface AwsClientRequirements {
  /** Refuse a request without an `AWS4-` Authorization header (SQS: local-aws-sqs checks none). */
  readonly signed: boolean;
}

/** Why an AWS emulator refuses `request`, or undefined when it comes as the SDKs and the CLI send it. */
function awsClientRefusal(request: IncomingMessage, requirements: AwsClientRequirements): string | undefined {
  const foreignHost = foreignHostReason(request);
  if (foreignHost) return foreignHost;
  if (request.headers.origin !== undefined) {
    return 'This local emulator does not serve web pages: the request has an Origin header';
  }
  if (request.method === 'OPTIONS') return 'This local emulator answers no CORS preflight';
  if (requirements.signed && !request.headers.authorization?.trim().startsWith('AWS4-')) {
    return 'This local emulator serves signed requests only (an AWS4- Authorization header)';
  }
  return undefined;
}

/**
 * Refuses, with a 403 in the AWS JSON error shape and without reading its body, a request to an AWS
 * emulator (the embedded DynamoDB or SQS) that a web page could have sent; says whether it did. Their
 * clients are the AWS SDKs and CLI, which name the endpoint's host and port, send no Origin and sign
 * every request. A browser sends an Origin with every cross-origin POST and fetch and an OPTIONS
 * preflight before one that is not simple, and the answer carries no CORS header: a page can neither
 * change the data nor read any of it.
 */
export function refuseUnlessFromAwsClient(
  request: IncomingMessage,
  response: ServerResponse,
  requirements: AwsClientRequirements,
): boolean {
  const reason = awsClientRefusal(request, requirements);
  if (reason === undefined) return false;
  const body = JSON.stringify({ __type: ACCESS_DENIED, message: reason });
  response.writeHead(403, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
  return true;
}
