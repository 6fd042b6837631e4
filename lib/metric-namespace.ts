// The CloudWatch namespace a construct reads Bulwark's metrics from.
import { metricNamespace, metricNamespaceProblems } from '../middleware/metrics/catalog.js';

/**
 * `namespace`, else Bulwark's default, checked as CloudWatch checks it, so that an invalid one fails the
 * synth, naming the construct, instead of the deploy.
 */
export function checkedMetricNamespace(construct: string, namespace: string | undefined): string {
  const checked = namespace ?? metricNamespace;
  const problems = metricNamespaceProblems(checked);
  if (problems.length > 0) {
    throw new Error(`Invalid ${construct} props: metricNamespace ${problems.join('; ')}`);
  }
  return checked;
}
