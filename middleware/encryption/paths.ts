// Dotted field paths (`email`, `profile.phone`): validated once, read and written without mutating the input.
import { assertNoProblems } from '../errors.js';

/** A validated field path, its segments, and its UTF-8 bytes (bound into each value's AAD). */
export interface FieldPath {
  readonly path: string;
  readonly segments: readonly string[];
  readonly bytes: Buffer;
}

const forbiddenSegments = new Set(['__proto__', 'prototype', 'constructor']);
const maxPathLength = 256;
/** Control characters: never part of an attribute name someone meant, and invisible in messages and logs. */
const controlCharacter = /\p{Cc}/u;
const maxCachedLists = 256;
/** Field lists are usually constants: each distinct list is parsed once, then served from here. */
const parsedLists = new Map<string, FieldPath[]>();
const byList = new WeakMap<
  readonly unknown[],
  { fields: unknown[]; reserved: string; paths: readonly FieldPath[] }
>();

/** Splits and checks the paths; an empty segment or a prototype key is refused (no prototype pollution). */
export function parsePaths(component: string, fields: unknown, reserved: string): readonly FieldPath[] {
  if (!Array.isArray(fields)) {
    assertNoProblems(component, ['fields must be an array of dotted paths']);
    return [];
  }
  // Fast path: the same array as last time, unchanged (compared element by element).
  const known = byList.get(fields);
  if (known !== undefined && known.reserved === reserved && sameElements(known.fields, fields))
    return known.paths;
  const paths = parseCached(component, fields, reserved);
  byList.set(fields, { fields: [...fields], reserved, paths });
  return paths;
}

function sameElements(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index += 1) if (a[index] !== b[index]) return false;
  return true;
}

function parseCached(component: string, fields: readonly unknown[], reserved: string): readonly FieldPath[] {
  const allStrings = fields.every((field) => typeof field === 'string');
  // Each member length-prefixed: no two lists share a key, whatever characters their paths hold.
  const cacheKey = allStrings
    ? `${reserved.length}:${reserved}${(fields as readonly string[]).map((field) => `${field.length}:${field}`).join('')}`
    : undefined;
  const cached = cacheKey === undefined ? undefined : parsedLists.get(cacheKey);
  if (cached !== undefined) return cached;
  const paths = parseList(component, fields, reserved);
  if (cacheKey !== undefined) {
    if (parsedLists.size >= maxCachedLists) parsedLists.clear();
    parsedLists.set(cacheKey, paths);
  }
  return paths;
}

function parseList(component: string, fields: readonly unknown[], reserved: string): FieldPath[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const paths: FieldPath[] = [];
  for (const field of fields) {
    if (typeof field !== 'string' || field.length === 0 || field.length > maxPathLength) {
      problems.push(`field paths must be 1-${maxPathLength} characters`);
      continue;
    }
    if (controlCharacter.test(field)) {
      problems.push(`field path ${JSON.stringify(field)} holds a control character`);
      continue;
    }
    // The path is bound into the AAD as UTF-8, where a lone surrogate becomes U+FFFD: two paths would be one.
    if (!field.isWellFormed()) {
      problems.push(`field path ${JSON.stringify(field)} holds a lone surrogate`);
      continue;
    }
    const segments = field.split('.');
    if (segments.some((segment) => segment.length === 0 || forbiddenSegments.has(segment))) {
      problems.push(`field path ${field} has an empty or forbidden segment`);
    } else if (segments[0] === reserved) {
      problems.push(`field path ${field} is or lies inside the data-key header attribute`);
    } else if (!seen.has(field)) {
      seen.add(field);
      paths.push({ path: field, segments, bytes: Buffer.from(field, 'utf8') });
    }
  }
  // Encrypting `profile` after `profile.phone` would seal a ciphertext, and decrypting either first
  // leaves the other unreadable: a list names each value once.
  for (const outer of paths) {
    for (const inner of paths) {
      if (liesInside(inner.segments, outer.segments)) {
        problems.push(`field paths ${outer.path} and ${inner.path} overlap: list one or the other`);
      }
    }
  }
  assertNoProblems(component, problems);
  return paths;
}

/** Whether `inner` is a path strictly below `outer`, segment by segment (`a.b` is inside `a`, `ab` is not). */
function liesInside(inner: readonly string[], outer: readonly string[]): boolean {
  if (inner.length <= outer.length) return false;
  for (let index = 0; index < outer.length; index += 1) if (inner[index] !== outer[index]) return false;
  return true;
}

/** An object a path can lead through: what {@link readPath} walks, so where fields can be. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

/** The value at a path, or undefined when the path does not exist. */
export function readPath(record: Record<string, unknown>, path: FieldPath): unknown {
  let current: unknown = record;
  for (const segment of path.segments) {
    if (!isRecord(current) || !Object.hasOwn(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

/** Defines `key` on `target` as a plain data property: a key named `__proto__` must not set the prototype. */
function defineMember(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * A shallow copy of `record` that properties can be added to cheaply. Not a spread copy: V8 gives
 * a spread copy a map that adding a property (the data-key header) cannot reuse, which costs about
 * 1.5 µs and a fresh map on every record. Object.assign copies what a spread copies (own enumerable
 * string and symbol keys) in tens of nanoseconds, but sets rather than defines; a record with its own
 * `__proto__` member (JSON.parse makes those) is copied key by key instead.
 */
export function copyRecord(record: Record<string, unknown>): Record<string, unknown> {
  if (!Object.hasOwn(record, '__proto__')) return Object.assign({}, record);
  const copy: Record<string | symbol, unknown> = {};
  for (const key of Object.keys(record)) defineMember(copy, key, record[key]);
  for (const symbol of Object.getOwnPropertySymbols(record)) {
    if (Object.prototype.propertyIsEnumerable.call(record, symbol)) {
      copy[symbol] = (record as Record<symbol, unknown>)[symbol];
    }
  }
  return copy as Record<string, unknown>;
}

/** A copy of `record`'s own enumerable string-keyed members except `skip` (a decrypted record's header). */
export function copyRecordWithout(record: Record<string, unknown>, skip: string): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    if (key === skip) continue;
    if (key === '__proto__') defineMember(copy, key, record[key]);
    else copy[key] = record[key];
  }
  return copy;
}

/**
 * Writes values into a copy of `record`: every object on a written path is copied once, so the
 * caller's record (and anything nested in it) is never changed.
 */
export function writePaths(
  record: Record<string, unknown>,
  writes: readonly { path: FieldPath; value: unknown }[],
  copyRoot = true,
): Record<string, unknown> {
  const root = copyRoot ? copyRecord(record) : record;
  let copies: Set<object> | undefined;
  // Only paths that readPath found are written, so every object on them exists.
  for (const { path, value } of writes) {
    if (path.segments.length === 1) {
      root[path.path] = value;
      continue;
    }
    copies ??= new Set<object>([root]);
    let parent = root;
    const last = path.segments.length - 1;
    for (let index = 0; index < last; index += 1) {
      const segment = path.segments[index] as string;
      const child = parent[segment] as Record<string, unknown>;
      let copy = child;
      if (!copies.has(child)) {
        // Only existing members are overwritten here, so a spread copy is fine (and defines `__proto__`).
        copy = { ...child };
        copies.add(copy);
        parent[segment] = copy;
      }
      parent = copy;
    }
    parent[path.segments[last] as string] = value;
  }
  return root;
}
