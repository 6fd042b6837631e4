// provideConfig through a real middy pipeline: typed context.config, loaded once, a bad config fails typed.
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { provideConfig } from '../../middleware/config/middy.js';
import { ConfigError } from '../../middleware/errors.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';

const lambdaContext = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 1000 } as Context;

describe('provideConfig', () => {
  it('puts the validated, typed configuration on the context', async () => {
    const env = { PARTNER_URL: 'https://partner.example', RETRIES: '3' };
    const handler = lambdaHandler(
      middy()
        .use(provideConfig(z.object({ PARTNER_URL: z.url(), RETRIES: z.coerce.number().int() }), { env }))
        .handler(async (_event, { config }) => ({ url: config.PARTNER_URL, retries: config.RETRIES + 1 })),
    );
    const invoke = () => handler({}, lambdaContext);
    expect(await invoke()).toEqual({ url: 'https://partner.example', retries: 4 });
    env.RETRIES = '9';
    expect(await invoke()).toEqual({ url: 'https://partner.example', retries: 4 });
  });

  it('fails the invocation with a ConfigError naming the bad keys', async () => {
    const handler = lambdaHandler(
      middy()
        .use(provideConfig(z.object({ PARTNER_URL: z.url() }), { env: { PARTNER_URL: 'not a url' } }))
        .handler(async () => 'unreachable'),
    );
    const error = await handler({}, lambdaContext).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((problem) => problem.key)).toEqual(['PARTNER_URL']);
    expect(String(error)).not.toContain('not a url');
  });
});
