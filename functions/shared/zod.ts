// zod/mini with English messages, for every schema in functions/: import * as z from '../shared/zod.js'.
import { config, type core } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/** A limit as a rule: `Must be at most 100 characters`, `Must have at least 1 item`, `Must be at most 10`. */
function limitRule(origin: string, bound: number | bigint, comparison: string): string | undefined {
  const count = (unit: string) => `${comparison} ${bound} ${unit}${bound === 1 || bound === 1n ? '' : 's'}`;
  if (origin === 'string') return `Must be ${count('character')}`;
  if (origin === 'array' || origin === 'set') return `Must have ${count('item')}`;
  if (origin === 'number' || origin === 'int' || origin === 'bigint') return `Must be ${comparison} ${bound}`;
  return undefined;
}

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

/**
 * The wording clients read for the issues a schema gives no message of its own (one it gives wins):
 * what would be accepted, in the voice of the hand-written ones (`Must be at most 100 characters`), not
 * zod's `Too big: expected string to have <=100 characters`. Undefined leaves zod's English.
 */
function plainMessage(issue: core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      // validateInput and loadConfig say `Required` of a value not given at all.
      return issue.input === undefined ? 'Required' : `Must be ${article(issue.expected)}`;
    case 'too_big':
      return limitRule(issue.origin, issue.maximum, issue.inclusive === false ? 'less than' : 'at most');
    case 'too_small':
      if (issue.origin === 'string' && issue.minimum === 1) return 'Must not be empty';
      return limitRule(issue.origin, issue.minimum, issue.inclusive === false ? 'more than' : 'at least');
    case 'invalid_value':
      return issue.values.length === 1
        ? `Must be ${String(issue.values[0])}`
        : `Must be one of ${issue.values.map(String).join(', ')}`;
    default:
      return undefined;
  }
}

// zod/mini loads no locale, so every issue would read "Invalid input"; clients and DLQ reasons need
// the English text that says what to fix. The full `zod` bundles ~75 KiB more for the same schemas.
config({ ...en(), customError: plainMessage });

export * from 'zod/mini';
