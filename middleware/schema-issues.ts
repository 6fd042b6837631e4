// How a Standard Schema issue is told to whoever must mend the input: shared by validateInput and loadConfig.
import type { StandardSchemaV1 } from '@standard-schema/spec';

/** The keys of an issue's path, segments unwrapped. */
export function pathKeys(issue: StandardSchemaV1.Issue): PropertyKey[] {
  return (issue.path ?? []).map((segment) => (typeof segment === 'object' ? segment.key : segment));
}

/** What `value` holds at `keys`; undefined as soon as a step is missing. */
export function valueAt(value: unknown, keys: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/**
 * The issue's message, except that a field not given at all is `Required`: a schema says
 * "expected string, received undefined", which names no mistake the sender made.
 */
export function issueMessage(issue: StandardSchemaV1.Issue, input: unknown): string {
  const keys = pathKeys(issue);
  return keys.length > 0 && valueAt(input, keys) === undefined ? 'Required' : issue.message;
}
