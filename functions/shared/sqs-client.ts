// The functions' SQS client: AWS defaults in Lambda, local credentials for the embedded local-aws-sqs.
import { SQSClient } from '@aws-sdk/client-sqs';

/** Create once at module scope. With an endpoint (the local runtime) it signs with static local credentials. */
export function createSqsClient(endpoint: string | undefined): SQSClient {
  if (!endpoint) return new SQSClient({});
  return new SQSClient({
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}
