// Middy adapter: builds the encryptor at cold start and puts it on the handler's context.
import type { MiddlewareObj, Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { assertNoProblems } from '../errors.js';
import { checkMethodsOption, requireOptionsObject } from '../options.js';
import { Encryptor, type EncryptorOptions, type WarmOptions, warmOptionProblems } from './encryptor.js';

/** What {@link provideEncryptor} adds to the handler's context. */
export interface EncryptorContext {
  encryptor: Encryptor;
}

type EncryptorSource =
  | ({ readonly encryptor: Encryptor } & { readonly [K in keyof EncryptorOptions]?: never })
  | (EncryptorOptions & { readonly encryptor?: undefined });

export type ProvideEncryptorOptions = EncryptorSource & {
  /**
   * Keys to fetch on the first invocation, without delaying it: the handler's first encryption joins
   * the request already in flight instead of starting its own.
   * @default {} (nothing warmed)
   */
  readonly warm?: WarmOptions | undefined;
};

/**
 * Creates the encryptor once (at cold start, when the middleware is built) and exposes it as
 * `context.encryptor`; on the first invocation it starts warming the data-key cache.
 *
 * @example
 * export const handler = middy()
 *   .use(provideEncryptor({ keyProvider, keyContextFields: ['tenantId'], warm: { contexts: [{ tenantId }] } }))
 *   .handler(async (event, { encryptor }) => encryptor.encryptFields(item, ['email'], { tenantId, userId }));
 */
export function provideEncryptor(
  options: ProvideEncryptorOptions,
): MiddlewareObj<unknown, unknown, Error, Context & EncryptorContext> {
  requireOptionsObject('provideEncryptor', options);
  const { warm, encryptor: given, ...encryptorOptions } = options;
  const problems: string[] = [];
  // Only what this calls, so an adopter's double of the encryptor fits: warm(), when there is a warm-up.
  const calls = warm === undefined || warm === null ? [] : ['warm'];
  checkMethodsOption(problems, 'encryptor', given, calls, 'an Encryptor');
  if (warm !== undefined && warm !== null) problems.push(...warmOptionProblems(warm));
  assertNoProblems('provideEncryptor', problems);
  const encryptor = given ?? new Encryptor(encryptorOptions as EncryptorOptions);
  let warmed = false;
  const provideEncryptorBefore = (request: Request<unknown, unknown, Error, Context & EncryptorContext>) => {
    request.context.encryptor = encryptor;
    if (!warmed && warm) {
      warmed = true;
      // Not awaited. A use that joins the warm-up's fetch shares its failure, typed, as it would have
      // met its own; the failed key is forgotten, so the next use fetches it again.
      encryptor.warm(warm).catch(() => undefined);
    }
  };
  return { before: provideEncryptorBefore };
}
