// zod/mini with English messages, for every schema in functions/: import * as z from '../shared/zod.js'.
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

// zod/mini loads no locale, so every issue would read "Invalid input"; clients and DLQ reasons need
// the English text that says what to fix. The full `zod` bundles ~75 KiB more for the same schemas.
config(en());

export * from 'zod/mini';
