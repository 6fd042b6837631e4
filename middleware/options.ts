// Option merging shared by every component: an option given as `undefined` keeps its documented default.

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
