// provideEncryptor through a real middy pipeline: the typed context, one encryptor per cold start, warming.
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { provideEncryptor } from '../../middleware/encryption/middy.js';
import { InvalidOptionsError } from '../../middleware/errors.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { countingProvider } from './helpers.js';

const lambdaContext = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 1000 } as Context;
const event = { rawPath: '/users' } as APIGatewayProxyEventV2;
const tenant = { tenantId: 'acme' };

describe('provideEncryptor', () => {
  it('puts one typed encryptor on the context of every invocation', async () => {
    const keyProvider = countingProvider();
    const seen: Encryptor[] = [];
    const handler = lambdaHandler(
      middy<APIGatewayProxyEventV2>()
        .use(provideEncryptor({ keyProvider, keyContextFields: ['tenantId'] }))
        .handler(async (_event, { encryptor }) => {
          seen.push(encryptor);
          const stored = await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], {
            ...tenant,
            userId: 'u',
          });
          return encryptor.decryptFields(stored, ['email'], { ...tenant, userId: 'u' });
        }),
    );
    expect(await handler(event, lambdaContext)).toEqual({ email: 'a@b.co' });
    await handler(event, lambdaContext);
    expect(seen[0]).toBeInstanceOf(Encryptor);
    expect(seen[1]).toBe(seen[0]);
    expect(keyProvider.calls.generate).toBe(1);
  });

  it('starts warming on the first invocation only; the handler joins the request in flight', async () => {
    const keyProvider = countingProvider();
    const handler = lambdaHandler(
      middy()
        .use(
          provideEncryptor({
            keyProvider,
            keyContextFields: ['tenantId'],
            warm: { contexts: [tenant], blindIndexes: ['user-email'] },
          }),
        )
        .handler(async (_event, { encryptor }) => {
          await encryptor.encryptFields({ email: 'a@b.co' }, ['email'], { ...tenant, userId: 'u' });
          return encryptor.blindIndex('a@b.co', { name: 'user-email' });
        }),
    );
    await handler({}, lambdaContext);
    await handler({}, lambdaContext);
    expect(keyProvider.calls).toEqual({ generate: 1, decrypt: 0, index: 1 });
  });

  it('swallows a failed warm-up: a use that joined it fails typed, and the next use fetches the key again', async () => {
    const inner = countingProvider();
    let failures = 1;
    let failWarmUp: (error: Error) => void = () => undefined;
    const flaky = {
      ...inner,
      generateDataKey: (context: Record<string, string>) => {
        if (failures-- <= 0) return inner.generateDataKey(context);
        // The warm-up's fetch is still in flight when the handler asks for the key (KMS is never instant).
        return new Promise<never>((_resolve, reject) => {
          failWarmUp = reject;
        });
      },
    };
    const encryptor = new Encryptor({ keyProvider: flaky });
    const handler = lambdaHandler(
      middy()
        .use(provideEncryptor({ encryptor, warm: { contexts: [tenant] } }))
        .handler(async (_event, context) => {
          const sealing = context.encryptor.encryptFields({ a: 'x' }, ['a'], tenant);
          failWarmUp(new Error('cold network'));
          return sealing;
        }),
    );
    await expect(handler({}, lambdaContext)).rejects.toMatchObject({
      name: 'EncryptionError',
      reason: 'key_unavailable',
    });
    const result = await handler({}, lambdaContext);
    expect(result).toHaveProperty('_dataKey');
    expect(inner.calls.generate).toBe(1);
  });

  it('validates encryptor options when the middleware is built (cold start)', () => {
    expect(() => provideEncryptor({ keyProvider: countingProvider(), headerField: '' })).toThrow(
      InvalidOptionsError,
    );
  });

  it('validates warm-up options when built: the warm-up is not awaited, so its failure would be lost', () => {
    const keyProvider = countingProvider();
    expect(() =>
      provideEncryptor({ keyProvider, warm: { contexts: tenant as never, blindIndexes: 'x' as never } }),
    ).toThrow(
      new InvalidOptionsError('provideEncryptor', [
        'warm.contexts must be an array of encryption contexts (got an object with keys tenantId)',
        'warm.blindIndexes must be an array of blind-index names (got "x")',
      ]),
    );
    expect(() =>
      provideEncryptor({ keyProvider, warm: { contexts: ['acme' as never], blindIndexes: [''] } }),
    ).toThrow(
      new InvalidOptionsError('provideEncryptor', [
        'warm.contexts entries must be objects (got "acme")',
        'warm.blindIndexes entries must be 1-64 letters, digits, . _ : or - (got "")',
      ]),
    );
    expect(keyProvider.calls.generate).toBe(0);
  });

  it('names an object it refuses by its keys, never their values', () => {
    const keyProvider = countingProvider();
    const context = {
      tenantId: 'acme',
      apiKey: 'sk_live_abc123',
      region: 'eu',
      a: 1,
      b: 2,
      c: 3,
      d: 4,
      e: 5,
      f: 6,
    };
    expect(() => provideEncryptor({ keyProvider, warm: { contexts: context as never } })).toThrow(
      new InvalidOptionsError('provideEncryptor', [
        'warm.contexts must be an array of encryption contexts (got an object with keys tenantId, apiKey, region, a, b, c, d, e, …)',
      ]),
    );
  });

  it('refuses an encryptor without the methods it calls when built', () => {
    expect(() => provideEncryptor({ encryptor: 42 as never })).toThrow(
      new InvalidOptionsError('provideEncryptor', ['encryptor must be an object (an Encryptor fits)']),
    );
    const withoutWarm = { encryptFields: async () => ({}) } as unknown as Encryptor;
    expect(() => provideEncryptor({ encryptor: withoutWarm, warm: { contexts: [tenant] } })).toThrow(
      new InvalidOptionsError('provideEncryptor', ['encryptor must have warm() (an Encryptor fits)']),
    );
  });

  it("hands the handler an adopter's double of the encryptor, and takes a null warm as none", async () => {
    const sealed = { email: 'sealed' };
    const double = {
      encryptFields: async () => sealed,
      decryptFields: async () => ({ email: 'a@b.co' }),
    } as unknown as Encryptor;
    const handler = lambdaHandler(
      middy()
        .use(provideEncryptor({ encryptor: double, warm: null as never }))
        .handler(async (_event, { encryptor }) =>
          encryptor.encryptFields({ email: 'a@b.co' }, ['email'], tenant),
        ),
    );
    expect(await handler({}, lambdaContext)).toBe(sealed);
    // Built from options, a null warm warms nothing: no key is fetched before the handler asks.
    const keyProvider = countingProvider();
    const fromOptions = lambdaHandler(
      middy()
        .use(provideEncryptor({ keyProvider, warm: null as never }))
        .handler(async () => keyProvider.calls.generate),
    );
    expect(await fromOptions({}, lambdaContext)).toBe(0);
  });
});
