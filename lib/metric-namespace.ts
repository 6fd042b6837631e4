// The CloudWatch namespace a construct reads or writes Bulwark's metrics in.
import { Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { metricNamespace, metricNamespaceProblems } from '../middleware/metrics/catalog.js';

/**
 * The CloudWatch namespace of one stack's metrics, `Bulwark/<stack name>`: its functions emit there and
 * its alarms and dashboard read only there, so stacks sharing an account and region (Bulwark-dev and
 * Bulwark-prod) never count each other's data points. A stack name (at most 128 letters, digits and
 * hyphens) always makes a valid namespace; a name only known at deploy time cannot be checked.
 */
export function stackMetricNamespace(stackName: string, construct = 'BulwarkStack'): string {
  const namespace = `${metricNamespace}/${stackName}`;
  const problems = metricNamespaceProblems(namespace);
  if (problems.length > 0) {
    throw new Error(
      `Invalid ${construct}: its stack's metric namespace ${JSON.stringify(namespace)} ${problems.join('; ')}; give metricNamespace`,
    );
  }
  return namespace;
}

/**
 * The default namespace of a construct's metrics: that of the deployed stack it is in, the top-level one
 * for a construct in a nested stack, whose own name is known only at deploy time.
 */
export function defaultMetricNamespace(construct: string, scope: IConstruct): string {
  let stack = Stack.of(scope);
  while (stack.nestedStackParent !== undefined) stack = stack.nestedStackParent;
  return stackMetricNamespace(stack.stackName, construct);
}

/**
 * `namespace`, else the namespace of the construct's stack (`Bulwark/<stack name>`, the top-level stack's
 * for a nested one), checked as CloudWatch
 * checks it, so that an invalid one fails the synth, naming the construct, instead of the deploy.
 */
export function checkedMetricNamespace(
  construct: string,
  scope: IConstruct,
  namespace: string | undefined,
): string {
  if (namespace === undefined) return defaultMetricNamespace(construct, scope);
  const problems = metricNamespaceProblems(namespace);
  if (problems.length > 0) {
    throw new Error(`Invalid ${construct} props: metricNamespace ${problems.join('; ')}`);
  }
  return namespace;
}
