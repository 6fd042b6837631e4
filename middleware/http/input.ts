// Parses and validates a request's JSON body, query string and path parameters against Standard Schemas.
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import {
  type FieldProblem,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../errors.js';

/** Schemas for the parts of a request; any Standard Schema library works (zod, valibot, arktype). */
export interface InputSchemas {
  readonly body?: StandardSchemaV1;
  readonly query?: StandardSchemaV1;
  readonly path?: StandardSchemaV1;
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
  readonly maxBodyBytes?: number;
}

export const defaultMaxBodyBytes = 1024 * 1024;

const jsonMediaType = /^application\/(?:[\w.+-]+\+)?json$/;

function isJsonContentType(header: string | undefined): boolean {
  const mediaType = header?.split(';', 1)[0]?.trim().toLowerCase();
  return mediaType !== undefined && jsonMediaType.test(mediaType);
}

/** Reads the body as JSON: 415 for another media type, 413 when too large, 400 when empty or malformed. */
export function readJsonBody(event: APIGatewayProxyEventV2, maxBodyBytes = defaultMaxBodyBytes): unknown {
  if (!isJsonContentType(event.headers?.['content-type'])) {
    throw new UnsupportedMediaTypeError('application/json');
  }
  const raw = event.body ?? '';
  const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.length > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes);
  if (bytes.length === 0) {
    throw new ValidationError('Request body is required', [{ field: 'body', message: 'Required' }]);
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ValidationError('Request body is not valid JSON', [
      { field: 'body', message: 'Malformed JSON' },
    ]);
  }
}

function fieldOf(part: string, issue: StandardSchemaV1.Issue): string {
  const segments = (issue.path ?? []).map((segment) =>
    String(typeof segment === 'object' ? segment.key : segment),
  );
  return [part, ...segments].join('.');
}

async function validatePart(
  part: 'body' | 'query' | 'path',
  schema: StandardSchemaV1 | undefined,
  value: unknown,
  problems: FieldProblem[],
): Promise<unknown> {
  if (!schema) return undefined;
  const result = await schema['~standard'].validate(value);
  if (result.issues) {
    for (const issue of result.issues) problems.push({ field: fieldOf(part, issue), message: issue.message });
    return undefined;
  }
  return result.value;
}

/**
 * Validates every part that has a schema and reports all problems at once in one 400.
 *
 * @example
 * const input = await parseInput({ body: z.strictObject({ name: z.string() }) }, event);
 * input.body.name; // typed
 */
export async function parseInput<S extends InputSchemas>(
  schemas: S,
  event: APIGatewayProxyEventV2,
  options: ParseInputOptions = {},
): Promise<ValidatedInput<S>> {
  const problems: FieldProblem[] = [];
  const rawBody = schemas.body ? readJsonBody(event, options.maxBodyBytes) : undefined;
  const [body, query, path] = await Promise.all([
    validatePart('body', schemas.body, rawBody, problems),
    validatePart('query', schemas.query, event.queryStringParameters ?? {}, problems),
    validatePart('path', schemas.path, event.pathParameters ?? {}, problems),
  ]);
  if (problems.length > 0) {
    throw new ValidationError(`Invalid request: ${problems.map((p) => p.field).join(', ')}`, problems);
  }
  return { body, query, path } as ValidatedInput<S>;
}
