// Typed configuration: each key from the environment first, then from a JSON secret, validated by one schema.
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { assertNoProblems, ConfigError, type ConfigProblem } from '../errors.js';
import type { SecurityEventListener } from '../events.js';
import { arrayOption, checkFunctionOption, shownValue } from '../options.js';
import { issueMessage, pathKeys } from '../schema-issues.js';
import { parseJsonSecret, SecretStore } from './secrets.js';

export interface LoadConfigOptions {
  /**
   * Secrets Manager secret (name or ARN) holding a JSON object of configuration keys. It is read only
   * when the environment lacks some key (seed 001's priority: environment, then Secrets Manager).
   * @default undefined (environment only)
   */
  readonly secretId?: string | undefined;
  /** Where environment values come from; empty strings count as absent. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * The configuration keys to look up.
   * @default the schema's keys when it is an object schema (zod `shape`, valibot `entries`)
   */
  readonly keys?: readonly string[] | undefined;
  /** @default a new SecretStore with {@link maxAgeSec} and {@link onEvent} */
  readonly secrets?: SecretStore | undefined;
  /**
   * How long a fetched secret (and so the configuration built from it) is reused, in seconds, counted from
   * the fetch. @default 300
   */
  readonly maxAgeSec?: number | undefined;
  /** Receives `secret.accessed` events for the secret fetch (name and version stage only). @default none */
  readonly onEvent?: SecurityEventListener | undefined;
}

type Output<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;

/** Loads and validates configuration, reusing the result until the secret behind it may have changed. */
export interface ConfigLoader<S extends StandardSchemaV1> {
  load(): Promise<Output<S>>;
}

function keysOf(schema: StandardSchemaV1, given: readonly string[] | undefined): readonly string[] {
  if (given !== undefined) return given;
  const candidate = schema as { shape?: unknown; entries?: unknown };
  const shape = candidate.shape ?? candidate.entries;
  if (typeof shape === 'object' && shape !== null) return Object.keys(shape);
  assertNoProblems('loadConfig', ['keys is required when the schema is not an object schema']);
  return [];
}

function pathOf(issue: StandardSchemaV1.Issue): string {
  const segments = pathKeys(issue).map(String);
  return segments.length > 0 ? segments.join('.') : '(root)';
}

/** Validation messages of custom rules might quote their input; any configured value is masked. */
function redact(message: string, values: readonly string[]): string {
  return values.reduce(
    (text, value) => (value.length >= 4 ? text.split(value).join('[redacted]') : text),
    message,
  );
}

/**
 * Builds a loader once (at cold start); `load()` is cheap after the first call.
 *
 * @example
 * const loader = createConfigLoader(z.object({ PARTNER_URL: z.url(), PARTNER_TOKEN: z.string().min(20) }), {
 *   secretId: 'bulwark/config',
 * });
 * const config = await loader.load();
 */
export function createConfigLoader<S extends StandardSchemaV1>(
  schema: S,
  options: LoadConfigOptions = {},
): ConfigLoader<S> {
  const problems: string[] = [];
  if (typeof schema?.['~standard']?.validate !== 'function')
    problems.push('schema must be a Standard Schema');
  if (options.secretId !== undefined && options.secretId.length === 0)
    problems.push('secretId must not be empty');
  const maxAgeSec = options.maxAgeSec ?? 300;
  if (!Number.isFinite(maxAgeSec) || maxAgeSec < 0) problems.push('maxAgeSec must be >= 0');
  checkFunctionOption(problems, 'onEvent', options.onEvent);
  // keysOf takes the schema's keys only for undefined: a null would be iterated at the first load().
  const nullIsAbsent = false;
  for (const key of arrayOption(problems, 'keys', options.keys, 'of configuration key names', {
    nullIsAbsent,
  })) {
    if (typeof key !== 'string' || key.length === 0) {
      problems.push(`keys entries must be non-empty names (got ${shownValue(key)})`);
    }
  }
  assertNoProblems('loadConfig', problems);
  const keys = keysOf(schema, options.keys);
  const env = options.env ?? process.env;
  const secretId = options.secretId;
  const secrets =
    secretId === undefined
      ? undefined
      : (options.secrets ??
        new SecretStore({ maxAgeSec, ...(options.onEvent ? { onEvent: options.onEvent } : {}) }));

  /**
   * The configuration last validated, keyed by the secret text it was built from (undefined when the
   * environment alone supplies it, which cannot change while the instance lives). The SecretStore's cache
   * alone decides when a secret is fetched again, so a value is never served longer than `maxAgeSec`
   * after it was fetched, even from a store other loaders share.
   */
  let cached: { secretText: string | undefined; value: Promise<Output<S>> } | undefined;

  const environmentInput = (): { input: Record<string, unknown>; missing: string[] } => {
    const input: Record<string, unknown> = {};
    const missing: string[] = [];
    for (const key of keys) {
      const value = env[key];
      if (value === undefined || value === '') missing.push(key);
      else input[key] = value;
    }
    return { input, missing };
  };

  const validate = async (input: Record<string, unknown>): Promise<Output<S>> => {
    const result = await schema['~standard'].validate(input);
    if (result.issues) {
      const values = Object.values(input).filter((value): value is string => typeof value === 'string');
      const found: ConfigProblem[] = result.issues.map((issue) => ({
        key: pathOf(issue),
        message: redact(issueMessage(issue, input), values),
      }));
      throw new ConfigError(found);
    }
    return result.value;
  };

  // Built from the text the cache is keyed by: a second read could return another version.
  const build = async (
    input: Record<string, unknown>,
    missing: readonly string[],
    secretText: string | undefined,
  ): Promise<Output<S>> => {
    if (secretText !== undefined && secretId !== undefined) {
      const secret = parseJsonSecret(secretText, secretId);
      for (const key of missing) if (Object.hasOwn(secret, key)) input[key] = secret[key];
    }
    return validate(input);
  };

  return {
    async load() {
      const { input, missing } = environmentInput();
      const fromSecret = secrets !== undefined && secretId !== undefined && missing.length > 0;
      // A cache hit in the store while the secret is fresh: the validated configuration is reused as is.
      const secretText = fromSecret ? await secrets.getSecret(secretId, { maxAgeSec }) : undefined;
      if (cached !== undefined && cached.secretText === secretText) return cached.value;
      const pending = build(input, missing, secretText);
      cached = { secretText, value: pending };
      pending.catch(() => {
        if (cached?.value === pending) cached = undefined;
      });
      return pending;
    },
  };
}

/**
 * Loads typed configuration: every key from the environment when set there, otherwise from the JSON
 * secret `secretId`; validated against `schema` (zod or any Standard Schema). Throws one ConfigError
 * listing every missing or invalid key by name, never by value.
 *
 * @example
 * const config = await loadConfig(
 *   z.object({ STAGE: z.enum(['dev', 'prod']), WEBHOOK_SECRET: z.string().min(32) }),
 *   { secretId: process.env.CONFIG_SECRET_ID },
 * );
 */
export function loadConfig<S extends StandardSchemaV1>(
  schema: S,
  options: LoadConfigOptions = {},
): Promise<Output<S>> {
  return createConfigLoader(schema, options).load();
}
