// Option merging and problem wording shared by every component: an option given as `undefined` keeps its
// documented default, and a problem shows the value it received as that value was given.

/**
 * Drops `undefined` values, so an explicit `undefined` takes the default instead of erasing it. Without
 * `exactOptionalPropertyTypes`, `{ maxEntries: config.maxEntries }` compiles with the setting unset, and
 * a plain spread over the defaults would replace the default with `undefined`.
 *
 * @example
 * const settings = { ...defaults, ...definedOnly(options) };
 */
export function definedOnly<O extends object>(options: O | undefined): Partial<O> {
  return Object.fromEntries(
    Object.entries(options ?? {}).filter(([, value]) => value !== undefined),
  ) as Partial<O>;
}

/**
 * A received value as an option problem shows it: as JSON, so a string reads `"10"` and not `10` (a
 * number read from the environment is a string); a number as itself (`NaN`, which JSON writes `null`);
 * an instance of a class by its class (`an instance of Logger`), not its fields.
 *
 * @example
 * problems.push(`limit must be a positive integer (got ${shownValue(limit)})`); // (got "10")
 */
export function shownValue(value: unknown): string {
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const prototype: unknown = Object.getPrototypeOf(value);
    const className = (prototype as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    if (prototype !== Object.prototype && prototype !== null && typeof className === 'string' && className) {
      return `an instance of ${className}`;
    }
  }
  try {
    return JSON.stringify(value);
  } catch {
    return 'an object JSON cannot write';
  }
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
  readonly nullIsAbsent?: boolean;
}

function isLeftOut(value: unknown, { nullIsAbsent = true }: Absence): boolean {
  return value === undefined || (nullIsAbsent && value === null);
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
