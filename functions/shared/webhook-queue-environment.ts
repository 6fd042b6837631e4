// The webhook queue's variables, checked without a schema library so that the booking event sweeper,
// which reads nothing else but its tables, ships none.
import { isHttpUrl, localOnly, refusesLocalSettings } from './table-environment.js';

/** What a function that publishes webhook events reads besides its tables. */
export interface WebhookQueueEnvironment {
  /** Set only by the local runtime and tests (local-aws-sqs; refused in Lambda); in AWS the SDK's regional endpoint is used. */
  sqsEndpoint: string | undefined;
  webhook: {
    /** The webhook queue; without it, events fan out to no endpoint. */
    queueUrl: string | undefined;
  };
}

/** The invalid ones of SQS_ENDPOINT (an http(s) URL, local only) and WEBHOOK_QUEUE_URL (an http(s) URL). */
export function webhookQueueEnvironmentProblems(env: NodeJS.ProcessEnv): string[] {
  return [
    // An endpoint is the local runtime's SQS: it is signed with static local credentials.
    ...(env.SQS_ENDPOINT === undefined
      ? []
      : refusesLocalSettings(env)
        ? [localOnly('SQS_ENDPOINT')]
        : isHttpUrl(env.SQS_ENDPOINT)
          ? []
          : ['SQS_ENDPOINT']),
    ...(env.WEBHOOK_QUEUE_URL === undefined || isHttpUrl(env.WEBHOOK_QUEUE_URL) ? [] : ['WEBHOOK_QUEUE_URL']),
  ];
}

/** The webhook queue's settings as read; call it once {@link webhookQueueEnvironmentProblems} found none. */
export function webhookQueueEnvironment(env: NodeJS.ProcessEnv): WebhookQueueEnvironment {
  return { sqsEndpoint: env.SQS_ENDPOINT, webhook: { queueUrl: env.WEBHOOK_QUEUE_URL } };
}
