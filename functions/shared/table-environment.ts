// The tables every sample function reads, checked without a schema library so that health ships none.
import { isTableName } from '../../middleware/store/tables.js';

/** The tables every function reads: the whole configuration of the health function. */
export interface TableEnvironment {
  appTableName: string;
  toolkitTableName: string;
  /** Set only by the local runtime and tests; in AWS the SDK's regional endpoint is used. */
  dynamoDbEndpoint: string | undefined;
}

const isHttpUrl = (value: string) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);

/**
 * The missing or invalid ones of APP_TABLE_NAME, TOOLKIT_TABLE_NAME (DynamoDB table names) and
 * DYNAMODB_ENDPOINT (an http(s) URL).
 */
export function tableEnvironmentProblems(env: NodeJS.ProcessEnv): string[] {
  return [
    // An invalid name fails the cold start here rather than every request with a ValidationException.
    ...['APP_TABLE_NAME', 'TOOLKIT_TABLE_NAME'].filter((name) => !isTableName(env[name])),
    ...(env.DYNAMODB_ENDPOINT !== undefined && !isHttpUrl(env.DYNAMODB_ENDPOINT)
      ? ['DYNAMODB_ENDPOINT']
      : []),
  ];
}

/** The cold-start failure naming invalid variables (never their values). */
export const invalidEnvironment = (names: readonly string[]) =>
  new Error(`Invalid function environment: ${names.join(', ')}`);

/** Fails the cold start naming every missing or invalid table variable (never their values). */
export function readTableEnvironment(env: NodeJS.ProcessEnv = process.env): TableEnvironment {
  const problems = tableEnvironmentProblems(env);
  if (problems.length > 0) throw invalidEnvironment(problems);
  return {
    appTableName: env.APP_TABLE_NAME as string,
    toolkitTableName: env.TOOLKIT_TABLE_NAME as string,
    dynamoDbEndpoint: env.DYNAMODB_ENDPOINT,
  };
}
