// Input schemas shared by the sample functions.
import { pageLimitSchema } from './pagination.js';
import * as z from './zod.js';

/** Ids and room names: safe inside composite keys (no `#`), bounded so no key grows an item. */
export const idSchema = z
  .string()
  .check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, 'Must be 1-64 letters, digits, - or _'));

export const idPathSchema = z.strictObject({ id: idSchema });

export const pageQuerySchema = z.object({
  limit: pageLimitSchema,
  cursor: z.optional(z.string().check(z.maxLength(2048))),
});
