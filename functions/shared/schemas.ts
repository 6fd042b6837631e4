// Input schemas shared by the sample functions.
import * as z from 'zod';
import { pageLimitSchema } from './pagination.js';

/** Ids and room names: safe inside composite keys (no `#`), bounded so no key grows an item. */
export const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'Must be 1-64 letters, digits, - or _');

export const idPathSchema = z.strictObject({ id: idSchema });

export const pageQuerySchema = z.object({
  limit: pageLimitSchema,
  cursor: z.string().max(2048).optional(),
});
