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
export function stackMetricNamespace(stackName: string): string {
  const namespace = `${metricNamespace}/${stackName}`;
  const problems = metricNamespaceProblems(namespace);
  if (problems.length > 0) {
    throw new Error(
      `Invalid BulwarkStack: its metric namespace ${JSON.stringify(namespace)} ${problems.join('; ')}`,
    );
  }
  return namespace;
}

/**
 * `namespace`, else the namespace of the construct's stack (`Bulwark/<stack name>`), checked as CloudWatch
 * checks it, so that an invalid one fails the synth, naming the construct, instead of the deploy.
 */
export function checkedMetricNamespace(
  construct: string,
  scope: IConstruct,
  namespace: string | undefined,
): string {
  if (namespace === undefined) return stackMetricNamespace(Stack.of(scope).stackName);
  const problems = metricNamespaceProblems(namespace);
  if (problems.length > 0) {
    throw new Error(`Invalid ${construct} props: metricNamespace ${problems.join('; ')}`);
  }
  return namespace;
}
