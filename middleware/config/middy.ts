// Middy adapter: loads typed configuration once per maxAge and puts it on the handler's context.
import type { MiddlewareObj, Request } from '@middy/core';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Context } from 'aws-lambda';
import { createConfigLoader, type LoadConfigOptions } from './load-config.js';

/** What {@link provideConfig} adds to the handler's context. */
export interface ConfigContext<S extends StandardSchemaV1> {
  config: StandardSchemaV1.InferOutput<S>;
}

/**
 * Validates configuration on the first invocation (a bad configuration fails it with a ConfigError
 * naming every key) and exposes it as typed `context.config`; later invocations reuse it until the
 * secret's maxAge passes.
 *
 * @example
 * export const handler = middy()
 *   .use(provideConfig(z.object({ PARTNER_URL: z.url() }), { secretId: 'bulwark/config' }))
 *   .handler(async (event, { config }) => fetch(config.PARTNER_URL));
 */
export function provideConfig<S extends StandardSchemaV1>(
  schema: S,
  options: LoadConfigOptions = {},
): MiddlewareObj<unknown, unknown, Error, Context & ConfigContext<S>> {
  const loader = createConfigLoader(schema, options);
  const provideConfigBefore = async (
    request: Request<unknown, unknown, Error, Context & ConfigContext<S>>,
  ) => {
    request.context.config = await loader.load();
  };
  return { before: provideConfigBefore };
}
