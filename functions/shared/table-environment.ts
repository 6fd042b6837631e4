// The tables every sample function reads, checked without a schema library so that health ships none.
import { isTableName } from '../../middleware/store/tables.js';

/** The tables every function reads: the whole configuration of the health function. */
export interface TableEnvironment {
  appTableName: string;
  toolkitTableName: string;
  /** Set only by the local runtime and tests (refused in Lambda); in AWS the SDK's regional endpoint is used. */
  dynamoDbEndpoint: string | undefined;
}

/** Whether a value is an http or https URL. */
export const isHttpUrl = (value: string) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);

/**
 * Whether the settings only a developer's machine may use (a local endpoint, an inline secret, the dev
 * issuer, an SSRF allowlist) are refused: in Lambda, which sets AWS_LAMBDA_FUNCTION_NAME (the local
 * runtime never does), unless BULWARK_STAGE=local says it is a Lambda emulator on that machine. The stack
 * sets dev or prod, never local.
 */
export function refusesLocalSettings(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.AWS_LAMBDA_FUNCTION_NAME) && env.BULWARK_STAGE !== 'local';
}

/** How a local-only variable is named when refused. */
export const localOnly = (name: string) => `${name} (local only: refused in Lambda)`;

/**
 * The missing or invalid ones of APP_TABLE_NAME, TOOLKIT_TABLE_NAME (DynamoDB table names) and
 * DYNAMODB_ENDPOINT (an http(s) URL, local only); in Lambda, BULWARK_STAGE too.
 */
export function tableEnvironmentProblems(env: NodeJS.ProcessEnv): string[] {
  const inLambda = refusesLocalSettings(env);
  return [
    // Unset, it would be `local`: a deployed function must know whether it is prod.
    ...(inLambda && env.BULWARK_STAGE === undefined ? ['BULWARK_STAGE (required in Lambda)'] : []),
    // An invalid name fails the cold start here rather than every request with a ValidationException.
    ...['APP_TABLE_NAME', 'TOOLKIT_TABLE_NAME'].filter((name) => !isTableName(env[name])),
    // An endpoint is the local runtime's DynamoDB: an http one is signed with static local credentials.
    ...(env.DYNAMODB_ENDPOINT === undefined
      ? []
      : inLambda
        ? [localOnly('DYNAMODB_ENDPOINT')]
        : isHttpUrl(env.DYNAMODB_ENDPOINT)
          ? []
          : ['DYNAMODB_ENDPOINT']),
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
