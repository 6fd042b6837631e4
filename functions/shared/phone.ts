// E.164 phone numbers, checked against libphonenumber's full metadata (a real number plan, not just a regex).
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import * as z from './zod.js';

/** Whether `value` is a valid number written exactly in E.164 (`+` then up to 15 digits, no spaces). */
export function isE164PhoneNumber(value: string): boolean {
  if (!/^\+[1-9]\d{1,14}$/.test(value)) return false;
  const parsed = parsePhoneNumberFromString(value);
  return parsed?.isValid() === true && parsed.number === value;
}

export const phoneSchema = z
  .string()
  .check(
    z.maxLength(16),
    z.refine(isE164PhoneNumber, 'Must be a valid phone number in E.164 form, e.g. +14155552671'),
  );
