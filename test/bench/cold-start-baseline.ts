// The cold-start benchmark's floor: a Middy + Powertools Logger/Metrics handler with no Bulwark code, answering the same events.
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  ScheduledEvent,
  SQSBatchResponse,
  SQSEvent,
} from 'aws-lambda';

// The bench's entry for each function re-exports the AWS SDK packages that function's bundle imports,
// and adds cold-start-baseline-dynamodb.ts (the probes' client) only when that bundle imports
// DynamoDB, so this module holds only what every floor needs and imports no AWS SDK itself.
const logger = new Logger();
const metrics = new Metrics({ namespace: 'Baseline' });

type BaselineEvent = APIGatewayProxyEventV2 | SQSEvent | ScheduledEvent;
/** A scheduled function's run answers a report the runner does not read: an empty object here. */
type BaselineResult = APIGatewayProxyStructuredResultV2 | SQSBatchResponse | Record<string, never>;

/**
 * The AWS SDK calls a function's event needs whatever code makes them (cold-start-baseline-dynamodb.ts):
 * health's GetItem per table, and a sweep's read of the pending-events index.
 */
export interface FloorProbes {
  health(): Promise<void>;
  schedule(event: ScheduledEvent): Promise<void>;
}

/** API Gateway's route key for requests no route takes: the catch-all function's. */
const catchAllRouteKey = '$default';

const problem = (status: number, title: string): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { 'content-type': 'application/problem+json' },
  body: JSON.stringify({ type: 'about:blank', title, status }),
});

/** What each function does with the benchmark's event, minus everything Bulwark adds. */
async function answer(event: BaselineEvent, probes: FloorProbes | undefined): Promise<BaselineResult> {
  if ('Records' in event) return { batchItemFailures: [] };
  if ('detail-type' in event) {
    await probes?.schedule(event);
    return {};
  }
  if (event.routeKey === 'GET /health') {
    await probes?.health();
    return { statusCode: 200, body: JSON.stringify({ status: 'ok' }) };
  }
  // The bench sends the catch-all a known path with a method it lacks; the floor knows no route table.
  if (event.routeKey === catchAllRouteKey) return problem(405, 'Method Not Allowed');
  if (!event.headers?.authorization) return problem(401, 'Authentication is required');
  return problem(403, 'Forbidden');
}

export function createBaselineHandler(probes?: FloorProbes) {
  return middy(async (event: BaselineEvent): Promise<BaselineResult> => {
    metrics.addMetric('Requests', MetricUnit.Count, 1);
    return answer(event, probes);
  })
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}
