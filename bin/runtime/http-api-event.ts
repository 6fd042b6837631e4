// Translates between Node HTTP requests/responses and API Gateway HTTP API (payload v2) events/results.

import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import {
  type IncomingMessage,
  type ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { parseRawQuery, percentDecodedPath } from '../../middleware/http/input.js';
import { isFunctionUrlDomain } from '../../middleware/http/request-event.js';

/** A request target's path and query exactly as sent, which is how API Gateway reads them. */
export interface RequestTarget {
  readonly rawPath: string;
  readonly rawQueryString: string;
}

/**
 * Splits an origin-form request target (`/path?query`) at its first `?`. Never resolved against a base
 * URL, which would read `//host/path` as a host and a path; undefined for a target that is not a path
 * (absolute form `http://host/path`, `*`).
 */
export function parseRequestTarget(target: string): RequestTarget | undefined {
  if (!target.startsWith('/')) return undefined;
  const queryStart = target.indexOf('?');
  if (queryStart === -1) return { rawPath: target, rawQueryString: '' };
  return { rawPath: target.slice(0, queryStart), rawQueryString: target.slice(queryStart + 1) };
}

export interface EventSource {
  request: IncomingMessage;
  target: RequestTarget;
  body: Buffer;
  routeKey: string;
  pathParameters: Record<string, string>;
  stage?: string;
}

/** API Gateway passes these content types as text and base64-encodes everything else. */
const textContentType =
  /^(text\/|application\/(?:[\w.+-]+\+)?(?:json|xml|javascript|x-www-form-urlencoded))/i;

/** `05/Mar/2026:14:03:22 +0000`, the format of requestContext.time. */
function requestTime(date: Date): string {
  const [, day, month, year, time] = date.toUTCString().split(' ');
  return `${day}/${month}/${year}:${time} +0000`;
}

function queryParameters(search: URLSearchParams): Record<string, string> | undefined {
  const result: Record<string, string> = {};
  for (const key of new Set(search.keys())) result[key] = search.getAll(key).join(',');
  return Object.keys(result).length > 0 ? result : undefined;
}

export function toHttpApiEvent(source: EventSource): APIGatewayProxyEventV2 {
  const { request, body } = source;
  const { rawQueryString } = source.target;
  // The path percent-decoded once, the query as sent: what events captured behind an HTTP API show (AWS
  // documents neither). The local runtime routes on this path too. Reports say an HTTP API also routes
  // on the decoded path and then decodes path parameters once more; that second decode is not done here.
  const rawPath = percentDecodedPath(source.target.rawPath);
  // As service signatures read it: `??userId=alice` is `{ '?userId': 'alice' }`.
  const query = queryParameters(parseRawQuery(rawQueryString));
  // Every value of a repeated header, joined with commas as API Gateway does (Node's own `headers` keeps
  // only the first Authorization, Content-Type, Host, ... and joins the rest with ", ").
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(request.headersDistinct)) {
    if (values !== undefined && name !== 'cookie') headers[name] = values.join(',');
  }
  const cookies = request.headers.cookie
    ?.split(';')
    .map((cookie) => cookie.trim())
    .filter(Boolean);
  const now = new Date();
  // Bytes that are not UTF-8 stay base64, so the function sees them as sent rather than as U+FFFD.
  const isText = textContentType.test(headers['content-type'] ?? '') && isUtf8(body);
  const method = request.method ?? 'GET';
  // The domain the API was called on, as an HTTP API names it; a Host naming a Function URL would make the
  // event pass for one, whose rawPath service auth decodes once more (this one is decoded already).
  const host = headers.host;
  const domainName = host === undefined || isFunctionUrlDomain(host) ? 'localhost' : host;
  return {
    version: '2.0',
    routeKey: source.routeKey,
    rawPath,
    rawQueryString,
    ...(cookies && cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(query ? { queryStringParameters: query } : {}),
    ...(Object.keys(source.pathParameters).length > 0 ? { pathParameters: source.pathParameters } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: source.routeKey,
      stage: source.stage ?? '$default',
      time: requestTime(now),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

/** A handler result API Gateway cannot map to a response; it answers 500 for it. */
export class MalformedResultError extends Error {
  constructor(problem: string) {
    super(`The function's result is not a valid response: ${problem}`);
    this.name = 'MalformedResultError';
  }
}

/** The result as a structured response, by API Gateway's inference for results without a statusCode. */
function structuredResult(result: unknown): APIGatewayProxyStructuredResultV2 {
  if (typeof result !== 'object' || result === null || !('statusCode' in result)) {
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      body: typeof result === 'string' ? result : JSON.stringify(result ?? null),
    };
  }
  const { statusCode, body, headers, cookies } = result as Record<string, unknown>;
  if (!Number.isInteger(statusCode) || (statusCode as number) < 100 || (statusCode as number) > 599) {
    throw new MalformedResultError(`statusCode ${JSON.stringify(statusCode)}`);
  }
  if (body !== undefined && body !== null && typeof body !== 'string') {
    throw new MalformedResultError('body is not a string');
  }
  if (headers !== undefined && (typeof headers !== 'object' || headers === null || Array.isArray(headers))) {
    throw new MalformedResultError('headers is not an object');
  }
  for (const [name, value] of Object.entries(headers ?? {})) {
    try {
      validateHeaderName(name);
      validateHeaderValue(name, String(value));
    } catch {
      throw new MalformedResultError(`header ${JSON.stringify(name)} is not a valid HTTP header`);
    }
  }
  if (
    cookies !== undefined &&
    !(Array.isArray(cookies) && cookies.every((cookie) => typeof cookie === 'string'))
  ) {
    throw new MalformedResultError('cookies is not an array of strings');
  }
  for (const cookie of (cookies as string[] | undefined) ?? []) {
    try {
      validateHeaderValue('set-cookie', cookie);
    } catch {
      throw new MalformedResultError('a cookie is not a valid Set-Cookie value');
    }
  }
  return result as APIGatewayProxyStructuredResultV2;
}

/**
 * Statuses whose answer has no content, so no Content-Length of the runtime's: RFC 9110 §8.6 forbids one on
 * 1xx and 204, and on a 304 it would have to be the length of the 200 answer, which only the handler knows.
 */
function hasNoContent(statusCode: number): boolean {
  return statusCode < 200 || statusCode === 204 || statusCode === 304;
}

/**
 * Writes a handler's result the way API Gateway does, including its inference for non-structured
 * results. Throws {@link MalformedResultError}, having written nothing, for a result it cannot map.
 * An answer to HEAD goes without a body (Node drops it); its Content-Length is the length of the body
 * the result has, and there is none when the result has no body, as the functions' answers to HEAD have
 * not: RFC 9110 §8.6 lets a HEAD answer leave it out, never give a length other than the GET's.
 */
export function writeHttpApiResult(response: ServerResponse, result: unknown): void {
  const structured = structuredResult(result);
  const statusCode = structured.statusCode ?? 200;
  for (const [name, value] of Object.entries(structured.headers ?? {}))
    response.setHeader(name, String(value));
  if (structured.cookies && structured.cookies.length > 0)
    response.setHeader('set-cookie', structured.cookies);
  response.statusCode = statusCode;
  // Node sends no body for these statuses either.
  if (hasNoContent(statusCode)) {
    response.end();
    return;
  }
  const body = structured.body
    ? Buffer.from(structured.body, structured.isBase64Encoded ? 'base64' : 'utf8')
    : Buffer.alloc(0);
  if (body.length > 0 || response.req?.method !== 'HEAD') response.setHeader('content-length', body.length);
  response.end(body);
}
