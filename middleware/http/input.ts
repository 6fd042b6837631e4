// Parses and validates a request's JSON body, query string and path parameters against Standard Schemas.
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { headerValue } from '../audit/correlation.js';
import {
  type FieldProblem,
  InvalidArgumentError,
  PayloadTooLargeError,
  UnsupportedContentEncodingError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../errors.js';
import { issueMessage, pathKeys, valueAt } from '../schema-issues.js';
import { headOf } from '../text.js';
import { firstRepeatedKey } from './repeated-keys.js';
import { type ApiGatewayEvent, isRestApiEvent } from './request-event.js';

/** Schemas for the parts of a request; any Standard Schema library works (zod, valibot, arktype). */
export interface InputSchemas {
  readonly body?: StandardSchemaV1 | undefined;
  readonly query?: StandardSchemaV1 | undefined;
  readonly path?: StandardSchemaV1 | undefined;
}

type OutputOf<S> = S extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<S> : undefined;

/** The validated, typed request input. */
export interface ValidatedInput<S extends InputSchemas> {
  body: OutputOf<S['body']>;
  query: OutputOf<S['query']>;
  path: OutputOf<S['path']>;
}

export interface ParseInputOptions {
  /** Largest accepted body, in bytes after base64 decoding. @default 1048576 (1 MiB) */
  readonly maxBodyBytes?: number | undefined;
}

/** The largest body `validateInput` and {@link readJsonBody} read unless told otherwise: 1 MiB. */
export const defaultMaxBodyBytes = 1024 * 1024;

/**
 * Problems one 400 lists at most, the rest counted in its detail: a 1 MiB body of short unknown keys is
 * ~95,000 problems, a 6.8 MB answer Lambda cannot return (its limit is 6 MB), so API Gateway would
 * answer 500 in its place.
 */
export const maxReportedProblems = 20;

/** A field path is shown up to this many characters: a key may be as long as the body. */
const maxReportedFieldLength = 200;

const jsonMediaType = /^application\/(?:[\w.+-]+\+)?json$/;
const utf8Charsets = new Set(['utf-8', 'utf8']);
// Without ignoreBOM the decoder drops a leading byte order mark, which RFC 8259 lets a parser ignore and
// JSON.parse refuses; signatures are checked over the bytes (requestBodyBytes), BOM and all.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON in UTF-8: a JSON media type with no charset or a UTF-8 one (JSON has no other encoding, RFC 8259). */
function isJsonContentType(header: string | undefined): boolean {
  const [mediaType, ...parameters] = (header ?? '').split(';').map((part) => part.trim().toLowerCase());
  if (mediaType === undefined || !jsonMediaType.test(mediaType)) return false;
  return parameters.every((parameter) => {
    const equals = parameter.indexOf('=');
    if (equals < 0 || parameter.slice(0, equals).trim() !== 'charset') return true;
    return utf8Charsets.has(
      parameter
        .slice(equals + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1'),
    );
  });
}

/**
 * Whether the body is sent as is: no `Content-Encoding`, or only `identity` (any case). The header is a
 * list of codings, so an empty one names none; any real coding (gzip, br…) is bytes JSON.parse cannot read,
 * and a plain body labelled with one is a client that does not say what it sends.
 */
export function isUnencoded(header: string | undefined): boolean {
  if (header === undefined) return true;
  return header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .every((coding) => coding === '' || coding === 'identity');
}

/**
 * A raw query string (everything after the first `?`) read as URL parsing reads a URL's query: a `?` it
 * starts with belongs to the first key, so `??a=1` is `{ '?a': '1' }`, not `{ a: '1' }` as
 * `new URLSearchParams(raw)` would have it. Service signatures and the local runtime read queries this way.
 *
 * @example
 * parseRawQuery('?a=1').get('?a'); // '1'
 */
export function parseRawQuery(rawQueryString: string): URLSearchParams {
  return new URLSearchParams(`?${rawQueryString}`);
}

/**
 * A path percent-decoded, as an API Gateway HTTP API hands a function its `rawPath` (a Function URL hands
 * it on as sent). A path that does not decode, a bare `%` say, or one already decoded from `%25`, is taken
 * as it is. Service signatures cover this form (`signedPathOf` decodes a Function URL's path with it, once),
 * and the local runtime delivers it.
 *
 * @example
 * percentDecodedPath('/users/caf%C3%A9'); // '/users/café'
 * percentDecodedPath('/50%'); // '/50%'
 */
export function percentDecodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * What an earlier body parser may leave on the event: `body` parsed and, from `@middy/http-json-body-parser`
 * v3 and earlier, the body as sent as `rawBody` (still base64 when `isBase64Encoded`).
 */
interface BodyFields {
  readonly body?: unknown;
  readonly rawBody?: unknown;
}

/**
 * Whether an earlier middleware (`@middy/http-json-body-parser` before this) parsed the body already: it
 * left something other than text, or kept other text than `body` as `rawBody` (its v3 and earlier keep the
 * body as sent there; Middy removed `rawBody` in 4.0.0, so after a later version a JSON string body it
 * parsed cannot be told from an unparsed one).
 */
function isParsedEarlier(event: ApiGatewayEvent): boolean {
  const { body, rawBody } = event as BodyFields;
  if (body !== undefined && body !== null && typeof body !== 'string') return true;
  return typeof rawBody === 'string' && body !== rawBody;
}

/**
 * The body's bytes, from `rawBody` when an earlier parser replaced `body`. A base64 body must be canonical
 * base64, as API Gateway sends it (else a 400 {@link ValidationError}): Node's decoder skips characters
 * outside the alphabet and ignores bad padding, so a mangled body could still parse, or verify a signature
 * made over other text. A body parsed by a parser that kept no `rawBody` has no bytes left to give: an
 * {@link InvalidArgumentError} naming the fix, as no signature can be checked over it.
 */
export function requestBodyBytes(event: ApiGatewayEvent): Buffer {
  const { body, rawBody } = event as BodyFields;
  let raw: string;
  if (!isParsedEarlier(event)) raw = (body as string | null | undefined) ?? '';
  else if (typeof rawBody === 'string') raw = rawBody;
  else {
    throw new InvalidArgumentError(
      'The request body was parsed by an earlier middleware (@middy/http-json-body-parser?) that kept no ' +
        "rawBody, so its bytes are gone: .use() that parser after Bulwark's middlewares, or drop it",
    );
  }
  if (!event.isBase64Encoded) return Buffer.from(raw, 'utf8');
  const bytes = Buffer.from(raw, 'base64');
  if (bytes.toString('base64') !== raw) {
    throw new ValidationError('Request body is not valid base64', [
      { field: 'body', message: 'Malformed base64' },
    ]);
  }
  return bytes;
}

/**
 * A body an earlier parser already turned into a value, as it left it. The parser has read the whole body
 * already; the limit still bounds what the handler is given, measured on the bytes of the body as sent
 * (`rawBody`, decoded when base64) or, when the parser kept none, on the value written back as JSON.
 */
function alreadyParsedBody(event: ApiGatewayEvent, maxBodyBytes: number): unknown {
  const { body, rawBody } = event as BodyFields;
  const size = typeof rawBody === 'string' ? requestBodyBytes(event).length : serializedBytes(body);
  if (size > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes);
  return body;
}

/**
 * The bytes of a parsed body written back as JSON. `JSON.parse` takes nesting that `JSON.stringify`'s
 * recursion cannot (about 20 KB of `{"a":`, a depth of a few thousand, overflows its stack on Node 20): such a body is the caller's fault, a 400.
 */
function serializedBytes(body: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '', 'utf8');
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new ValidationError('Request body is nested too deeply', [
      { field: 'body', message: 'Nested too deeply' },
    ]);
  }
}

/**
 * Reads the body as JSON: 415 for another media type, a charset other than UTF-8 or a `Content-Encoding`
 * other than `identity` (but on a REST API event, whose body API Gateway has decoded), 413 when too large, 400 when empty, not valid base64 (with `isBase64Encoded`) or
 * UTF-8, malformed, or when an object in it names a key twice (which JSON.parse takes, keeping the last
 * value, where another reader of the same bytes may keep the first). A body an earlier middleware parsed is
 * taken as that middleware left it, after the same media type, encoding and size checks.
 */
export function readJsonBody(event: ApiGatewayEvent, maxBodyBytes = defaultMaxBodyBytes): unknown {
  // Case-insensitively, as authenticate reads headers: @middy/http-header-normalizer({ canonical: true })
  // and REST API events give `Content-Type`.
  if (!isJsonContentType(headerValue(event.headers, 'content-type'))) {
    throw new UnsupportedMediaTypeError('application/json (UTF-8)');
  }
  // Else a gzip body fails as malformed UTF-8 (a misleading 400), and a plain one labelled gzip passes.
  // A REST API (v1) with compression on decodes the body itself but passes the header on: its events'
  // bodies are never encoded.
  if (!isRestApiEvent(event) && !isUnencoded(headerValue(event.headers, 'content-encoding'))) {
    throw new UnsupportedContentEncodingError();
  }
  if (isParsedEarlier(event)) return alreadyParsedBody(event, maxBodyBytes);
  const bytes = requestBodyBytes(event);
  if (bytes.length > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes);
  if (bytes.length === 0) {
    throw new ValidationError('Request body is required', [{ field: 'body', message: 'Required' }]);
  }
  let text: string;
  try {
    // Decoding leniently would store U+FFFD in place of every byte of another encoding (mojibake).
    text = strictUtf8.decode(bytes);
  } catch {
    throw new ValidationError('Request body is not valid UTF-8', [
      { field: 'body', message: 'Malformed UTF-8' },
    ]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError('Request body is not valid JSON', [
      { field: 'body', message: 'Malformed JSON' },
    ]);
  }
  const repeated = firstRepeatedKey(text);
  if (repeated) {
    const field = reportedField('body', repeated);
    throw new ValidationError(`Request body repeats a key: ${field}`, [{ field, message: 'Repeated key' }]);
  }
  return value;
}

/** A field's dotted path (`body.items.0.name`), cut to {@link maxReportedFieldLength} characters. */
function reportedField(part: string, keys: readonly PropertyKey[]): string {
  const path = [part, ...keys.map(String)].join('.');
  return path.length > maxReportedFieldLength ? `${headOf(path, maxReportedFieldLength - 1)}…` : path;
}

/** A zod strict object's issue for fields it does not know: it names them in `keys`, at the object's path. */
interface UnknownKeysIssue extends StandardSchemaV1.Issue {
  readonly code: 'unrecognized_keys';
  readonly keys: readonly string[];
}

function isUnknownKeysIssue(issue: StandardSchemaV1.Issue): issue is UnknownKeysIssue {
  const candidate = issue as Partial<UnknownKeysIssue>;
  return candidate.code === 'unrecognized_keys' && Array.isArray(candidate.keys);
}

/**
 * A schema's issues as the client reads them, one field each by its dotted path: a field that was not
 * sent is `Required` (not the schema's "expected string, received undefined"), each field a strict
 * object does not know is its own `Unknown field` entry at its own path, and an issue repeated for one
 * field is listed once.
 */
function fieldProblems(
  part: string,
  value: unknown,
  issues: readonly StandardSchemaV1.Issue[],
  repeated: ReadonlySet<string>,
): FieldProblem[] {
  const problems = new Map<string, FieldProblem>();
  const add = (keys: readonly PropertyKey[], message: string) => {
    const field = reportedField(part, keys);
    problems.set(`${field}\n${message}`, { field, message });
  };
  for (const issue of issues) {
    const keys = pathKeys(issue);
    if (isUnknownKeysIssue(issue)) {
      for (const key of issue.keys) add([...keys, key], 'Unknown field');
    } else if (keys.length > 0 && repeated.has(String(keys[0])) && valueAt(value, keys) !== undefined) {
      // The values of a repeated parameter arrive joined by commas (or only the last, in a REST API
      // event): the value the schema refused is not one the client sent.
      add(keys.slice(0, 1), 'Repeated parameter');
    } else {
      add(keys, issueMessage(issue, value));
    }
  }
  return [...problems.values()];
}

/** The query parameters the request gave more than once. */
function repeatedQueryParameters(event: ApiGatewayEvent): ReadonlySet<string> {
  const repeated = new Set<string>();
  if (isRestApiEvent(event)) {
    const multiValue = (event as APIGatewayProxyEvent).multiValueQueryStringParameters ?? {};
    for (const [name, values] of Object.entries(multiValue)) {
      if ((values?.length ?? 0) > 1) repeated.add(name);
    }
  } else {
    const seen = new Set<string>();
    for (const name of parseRawQuery((event as APIGatewayProxyEventV2).rawQueryString ?? '').keys()) {
      if (seen.has(name)) repeated.add(name);
      seen.add(name);
    }
  }
  return repeated;
}

async function validatePart(
  part: 'body' | 'query' | 'path',
  schema: StandardSchemaV1 | undefined,
  value: unknown,
  problems: FieldProblem[],
  repeated: ReadonlySet<string> = new Set(),
): Promise<unknown> {
  if (!schema) return undefined;
  const result = await schema['~standard'].validate(value);
  if (result.issues) {
    // One push per problem: spreading ~130,000 of them into one call overflows the stack.
    for (const problem of fieldProblems(part, value, result.issues, repeated)) problems.push(problem);
    return undefined;
  }
  return result.value;
}

/**
 * Validates every part that has a schema and reports all problems at once in one 400 (the first
 * {@link maxReportedProblems}, and how many more fields).
 *
 * @example
 * const input = await parseInput({ body: z.strictObject({ name: z.string() }) }, event);
 * input.body.name; // typed
 */
export async function parseInput<S extends InputSchemas>(
  schemas: S,
  event: ApiGatewayEvent,
  options: ParseInputOptions = {},
): Promise<ValidatedInput<S>> {
  const problems: FieldProblem[] = [];
  const rawBody = schemas.body ? readJsonBody(event, options.maxBodyBytes) : undefined;
  const [body, query, path] = await Promise.all([
    validatePart('body', schemas.body, rawBody, problems),
    validatePart(
      'query',
      schemas.query,
      event.queryStringParameters ?? {},
      problems,
      schemas.query ? repeatedQueryParameters(event) : new Set(),
    ),
    validatePart('path', schemas.path, event.pathParameters ?? {}, problems),
  ]);
  if (problems.length > 0) {
    const reported = problems.slice(0, maxReportedProblems);
    // A field breaking two rules keeps both entries, since each says something the client must mend,
    // but the detail names each field once and counts the fields it leaves out, not the problems.
    const named = new Set(reported.map((p) => p.field));
    const unnamed = new Set(problems.map((p) => p.field).filter((field) => !named.has(field))).size;
    throw new ValidationError(
      `Invalid request: ${[...named].join(', ')}${unnamed > 0 ? ` and ${unnamed} more` : ''}`,
      reported,
    );
  }
  return { body, query, path } as ValidatedInput<S>;
}
