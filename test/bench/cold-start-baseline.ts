// The cold-start benchmark's floor: a Middy + Powertools Logger/Metrics handler with no Bulwark code, answering the same events.
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  SQSBatchResponse,
  SQSEvent,
} from 'aws-lambda';

// The bench's entry for each function re-exports the AWS SDK packages that function's bundle imports,
// so this module itself only holds what every baseline needs: DynamoDB for the health probe.
const logger = new Logger();
const metrics = new Metrics({ namespace: 'Baseline' });
const documentClient = DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 1 }));

type BaselineEvent = APIGatewayProxyEventV2 | SQSEvent;
type BaselineResult = APIGatewayProxyStructuredResultV2 | SQSBatchResponse;

const problem = (status: number, title: string): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { 'content-type': 'application/problem+json' },
  body: JSON.stringify({ type: 'about:blank', title, status }),
});

/** What each function does with the benchmark's event, minus everything Bulwark adds. */
async function answer(event: BaselineEvent): Promise<BaselineResult> {
  if ('Records' in event) return { batchItemFailures: [] };
  if (event.routeKey === 'GET /health') {
    // The same probe as functions/health: one GetItem per table.
    await Promise.all(
      [process.env.APP_TABLE_NAME, process.env.TOOLKIT_TABLE_NAME].map((tableName) =>
        documentClient.send(new GetCommand({ TableName: tableName, Key: { pk: 'HEALTH', sk: 'HEALTH' } })),
      ),
    );
    return { statusCode: 200, body: JSON.stringify({ status: 'ok' }) };
  }
  if (!event.headers?.authorization) return problem(401, 'Authentication is required');
  return problem(403, 'Forbidden');
}

export const handler = middy(async (event: BaselineEvent): Promise<BaselineResult> => {
  metrics.addMetric('Requests', MetricUnit.Count, 1);
  return answer(event);
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics, { captureColdStartMetric: true }));
