// E.164 phone numbers: the form checked at once, the number plan (libphonenumber metadata) loaded with the first number.
import type { MetadataSet } from './number-plan.js';
import * as z from './zod.js';

export interface PhoneCheck {
  /** `max` to check that a number is assigned (`valid`); `min` suffices for `possible`. */
  readonly metadata: MetadataSet;
  /** `valid`: a number in an assigned range; `possible`: a length its country allows. */
  readonly level: 'valid' | 'possible';
}

/** `+`, a country code that does not start with 0, up to 15 digits in all, no spaces. */
const e164Form = /^\+[1-9]\d{1,14}$/;

/**
 * A schema for a number written exactly in E.164 and checked against a number plan. The plan loads
 * with the first number, not at cold start, so the check is asynchronous: parse with
 * `safeParseAsync` (validateInput does).
 *
 * @example
 * const phone = phoneSchema({ metadata: 'max', level: 'valid' });
 */
export function phoneSchema({ metadata, level }: PhoneCheck) {
  let parse: Promise<ReturnType<typeof import('./number-plan.js')['numberPlan']>> | undefined;
  const inPlan = async (value: string): Promise<boolean> => {
    if (!e164Form.test(value)) return false;
    parse ??= import('./number-plan.js').then(({ numberPlan }) => numberPlan(metadata));
    const parsed = (await parse)(value);
    if (parsed?.number !== value) return false;
    return level === 'valid' ? parsed.isValid() : parsed.isPossible();
  };
  return z
    .string()
    .check(
      z.maxLength(16),
      z.refine(inPlan, 'Must be a valid phone number in E.164 form, e.g. +14155552671'),
    );
}
