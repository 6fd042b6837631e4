// libphonenumber-js/core over a metadata set read as JSON: phone.ts imports this with import(), so neither loads before the first number.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type MetadataJson, type PhoneNumber, parsePhoneNumberFromString } from 'libphonenumber-js/core';

/**
 * `mobile`: the mobile ranges of every plan (is this an assigned number that can receive an SMS);
 * `min`: country codes and lengths only.
 */
export type MetadataSet = 'min' | 'mobile';

/**
 * A parser over one metadata set. The set is read as a package file rather than bundled as code
 * (99 KB for `mobile`): the stack copies it into the bundle's node_modules/ (lib/bulwark-stack.ts),
 * where this resolves it as the sources resolve it from the repository's.
 */
export function numberPlan(set: MetadataSet): (text: string) => PhoneNumber | undefined {
  const file = createRequire(import.meta.url).resolve(`libphonenumber-js/metadata.${set}.json`);
  const metadata = JSON.parse(readFileSync(file, 'utf8')) as MetadataJson;
  return (text) => parsePhoneNumberFromString(text, metadata);
}
