// E.164 phone numbers: the form checked at once, the number plan (libphonenumber metadata) loaded with the first number.
import type { PhoneNumber } from 'libphonenumber-js';
import * as z from './zod.js';

/** The part of libphonenumber-js (any of its metadata sets) that the check uses. */
export interface NumberPlan {
  parsePhoneNumberFromString(text: string): PhoneNumber | undefined;
}

export interface PhoneCheck {
  /**
   * A module re-exporting `parsePhoneNumberFromString` from the libphonenumber-js metadata set to
   * check against, imported by the caller with `import()`: each bundle then carries only its own set
   * and evaluates it (~13 ms) only when a number comes. Importing libphonenumber-js itself that way
   * would keep all of its exports.
   * @example () => import('./number-plan.js')
   */
  readonly plan: () => Promise<NumberPlan>;
  /** `valid`: a number in an assigned range (needs the max metadata); `possible`: a length its country allows. */
  readonly level: 'valid' | 'possible';
}

/** `+`, a country code that does not start with 0, up to 15 digits in all, no spaces. */
const e164Form = /^\+[1-9]\d{1,14}$/;

/**
 * A schema for a number written exactly in E.164 and checked against a number plan. Its check is
 * asynchronous: parse with `safeParseAsync` (validateInput does).
 *
 * @example
 * const phone = phoneSchema({ plan: () => import('./number-plan.js'), level: 'valid' });
 */
export function phoneSchema({ plan, level }: PhoneCheck) {
  let loaded: Promise<NumberPlan> | undefined;
  const inPlan = async (value: string): Promise<boolean> => {
    if (!e164Form.test(value)) return false;
    loaded ??= plan();
    const parsed = (await loaded).parsePhoneNumberFromString(value);
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
