// What an API Gateway event says about its request, read alike from an HTTP API (v2) and a REST API (v1) event.
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { headerValue } from '../audit/correlation.js';
import { UnsupportedEventError } from '../errors.js';
import { percentDecodedPath } from './input.js';

/**
 * An event the HTTP middlewares read: an API Gateway HTTP API (v2) or Function URL event, or a REST API (v1)
 * one. Their callbacks (`rateLimit`'s `identify`, `trust` and `refundWhen`, `idempotency`'s `payloadOf` and
 * `storedAnswer`) get it as this union: narrow it before reading a field only one version has
 * (`'rawPath' in event`).
 */
export type ApiGatewayEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent;

/**
 * A middleware written for {@link ApiGatewayEvent}, typed for Middy as one that takes any event. Middy gives
 * the handler the intersection of its own event type and each middleware's, so a middleware typed with an
 * HTTP API event would make a REST API handler's event read as both (`rawPath` typed, undefined at run time),
 * and no longer fit `APIGatewayProxyHandler`; `unknown` leaves the handler's event as it was declared. Sound
 * because each such middleware's `before` refuses any other event first ({@link assertApiGatewayEvent}), and
 * what reads the event unchecked (`httpErrorHandler`, the guards) reads it only through the helpers below,
 * which answer undefined for any other.
 */
export function forDeclaredEvent<TResult, TContext extends Context>(
  middleware: MiddlewareObj<ApiGatewayEvent, TResult, Error, TContext>,
): MiddlewareObj<unknown, TResult, Error, TContext> {
  return middleware as MiddlewareObj<unknown, TResult, Error, TContext>;
}

/** The fields that tell an API Gateway or Function URL event from the others that can invoke a function. */
interface InvocationEvent {
  readonly requestContext?:
    | {
        readonly elb?: unknown;
        readonly http?: { readonly method?: unknown } | undefined;
      }
    | null
    | undefined;
  readonly httpMethod?: unknown;
  readonly Records?:
    | readonly { readonly eventSource?: unknown; readonly EventSource?: unknown }[]
    | undefined;
  readonly 'detail-type'?: unknown;
}

/** An event source as AWS names it on a record (`aws:sqs`, `aws:sns`): safe to name in a message. */
const awsEventSource = /^aws:[a-z0-9-]{1,32}$/;

/** What an event the HTTP middlewares do not read looks like, for the error's message; never a value the caller wrote. */
function describeUnsupportedEvent(event: unknown): string {
  if (event === null) return 'a null event';
  if (typeof event !== 'object') return `a ${typeof event} event`;
  if (Array.isArray(event)) return 'an array event';
  const { requestContext, Records } = event as InvocationEvent;
  if (requestContext?.elb !== undefined) return 'an Application Load Balancer event';
  if (Array.isArray(Records)) {
    const source = Records[0]?.eventSource ?? Records[0]?.EventSource;
    return typeof source === 'string' && awsEventSource.test(source)
      ? `an ${source} event`
      : 'an event of Records';
  }
  if ('detail-type' in event) return 'an EventBridge event';
  if (typeof requestContext !== 'object' || requestContext === null)
    return 'an event with neither requestContext nor httpMethod';
  return 'an event whose requestContext names no HTTP method';
}

/**
 * Refuses, with {@link UnsupportedEventError}, an event that is neither an API Gateway HTTP API (v2) or
 * Function URL event (`requestContext.http.method`) nor a REST API (v1) one (`httpMethod`, with no
 * `requestContext` or one without `elb`). An ALB event looks like a v1 one, but its headers may all be in `multiValueHeaders`,
 * its client address is only in a forgeable `X-Forwarded-For`, and its answer may need `multiValueHeaders`;
 * a non-HTTP event answered with a 401 or 429 object would end its invocation successfully (an SQS batch
 * deleted). Called first in the `before` of every HTTP-only middleware; reads fields, allocates nothing.
 */
export function assertApiGatewayEvent(
  event: unknown,
  middlewareName: string,
): asserts event is ApiGatewayEvent {
  const candidate = event as InvocationEvent | null | undefined;
  const requestContext = candidate?.requestContext;
  if (requestContext === undefined || requestContext === null) {
    // A hand-written REST API (v1) test event often leaves out requestContext; no ALB event does.
    if (typeof candidate?.httpMethod === 'string') return;
  } else if (typeof requestContext === 'object' && requestContext.elb === undefined) {
    if (typeof requestContext.http?.method === 'string') return;
    if (typeof candidate?.httpMethod === 'string') return;
  }
  throw new UnsupportedEventError(middlewareName, describeUnsupportedEvent(event));
}

/**
 * The fields of either version the helpers below read, each as loosely as a hand-written test event may
 * give it: both event types fit it as they are, so no helper casts the event to the other version.
 */
interface EventFields {
  readonly requestContext?:
    | {
        /** An HTTP API (v2) or Function URL event's. */
        readonly http?: { readonly method?: unknown; readonly sourceIp?: unknown } | undefined;
        /** A REST API (v1) event's. */
        readonly identity?: { readonly sourceIp?: unknown } | null | undefined;
        readonly domainName?: unknown;
      }
    | null
    | undefined;
  readonly rawPath?: unknown;
  readonly routeKey?: unknown;
  readonly cookies?: readonly string[] | undefined;
  readonly httpMethod?: unknown;
  readonly resource?: unknown;
  readonly path?: unknown;
}

// The helpers below take the event Middy was given, which a direct invoke can make `null`: they answer
// undefined rather than throw, so `httpErrorHandler` rendering another error never fails on it.

function fieldsOf(event: ApiGatewayEvent | null | undefined): EventFields | undefined {
  return event ?? undefined;
}

/**
 * API Gateway's TCP peer: `requestContext.http.sourceIp` in an HTTP API (v2) event,
 * `requestContext.identity.sourceIp` in a REST API (v1) one. Reading only the first put every REST API
 * client into one rate-limit bucket, and left the audit line without an address.
 */
export function sourceIpOf(event: ApiGatewayEvent): string | undefined {
  const context = fieldsOf(event)?.requestContext;
  const candidate = context?.http?.sourceIp ?? context?.identity?.sourceIp;
  return typeof candidate === 'string' ? candidate : undefined;
}

/** A REST API (v1) event: it names its method at the top level, where v2 puts it under `requestContext.http`. */
export function isRestApiEvent(event: ApiGatewayEvent): boolean {
  const fields = fieldsOf(event);
  return fields?.requestContext?.http === undefined && typeof fields?.httpMethod === 'string';
}

/** The request's method: v2's `requestContext.http.method`, a REST API event's `httpMethod`. */
export function methodOf(event: ApiGatewayEvent): string | undefined {
  const fields = fieldsOf(event);
  const method = fields?.requestContext?.http?.method ?? fields?.httpMethod;
  return typeof method === 'string' ? method : undefined;
}

/** The path the client asked for: v2's `rawPath`, a REST API event's `path`. */
export function pathOf(event: ApiGatewayEvent): string | undefined {
  const fields = fieldsOf(event);
  const path = fields?.rawPath ?? fields?.path;
  return typeof path === 'string' ? path : undefined;
}

/**
 * An HTTP API (v2) or Function URL event's `requestContext.http` (method, path, source IP, user agent);
 * undefined for a REST API (v1) event, which spreads those over `httpMethod`, `path` and `identity`.
 */
export function httpContextOf(
  event: ApiGatewayEvent,
): APIGatewayProxyEventV2['requestContext']['http'] | undefined {
  const context = event?.requestContext;
  return context && 'http' in context ? context.http : undefined;
}

/** What a URI path holds as it is (RFC 3986 `pchar` and `/`); `%` only as the start of an escape. */
const decodedPathEscapes = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/gu;
const encodedPathEscapes = /%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/gu;

/** A character as UTF-8 percent-escapes; a lone surrogate, which has no UTF-8, as U+FFFD's. */
function percentEncoded(character: string): string {
  return [...Buffer.from(character, 'utf8')]
    .map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)
    .join('');
}

/**
 * A path as a URI reference (RFC 3986), for a problem's `instance`: every character a path may not hold as
 * it is (a space, `"`, `<`, a letter outside ASCII…) percent-encoded as UTF-8. A decoded path (`encoded`
 * false) has its `%`, `?` and `#` encoded too, so `/50%` and a decoded `%3F` stay part of the path, which
 * `encodeURI` would not do (and it throws on a lone surrogate); an encoded one keeps its escapes. A path
 * that starts with `//` gets `/.` before it, as WHATWG URL serialises one, so it is not read as a host.
 *
 * @example
 * pathAsUriReference('/bookings/a b"<x>', false); // '/bookings/a%20b%22%3Cx%3E'
 * pathAsUriReference('/n%C3%B6pe%20x', true); // '/n%C3%B6pe%20x'
 */
export function pathAsUriReference(path: string, encoded: boolean): string {
  const escaped = path.replace(encoded ? encodedPathEscapes : decodedPathEscapes, percentEncoded);
  return escaped.startsWith('//') ? `/.${escaped}` : escaped;
}

/**
 * The request's path as a problem's `instance`: a Function URL hands `rawPath` on as sent, so its escapes are
 * kept; an HTTP API (and the local runtime) hands it on decoded, and a REST API's `path` is decoded, so those
 * are encoded afresh.
 */
export function problemInstanceOf(event: ApiGatewayEvent): string | undefined {
  const path = pathOf(event);
  if (path === undefined) return undefined;
  return pathAsUriReference(path, isFunctionUrlDomain(fieldsOf(event)?.requestContext?.domainName));
}

/**
 * A Function URL's own domain, `<url-id>.lambda-url.<region>.on.aws`, which Lambda writes in the
 * `requestContext.domainName` of the events it delivers (their shape is otherwise an HTTP API's). Matched
 * whole: an HTTP API's custom domain that only resembles it is read as the HTTP API it is.
 */
export function isFunctionUrlDomain(domainName: unknown): boolean {
  return typeof domainName === 'string' && /^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$/.test(domainName);
}

/**
 * The path a service signature is checked against, percent-decoded as signers sign it, decided by who
 * delivered the event and never by trying forms: an HTTP API (and the local runtime) hands `rawPath` on
 * decoded, so it is taken as it is; a Function URL hands it on as sent, so it is decoded here, once.
 * Trying both would let a signature for `/a%2541` pass at `/a%41`, another resource.
 * Undefined for a REST API (v1) event, whose path is neither the raw one nor reliably decoded, and for an
 * event without `requestContext.http`: no signature then verifies.
 */
export function signedPathOf(event: ApiGatewayEvent): string | undefined {
  const fields = fieldsOf(event);
  const context = fields?.requestContext;
  if (context?.http === undefined || typeof fields?.rawPath !== 'string') return undefined;
  return isFunctionUrlDomain(context.domainName) ? percentDecodedPath(fields.rawPath) : fields.rawPath;
}

/**
 * The request's cookies, one `name=value` each: v2 gathers them in `cookies`; a REST API event leaves them
 * in its Cookie header, whatever the case of its name.
 */
export function cookiesOf(event: ApiGatewayEvent): readonly string[] | undefined {
  const cookies = fieldsOf(event)?.cookies;
  if (cookies !== undefined) return cookies;
  const header = headerValue(event?.headers, 'cookie');
  if (header === undefined) return undefined;
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '');
}

/** The route, as v2 writes it (`POST /users/{id}`); a REST API event's is built alike from method and resource. */
export function routeOf(event: ApiGatewayEvent): string | undefined {
  const { routeKey, httpMethod, resource } = fieldsOf(event) ?? {};
  if (typeof routeKey === 'string') return routeKey;
  return typeof httpMethod === 'string' && typeof resource === 'string'
    ? `${httpMethod} ${resource}`
    : undefined;
}
