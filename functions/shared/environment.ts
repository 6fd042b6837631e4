// The sample functions' configuration, read from the environment once at cold start.
import { z } from 'zod';

const environmentSchema = z.object({
  APP_TABLE_NAME: z.string().min(1),
  TOOLKIT_TABLE_NAME: z.string().min(1),
  /** Set only by the local runtime and tests; in AWS the SDK's regional endpoint is used. */
  DYNAMODB_ENDPOINT: z.url().optional(),
});

export interface FunctionEnvironment {
  appTableName: string;
  toolkitTableName: string;
  dynamoDbEndpoint: string | undefined;
}

/** Fails the cold start with every missing or invalid variable named (never their values). */
export function readEnvironment(env: NodeJS.ProcessEnv = process.env): FunctionEnvironment {
  const result = environmentSchema.safeParse(env);
  if (!result.success) {
    const names = result.error.issues.map((issue) => issue.path.join('.'));
    throw new Error(`Invalid function environment: ${names.join(', ')}`);
  }
  return {
    appTableName: result.data.APP_TABLE_NAME,
    toolkitTableName: result.data.TOOLKIT_TABLE_NAME,
    dynamoDbEndpoint: result.data.DYNAMODB_ENDPOINT,
  };
}
