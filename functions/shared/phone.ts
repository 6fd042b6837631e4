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

type Parser = (text: string) => PhoneNumber | undefined;
/** One parser per metadata set, loaded with the first number that needs it and shared from then on. */
const parsers = new Map<MetadataSet, Promise<Parser>>();

function parserOf(metadata: MetadataSet): Promise<Parser> {
  let parser = parsers.get(metadata);
  if (!parser) {
    parser = import('./number-plan.js').then(({ numberPlan }) => numberPlan(metadata));
    parsers.set(metadata, parser);
  }
  return parser;
}

/** The number as `check`'s plan reads it, when it is written exactly in E.164 and passes the check. */
async function checkedNumber(value: string, check: PhoneCheck): Promise<PhoneNumber | undefined> {
  if (!e164Form.test(value)) return undefined;
  const { metadata, accepts } = checks[check];
  const parsed = (await parserOf(metadata))(value);
  return parsed?.number === value && accepts(parsed) ? parsed : undefined;
}

/**
 * The region of a mobile number as libphonenumber names it (ISO 3166 alpha-2: `+1 415…` is US, `+1 876…`
 * JM, `+44 7911…` GG, not GB), from the mobile ranges of its plan; undefined for a number that is not a
 * valid mobile number or belongs to no region (`+881` satellite phones, `+882`/`+883` international
 * networks).
 */
export async function phoneRegion(value: string): Promise<string | undefined> {
  return (await checkedNumber(value, 'mobile'))?.country;
}

/**
 * Ranges libphonenumber files under a region SMS may go to but that are billed as another destination:
 * Abkhazia's mobile numbers (`+7 940`, and `+7 840` fixed lines) read as RU, a known toll-fraud route.
 * Refused wherever `regions` is given, whatever it allows.
 */
const tollFraudPrefixes = ['+7840', '+7940'];

/**
 * Whether SMS codes go to `value`, a mobile number of `region` (see {@link phoneRegion}): its region is
 * one of `regions` and the number is in no range billed as another destination (`tollFraudPrefixes`).
 * The one rule registration's schema and every later SMS apply.
 */
export function isSmsDestination(
  value: string,
  region: string | undefined,
  regions: readonly string[],
): region is string {
  return (
    region !== undefined &&
    regions.includes(region) &&
    !tollFraudPrefixes.some((prefix) => value.startsWith(prefix))
  );
}

export interface PhoneSchemaOptions {
  /**
   * The only regions (ISO 3166 alpha-2, as libphonenumber names them) whose numbers pass: a number of
   * any other region, or of none, fails with a message that lists them. The region is the number plan's,
   * not the destination an SMS is billed as: ranges known to differ are refused (see `tollFraudPrefixes`).
   * @default any region
   */
  readonly regions?: readonly string[];
}

/**
 * A schema for a number written exactly in E.164 and checked against a number plan (and, given
 * `regions`, against them). The plan loads with the first number, not at cold start, so the check is
 * asynchronous: parse with `safeParseAsync` (validateInput does).
 *
 * @example
 * const phone = phoneSchema('mobile', { regions: ['US', 'CA'] });
 */
export function phoneSchema(check: PhoneCheck, { regions }: PhoneSchemaOptions = {}) {
  const { message } = checks[check];
  const regionMessage = `Must be a mobile phone number of a region SMS codes are sent to (${regions?.join(', ')})`;
  return z.string().check(
    z.maxLength(16),
    z.check(async (payload) => {
      const parsed = await checkedNumber(payload.value, check);
      if (parsed === undefined) {
        payload.issues.push({ code: 'custom', input: payload.value, message });
      } else if (regions !== undefined && !isSmsDestination(payload.value, parsed.country, regions)) {
        payload.issues.push({ code: 'custom', input: payload.value, message: regionMessage });
      }
    }),
  );
}
