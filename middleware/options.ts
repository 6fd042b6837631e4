// Option merging and problem wording shared by every component: an option given as `undefined` keeps its
// documented default, and a problem shows the value it received, briefly and without its contents.
import { InvalidOptionsError } from './errors.js';

/**
 * Drops `undefined` values, so an explicit `undefined` takes the default instead of erasing it. Without
 * `exactOptionalPropertyTypes`, `{ maxEntries: config.maxEntries }` compiles with the setting unset, and
 * a plain spread over the defaults would replace the default with `undefined`.
 *
 * @example
 * const settings = { ...defaults, ...definedOnly(options) };
 */
export function definedOnly<O extends object>(options: O | undefined): DefinedOnly<O> {
  return Object.fromEntries(
    Object.entries(options ?? {}).filter(([, value]) => value !== undefined),
  ) as DefinedOnly<O>;
}

/** The options {@link definedOnly} keeps: each may be absent, none is `undefined`. */
export type DefinedOnly<O extends object> = { [K in keyof O]?: Exclude<O[K], undefined> };

/**
 * Options with every default in place. `Required` would keep the `| undefined` an optional option
 * declares (an explicit `undefined` takes the default), which a resolved setting never holds.
 */
export type Resolved<O extends object> = { [K in keyof O]-?: Exclude<O[K], undefined> };

/** The most characters of a string a problem shows: a key ARN (75) whole, a pasted document not. */
const shownStringLength = 80;
/** The most keys of an object a problem names. */
const shownKeyCount = 8;
/** A key shown as it is; any other is quoted, so a newline or a comma in it cannot garble the message. */
const plainKey = /^[\w$.:-]{1,80}$/;

/** A string as JSON, cut at {@link shownStringLength} characters (never inside a surrogate pair). */
function shownString(value: string): string {
  if (value.length <= shownStringLength) return JSON.stringify(value);
  const cut = /[\uD800-\uDBFF]/.test(value.charAt(shownStringLength - 1))
    ? shownStringLength - 1
    : shownStringLength;
  return `${JSON.stringify(value.slice(0, cut)).slice(0, -1)}…"`;
}

/**
 * A received value as an option problem shows it, briefly and without its contents' secrets: a string
 * as JSON, so it reads `"10"` and not `10` (a number read from the environment is a string), cut after
 * 80 characters; a number as itself (`NaN`, which JSON writes `null`); an array by its length; a plain
 * object by its first keys, never their values (`an object with keys apiKey, region`); an instance of
 * a class by its class (`an instance of Logger`), not its fields. A message stays short and says what
 * was given even for a double whose methods JSON would drop (`{}`).
 *
 * @example
 * problems.push(`limit must be a positive integer (got ${shownValue(limit)})`); // (got "10")
 */
export function shownValue(value: unknown): string {
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (typeof value === 'string') return shownString(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : `an array of ${value.length}`;
  const prototype: unknown = Object.getPrototypeOf(value);
  const className = (prototype as { constructor?: { name?: unknown } | undefined } | null)?.constructor?.name;
  if (prototype !== Object.prototype && prototype !== null && typeof className === 'string' && className) {
    return `an instance of ${className}`;
  }
  const keys = Object.keys(value as object);
  if (keys.length === 0) return 'an object with no keys';
  const named = keys
    .slice(0, shownKeyCount)
    .map((key) => (plainKey.test(key) ? key : shownString(key)))
    .join(', ');
  return `an object with keys ${named}${keys.length > shownKeyCount ? ', …' : ''}`;
}

/**
 * How a component takes an option that is left out. Most read theirs with `??` or a truthiness test, so
 * `null` leaves an option out as `undefined` does (a value read from a config file or a database may be
 * null). A component whose default applies only to `undefined` (a default parameter, `definedOnly`)
 * would use a null, and fail with a TypeError at its first use: it passes `{ nullIsAbsent: false }`, and
 * a null is a problem like any other wrong value.
 */
export interface Absence {
  /** @default true */
  readonly nullIsAbsent?: boolean | undefined;
}

function isLeftOut(value: unknown, { nullIsAbsent = true }: Absence): boolean {
  return value === undefined || (nullIsAbsent && value === null);
}

/**
 * Refuses a component's options when they are no object (left out, a string): its first read of an option
 * would otherwise be a TypeError about `undefined`, which names neither the component nor its options.
 *
 * @example
 * requireOptionsObject('RateLimiter', options);
 */
export function requireOptionsObject(component: string, options: unknown): void {
  if (typeof options === 'object' && options !== null && !Array.isArray(options)) return;
  throw new InvalidOptionsError(component, [`an options object is required (got ${shownValue(options)})`]);
}

/**
 * The entries of an array option (none when it is left out). Anything else is one problem naming the
 * option: a string would be walked letter by letter (`'/health'` as six paths), an object not at all (a
 * TypeError).
 *
 * @example
 * for (const path of arrayOption(problems, 'excludePaths', options.excludePaths, 'of paths')) ...
 */
export function arrayOption(
  problems: string[],
  field: string,
  value: unknown,
  description = '',
  absence: Absence = {},
): readonly unknown[] {
  if (isLeftOut(value, absence)) return [];
  if (Array.isArray(value)) return value;
  problems.push(
    `${field} must be an array${description ? ` ${description}` : ''} (got ${shownValue(value)})`,
  );
  return [];
}

/** Adds a problem when a function option is given but is not a function, which would throw when called. */
export function checkFunctionOption(
  problems: string[],
  field: string,
  value: unknown,
  absence: Absence = {},
): void {
  if (!isLeftOut(value, absence) && typeof value !== 'function') problems.push(`${field} must be a function`);
}

/**
 * Adds a problem when an object option (a logger, a test double) is given without every one of the
 * methods the component calls: the first call would throw a TypeError in the middle of a request, in
 * place of what it reports. Only those methods are asked for, so a double with just them fits.
 *
 * @example
 * checkMethodsOption(problems, 'logger', options.logger, ['warn'], 'a Powertools Logger');
 */
export function checkMethodsOption(
  problems: string[],
  field: string,
  value: unknown,
  methods: readonly string[],
  example?: string,
  absence: Absence = {},
): void {
  if (isLeftOut(value, absence)) return;
  const holder = value as Record<string, unknown> | null;
  const isHolder = (typeof value === 'object' && value !== null) || typeof value === 'function';
  if (isHolder && methods.every((method) => typeof holder?.[method] === 'function')) return;
  const fits = example ? ` (${example} fits)` : '';
  if (methods.length === 0) {
    problems.push(`${field} must be an object${fits}`);
    return;
  }
  const listed = methods.map((method) => `${method}()`).join(' and ');
  problems.push(`${field} must have ${listed}${fits}`);
}
