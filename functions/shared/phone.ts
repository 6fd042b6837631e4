// E.164 phone numbers: the form checked at once, the number plan (libphonenumber metadata) loaded with the first number.
import type { PhoneNumber } from 'libphonenumber-js/core';
import type { MetadataSet } from './number-plan.js';
import * as z from './zod.js';

/**
 * `mobile`: an assigned mobile number, one an SMS can reach (a landline is refused where the plan
 * tells them apart; where it does not, as in +1, either passes); `possible`: a length its country allows.
 */
export type PhoneCheck = 'mobile' | 'possible';

const checks: Record<
  PhoneCheck,
  { metadata: MetadataSet; accepts: (parsed: PhoneNumber) => boolean; message: string }
> = {
  mobile: {
    metadata: 'mobile',
    accepts: (parsed) => parsed.isValid(),
    message: 'Must be a mobile phone number in E.164 form, e.g. +14155552671',
  },
  possible: {
    metadata: 'min',
    accepts: (parsed) => parsed.isPossible(),
    message: 'Must be a possible phone number in E.164 form, e.g. +14155552671',
  },
};

/** `+`, a country code that does not start with 0, up to 15 digits in all, no spaces. */
const e164Form = /^\+[1-9]\d{1,14}$/;

/**
 * A schema for a number written exactly in E.164 and checked against a number plan. The plan loads
 * with the first number, not at cold start, so the check is asynchronous: parse with
 * `safeParseAsync` (validateInput does).
 *
 * @example
 * const phone = phoneSchema('mobile');
 */
export function phoneSchema(check: PhoneCheck) {
  const { metadata, accepts, message } = checks[check];
  let parse: Promise<ReturnType<typeof import('./number-plan.js')['numberPlan']>> | undefined;
  const inPlan = async (value: string): Promise<boolean> => {
    if (!e164Form.test(value)) return false;
    parse ??= import('./number-plan.js').then(({ numberPlan }) => numberPlan(metadata));
    const parsed = (await parse)(value);
    return parsed?.number === value && accepts(parsed);
  };
  return z.string().check(z.maxLength(16), z.refine(inPlan, message));
}
