// IAM statements compared by what they allow, not by how CDK groups them: with
// `@aws-cdk/aws-iam:minimizePolicies` a policy merges statements that share actions or resources, so the
// same permissions can be written as one statement or several.

interface PolicyStatement {
  readonly Effect?: unknown;
  readonly Action?: unknown;
  readonly Resource?: unknown;
  readonly Condition?: unknown;
}

/** JSON with object keys sorted, so two equal objects compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => a.localeCompare(b)))
      : item,
  );
}

/**
 * Every (effect, action, resource, condition) a list of statements grants, one per entry, sorted and without
 * duplicates: two lists allow exactly the same calls on exactly the same resources when these are equal.
 */
export function grantsOf(statements: readonly unknown[]): string[] {
  const grants = new Set<string>();
  for (const statement of statements as PolicyStatement[]) {
    for (const action of [statement.Action].flat()) {
      for (const resource of [statement.Resource].flat()) {
        grants.add(
          canonicalJson({
            Effect: statement.Effect,
            Action: action,
            Resource: resource,
            Condition: statement.Condition,
          }),
        );
      }
    }
  }
  return [...grants].sort();
}
